/* Linearizability checker for a key/value register with put, get and cas.
 *
 * Wing & Gong's search with Lowe's memoisation (the algorithm Porcupine
 * uses): walk the history's call/return events, try to linearize each
 * pending call at its current point, backtrack at a return whose call was
 * not linearized yet, and cache (set of linearized operations, register
 * state) pairs already explored. Keys are independent registers, so the
 * history is split per key first (P-compositionality).
 *
 * An operation whose outcome is unknown (a write that timed out, a crash
 * before the answer) has ret_ms = LIN_UNKNOWN: it may take effect at any
 * point after its call, or never (linearized after everything else), and
 * any result is accepted for it. */
#ifndef CAIRN_TEST_SIM_LIN_H
#define CAIRN_TEST_SIM_LIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LIN_UNKNOWN UINT64_MAX /* ret_ms of an operation with no answer */

enum lin_kind {
	LIN_PUT = 0, /* value := a */
	LIN_GET = 1, /* returns value (0: absent) */
	LIN_CAS = 2, /* if value == a then value := b; returns whether it did */
};

struct lin_op {
	unsigned key;	  /* register */
	unsigned kind;	  /* enum lin_kind */
	int64_t a, b;	  /* arguments */
	int64_t out;	  /* GET: value read; CAS: 1 swapped, 0 not; ignored when unknown */
	uint64_t call_ms; /* invocation time */
	uint64_t ret_ms;  /* response time (>= call_ms) or LIN_UNKNOWN */
};

/* Checks whether ops (any order) is linearizable with every register
 * starting absent (0). Returns 1 if it is, 0 if not (then *out_key names a
 * key whose history is not), -ENOMEM or -E2BIG (more than 4096 operations
 * on one key). */
int lin_check(const struct lin_op *ops, size_t n, unsigned *out_key);

#endif
