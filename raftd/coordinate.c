/* Network coordinates in the replicated state (see coordinate.h). */
#include "coordinate.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "arena.h"
#include "catalog.h"
#include "err.h"
#include "mp.h"
#include "store.h"
#include "vivaldi.h"

#define KEY_PREFIX "coord:"
#define KEY_PREFIX_LEN 6

/* "coord:" + the lower-cased name. Returns the key length or -EINVAL. */
static int coord_key(const char *node, char *out, size_t outlen)
{
	int n;

	if (outlen < KEY_PREFIX_LEN + 1)
		return -EINVAL;
	memcpy(out, KEY_PREFIX, KEY_PREFIX_LEN);
	n = fsm_node_key(node, out + KEY_PREFIX_LEN, outlen - KEY_PREFIX_LEN);
	return n < 0 ? n : n + KEY_PREFIX_LEN;
}

int coordinate_cmd_update(struct mp_writer *w, const struct proto_coord *v, size_t n,
			  const char **out_why)
{
	struct vivaldi_coord c;

	if (n == 0 || n > COORDINATE_BATCH_MAX) {
		*out_why = "Coordinate update needs 1 to 128 coordinates";
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!v[i].node || !*v[i].node) {
			*out_why = "Missing node name";
			return -EINVAL;
		}
		if (strlen(v[i].node) + KEY_PREFIX_LEN > STORE_KEY_MAX) {
			*out_why = "Node name too long";
			return -EINVAL;
		}
		if (vivaldi_coord_decode(v[i].coord.ptr, v[i].coord.len, &c) < 0) {
			*out_why = "Invalid coordinate";
			return -EINVAL;
		}
	}
	mp_writer_reset(w);
	mp_write_array(w, 2);
	mp_write_u64(w, COORDINATE_OP_UPDATE);
	mp_write_array(w, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		mp_write_array(w, 3);
		mp_write_str(w, v[i].node, strlen(v[i].node));
		mp_write_str(w, v[i].segment ? v[i].segment : "",
			     v[i].segment ? strlen(v[i].segment) : 0);
		mp_write_bin(w, v[i].coord.ptr, v[i].coord.len);
	}
	return 0;
}

static int bump_index(struct store_txn *txn, uint64_t index, fsm_change_fn change, void *ctx)
{
	uint64_t cur;
	int rc = store_get_u64(txn, STORE_INDEX, COORDINATE_WATCH_KEY, &cur);

	if (rc == 0 && index > cur)
		rc = store_put_u64(txn, STORE_INDEX, COORDINATE_WATCH_KEY, index);
	if (rc == 0 && change)
		change(ctx, FSM_SPACE_CATALOG, COORDINATE_WATCH_KEY, strlen(COORDINATE_WATCH_KEY));
	return rc;
}

int coordinate_apply_update(struct store_txn *txn, uint64_t index, struct mp_reader *r,
			    struct fsm_result *out, fsm_change_fn change, void *ctx)
{
	uint32_t n = mp_read_array(r);
	size_t stored = 0;
	int rc = 0;

	if (r->err) {
		out->code = CAIRN_E_PROTO;
		return 0;
	}
	for (uint32_t i = 0; i < n && rc == 0; i++) {
		struct mp_writer w;
		char name[STORE_KEY_MAX + 1], key[STORE_KEY_MAX + 1];
		size_t nlen, slen, clen;
		const char *node, *seg;
		const uint8_t *coord;
		struct vivaldi_coord c;
		struct store_val v;
		int klen;

		if (mp_read_array(r) != 3) {
			out->code = CAIRN_E_PROTO;
			return 0;
		}
		node = mp_read_str(r, &nlen);
		seg = mp_read_str(r, &slen);
		coord = mp_read_bin(r, &clen);
		if (r->err || !node || nlen + KEY_PREFIX_LEN > STORE_KEY_MAX ||
		    vivaldi_coord_decode(coord, clen, &c) < 0) {
			out->code = CAIRN_E_PROTO;
			return 0;
		}
		memcpy(name, node, nlen);
		name[nlen] = 0;
		/* CoordinateBatchUpdate: only nodes the catalog holds */
		klen = fsm_node_key(name, key, sizeof(key));
		if (klen < 0)
			continue;
		rc = store_get(txn, STORE_NODES, key, (size_t)klen, &v);
		if (rc == -ENOENT) {
			rc = 0;
			continue;
		}
		if (rc < 0)
			break;
		klen = coord_key(name, key, sizeof(key));
		if (klen < 0)
			continue;
		mp_writer_init(&w);
		mp_write_array(&w, 3);
		mp_write_str(&w, node, nlen);
		mp_write_str(&w, seg ? seg : "", seg ? slen : 0);
		mp_write_bin(&w, coord, clen);
		rc = w.err ? -ENOMEM : store_put(txn, STORE_INDEX, key, (size_t)klen, w.buf, w.len);
		mp_writer_close(&w);
		stored++;
	}
	if (rc == 0 && stored)
		rc = bump_index(txn, index, change, ctx);
	out->ok = rc == 0;
	return rc;
}

