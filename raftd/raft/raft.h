/* Raft consensus core: elections, log replication, commitment and
 * single-server membership changes, with no I/O.
 *
 * Pure logic: it never touches storage, sockets, clocks or randomness. It
 * receives events (a tick, a message, a proposal, "the log is durable up to
 * here") and requests effects through struct raft_io: persist the term and
 * vote, append or truncate log entries, send a message, apply committed
 * entries. canonical/raft's io struct is the model.
 *
 * What it implements (section numbers from Ongaro's dissertation):
 * - elections with randomized timeouts (§3.4), pre-vote (§9.6) and leader
 *   stickiness: a server that heard from a leader within the minimum
 *   election timeout ignores votes, so a partitioned server that rejoins
 *   does not depose a healthy leader; check-quorum (§6.2): a leader that has
 *   not heard from a majority within an election timeout steps down;
 * - log replication (§3.5) with pipelining (up to max_inflight
 *   AppendEntries in flight per follower, next_index advanced
 *   optimistically) and batching (raft_flush sends every waiting entry
 *   together, up to max_batch per message); on a mismatch the follower
 *   returns a conflict hint (term and first index of that term) so the
 *   leader skips a whole term per round trip;
 * - durable before acknowledging: a follower answers an AppendEntries only
 *   once the host reported the entries durable (raft_persisted), and the
 *   leader counts itself only for its durable prefix, so the leader's fsync
 *   runs in parallel with the followers';
 * - commitment by counting only for entries of the current term (§3.6.2),
 *   with a no-op appended at the start of each term;
 * - single-server membership changes (§4.1): a configuration entry takes
 *   effect as soon as it is appended, one change at a time, only after the
 *   leader committed an entry of its term; a leader removed from the
 *   configuration steps down once the change committed; a new server
 *   joins as a non-voter and is promoted once it caught up;
 * - leadership transfer (§3.10) with TimeoutNow;
 * - log compaction (§5): the host snapshots its state machine and tells
 *   the core with raft_compact() that entries up to an index are gone; a
 *   follower that needs one of them gets the host's snapshot through
 *   InstallSnapshot (RAFT_MSG_SNAPSHOT) in chunks, the offsets driven by
 *   the follower's answers, and resumes AppendEntries after it;
 * - a leader lease for default-mode reads (the followers' stickiness makes
 *   a new leader impossible before lease_ms after a majority's last ack).
 *
 * With an empty configuration and boot.await_config false the server is
 * its only voter (the single-server case: raft_start wins an election at
 * once). The core keeps the terms of the entries after the compaction
 * point in memory (8 bytes per entry). */
#ifndef CAIRN_RAFTD_RAFT_H
#define CAIRN_RAFTD_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum raft_role {
	RAFT_FOLLOWER = 0,
	RAFT_CANDIDATE = 1,
	RAFT_LEADER = 2,
	RAFT_PRECANDIDATE = 3, /* asking for pre-votes; term unchanged */
};

enum raft_entry_type {
	RAFT_ENTRY_NOOP = 0,	/* appended by a new leader to commit earlier terms */
	RAFT_ENTRY_COMMAND = 1, /* a state-machine command (fsm.h) */
	RAFT_ENTRY_CONFIG = 2,	/* a configuration (raft_config_encode) */
};

/* One log entry; payload borrowed for the duration of the call. */
struct raft_entry {
	uint64_t index;		/* position in the log, from 1 */
	uint64_t term;		/* term of the leader that created it */
	unsigned type;		/* enum raft_entry_type */
	const uint8_t *payload; /* command bytes; NULL for a no-op */
	size_t len;		/* payload bytes */
};

#define RAFT_ID_MAX 64	   /* longest server id, bytes, NUL excluded */
#define RAFT_ADDR_MAX 127  /* longest server address, bytes, NUL excluded */
#define RAFT_MAX_SERVERS 9 /* most servers in a configuration */

/* One server of a configuration. */
struct raft_server {
	char id[RAFT_ID_MAX + 1];	 /* Raft id (node ID) */
	char address[RAFT_ADDR_MAX + 1]; /* RPC address (host:port), opaque here */
	bool voter;			 /* counts for elections and commitment */
};

/* A cluster configuration. */
struct raft_config {
	unsigned n;				/* servers in s */
	struct raft_server s[RAFT_MAX_SERVERS]; /* in insertion order */
};

