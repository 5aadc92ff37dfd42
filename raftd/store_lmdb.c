/* raftd's durable store on LMDB: one environment, one named DB per table.
 *
 * Durability: the environment is opened without MDB_NOSYNC/MDB_NOMETASYNC,
 * so mdb_txn_commit fsyncs before returning. MDB_NOTLS lets the single loop
 * thread hold a read snapshot while a write transaction is open. One read
 * transaction handle is kept and renewed (mdb_txn_reset/renew) so reads do
 * not allocate. */
#include "store.h"

#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"

struct store_txn {
	struct store *st;
	MDB_txn *txn;
	bool write;
	bool cached; /* the store's reusable read handle */
	bool in_use;
	bool nested; /* inside the write transaction (store_txn_begin_nested) */
};

struct store {
	MDB_env *env;
	MDB_dbi dbi[STORE_N_TABLES];
	uint64_t map_size;
	uint64_t commits;
	bool write_open;
	struct store_txn wtxn;
	struct store_txn rtxn; /* cached read transaction (reset when idle) */
	struct store_txn ntxn; /* the nested write transaction, while open */
	char errmsg[160];
};

static const char *const table_names[STORE_N_TABLES] = {
    [STORE_META] = "meta",
    [STORE_LOG] = "log",
    [STORE_KV] = "kv",
    [STORE_KV_TOMB] = "kv_tombstones",
    [STORE_NODES] = "catalog_nodes",
    [STORE_INDEX] = "index",
    [STORE_SERVICES] = "catalog_services",
    [STORE_CHECKS] = "catalog_checks",
    [STORE_SVC_NAMES] = "catalog_service_names",
    [STORE_SESSIONS] = "sessions",
};

/* Translates an LMDB return code, remembering its text. */
static int map_rc(struct store *st, int rc, const char *what)
{
	switch (rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_MAP_FULL:
		snprintf(st->errmsg, sizeof(st->errmsg), "%s: %s", what, mdb_strerror(rc));
		return -ENOSPC;
	case MDB_BAD_VALSIZE:
		snprintf(st->errmsg, sizeof(st->errmsg), "%s: %s", what, mdb_strerror(rc));
		return -EINVAL;
	default:
		snprintf(st->errmsg, sizeof(st->errmsg), "%s: %s", what, mdb_strerror(rc));
		return CAIRN_E_STORE;
	}
}

const char *store_errmsg(const struct store *st) { return st->errmsg; }

uint64_t store_commits(const struct store *st) { return st->commits; }

int store_open(const char *dir, uint64_t map_size, struct store **out_st, char *err, size_t errlen)
{
	struct store *st;
	MDB_txn *txn = NULL;
	int rc;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		rc = -errno;
		snprintf(err, errlen, "mkdir %s: %s", dir, strerror(errno));
		return rc;
	}
	st = calloc(1, sizeof(*st));
	if (!st) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	st->map_size = map_size ? map_size : STORE_MAP_SIZE_DEFAULT;
	rc = mdb_env_create(&st->env);
	if (rc) {
		st->env = NULL;
		goto fail_lmdb;
	}
	rc = mdb_env_set_maxdbs(st->env, STORE_N_TABLES + 2);
	if (rc)
		goto fail_lmdb;
	rc = mdb_env_set_mapsize(st->env, (size_t)st->map_size);
	if (rc)
		goto fail_lmdb;
	rc = mdb_env_open(st->env, dir, MDB_NOTLS, 0600);
	if (rc)
		goto fail_lmdb;
	if (mdb_env_get_maxkeysize(st->env) < STORE_KEY_MAX) {
		snprintf(err, errlen, "LMDB max key size %d is below %d",
			 mdb_env_get_maxkeysize(st->env), STORE_KEY_MAX);
		rc = CAIRN_E_STORE;
		goto fail;
	}
	/* A process killed with -9 leaves its reader slot behind, which would
	 * pin old pages forever: clear slots of dead processes. */
	int dead = 0;
	rc = mdb_reader_check(st->env, &dead);
	if (rc)
		goto fail_lmdb;
	rc = mdb_txn_begin(st->env, NULL, 0, &txn);
	if (rc)
		goto fail_lmdb;
	for (int i = 0; i < STORE_N_TABLES; i++) {
		rc = mdb_dbi_open(txn, table_names[i], MDB_CREATE, &st->dbi[i]);
		if (rc)
			goto fail_lmdb;
	}
	rc = mdb_txn_commit(txn);
	txn = NULL;
	if (rc)
		goto fail_lmdb;
	st->wtxn.st = st;
	st->wtxn.write = true;
	st->rtxn.st = st;
	st->rtxn.cached = true;
	*out_st = st;
	return 0;