int coordinate_node_deleted(struct store_txn *txn, uint64_t index, const char *key, size_t klen,
			    fsm_change_fn change, void *ctx)
{
	char ck[STORE_KEY_MAX + 1];
	int rc;

	if (klen + KEY_PREFIX_LEN > STORE_KEY_MAX)
		return 0;
	memcpy(ck, KEY_PREFIX, KEY_PREFIX_LEN);
	memcpy(ck + KEY_PREFIX_LEN, key, klen);
	rc = store_del(txn, STORE_INDEX, ck, klen + KEY_PREFIX_LEN);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	return bump_index(txn, index, change, ctx);
}

/* Decodes a stored [node, segment, coord] into rec, strings in a. */
static int decode_row(struct store_val val, struct arena *a, struct proto_coord *rec)
{
	struct mp_reader r;
	size_t nlen, slen, clen;
	const char *node, *seg;
	const uint8_t *coord;
	uint8_t *copy;

	mp_reader_init(&r, val.ptr, val.len);
	if (mp_read_array(&r) != 3)
		return -EINVAL;
	node = mp_read_str(&r, &nlen);
	seg = mp_read_str(&r, &slen);
	coord = mp_read_bin(&r, &clen);
	if (r.err || !node || clen != VIVALDI_WIRE_LEN)
		return -EINVAL;
	memset(rec, 0, sizeof(*rec));
	rec->node = arena_strndup(a, node, nlen);
	rec->segment = seg ? arena_strndup(a, seg, slen) : "";
	rec->datacenter = NULL;
	copy = arena_alloc(a, clen);
	if (!rec->node || !rec->segment || !copy)
		return -ENOMEM;
	memcpy(copy, coord, clen);
	rec->coord.ptr = copy;
	rec->coord.len = clen;
	return 0;
}

struct list_ctx {
	struct arena *a;
	struct proto_coord *v;
	size_t n, cap;
	int err;
};

static int list_cb(void *ctx, struct store_val key, struct store_val val)
{
	struct list_ctx *l = ctx;
	int rc;

	(void)key;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct proto_coord *v = arena_alloc(l->a, cap * sizeof(*v));

		if (!v) {
			l->err = -ENOMEM;
			return 1;
		}
		if (l->n)
			memcpy(v, l->v, l->n * sizeof(*v));
		l->v = v;
		l->cap = cap;
	}
	rc = decode_row(val, l->a, &l->v[l->n]);
	if (rc == -ENOMEM) {
		l->err = rc;
		return 1;
	}
	if (rc == 0)
		l->n++;
	return 0; /* a damaged row is skipped, not fatal */
}

int coordinate_list(struct store_txn *txn, struct arena *a, const char *node,
		    struct proto_coord **out_v, size_t *out_n, uint64_t *out_index)
{
	struct list_ctx l = {.a = a};
	uint64_t index;
	int rc = store_get_u64(txn, STORE_INDEX, COORDINATE_WATCH_KEY, &index);

	if (rc < 0)
		return rc;
	if (node && *node) {
		char key[STORE_KEY_MAX + 1];
		struct store_val v;
		int klen = coord_key(node, key, sizeof(key));

		rc = klen < 0 ? -ENOENT : store_get(txn, STORE_INDEX, key, (size_t)klen, &v);
		if (rc == 0)
			(void)list_cb(&l, (struct store_val){key, (size_t)klen}, v);
		else if (rc != -ENOENT)
			return rc;
	} else {
		rc = store_scan_prefix(txn, STORE_INDEX, KEY_PREFIX, KEY_PREFIX_LEN, list_cb, &l);
		if (rc < 0)
			return rc;
	}
	if (l.err)
		return l.err;
	*out_v = l.v;
	*out_n = l.n;
	*out_index = index;
	return 0;
}

int coordinate_get(struct store_txn *txn, const char *node, struct vivaldi_coord *out)
{
	char key[STORE_KEY_MAX + 1];
	struct store_val v;
	struct mp_reader r;
	const uint8_t *coord;
	size_t clen;
	int klen = coord_key(node, key, sizeof(key));
	int rc;

	if (klen < 0)
		return -ENOENT;
	rc = store_get(txn, STORE_INDEX, key, (size_t)klen, &v);
	if (rc < 0)
		return rc;
	mp_reader_init(&r, v.ptr, v.len);
	if (mp_read_array(&r) != 3)
		return -ENOENT;
	(void)mp_read_str(&r, &clen); /* node */
	(void)mp_read_str(&r, &clen); /* segment */
	coord = mp_read_bin(&r, &clen);
	if (r.err || vivaldi_coord_decode(coord, clen, out) < 0)
		return -ENOENT;
	return 0;
}

/* ---- ?near= ------------------------------------------------------------ */

struct rank {
	size_t idx;  /* position in the answer */
	double dist; /* seconds; INFINITY without a coordinate */
};

