/* Fuzz target for the state machine's command decoder: any bytes as a
 * committed log entry's payload, applied with fsm_apply() on a store that
 * already holds keys, tombstones and a node, then read back through every
 * fsm read. Invariants: no crash; a rejected command leaves no trace; what
 * an accepted command wrote is readable.
 *
 * Built with -fsanitize=fuzzer it is a libFuzzer binary; linked with
 * tests/fuzz/replay_main.c it runs every file of the directories
 * (or files) named on the command line, so the corpus is replayed by
 * `meson test --suite fuzz` on every build. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arena.h"
#include "fsm.h"
#include "mp.h"
#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct store *st;
static char dir[128];

static void cleanup(void)
{
	char path[256];

	store_close(st);
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	(void)unlink(path);
	snprintf(path, sizeof(path), "%s/lock.mdb", dir);
	(void)unlink(path);
	(void)rmdir(dir);
}

static void seed(void)
{
	static const char *tk[] = {"lan"}, *tv[] = {"10.0.0.1"};
	struct proto_node n = {.node = "web", .address = "10.0.0.1", .datacenter = "dc1"};
	struct store_txn *txn;
	struct mp_writer w;
	struct fsm_result r;
	char err[256];

	snprintf(dir, sizeof(dir), "/tmp/cairn-fuzz-fsm-XXXXXX");
	if (!mkdtemp(dir) || store_open(dir, 256ull << 20, &st, err, sizeof(err)) < 0)
		abort();
	atexit(cleanup);
	n.tagged_addresses.keys = tk;
	n.tagged_addresses.vals = tv;
	n.tagged_addresses.n = 1;
	mp_writer_init(&w);
	if (store_txn_begin(st, true, &txn) < 0)
		abort();
	fsm_cmd_kv_set(&w, "a/b", (const uint8_t *)"v", 1, 1, false, 0);
	(void)fsm_apply(txn, 2, w.buf, w.len, &r, NULL, NULL);
	fsm_cmd_kv_set(&w, "a/c/d", NULL, 0, 0, false, 0);
	(void)fsm_apply(txn, 3, w.buf, w.len, &r, NULL, NULL);
	fsm_cmd_kv_delete(&w, "a/c/d", false, false, 0);
	(void)fsm_apply(txn, 4, w.buf, w.len, &r, NULL, NULL);
	fsm_cmd_node_register(&w, &n);
	(void)fsm_apply(txn, 5, w.buf, w.len, &r, NULL, NULL);
	if (store_txn_commit(txn) < 0)
		abort();
	mp_writer_close(&w);
}

static size_t changes;

static void on_change(void *ctx, enum fsm_space space, const char *key, size_t klen)
{
	(void)ctx;
	(void)space;
	(void)key;
	(void)klen;
	changes++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct store_txn *txn;
	struct fsm_result r;
	struct fsm_kv_answer a;
	struct proto_node *node;
	struct arena ar;
	uint64_t idx;

	if (!st)
		seed();
	if (store_txn_begin(st, true, &txn) < 0)
		abort();
	changes = 0;
	if (fsm_apply(txn, 10, data, size, &r, on_change, NULL) < 0)
		abort(); /* only a store failure may fail, and the store is fine */
	if (r.code != 0 && (r.ok || changes))
		abort(); /* rejected commands change nothing */
	arena_init(&ar, 0);
	/* Everything written must read back. */
	if (fsm_kv_list(txn, &ar, "", &a) < 0 || a.index == 0)
		abort();
	for (size_t i = 0; i < a.n_entries; i++)
		if (a.entries[i].modify_index > 10)
			abort();
	if (fsm_kv_keys(txn, &ar, "a", "/", &a) < 0 || a.index == 0)
		abort();
	if (fsm_node_get(txn, &ar, "web", &node, &idx) < 0 || idx == 0)
		abort();
	arena_close(&ar);
	store_txn_abort(txn); /* keep the seeded state for the next input */
	return 0;
}
