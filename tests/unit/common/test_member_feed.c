/* Unit tests for common/member_feed: the pure table, and the feed against a
 * fake gossipd (a ROUTER answering MEMBERS and an XPUB publishing
 * MEMBER_EVENT) on ipc sockets in a temporary directory. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "loop.h"
#include "member_feed.h"
#include "proto.h"
#include "rpc.h"

/* ---- a fake member list ----------------------------------------------------- */

struct fake_member {
	const char *name;
	const char *role;
	uint64_t status;
};

static void fill_proto(struct proto_member *p, const struct fake_member *fm, const char **keys,
		       const char **vals)
{
	memset(p, 0, sizeof(*p));
	p->name = fm->name;
	p->addr = "127.0.0.1";
	p->port = 8301;
	keys[0] = "role";
	vals[0] = fm->role;
	keys[1] = "dc";
	vals[1] = "dc1";
	p->tags.keys = keys;
	p->tags.vals = vals;
	p->tags.n = 2;
	p->status = fm->status;
}

/* ---- callback recorder -------------------------------------------------------- */

struct rec {
	int added, updated, removed, synced;
	char last_name[64];
	int last_old_status;
};

static void record(void *ctx, enum member_feed_change change, const struct member_feed_member *m,
		   const struct member_feed_member *old)
{
	struct rec *r = ctx;

	switch (change) {
	case MEMBER_FEED_ADDED:
		r->added++;
		break;
	case MEMBER_FEED_UPDATED:
		r->updated++;
		ck_assert_ptr_nonnull(old);
		r->last_old_status = (int)old->status;
		break;
	case MEMBER_FEED_REMOVED:
		r->removed++;
		break;
	case MEMBER_FEED_SYNCED:
		r->synced++;
		ck_assert_ptr_null(m);
		return;
	}
	snprintf(r->last_name, sizeof(r->last_name), "%s", m->name);
}

/* ---- pure table --------------------------------------------------------------- */

START_TEST(table_diff_and_tags)
{
	struct member_feed_table t = {0};
	struct fake_member a = {"a", "consul", 1}, b = {"b", "node", 1}, c = {"c", "node", 4};
	struct proto_member snap[3];
	const char *k[3][2], *v[3][2];
	struct rec r = {0};
	const struct member_feed_member *m;

	fill_proto(&snap[0], &b, k[0], v[0]);
	fill_proto(&snap[1], &a, k[1], v[1]);
	ck_assert_int_eq(member_feed_table_replace(&t, snap, 2, record, &r), 0);
	ck_assert_int_eq(r.added, 2);
	ck_assert_uint_eq(t.n, 2);
	ck_assert_str_eq(t.v[0].name, "a"); /* kept sorted */
	ck_assert_str_eq(t.v[0].tag_keys[0], "dc");
	m = member_feed_table_find(&t, "a");
	ck_assert_ptr_nonnull(m);
	ck_assert_str_eq(member_feed_tag(m, "role"), "consul");
	ck_assert(member_feed_is_server(m));
	ck_assert(!member_feed_is_server(member_feed_table_find(&t, "b")));
	ck_assert_ptr_null(member_feed_tag(m, "nope"));

	/* same snapshot again: nothing changes, no callbacks */
	ck_assert_int_eq(member_feed_table_replace(&t, snap, 2, record, &r), 0);
	ck_assert_int_eq(r.added + r.updated + r.removed, 2);

	/* a gone, b failed, c new */
	b.status = 4;
	fill_proto(&snap[0], &b, k[0], v[0]);
	fill_proto(&snap[1], &c, k[1], v[1]);
	ck_assert_int_eq(member_feed_table_replace(&t, snap, 2, record, &r), 0);
	ck_assert_int_eq(r.removed, 1);
	ck_assert_int_eq(r.updated, 1);
	ck_assert_int_eq(r.last_old_status, 1);
	ck_assert_int_eq(r.added, 3);
	ck_assert_ptr_null(member_feed_table_find(&t, "a"));
	ck_assert_int_eq(member_feed_table_find(&t, "b")->status, MEMBER_FEED_FAILED);
	ck_assert_int_eq(member_feed_table_remove(&t, "zz", record, &r), -ENOENT);
	ck_assert_int_eq(member_feed_table_remove(&t, "c", record, &r), 0);
	ck_assert_str_eq(r.last_name, "c");
	ck_assert_uint_eq(t.n, 1);
	member_feed_table_clear(&t);
	ck_assert_uint_eq(t.n, 0);
}
END_TEST

/* ---- fake gossipd ------------------------------------------------------------- */

static char tmpdir[] = "/tmp/cairn-mf-XXXXXX";
static char rpc_ep[200], pub_ep[200];

struct fake_gossipd {
	struct loop *l;
	void *z;
	struct rpc_server *srv;
	void *xpub;
	struct fake_member members[8];
	size_t n;
	uint64_t seq;
	int snapshots; /* MEMBERS answered */
	struct member_feed *feed;
	struct rec rec;
};

