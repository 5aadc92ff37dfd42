/* bench/gossip: the SWIM core (gossipd/swim.c) in the deterministic pool
 * simulator, measured the way issue 4 asks and printed next to what
 * memberlist's defaults and the SWIM/Lifeguard papers predict.
 *
 * Usage: cairn-bench-gossip [N ...]        (default: 100 1000)
 * Environment: BENCH_SEEDS (trials per measurement, default 3).
 *
 * Every node carries Consul-like serf tags (~150 bytes of meta), so the
 * byte counts are comparable to a real pool. Times are virtual. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "swim_sim.h"

static const struct member_tag tags[] = {
    {"build", "0.1.0"}, {"dc", "dc1"},	  {"id", "6a1f6e4c-9c5e-4b6e-8f7e-0d3c2b1a0f99"},
    {"role", "node"},	{"segment", ""},  {"vsn", "2"},
    {"vsn_max", "3"},	{"vsn_min", "2"},
};

static bool no_fallback;

static struct swim_sim *make(size_t n, uint64_t seed, double loss)
{
	struct swim_sim_config c = {0};

	c.n = n;
	c.seed = seed;
	c.loss = loss;
	c.tags = tags;
	c.n_tags = sizeof(tags) / sizeof(tags[0]);
	swim_config_lan(&c.swim);
	c.swim.tcp_fallback = !no_fallback;
	return swim_sim_new(&c);
}

/* Time (ms) until `frac` of the others see node `about` in a state of mask;
 * 0 if not within budget. */
static uint64_t time_to(struct swim_sim *sim, size_t about, unsigned mask, double frac,
			uint64_t start, uint64_t budget_ms)
{
	uint64_t end = swim_sim_now(sim) + budget_ms;

	for (;;) {
		size_t c = swim_sim_count_view(sim, about, mask);
		size_t r = swim_sim_count_running(sim, about);

		if ((double)c >= frac * (double)r)
			return swim_sim_now(sim) - start;
		if (swim_sim_now(sim) >= end)
			return 0;
		swim_sim_run_until(sim, swim_sim_now(sim) + 50);
	}
}

static void bench_n(size_t n, unsigned seeds)
{
	double join99 = 0, join100 = 0, fail_first = 0, fail_all = 0;
	double log10n = log10((double)n), susp_min = 4 * (log10n > 1 ? log10n : 1);
	clock_t c0 = clock();

	for (unsigned k = 0; k < seeds; k++) {
		struct swim_sim *sim = make(n, 100 + k, 0);
		int j;
		uint64_t t0;

		if (!sim) {
			fprintf(stderr, "out of memory at n=%zu\n", n);
			exit(1);
		}
		swim_sim_run_until(sim, 5000);
		j = swim_sim_add(sim);
		t0 = swim_sim_now(sim);
		swim_sim_join(sim, (size_t)j, 0);
		join99 += (double)time_to(sim, (size_t)j, 1u << SWIM_ALIVE, 0.99, t0, 60000);
		join100 += (double)time_to(sim, (size_t)j, 1u << SWIM_ALIVE, 1.0, t0, 60000);
		swim_sim_run_until(sim, swim_sim_now(sim) + 5000);
		t0 = swim_sim_now(sim);
		swim_sim_kill(sim, 3);
		fail_all += (double)time_to(sim, 3, 1u << SWIM_DEAD, 1.0, t0, 300000);
		fail_first += (double)(swim_sim_declared(sim, 3)->dead_ms - t0);
		swim_sim_free(sim);
	}
	printf("N=%zu (%u trials, %.1f s CPU)\n", n, seeds,
	       (double)(clock() - c0) / CLOCKS_PER_SEC);
	/* memberlist: gossip fan-out 3 every 200 ms plus piggybacking on
	 * probes; an epidemic reaches everyone in about log_(fanout+1)(N)
	 * rounds plus a tail of ln(N)/fanout rounds (SWIM §4.1) */
	printf("  join known to 99%%:   %7.2f s   (epidemic estimate %.2f s)\n",
	       join99 / seeds / 1000, (log((double)n) / log(4.0)) * 0.2);
	printf("  join known to 100%%:  %7.2f s   (estimate %.2f s)\n", join100 / seeds / 1000,
	       (log((double)n) / log(4.0) + log((double)n) / 3) * 0.2);
	/* memberlist: first probe within ~1.6 s on average (each of N−1
	 * members probes one per second), + probe interval for the indirect
	 * round, + suspicion between min = 4·log10(N) s (k = 2 confirmations)
	 * and 6 × min, + dissemination of the dead message */
	printf("  failure declared by first: %6.2f s  (memberlist: %.1f s … %.1f s)\n",
	       fail_first / seeds / 1000, 1.0 + susp_min, 2.6 + 6 * susp_min);
	printf("  failure known to all:      %6.2f s\n", fail_all / seeds / 1000);
}

