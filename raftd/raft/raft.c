/* Raft consensus core, single-voter version. */
#include "raft.h"

#include <errno.h>
#include <string.h>

#include "err.h"

int raft_init(struct raft *r, const struct raft_io *io, const char *id,
	      const struct raft_boot *boot)
{
	size_t n = id ? strlen(id) : 0;
	size_t vn = boot->voted_for ? strlen(boot->voted_for) : 0;

	if (n == 0 || n > RAFT_ID_MAX || vn > RAFT_ID_MAX)
		return -EINVAL;
	if (boot->last_applied > boot->last_index || boot->last_term > boot->current_term)
		return -EINVAL;
	memset(r, 0, sizeof(*r));
	r->io = io;
	memcpy(r->id, id, n);
	if (vn)
		memcpy(r->voted_for, boot->voted_for, vn);
	r->role = RAFT_FOLLOWER;
	r->current_term = boot->current_term;
	r->last_index = boot->last_index;
	r->last_term = boot->last_term;
	/* Everything loaded from the log is durable already. */
	r->persisted_index = boot->last_index;
	r->commit_index = boot->last_applied;
	return 0;
}

/* The only role transition code: to leader, resetting leader state. */
static int become_leader(struct raft *r)
{
	uint64_t index;
	int rc;

	r->role = RAFT_LEADER;
	r->leader_first_index = r->last_index + 1;
	rc = raft_propose(r, RAFT_ENTRY_NOOP, NULL, 0, &index);
	if (rc < 0)
		r->role = RAFT_FOLLOWER;
	return rc;
}

int raft_start(struct raft *r)
{
	int rc;

	if (r->role != RAFT_FOLLOWER)
		return -EINVAL;
	/* Election: Raft §5.2, "a follower increments its current term and
	 * transitions to candidate state. It then votes for itself". */
	r->role = RAFT_CANDIDATE;
	rc = r->io->persist_vote(r->io->ctx, r->current_term + 1, r->id);
	if (rc < 0) {
		r->role = RAFT_FOLLOWER;
		return rc;
	}
	r->current_term++;
	strcpy(r->voted_for, r->id);
	/* One voter: our own vote is a majority. */
	return become_leader(r);
}

int raft_propose(struct raft *r, unsigned type, const uint8_t *payload, size_t len,
		 uint64_t *out_index)
{
	struct raft_entry e;
	int rc;

	if (r->role != RAFT_LEADER)
		return CAIRN_E_NOLEADER;
	e.index = r->last_index + 1;
	e.term = r->current_term;
	e.type = type;
	e.payload = payload;
	e.len = len;
	rc = r->io->append(r->io->ctx, &e);
	if (rc < 0)
		return rc;
	r->last_index = e.index;
	r->last_term = e.term;
	*out_index = e.index;
	return 0;
}

int raft_persisted(struct raft *r, uint64_t index)
{
	uint64_t commit;

	if (index > r->last_index)
		index = r->last_index;
	if (index > r->persisted_index)
		r->persisted_index = index;
	if (r->role != RAFT_LEADER || r->persisted_index < r->leader_first_index)
		return 0;
	/* Majority of one: the durable prefix is replicated on a majority. */
	commit = r->persisted_index;
	if (commit <= r->commit_index)
		return 0;
	r->commit_index = commit;
	return r->io->apply(r->io->ctx, commit);
}