static struct fake_gossipd G;

static enum rpc_disposition fake_handler(void *ctx, struct rpc_req *req)
{
	struct fake_gossipd *g = ctx;
	struct proto_msg m = proto_msg_make(PROTO_MEMBERS_REPLY);
	struct proto_member v[8];
	const char *k[8][2], *vals[8][2];
	size_t i;

	ck_assert_int_eq(req->msg.type, PROTO_MEMBERS);
	for (i = 0; i < g->n; i++)
		fill_proto(&v[i], &g->members[i], k[i], vals[i]);
	m.u.members_reply.seq = g->seq;
	m.u.members_reply.members.v = v;
	m.u.members_reply.members.n = g->n;
	g->snapshots++;
	(void)rpc_reply(req, &m);
	return RPC_DONE;
}

static void fake_bind(void)
{
	const char *eps[] = {rpc_ep, NULL};
	char err[128];

	G.srv = rpc_server_new(G.l, G.z, eps, fake_handler, &G, err, sizeof(err));
	ck_assert_msg(G.srv != NULL, "%s", err);
}

/* Publishes an event on the XPUB: kind 1 join .. 5 reap. */
static void fake_publish(uint64_t seq, uint64_t kind, const struct fake_member *fm)
{
	struct proto_msg ev = proto_msg_make(PROTO_MEMBER_EVENT);
	struct proto_member p;
	const char *k[2], *v[2];

	fill_proto(&p, fm, k, v);
	ev.u.member_event.seq = seq;
	ev.u.member_event.kind = kind;
	ev.u.member_event.members.v = &p;
	ev.u.member_event.members.n = 1;
	ck_assert_int_eq(rpc_publish(G.xpub, &ev), 0);
}

/* Waits (bounded) for the feed's subscription to reach the XPUB, so that
 * what we publish afterwards is delivered. */
static void wait_subscribed(void)
{
	uint8_t buf[16];
	int timeout = 5000;

	zmq_setsockopt(G.xpub, ZMQ_RCVTIMEO, &timeout, sizeof(timeout));
	ck_assert_int_ge(zmq_recv(G.xpub, buf, sizeof(buf), 0), 1);
	ck_assert_int_eq(buf[0], 1); /* subscribe */
}

typedef int (*pred_fn)(void);

static int64_t check_pred(struct loop *l, void *ctx)
{
	pred_fn p = (pred_fn)(uintptr_t)ctx;

	if (p())
		loop_stop(l);
	return 2;
}

static int64_t guard_fired(struct loop *l, void *ctx)
{
	*(int *)ctx = 1;
	loop_stop(l);
	return LOOP_TIMER_STOP;
}

/* Runs the loop until p() holds, at most 5 s. */
static void run_until(pred_fn p)
{
	int fired = 0;
	uint64_t t, guard;

	if (p())
		return;
	t = loop_timer_add(G.l, 1, check_pred, (void *)(uintptr_t)p);
	guard = loop_timer_add(G.l, 5000, guard_fired, &fired);
	while (!p() && !fired)
		loop_run(G.l);
	loop_timer_del(G.l, t);
	loop_timer_del(G.l, guard);
	ck_assert_msg(p(), "condition not reached in 5 s");
}

static void fake_setup(void)
{
	int zero = 0;

	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(rpc_ep, sizeof(rpc_ep), "ipc://%s/gossipd.sock", tmpdir);
	snprintf(pub_ep, sizeof(pub_ep), "ipc://%s/gossipd-events.sock", tmpdir);
	memset(&G, 0, sizeof(G));
	G.l = loop_new();
	G.z = zmq_ctx_new();
	G.xpub = zmq_socket(G.z, ZMQ_XPUB);
	zmq_setsockopt(G.xpub, ZMQ_LINGER, &zero, sizeof(zero));
	ck_assert_int_eq(zmq_bind(G.xpub, pub_ep), 0);
	G.members[0] = (struct fake_member){"alpha", "consul", 1};
	G.members[1] = (struct fake_member){"beta", "node", 1};
	G.n = 2;
	G.seq = 2;
}

