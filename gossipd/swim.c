/* SWIM with Lifeguard; see swim.h. */
#include "swim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

/* Message types on the wire (docs/gossip.md). Pinned: never renumber. */
enum {
	MSG_PING = 1,	     /* [1, seq, target, src_name, src_ip, src_port] */
	MSG_PING_REQ = 2,    /* [2, seq, target, target_ip, target_port, nack] */
	MSG_ACK = 3,	     /* [3, seq] or [3, seq, payload] */
	MSG_NACK = 4,	     /* [4, seq] */
	MSG_SUSPECT = 5,     /* [5, incarnation, node, from] */
	MSG_ALIVE = 6,	     /* [6, incarnation, node, ip, port, meta] */
	MSG_DEAD = 7,	     /* [7, incarnation, node, from, left, prune] */
	MSG_PUSHPULL = 8,    /* [8, join, reply, src_name, src_ip, src_port, states] */
	MSG_USER = 9,	     /* [9, ltime, id, name, payload, node_f, service_f, tag_f] */
	MSG_QUERY = 10,	     /* [10, id, op, arg, origin_name, origin_ip, origin_port] */
	MSG_QUERY_RESP = 11, /* [11, id, node, payload] */
};

#define EVENT_SEEN 512 /* ids remembered for de-duplication */

#define NAME_MAX_LEN 255
#define META_MAX_LEN 1024
#define MAX_RELAYS 256

struct suspicion {
	uint64_t start_ms;
	uint64_t min_ms, max_ms, timeout_ms;
	unsigned k, n;	  /* expected and received confirmations */
	uint64_t from[8]; /* hashes of the confirmers (first one: the accuser) */
	unsigned n_from;
};

struct node {
	char *name;
	uint64_t hash;
	struct swim_addr addr;
	uint8_t *meta;
	size_t meta_len;
	uint32_t incarnation;
	enum swim_state state;
	uint64_t state_ms;	/* when state last changed */
	struct suspicion *susp; /* when SUSPECT */
};

struct bcast {
	uint64_t key; /* name hash: a newer message about the name replaces this */
	uint8_t *buf;
	size_t len;
	unsigned transmits;
	uint64_t id;
	bool is_leave; /* our own leave */
};

struct relay {
	uint32_t seq;	     /* our PING to the target */
	uint32_t origin_seq; /* the asker's seq */
	struct swim_addr origin;
	uint64_t deadline_ms; /* then NACK */
	bool nack;
};

struct probe {
	bool active;
	uint32_t seq;
	uint64_t hash; /* target name hash */
	char *target;
	uint64_t direct_deadline_ms;
	uint64_t end_ms;
	uint64_t sent_us; /* when the direct PING left (for the RTT) */
	bool indirect_sent;
	unsigned expected_nacks, nacks;
};

struct swim {
	struct swim_config cfg;
	struct swim_io io;
	struct members *table;
	struct node *v; /* v[0] is self */
	size_t n, cap;
	uint32_t *hidx; /* open addressing: index+1, 0 empty */
	size_t hcap;
	uint32_t *order; /* probe order: indices into v */
	size_t n_order, probe_pos;
	uint32_t *suspects; /* indices of SUSPECT nodes */
	size_t n_suspects, cap_suspects;
	size_t n_live;
	struct bcast *q;       /* sorted: fewest transmits, then newest, first */
	struct bcast *scratch; /* capq entries, for add_broadcasts */
	size_t nq, capq;
	uint64_t next_bcast_id;
	struct relay relays[MAX_RELAYS];
	size_t n_relays;
	struct probe probe;
	uint32_t seq;
	unsigned awareness;
	bool leaving;
	uint64_t next_probe_ms, next_gossip_ms, next_pushpull_ms, next_reconnect_ms, next_reap_ms;
	uint64_t wake_ms;
	struct swim_stats stats;
	uint64_t event_clock;		 /* Lamport clock of user events */
	uint64_t event_seen[EVENT_SEEN]; /* id hashes, a ring */
	size_t event_seen_pos;
};

/* ---- small helpers ------------------------------------------------------ */

static uint64_t name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (; *s; s++) {
		h ^= (uint8_t)*s;
		h *= 1099511628211ull;
	}
	/* FNV's low bits mix poorly for names that differ in one character
	 * (n1, n2 ...): finish with murmur3's fmix64 */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h ? h : 1;
}

static uint64_t now(struct swim *s) { return s->io.now_ms(s->io.ctx); }

static uint64_t now_us(struct swim *s)
{
	return s->io.now_us ? s->io.now_us(s->io.ctx) : s->io.now_ms(s->io.ctx) * 1000;
}

static uint32_t rnd(struct swim *s, uint32_t n) { return n ? s->io.rand_u32(s->io.ctx) % n : 0; }

static void want_wake(struct swim *s, uint64_t t)
{
	if (t < s->wake_ms)
		s->wake_ms = t;
}

static uint64_t scale(const struct swim *s, uint64_t t) { return t * (s->awareness + 1); }

static void awareness_delta(struct swim *s, int d)
{
	int a = (int)s->awareness + d;

	if (a < 0)
		a = 0;
	if (a > (int)s->cfg.awareness_max)
		a = (int)s->cfg.awareness_max;
	s->awareness = (unsigned)a;
}

/* memberlist util.go retransmitLimit: mult × ceil(log10(n+1)). */
static unsigned retransmit_limit(const struct swim *s)
{
	double n = (double)s->n_live;
	unsigned l = (unsigned)ceil(log10(n + 1));

	return s->cfg.retransmit_mult * (l ? l : 1);
}

/* memberlist util.go suspicionTimeout: mult × max(1, log10(n)) × interval. */
static uint64_t suspicion_min_ms(const struct swim *s)
{
	double f = log10((double)(s->n_live > 1 ? s->n_live : 1));

	if (f < 1)
		f = 1;
	return (uint64_t)((double)s->cfg.suspicion_mult * f * (double)s->cfg.probe_interval_ms);
}

/* memberlist util.go pushPullScale: ×(ceil(log2 n − log2 32) + 1) above 32. */
static uint64_t pushpull_interval(const struct swim *s)
{
	double n = (double)s->n_live;

	if (n <= 32)
		return s->cfg.pushpull_interval_ms;
	return s->cfg.pushpull_interval_ms * (uint64_t)(ceil(log2(n) - log2(32.0)) + 1);
}

void swim_config_lan(struct swim_config *c)
{
	memset(c, 0, sizeof(*c));
	c->probe_interval_ms = 1000;
	c->probe_timeout_ms = 500;
	c->indirect_checks = 3;
	c->suspicion_mult = 4;
	c->suspicion_max_mult = 6;
	c->retransmit_mult = 4;
	c->gossip_interval_ms = 200;
	c->gossip_nodes = 3;
	c->gossip_to_dead_ms = 30000;
	c->pushpull_interval_ms = 30000;
	c->reconnect_interval_ms = 30000;
	c->reap_failed_ms = 72ull * 3600 * 1000;
	c->reap_left_ms = 72ull * 3600 * 1000;
	c->awareness_max = 8;
	c->mtu = 1400;
	c->tcp_fallback = true;
}

void swim_config_wan(struct swim_config *c)
{
	swim_config_lan(c);
	c->probe_interval_ms = 5000;
	c->probe_timeout_ms = 3000;
	c->suspicion_mult = 6;
	c->gossip_interval_ms = 500;
	c->gossip_nodes = 4;
	c->pushpull_interval_ms = 60000;
}

int swim_addr_parse(const char *ip, uint16_t port, struct swim_addr *out)
{
	struct swim_addr a = {0};
	struct in_addr v4;

	if (inet_pton(AF_INET, ip, &v4) == 1) {
		a.ip[10] = 0xff;
		a.ip[11] = 0xff;
		memcpy(&a.ip[12], &v4, 4);
	} else if (inet_pton(AF_INET6, ip, a.ip) != 1) {
		return -EINVAL;
	}
	a.port = port;
	*out = a;
	return 0;
}

