/* Deterministic SWIM pool simulation; see swim_sim.h. */
#include "swim_sim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum ev_kind { EV_TICK = 0, EV_PACKET = 1, EV_STREAM = 2 };

struct ev {
	uint64_t t, seq;
	uint32_t node, from;
	uint32_t kind;
	uint32_t gen; /* node generation the event is for (ticks) */
	uint8_t *buf;
	size_t len;
};

struct simnode {
	struct swim *s; /* NULL when killed */
	struct swim_sim *sim;
	uint32_t idx;
	char name[24];
	struct swim_addr addr;
	uint32_t incarnation;
	double loss;
	unsigned group;
	uint32_t gen;
	uint64_t tick_at; /* earliest scheduled tick */
	struct swim_sim_declared declared;
};

struct swim_sim {
	struct swim_sim_config cfg;
	struct simnode *nodes;
	size_t n, cap;
	struct ev *heap;
	size_t nh, caph;
	uint64_t now, seq, events;
	uint64_t rng;
	bool partitioned;
	uint64_t bytes;
};

static uint32_t sim_rand(struct swim_sim *sim)
{
	/* xorshift64* */
	sim->rng ^= sim->rng >> 12;
	sim->rng ^= sim->rng << 25;
	sim->rng ^= sim->rng >> 27;
	return (uint32_t)((sim->rng * 2685821657736338717ull) >> 32);
}

static double sim_unit(struct swim_sim *sim) { return sim_rand(sim) / 4294967296.0; }

static bool ev_less(const struct ev *a, const struct ev *b)
{
	return a->t != b->t ? a->t < b->t : a->seq < b->seq;
}

static int push(struct swim_sim *sim, struct ev e)
{
	size_t i;

	if (sim->nh == sim->caph) {
		size_t cap = sim->caph ? sim->caph * 2 : 1024;
		struct ev *h = realloc(sim->heap, cap * sizeof(*h));

		if (!h)
			return -ENOMEM;
		sim->heap = h;
		sim->caph = cap;
	}
	e.seq = ++sim->seq;
	i = sim->nh++;
	while (i > 0) {
		size_t p = (i - 1) / 2;

		if (!ev_less(&e, &sim->heap[p]))
			break;
		sim->heap[i] = sim->heap[p];
		i = p;
	}
	sim->heap[i] = e;
	return 0;
}

static struct ev pop(struct swim_sim *sim)
{
	struct ev top = sim->heap[0], last = sim->heap[--sim->nh];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= sim->nh)
			break;
		if (c + 1 < sim->nh && ev_less(&sim->heap[c + 1], &sim->heap[c]))
			c++;
		if (!ev_less(&sim->heap[c], &last))
			break;
		sim->heap[i] = sim->heap[c];
		i = c;
	}
	if (sim->nh > 0)
		sim->heap[i] = last;
	return top;
}

static void schedule_tick(struct simnode *sn, uint64_t t)
{
	struct ev e = {0};

	if (t >= sn->tick_at)
		return;
	sn->tick_at = t;
	e.t = t;
	e.node = sn->idx;
	e.kind = EV_TICK;
	e.gen = sn->gen;
	(void)push(sn->sim, e); /* out of memory: the simulation stalls visibly */
}

/* Address → node index (10.a.b.c). */
static long addr_node(const struct swim_sim *sim, const struct swim_addr *a)
{
	long i = ((long)a->ip[13] << 16) | ((long)a->ip[14] << 8) | a->ip[15];

	if (a->ip[12] != 10 || (size_t)i >= sim->n)
		return -1;
	return i;
}

static bool link_up(const struct swim_sim *sim, const struct simnode *a, const struct simnode *b)
{
	return !(sim->partitioned && a->group != b->group);
}

static void deliver(struct simnode *from, const struct swim_addr *to, const uint8_t *buf,
		    size_t len, enum ev_kind kind)
{
	struct swim_sim *sim = from->sim;
	long ti = addr_node(sim, to);
	struct simnode *dst;
	struct ev e = {0};
	uint32_t span;

	sim->bytes += len;
	if (ti < 0)
		return;
	dst = &sim->nodes[ti];
	if (!link_up(sim, from, dst))
		return;
	if (kind == EV_PACKET) {
		double loss = sim->cfg.loss + from->loss + dst->loss;

		if (loss > 0 && sim_unit(sim) < loss)
			return;
	}
	e.buf = malloc(len ? len : 1);
	if (!e.buf)
		return;
	memcpy(e.buf, buf, len);
	e.len = len;
	span = sim->cfg.delay_max_ms - sim->cfg.delay_min_ms + 1;
	e.t = sim->now + sim->cfg.delay_min_ms + sim_rand(sim) % span;
	e.node = (uint32_t)ti;
	e.from = from->idx;
	e.kind = kind;
	if (push(sim, e) < 0)
		free(e.buf);
}

