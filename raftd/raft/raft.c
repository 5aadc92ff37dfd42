/* Raft consensus core: elections, replication, commitment, membership. */
#include "raft.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

/* ---- small helpers --------------------------------------------------------- */

static uint64_t now(struct raft *r)
{
	r->now_ms = r->io->now_ms ? r->io->now_ms(r->io->ctx) : 0;
	return r->now_ms;
}

uint64_t raft_term_at(const struct raft *r, uint64_t index)
{
	if (index == 0 || index > r->last_index || index < r->base_index)
		return 0;
	if (index == r->base_index)
		return r->base_term;
	return r->terms[index - r->base_index - 1];
}

/* Room for the terms of entries up to index n. */
static int terms_reserve(struct raft *r, uint64_t n)
{
	n = n > r->base_index ? n - r->base_index : 0;
	if (n <= r->terms_cap)
		return 0;
	size_t cap = r->terms_cap ? r->terms_cap : 64;
	while (cap < n)
		cap *= 2;
	uint64_t *t = realloc(r->terms, cap * sizeof(*t));
	if (!t)
		return -ENOMEM;
	r->terms = t;
	r->terms_cap = cap;
	return 0;
}

static bool copy_id(char *dst, const char *src)
{
	size_t n = src ? strlen(src) : 0;

	if (n > RAFT_ID_MAX)
		return false;
	memcpy(dst, src ? src : "", n);
	dst[n] = '\0';
	return true;
}

int raft_config_find(const struct raft_config *cfg, const char *id)
{
	for (unsigned i = 0; i < cfg->n; i++)
		if (strcmp(cfg->s[i].id, id) == 0)
			return (int)i;
	return -1;
}

/* The configuration in force: the implicit {self} when none is known and
 * the host did not ask to wait for one. */
static bool implicit_single(const struct raft *r) { return r->config.n == 0 && !r->await_config; }

static bool self_is_voter(const struct raft *r)
{
	int i;

	if (implicit_single(r))
		return true;
	i = raft_config_find(&r->config, r->id);
	return i >= 0 && r->config.s[i].voter;
}

static unsigned n_voters(const struct raft *r)
{
	unsigned n = 0;

	if (implicit_single(r))
		return 1;
	for (unsigned i = 0; i < r->config.n; i++)
		n += r->config.s[i].voter;
	return n;
}

static bool is_self(const struct raft *r, unsigned i)
{
	return strcmp(r->config.s[i].id, r->id) == 0;
}

static uint64_t random_timeout(struct raft *r)
{
	uint32_t x = r->io->rand_u32 ? r->io->rand_u32(r->io->ctx) : 0;
	return r->opts.election_ms + x % r->opts.election_ms;
}

static void reset_election_timer(struct raft *r)
{
	r->election_start_ms = r->now_ms;
	r->election_timeout_ms = random_timeout(r);
}

/* ---- configuration payloads ------------------------------------------------ */

size_t raft_config_encode(const struct raft_config *cfg, uint8_t *buf, size_t cap)
{
	size_t len = 0;

	for (unsigned i = 0; i < cfg->n; i++) {
		const struct raft_server *s = &cfg->s[i];
		char line[RAFT_ID_MAX + RAFT_ADDR_MAX + 8];
		int n = snprintf(line, sizeof(line), "%s %s %d\n", s->id,
				 s->address[0] ? s->address : "-", s->voter ? 1 : 0);
		if (len + (size_t)n <= cap)
			memcpy(buf + len, line, (size_t)n);
		len += (size_t)n;
	}
	return len;
}

int raft_config_decode(const uint8_t *buf, size_t len, struct raft_config *out)
{
	struct raft_config c;
	size_t pos = 0;

	memset(&c, 0, sizeof(c));
	while (pos < len) {
		const uint8_t *nl = memchr(buf + pos, '\n', len - pos);
		char line[RAFT_ID_MAX + RAFT_ADDR_MAX + 8], id[RAFT_ID_MAX + 2],
		    addr[RAFT_ADDR_MAX + 2];
		size_t ll;
		int voter, used = 0;

		if (!nl)
			return -EINVAL;
		ll = (size_t)(nl - (buf + pos));
		if (ll >= sizeof(line) || c.n == RAFT_MAX_SERVERS)
			return -EINVAL;
		memcpy(line, buf + pos, ll);
		line[ll] = '\0';
		if (memchr(line, '\0', ll))
			return -EINVAL;
		if (sscanf(line, "%65s %128s %d%n", id, addr, &voter, &used) != 3 ||
		    (size_t)used != ll || strlen(id) > RAFT_ID_MAX ||
		    strlen(addr) > RAFT_ADDR_MAX || (voter != 0 && voter != 1))
			return -EINVAL;
		if (raft_config_find(&c, id) >= 0)
			return -EINVAL;
		strcpy(c.s[c.n].id, id);
		strcpy(c.s[c.n].address, strcmp(addr, "-") == 0 ? "" : addr);
		c.s[c.n].voter = voter == 1;
		c.n++;
		pos += ll + 1;
	}
	*out = c;
	return 0;
}

/* Installs cfg (at index) as the latest configuration; leader progress is
 * kept for servers present in both. */
static void set_config(struct raft *r, const struct raft_config *cfg, uint64_t index)
{
	struct raft_progress prog[RAFT_MAX_SERVERS];

	memset(prog, 0, sizeof(prog));
	for (unsigned i = 0; i < cfg->n; i++) {
		int j = raft_config_find(&r->config, cfg->s[i].id);
		if (j >= 0) {
			prog[i] = r->prog[j];
		} else {
			prog[i].next_index = r->last_index + 1;
			prog[i].probe = true;
		}
	}
	if (index != r->config_index) {
		r->prev_config = r->config;
		r->prev_config_index = r->config_index;
	}
	r->config = *cfg;
	r->config_index = index;
	memcpy(r->prog, prog, sizeof(prog));
	memset(r->granted, 0, sizeof(r->granted));
	memset(r->denied, 0, sizeof(r->denied));
}

/* ---- lifecycle -------------------------------------------------------------- */