static bool is_v4(const struct swim_addr *a)
{
	static const uint8_t pfx[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	return memcmp(a->ip, pfx, 12) == 0;
}

void swim_addr_ip_str(const struct swim_addr *a, char *buf, size_t len)
{
	if (is_v4(a))
		(void)inet_ntop(AF_INET, &a->ip[12], buf, (socklen_t)len); /* len ≥ 46 */
	else
		(void)inet_ntop(AF_INET6, a->ip, buf, (socklen_t)len);
}

/* ---- the node table ------------------------------------------------------ */

static void hash_rebuild(struct swim *s)
{
	memset(s->hidx, 0, s->hcap * sizeof(*s->hidx));
	for (size_t i = 0; i < s->n; i++) {
		size_t h = (size_t)s->v[i].hash & (s->hcap - 1);

		while (s->hidx[h])
			h = (h + 1) & (s->hcap - 1);
		s->hidx[h] = (uint32_t)i + 1;
	}
}

static struct node *find_h(const struct swim *s, const char *name, uint64_t hash)
{
	size_t h = (size_t)hash & (s->hcap - 1);

	while (s->hidx[h]) {
		struct node *n = &s->v[s->hidx[h] - 1];

		if (n->hash == hash && strcmp(n->name, name) == 0)
			return n;
		h = (h + 1) & (s->hcap - 1);
	}
	return NULL;
}

static struct node *find(const struct swim *s, const char *name)
{
	return find_h(s, name, name_hash(name));
}

static bool is_self(const struct swim *s, const struct node *n) { return n == &s->v[0]; }

static bool live(enum swim_state st) { return st == SWIM_ALIVE || st == SWIM_SUSPECT; }

/* Appends a node (state NONE); returns it or NULL. Pointers into v move. */
static struct node *node_add(struct swim *s, const char *name)
{
	struct node *n;

	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		struct node *v = realloc(s->v, cap * sizeof(*v));
		uint32_t *o;

		if (!v)
			return NULL;
		s->v = v;
		o = realloc(s->order, cap * sizeof(*o));
		if (!o)
			return NULL;
		s->order = o;
		s->cap = cap;
	}
	if ((s->n + 1) * 2 > s->hcap) {
		size_t hcap = s->hcap ? s->hcap * 2 : 32;
		uint32_t *h = calloc(hcap, sizeof(*h));

		if (!h)
			return NULL;
		free(s->hidx);
		s->hidx = h;
		s->hcap = hcap;
		hash_rebuild(s);
	}
	n = &s->v[s->n];
	memset(n, 0, sizeof(*n));
	n->name = strdup(name);
	if (!n->name)
		return NULL;
	n->hash = name_hash(name);
	{
		size_t h = (size_t)n->hash & (s->hcap - 1);

		while (s->hidx[h])
			h = (h + 1) & (s->hcap - 1);
		s->hidx[h] = (uint32_t)s->n + 1;
	}
	/* probe order: append, then swap with a random earlier slot
	 * (memberlist's aliveNode does the same) */
	s->order[s->n_order] = (uint32_t)s->n;
	if (s->n_order > 0) {
		uint32_t j = rnd(s, (uint32_t)s->n_order + 1);
		uint32_t t = s->order[j];

		s->order[j] = s->order[s->n_order];
		s->order[s->n_order] = t;
	}
	s->n_order++;
	s->n++;
	return n;
}

static void suspects_remove(struct swim *s, uint32_t idx)
{
	for (size_t i = 0; i < s->n_suspects; i++)
		if (s->suspects[i] == idx) {
			s->suspects[i] = s->suspects[--s->n_suspects];
			return;
		}
}