enum raft_msg_type {
	RAFT_MSG_VOTE = 1,	   /* RequestVote (or pre-vote) */
	RAFT_MSG_VOTE_REPLY = 2,   /* its answer */
	RAFT_MSG_APPEND = 3,	   /* AppendEntries (a heartbeat when empty) */
	RAFT_MSG_APPEND_REPLY = 4, /* its answer */
	RAFT_MSG_TIMEOUT_NOW = 5,  /* leadership transfer: campaign now */
	RAFT_MSG_SNAPSHOT = 6,	   /* InstallSnapshot: one chunk of the leader's snapshot */
	RAFT_MSG_SNAPSHOT_REPLY = 7, /* its answer: the next offset wanted */
};

/* A message between cores. The sender's host attaches AppendEntries'
 * entries itself (see raft_io.send); the receiver's host passes them in. */
struct raft_msg {
	unsigned type;		    /* enum raft_msg_type */
	char from[RAFT_ID_MAX + 1]; /* sender id */
	char to[RAFT_ID_MAX + 1];   /* recipient id */
	uint64_t term;		    /* sender's term (pre-vote: the term it would use) */
	union {
		struct {
			bool pre_vote;	     /* a pre-vote: nobody changes term */
			bool transfer;	     /* leadership transfer: ignore stickiness */
			uint64_t last_index; /* candidate's last log index */
			uint64_t last_term;  /* and its term */
		} vote;
		struct {
			bool pre_vote; /* answers a pre-vote */
			bool granted;  /* vote granted */
		} vote_reply;
		struct {
			uint64_t prev_index;		  /* index before the first entry */
			uint64_t prev_term;		  /* its term */
			uint64_t commit;		  /* leader's commit index */
			uint64_t n_entries;		  /* entries prev_index+1 .. prev_index+n */
			const struct raft_entry *entries; /* NULL when sent by the core */
			uint64_t seq; /* leader's read-barrier sequence, echoed */
		} append;
		struct {
			bool success;	       /* log matched; entries durable */
			uint64_t match_index;  /* success: log matches up to here */
			uint64_t reject_index; /* failure: prev_index of the request */
			uint64_t hint_index;   /* failure: retry from here... */
			uint64_t hint_term;  /* ...or after the leader's last entry of this term (0:
						none) */
			uint64_t last_index; /* follower's last log index */
			uint64_t seq;	     /* highest append.seq seen from this leader */
		} append_reply;
		struct {
			/* The core sets offset and seq; the sender's host sets
			 * the rest from its snapshot image (see raft_io.send)
			 * and may move offset back to 0 when the image changed. */
			uint64_t offset;	/* byte offset of data in the image */
			uint64_t seq;		/* leader's read-barrier sequence */
			uint64_t last_index;	/* last index the snapshot covers */
			uint64_t last_term;	/* its term */
			bool done;		/* data ends the image */
			const uint8_t *data;	/* chunk bytes (borrowed) */
			size_t len;		/* chunk length */
			const uint8_t *config;	/* configuration payload as of last_index */
			size_t config_len;	/* its length */
		} snapshot;
		struct {
			uint64_t last_index;  /* snapshot this answers (its last_index) */
			uint64_t next_offset; /* next byte wanted (0: start over) */
			bool have;	      /* follower has everything up to last_index:
					       * resume AppendEntries after it */
			uint64_t seq;	      /* highest sequence seen from this leader */
		} snapshot_reply;
	} u;
};

/* Effects the core asks its host for. Each returns 0 or a negative code;
 * a failure is passed back to the caller of the event that caused it. */
struct raft_io {
	void *ctx;
	/* Make current term and vote durable before returning ("Updated on
	 * stable storage before responding to RPCs", Raft Figure 2).
	 * voted_for is "" for no vote. */
	int (*persist_vote)(void *ctx, uint64_t term, const char *voted_for);
	/* Persist this entry at e->index, after every earlier append and
	 * truncate (the host keeps their order). The host reports durability
	 * later with raft_persisted(). The entry is borrowed. */
	int (*append)(void *ctx, const struct raft_entry *e);
	/* Entries up to commit_index are committed: apply them to the state
	 * machine, in order, from the host's last applied index. */
	int (*apply)(void *ctx, uint64_t commit_index);
	/* Delete log entries from index on (a follower's conflicting suffix;
	 * never a committed entry). Ordered with appends. NULL only for a
	 * host that never has peers. */
	int (*truncate)(void *ctx, uint64_t index);
	/* Send m to m->to, best effort (loss is fine). For RAFT_MSG_APPEND
	 * the host attaches entries prev_index+1 .. prev_index+n_entries from
	 * its log (they were all handed to append already). m is borrowed.
	 * NULL only for a host that never has peers. */
	int (*send)(void *ctx, const struct raft_msg *m);
	/* Monotonic time in ms. NULL: always 0 (single server, no ticks). */
	uint64_t (*now_ms)(void *ctx);
	/* A random number for election timeouts. NULL: 0. */
	uint32_t (*rand_u32)(void *ctx);
	/* Follower: stage one InstallSnapshot chunk (m->u.snapshot, data
	 * borrowed). Returns 1 when the image is complete and verified (the
	 * last chunk was written), 0 with the next offset wanted in
	 * *next_offset (0 to start over: another image, a gap, a bad image),
	 * or a negative code. NULL: snapshots are never received. */
	int (*snapshot_recv)(void *ctx, const struct raft_msg *m, uint64_t *next_offset);
	/* Follower: the staged image (index, term) replaces the state machine
	 * and the whole log, atomically, ordered with appends and truncates
	 * (entries appended afterwards follow it). The host reports it
	 * durable with raft_persisted(index, term). */
	int (*snapshot_install)(void *ctx, uint64_t index, uint64_t term);
};