static int rank_cmp(const void *a, const void *b)
{
	const struct rank *x = a, *y = b;

	if (x->dist != y->dist)
		return x->dist < y->dist ? -1 : 1; /* INFINITY compares greater */
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Sorts n items of size sz in v by the distance of node_of(item). */
static int sort_items(struct arena *a, void *v, size_t n, size_t sz,
		      const char *(*node_of)(const void *item), coordinate_dist_fn dist, void *ctx)
{
	struct rank *rk;
	uint8_t *copy;

	if (n < 2)
		return 0;
	rk = arena_alloc(a, n * sizeof(*rk));
	copy = arena_alloc(a, n * sz);
	if (!rk || !copy)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		rk[i].idx = i;
		rk[i].dist = dist(ctx, node_of((const uint8_t *)v + i * sz));
		if (isnan(rk[i].dist))
			rk[i].dist = INFINITY;
	}
	qsort(rk, n, sizeof(*rk), rank_cmp);
	memcpy(copy, v, n * sz);
	for (size_t i = 0; i < n; i++)
		memcpy((uint8_t *)v + i * sz, copy + rk[i].idx * sz, sz);
	return 0;
}

static const char *node_of_node(const void *p) { return ((const struct proto_node *)p)->node; }
static const char *node_of_service(const void *p)
{
	return ((const struct proto_service *)p)->node;
}
static const char *node_of_check(const void *p) { return ((const struct proto_check *)p)->node; }

/* The end of instance s's check group starting at k: its service's
 * checks, then its node's in check ID order (raftd's health view; apid's
 * catalog_api_check_group reads it the same way). */
static size_t check_group_end(const struct catalog_answer *ans, size_t k,
			      const struct proto_service *s)
{
	const char *last_node_check = NULL;

	for (; k < ans->n_checks; k++) {
		const struct proto_check *ck = &ans->checks[k];

		if (strcasecmp(ck->node, s->node) != 0)
			break;
		if (ck->service_id && *ck->service_id) {
			if (last_node_check || strcmp(ck->service_id, s->id) != 0)
				break;
		} else {
			if (last_node_check && strcmp(ck->check_id, last_node_check) <= 0)
				break;
			last_node_check = ck->check_id;
		}
	}
	return k;
}

/* Health service: instances move with their check groups. */
static int sort_health_service(struct arena *a, struct catalog_answer *ans,
			       coordinate_dist_fn dist, void *ctx)
{
	size_t n = ans->n_services, k = 0, *start, *end;
	struct rank *rk;
	struct proto_service *svcs;
	struct proto_check *chks;

	if (n < 2)
		return 0;
	rk = arena_alloc(a, n * sizeof(*rk));
	start = arena_alloc(a, n * sizeof(*start));
	end = arena_alloc(a, n * sizeof(*end));
	svcs = arena_alloc(a, n * sizeof(*svcs));
	chks = arena_alloc(a, (ans->n_checks ? ans->n_checks : 1) * sizeof(*chks));
	if (!rk || !start || !end || !svcs || !chks)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		start[i] = k;
		k = end[i] = check_group_end(ans, k, &ans->services[i]);
		rk[i].idx = i;
		rk[i].dist = dist(ctx, ans->services[i].node);
		if (isnan(rk[i].dist))
			rk[i].dist = INFINITY;
	}
	qsort(rk, n, sizeof(*rk), rank_cmp);
	k = 0;
	for (size_t i = 0; i < n; i++) {
		size_t j = rk[i].idx;

		svcs[i] = ans->services[j];
		memcpy(chks + k, ans->checks + start[j], (end[j] - start[j]) * sizeof(*chks));
		k += end[j] - start[j];
	}
	/* checks after the last group (none expected) stay at the end */
	if (ans->n_checks > k)
		memcpy(chks + k, ans->checks + k, (ans->n_checks - k) * sizeof(*chks));
	memcpy(ans->services, svcs, n * sizeof(*svcs));
	if (ans->n_checks)
		memcpy(ans->checks, chks, ans->n_checks * sizeof(*chks));
	return 0;
}

int coordinate_sort_answer(struct arena *a, unsigned view, struct catalog_answer *ans,
			   coordinate_dist_fn dist, void *ctx)
{
	switch (view) {
	case CATALOG_VIEW_NODES:
		return sort_items(a, ans->nodes, ans->n_nodes, sizeof(*ans->nodes), node_of_node,
				  dist, ctx);
	case CATALOG_VIEW_SERVICE:
		return sort_items(a, ans->services, ans->n_services, sizeof(*ans->services),
				  node_of_service, dist, ctx);
	case CATALOG_VIEW_HEALTH_SERVICE:
		return sort_health_service(a, ans, dist, ctx);
	case CATALOG_VIEW_HEALTH_CHECKS:
	case CATALOG_VIEW_HEALTH_STATE:
		return sort_items(a, ans->checks, ans->n_checks, sizeof(*ans->checks),
				  node_of_check, dist, ctx);
	default:
		return 0;
	}
}
