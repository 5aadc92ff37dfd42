/* The check runner: executes HTTP, TCP and script checks on the event
 * loop, with no thread per check.
 *
 * HTTP checks go through one libcurl multi handle driven by the loop
 * (CURLMOPT_SOCKETFUNCTION / TIMERFUNCTION); TCP checks are non-blocking
 * connects watched for writability; scripts are child processes whose
 * output pipe is watched and which are reaped with waitpid(WNOHANG) and
 * killed (their whole process group) at their Timeout. Each run reports
 * its result through agent_check_result(); a run whose check was removed
 * or replaced meanwhile is discarded. Output is bounded to
 * AGENT_OUTPUT_MAX bytes. */
#ifndef CAIRN_APID_CHECKS_H
#define CAIRN_APID_CHECKS_H

#include <stddef.h>
#include <stdint.h>

struct agent_check;
struct agent_state;
struct checks;
struct loop;

/* st is borrowed and must outlive the runner. Returns NULL on OOM. */
struct checks *checks_new(struct loop *l, struct agent_state *st);
/* Cancels every run (killing scripts) and frees. NULL is fine. */
void checks_free(struct checks *ck);

/* Starts every check whose next run is due (first runs are spread
 * across the interval) and enforces time-outs. Call often (agent.c's
 * tick). */
void checks_tick(struct checks *ck, uint64_t now_ms);

/* Runs in flight (for tests and logs). */
size_t checks_running(const struct checks *ck);

#endif