fail_lmdb:
	snprintf(err, errlen, "LMDB in %s: %s", dir, mdb_strerror(rc));
	rc = CAIRN_E_STORE;
fail:
	if (txn)
		mdb_txn_abort(txn);
	if (st->env)
		mdb_env_close(st->env);
	free(st);
	return rc;
}

int store_open_readonly(const char *dir, struct store **out_st, char *err, size_t errlen)
{
	struct store *st;
	MDB_txn *txn = NULL;
	int rc;

	st = calloc(1, sizeof(*st));
	if (!st) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	rc = mdb_env_create(&st->env);
	if (rc) {
		st->env = NULL;
		goto fail;
	}
	/* no map size: LMDB takes the one the writer recorded in the file */
	rc = mdb_env_set_maxdbs(st->env, STORE_N_TABLES + 2);
	if (!rc)
		rc = mdb_env_open(st->env, dir, MDB_RDONLY | MDB_NOTLS, 0600);
	if (!rc)
		rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
	for (int i = 0; !rc && i < STORE_N_TABLES; i++)
		rc = mdb_dbi_open(txn, table_names[i], 0, &st->dbi[i]);
	if (!rc) {
		rc = mdb_txn_commit(txn); /* keeps the table handles */
		txn = NULL;
	}
	if (rc)
		goto fail;
	st->wtxn.st = st;
	st->wtxn.write = true;
	st->rtxn.st = st;
	st->rtxn.cached = true;
	*out_st = st;
	return 0;
fail:
	snprintf(err, errlen, "LMDB in %s (read-only): %s", dir, mdb_strerror(rc));
	if (txn)
		mdb_txn_abort(txn);
	if (st->env)
		mdb_env_close(st->env);
	free(st);
	return rc == ENOENT ? -ENOENT : CAIRN_E_STORE;
}

int store_reader_check(struct store *st, int *out_dead)
{
	int dead = 0, rc = mdb_reader_check(st->env, &dead);

	if (out_dead)
		*out_dead = dead;
	return map_rc(st, rc, "reader check");
}

void store_close(struct store *st)
{
	if (!st)
		return;
	if (st->rtxn.txn)
		mdb_txn_abort(st->rtxn.txn);
	if (st->env) {
		/* Make sure everything committed is on disk even if a commit's
		 * fsync was skipped by the OS (it is not, but this is cheap). */
		(void)mdb_env_sync(st->env, 1);
		mdb_env_close(st->env);
	}
	free(st);
}

/* The map size store_reserve wants for bytes more, 0 on failure. */
static uint64_t wanted_size(struct store *st, size_t bytes)
{
	MDB_envinfo info;
	MDB_stat stat;

	if (mdb_env_info(st->env, &info) || mdb_env_stat(st->env, &stat))
		return 0;
	return ((uint64_t)info.me_last_pgno + 1) * stat.ms_psize + 2 * (uint64_t)bytes +
	       (64ull << 20);
}

bool store_reserve_needed(struct store *st, size_t bytes)
{
	return wanted_size(st, bytes) > st->map_size;
}

int store_txn_begin_reader(struct store *st, struct store_txn **out_txn)
{
	struct store_txn *t = calloc(1, sizeof(*t));
	int rc;

	if (!t)
		return -ENOMEM;
	t->st = st;
	rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &t->txn);
	if (rc) {
		free(t);
		return rc == MDB_NOTFOUND ? -ENOENT : CAIRN_E_STORE;
	}
	t->in_use = true;
	*out_txn = t;
	return 0;
}