/* Timing and flow-control options; zero fields take the defaults (Consul's
 * at raft_multiplier 1). */
struct raft_options {
	uint64_t heartbeat_ms; /* leader's heartbeat interval; default 100 */
	uint64_t election_ms;  /* minimum election timeout; timeouts are
				* randomized in [election_ms, 2*election_ms);
				* default 1000 */
	uint64_t lease_ms;     /* leader lease after a majority's ack; default
				* 500, must stay below election_ms */
	unsigned max_batch;    /* most entries per AppendEntries; default 256 */
	unsigned max_inflight; /* AppendEntries in flight per follower; default 8 */
};

/* What the host loaded from storage at start. */
struct raft_boot {
	uint64_t current_term;	  /* persisted currentTerm */
	const char *voted_for;	  /* persisted votedFor, NULL or "" for none */
	uint64_t last_index;	  /* index of the last log entry, 0 if empty */
	uint64_t last_term;	  /* its term, 0 if empty */
	uint64_t last_applied;	  /* entries up to here are applied (so committed) */
	uint64_t base_index;	  /* entries up to here were compacted away (or
				   * replaced by an installed snapshot); 0: none */
	uint64_t base_term;	  /* term of entry base_index */
	const uint64_t *terms;	  /* terms of entries base_index+1..last_index; NULL:
				   * all last_term (only valid for a log written
				   * by a single server) */
	bool await_config;	  /* with no configuration, wait to be added by a
				   * leader (or bootstrapped) instead of being a
				   * single voter */
	struct raft_options opts; /* timings */
};

/* Replication state of one follower, on the leader. */
struct raft_progress {
	uint64_t next_index;	/* next entry to send */
	uint64_t match_index;	/* known to match up to here (durable there) */
	uint64_t last_reply_ms; /* last answer in this term (check-quorum, lease) */
	unsigned inflight;	/* AppendEntries with entries not yet answered */
	bool probe;		/* after a mismatch: one message at a time */
	uint64_t acked_seq;	/* highest read-barrier sequence it echoed */
	uint64_t last_send_ms;	/* last AppendEntries sent */
	bool snapshot;		/* sending InstallSnapshot chunks */
	uint64_t snap_offset;	/* ...from this offset */
};

