/* Time, read through one replaceable function so tests can fake it.
 *
 * Everything is uint64_t milliseconds on the monotonic clock, with the unit
 * in the name (now_ms, timeout_ms). Pure modules never call this: they get
 * the time from their caller. */
#ifndef CAIRN_CLOCK_H
#define CAIRN_CLOCK_H

#include <stdint.h>

typedef uint64_t (*clock_fn)(void);

/* The clock in force; defaults to CLOCK_MONOTONIC. Tests assign their own. */
extern clock_fn clock_now_ms;

/* Wall-clock milliseconds since the epoch (for values users see). */
uint64_t clock_wall_ms(void);

#endif