static void io_send_packet(void *ctx, const struct swim_addr *to, const uint8_t *buf, size_t len)
{
	deliver(ctx, to, buf, len, EV_PACKET);
}

static void io_send_stream(void *ctx, const struct swim_addr *to, const uint8_t *buf, size_t len)
{
	deliver(ctx, to, buf, len, EV_STREAM);
}

static uint64_t io_now(void *ctx) { return ((struct simnode *)ctx)->sim->now; }

static uint32_t io_rand(void *ctx) { return sim_rand(((struct simnode *)ctx)->sim); }

static void io_state(void *ctx, const char *name, enum swim_state from, enum swim_state to)
{
	struct simnode *sn = ctx;
	struct swim_sim *sim = sn->sim;
	unsigned long i;

	(void)from;
	if (to != SWIM_DEAD || name[0] != 'n')
		return;
	i = strtoul(name + 1, NULL, 10);
	if (i >= sim->n)
		return;
	if (sim->nodes[i].declared.n_dead++ == 0)
		sim->nodes[i].declared.dead_ms = sim->now;
}

static int node_start(struct swim_sim *sim, struct simnode *sn)
{
	struct swim_io io = {
	    .ctx = sn,
	    .send_packet = io_send_packet,
	    .send_stream = io_send_stream,
	    .now_ms = io_now,
	    .rand_u32 = io_rand,
	    .state_change = io_state,
	};
	struct member self = {0};
	char ip[32];

	snprintf(ip, sizeof(ip), "10.%u.%u.%u", (sn->idx >> 16) & 255, (sn->idx >> 8) & 255,
		 sn->idx & 255);
	self.name = sn->name;
	self.addr = ip;
	self.port = 8301;
	self.tags = (struct member_tag *)sim->cfg.tags; /* only read */
	self.n_tags = sim->cfg.n_tags;
	sn->s = swim_new(&sim->cfg.swim, &io, &self, sn->incarnation, NULL);
	if (!sn->s)
		return -ENOMEM;
	sn->gen++;
	sn->tick_at = UINT64_MAX;
	schedule_tick(sn, sim->now);
	return 0;
}

int swim_sim_add(struct swim_sim *sim)
{
	struct simnode *sn;

	/* io ctx pointers point into the array, so it never grows: swim_sim_new
	 * reserves room for 64 extra nodes */
	if (sim->n == sim->cap)
		return -ENOMEM;
	sn = &sim->nodes[sim->n];
	memset(sn, 0, sizeof(*sn));
	sn->sim = sim;
	sn->idx = (uint32_t)sim->n;
	snprintf(sn->name, sizeof(sn->name), "n%zu", sim->n);
	(void)swim_addr_parse("10.0.0.0", 8301, &sn->addr);
	sn->addr.ip[13] = (uint8_t)(sn->idx >> 16);
	sn->addr.ip[14] = (uint8_t)(sn->idx >> 8);
	sn->addr.ip[15] = (uint8_t)sn->idx;
	sim->n++;
	if (node_start(sim, sn) < 0)
		return -ENOMEM;
	return (int)sn->idx;
}

struct swim_sim *swim_sim_new(const struct swim_sim_config *cfg)
{
	struct swim_sim *sim = calloc(1, sizeof(*sim));
	size_t cap;

	if (!sim)
		return NULL;
	sim->cfg = *cfg;
	if (!sim->cfg.delay_max_ms) {
		sim->cfg.delay_min_ms = 1;
		sim->cfg.delay_max_ms = 5;
	}
	sim->rng = cfg->seed * 0x9E3779B97F4A7C15ull + 1;
	/* room for every node we will ever add: live nodes cannot move */
	cap = cfg->n + 64;
	sim->nodes = calloc(cap, sizeof(*sim->nodes));
	if (!sim->nodes)
		goto fail;
	sim->cap = cap;
	for (size_t i = 0; i < cfg->n; i++)
		if (swim_sim_add(sim) < 0)
			goto fail;
	for (size_t j = 0; j < cfg->n; j++) {
		struct member m = {0};
		char ip[32];

		snprintf(ip, sizeof(ip), "10.%u.%u.%u", (unsigned)(j >> 16) & 255,
			 (unsigned)(j >> 8) & 255, (unsigned)j & 255);
		m.name = sim->nodes[j].name;
		m.addr = ip;
		m.port = 8301;
		m.tags = (struct member_tag *)cfg->tags; /* only read */
		m.n_tags = cfg->n_tags;
		for (size_t i = 0; i < cfg->n; i++)
			if (i != j && swim_add_member(sim->nodes[i].s, &m, 0) < 0)
				goto fail;
	}
	return sim;
fail:
	swim_sim_free(sim);
	return NULL;
}