struct raft {
	const struct raft_io *io;	 /* borrowed; outlives the raft */
	struct raft_options opts;	 /* effective options */
	char id[RAFT_ID_MAX + 1];	 /* this server's id (node ID) */
	enum raft_role role;		 /* current role */
	uint64_t current_term;		 /* latest term seen */
	char voted_for[RAFT_ID_MAX + 1]; /* candidate voted for in current_term, "" if none */
	char leader_id[RAFT_ID_MAX + 1]; /* leader of current_term, "" if unknown */
	uint64_t last_index;		 /* last log index handed to io->append (or loaded) */
	uint64_t last_term;		 /* term of last_index */
	uint64_t persisted_index;	 /* log durable on this server up to here */
	uint64_t commit_index;		 /* highest index known committed */
	uint64_t leader_first_index;	 /* first index of this leader's term (its no-op) */
	uint64_t base_index;		 /* entries up to here are compacted away */
	uint64_t base_term;		 /* term of entry base_index */
	uint64_t *terms;		 /* terms[i-base_index-1] = term of entry i */
	size_t terms_cap;		 /* allocated slots */
	struct raft_config config;	 /* latest configuration (maybe uncommitted) */
	uint64_t config_index;		 /* its log index, 0 if none */
	struct raft_config prev_config;	 /* the one before, restored on truncation */
	uint64_t prev_config_index;	 /* its log index */
	bool await_config;		 /* see raft_boot */
	bool started;			 /* raft_start was called */
	uint64_t vote_hold_ms;		 /* no votes before this (after a restart) */
	bool recovering;		 /* raft_recover_config: not yet in the log */
	struct raft_progress prog[RAFT_MAX_SERVERS]; /* leader: per config.s[] */
	bool granted[RAFT_MAX_SERVERS];		     /* (pre)candidate: votes per config.s[] */
	bool denied[RAFT_MAX_SERVERS];		     /* (pre)candidate: refusals */
	uint64_t now_ms;			     /* time of the current event */
	uint64_t last_heard_ms;			     /* follower: last message from the leader */
	uint64_t election_start_ms;		     /* start of the election timer */
	uint64_t election_timeout_ms;		     /* randomized timeout in force */
	uint64_t quorum_check_ms;		     /* leader: start of the check-quorum window */
	uint64_t heartbeat_ms_due;		     /* leader: next heartbeat round */
	bool ack_pending;			     /* follower: an ack waits for durability */
	uint64_t ack_index;			     /* ...up to this index */
	uint64_t ack_term;			     /* ...in this term */
	char ack_to[RAFT_ID_MAX + 1];		     /* ...to this leader */
	char transfer_to[RAFT_ID_MAX + 1];	     /* leader: transfer target, "" if none */
	uint64_t transfer_start_ms;		     /* when the transfer began */
	bool transfer_sent;			     /* TimeoutNow sent */
	uint64_t read_seq;			     /* leader: last read barrier started */
	uint64_t seen_seq;			     /* follower: highest seq from the leader */
};

/* Initialises r from what was loaded (copies boot.terms). Role starts as
 * follower. Returns 0, -EINVAL (id empty or too long, inconsistent boot
 * state) or -ENOMEM. Release with raft_close. */
int raft_init(struct raft *r, const struct raft_io *io, const char *id,
	      const struct raft_boot *boot);

/* Frees what raft_init allocated. NULL is fine. */
void raft_close(struct raft *r);

/* Tells the core about a configuration entry found in the loaded log.
 * Call for each one in index order (only the last two matter), between
 * raft_init and raft_start. Returns 0 or -EINVAL (bad payload or index). */
int raft_boot_config(struct raft *r, uint64_t index, const uint8_t *payload, size_t len);

/* Manual recovery of a cluster that lost its quorum (Consul's peers.json):
 * overrides the configuration loaded from the log with cfg, before
 * raft_start. The survivors named in cfg then elect a leader among
 * themselves (the most up-to-date log wins, as always); that leader
 * appends cfg as a configuration entry once its no-op is committed, which
 * makes the recovery durable (raft_recovered() turns true on the servers
 * that applied it). Unsafe if servers left out of cfg are still running:
 * the operator must have stopped them for good. Returns 0 or -EINVAL. */
int raft_recover_config(struct raft *r, const struct raft_config *cfg);
/* True once no recovery is pending: the configuration in force is in
 * the log and committed. */
bool raft_recovered(const struct raft *r);

/* Bootstraps a fresh server: on an empty log with term 0 only, appends
 * the configuration as entry 1 of term 1 (term persisted first). Every
 * initial server bootstraps the same configuration, so their logs agree.
 * Returns 0, -EEXIST when the log or term is not empty, -EINVAL, or the
 * io's error. */
int raft_bootstrap(struct raft *r, const struct raft_config *cfg);

/* Starts the server. As the only voter it runs an election at once and
 * wins it with its own vote: term + 1, vote for self (persisted through
 * io->persist_vote), become leader and append a no-op entry of the new term
 * (§3.6.2: a leader commits earlier terms' entries through one of its own).
 * Otherwise it starts the election timer. Must be called once, as
 * follower. Returns 0 or the io's error. */
int raft_start(struct raft *r);

/* Advances timers to io->now_ms: election timeout, heartbeats,
 * check-quorum, transfer timeout. Call at least every heartbeat_ms / 2
 * (raft_next_tick_ms says when it is next due). Returns 0 or io's error. */
int raft_tick(struct raft *r);

/* When the next tick is due, in io->now_ms time. */
uint64_t raft_next_tick_ms(const struct raft *r);

/* Handles a message received from a peer (entries of an AppendEntries
 * borrowed for the call). Messages for another id, from an unknown term
 * or malformed are dropped. Returns 0 or the io's error. */
int raft_receive(struct raft *r, const struct raft_msg *m);

