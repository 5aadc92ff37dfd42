/* raftd's published read lease: a small mmap'd page other processes read.
 *
 * raftd is the only writer and owner of the state; the page only tells
 * readers in other processes (cairn-apid's direct KV reads, kv_direct.h)
 * whether raftd's LMDB environment may be read directly, and with what
 * X-Consul-KnownLeader / X-Consul-LastContact:
 *
 *   - lease_until_ns: default-mode reads may be served from the local store
 *     until then (CLOCK_MONOTONIC ns). Non-zero only on a leader whose Raft
 *     lease holds (raft_lease_valid: no other leader can exist before it
 *     ends) and whose state shows everything committed; never later than
 *     alive_until_ns.
 *   - alive_until_ns: raftd refreshes the page several times a second and
 *     promises to do so until then; a stopped or killed raftd thus stops
 *     direct reads within LEASE_PUB_ALIVE_MS, and readers fall back to the
 *     RPC (which then answers 500 as before).
 *   - generation: random per raftd start (and bumped when the store is
 *     replaced); a reader reopens the environment when it changes.
 *
 * The page is a seqlock: the writer makes seq odd, writes the fields, and
 * makes it even again; a reader retries while seq is odd or changed. All
 * times are CLOCK_MONOTONIC, which every process on the host shares.
 *
 * The page functions (lease_page_*) are pure and work on any 64-byte
 * aligned buffer of LEASE_PAGE_SIZE bytes, so tests need no file. */
#ifndef CAIRN_RAFTD_LEASE_PUB_H
#define CAIRN_RAFTD_LEASE_PUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LEASE_PAGE_SIZE 4096u
#define LEASE_PAGE_MAGIC 0x4c4e5243u /* "CRNL" */
#define LEASE_PAGE_VERSION 1u
/* raftd promises a refresh within this long (and refreshes 4x as often). */
#define LEASE_PUB_ALIVE_MS 1000u
#define LEASE_PUB_REFRESH_MS 250u
/* The page's file name in run_dir. */
#define LEASE_PUB_FILE "raftd.lease"

/* What the page says. */
struct lease_info {
	uint64_t generation;	 /* store generation; 0 means "no store published" */
	uint64_t pid;		 /* raftd's pid (diagnostics) */
	bool is_leader;		 /* this server is the Raft leader */
	bool known_leader;	 /* a leader is known (X-Consul-KnownLeader) */
	bool contact_unknown;	 /* never heard from a leader (LastContact max) */
	uint64_t alive_until_ns; /* raftd alive (refreshes) until then */
	uint64_t lease_until_ns; /* default-mode reads served locally until then */
	uint64_t contact_at_ns;	 /* when the leader was last heard (leader: now) */
	uint64_t applied_index;	 /* last applied Raft index (diagnostics) */
};

/* Writes info into page (LEASE_PAGE_SIZE bytes, 8-byte aligned) under the
 * seqlock. Single writer. */
void lease_page_write(void *page, const struct lease_info *info);

/* Reads page into *out. Returns 0, -EAGAIN when a write was in progress
 * every time it looked (bounded retries), or -EINVAL when the page is not
 * a lease page of this version. */
int lease_page_read(const void *page, struct lease_info *out);

/* X-Consul-LastContact in ms for info at now_ns, as raftd would answer. */
uint64_t lease_info_last_contact_ms(const struct lease_info *info, uint64_t now_ns);

/* CLOCK_MONOTONIC in ns. */
uint64_t lease_now_ns(void);

/* ---- the writer (raftd) -------------------------------------------------- */

struct lease_pub;

/* Creates (or truncates) the page file at path, maps it and writes an
 * empty page (no lease). Returns 0 and *out, or a negative errno. */
int lease_pub_open(const char *path, struct lease_pub **out);

/* Publishes info (a copy is kept; lease_pub_changed compares with it). */
void lease_pub_set(struct lease_pub *p, const struct lease_info *info);

/* The last info published. */
const struct lease_info *lease_pub_last(const struct lease_pub *p);

/* Withdraws the lease (alive and lease 0), unmaps and closes; the file
 * stays. NULL is fine. */
void lease_pub_close(struct lease_pub *p);

/* ---- the reader (apid) --------------------------------------------------- */

struct lease_view;

/* Maps the page file at path read-only. Returns 0 and *out, or a negative
 * errno (-ENOENT: raftd never ran here). */
int lease_view_open(const char *path, struct lease_view **out);

/* Reads the current page. Returns as lease_page_read. */
int lease_view_read(const struct lease_view *v, struct lease_info *out);

/* Unmaps. NULL is fine. */
void lease_view_close(struct lease_view *v);

#endif
