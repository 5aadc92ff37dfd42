/* A deterministic simulation of a SWIM pool: N swim.c nodes in one
 * process, one virtual clock, and a fake network that delays, drops and
 * partitions. For tests/sim and bench/gossip; no real I/O.
 *
 * Node i has address 10.i>>16.i>>8.i:8301 and name "n<i>". Datagrams are
 * delayed uniformly in [delay_min_ms, delay_max_ms] and dropped with
 * probability loss (plus the per-node loss of either end); streams are
 * never dropped but fail (silently) across a partition or to a dead node,
 * as a refused TCP connection would. Everything is driven by one seeded
 * PRNG, so a run is reproducible from its seed. */
#ifndef CAIRN_SWIM_SIM_H
#define CAIRN_SWIM_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "swim.h"

struct swim_sim_config {
	size_t n; /* nodes created (and converged) at start */
	uint64_t seed;
	double loss;		       /* datagram loss, 0..1 */
	uint32_t delay_min_ms;	       /* default 1 */
	uint32_t delay_max_ms;	       /* default 5 */
	struct swim_config swim;       /* applied to every node */
	const struct member_tag *tags; /* every node's tags (borrowed), or NULL */
	size_t n_tags;
};

/* Per-node counters kept by the simulator. */
struct swim_sim_declared {
	uint64_t dead_ms; /* first time this node was declared dead by anyone */
	uint64_t n_dead;  /* how many times anyone declared it dead */
};

struct swim_sim;

/* Creates cfg->n nodes that already know each other as alive (a converged
 * pool, built without messages). NULL when out of memory. */
struct swim_sim *swim_sim_new(const struct swim_sim_config *cfg);
void swim_sim_free(struct swim_sim *sim);

/* Runs every event up to virtual time t_ms. */
void swim_sim_run_until(struct swim_sim *sim, uint64_t t_ms);
/* Runs until pred(sim, ctx) is true, checking every check_ms, for at most
 * budget_ms of virtual time. Returns true if pred became true. */
bool swim_sim_run_pred(struct swim_sim *sim, bool (*pred)(struct swim_sim *, void *), void *ctx,
		       uint64_t check_ms, uint64_t budget_ms);
uint64_t swim_sim_now(const struct swim_sim *sim);

/* Adds a node (not yet joined); returns its index or -ENOMEM. */
int swim_sim_add(struct swim_sim *sim);
/* Node i joins through node j's address. */
void swim_sim_join(struct swim_sim *sim, size_t i, size_t j);
/* Stops node i (its state is freed; it neither sends nor receives). */
void swim_sim_kill(struct swim_sim *sim, size_t i);
/* Restarts a killed node with incarnation + 1 and joins it through j. */
void swim_sim_restart(struct swim_sim *sim, size_t i, size_t j);
/* Graceful leave of node i. */
void swim_sim_leave(struct swim_sim *sim, size_t i);
/* Extra loss for datagrams to or from node i. */
void swim_sim_set_node_loss(struct swim_sim *sim, size_t i, double loss);
/* Puts node i in partition group g; while partitioned, traffic between
 * different groups is dropped. */
void swim_sim_set_group(struct swim_sim *sim, size_t i, unsigned g);
void swim_sim_partition(struct swim_sim *sim, bool on);

size_t swim_sim_size(const struct swim_sim *sim);
bool swim_sim_running(const struct swim_sim *sim, size_t i);
const char *swim_sim_name(const struct swim_sim *sim, size_t i);
struct swim *swim_sim_node(struct swim_sim *sim, size_t i);
/* Running nodes other than `about` whose view of node `about` is in one of
 * the states in mask (1u << SWIM_ALIVE | ...). */
size_t swim_sim_count_view(const struct swim_sim *sim, size_t about, unsigned mask);
/* Running nodes other than `about` (the denominator of count_view). */
size_t swim_sim_count_running(const struct swim_sim *sim, size_t about);
const struct swim_sim_declared *swim_sim_declared(const struct swim_sim *sim, size_t i);
/* Totals over all nodes: datagram and stream bytes sent. */
uint64_t swim_sim_bytes(const struct swim_sim *sim);
uint64_t swim_sim_events(const struct swim_sim *sim);

#endif