/* Leader only: appends a new entry of the current term (through
 * io->append) and returns its index in *out_index. payload is borrowed.
 * The entry goes out with the next raft_flush (batching). Returns 0,
 * CAIRN_E_NOLEADER when not leader (or while transferring leadership), or
 * the io's error. */
int raft_propose(struct raft *r, unsigned type, const uint8_t *payload, size_t len,
		 uint64_t *out_index);

/* Leader: sends every entry that waits to every follower that can take
 * more (pipelining within max_inflight). Call once per loop iteration after
 * proposals. Returns 0 or the io's error. */
int raft_flush(struct raft *r);

/* The host made the log durable up to index, whose term was term when it
 * was written. Reports about a since-truncated entry (term mismatch) are
 * ignored. A follower then sends its pending acknowledgement; a leader
 * counts itself and may commit (then io->apply is called).
 *
 * The host may call this before its final fsync only when everything it
 * triggers is part of the same atomic, durable write or held back until
 * it: io->apply in the same transaction, io->send queued until the fsync.
 * Returns 0 or the io's error. */
int raft_persisted(struct raft *r, uint64_t index, uint64_t term);

/* Leader: proposes adding or removing one server. Only one change at a
 * time, and only once the leader committed an entry of its term. A new
 * server joins as a non-voter; the leader promotes it to voter (a second
 * change) as soon as its log has caught up with the commit index.
 * Returns 0 with the entry's index, CAIRN_E_NOLEADER, -EBUSY (a change is
 * in progress or the no-op not committed yet), -EEXIST / -ENOENT (already
 * a member / not a member), -ENOSPC (configuration full), -EINVAL. */
int raft_add_server(struct raft *r, const char *id, const char *address, uint64_t *out_index);
int raft_remove_server(struct raft *r, const char *id, uint64_t *out_index);

/* Leader: hands leadership to target (NULL: the most up-to-date voter).
 * New proposals are refused until it completes or times out after an
 * election timeout. Returns 0, CAIRN_E_NOLEADER, -ENOENT (no such voter) or
 * -EBUSY (already transferring). */
int raft_transfer(struct raft *r, const char *target);

/* True for a leader whose lease holds: a majority of voters answered it
 * within lease_ms and it committed its no-op, so it has applied every
 * write acknowledged before (default-mode reads may be served locally).
 * Votes are held back for election_ms after raft_start, so a follower that
 * restarts quickly cannot help elect a rival while the lease runs. */
bool raft_lease_valid(const struct raft *r);
/* When the lease ends, in io->now_ms time: 0 when it does not hold now,
 * UINT64_MAX for a single voter (lease-reading processes add their own
 * liveness bound). Valid while now_ms <= the value returned. */
uint64_t raft_lease_until_ms(const struct raft *r);

/* Leader: starts a read barrier (§6.4, ReadIndex): a heartbeat round
 * tagged with a new sequence number goes to every follower at once.
 * Returns 0 with the sequence in *out_seq and the index the read must
 * see applied in *out_index, CAIRN_E_NOLEADER, or -EAGAIN when the
 * leader has not committed its no-op yet (it does not know the commit
 * index). */
int raft_read_index(struct raft *r, uint64_t *out_seq, uint64_t *out_index);

/* True when a majority of voters (this leader included) acknowledged
 * heartbeats of sequence seq or later in this term: no other leader
 * existed when the barrier started. False when not leader any more (the
 * read should fail) or not yet. */
bool raft_read_ready(const struct raft *r, uint64_t seq);

/* Milliseconds since this server last heard from a leader (0 on the
 * leader), UINT64_MAX when it never did. */
uint64_t raft_last_contact_ms(const struct raft *r);

/* Term of entry index, 0 when out of the log (or compacted away, except
 * the compaction point itself). */
uint64_t raft_term_at(const struct raft *r, uint64_t index);

/* The host snapshotted its state machine at an index >= upto (durably)
 * and drops the log entries up to upto: the core forgets their terms.
 * upto must be committed and in the log. A follower that needs an entry
 * up to upto then gets InstallSnapshot. Returns 0 or -EINVAL. */
int raft_compact(struct raft *r, uint64_t upto);

/* Configuration payload: one line per server, "id address voter\n" with
 * address "-" when empty and voter 0/1. raft_config_encode writes at most
 * cap bytes into buf and returns the length (> cap: too small). */
size_t raft_config_encode(const struct raft_config *cfg, uint8_t *buf, size_t cap);
/* Parses a payload. Returns 0 or -EINVAL. */
int raft_config_decode(const uint8_t *buf, size_t len, struct raft_config *out);
/* Index of id in cfg, -1 if absent. */
int raft_config_find(const struct raft_config *cfg, const char *id);

#endif