static void bench_loss(size_t n, double loss, uint64_t dur_ms)
{
	struct swim_sim *sim = make(n, 7, loss);
	uint64_t false_dead = 0, probes = 0, fails = 0, refutes = 0;

	swim_sim_run_until(sim, dur_ms);
	for (size_t i = 0; i < n; i++) {
		const struct swim_stats *st = swim_stats(swim_sim_node(sim, i));

		false_dead += swim_sim_declared(sim, i)->n_dead;
		probes += st->probes;
		fails += st->probe_failures;
		refutes += st->refutes;
	}
	printf("  loss %2.0f%%%s, %llu s: %llu probes, %.4f%% failed (suspicions), %llu refuted, "
	       "%llu members declared dead (false positives: %.4f%% of probes)\n",
	       loss * 100, no_fallback ? " (no TCP fallback)" : "",
	       (unsigned long long)dur_ms / 1000, (unsigned long long)probes,
	       probes ? 100.0 * (double)fails / (double)probes : 0.0, (unsigned long long)refutes,
	       (unsigned long long)false_dead,
	       probes ? 100.0 * (double)false_dead / (double)probes : 0.0);
	swim_sim_free(sim);
}

static void bench_bytes(size_t n)
{
	struct swim_sim *sim = make(n, 11, 0);
	uint64_t b0, t0 = 60000, t1 = 60000 + 300000;
	double per;
	double state = 0;

	/* the first push/pull round is staggered over 15..30 s; measure a
	 * steady 5 minutes after the first minute */
	swim_sim_run_until(sim, t0);
	b0 = swim_sim_bytes(sim);
	swim_sim_run_until(sim, t1);
	per = (double)(swim_sim_bytes(sim) - b0) / (double)n / ((double)(t1 - t0) / 1000);
	/* memberlist estimate: ping ~60 B + ack ~15 B each second (UDP/IP
	 * headers not counted), + push/pull of N states of ~(name+addr+meta+
	 * 30) B both ways per pushPullScale(30 s, N) */
	{
		double scale = n <= 32 ? 1 : ceil(log2((double)n) - 5) + 1;

		state = (double)n * (8 + 16 + 150 + 30) * 2 / (30 * scale);
	}
	printf("  bytes sent per member per second: %.0f   (memberlist estimate %.0f)\n", per,
	       75 + state);
	swim_sim_free(sim);
}

int main(int argc, char **argv)
{
	size_t ns[8] = {100, 1000};
	size_t nn = 2;
	const char *e = getenv("BENCH_SEEDS");
	unsigned seeds = e && atoi(e) > 0 ? (unsigned)atoi(e) : 3;

	if (argc > 1) {
		nn = 0;
		for (int i = 1; i < argc && nn < 8; i++)
			ns[nn++] = (size_t)strtoul(argv[i], NULL, 10);
	}
	for (size_t i = 0; i < nn; i++) {
		bench_n(ns[i], seeds);
		bench_loss(ns[i], 0.05, 300000);
		bench_loss(ns[i], 0.10, 300000);
		no_fallback = true; /* what Lifeguard alone achieves over UDP */
		bench_loss(ns[i], 0.10, 300000);
		no_fallback = false;
		bench_bytes(ns[i]);
		fflush(stdout);
	}
	return 0;
}