static int suspects_add(struct swim *s, uint32_t idx)
{
	if (s->n_suspects == s->cap_suspects) {
		size_t cap = s->cap_suspects ? s->cap_suspects * 2 : 16;
		uint32_t *v = realloc(s->suspects, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		s->suspects = v;
		s->cap_suspects = cap;
	}
	s->suspects[s->n_suspects++] = idx;
	return 0;
}

static uint64_t be(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* Checks that p[0..len) starts with one complete msgpack object whose
 * every length and count fits in the bytes that remain, and sets *out_used
 * to its size. msgpack-c's unpacker allocates what a header claims before
 * reading on, so a 20-byte datagram claiming 2^32 elements must never get
 * there (STYLE.md: validate counts against the bytes remaining). Returns
 * false on anything malformed or truncated. */
static bool mp_check(const uint8_t *p, size_t len, size_t *out_used)
{
	/* c4..df: bytes of the length field (bin, ext, str, array, map) or the
	 * size of the fixed-size value (float, ints, fixext incl. type) */
	static const uint8_t hdr[] = {1, 2, 4, 1, 2, 4, 4,  8, 1, 2, 4, 8, 1, 2,
				      4, 8, 2, 3, 5, 9, 17, 1, 2, 4, 2, 4, 2, 4};
	size_t pos = 0;
	uint64_t pending = 1;

	while (pending > 0) {
		uint64_t skip = 0, items = 0;
		uint8_t b;

		if (pos >= len)
			return false;
		b = p[pos++];
		pending--;
		if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
			/* fixint, nil, bool: nothing more */
		} else if (b <= 0x8f) {
			items = 2u * (b & 0x0fu);
		} else if (b <= 0x9f) {
			items = b & 0x0fu;
		} else if (b <= 0xbf) {
			skip = b & 0x1fu;
		} else if (b == 0xc1) {
			return false;
		} else if (b >= 0xca && b <= 0xd8) {
			skip = hdr[b - 0xc4];
		} else {
			unsigned f = hdr[b - 0xc4];
			uint64_t n;

			if (len - pos < f)
				return false;
			n = be(p + pos, f);
			pos += f;
			if (b <= 0xc6 || (b >= 0xd9 && b <= 0xdb))
				skip = n; /* bin, str */
			else if (b <= 0xc9)
				skip = n + 1; /* ext: type byte and data */
			else if (b == 0xdc || b == 0xdd)
				items = n;
			else
				items = 2 * n; /* map16, map32 */
		}
		if (skip > len - pos)
			return false;
		pos += (size_t)skip;
		pending += items;
		if (pending > len - pos)
			return false; /* every object takes at least one byte */
	}
	*out_used = pos;
	return true;
}

/* Decodes meta (a msgpack map of strings) into m's tags. */
static int meta_to_tags(const uint8_t *meta, size_t len, struct member *m)
{
	msgpack_unpacked u;
	size_t off = 0;
	int rc = 0;

	size_t used;

	if (!meta || len == 0 || !mp_check(meta, len, &used))
		return 0;
	msgpack_unpacked_init(&u);
	if (msgpack_unpack_next(&u, (const char *)meta, len, &off) == MSGPACK_UNPACK_SUCCESS &&
	    u.data.type == MSGPACK_OBJECT_MAP) {
		for (uint32_t i = 0; i < u.data.via.map.size && rc == 0; i++) {
			const msgpack_object_kv *kv = &u.data.via.map.ptr[i];
			char k[128], val[512];

			if (kv->key.type != MSGPACK_OBJECT_STR ||
			    kv->val.type != MSGPACK_OBJECT_STR ||
			    kv->key.via.str.size >= sizeof(k) ||
			    kv->val.via.str.size >= sizeof(val))
				continue;
			if (kv->key.via.str.size) /* ptr may be NULL when empty */
				memcpy(k, kv->key.via.str.ptr, kv->key.via.str.size);
			k[kv->key.via.str.size] = 0;
			if (kv->val.via.str.size)
				memcpy(val, kv->val.via.str.ptr, kv->val.via.str.size);
			val[kv->val.via.str.size] = 0;
			rc = member_tag_set(m, k, val);
		}
	}
	msgpack_unpacked_destroy(&u);
	return rc;
}

static enum member_status table_status(const struct swim *s, const struct node *n)
{
	if (is_self(s, n) && s->leaving)
		return n->state == SWIM_LEFT ? MEMBER_LEFT : MEMBER_LEAVING;
	switch (n->state) {
	case SWIM_ALIVE:
	case SWIM_SUSPECT:
		return MEMBER_ALIVE;
	case SWIM_DEAD:
		return MEMBER_FAILED;
	case SWIM_LEFT:
		return MEMBER_LEFT;
	default:
		return MEMBER_NONE;
	}
}

/* Mirrors n into the member table, reporting the event. Best effort: an
 * allocation failure leaves the table one change behind until the next. */
static void table_sync(struct swim *s, const struct node *n)
{
	struct member m = {0};
	enum member_event ev = MEMBER_EVENT_NONE;
	char ip[64];

	if (!s->table)
		return;
	swim_addr_ip_str(&n->addr, ip, sizeof(ip));
	m.name = n->name;
	m.addr = ip;
	m.port = n->addr.port;
	m.status = table_status(s, n);
	if (meta_to_tags(n->meta, n->meta_len, &m) == 0 && members_upsert(s->table, &m, &ev) == 0 &&
	    ev != MEMBER_EVENT_NONE && s->io.member_event)
		s->io.member_event(s->io.ctx, ev, members_find(s->table, n->name), s->table->seq);
	for (size_t i = 0; i < m.n_tags; i++) {
		free(m.tags[i].key);
		free(m.tags[i].val);
	}
	free(m.tags);
}

static void set_state(struct swim *s, struct node *n, enum swim_state st)
{
	enum swim_state old = n->state;
	uint32_t idx = (uint32_t)(n - s->v);

	if (old == SWIM_SUSPECT && st != SWIM_SUSPECT) {
		free(n->susp);
		n->susp = NULL;
		suspects_remove(s, idx);
	}
	if (live(old) && !live(st))
		s->n_live--;
	else if (!live(old) && live(st))
		s->n_live++;
	n->state = st;
	n->state_ms = now(s);
	if (old != st && s->io.state_change)
		s->io.state_change(s->io.ctx, n->name, old, st);
}

/* Removes node idx entirely (a reap). */
static void node_remove(struct swim *s, size_t idx)
{
	struct node *n = &s->v[idx];
	size_t last = s->n - 1;

	if (live(n->state))
		s->n_live--;
	free(n->susp);
	suspects_remove(s, (uint32_t)idx);
	free(n->name);
	free(n->meta);
	if (idx != last) {
		s->v[idx] = s->v[last];
		for (size_t i = 0; i < s->n_suspects; i++)
			if (s->suspects[i] == last)
				s->suspects[i] = (uint32_t)idx;
	}
	s->n--;
	/* rebuild the probe order without idx, renaming last → idx */
	{
		size_t w = 0;

		for (size_t i = 0; i < s->n_order; i++) {
			uint32_t o = s->order[i];

			if (o == idx)
				continue;
			if (o == last)
				o = (uint32_t)idx;
			s->order[w++] = o;
		}
		s->n_order = w;
		if (s->probe_pos > s->n_order)
			s->probe_pos = s->n_order;
	}
	hash_rebuild(s);
}

/* ---- encoding ------------------------------------------------------------ */

struct enc {
	msgpack_sbuffer sb;
	msgpack_packer pk;
};

static void enc_init(struct enc *e)
{
	msgpack_sbuffer_init(&e->sb);
	msgpack_packer_init(&e->pk, &e->sb, msgpack_sbuffer_write);
}

static void enc_close(struct enc *e) { msgpack_sbuffer_destroy(&e->sb); }

static void pack_str(msgpack_packer *pk, const char *str)
{
	size_t len = strlen(str);

	msgpack_pack_str(pk, len);
	msgpack_pack_str_body(pk, str, len);
}

static void pack_bin(msgpack_packer *pk, const void *p, size_t len)
{
	msgpack_pack_bin(pk, len);
	if (len)
		msgpack_pack_bin_body(pk, p, len);
}

static void pack_addr_ip(msgpack_packer *pk, const struct swim_addr *a)
{
	if (is_v4(a))
		pack_bin(pk, &a->ip[12], 4);
	else
		pack_bin(pk, a->ip, 16);
}

static void pack_bool(msgpack_packer *pk, bool b)
{
	if (b)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
}

static void enc_alive(struct enc *e, const struct node *n)
{
	msgpack_pack_array(&e->pk, 6);
	msgpack_pack_uint8(&e->pk, MSG_ALIVE);
	msgpack_pack_uint32(&e->pk, n->incarnation);
	pack_str(&e->pk, n->name);
	pack_addr_ip(&e->pk, &n->addr);
	msgpack_pack_uint16(&e->pk, n->addr.port);
	pack_bin(&e->pk, n->meta, n->meta_len);
}

static void enc_suspect(struct enc *e, uint32_t inc, const char *node, const char *from)
{
	msgpack_pack_array(&e->pk, 4);
	msgpack_pack_uint8(&e->pk, MSG_SUSPECT);
	msgpack_pack_uint32(&e->pk, inc);
	pack_str(&e->pk, node);
	pack_str(&e->pk, from);
}

static void enc_dead(struct enc *e, uint32_t inc, const char *node, const char *from, bool left,
		     bool prune)
{
	msgpack_pack_array(&e->pk, 6);
	msgpack_pack_uint8(&e->pk, MSG_DEAD);
	msgpack_pack_uint32(&e->pk, inc);
	pack_str(&e->pk, node);
	pack_str(&e->pk, from);
	pack_bool(&e->pk, left);
	pack_bool(&e->pk, prune);
}

/* ---- broadcasts ---------------------------------------------------------- */

static void bcast_free(struct bcast *b) { free(b->buf); }

static int bcast_cmp(const struct bcast *x, const struct bcast *y)
{
	if (x->transmits != y->transmits)
		return x->transmits < y->transmits ? -1 : 1;
	return x->id > y->id ? -1 : x->id < y->id ? 1 : 0; /* newest first */
}

/* Queues e's bytes, replacing any queued message about the same member.
 * The queue stays sorted by (transmits, newest first), so a new message
 * goes to the front. Best effort: when out of memory the change still
 * spreads by push/pull. */
static void queue_bcast(struct swim *s, const char *about, struct enc *e, bool is_leave)
{
	uint64_t key = name_hash(about);
	struct bcast b = {0};

	for (size_t i = 0; i < s->nq; i++)
		if (s->q[i].key == key && !s->q[i].is_leave) {
			bcast_free(&s->q[i]);
			memmove(&s->q[i], &s->q[i + 1], (s->nq - i - 1) * sizeof(*s->q));
			s->nq--;
			break;
		}
	if (s->nq == s->capq) {
		size_t cap = s->capq ? s->capq * 2 : 16;
		struct bcast *q = realloc(s->q, cap * sizeof(*q));
		struct bcast *scratch = realloc(s->scratch, cap * sizeof(*scratch));

		if (scratch)
			s->scratch = scratch;
		if (!q || !scratch) {
			if (q)
				s->q = q;
			return;
		}
		s->q = q;
		s->capq = cap;
	}
	b.buf = malloc(e->sb.size);
	if (!b.buf)
		return;
	memcpy(b.buf, e->sb.data, e->sb.size);
	b.len = e->sb.size;
	b.key = key;
	b.id = ++s->next_bcast_id;
	b.is_leave = is_leave;
	memmove(&s->q[1], &s->q[0], s->nq * sizeof(*s->q));
	s->q[0] = b;
	s->nq++;
}

/* Appends queued broadcasts to buf (holding *len bytes) up to the MTU,
 * least transmitted and newest first; drops those past the limit. The
 * ones sent and the ones kept are each still sorted, so one merge keeps
 * the queue sorted (memberlist keeps a btree for the same purpose). */
static void add_broadcasts(struct swim *s, uint8_t *buf, size_t *len)
{
	unsigned limit;
	size_t n_sent = 0, n_rest = 0, a = 0, b = 0, w = 0;
	struct bcast *sent = s->scratch;

	if (s->nq == 0)
		return;
	limit = retransmit_limit(s);
	for (size_t i = 0; i < s->nq; i++) {
		struct bcast *x = &s->q[i];

		if (*len + x->len <= s->cfg.mtu) {
			memcpy(buf + *len, x->buf, x->len);
			*len += x->len;
			if (++x->transmits >= limit) {
				bcast_free(x);
				continue;
			}
			sent[n_sent++] = *x;
			continue;
		}
		s->q[n_rest++] = *x; /* n_rest <= i: compacting in place */
	}
	/* merge rest (q[0..n_rest)) and sent from the back into q */
	w = n_rest + n_sent;
	a = n_rest;
	b = n_sent;
	while (b > 0) {
		if (a > 0 && bcast_cmp(&s->q[a - 1], &sent[b - 1]) > 0)
			s->q[--w] = s->q[--a];
		else
			s->q[--w] = sent[--b];
	}
	s->nq = n_rest + n_sent;
}

/* Sends e (one message) as a datagram with piggybacked broadcasts. */
static void send_packet(struct swim *s, const struct swim_addr *to, struct enc *e)
{
	uint8_t buf[65536];
	size_t len = e->sb.size;

	if (len > sizeof(buf))
		return;
	memcpy(buf, e->sb.data, len);
	if (len < s->cfg.mtu)
		add_broadcasts(s, buf, &len);
	s->stats.packets_sent++;
	s->stats.bytes_sent += len;
	s->io.send_packet(s->io.ctx, to, buf, len);
}

static void send_stream(struct swim *s, const struct swim_addr *to, struct enc *e)
{
	s->stats.streams_sent++;
	s->stats.stream_bytes_sent += e->sb.size;
	s->io.send_stream(s->io.ctx, to, (const uint8_t *)e->sb.data, e->sb.size);
}

static void send_ping(struct swim *s, const struct swim_addr *to, uint32_t seq, const char *target,
		      bool stream)
{
	struct enc e;

	enc_init(&e);
	msgpack_pack_array(&e.pk, 6);
	msgpack_pack_uint8(&e.pk, MSG_PING);
	msgpack_pack_uint32(&e.pk, seq);
	pack_str(&e.pk, target);
	pack_str(&e.pk, s->v[0].name);
	pack_addr_ip(&e.pk, &s->v[0].addr);
	msgpack_pack_uint16(&e.pk, s->v[0].addr.port);
	if (stream)
		send_stream(s, to, &e);
	else
		send_packet(s, to, &e);
	enc_close(&e);
}

/* An ACK or NACK; an ACK of ours carries io->ack_payload's bytes as a
 * third element (older peers ignore it). */
static void send_ack(struct swim *s, const struct swim_addr *to, int type, uint32_t seq,
		     bool stream, bool own)
{
	struct enc e;
	uint8_t payload[SWIM_ACK_PAYLOAD_MAX];
	size_t plen = 0;

	if (own && type == MSG_ACK && s->io.ack_payload) {
		plen = s->io.ack_payload(s->io.ctx, payload, sizeof(payload));
		if (plen > sizeof(payload))
			plen = 0;
	}
	enc_init(&e);
	msgpack_pack_array(&e.pk, plen ? 3 : 2);
	msgpack_pack_uint8(&e.pk, (uint8_t)type);
	msgpack_pack_uint32(&e.pk, seq);
	if (plen)
		pack_bin(&e.pk, payload, plen);
	if (stream)
		send_stream(s, to, &e);
	else
		send_packet(s, to, &e);
	enc_close(&e);
}

static void bcast_alive(struct swim *s, const struct node *n)
{
	struct enc e;

	enc_init(&e);
	enc_alive(&e, n);
	queue_bcast(s, n->name, &e, false);
	enc_close(&e);
}

/* ---- state changes (memberlist state.go) --------------------------------- */

static void refute(struct swim *s, uint32_t accused_inc)
{
	struct node *self = &s->v[0];

	if (accused_inc >= self->incarnation)
		self->incarnation = accused_inc + 1;
	else
		self->incarnation++;
	s->stats.refutes++;
	awareness_delta(s, 1);
	bcast_alive(s, self);
}

struct alive_msg {
	uint32_t inc;
	const char *name;
	struct swim_addr addr;
	const uint8_t *meta;
	size_t meta_len;
};

static void on_alive(struct swim *s, const struct alive_msg *a)
{
	struct node *n = find(s, a->name);
	bool changed_meta;

	if (n && is_self(s, n)) {
		/* an old or echoed view of us: refute only if it is not ours */
		if (a->inc < n->incarnation)
			return;
		if (a->inc == n->incarnation && a->meta_len == n->meta_len &&
		    (a->meta_len == 0 || memcmp(a->meta, n->meta, a->meta_len) == 0))
			return;
		if (!s->leaving)
			refute(s, a->inc);
		return;
	}
	if (n && a->inc <= n->incarnation)
		return;
	if (!n) {
		n = node_add(s, a->name);
		if (!n)
			return;
	}
	changed_meta = a->meta_len != n->meta_len ||
		       (a->meta_len && memcmp(a->meta, n->meta, a->meta_len) != 0);
	if (changed_meta) {
		uint8_t *m = a->meta_len ? malloc(a->meta_len) : NULL;

		if (a->meta_len && !m)
			return;
		if (m)
			memcpy(m, a->meta, a->meta_len);
		free(n->meta);
		n->meta = m;
		n->meta_len = a->meta_len;
	}
	n->addr = a->addr;
	n->incarnation = a->inc;
	bcast_alive(s, n);
	if (n->state != SWIM_ALIVE)
		set_state(s, n, SWIM_ALIVE);
	table_sync(s, n);
}

/* Lifeguard §IV-C: the timeout after c confirmations of k expected. */
static uint64_t suspicion_timeout(const struct suspicion *p)
{
	double frac, raw;

	if (p->k < 1)
		return p->min_ms;
	frac = log((double)p->n + 1) / log((double)p->k + 1);
	raw = (double)p->max_ms - frac * (double)(p->max_ms - p->min_ms);
	if (raw < (double)p->min_ms)
		return p->min_ms;
	return (uint64_t)raw;
}

static void on_suspect(struct swim *s, uint32_t inc, const char *name, const char *from)
{
	struct node *n = find(s, name);
	struct enc e;
	uint64_t fh = name_hash(from);

	if (!n || inc < n->incarnation)
		return;
	if (n->state == SWIM_SUSPECT && n->susp) {
		struct suspicion *p = n->susp;

		if (inc != n->incarnation)
			return;
		for (unsigned i = 0; i < p->n_from; i++)
			if (p->from[i] == fh)
				return; /* not independent */
		if (p->n >= p->k)
			return;
		if (p->n_from < sizeof(p->from) / sizeof(p->from[0]))
			p->from[p->n_from++] = fh;
		p->n++;
		p->timeout_ms = suspicion_timeout(p);
		want_wake(s, p->start_ms + p->timeout_ms);
		enc_init(&e); /* re-gossip so others get the confirmation too */
		enc_suspect(&e, inc, name, from);
		queue_bcast(s, name, &e, false);
		enc_close(&e);
		return;
	}
	if (n->state != SWIM_ALIVE)
		return;
	if (is_self(s, n)) {
		if (!s->leaving)
			refute(s, inc);
		return;
	}
	n->susp = calloc(1, sizeof(*n->susp));
	if (!n->susp)
		return;
	if (suspects_add(s, (uint32_t)(n - s->v)) < 0) {
		free(n->susp);
		n->susp = NULL;
		return;
	}
	{
		struct suspicion *p = n->susp;
		size_t est = s->n_live;

		p->start_ms = now(s);
		p->k = s->cfg.suspicion_mult > 2 ? s->cfg.suspicion_mult - 2 : 0;
		if (est < 2 || est - 2 < p->k)
			p->k = 0;
		p->min_ms = suspicion_min_ms(s);
		p->max_ms = p->min_ms * s->cfg.suspicion_max_mult;
		p->from[0] = fh;
		p->n_from = 1;
		p->timeout_ms = suspicion_timeout(p);
		want_wake(s, p->start_ms + p->timeout_ms);
	}
	n->incarnation = inc;
	enc_init(&e);
	enc_suspect(&e, inc, name, from);
	queue_bcast(s, name, &e, false);
	enc_close(&e);
	set_state(s, n, SWIM_SUSPECT); /* ALIVE → SUSPECT keeps n->susp */
	table_sync(s, n);
}

static void on_dead(struct swim *s, uint32_t inc, const char *name, const char *from, bool left,
		    bool prune)
{
	struct node *n = find(s, name);
	struct enc e;

	if (!n || inc < n->incarnation)
		return;
	if (is_self(s, n)) {
		if (!s->leaving)
			refute(s, inc);
		return;
	}
	if (n->state == SWIM_LEFT && !prune)
		return;
	if (n->state == SWIM_DEAD && !left)
		return;
	if (live(n->state) && left && strcmp(from, name) != 0)
		return; /* only the member itself leaves while alive */
	enc_init(&e);
	enc_dead(&e, inc, name, from, left, prune);
	queue_bcast(s, name, &e, false);
	enc_close(&e);
	n->incarnation = inc;
	set_state(s, n, left ? SWIM_LEFT : SWIM_DEAD);
	table_sync(s, n);
	if (prune) {
		if (s->table && members_find(s->table, name)) {
			struct member copy = {0};
			const struct member *m = members_find(s->table, name);

			copy.name = strdup(m->name);
			copy.addr = strdup(m->addr);
			copy.port = m->port;
			copy.status = m->status;
			if (members_remove(s->table, name) == 0 && s->io.member_event &&
			    copy.name && copy.addr)
				s->io.member_event(s->io.ctx, MEMBER_EVENT_REAP, &copy,
						   s->table->seq);
			member_free_fields(&copy);
		}
		node_remove(s, (size_t)(n - s->v));
	}
}

/* ---- decoding ------------------------------------------------------------ */

/* Bounded views into a decoded msgpack array: every getter checks type
 * and index and sets *bad on mismatch (sticky). */
struct arr {
	const msgpack_object *o;
	uint32_t n;
	bool bad;
};

static uint64_t get_u(struct arr *a, uint32_t i, uint64_t max)
{
	if (i >= a->n || a->o[i].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a->o[i].via.u64 > max) {
		a->bad = true;
		return 0;
	}
	return a->o[i].via.u64;
}

static bool get_b(struct arr *a, uint32_t i)
{
	if (i >= a->n || a->o[i].type != MSGPACK_OBJECT_BOOLEAN) {
		a->bad = true;
		return false;
	}
	return a->o[i].via.boolean;
}

/* Copies a string field into buf (NUL-terminated, no embedded NUL). */
static void get_s(struct arr *a, uint32_t i, char *buf, size_t len)
{
	buf[0] = 0;
	if (i >= a->n || a->o[i].type != MSGPACK_OBJECT_STR || a->o[i].via.str.size >= len) {
		a->bad = true;
		return;
	}
	if (a->o[i].via.str.size == 0)
		return; /* ptr may be NULL */
	if (memchr(a->o[i].via.str.ptr, 0, a->o[i].via.str.size)) {
		a->bad = true;
		return;
	}
	memcpy(buf, a->o[i].via.str.ptr, a->o[i].via.str.size);
	buf[a->o[i].via.str.size] = 0;
}

static const uint8_t *get_bin(struct arr *a, uint32_t i, size_t max, size_t *out_len)
{
	if (i >= a->n || a->o[i].type != MSGPACK_OBJECT_BIN || a->o[i].via.bin.size > max) {
		a->bad = true;
		*out_len = 0;
		return NULL;
	}
	*out_len = a->o[i].via.bin.size;
	return (const uint8_t *)a->o[i].via.bin.ptr;
}

static void get_addr(struct arr *a, uint32_t ip_i, uint32_t port_i, struct swim_addr *out)
{
	size_t len;
	const uint8_t *ip = get_bin(a, ip_i, 16, &len);

	memset(out, 0, sizeof(*out));
	if (len == 4) {
		out->ip[10] = 0xff;
		out->ip[11] = 0xff;
		memcpy(&out->ip[12], ip, 4);
	} else if (len == 16) {
		memcpy(out->ip, ip, 16);
	} else {
		a->bad = true;
	}
	out->port = (uint16_t)get_u(a, port_i, 65535);
}

static bool seen_before(struct swim *s, const char *id);

static void enc_user(struct enc *e, const struct swim_user_event *ev)
{
	msgpack_pack_array(&e->pk, 8);
	msgpack_pack_uint8(&e->pk, MSG_USER);
	msgpack_pack_uint64(&e->pk, ev->ltime);
	pack_str(&e->pk, ev->id);
	pack_str(&e->pk, ev->name);
	pack_bin(&e->pk, ev->payload, ev->payload_len);
	pack_str(&e->pk, ev->node_filter ? ev->node_filter : "");
	pack_str(&e->pk, ev->service_filter ? ev->service_filter : "");
	pack_str(&e->pk, ev->tag_filter ? ev->tag_filter : "");
}

/* First sight of an event: remember, deliver, re-gossip. False if seen. */
static bool user_event_new(struct swim *s, const struct swim_user_event *ev)
{
	struct enc e;

	if (seen_before(s, ev->id))
		return false;
	if (ev->ltime >= s->event_clock)
		s->event_clock = ev->ltime + 1; /* Lamport: witness */
	if (s->io.user_event)
		s->io.user_event(s->io.ctx, ev);
	enc_init(&e);
	enc_user(&e, ev);
	queue_bcast(s, ev->id, &e, false);
	enc_close(&e);
	return true;
}

int swim_fire_event(struct swim *s, struct swim_user_event *ev)
{
	if (!ev->id || !ev->name || !*ev->name ||
	    strlen(ev->name) + ev->payload_len > SWIM_EVENT_MAX)
		return -EINVAL;
	ev->ltime = s->event_clock;
	(void)user_event_new(s, ev);
	want_wake(s, now(s));
	return 0;
}

static bool seen_before(struct swim *s, const char *id)
{
	uint64_t h = name_hash(id);

	for (size_t i = 0; i < EVENT_SEEN; i++)
		if (s->event_seen[i] == h)
			return true;
	s->event_seen[s->event_seen_pos] = h;
	s->event_seen_pos = (s->event_seen_pos + 1) % EVENT_SEEN;
	return false;
}

struct query_msg {
	const char *id, *op, *origin;
	const uint8_t *arg;
	size_t arg_len;
	struct swim_addr origin_addr;
};

/* First sight of a query: re-gossip it, handle it, answer the origin. */
static void query_new(struct swim *s, const struct query_msg *q)
{
	struct enc e;
	uint8_t out[SWIM_QUERY_MAX];
	size_t out_len = sizeof(out);

	if (seen_before(s, q->id))
		return;
	enc_init(&e);
	msgpack_pack_array(&e.pk, 7);
	msgpack_pack_uint8(&e.pk, MSG_QUERY);
	pack_str(&e.pk, q->id);
	pack_str(&e.pk, q->op);
	pack_bin(&e.pk, q->arg, q->arg_len);
	pack_str(&e.pk, q->origin);
	pack_addr_ip(&e.pk, &q->origin_addr);
	msgpack_pack_uint16(&e.pk, q->origin_addr.port);
	queue_bcast(s, q->id, &e, false);
	enc_close(&e);
	if (!s->io.query)
		return;
	s->io.query(s->io.ctx, q->op, q->arg, q->arg_len, out, &out_len);
	if (out_len > sizeof(out))
		return;
	if (strcmp(q->origin, s->v[0].name) == 0) {
		if (s->io.query_response)
			s->io.query_response(s->io.ctx, q->id, s->v[0].name, out, out_len);
		return;
	}
	enc_init(&e);
	msgpack_pack_array(&e.pk, 4);
	msgpack_pack_uint8(&e.pk, MSG_QUERY_RESP);
	pack_str(&e.pk, q->id);
	pack_str(&e.pk, s->v[0].name);
	pack_bin(&e.pk, out, out_len);
	send_stream(s, &q->origin_addr, &e); /* reliable: answers must not be lost */
	enc_close(&e);
}

int swim_query(struct swim *s, const char *id, const char *op, const uint8_t *arg, size_t arg_len)
{
	struct query_msg q = {id, op, s->v[0].name, arg, arg_len, s->v[0].addr};

	if (!id || !*id || !op || arg_len > SWIM_QUERY_MAX || strlen(id) >= 64 || strlen(op) >= 64)
		return -EINVAL;
	query_new(s, &q);
	want_wake(s, now(s));
	return 0;
}

static void send_pushpull(struct swim *s, const struct swim_addr *to, bool join, bool reply);
static void merge_state(struct swim *s, const msgpack_object *states);

static void on_ping(struct swim *s, struct arr *a, const struct swim_addr *from, bool stream)
{
	char target[NAME_MAX_LEN + 1], src[NAME_MAX_LEN + 1];
	uint32_t seq = (uint32_t)get_u(a, 1, UINT32_MAX);
	struct swim_addr src_addr;

	get_s(a, 2, target, sizeof(target));
	get_s(a, 3, src, sizeof(src));
	get_addr(a, 4, 5, &src_addr);
	if (a->bad)
		return;
	if (strcmp(target, s->v[0].name) != 0)
		return; /* meant for whoever had this address before */
	/* datagrams are answered to their source; streams to the advertised
	 * address (the stream's source port is ephemeral) */
	send_ack(s, stream ? &src_addr : from, MSG_ACK, seq, stream, true);
}

static void on_ping_req(struct swim *s, struct arr *a, const struct swim_addr *from)
{
	char target[NAME_MAX_LEN + 1];
	uint32_t seq = (uint32_t)get_u(a, 1, UINT32_MAX);
	struct swim_addr taddr;
	bool nack;
	struct relay *r;

	get_s(a, 2, target, sizeof(target));
	get_addr(a, 3, 4, &taddr);
	nack = get_b(a, 5);
	if (a->bad || s->n_relays == MAX_RELAYS)
		return;
	r = &s->relays[s->n_relays++];
	r->seq = ++s->seq;
	r->origin_seq = seq;
	r->origin = *from;
	r->nack = nack;
	r->deadline_ms = now(s) + s->cfg.probe_timeout_ms;
	want_wake(s, r->deadline_ms);
	send_ping(s, &taddr, r->seq, target, false);
}

static void on_ack(struct swim *s, uint32_t seq, bool nack, const uint8_t *payload, size_t plen)
{
	struct probe *p = &s->probe;

	if (p->active && seq == p->seq) {
		if (nack) {
			p->nacks++;
			return;
		}
		if (!p->indirect_sent && plen && s->io.ping_complete) {
			uint64_t t = now_us(s);

			s->io.ping_complete(s->io.ctx, p->target, t > p->sent_us ? t - p->sent_us : 0,
					    payload, plen);
		}
		if (!p->indirect_sent)
			awareness_delta(s, -1);
		p->active = false;
		free(p->target);
		p->target = NULL;
		return;
	}
	if (nack)
		return;
	for (size_t i = 0; i < s->n_relays; i++)
		if (s->relays[i].seq == seq) {
			struct relay r = s->relays[i];

			s->relays[i] = s->relays[--s->n_relays];
			send_ack(s, &r.origin, MSG_ACK, r.origin_seq, false, false);
			return;
		}
}

/* Handles one decoded message. Returns false if it was malformed. */
static bool handle_msg(struct swim *s, const msgpack_object *o, const struct swim_addr *from,
		       bool stream)
{
	struct arr a = {0};
	char name[NAME_MAX_LEN + 1], from_name[NAME_MAX_LEN + 1];
	unsigned type;

	if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 1)
		return false;
	a.o = o->via.array.ptr;
	a.n = o->via.array.size;
	type = (unsigned)get_u(&a, 0, 255);
	if (a.bad)
		return false;
	switch (type) {
	case MSG_PING:
		on_ping(s, &a, from, stream);
		break;
	case MSG_PING_REQ:
		if (!stream)
			on_ping_req(s, &a, from);
		break;
	case MSG_ACK:
	case MSG_NACK: {
		uint32_t seq = (uint32_t)get_u(&a, 1, UINT32_MAX);
		const uint8_t *payload = NULL;
		size_t plen = 0;

		/* the payload is optional; a malformed one is ignored, not
		 * the ACK (a newer peer may send something else there) */
		if (a.n > 2 && a.o[2].type == MSGPACK_OBJECT_BIN &&
		    a.o[2].via.bin.size <= SWIM_ACK_PAYLOAD_MAX) {
			payload = (const uint8_t *)a.o[2].via.bin.ptr;
			plen = a.o[2].via.bin.size;
		}
		if (!a.bad)
			on_ack(s, seq, type == MSG_NACK, payload, plen);
		break;
	}
	case MSG_SUSPECT: {
		uint32_t inc = (uint32_t)get_u(&a, 1, UINT32_MAX);

		get_s(&a, 2, name, sizeof(name));
		get_s(&a, 3, from_name, sizeof(from_name));
		if (!a.bad)
			on_suspect(s, inc, name, from_name);
		break;
	}
	case MSG_ALIVE: {
		struct alive_msg am = {0};

		am.inc = (uint32_t)get_u(&a, 1, UINT32_MAX);
		get_s(&a, 2, name, sizeof(name));
		get_addr(&a, 3, 4, &am.addr);
		am.meta = get_bin(&a, 5, META_MAX_LEN, &am.meta_len);
		am.name = name;
		if (!a.bad && name[0])
			on_alive(s, &am);
		break;
	}
	case MSG_DEAD: {
		uint32_t inc = (uint32_t)get_u(&a, 1, UINT32_MAX);
		bool left, prune;

		get_s(&a, 2, name, sizeof(name));
		get_s(&a, 3, from_name, sizeof(from_name));
		left = get_b(&a, 4);
		prune = get_b(&a, 5);
		if (!a.bad)
			on_dead(s, inc, name, from_name, left, prune);
		break;
	}
	case MSG_PUSHPULL: {
		bool join, reply;
		struct swim_addr src;

		if (!stream)
			break;
		join = get_b(&a, 1);
		reply = get_b(&a, 2);
		get_s(&a, 3, name, sizeof(name));
		get_addr(&a, 4, 5, &src);
		if (a.bad || a.n < 7 || a.o[6].type != MSGPACK_OBJECT_ARRAY)
			return false;
		merge_state(s, &a.o[6]);
		if (!reply)
			send_pushpull(s, &src, join, true); /* echo join: see join_replies */
		else if (join)
			s->stats.join_replies++;
		break;
	}
	case MSG_USER: {
		struct swim_user_event ev = {0};
		char id[64], nf[256], sf[256], tf[256];

		ev.ltime = get_u(&a, 1, UINT64_MAX);
		get_s(&a, 2, id, sizeof(id));
		get_s(&a, 3, name, sizeof(name));
		ev.payload = get_bin(&a, 4, SWIM_EVENT_MAX, &ev.payload_len);
		get_s(&a, 5, nf, sizeof(nf));
		get_s(&a, 6, sf, sizeof(sf));
		get_s(&a, 7, tf, sizeof(tf));
		if (a.bad || !id[0] || !name[0])
			break;
		ev.id = id;
		ev.name = name;
		ev.node_filter = nf;
		ev.service_filter = sf;
		ev.tag_filter = tf;
		(void)user_event_new(s, &ev);
		break;
	}
	case MSG_QUERY: {
		struct query_msg q = {0};
		char id[64], op[64];

		get_s(&a, 1, id, sizeof(id));
		get_s(&a, 2, op, sizeof(op));
		q.arg = get_bin(&a, 3, SWIM_QUERY_MAX, &q.arg_len);
		get_s(&a, 4, name, sizeof(name));
		get_addr(&a, 5, 6, &q.origin_addr);
		if (a.bad || !id[0] || !name[0])
			break;
		q.id = id;
		q.op = op;
		q.origin = name;
		query_new(s, &q);
		break;
	}
	case MSG_QUERY_RESP: {
		char id[64];
		size_t len;
		const uint8_t *p;

		get_s(&a, 1, id, sizeof(id));
		get_s(&a, 2, name, sizeof(name));
		p = get_bin(&a, 3, SWIM_QUERY_MAX, &len);
		if (!a.bad && s->io.query_response)
			s->io.query_response(s->io.ctx, id, name, p, len);
		break;
	}
	default:
		break; /* a newer peer's message: ignore */
	}
	return !a.bad;
}

