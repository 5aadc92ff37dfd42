/* Unit tests: the SWIM core (gossipd/swim.c) with three nodes on a fake
 * network and clock, each keeping its own member table: joins with tags,
 * failure, leave, force-leave with prune, refutation, malformed input. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "events.h"
#include "members.h"
#include "proto.h"
#include "swim.h"

Suite *swim_suite(void);

#define NN 3

struct pkt {
	int from, to;
	bool stream;
	uint8_t *buf;
	size_t len;
};

static struct {
	uint64_t now;
	uint32_t rng;
	struct swim *s[NN];
	struct members t[NN];
	struct swim_addr addr[NN];
	bool down[NN];
	struct pkt q[4096];
	size_t nq;
	int events[NN][6]; /* per node: count per member_event kind */
	uint64_t last_seq[NN];
	int user_events[NN];
	int queries[NN], answers[NN];
	uint64_t last_ltime[NN];
} F;

static int node_of(const struct swim_addr *a)
{
	for (int i = 0; i < NN; i++)
		if (memcmp(a->ip, F.addr[i].ip, 16) == 0 && a->port == F.addr[i].port)
			return i;
	return -1;
}

static void enqueue(void *ctx, const struct swim_addr *to, const uint8_t *buf, size_t len,
		    bool stream)
{
	int from = (int)(intptr_t)ctx, dst = node_of(to);

	if (dst < 0 || F.nq == sizeof(F.q) / sizeof(F.q[0]))
		return;
	F.q[F.nq].from = from;
	F.q[F.nq].to = dst;
	F.q[F.nq].stream = stream;
	F.q[F.nq].buf = malloc(len);
	memcpy(F.q[F.nq].buf, buf, len);
	F.q[F.nq].len = len;
	F.nq++;
}

static void io_packet(void *ctx, const struct swim_addr *to, const uint8_t *buf, size_t len)
{
	enqueue(ctx, to, buf, len, false);
}

static void io_stream(void *ctx, const struct swim_addr *to, const uint8_t *buf, size_t len)
{
	enqueue(ctx, to, buf, len, true);
}

static uint64_t io_now(void *ctx)
{
	(void)ctx;
	return F.now;
}

static uint32_t io_rand(void *ctx)
{
	(void)ctx;
	F.rng = F.rng * 1103515245u + 12345u;
	return F.rng >> 8;
}

static void io_event(void *ctx, enum member_event ev, const struct member *m, uint64_t seq)
{
	int i = (int)(intptr_t)ctx;

	ck_assert_ptr_nonnull(m);
	ck_assert_uint_gt(seq, F.last_seq[i]); /* monotonic */
	F.last_seq[i] = seq;
	F.events[i][ev]++;
}

static void io_user(void *ctx, const struct swim_user_event *ev)
{
	int i = (int)(intptr_t)ctx;

	F.user_events[i]++;
	F.last_ltime[i] = ev->ltime;
}

static void io_query(void *ctx, const char *op, const uint8_t *arg, size_t arg_len, uint8_t *out,
		     size_t *out_len)
{
	int i = (int)(intptr_t)ctx;

	if (strcmp(op, "echo") != 0 || arg_len + 1 > *out_len) {
		*out_len = 0; /* mutated input (test_mutated_input_survives) */
		return;
	}
	F.queries[i]++;
	out[0] = (uint8_t)i;
	memcpy(out + 1, arg, arg_len);
	*out_len = arg_len + 1;
}

static void io_answer(void *ctx, const char *id, const char *node, const uint8_t *p, size_t len)
{
	int i = (int)(intptr_t)ctx;

	(void)node;
	if (strcmp(id, "q1") != 0 || len != 3 || memcmp(p + 1, "hi", 2) != 0)
		return; /* mutated input */
	F.answers[i]++;
}

/* Delivers queued messages (dropping those to or from a down node). */
static void drain(void)
{
	while (F.nq > 0) {
		struct pkt p = F.q[0];

		memmove(&F.q[0], &F.q[1], (F.nq - 1) * sizeof(F.q[0]));
		F.nq--;
		if (!F.down[p.from] && !F.down[p.to] && F.s[p.to]) {
			if (p.stream)
				(void)swim_recv_stream(F.s[p.to], &F.addr[p.from], p.buf, p.len);
			else
				(void)swim_recv_packet(F.s[p.to], &F.addr[p.from], p.buf, p.len);
		}
		free(p.buf);
	}
}

