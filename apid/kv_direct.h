/* Direct KV reads: apid answers plain KV GETs from raftd's LMDB environment
 * (opened read-only) instead of asking raftd over the RPC.
 *
 * raftd stays the only writer and owner of the state. It publishes its
 * leadership, read lease and last contact in a mmap'd page (lease_pub.h);
 * a read is served here only when the page allows it:
 *
 *   - default mode: this server is the leader and its lease holds (the same
 *     condition raftd applies before answering a default read itself);
 *   - ?stale without ?max_stale: raftd is alive (refreshed its page within
 *     LEASE_PUB_ALIVE_MS), as raftd answers ?stale from its local state;
 *   - never: ?consistent, blocking queries (?index=), ?max_stale, another
 *     datacenter. Those, and every read the page does not allow (raftd
 *     stopped, killed, not leader, no lease, page or store missing), go
 *     through the RPC exactly as before.
 *
 * The answer is the same PROTO_KV_GET_REPLY raftd would send (the same
 * fsm_kv_get/list/keys on the same LMDB snapshot; index never 0;
 * KnownLeader and LastContact from the page), and routes_finish renders
 * it, so bodies and headers are identical on both paths. */
#ifndef CAIRN_APID_KV_DIRECT_H
#define CAIRN_APID_KV_DIRECT_H

#include <stdbool.h>
#include <stdint.h>

#include "proto.h"

struct arena;
struct lease_info;
struct kv_direct;

/* Whether a read g may be served directly under the page info at now_ns
 * (pure; see the rules above). */
bool kv_direct_allowed(const struct proto_kv_get *g, const struct lease_info *info,
		       uint64_t now_ns);

/* A reader of the store in store_dir (<data_dir>/raft) with the lease page
 * at lease_path (<run_dir>/raftd.lease). Opens nothing yet: both are
 * opened on first use and reopened when raftd's generation changes. NULL
 * when out of memory. */
struct kv_direct *kv_direct_new(const char *store_dir, const char *lease_path);

/* Frees everything. NULL is fine. */
void kv_direct_free(struct kv_direct *kd);

/* Answers g from the store when allowed at now_ns: returns 1 with *out a
 * PROTO_KV_GET_REPLY whose entries and keys live in a; 0 when the read
 * must go through the RPC (not allowed, store or page unavailable, any
 * read error). Never fails otherwise. */
int kv_direct_read(struct kv_direct *kd, const struct proto_kv_get *g, uint64_t now_ns,
		   struct arena *a, struct proto_msg *out);

/* Reads answered directly and fallbacks to the RPC so far (logs, tests). */
uint64_t kv_direct_served(const struct kv_direct *kd);
uint64_t kv_direct_fallbacks(const struct kv_direct *kd);

#endif