static int recv_common(struct swim *s, const struct swim_addr *from, const uint8_t *buf, size_t len,
		       bool stream)
{
	msgpack_unpacked u;
	size_t off = 0;
	int rc = 0, n = 0;

	s->stats.packets_recv++;
	msgpack_unpacked_init(&u);
	while (off < len) {
		size_t used;
		msgpack_unpack_return r = MSGPACK_UNPACK_PARSE_ERROR;

		if (mp_check(buf + off, len - off, &used))
			r = msgpack_unpack_next(&u, (const char *)buf, off + used, &off);
		if (r != MSGPACK_UNPACK_SUCCESS || !handle_msg(s, &u.data, from, stream)) {
			rc = -EINVAL;
			break;
		}
		if (++n > 64 || stream)
			break;
	}
	msgpack_unpacked_destroy(&u);
	if (rc < 0)
		s->stats.bad_packets++;
	return rc;
}

int swim_recv_packet(struct swim *s, const struct swim_addr *from, const uint8_t *buf, size_t len)
{
	return recv_common(s, from, buf, len, false);
}

int swim_recv_stream(struct swim *s, const struct swim_addr *from, const uint8_t *buf, size_t len)
{
	return recv_common(s, from, buf, len, true);
}

/* ---- push/pull ----------------------------------------------------------- */