/* Advances the clock by ms in 50 ms steps, ticking and delivering. */
static void run(uint64_t ms)
{
	for (uint64_t t = 0; t < ms; t += 50) {
		F.now += 50;
		for (int i = 0; i < NN; i++)
			if (F.s[i] && !F.down[i])
				(void)swim_tick(F.s[i]);
		drain();
	}
}

static void setup(void)
{
	static const char *names[NN] = {"alpha", "beta", "gamma"};
	struct swim_config cfg;

	memset(&F, 0, sizeof(F));
	F.now = 1000;
	F.rng = 7;
	swim_config_lan(&cfg);
	cfg.reap_failed_ms = 3600 * 1000;
	for (int i = 0; i < NN; i++) {
		struct member self = {0};
		char ip[32];
		struct swim_io io = {
		    .ctx = (void *)(intptr_t)i,
		    .send_packet = io_packet,
		    .send_stream = io_stream,
		    .now_ms = io_now,
		    .rand_u32 = io_rand,
		    .member_event = io_event,
		    .user_event = io_user,
		    .query = io_query,
		    .query_response = io_answer,
		};

		snprintf(ip, sizeof(ip), "127.0.0.%d", i + 1);
		self.name = (char *)names[i];
		self.addr = ip;
		self.port = 8301;
		ck_assert_int_eq(member_tag_set(&self, "role", i == 0 ? "consul" : "node"), 0);
		ck_assert_int_eq(member_tag_set(&self, "dc", "dc1"), 0);
		ck_assert_int_eq(swim_addr_parse(ip, 8301, &F.addr[i]), 0);
		members_init(&F.t[i]);
		F.s[i] = swim_new(&cfg, &io, &self, 0, &F.t[i]);
		ck_assert_ptr_nonnull(F.s[i]);
		free(self.tags[0].key);
		free(self.tags[0].val);
		free(self.tags[1].key);
		free(self.tags[1].val);
		free(self.tags);
	}
}

static void teardown(void)
{
	for (int i = 0; i < NN; i++) {
		swim_free(F.s[i]);
		members_close(&F.t[i]);
	}
	for (size_t i = 0; i < F.nq; i++)
		free(F.q[i].buf);
}

static void join_all(void)
{
	ck_assert_int_eq(swim_join(F.s[1], &F.addr[0]), 0);
	ck_assert_int_eq(swim_join(F.s[2], &F.addr[0]), 0);
	drain();
	run(3000);
}

START_TEST(test_join_tags_and_events)
{
	join_all();
	for (int i = 0; i < NN; i++) {
		const struct member *m = members_find(&F.t[i], "gamma");

		ck_assert_uint_eq(F.t[i].n, 3);
		ck_assert_ptr_nonnull(m);
		ck_assert_int_eq(m->status, MEMBER_ALIVE);
		ck_assert_str_eq(m->addr, "127.0.0.3");
		ck_assert_uint_eq(m->port, 8301);
		ck_assert_str_eq(member_tag_get(m, "role"), "node");
		ck_assert_str_eq(member_tag_get(members_find(&F.t[i], "alpha"), "role"), "consul");
		ck_assert_int_eq(F.events[i][MEMBER_EVENT_JOIN], 3); /* self + two */
		ck_assert_uint_eq(swim_num_live(F.s[i]), 3);
	}
}
END_TEST

START_TEST(test_failure_detected)
{
	join_all();
	F.down[2] = true;
	/* 3 nodes: suspicion min = 4 × 1 × 1 s, no confirmations expected */
	run(20000);
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(members_find(&F.t[i], "gamma")->status, MEMBER_FAILED);
		ck_assert_int_eq(F.events[i][MEMBER_EVENT_FAIL], 1);
		ck_assert_int_eq(members_find(&F.t[i], "beta")->status, MEMBER_ALIVE);
	}
	/* back with a higher incarnation: alive again (a JOIN event) */
	F.down[2] = false;
	run(40000); /* the reconnect task retries failed members every 30 s */
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(members_find(&F.t[i], "gamma")->status, MEMBER_ALIVE);
		ck_assert_int_eq(F.events[i][MEMBER_EVENT_JOIN], 4);
	}
	ck_assert_uint_ge(swim_incarnation(F.s[2]), 1); /* it refuted */
}
END_TEST

