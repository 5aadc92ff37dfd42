/* Direct KV reads from raftd's store (see kv_direct.h). */
#include "kv_direct.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "fsm.h"
#include "lease_pub.h"
#include "log.h"
#include "store.h"

/* After a failed open (no page, no store yet), wait this long before the
 * next attempt: a client agent without raftd pays one open a second. */
#define KV_DIRECT_RETRY_NS 1000000000ull

struct kv_direct {
	char *store_dir;
	char *lease_path;
	struct lease_view *view; /* NULL until opened */
	struct store *st;	 /* NULL until opened */
	uint64_t st_gen;	 /* raftd generation st was opened under */
	uint64_t retry_at_ns;	 /* no open attempt before then */
	uint64_t served;
	uint64_t fallbacks;
};

bool kv_direct_allowed(const struct proto_kv_get *g, const struct lease_info *info,
		       uint64_t now_ns)
{
	if (g->min_index > 0 || (g->dc && g->dc[0]) || info->generation == 0 ||
	    now_ns >= info->alive_until_ns)
		return false;
	switch (g->mode) {
	case 0: /* the leader's view, while its lease holds */
		return info->is_leader && now_ns < info->lease_until_ns;
	case 2: /* local state; ?max_stale may need the leader: RPC */
		return g->max_stale_ms == 0;
	default: /* ?consistent confirms leadership with a heartbeat round */
		return false;
	}
}

struct kv_direct *kv_direct_new(const char *store_dir, const char *lease_path)
{
	struct kv_direct *kd = calloc(1, sizeof(*kd));

	if (!kd)
		return NULL;
	kd->store_dir = strdup(store_dir);
	kd->lease_path = strdup(lease_path);
	if (!kd->store_dir || !kd->lease_path) {
		kv_direct_free(kd);
		return NULL;
	}
	return kd;
}

static void close_store(struct kv_direct *kd)
{
	store_close(kd->st);
	kd->st = NULL;
	kd->st_gen = 0;
}

void kv_direct_free(struct kv_direct *kd)
{
	if (!kd)
		return;
	close_store(kd);
	lease_view_close(kd->view);
	free(kd->store_dir);
	free(kd->lease_path);
	free(kd);
}

/* The page as it is now, opening it when needed. false: use the RPC. */
static bool read_page(struct kv_direct *kd, uint64_t now_ns, struct lease_info *out)
{
	if (!kd->view) {
		if (now_ns < kd->retry_at_ns)
			return false;
		if (lease_view_open(kd->lease_path, &kd->view) < 0) {
			kd->view = NULL;
			kd->retry_at_ns = now_ns + KV_DIRECT_RETRY_NS;
			return false;
		}
	}
	if (lease_view_read(kd->view, out) < 0)
		return false;
	if (now_ns >= out->alive_until_ns && now_ns >= kd->retry_at_ns) {
		/* raftd is gone or stopped; if it comes back with a new page
		 * file (run_dir recreated), only a fresh mapping sees it */
		lease_view_close(kd->view);
		kd->view = NULL;
		kd->retry_at_ns = now_ns + KV_DIRECT_RETRY_NS;
		close_store(kd);
	}
	return true;
}

/* The store opened under the page's generation. false: use the RPC. */
static bool ensure_store(struct kv_direct *kd, const struct lease_info *info, uint64_t now_ns)
{
	char err[256];
	int rc;

	if (kd->st && kd->st_gen == info->generation)
		return true;
	close_store(kd); /* raftd restarted: its store may be another file */
	if (now_ns < kd->retry_at_ns)
		return false;
	rc = store_open_readonly(kd->store_dir, &kd->st, err, sizeof(err));
	if (rc < 0) {
		kd->st = NULL;
		kd->retry_at_ns = now_ns + KV_DIRECT_RETRY_NS;
		log_debug("direct KV reads unavailable: %s", err);
		return false;
	}
	kd->st_gen = info->generation;
	return true;
}

int kv_direct_read(struct kv_direct *kd, const struct proto_kv_get *g, uint64_t now_ns,
		   struct arena *a, struct proto_msg *out)
{
	struct lease_info info;
	struct store_txn *txn;
	struct fsm_kv_answer ans;
	struct proto_kv_get_reply *r;
	const char *key = g->key ? g->key : "";
	int rc;

	if (!kd)
		return 0;
	if (!read_page(kd, now_ns, &info) || !kv_direct_allowed(g, &info, now_ns) ||
	    !ensure_store(kd, &info, now_ns))
		goto fallback;
	if (strlen(key) > STORE_KEY_MAX)
		goto fallback; /* raftd answers these with its own 400 */
	if (store_txn_begin(kd->st, false, &txn) < 0)
		goto fallback;
	if (g->keys_only)
		rc = fsm_kv_keys(txn, a, key, g->separator, &ans);
	else if (g->recurse)
		rc = fsm_kv_list(txn, a, key, &ans);
	else
		rc = fsm_kv_get(txn, a, key, &ans);
	store_txn_abort(txn);
	if (rc < 0)
		goto fallback;
	*out = proto_msg_make(PROTO_KV_GET_REPLY);
	r = &out->u.kv_get_reply;
	r->index = ans.index ? ans.index : 1;
	r->known_leader = info.known_leader;
	r->last_contact_ms = lease_info_last_contact_ms(&info, now_ns);
	r->entries.v = ans.entries;
	r->entries.n = ans.n_entries;
	r->keys.v = ans.keys;
	r->keys.n = ans.n_keys;
	kd->served++;
	return 1;
fallback:
	kd->fallbacks++;
	return 0;
}

uint64_t kv_direct_served(const struct kv_direct *kd) { return kd ? kd->served : 0; }

uint64_t kv_direct_fallbacks(const struct kv_direct *kd) { return kd ? kd->fallbacks : 0; }