static void send_pushpull(struct swim *s, const struct swim_addr *to, bool join, bool reply)
{
	struct enc e;

	enc_init(&e);
	msgpack_pack_array(&e.pk, 7);
	msgpack_pack_uint8(&e.pk, MSG_PUSHPULL);
	pack_bool(&e.pk, join);
	pack_bool(&e.pk, reply);
	pack_str(&e.pk, s->v[0].name);
	pack_addr_ip(&e.pk, &s->v[0].addr);
	msgpack_pack_uint16(&e.pk, s->v[0].addr.port);
	msgpack_pack_array(&e.pk, (uint32_t)s->n);
	for (size_t i = 0; i < s->n; i++) {
		const struct node *n = &s->v[i];

		msgpack_pack_array(&e.pk, 6);
		pack_str(&e.pk, n->name);
		pack_addr_ip(&e.pk, &n->addr);
		msgpack_pack_uint16(&e.pk, n->addr.port);
		pack_bin(&e.pk, n->meta, n->meta_len);
		msgpack_pack_uint32(&e.pk, n->incarnation);
		msgpack_pack_uint8(&e.pk, (uint8_t)n->state);
	}
	send_stream(s, to, &e);
	enc_close(&e);
}

/* A member we never heard of, reported dead: remember it as failed without
 * spreading anything (it may come back through a reconnect). */