int store_reserve(struct store *st, size_t bytes)
{
	MDB_envinfo info;
	MDB_stat stat;
	uint64_t used, want, size;
	int rc;

	rc = mdb_env_info(st->env, &info);
	if (!rc)
		rc = mdb_env_stat(st->env, &stat);
	if (rc)
		return map_rc(st, rc, "env info");
	used = ((uint64_t)info.me_last_pgno + 1) * stat.ms_psize;
	/* Copy-on-write can touch about twice the data written, plus branch
	 * pages and freelist churn: keep generous headroom. */
	want = used + 2 * (uint64_t)bytes + (64ull << 20);
	if (want <= st->map_size)
		return 0;
	size = st->map_size;
	while (size < want)
		size *= 2;
	rc = mdb_env_set_mapsize(st->env, (size_t)size);
	if (rc)
		return map_rc(st, rc, "grow map");
	st->map_size = size;
	return 0;
}

int store_txn_begin(struct store *st, bool write, struct store_txn **out_txn)
{
	struct store_txn *t;
	int rc;

	if (write) {
		if (st->write_open)
			return -EBUSY;
		rc = mdb_txn_begin(st->env, NULL, 0, &st->wtxn.txn);
		if (rc)
			return map_rc(st, rc, "begin write");
		st->write_open = true;
		*out_txn = &st->wtxn;
		return 0;
	}
	if (!st->rtxn.in_use) {
		t = &st->rtxn;
		if (t->txn)
			rc = mdb_txn_renew(t->txn);
		else
			rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &t->txn);
		if (rc == MDB_MAP_RESIZED && !st->write_open) {
			/* another process (raftd, for store_open_readonly's
			 * readers) grew the map: adopt its size and retry */
			if (t->txn)
				mdb_txn_abort(t->txn);
			t->txn = NULL;
			rc = mdb_env_set_mapsize(st->env, 0);
			if (!rc)
				rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &t->txn);
		}
		if (rc)
			return map_rc(st, rc, "begin read");
		t->in_use = true;
		*out_txn = t;
		return 0;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->st = st;
	rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &t->txn);
	if (rc) {
		free(t);
		return map_rc(st, rc, "begin read");
	}
	t->in_use = true;
	*out_txn = t;
	return 0;
}

int store_txn_begin_nested(struct store_txn *parent, struct store_txn **out_txn)
{
	struct store *st = parent->st;
	int rc;

	if (!parent->write || parent->nested)
		return -EINVAL;
	if (st->ntxn.in_use)
		return -EBUSY;
	rc = mdb_txn_begin(st->env, parent->txn, 0, &st->ntxn.txn);
	if (rc)
		return map_rc(st, rc, "begin nested");
	st->ntxn.st = st;
	st->ntxn.write = true;
	st->ntxn.nested = true;
	st->ntxn.in_use = true;
	*out_txn = &st->ntxn;
	return 0;
}

static void txn_end(struct store_txn *t)
{
	struct store *st = t->st;

	if (t->nested) {
		t->txn = NULL;
		t->in_use = false;
	} else if (t->write) {
		t->txn = NULL;
		st->write_open = false;
	} else if (t->cached) {
		t->in_use = false;
	} else {
		free(t);
	}
}

int store_txn_commit(struct store_txn *t)
{
	struct store *st = t->st;
	int rc;

	if (!t->write) {
		mdb_txn_reset(t->txn);
		if (!t->cached)
			mdb_txn_abort(t->txn);
		txn_end(t);
		return 0;
	}
	rc = mdb_txn_commit(t->txn);
	bool nested = t->nested;
	txn_end(t);
	if (rc)
		return map_rc(st, rc, "commit");
	if (!nested)
		st->commits++;
	return 0;
}

void store_txn_abort(struct store_txn *t)
{
	if (!t)
		return;
	if (t->write || !t->cached)
		mdb_txn_abort(t->txn);
	else
		mdb_txn_reset(t->txn);
	txn_end(t);
}

int store_get(struct store_txn *t, enum store_table tb, const void *key, size_t klen,
	      struct store_val *out)
{
	MDB_val k = {klen, (void *)key}, v;
	int rc;

	if (klen == 0 || klen > STORE_KEY_MAX)
		return -ENOENT;
	rc = mdb_get(t->txn, t->st->dbi[tb], &k, &v);
	if (rc)
		return map_rc(t->st, rc, "get");
	out->ptr = v.mv_data;
	out->len = v.mv_size;
	return 0;
}