START_TEST(test_leave_and_force_leave)
{
	join_all();
	ck_assert_int_eq(swim_leave(F.s[1]), 0);
	ck_assert_int_eq(members_find(&F.t[1], "beta")->status, MEMBER_LEFT);
	run(2000);
	ck_assert(swim_leave_done(F.s[1]));
	ck_assert_int_eq(members_find(&F.t[0], "beta")->status, MEMBER_LEFT);
	ck_assert_int_eq(members_find(&F.t[2], "beta")->status, MEMBER_LEFT);
	ck_assert_int_eq(F.events[0][MEMBER_EVENT_LEAVE], 1);
	ck_assert_int_eq(F.events[0][MEMBER_EVENT_FAIL], 0);
	F.down[1] = true;

	/* force-leave: refused while alive, then failed → left → pruned */
	ck_assert_int_eq(swim_force_leave(F.s[0], "gamma", false), -EBUSY);
	ck_assert_int_eq(swim_force_leave(F.s[0], "nobody", false), -ENOENT);
	F.down[2] = true;
	run(20000);
	ck_assert_int_eq(members_find(&F.t[0], "gamma")->status, MEMBER_FAILED);
	ck_assert_int_eq(swim_force_leave(F.s[0], "gamma", false), 0);
	ck_assert_int_eq(members_find(&F.t[0], "gamma")->status, MEMBER_LEFT);
	ck_assert_int_eq(swim_force_leave(F.s[0], "gamma", true), 0);
	ck_assert_ptr_null(members_find(&F.t[0], "gamma"));
	ck_assert_int_eq(F.events[0][MEMBER_EVENT_REAP], 1);
	ck_assert_int_eq(swim_member_state(F.s[0], "gamma"), SWIM_NONE);
}
END_TEST

START_TEST(test_refute_suspicion)
{
	/* [5, incarnation 0, "beta", "alpha"]: beta is told it is suspect */
	static const uint8_t suspect[] = {0x94, 0x05, 0x00, 0xa4, 'b', 'e', 't',
					  'a',	0xa5, 'a',  'l',  'p', 'h', 'a'};

	join_all();
	ck_assert_uint_eq(swim_incarnation(F.s[1]), 0);
	ck_assert_int_eq(swim_recv_packet(F.s[1], &F.addr[0], suspect, sizeof(suspect)), 0);
	ck_assert_uint_eq(swim_incarnation(F.s[1]), 1);
	ck_assert_uint_eq(swim_stats(F.s[1])->refutes, 1);
	ck_assert_uint_eq(swim_awareness(F.s[1]), 1);
	/* the others suspect beta meanwhile and then accept its refutation */
	ck_assert_int_eq(swim_recv_packet(F.s[2], &F.addr[0], suspect, sizeof(suspect)), 0);
	ck_assert_int_eq(swim_member_state(F.s[2], "beta"), SWIM_SUSPECT);
	run(2000);
	ck_assert_int_eq(swim_member_state(F.s[2], "beta"), SWIM_ALIVE);
	ck_assert_int_eq(swim_member_state(F.s[0], "beta"), SWIM_ALIVE);
	ck_assert_int_eq(members_find(&F.t[2], "beta")->status, MEMBER_ALIVE);
}
END_TEST

START_TEST(test_malformed_dropped)
{
	static const uint8_t garbage[] = {0xc1, 0xff, 0x00};
	static const uint8_t truncated[] = {0x94, 0x05, 0x00, 0xa4, 'b', 'e'};
	static const uint8_t wrong_types[] = {0x94, 0x05, 0xa1, 'x', 0x01, 0x02};
	static const uint8_t not_array[] = {0x05};
	/* a valid ACK followed by garbage: the first is used, the rest dropped */
	static const uint8_t ack_then_junk[] = {0x92, 0x03, 0x01, 0xc1};
	/* an unknown type from a newer peer is ignored, not an error */
	static const uint8_t unknown[] = {0x91, 0x63};
	uint64_t seq;

	join_all();
	seq = F.t[0].seq;
	ck_assert_int_eq(swim_recv_packet(F.s[0], &F.addr[1], garbage, sizeof(garbage)), -EINVAL);
	ck_assert_int_eq(swim_recv_packet(F.s[0], &F.addr[1], truncated, sizeof(truncated)),
			 -EINVAL);
	ck_assert_int_eq(swim_recv_packet(F.s[0], &F.addr[1], wrong_types, sizeof(wrong_types)),
			 -EINVAL);
	ck_assert_int_eq(swim_recv_packet(F.s[0], &F.addr[1], not_array, sizeof(not_array)),
			 -EINVAL);
	ck_assert_int_eq(swim_recv_packet(F.s[0], &F.addr[1], ack_then_junk, sizeof(ack_then_junk)),
			 -EINVAL);
	ck_assert_int_eq(swim_recv_stream(F.s[0], &F.addr[1], garbage, sizeof(garbage)), -EINVAL);
	ck_assert_int_eq(swim_recv_packet(F.s[0], &F.addr[1], unknown, sizeof(unknown)), 0);
	ck_assert_uint_eq(swim_stats(F.s[0])->bad_packets, 6);
	ck_assert_uint_eq(F.t[0].seq, seq);
	ck_assert_uint_eq(swim_num_live(F.s[0]), 3);
}
END_TEST