static void learn_dead(struct swim *s, const struct alive_msg *a)
{
	struct node *n = node_add(s, a->name);

	if (!n)
		return;
	if (a->meta_len) {
		n->meta = malloc(a->meta_len);
		if (n->meta) {
			memcpy(n->meta, a->meta, a->meta_len);
			n->meta_len = a->meta_len;
		}
	}
	n->addr = a->addr;
	n->incarnation = a->inc;
	set_state(s, n, SWIM_DEAD);
	table_sync(s, n);
}

/* memberlist mergeState: alive as alive, left as left; dead and suspect
 * only make us suspect (we do not take another's word for a death). */
static void merge_state(struct swim *s, const msgpack_object *states)
{
	for (uint32_t i = 0; i < states->via.array.size; i++) {
		const msgpack_object *o = &states->via.array.ptr[i];
		struct arr a = {0};
		char name[NAME_MAX_LEN + 1];
		struct alive_msg am = {0};
		unsigned st;

		if (o->type != MSGPACK_OBJECT_ARRAY)
			continue;
		a.o = o->via.array.ptr;
		a.n = o->via.array.size;
		get_s(&a, 0, name, sizeof(name));
		get_addr(&a, 1, 2, &am.addr);
		am.meta = get_bin(&a, 3, META_MAX_LEN, &am.meta_len);
		am.inc = (uint32_t)get_u(&a, 4, UINT32_MAX);
		st = (unsigned)get_u(&a, 5, SWIM_LEFT);
		am.name = name;
		if (a.bad || !name[0])
			continue;
		switch (st) {
		case SWIM_ALIVE:
			on_alive(s, &am);
			break;
		case SWIM_LEFT:
			on_dead(s, am.inc, name, name, true, false);
			break;
		case SWIM_DEAD:
		case SWIM_SUSPECT:
			if (!find(s, name)) {
				if (st == SWIM_DEAD)
					learn_dead(s, &am);
				else
					on_alive(s, &am); /* learn it, then doubt it */
			}
			on_suspect(s, am.inc, name, s->v[0].name);
			break;
		default:
			break;
		}
	}
}