int store_put(struct store_txn *t, enum store_table tb, const void *key, size_t klen,
	      const void *val, size_t vlen)
{
	MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};

	if (klen == 0 || klen > STORE_KEY_MAX)
		return -EINVAL;
	return map_rc(t->st, mdb_put(t->txn, t->st->dbi[tb], &k, &v, 0), "put");
}

int store_del(struct store_txn *t, enum store_table tb, const void *key, size_t klen)
{
	MDB_val k = {klen, (void *)key};

	if (klen == 0 || klen > STORE_KEY_MAX)
		return -ENOENT;
	return map_rc(t->st, mdb_del(t->txn, t->st->dbi[tb], &k, NULL), "del");
}

int store_clear(struct store_txn *t, enum store_table tb)
{
	return map_rc(t->st, mdb_drop(t->txn, t->st->dbi[tb], 0), "clear");
}

/* Walks entries from `from` on; with want_prefix, stops at the first key
 * that does not start with it. */
static int scan(struct store_txn *t, enum store_table tb, const void *from, size_t flen,
		bool want_prefix, store_scan_fn fn, void *ctx)
{
	MDB_cursor *cur = NULL;
	MDB_val k = {flen, (void *)from}, v;
	int rc;

	if (flen > STORE_KEY_MAX)
		return 0; /* no key can be that long */
	rc = mdb_cursor_open(t->txn, t->st->dbi[tb], &cur);
	if (rc)
		return map_rc(t->st, rc, "cursor");
	rc = mdb_cursor_get(cur, &k, &v, flen ? MDB_SET_RANGE : MDB_FIRST);
	while (rc == 0) {
		if (want_prefix && flen && (k.mv_size < flen || memcmp(k.mv_data, from, flen) != 0))
			break;
		struct store_val sk = {k.mv_data, k.mv_size}, sv = {v.mv_data, v.mv_size};
		int r = fn(ctx, sk, sv);
		if (r != 0) {
			mdb_cursor_close(cur);
			return r < 0 ? r : 0;
		}
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	if (rc && rc != MDB_NOTFOUND)
		return map_rc(t->st, rc, "cursor next");
	return 0;
}

int store_scan_prefix(struct store_txn *t, enum store_table tb, const void *prefix, size_t plen,
		      store_scan_fn fn, void *ctx)
{
	return scan(t, tb, prefix, plen, true, fn, ctx);
}

int store_scan_from(struct store_txn *t, enum store_table tb, const void *from, size_t flen,
		    store_scan_fn fn, void *ctx)
{
	return scan(t, tb, from, flen, false, fn, ctx);
}

int store_last(struct store_txn *t, enum store_table tb, struct store_val *out_key,
	       struct store_val *out_val)
{
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	int rc;

	rc = mdb_cursor_open(t->txn, t->st->dbi[tb], &cur);
	if (rc)
		return map_rc(t->st, rc, "cursor");
	rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
	mdb_cursor_close(cur);
	if (rc)
		return map_rc(t->st, rc, "cursor last");
	out_key->ptr = k.mv_data;
	out_key->len = k.mv_size;
	out_val->ptr = v.mv_data;
	out_val->len = v.mv_size;
	return 0;
}

void store_u64_to_be(uint64_t v, uint8_t out[8])
{
	for (int i = 0; i < 8; i++)
		out[i] = (uint8_t)(v >> (56 - 8 * i));
}

int store_be_to_u64(struct store_val v, uint64_t *out)
{
	const uint8_t *p = v.ptr;
	uint64_t x = 0;

	if (v.len != 8)
		return -EINVAL;
	for (int i = 0; i < 8; i++)
		x = (x << 8) | p[i];
	*out = x;
	return 0;
}

int store_get_u64(struct store_txn *t, enum store_table tb, const char *key, uint64_t *out)
{
	struct store_val v;
	int rc = store_get(t, tb, key, strlen(key), &v);

	if (rc == -ENOENT) {
		*out = 0;
		return 0;
	}
	if (rc)
		return rc;
	return store_be_to_u64(v, out);
}

int store_put_u64(struct store_txn *t, enum store_table tb, const char *key, uint64_t v)
{
	uint8_t b[8];

	store_u64_to_be(v, b);
	return store_put(t, tb, key, strlen(key), b, sizeof(b));
}
