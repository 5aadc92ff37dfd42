/* Raft consensus core: term, vote, role, log position and commit index.
 *
 * Pure logic: it never touches storage, sockets or clocks. It receives
 * events (start, a proposal, "entries are durable") and requests effects
 * through struct raft_io: persist the term and vote, persist a log entry,
 * apply everything up to a commit index. canonical/raft's io struct is the
 * model; the multi-server issue adds peers, elections, replication and
 * ticks behind the same interface.
 *
 * This version has exactly one voter (this server), so an election is won
 * by its own vote and an entry is committed as soon as it is durable on
 * this server. Nothing here pretends to talk to peers. */
#ifndef CAIRN_RAFTD_RAFT_H
#define CAIRN_RAFTD_RAFT_H

#include <stddef.h>
#include <stdint.h>

enum raft_role {
	RAFT_FOLLOWER = 0,
	RAFT_CANDIDATE = 1,
	RAFT_LEADER = 2,
};

enum raft_entry_type {
	RAFT_ENTRY_NOOP = 0,	/* appended by a new leader to commit earlier terms */
	RAFT_ENTRY_COMMAND = 1, /* a state-machine command (fsm.h) */
};

/* One log entry; payload borrowed for the duration of the call. */
struct raft_entry {
	uint64_t index;		/* position in the log, from 1 */
	uint64_t term;		/* term of the leader that created it */
	unsigned type;		/* enum raft_entry_type */
	const uint8_t *payload; /* command bytes; NULL for a no-op */
	size_t len;		/* payload bytes */
};

#define RAFT_ID_MAX 64 /* longest server id, bytes, NUL excluded */

/* Effects the core asks its host for. Each returns 0 or a negative code;
 * a failure is passed back to the caller of the event that caused it. */
struct raft_io {
	void *ctx;
	/* Make current term and vote durable before returning ("Updated on
	 * stable storage before responding to RPCs", Raft Figure 2).
	 * voted_for is "" for no vote. */
	int (*persist_vote)(void *ctx, uint64_t term, const char *voted_for);
	/* Persist this entry at e->index (entries arrive in index order and
	 * may overwrite nothing in this version). The host reports durability
	 * later with raft_persisted(). The entry is borrowed. */
	int (*append)(void *ctx, const struct raft_entry *e);
	/* Entries up to commit_index are committed: apply them to the state
	 * machine, in order, from the host's last applied index. */
	int (*apply)(void *ctx, uint64_t commit_index);
};

/* What the host loaded from storage at start. */
struct raft_boot {
	uint64_t current_term; /* persisted currentTerm */
	const char *voted_for; /* persisted votedFor, NULL or "" for none */
	uint64_t last_index;   /* index of the last log entry, 0 if empty */
	uint64_t last_term;    /* its term, 0 if empty */
	uint64_t last_applied; /* entries up to here are applied (so committed) */
};

struct raft {
	const struct raft_io *io;	 /* borrowed; outlives the raft */
	char id[RAFT_ID_MAX + 1];	 /* this server's id (node ID) */
	enum raft_role role;		 /* current role */
	uint64_t current_term;		 /* latest term seen */
	char voted_for[RAFT_ID_MAX + 1]; /* candidate voted for in current_term, "" if none */
	uint64_t last_index;		 /* last log index handed to io->append (or loaded) */
	uint64_t last_term;		 /* term of last_index */
	uint64_t persisted_index;	 /* log durable on this server up to here */
	uint64_t commit_index;		 /* highest index known committed */
	uint64_t leader_first_index;	 /* first index of this leader's term (its no-op) */
};

/* Initialises r from what was loaded. Role starts as follower. Returns 0 or
 * -EINVAL (id empty or too long, inconsistent boot state). */
int raft_init(struct raft *r, const struct raft_io *io, const char *id,
	      const struct raft_boot *boot);

/* Starts the server. With a single voter it runs an election at once and
 * wins it with its own vote: term + 1, vote for self (persisted through
 * io->persist_vote), become leader and append a no-op entry of the new term
 * (Raft §8: a leader commits earlier terms' entries through one of its own).
 * Must be called once, as follower. Returns 0 or the io's error. */
int raft_start(struct raft *r);

/* Leader only: appends a new entry of the current term (through
 * io->append) and returns its index in *out_index. payload is borrowed.
 * Returns 0, CAIRN_E_NOLEADER when not leader, or the io's error. */
int raft_propose(struct raft *r, unsigned type, const uint8_t *payload, size_t len,
		 uint64_t *out_index);

/* The host made the log durable up to index. With one voter, an entry is
 * committed once it is durable here and the leader's own no-op is among
 * the durable ones (Raft §5.4.2: only entries of the current term are
 * committed by counting replicas); then io->apply is called with the new
 * commit index.
 *
 * The host may call this before its final fsync only when the apply it
 * triggers is part of the same atomic, durable write (single-voter group
 * commit: append, apply and lastApplied in one transaction). Returns 0 or
 * the io's error. */
int raft_persisted(struct raft *r, uint64_t index);

#endif