/* ---- periodic work ------------------------------------------------------- */

/* Up to k random members other than self and `except`, matching want(). */
static size_t k_random(struct swim *s, unsigned k, const struct node *except,
		       bool (*want)(const struct swim *, const struct node *, uint64_t), uint64_t t,
		       uint32_t *out)
{
	size_t got = 0;

	for (size_t tries = 0; tries < 3 * s->n && got < k; tries++) {
		uint32_t i = rnd(s, (uint32_t)s->n);
		const struct node *n = &s->v[i];
		bool dup = false;

		if (i == 0 || n == except || !want(s, n, t))
			continue;
		for (size_t j = 0; j < got; j++)
			dup |= out[j] == i;
		if (!dup)
			out[got++] = i;
	}
	return got;
}

static bool want_alive(const struct swim *s, const struct node *n, uint64_t t)
{
	(void)s;
	(void)t;
	return n->state == SWIM_ALIVE;
}

static bool want_gossip(const struct swim *s, const struct node *n, uint64_t t)
{
	if (live(n->state))
		return true;
	return n->state == SWIM_DEAD && t - n->state_ms < s->cfg.gossip_to_dead_ms;
}

static bool want_dead(const struct swim *s, const struct node *n, uint64_t t)
{
	(void)s;
	(void)t;
	return n->state == SWIM_DEAD;
}

static void probe_start(struct swim *s, uint64_t t)
{
	struct probe *p = &s->probe;

	for (size_t tries = 0; tries < s->n_order; tries++) {
		struct node *n;

		if (s->probe_pos >= s->n_order) {
			/* a full round: reshuffle (Fisher-Yates), as memberlist */
			for (size_t i = s->n_order; i > 1; i--) {
				uint32_t j = rnd(s, (uint32_t)i);
				uint32_t x = s->order[i - 1];

				s->order[i - 1] = s->order[j];
				s->order[j] = x;
			}
			s->probe_pos = 0;
		}
		n = &s->v[s->order[s->probe_pos++]];
		if (is_self(s, n) || !live(n->state))
			continue;
		p->target = strdup(n->name);
		if (!p->target)
			return;
		p->active = true;
		p->seq = ++s->seq;
		p->hash = n->hash;
		p->indirect_sent = false;
		p->expected_nacks = p->nacks = 0;
		p->direct_deadline_ms = t + scale(s, s->cfg.probe_timeout_ms);
		p->end_ms = t + scale(s, s->cfg.probe_interval_ms);
		s->stats.probes++;
		p->sent_us = now_us(s);
		send_ping(s, &n->addr, p->seq, n->name, false);
		return;
	}
}

static void probe_indirect(struct swim *s, struct node *target)
{
	struct probe *p = &s->probe;
	uint32_t idx[16];
	unsigned k = s->cfg.indirect_checks < 16 ? s->cfg.indirect_checks : 16;
	size_t got = k_random(s, k, target, want_alive, 0, idx);
	struct enc e;

	p->indirect_sent = true;
	p->expected_nacks = (unsigned)got;
	enc_init(&e);
	msgpack_pack_array(&e.pk, 6);
	msgpack_pack_uint8(&e.pk, MSG_PING_REQ);
	msgpack_pack_uint32(&e.pk, p->seq);
	pack_str(&e.pk, target->name);
	pack_addr_ip(&e.pk, &target->addr);
	msgpack_pack_uint16(&e.pk, target->addr.port);
	pack_bool(&e.pk, true);
	for (size_t i = 0; i < got; i++)
		send_packet(s, &s->v[idx[i]].addr, &e);
	enc_close(&e);
	if (s->cfg.tcp_fallback)
		send_ping(s, &target->addr, p->seq, target->name, true);
}

static void probe_fail(struct swim *s, struct node *target)
{
	struct probe *p = &s->probe;

	s->stats.probe_failures++;
	/* Lifeguard: missing nacks mean our own links are the problem */
	if (p->expected_nacks > 0)
		awareness_delta(
		    s, p->nacks < p->expected_nacks ? (int)(p->expected_nacks - p->nacks) : 0);
	else
		awareness_delta(s, 1);
	if (target && target->state == SWIM_ALIVE)
		on_suspect(s, target->incarnation, target->name, s->v[0].name);
}

static void probe_tick(struct swim *s, uint64_t t)
{
	struct probe *p = &s->probe;

	if (p->active) {
		struct node *target = find_h(s, p->target, p->hash);

		if (!target || !live(target->state)) {
			p->active = false; /* gone meanwhile: nothing to decide */
		} else if (t >= p->end_ms) {
			p->active = false;
			probe_fail(s, target);
		} else if (!p->indirect_sent && t >= p->direct_deadline_ms) {
			probe_indirect(s, target);
		}
		if (!p->active) {
			free(p->target);
			p->target = NULL;
		}
	}
	if (!p->active && t >= s->next_probe_ms && !s->leaving) {
		probe_start(s, t);
		s->next_probe_ms = t + scale(s, s->cfg.probe_interval_ms);
	}
	if (p->active)
		want_wake(s, p->indirect_sent ? p->end_ms : p->direct_deadline_ms);
	if (!s->leaving)
		want_wake(s, s->next_probe_ms);
}

static void gossip_tick(struct swim *s, uint64_t t)
{
	uint32_t idx[16];
	unsigned k = s->cfg.gossip_nodes < 16 ? s->cfg.gossip_nodes : 16;
	size_t got;

	if (t < s->next_gossip_ms)
		goto out;
	s->next_gossip_ms = t + s->cfg.gossip_interval_ms;
	if (s->nq == 0)
		goto out;
	got = k_random(s, k, NULL, want_gossip, t, idx);
	for (size_t i = 0; i < got && s->nq > 0; i++) {
		uint8_t buf[65536];
		size_t len = 0;

		add_broadcasts(s, buf, &len);
		if (len == 0)
			break;
		s->stats.packets_sent++;
		s->stats.bytes_sent += len;
		s->io.send_packet(s->io.ctx, &s->v[idx[i]].addr, buf, len);
	}
out:
	want_wake(s, s->next_gossip_ms);
}

static void suspicion_tick(struct swim *s, uint64_t t)
{
	for (size_t i = 0; i < s->n_suspects;) {
		struct node *n = &s->v[s->suspects[i]];
		struct suspicion *p = n->susp;

		if (p && t - p->start_ms >= p->timeout_ms) {
			/* declares n dead; removes it from suspects */
			on_dead(s, n->incarnation, n->name, s->v[0].name, false, false);
			continue;
		}
		if (p)
			want_wake(s, p->start_ms + p->timeout_ms);
		i++;
	}
}