START_TEST(test_user_events_once_each)
{
	struct swim_user_event ev = {.id = "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
				     .name = "deploy",
				     .payload = (const uint8_t *)"v2",
				     .payload_len = 2};
	struct swim_user_event ev2 = ev;
	char big[SWIM_EVENT_MAX + 1];

	join_all();
	ck_assert_int_eq(swim_fire_event(F.s[0], &ev), 0);
	ck_assert_uint_eq(ev.ltime, 0);
	run(3000);
	for (int i = 0; i < NN; i++)
		ck_assert_int_eq(F.user_events[i], 1); /* once, though re-gossiped */
	/* the next event on another node is later in Lamport time */
	ev2.id = "2b4e28ba-2fa1-11d2-883f-0016d3cca427";
	ck_assert_int_eq(swim_fire_event(F.s[2], &ev2), 0);
	ck_assert_uint_eq(ev2.ltime, 1);
	run(3000);
	for (int i = 0; i < NN; i++) {
		ck_assert_int_eq(F.user_events[i], 2);
		ck_assert_uint_eq(F.last_ltime[i], 1);
	}
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	ev2.name = big;
	ck_assert_int_eq(swim_fire_event(F.s[0], &ev2), -EINVAL);
}
END_TEST

START_TEST(test_query_answered_by_all)
{
	join_all();
	ck_assert_int_eq(swim_query(F.s[1], "q1", "echo", (const uint8_t *)"hi", 2), 0);
	run(3000);
	for (int i = 0; i < NN; i++)
		ck_assert_int_eq(F.queries[i], 1);
	ck_assert_int_eq(F.answers[1], NN); /* everyone, itself included */
	ck_assert_int_eq(F.answers[0] + F.answers[2], 0);
}
END_TEST

START_TEST(test_events_store)
{
	static struct events e;
	struct swim_user_event ev = {.id = "x", .name = "a", .node_filter = "^web-"};
	struct proto_user_event *v;
	struct arena a;
	size_t n;
	char id[16];

	events_init(&e);
	arena_init(&a, 0);
	ck_assert_int_eq(events_add(&e, &ev, "db-1"), 0); /* filtered out */
	ck_assert_int_eq(events_add(&e, &ev, "web-1"), 1);
	ev.node_filter = "(["; /* invalid: matches nothing */
	ck_assert_int_eq(events_add(&e, &ev, "web-1"), 0);
	ev.node_filter = "";
	for (int i = 0; i < EVENTS_KEEP + 10; i++) {
		snprintf(id, sizeof(id), "id%d", i);
		ev.id = id;
		ev.name = i % 2 ? "odd" : "even";
		ck_assert_int_eq(events_add(&e, &ev, "web-1"), 1);
	}
	ck_assert_uint_eq(e.index, EVENTS_KEEP + 11);
	ck_assert_int_eq(events_to_proto(&e, NULL, &a, &v, &n), 0);
	ck_assert_uint_eq(n, EVENTS_KEEP);
	ck_assert_str_eq(v[0].id, "id10"); /* the oldest kept */
	ck_assert_str_eq(v[n - 1].id, "id265");
	ck_assert_int_eq(events_to_proto(&e, "odd", &a, &v, &n), 0);
	ck_assert_uint_eq(n, EVENTS_KEEP / 2);
	arena_close(&a);
	events_close(&e);
}
END_TEST

/* Bytes from the network never crash the core: real messages captured
 * from a running pool, mutated (flipped, truncated, spliced), fed to a
 * node as datagrams and streams (ASan/UBSan watch). */