int raft_init(struct raft *r, const struct raft_io *io, const char *id,
	      const struct raft_boot *boot)
{
	size_t n = id ? strlen(id) : 0;
	size_t vn = boot->voted_for ? strlen(boot->voted_for) : 0;

	if (n == 0 || n > RAFT_ID_MAX || vn > RAFT_ID_MAX)
		return -EINVAL;
	if (boot->last_applied > boot->last_index || boot->last_term > boot->current_term)
		return -EINVAL;
	if ((boot->last_index == 0) != (boot->last_term == 0))
		return -EINVAL;
	if (boot->base_index > boot->last_index || boot->base_index > boot->last_applied ||
	    (boot->base_index == 0) != (boot->base_term == 0) ||
	    (boot->base_index == boot->last_index && boot->base_term != boot->last_term))
		return -EINVAL;
	memset(r, 0, sizeof(*r));
	r->io = io;
	r->opts = boot->opts;
	if (!r->opts.heartbeat_ms)
		r->opts.heartbeat_ms = 100;
	if (!r->opts.election_ms)
		r->opts.election_ms = 1000;
	if (!r->opts.lease_ms)
		r->opts.lease_ms = r->opts.election_ms / 2;
	if (!r->opts.max_batch)
		r->opts.max_batch = 256;
	if (!r->opts.max_inflight)
		r->opts.max_inflight = 8;
	if (r->opts.lease_ms >= r->opts.election_ms)
		return -EINVAL;
	memcpy(r->id, id, n);
	if (vn)
		memcpy(r->voted_for, boot->voted_for, vn);
	r->base_index = boot->base_index;
	r->base_term = boot->base_term;
	if (terms_reserve(r, boot->last_index) < 0)
		return -ENOMEM;
	for (uint64_t i = 0; i < boot->last_index - boot->base_index; i++) {
		uint64_t t = boot->terms ? boot->terms[i] : boot->last_term;
		uint64_t before = i > 0 ? r->terms[i - 1] : boot->base_term;
		if (t == 0 || t > boot->current_term || t < before) {
			raft_close(r);
			return -EINVAL;
		}
		r->terms[i] = t;
	}
	if (boot->last_index > boot->base_index &&
	    r->terms[boot->last_index - boot->base_index - 1] != boot->last_term) {
		raft_close(r);
		return -EINVAL;
	}
	r->role = RAFT_FOLLOWER;
	r->current_term = boot->current_term;
	r->last_index = boot->last_index;
	r->last_term = boot->last_term;
	/* Everything loaded from the log is durable already. */
	r->persisted_index = boot->last_index;
	r->commit_index = boot->last_applied;
	r->await_config = boot->await_config;
	return 0;
}

void raft_close(struct raft *r)
{
	if (!r)
		return;
	free(r->terms);
	r->terms = NULL;
	r->terms_cap = 0;
}

int raft_boot_config(struct raft *r, uint64_t index, const uint8_t *payload, size_t len)
{
	struct raft_config c;

	if (r->started || index == 0 || index > r->last_index || index <= r->config_index)
		return -EINVAL;
	if (raft_config_decode(payload, len, &c) < 0)
		return -EINVAL;
	set_config(r, &c, index);
	return 0;
}

/* ---- role transitions (the only code that changes r->role) ---------------- */

static int persist_term(struct raft *r, uint64_t term, const char *vote)
{
	int rc = r->io->persist_vote(r->io->ctx, term, vote);

	if (rc < 0)
		return rc;
	r->current_term = term;
	copy_id(r->voted_for, vote);
	return 0;
}

static void become_follower(struct raft *r)
{
	r->role = RAFT_FOLLOWER;
	r->transfer_to[0] = '\0';
	memset(r->granted, 0, sizeof(r->granted));
	memset(r->denied, 0, sizeof(r->denied));
	reset_election_timer(r);
}

/* Moves to a newer term as follower (term and empty vote persisted). */
static int step_down(struct raft *r, uint64_t term)
{
	int rc;

	if (term > r->current_term) {
		rc = persist_term(r, term, "");
		if (rc < 0)
			return rc;
		r->leader_id[0] = '\0';
		r->ack_pending = false; /* acks are only valid in their term */
		r->seen_seq = 0;	/* so are read-barrier sequences */
	}
	if (r->role != RAFT_FOLLOWER)
		become_follower(r);
	return 0;
}

static int send_append(struct raft *r, unsigned i, bool heartbeat);

static int become_leader(struct raft *r)
{
	uint64_t index;
	int rc;

	r->role = RAFT_LEADER;
	copy_id(r->leader_id, r->id);
	r->leader_first_index = r->last_index + 1;
	r->transfer_to[0] = '\0';
	r->ack_pending = false;
	r->quorum_check_ms = r->now_ms;
	for (unsigned i = 0; i < r->config.n; i++) {
		r->prog[i].next_index = r->last_index + 1;
		r->prog[i].snapshot = false;
		r->prog[i].match_index = 0;
		r->prog[i].inflight = 0;
		r->prog[i].probe = true;
		r->prog[i].last_reply_ms = r->now_ms;
		r->prog[i].last_send_ms = 0;
		r->prog[i].acked_seq = 0;
	}
	rc = raft_propose(r, RAFT_ENTRY_NOOP, NULL, 0, &index);
	if (rc < 0) {
		become_follower(r);
		return rc;
	}
	r->heartbeat_ms_due = r->now_ms + r->opts.heartbeat_ms;
	return raft_flush(r);
}

static unsigned count(const struct raft *r, const bool *flags)
{
	unsigned n = 0;

	for (unsigned i = 0; i < r->config.n; i++)
		n += r->config.s[i].voter && flags[i];
	return n;
}

static int send_msg(struct raft *r, struct raft_msg *m, const char *to)
{
	copy_id(m->from, r->id);
	copy_id(m->to, to);
	return r->io->send ? r->io->send(r->io->ctx, m) : 0;
}