static void relay_tick(struct swim *s, uint64_t t)
{
	for (size_t i = 0; i < s->n_relays;) {
		struct relay *r = &s->relays[i];

		if (t >= r->deadline_ms) {
			struct relay copy = *r;

			s->relays[i] = s->relays[--s->n_relays];
			if (copy.nack)
				send_ack(s, &copy.origin, MSG_NACK, copy.origin_seq, false, false);
			continue;
		}
		want_wake(s, r->deadline_ms);
		i++;
	}
}

static void reap_tick(struct swim *s, uint64_t t)
{
	if (t < s->next_reap_ms)
		goto out;
	s->next_reap_ms = t + 10000;
	for (size_t i = 1; i < s->n;) {
		struct node *n = &s->v[i];
		uint64_t after = n->state == SWIM_DEAD	 ? s->cfg.reap_failed_ms
				 : n->state == SWIM_LEFT ? s->cfg.reap_left_ms
							 : UINT64_MAX;

		if (after != UINT64_MAX && t - n->state_ms >= after) {
			if (s->table) {
				const struct member *m = members_find(s->table, n->name);

				if (m) {
					struct member copy = {0};

					copy.name = strdup(m->name);
					copy.addr = strdup(m->addr);
					copy.port = m->port;
					copy.status = m->status;
					if (members_remove(s->table, n->name) == 0 &&
					    s->io.member_event && copy.name && copy.addr)
						s->io.member_event(s->io.ctx, MEMBER_EVENT_REAP,
								   &copy, s->table->seq);
					member_free_fields(&copy);
				}
			}
			node_remove(s, i);
			continue;
		}
		i++;
	}
out:
	want_wake(s, s->next_reap_ms);
}

uint64_t swim_tick(struct swim *s)
{
	uint64_t t = now(s);

	s->wake_ms = UINT64_MAX;
	probe_tick(s, t);
	gossip_tick(s, t);
	suspicion_tick(s, t);
	relay_tick(s, t);
	if (s->cfg.pushpull_interval_ms) {
		if (t >= s->next_pushpull_ms && !s->leaving) {
			uint32_t idx;

			s->next_pushpull_ms = t + pushpull_interval(s);
			if (k_random(s, 1, NULL, want_alive, t, &idx) == 1)
				send_pushpull(s, &s->v[idx].addr, false, false);
		}
		if (!s->leaving)
			want_wake(s, s->next_pushpull_ms);
	}
	if (s->cfg.reconnect_interval_ms) {
		if (t >= s->next_reconnect_ms && !s->leaving) {
			uint32_t idx;

			s->next_reconnect_ms = t + s->cfg.reconnect_interval_ms;
			if (k_random(s, 1, NULL, want_dead, t, &idx) == 1)
				send_pushpull(s, &s->v[idx].addr, false, false);
		}
		if (!s->leaving)
			want_wake(s, s->next_reconnect_ms);
	}
	reap_tick(s, t);
	return s->wake_ms;
}

uint64_t swim_wake_ms(const struct swim *s) { return s->wake_ms; }

/* ---- lifecycle and commands ---------------------------------------------- */

static int encode_meta(const struct member *self, uint8_t **out, size_t *out_len)
{
	struct enc e;

	*out = NULL;
	*out_len = 0;
	if (self->n_tags == 0)
		return 0; /* no tags: empty meta, as swim_add_member assumes */
	enc_init(&e);
	msgpack_pack_map(&e.pk, self->n_tags);
	for (size_t i = 0; i < self->n_tags; i++) {
		pack_str(&e.pk, self->tags[i].key);
		pack_str(&e.pk, self->tags[i].val);
	}
	*out_len = e.sb.size;
	*out = malloc(e.sb.size ? e.sb.size : 1);
	if (*out)
		memcpy(*out, e.sb.data, e.sb.size);
	enc_close(&e);
	return *out ? 0 : -ENOMEM;
}

struct swim *swim_new(const struct swim_config *cfg, const struct swim_io *io,
		      const struct member *self, uint32_t incarnation, struct members *table)
{
	struct swim *s = calloc(1, sizeof(*s));
	struct swim_addr addr;
	struct node *n;
	uint64_t t;

	if (!s)
		return NULL;
	s->cfg = *cfg;
	s->io = *io;
	s->table = table;
	if (swim_addr_parse(self->addr, self->port, &addr) < 0 || !self->name ||
	    strlen(self->name) > NAME_MAX_LEN)
		goto fail;
	n = node_add(s, self->name);
	if (!n)
		goto fail;
	n->addr = addr;
	n->incarnation = incarnation;
	if (encode_meta(self, &n->meta, &n->meta_len) < 0 || n->meta_len > META_MAX_LEN)
		goto fail;
	set_state(s, n, SWIM_ALIVE);
	t = now(s);
	/* stagger the timers so a cluster started at once does not tick in step */
	s->next_probe_ms = t + rnd(s, (uint32_t)cfg->probe_interval_ms);
	s->next_gossip_ms = t + rnd(s, (uint32_t)cfg->gossip_interval_ms);
	s->next_pushpull_ms = t + cfg->pushpull_interval_ms / 2 +
			      rnd(s, (uint32_t)(cfg->pushpull_interval_ms / 2 + 1));
	s->next_reconnect_ms = t + cfg->reconnect_interval_ms / 2 +
			       rnd(s, (uint32_t)(cfg->reconnect_interval_ms / 2 + 1));
	s->next_reap_ms = t + 10000;
	s->wake_ms = t;
	bcast_alive(s, n);
	table_sync(s, n);
	return s;
fail:
	swim_free(s);
	return NULL;
}

void swim_free(struct swim *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].name);
		free(s->v[i].meta);
		free(s->v[i].susp);
	}
	for (size_t i = 0; i < s->nq; i++)
		bcast_free(&s->q[i]);
	free(s->q);
	free(s->scratch);
	free(s->v);
	free(s->hidx);
	free(s->order);
	free(s->suspects);
	free(s->probe.target);
	free(s);
}

int swim_join(struct swim *s, const struct swim_addr *addr)
{
	send_pushpull(s, addr, true, false);
	return 0;
}

int swim_leave(struct swim *s)
{
	struct node *self = &s->v[0];
	struct enc e;

	if (s->leaving)
		return 0;
	s->leaving = true;
	table_sync(s, self); /* leaving */
	enc_init(&e);
	enc_dead(&e, self->incarnation, self->name, self->name, true, false);
	queue_bcast(s, self->name, &e, true);
	enc_close(&e);
	set_state(s, self, SWIM_LEFT);
	table_sync(s, self); /* left */
	want_wake(s, now(s));
	return 0;
}

bool swim_leave_done(const struct swim *s)
{
	if (!s->leaving)
		return false;
	for (size_t i = 0; i < s->nq; i++)
		if (s->q[i].is_leave)
			return s->n_live == 0; /* nobody to tell: done */
	return true;
}

int swim_force_leave(struct swim *s, const char *name, bool prune)
{
	struct node *n = find(s, name);

	if (!n || is_self(s, n))
		return -ENOENT;
	if (n->state == SWIM_ALIVE || n->state == SWIM_SUSPECT)
		return -EBUSY;
	if (n->state == SWIM_LEFT && !prune)
		return 0;
	on_dead(s, n->incarnation, name, s->v[0].name, true, prune);
	return 0;
}

int swim_add_member(struct swim *s, const struct member *m, uint32_t incarnation)
{
	struct swim_addr addr;
	struct node *n;

	if (swim_addr_parse(m->addr, m->port, &addr) < 0 || strlen(m->name) > NAME_MAX_LEN)
		return -EINVAL;
	if (find(s, m->name))
		return -EEXIST;
	n = node_add(s, m->name);
	if (!n)
		return -ENOMEM;
	n->addr = addr;
	n->incarnation = incarnation;
	if (encode_meta(m, &n->meta, &n->meta_len) < 0)
		return -ENOMEM;
	set_state(s, n, SWIM_ALIVE);
	table_sync(s, n);
	return 0;
}

enum swim_state swim_member_state(const struct swim *s, const char *name)
{
	const struct node *n = find(s, name);

	return n ? n->state : SWIM_NONE;
}

size_t swim_num_live(const struct swim *s) { return s->n_live; }
size_t swim_num_members(const struct swim *s) { return s->n; }
uint32_t swim_incarnation(const struct swim *s) { return s->v[0].incarnation; }
unsigned swim_awareness(const struct swim *s) { return s->awareness; }
size_t swim_queue_len(const struct swim *s) { return s->nq; }
const struct swim_stats *swim_stats(const struct swim *s) { return &s->stats; }