void swim_sim_free(struct swim_sim *sim)
{
	if (!sim)
		return;
	for (size_t i = 0; i < sim->n; i++)
		swim_free(sim->nodes[i].s);
	for (size_t i = 0; i < sim->nh; i++)
		free(sim->heap[i].buf);
	free(sim->heap);
	free(sim->nodes);
	free(sim);
}

static void step(struct swim_sim *sim)
{
	struct ev e = pop(sim);
	struct simnode *sn = &sim->nodes[e.node];

	sim->now = e.t;
	sim->events++;
	if (sn->s) {
		switch (e.kind) {
		case EV_TICK:
			if (e.gen != sn->gen || e.t != sn->tick_at)
				break; /* superseded */
			sn->tick_at = UINT64_MAX;
			schedule_tick(sn, swim_tick(sn->s));
			break;
		case EV_PACKET:
		case EV_STREAM:
			if (!link_up(sim, &sim->nodes[e.from], sn))
				break; /* partitioned while in flight */
			if (e.kind == EV_PACKET)
				(void)swim_recv_packet(sn->s, &sim->nodes[e.from].addr, e.buf,
						       e.len);
			else
				(void)swim_recv_stream(sn->s, &sim->nodes[e.from].addr, e.buf,
						       e.len);
			schedule_tick(sn, swim_wake_ms(sn->s));
			break;
		default:
			break;
		}
	}
	free(e.buf);
}

void swim_sim_run_until(struct swim_sim *sim, uint64_t t_ms)
{
	while (sim->nh > 0 && sim->heap[0].t <= t_ms)
		step(sim);
	if (sim->now < t_ms)
		sim->now = t_ms;
}

bool swim_sim_run_pred(struct swim_sim *sim, bool (*pred)(struct swim_sim *, void *), void *ctx,
		       uint64_t check_ms, uint64_t budget_ms)
{
	uint64_t end = sim->now + budget_ms;

	while (!pred(sim, ctx)) {
		if (sim->now >= end)
			return false;
		swim_sim_run_until(sim, sim->now + check_ms);
	}
	return true;
}

uint64_t swim_sim_now(const struct swim_sim *sim) { return sim->now; }

void swim_sim_join(struct swim_sim *sim, size_t i, size_t j)
{
	struct simnode *sn = &sim->nodes[i];

	if (!sn->s)
		return;
	(void)swim_join(sn->s, &sim->nodes[j].addr);
	schedule_tick(sn, swim_wake_ms(sn->s));
}

void swim_sim_kill(struct swim_sim *sim, size_t i)
{
	struct simnode *sn = &sim->nodes[i];

	if (!sn->s)
		return;
	sn->incarnation = swim_incarnation(sn->s);
	swim_free(sn->s);
	sn->s = NULL;
}

void swim_sim_restart(struct swim_sim *sim, size_t i, size_t j)
{
	struct simnode *sn = &sim->nodes[i];

	if (sn->s)
		return;
	sn->incarnation++;
	if (node_start(sim, sn) == 0)
		swim_sim_join(sim, i, j);
}

void swim_sim_leave(struct swim_sim *sim, size_t i)
{
	struct simnode *sn = &sim->nodes[i];

	if (!sn->s)
		return;
	(void)swim_leave(sn->s);
	schedule_tick(sn, sim->now);
}

void swim_sim_set_node_loss(struct swim_sim *sim, size_t i, double loss)
{
	sim->nodes[i].loss = loss;
}

void swim_sim_set_group(struct swim_sim *sim, size_t i, unsigned g) { sim->nodes[i].group = g; }

void swim_sim_partition(struct swim_sim *sim, bool on) { sim->partitioned = on; }

size_t swim_sim_size(const struct swim_sim *sim) { return sim->n; }

bool swim_sim_running(const struct swim_sim *sim, size_t i) { return sim->nodes[i].s != NULL; }

const char *swim_sim_name(const struct swim_sim *sim, size_t i) { return sim->nodes[i].name; }

struct swim *swim_sim_node(struct swim_sim *sim, size_t i) { return sim->nodes[i].s; }

size_t swim_sim_count_view(const struct swim_sim *sim, size_t about, unsigned mask)
{
	size_t c = 0;

	for (size_t i = 0; i < sim->n; i++) {
		if (i == about || !sim->nodes[i].s)
			continue;
		if (mask & (1u << swim_member_state(sim->nodes[i].s, sim->nodes[about].name)))
			c++;
	}
	return c;
}

size_t swim_sim_count_running(const struct swim_sim *sim, size_t about)
{
	size_t c = 0;

	for (size_t i = 0; i < sim->n; i++)
		if (i != about && sim->nodes[i].s)
			c++;
	return c;
}

const struct swim_sim_declared *swim_sim_declared(const struct swim_sim *sim, size_t i)
{
	return &sim->nodes[i].declared;
}

uint64_t swim_sim_bytes(const struct swim_sim *sim) { return sim->bytes; }

uint64_t swim_sim_events(const struct swim_sim *sim) { return sim->events; }