/* Asks every voter for a (pre-)vote. */
static int request_votes(struct raft *r, bool pre, bool transfer)
{
	for (unsigned i = 0; i < r->config.n; i++) {
		struct raft_msg m;
		int rc;

		if (!r->config.s[i].voter || is_self(r, i))
			continue;
		memset(&m, 0, sizeof(m));
		m.type = RAFT_MSG_VOTE;
		m.term = pre ? r->current_term + 1 : r->current_term;
		m.u.vote.pre_vote = pre;
		m.u.vote.transfer = transfer;
		m.u.vote.last_index = r->last_index;
		m.u.vote.last_term = r->last_term;
		rc = send_msg(r, &m, r->config.s[i].id);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static void vote_self(struct raft *r)
{
	int i = raft_config_find(&r->config, r->id);

	memset(r->granted, 0, sizeof(r->granted));
	memset(r->denied, 0, sizeof(r->denied));
	if (i >= 0)
		r->granted[i] = true;
}

/* §3.4: "a follower increments its current term and transitions to
 * candidate state. It then votes for itself and issues RequestVote RPCs". */
static int become_candidate(struct raft *r, bool transfer)
{
	int rc;

	rc = persist_term(r, r->current_term + 1, r->id);
	if (rc < 0)
		return rc;
	r->role = RAFT_CANDIDATE;
	r->leader_id[0] = '\0';
	reset_election_timer(r);
	if (implicit_single(r) || n_voters(r) == 1)
		return become_leader(r);
	vote_self(r);
	return request_votes(r, false, transfer);
}

/* §9.6: a pre-vote round at term + 1 that changes nobody's term. */
static int become_precandidate(struct raft *r)
{
	if (implicit_single(r) || n_voters(r) == 1)
		return become_candidate(r, false);
	r->role = RAFT_PRECANDIDATE;
	reset_election_timer(r);
	vote_self(r);
	return request_votes(r, true, false);
}

int raft_start(struct raft *r)
{
	int rc;

	if (r->role != RAFT_FOLLOWER || r->started)
		return -EINVAL;
	now(r);
	reset_election_timer(r);
	/* We may have acknowledged a leader just before a crash; the lease
	 * it holds must outlive our restart. */
	r->vote_hold_ms = r->now_ms + r->opts.election_ms;
	if (self_is_voter(r) && n_voters(r) == 1) {
		/* One voter: our own vote is a majority. */
		rc = become_candidate(r, false);
		if (rc < 0) {
			r->role = RAFT_FOLLOWER;
			return rc;
		}
	}
	r->started = true;
	return 0;
}

int raft_recover_config(struct raft *r, const struct raft_config *cfg)
{
	if (r->started || cfg->n == 0 || cfg->n > RAFT_MAX_SERVERS)
		return -EINVAL;
	set_config(r, cfg, r->last_index);
	/* A truncation must not bring the old configuration back. */
	r->prev_config = *cfg;
	r->prev_config_index = 0;
	r->recovering = true;
	return 0;
}

bool raft_recovered(const struct raft *r)
{
	return !r->recovering && r->config_index <= r->commit_index;
}

int raft_bootstrap(struct raft *r, const struct raft_config *cfg)
{
	struct raft_entry e;
	uint8_t buf[RAFT_MAX_SERVERS * (RAFT_ID_MAX + RAFT_ADDR_MAX + 8)];
	size_t len;
	int rc;

	if (r->last_index != 0 || r->current_term != 0 || r->config.n)
		return -EEXIST;
	if (cfg->n == 0 || cfg->n > RAFT_MAX_SERVERS)
		return -EINVAL;
	len = raft_config_encode(cfg, buf, sizeof(buf));
	if (len > sizeof(buf))
		return -EINVAL;
	rc = terms_reserve(r, 1);
	if (rc < 0)
		return rc;
	rc = persist_term(r, 1, "");
	if (rc < 0)
		return rc;
	e.index = 1;
	e.term = 1;
	e.type = RAFT_ENTRY_CONFIG;
	e.payload = buf;
	e.len = len;
	rc = r->io->append(r->io->ctx, &e);
	if (rc < 0)
		return rc;
	r->terms[0] = 1;
	r->last_index = 1;
	r->last_term = 1;
	set_config(r, cfg, 1);
	return 0;
}

/* ---- log -------------------------------------------------------------------- */

static int log_append(struct raft *r, const struct raft_entry *e)
{
	int rc = terms_reserve(r, e->index);

	if (rc < 0)
		return rc;
	rc = r->io->append(r->io->ctx, e);
	if (rc < 0)
		return rc;
	r->terms[e->index - r->base_index - 1] = e->term;
	r->last_index = e->index;
	r->last_term = e->term;
	if (e->type == RAFT_ENTRY_CONFIG) {
		struct raft_config c;
		/* A leader only appends valid configurations; a bad one from
		 * the wire was rejected before anything was appended. */
		if (raft_config_decode(e->payload, e->len, &c) == 0) {
			/* During a recovery, configurations older than the
			 * forced one (re-sent from the leader's old log) do not
			 * replace it; the leader's recovery entry does. */
			if (!r->recovering || e->term == r->current_term)
				set_config(r, &c, e->index);
			if (e->term == r->current_term)
				r->recovering = false;
		}
	}
	return 0;
}

/* Deletes entries from index on (never committed ones). */
static int log_truncate(struct raft *r, uint64_t index)
{
	int rc;

	if (index <= r->commit_index || !r->io->truncate)
		return -EINVAL;
	rc = r->io->truncate(r->io->ctx, index);
	if (rc < 0)
		return rc;
	r->last_index = index - 1;
	r->last_term = raft_term_at(r, index - 1);
	if (r->persisted_index > r->last_index)
		r->persisted_index = r->last_index;
	if (r->ack_pending && r->ack_index >= index)
		r->ack_pending = false;
	if (r->config_index >= index) {
		/* §4.1: a server always uses the latest configuration in its
		 * log, so dropping one reverts to the one before. Only one
		 * change is ever uncommitted, so the previous one is safe. */
		struct raft_config prev = r->prev_config;
		uint64_t pi = r->prev_config_index;
		set_config(r, &prev, pi);
		r->prev_config_index = 0;
		memset(&r->prev_config, 0, sizeof(r->prev_config));
	}
	return 0;
}

int raft_compact(struct raft *r, uint64_t upto)
{
	uint64_t keep;

	if (upto <= r->base_index)
		return 0;
	if (upto > r->commit_index || upto > r->last_index)
		return -EINVAL;
	r->base_term = raft_term_at(r, upto);
	keep = r->last_index - upto;
	memmove(r->terms, r->terms + (upto - r->base_index), keep * sizeof(*r->terms));
	r->base_index = upto;
	return 0;
}

/* Follower: the log is replaced by an installed snapshot of index/term
 * whose configuration is cfg. */
static void log_reset(struct raft *r, uint64_t index, uint64_t term, const struct raft_config *cfg)
{
	r->base_index = index;
	r->base_term = term;
	r->last_index = index;
	r->last_term = term;
	/* Nothing of the new log is durable before the host says so. */
	r->persisted_index = 0;
	r->ack_pending = false;
	if (index > r->commit_index)
		r->commit_index = index;
	set_config(r, cfg, index);
	/* Never truncated below the snapshot: no older one to go back to. */
	r->prev_config = *cfg;
	r->prev_config_index = 0;
}

static bool log_up_to_date(const struct raft *r, uint64_t last_index, uint64_t last_term)
{
	/* §3.6.1: compare the terms of the last entries, then the lengths. */
	return last_term > r->last_term ||
	       (last_term == r->last_term && last_index >= r->last_index);
}

/* ---- commitment ------------------------------------------------------------ */

static int apply_to(struct raft *r, uint64_t commit)
{
	if (commit <= r->commit_index)
		return 0;
	r->commit_index = commit;
	return r->io->apply(r->io->ctx, commit);
}

static int cmp_u64_desc(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

static int change_config(struct raft *r, const struct raft_config *c, uint64_t *out_index);
static int can_change(const struct raft *r);

/* Leader: the highest index durable on a majority of voters, committed
 * when it belongs to the current term (§3.6.2). A step-down of a removed
 * leader follows once its removal is committed. */
static int leader_commit(struct raft *r)
{
	uint64_t match[RAFT_MAX_SERVERS + 1];
	unsigned n = 0, voters = n_voters(r);
	uint64_t candidate;
	int rc;

	if (implicit_single(r)) {
		match[n++] = r->persisted_index;
	} else {
		for (unsigned i = 0; i < r->config.n; i++) {
			if (!r->config.s[i].voter)
				continue;
			match[n++] = is_self(r, i) ? r->persisted_index : r->prog[i].match_index;
		}
	}
	if (n == 0)
		return 0;
	qsort(match, n, sizeof(match[0]), cmp_u64_desc);
	candidate = match[voters / 2]; /* durable on voters/2 + 1 servers */
	if (candidate <= r->commit_index || raft_term_at(r, candidate) != r->current_term)
		return 0;
	rc = apply_to(r, candidate);
	if (rc < 0)
		return rc;
	if (r->role == RAFT_LEADER && r->config_index <= r->commit_index && !self_is_voter(r))
		become_follower(r); /* removed: stop leading (§4.2.2) */
	if (r->role == RAFT_LEADER && r->recovering && can_change(r) == 0) {
		/* Recovery: make the forced configuration part of the log. */
		struct raft_config c = r->config;
		uint64_t index;
		r->recovering = false;
		rc = change_config(r, &c, &index);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ---- replication ------------------------------------------------------------ */

/* Sends config.s[i] the snapshot chunk at its offset (the host attaches
 * the data). One chunk is in flight at a time; heartbeats repeat it. */
static int send_snapshot(struct raft *r, unsigned i)
{
	struct raft_progress *p = &r->prog[i];
	struct raft_msg m;
	int rc;

	if (!p->snapshot) {
		p->snapshot = true;
		p->snap_offset = 0;
	}
	p->probe = true;
	p->inflight = 1;
	memset(&m, 0, sizeof(m));
	m.type = RAFT_MSG_SNAPSHOT;
	m.term = r->current_term;
	m.u.snapshot.offset = p->snap_offset;
	m.u.snapshot.seq = r->read_seq;
	rc = send_msg(r, &m, r->config.s[i].id);
	if (rc < 0)
		return rc;
	p->last_send_ms = r->now_ms;
	return 0;
}

/* Sends one AppendEntries to config.s[i]: entries from next_index (up to
 * max_batch), or none for a heartbeat with nothing to send. A follower
 * that needs compacted entries gets the snapshot instead. */
static int send_append(struct raft *r, unsigned i, bool heartbeat)
{
	struct raft_progress *p = &r->prog[i];
	struct raft_msg m;
	uint64_t prev, n;
	int rc;

	if (p->next_index < 1)
		p->next_index = 1;
	if (p->next_index > r->last_index + 1)
		p->next_index = r->last_index + 1;
	if (p->snapshot || p->next_index - 1 < r->base_index)
		return send_snapshot(r, i);
	prev = p->next_index - 1;
	n = r->last_index - prev;
	if (n > r->opts.max_batch)
		n = r->opts.max_batch;
	if (!heartbeat && n == 0)
		return 0;
	if (p->probe && p->inflight > 0 && !heartbeat)
		return 0;
	if (p->probe && p->inflight > 0)
		n = 0; /* probing: the pending request is repeated by heartbeats only */
	memset(&m, 0, sizeof(m));
	m.type = RAFT_MSG_APPEND;
	m.term = r->current_term;
	m.u.append.prev_index = prev;
	m.u.append.prev_term = raft_term_at(r, prev);
	m.u.append.commit = r->commit_index;
	m.u.append.n_entries = n;
	m.u.append.seq = r->read_seq;
	rc = send_msg(r, &m, r->config.s[i].id);
	if (rc < 0)
		return rc;
	p->last_send_ms = r->now_ms;
	if (n > 0) {
		p->inflight++;
		if (!p->probe)
			p->next_index += n; /* pipelining: assume it arrives */
	}
	return 0;
}

int raft_flush(struct raft *r)
{
	int rc;

	if (r->role != RAFT_LEADER)
		return 0;
	for (unsigned i = 0; i < r->config.n; i++) {
		struct raft_progress *p = &r->prog[i];
		if (is_self(r, i) || p->snapshot)
			continue;
		while (p->next_index <= r->last_index && p->inflight < r->opts.max_inflight &&
		       !(p->probe && p->inflight > 0)) {
			rc = send_append(r, i, false);
			if (rc < 0)
				return rc;
			if (p->probe)
				break;
		}
	}
	return 0;
}

static int heartbeat(struct raft *r)
{
	for (unsigned i = 0; i < r->config.n; i++) {
		struct raft_progress *p = &r->prog[i];
		int rc;

		if (is_self(r, i))
			continue;
		if (p->snapshot) {
			rc = send_snapshot(r, i); /* repeat the chunk in flight */
		} else if (p->probe) {
			/* Probing: repeat the request (it or its answer may
			 * have been lost). */
			p->inflight = 0;
			rc = send_append(r, i, true);
		} else {
			rc = send_append(r, i, true);
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

int raft_propose(struct raft *r, unsigned type, const uint8_t *payload, size_t len,
		 uint64_t *out_index)
{
	struct raft_entry e;
	int rc;

	if (r->role != RAFT_LEADER || r->transfer_to[0])
		return CAIRN_E_NOLEADER;
	e.index = r->last_index + 1;
	e.term = r->current_term;
	e.type = type;
	e.payload = payload;
	e.len = len;
	rc = log_append(r, &e);
	if (rc < 0)
		return rc;
	*out_index = e.index;
	return 0;
}

int raft_persisted(struct raft *r, uint64_t index, uint64_t term)
{
	if (index > r->last_index || raft_term_at(r, index) != term)
		return 0; /* about an entry since truncated */
	if (index > r->persisted_index)
		r->persisted_index = index;
	if (r->role == RAFT_LEADER)
		return leader_commit(r);
	if (r->ack_pending && r->ack_term == r->current_term &&
	    r->persisted_index >= r->ack_index) {
		struct raft_msg m;

		r->ack_pending = false;
		memset(&m, 0, sizeof(m));
		m.type = RAFT_MSG_APPEND_REPLY;
		m.term = r->current_term;
		m.u.append_reply.success = true;
		m.u.append_reply.match_index = r->ack_index;
		m.u.append_reply.last_index = r->last_index;
		m.u.append_reply.seq = r->seen_seq;
		return send_msg(r, &m, r->ack_to);
	}
	return 0;
}

/* ---- receiving ---------------------------------------------------------------- */

static int reply_vote(struct raft *r, const struct raft_msg *q, uint64_t term, bool granted)
{
	struct raft_msg m;

	memset(&m, 0, sizeof(m));
	m.type = RAFT_MSG_VOTE_REPLY;
	m.term = term;
	m.u.vote_reply.pre_vote = q->u.vote.pre_vote;
	m.u.vote_reply.granted = granted;
	return send_msg(r, &m, q->from);
}

/* True while a leader is known to be alive: votes are then ignored
 * (leader stickiness), so a server that was cut off cannot depose it. */
static bool in_lease(const struct raft *r)
{
	if (r->role == RAFT_LEADER)
		return true;
	return r->leader_id[0] && r->now_ms - r->last_heard_ms < r->opts.election_ms;
}

static int on_vote(struct raft *r, const struct raft_msg *m)
{
	bool log_ok = log_up_to_date(r, m->u.vote.last_index, m->u.vote.last_term);
	int rc;

	if (!m->u.vote.transfer && (in_lease(r) || r->now_ms < r->vote_hold_ms) &&
	    m->term >= r->current_term)
		return reply_vote(r, m, r->current_term, false);
	if (m->u.vote.pre_vote) {
		/* Nobody's term changes for a pre-vote. */
		bool grant = m->term > r->current_term && log_ok;
		return reply_vote(r, m, grant ? m->term : r->current_term, grant);
	}
	if (m->term < r->current_term)
		return reply_vote(r, m, r->current_term, false);
	if (m->term > r->current_term) {
		rc = step_down(r, m->term);
		if (rc < 0)
			return rc;
	}
	if ((r->voted_for[0] == '\0' || strcmp(r->voted_for, m->from) == 0) && log_ok) {
		rc = persist_term(r, r->current_term, m->from);
		if (rc < 0)
			return rc;
		reset_election_timer(r);
		return reply_vote(r, m, r->current_term, true);
	}
	return reply_vote(r, m, r->current_term, false);
}

static int on_vote_reply(struct raft *r, const struct raft_msg *m)
{
	int i = raft_config_find(&r->config, m->from);
	unsigned majority = n_voters(r) / 2 + 1;

	if (m->u.vote_reply.pre_vote) {
		if (r->role != RAFT_PRECANDIDATE)
			return 0;
		if (m->u.vote_reply.granted && m->term == r->current_term + 1) {
			if (i >= 0)
				r->granted[i] = true;
		} else if (m->term > r->current_term) {
			return step_down(r, m->term);
		} else if (i >= 0) {
			r->denied[i] = true;
		}
		if (count(r, r->granted) >= majority)
			return become_candidate(r, false);
		if (count(r, r->denied) >= majority)
			become_follower(r);
		return 0;
	}
	if (m->term > r->current_term)
		return step_down(r, m->term);
	if (r->role != RAFT_CANDIDATE || m->term != r->current_term || i < 0)
		return 0;
	if (m->u.vote_reply.granted)
		r->granted[i] = true;
	else
		r->denied[i] = true;
	if (count(r, r->granted) >= majority)
		return become_leader(r);
	if (count(r, r->denied) >= majority)
		become_follower(r);
	return 0;
}

static int reply_append_reject(struct raft *r, const struct raft_msg *q)
{
	struct raft_msg m;
	uint64_t prev = q->u.append.prev_index;

	memset(&m, 0, sizeof(m));
	m.type = RAFT_MSG_APPEND_REPLY;
	m.term = r->current_term;
	m.u.append_reply.success = false;
	m.u.append_reply.reject_index = prev;
	m.u.append_reply.last_index = r->last_index;
	m.u.append_reply.seq = q->term == r->current_term ? r->seen_seq : 0;
	if (q->term < r->current_term) {
		m.u.append_reply.hint_index = 0;
	} else if (prev > r->last_index) {
		m.u.append_reply.hint_index = r->last_index + 1;
	} else {
		/* Conflict: report the term at prev and where it starts, so
		 * the leader skips the whole term (§5.3's optimisation). */
		uint64_t t = raft_term_at(r, prev), first = prev;
		while (first > 1 && raft_term_at(r, first - 1) == t && first - 1 > r->commit_index)
			first--;
		m.u.append_reply.hint_term = t;
		m.u.append_reply.hint_index = first;
	}
	return send_msg(r, &m, q->from);
}

static int on_append(struct raft *r, const struct raft_msg *m)
{
	const uint64_t prev = m->u.append.prev_index;
	uint64_t last_new;
	int rc;

	if (m->term < r->current_term)
		return reply_append_reject(r, m); /* a stale leader learns our term */
	rc = step_down(r, m->term);
	if (rc < 0)
		return rc;
	reset_election_timer(r);
	if (strcmp(r->leader_id, m->from) != 0)
		r->seen_seq = 0; /* sequences are per leader */
	copy_id(r->leader_id, m->from);
	r->last_heard_ms = r->now_ms;
	if (m->u.append.seq > r->seen_seq)
		r->seen_seq = m->u.append.seq;
	if (m->u.append.n_entries && !m->u.append.entries)
		return 0; /* malformed */
	/* Entries up to base_index are committed (compacted or covered by
	 * an installed snapshot), so they match any leader's: prev below it
	 * matches too, and those entries are skipped. */
	if (prev > r->last_index ||
	    (prev > 0 && prev >= r->base_index && raft_term_at(r, prev) != m->u.append.prev_term))
		return reply_append_reject(r, m);
	for (uint64_t k = 0; k < m->u.append.n_entries; k++) {
		const struct raft_entry *e = &m->u.append.entries[k];
		struct raft_config c;

		if (e->index != prev + 1 + k || e->term > m->term || e->term == 0)
			return 0; /* malformed: drop */
		if (e->type == RAFT_ENTRY_CONFIG && raft_config_decode(e->payload, e->len, &c) < 0)
			return 0;
	}
	for (uint64_t k = 0; k < m->u.append.n_entries; k++) {
		const struct raft_entry *e = &m->u.append.entries[k];

		if (e->index <= r->base_index)
			continue;
		if (e->index <= r->last_index) {
			if (raft_term_at(r, e->index) == e->term)
				continue; /* Log Matching: already have it */
			if (e->index <= r->commit_index)
				return 0; /* cannot happen with a correct leader */
			rc = log_truncate(r, e->index);
			if (rc < 0)
				return rc;
		}
		rc = log_append(r, e);
		if (rc < 0)
			return rc;
	}
	last_new = prev + m->u.append.n_entries;
	if (m->u.append.commit > r->commit_index) {
		uint64_t c = m->u.append.commit < last_new ? m->u.append.commit : last_new;
		rc = apply_to(r, c);
		if (rc < 0)
			return rc;
	}
	/* Durable before acknowledging: the ack covers prev+n only once the
	 * host reported those entries on disk. */
	if (!r->ack_pending || r->ack_term != r->current_term || strcmp(r->ack_to, m->from) != 0 ||
	    r->ack_index < last_new) {
		r->ack_index = last_new;
		r->ack_term = r->current_term;
		copy_id(r->ack_to, m->from);
	}
	r->ack_pending = true;
	if (r->persisted_index >= r->ack_index)
		return raft_persisted(r, r->persisted_index, raft_term_at(r, r->persisted_index));
	return 0;
}

static int maybe_send_timeout_now(struct raft *r, unsigned i)
{
	struct raft_msg m;

	if (!r->transfer_to[0] || r->transfer_sent ||
	    strcmp(r->config.s[i].id, r->transfer_to) != 0)
		return 0;
	if (r->prog[i].match_index < r->last_index)
		return 0;
	memset(&m, 0, sizeof(m));
	m.type = RAFT_MSG_TIMEOUT_NOW;
	m.term = r->current_term;
	r->transfer_sent = true;
	return send_msg(r, &m, r->transfer_to);
}

static int change_config(struct raft *r, const struct raft_config *c, uint64_t *out_index);
static int can_change(const struct raft *r);

/* Promotes config.s[i], a non-voter, once it caught up with the commit
 * index (and no other change is in progress). */
static int maybe_promote(struct raft *r, unsigned i)
{
	struct raft_config c;
	uint64_t index;

	if (r->config.s[i].voter || r->prog[i].match_index < r->commit_index || can_change(r) < 0)
		return 0;
	c = r->config;
	c.s[i].voter = true;
	return change_config(r, &c, &index);
}

static int on_append_reply(struct raft *r, const struct raft_msg *m)
{
	int i = raft_config_find(&r->config, m->from);
	struct raft_progress *p;
	int rc;

	if (m->term > r->current_term)
		return step_down(r, m->term);
	if (r->role != RAFT_LEADER || m->term != r->current_term || i < 0)
		return 0;
	p = &r->prog[i];
	p->last_reply_ms = r->now_ms;
	if (m->u.append_reply.seq > p->acked_seq && m->u.append_reply.seq <= r->read_seq)
		p->acked_seq = m->u.append_reply.seq;
	if (m->u.append_reply.success) {
		uint64_t mi = m->u.append_reply.match_index;
		if (mi > r->last_index)
			return 0; /* malformed */
		if (mi > p->match_index)
			p->match_index = mi;
		if (p->snapshot) {
			if (p->match_index < r->base_index)
				return 0; /* an old answer: the snapshot is still needed */
			p->snapshot = false; /* installed: back to AppendEntries */
			p->next_index = p->match_index + 1;
		}
		if (p->next_index < p->match_index + 1)
			p->next_index = p->match_index + 1;
		if (p->match_index + 1 >= p->next_index)
			p->inflight = 0; /* everything sent is acknowledged */
		else if (p->inflight > 0)
			p->inflight--;
		p->probe = false;
		rc = leader_commit(r);
		if (rc < 0)
			return rc;
		if (r->role != RAFT_LEADER)
			return 0;
		rc = maybe_send_timeout_now(r, (unsigned)i);
		if (rc < 0)
			return rc;
		rc = maybe_promote(r, (unsigned)i);
		if (rc < 0)
			return rc;
		return raft_flush(r);
	}
	/* Rejected: ignore answers about requests older than what we know
	 * (and every AppendEntries answer while sending the snapshot). */
	if (m->u.append_reply.reject_index < p->match_index || p->snapshot)
		return 0;
	uint64_t next = m->u.append_reply.hint_index;
	if (m->u.append_reply.hint_term) {
		/* Skip to after our last entry of the follower's conflicting
		 * term when we have that term, else to where it starts. */
		uint64_t k = m->u.append_reply.reject_index;
		if (k > r->last_index)
			k = r->last_index;
		while (k > 0 && raft_term_at(r, k) > m->u.append_reply.hint_term)
			k--;
		if (k > 0 && raft_term_at(r, k) == m->u.append_reply.hint_term)
			next = k + 1;
	}
	if (next > m->u.append_reply.reject_index)
		next = m->u.append_reply.reject_index; /* at least one step back */
	if (next < p->match_index + 1)
		next = p->match_index + 1;
	if (next < 1)
		next = 1;
	p->next_index = next;
	p->probe = true;
	p->inflight = 0;
	return send_append(r, (unsigned)i, true);
}

static int reply_snapshot(struct raft *r, const struct raft_msg *q, uint64_t next, bool have)
{
	struct raft_msg m;

	memset(&m, 0, sizeof(m));
	m.type = RAFT_MSG_SNAPSHOT_REPLY;
	m.term = r->current_term;
	m.u.snapshot_reply.last_index = q->u.snapshot.last_index;
	m.u.snapshot_reply.next_offset = next;
	m.u.snapshot_reply.have = have;
	m.u.snapshot_reply.seq = q->term == r->current_term ? r->seen_seq : 0;
	return send_msg(r, &m, q->from);
}

/* InstallSnapshot (§5 / dissertation §5.2): chunks are staged by the
 * host; the last one makes the snapshot replace the state and the log,
 * acknowledged (as a successful AppendEntries up to its index) once the
 * host reports it durable. */
static int on_snapshot(struct raft *r, const struct raft_msg *m)
{
	const uint64_t li = m->u.snapshot.last_index, lt = m->u.snapshot.last_term;
	struct raft_config c;
	uint64_t next = 0;
	int rc;

	if (m->term < r->current_term)
		return reply_snapshot(r, m, 0, false); /* a stale leader learns our term */
	rc = step_down(r, m->term);
	if (rc < 0)
		return rc;
	reset_election_timer(r);
	if (strcmp(r->leader_id, m->from) != 0)
		r->seen_seq = 0;
	copy_id(r->leader_id, m->from);
	r->last_heard_ms = r->now_ms;
	if (m->u.snapshot.seq > r->seen_seq)
		r->seen_seq = m->u.snapshot.seq;
	if (li == 0 || lt == 0 || lt > m->term || (m->u.snapshot.len && !m->u.snapshot.data))
		return 0; /* malformed */
	if (li <= r->commit_index)
		return reply_snapshot(r, m, 0, true); /* nothing new in it for us */
	if (!r->io->snapshot_recv || !r->io->snapshot_install)
		return 0;
	rc = r->io->snapshot_recv(r->io->ctx, m, &next);
	if (rc < 0)
		return rc;
	if (rc == 0)
		return reply_snapshot(r, m, next, false);
	if (raft_config_decode(m->u.snapshot.config, m->u.snapshot.config_len, &c) < 0 ||
	    c.n == 0)
		return reply_snapshot(r, m, 0, false); /* unusable: start over */
	rc = r->io->snapshot_install(r->io->ctx, li, lt);
	if (rc < 0)
		return rc;
	log_reset(r, li, lt, &c);
	r->recovering = false;
	/* Acknowledged once durable, like appended entries. */
	r->ack_pending = true;
	r->ack_index = li;
	r->ack_term = r->current_term;
	copy_id(r->ack_to, m->from);
	return 0;
}

static int on_snapshot_reply(struct raft *r, const struct raft_msg *m)
{
	int i = raft_config_find(&r->config, m->from);
	struct raft_progress *p;

	if (m->term > r->current_term)
		return step_down(r, m->term);
	if (r->role != RAFT_LEADER || m->term != r->current_term || i < 0)
		return 0;
	p = &r->prog[i];
	p->last_reply_ms = r->now_ms;
	if (m->u.snapshot_reply.seq > p->acked_seq && m->u.snapshot_reply.seq <= r->read_seq)
		p->acked_seq = m->u.snapshot_reply.seq;
	if (!p->snapshot)
		return 0;
	if (m->u.snapshot_reply.have) {
		/* It has everything up to there: find where the logs meet. */
		uint64_t next = m->u.snapshot_reply.last_index + 1;
		p->snapshot = false;
		p->next_index = next <= r->last_index + 1 ? next : r->last_index + 1;
		p->probe = true;
		p->inflight = 0;
		return send_append(r, (unsigned)i, true);
	}
	p->snap_offset = m->u.snapshot_reply.next_offset;
	return send_snapshot(r, (unsigned)i);
}

static int on_timeout_now(struct raft *r, const struct raft_msg *m)
{
	int rc;

	if (m->term < r->current_term || !self_is_voter(r))
		return 0;
	if (m->term > r->current_term) {
		rc = step_down(r, m->term);
		if (rc < 0)
			return rc;
	}
	if (r->role == RAFT_LEADER)
		return 0;
	return become_candidate(r, true);
}

int raft_receive(struct raft *r, const struct raft_msg *m)
{
	if (strcmp(m->to, r->id) != 0 || strcmp(m->from, r->id) == 0 || m->term == 0)
		return 0;
	now(r);
	switch (m->type) {
	case RAFT_MSG_VOTE:
		return on_vote(r, m);
	case RAFT_MSG_VOTE_REPLY:
		return on_vote_reply(r, m);
	case RAFT_MSG_APPEND:
		return on_append(r, m);
	case RAFT_MSG_APPEND_REPLY:
		return on_append_reply(r, m);
	case RAFT_MSG_TIMEOUT_NOW:
		return on_timeout_now(r, m);
	case RAFT_MSG_SNAPSHOT:
		return on_snapshot(r, m);
	case RAFT_MSG_SNAPSHOT_REPLY:
		return on_snapshot_reply(r, m);
	default:
		return 0; /* unknown: drop */
	}
}

/* ---- timers ------------------------------------------------------------------ */

static unsigned recent_voters(const struct raft *r, uint64_t since_ms)
{
	unsigned n = 0;

	for (unsigned i = 0; i < r->config.n; i++) {
		if (!r->config.s[i].voter)
			continue;
		if (is_self(r, i) || r->prog[i].last_reply_ms >= since_ms)
			n++;
	}
	return n;
}

int raft_tick(struct raft *r)
{
	int rc;

	now(r);
	if (!r->started)
		return 0;
	if (r->role == RAFT_LEADER) {
		if (implicit_single(r))
			return 0;
		/* Check-quorum (§6.2): step down when a majority was silent
		 * for a whole election timeout. */
		if (r->now_ms - r->quorum_check_ms >= r->opts.election_ms) {
			if (recent_voters(r, r->quorum_check_ms) < n_voters(r) / 2 + 1) {
				become_follower(r);
				r->leader_id[0] = '\0';
				return 0;
			}
			r->quorum_check_ms = r->now_ms;
		}
		if (r->transfer_to[0] && r->now_ms - r->transfer_start_ms >= r->opts.election_ms)
			r->transfer_to[0] = '\0'; /* transfer timed out: lead on */
		if (r->now_ms >= r->heartbeat_ms_due) {
			r->heartbeat_ms_due = r->now_ms + r->opts.heartbeat_ms;
			rc = heartbeat(r);
			if (rc < 0)
				return rc;
		}
		return 0;
	}
	if (r->now_ms - r->election_start_ms < r->election_timeout_ms)
		return 0;
	if (!self_is_voter(r)) {
		reset_election_timer(r);
		return 0;
	}
	/* A timed-out candidate starts over with a pre-vote. */
	return become_precandidate(r);
}

uint64_t raft_next_tick_ms(const struct raft *r)
{
	if (r->role == RAFT_LEADER) {
		uint64_t t = r->heartbeat_ms_due, q = r->quorum_check_ms + r->opts.election_ms;
		return t < q ? t : q;
	}
	return r->election_start_ms + r->election_timeout_ms;
}

/* ---- membership, transfer, reads ----------------------------------------------- */

static int change_config(struct raft *r, const struct raft_config *c, uint64_t *out_index)
{
	uint8_t buf[RAFT_MAX_SERVERS * (RAFT_ID_MAX + RAFT_ADDR_MAX + 8)];
	size_t len;
	int rc;

	len = raft_config_encode(c, buf, sizeof(buf));
	if (len > sizeof(buf))
		return -EINVAL;
	rc = raft_propose(r, RAFT_ENTRY_CONFIG, buf, len, out_index);
	if (rc < 0)
		return rc;
	return raft_flush(r);
}

/* A change may start once the previous one and this leader's no-op are
 * committed (the fix to single-server changes in Ongaro's raft-dev post). */
static int can_change(const struct raft *r)
{
	if (r->role != RAFT_LEADER || r->transfer_to[0])
		return CAIRN_E_NOLEADER;
	if (r->config_index > r->commit_index || r->commit_index < r->leader_first_index)
		return -EBUSY;
	return 0;
}

int raft_add_server(struct raft *r, const char *id, const char *address, uint64_t *out_index)
{
	struct raft_config c;
	int rc = can_change(r);

	if (rc < 0)
		return rc;
	if (!id || !*id || strlen(id) > RAFT_ID_MAX ||
	    (address && strlen(address) > RAFT_ADDR_MAX) || strchr(id, ' ') || strchr(id, '\n') ||
	    (address && (strchr(address, ' ') || strchr(address, '\n'))))
		return -EINVAL;
	c = r->config;
	if (c.n == 0) {
		/* Leaving the implicit single-voter mode: make self explicit. */
		copy_id(c.s[0].id, r->id);
		c.s[0].voter = true;
		c.n = 1;
	}
	if (raft_config_find(&c, id) >= 0)
		return -EEXIST;
	if (c.n == RAFT_MAX_SERVERS)
		return -ENOSPC;
	memset(&c.s[c.n], 0, sizeof(c.s[c.n]));
	strcpy(c.s[c.n].id, id);
	if (address)
		strcpy(c.s[c.n].address, address);
	/* A new server starts as a non-voter: with an empty log it could not
	 * help commit anything, and counting it at once would raise the
	 * quorum before it can vote sensibly (dissertation §4.2.1). */
	c.s[c.n].voter = false;
	c.n++;
	return change_config(r, &c, out_index);
}

int raft_remove_server(struct raft *r, const char *id, uint64_t *out_index)
{
	struct raft_config c;
	int rc = can_change(r), i;

	if (rc < 0)
		return rc;
	c = r->config;
	i = id ? raft_config_find(&c, id) : -1;
	if (i < 0)
		return -ENOENT;
	if (c.n == 1)
		return -EINVAL; /* would leave nobody */
	memmove(&c.s[i], &c.s[i + 1], (c.n - (unsigned)i - 1) * sizeof(c.s[0]));
	c.n--;
	return change_config(r, &c, out_index);
}

int raft_transfer(struct raft *r, const char *target)
{
	int best = -1;

	if (r->role != RAFT_LEADER)
		return CAIRN_E_NOLEADER;
	if (r->transfer_to[0])
		return -EBUSY;
	for (unsigned i = 0; i < r->config.n; i++) {
		if (!r->config.s[i].voter || is_self(r, i))
			continue;
		if (target ? strcmp(target, r->config.s[i].id) == 0
			   : (best < 0 || r->prog[i].match_index > r->prog[best].match_index))
			best = (int)i;
	}
	if (best < 0)
		return -ENOENT;
	copy_id(r->transfer_to, r->config.s[best].id);
	r->transfer_start_ms = now(r);
	r->transfer_sent = false;
	int rc = maybe_send_timeout_now(r, (unsigned)best);
	if (rc < 0)
		return rc;
	return raft_flush(r);
}

bool raft_lease_valid(const struct raft *r)
{
	uint64_t t = r->io->now_ms ? r->io->now_ms(r->io->ctx) : 0;

	if (r->role != RAFT_LEADER || r->commit_index < r->leader_first_index)
		return false;
	if (implicit_single(r))
		return true;
	return recent_voters(r, t >= r->opts.lease_ms ? t - r->opts.lease_ms : 0) >=
	       n_voters(r) / 2 + 1;
}

uint64_t raft_lease_until_ms(const struct raft *r)
{
	uint64_t t[RAFT_MAX_SERVERS], x;
	unsigned n = 0, need = n_voters(r) / 2 + 1;

	if (!raft_lease_valid(r))
		return 0;
	if (implicit_single(r))
		return UINT64_MAX;
	/* the lease holds while `need` voters replied within lease_ms: it
	 * ends lease_ms after the need-th most recent reply (self counts as
	 * always recent) */
	for (unsigned i = 0; i < r->config.n; i++) {
		if (!r->config.s[i].voter)
			continue;
		t[n++] = is_self(r, i) ? UINT64_MAX : r->prog[i].last_reply_ms;
	}
	if (need == 0 || n < need)
		return 0;
	for (unsigned i = 0; i < need; i++) { /* partial selection sort, descending */
		for (unsigned j = i + 1; j < n; j++) {
			if (t[j] > t[i]) {
				x = t[i];
				t[i] = t[j];
				t[j] = x;
			}
		}
	}
	x = t[need - 1];
	return x == UINT64_MAX ? UINT64_MAX : x + r->opts.lease_ms;
}

uint64_t raft_last_contact_ms(const struct raft *r)
{
	uint64_t t = r->io->now_ms ? r->io->now_ms(r->io->ctx) : 0;

	if (r->role == RAFT_LEADER)
		return 0;
	if (!r->leader_id[0] && r->last_heard_ms == 0)
		return UINT64_MAX;
	return t - r->last_heard_ms;
}

int raft_read_index(struct raft *r, uint64_t *out_seq, uint64_t *out_index)
{
	int rc;

	if (r->role != RAFT_LEADER)
		return CAIRN_E_NOLEADER;
	if (r->commit_index < r->leader_first_index)
		return -EAGAIN;
	now(r);
	r->read_seq++;
	/* The heartbeats carry the new sequence; every answer to one of
	 * them proves its sender still followed us after the read began. */
	for (unsigned i = 0; i < r->config.n; i++) {
		if (is_self(r, i))
			continue;
		rc = send_append(r, i, true);
		if (rc < 0)
			return rc;
	}
	*out_seq = r->read_seq;
	*out_index = r->commit_index;
	return 0;
}

bool raft_read_ready(const struct raft *r, uint64_t seq)
{
	unsigned n = 0;

	if (r->role != RAFT_LEADER || seq > r->read_seq)
		return false;
	if (implicit_single(r))
		return true;
	for (unsigned i = 0; i < r->config.n; i++) {
		if (!r->config.s[i].voter)
			continue;
		if (is_self(r, i) || r->prog[i].acked_seq >= seq)
			n++;
	}
	return n >= n_voters(r) / 2 + 1;
}