static void fake_teardown(void)
{
	char path[300];

	member_feed_free(G.feed);
	rpc_server_free(G.srv);
	zmq_close(G.xpub);
	zmq_ctx_term(G.z);
	loop_free(G.l);
	snprintf(path, sizeof(path), "%s/gossipd.sock", tmpdir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/gossipd-events.sock", tmpdir);
	unlink(path);
	rmdir(tmpdir);
	strcpy(tmpdir, "/tmp/cairn-mf-XXXXXX");
}

static void start_feed(uint64_t resync_ms)
{
	struct member_feed_opts o = {.retry_ms = 10, .resync_ms = resync_ms, .timeout_ms = 1000};

	G.feed = member_feed_new(G.l, G.z, pub_ep, rpc_ep, &o, record, &G.rec);
	ck_assert_ptr_nonnull(G.feed);
}

static int is_synced(void)
{
	return member_feed_synced(G.feed);
}

static uint64_t want_seq;
static int seq_reached(void)
{
	return member_feed_seq(G.feed) == want_seq;
}

START_TEST(feed_snapshot_then_deltas)
{
	const struct member_feed_member *m;
	struct fake_member b = {"beta", "node", 4}, c = {"gamma", "consul", 1};

	fake_bind();
	start_feed(600000);
	wait_subscribed();
	run_until(is_synced);
	ck_assert_uint_eq(member_feed_seq(G.feed), 2);
	ck_assert_uint_eq(member_feed_count(G.feed), 2);
	ck_assert_int_eq(G.rec.added, 2);
	ck_assert_int_eq(G.rec.synced, 1);
	ck_assert_str_eq(member_feed_at(G.feed, 0)->name, "alpha");
	ck_assert_ptr_null(member_feed_at(G.feed, 2));

	fake_publish(3, 4, &b); /* beta failed */
	want_seq = 3;
	run_until(seq_reached);
	m = member_feed_find(G.feed, "beta");
	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(m->status, MEMBER_FEED_FAILED);
	ck_assert_int_eq(G.rec.updated, 1);
	ck_assert_int_eq(G.rec.last_old_status, 1);

	fake_publish(4, 1, &c); /* gamma joins */
	fake_publish(5, 5, &b); /* beta reaped */
	want_seq = 5;
	run_until(seq_reached);
	ck_assert_ptr_null(member_feed_find(G.feed, "beta"));
	ck_assert_ptr_nonnull(member_feed_find(G.feed, "gamma"));
	ck_assert_int_eq(G.rec.removed, 1);
	ck_assert_int_eq(G.rec.added, 3);
	ck_assert_int_eq(G.snapshots, 1); /* deltas only, no resync */
}
END_TEST

START_TEST(feed_gap_resyncs)
{
	struct fake_member d = {"delta", "node", 1};

	fake_bind();
	start_feed(600000);
	wait_subscribed();
	run_until(is_synced);
	/* gossipd moves on by two events; the feed only sees the second */
	G.members[2] = (struct fake_member){"gamma", "node", 1};
	G.members[3] = d;
	G.n = 4;
	G.seq = 4;
	fake_publish(4, 1, &d);
	want_seq = 4;
	run_until(seq_reached);
	ck_assert_int_eq(G.snapshots, 2);
	ck_assert_uint_eq(member_feed_count(G.feed), 4);
	ck_assert_ptr_nonnull(member_feed_find(G.feed, "gamma"));
	ck_assert_int_eq(G.rec.synced, 2);
}
END_TEST

START_TEST(feed_gossipd_restart_resyncs)
{
	struct fake_member a = {"alpha", "consul", 1};

	fake_bind();
	start_feed(600000);
	wait_subscribed();
	run_until(is_synced);
	/* gossipd restarted: its sequence starts again, beta is not known yet */
	G.n = 1;
	G.seq = 1;
	fake_publish(1, 1, &a);
	want_seq = 1;
	run_until(seq_reached);
	ck_assert_int_eq(G.snapshots, 2);
	ck_assert_uint_eq(member_feed_count(G.feed), 1);
	ck_assert_ptr_null(member_feed_find(G.feed, "beta"));
	ck_assert_int_eq(G.rec.removed, 1);
}
END_TEST

static int snapshot_served(void)
{
	return G.snapshots > 0 && member_feed_synced(G.feed);
}

START_TEST(feed_waits_for_gossipd)
{
	start_feed(600000); /* nobody answers yet */
	ck_assert(!member_feed_synced(G.feed));
	ck_assert_uint_eq(member_feed_count(G.feed), 0);
	fake_bind();
	run_until(snapshot_served);
	ck_assert_uint_eq(member_feed_count(G.feed), 2);
}
END_TEST

static int has_omega(void)
{
	return member_feed_find(G.feed, "omega") != NULL;
}

START_TEST(feed_periodic_resync)
{
	fake_bind();
	start_feed(20);
	run_until(is_synced);
	/* a change with no event at all (a quiet gossipd restart) */
	G.members[1] = (struct fake_member){"omega", "node", 1};
	G.seq = 0;
	run_until(has_omega);
	ck_assert_ptr_null(member_feed_find(G.feed, "beta"));
	ck_assert_uint_eq(member_feed_seq(G.feed), 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("member_feed");
	TCase *t = tcase_create("table");
	TCase *f = tcase_create("feed");

	tcase_add_test(t, table_diff_and_tags);
	suite_add_tcase(s, t);
	tcase_add_checked_fixture(f, fake_setup, fake_teardown);
	tcase_set_timeout(f, 30);
	tcase_add_test(f, feed_snapshot_then_deltas);
	tcase_add_test(f, feed_gap_resyncs);
	tcase_add_test(f, feed_gossipd_restart_resyncs);
	tcase_add_test(f, feed_waits_for_gossipd);
	tcase_add_test(f, feed_periodic_resync);
	suite_add_tcase(s, f);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