START_TEST(test_mutated_input_survives)
{
	uint8_t samples[64][1500];
	size_t lens[64], n = 0;
	uint32_t r = 12345;

	join_all();
	{
		struct swim_user_event ev = {.id = "e1", .name = "x", .node_filter = "^a"};

		ck_assert_int_eq(swim_fire_event(F.s[1], &ev), 0);
		ck_assert_int_eq(swim_query(F.s[2], "q1", "echo", (const uint8_t *)"hi", 2), 0);
		ck_assert_int_eq(swim_join(F.s[2], &F.addr[0]), 0);
	}
	/* capture what the pool sends for a while */
	for (int round = 0; round < 200 && n < 64; round++) {
		F.now += 50;
		for (int i = 0; i < NN; i++)
			(void)swim_tick(F.s[i]);
		for (size_t i = 0; i < F.nq && n < 64; i++)
			if (F.q[i].len <= sizeof(samples[0])) {
				memcpy(samples[n], F.q[i].buf, F.q[i].len);
				lens[n++] = F.q[i].len;
			}
		drain();
	}
	ck_assert_uint_gt(n, 8);
	for (int iter = 0; iter < 20000; iter++) {
		uint8_t buf[3000];
		size_t k, len;

		r = r * 1103515245u + 12345u;
		k = (r >> 8) % n;
		len = lens[k];
		memcpy(buf, samples[k], len);
		switch (iter % 4) {
		case 0: /* flip a few bytes */
			for (int j = 0; j < 3; j++) {
				r = r * 1103515245u + 12345u;
				buf[(r >> 8) % len] ^= (uint8_t)(r >> 20);
			}
			break;
		case 1: /* truncate */
			len = (r >> 12) % (len + 1);
			break;
		case 2: /* splice another message's tail */
			r = r * 1103515245u + 12345u;
			{
				size_t o = (r >> 8) % n, cut = (r >> 16) % (len + 1);
				size_t tail = lens[o] / 2;

				memcpy(buf + cut, samples[o] + lens[o] - tail, tail);
				len = cut + tail;
			}
			break;
		default: /* random bytes */
			for (size_t j = 0; j < len; j++) {
				r = r * 1103515245u + 12345u;
				buf[j] = (uint8_t)(r >> 16);
			}
			break;
		}
		if (iter % 2)
			(void)swim_recv_packet(F.s[0], &F.addr[1], buf, len);
		else
			(void)swim_recv_stream(F.s[0], &F.addr[2], buf, len);
		if (iter % 100 == 0) {
			F.now += 50;
			(void)swim_tick(F.s[0]);
			for (size_t i = 0; i < F.nq; i++)
				free(F.q[i].buf);
			F.nq = 0;
		}
	}
	ck_assert_uint_gt(swim_stats(F.s[0])->bad_packets, 1000);
}
END_TEST

START_TEST(test_addr_and_config)
{
	struct swim_addr a;
	char buf[64];
	struct swim_config lan, wan;

	ck_assert_int_eq(swim_addr_parse("10.1.2.3", 8301, &a), 0);
	swim_addr_ip_str(&a, buf, sizeof(buf));
	ck_assert_str_eq(buf, "10.1.2.3");
	ck_assert_int_eq(swim_addr_parse("::1", 8302, &a), 0);
	swim_addr_ip_str(&a, buf, sizeof(buf));
	ck_assert_str_eq(buf, "::1");
	ck_assert_int_eq(swim_addr_parse("host.example", 1, &a), -EINVAL);
	swim_config_lan(&lan);
	swim_config_wan(&wan);
	ck_assert_uint_eq(lan.probe_interval_ms, 1000);
	ck_assert_uint_eq(wan.probe_interval_ms, 5000);
	ck_assert_uint_eq(lan.indirect_checks, 3);
	ck_assert_uint_eq(lan.pushpull_interval_ms, 30000);
}
END_TEST

Suite *swim_suite(void)
{
	Suite *s = suite_create("swim");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_join_tags_and_events);
	tcase_add_test(tc, test_failure_detected);
	tcase_add_test(tc, test_leave_and_force_leave);
	tcase_add_test(tc, test_refute_suspicion);
	tcase_add_test(tc, test_malformed_dropped);
	tcase_add_test(tc, test_user_events_once_each);
	tcase_add_test(tc, test_query_answered_by_all);
	tcase_add_test(tc, test_events_store);
	tcase_add_test(tc, test_mutated_input_survives);
	tcase_add_test(tc, test_addr_and_config);
	suite_add_tcase(s, tc);
	return s;
}
