/* Vivaldi network coordinates (see vivaldi.h). */
#include "vivaldi.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ZERO_THRESHOLD 1.0e-6 /* serf's zeroThreshold */
#define MAX_RTT_S 10.0	      /* serf rejects longer observations */
#define WINDOW_MAX 64
#define FILTER_MAX 8

struct peer {
	char *name;
	double samples[FILTER_MAX]; /* oldest first */
	unsigned n_samples;
	struct vivaldi_coord coord; /* as last seen with an answer */
};

struct vivaldi {
	struct vivaldi_config cfg;
	struct vivaldi_coord coord;
	struct vivaldi_coord origin;
	double adjust[WINDOW_MAX];
	unsigned adjust_pos;
	/* A plain array searched linearly: one lookup per probe answer (one a
	 * second), a few thousand names at most; a hash is not needed yet. */
	struct peer *peers;
	size_t n_peers, cap_peers;
	uint64_t rng;
	uint64_t resets;
};

void vivaldi_config_default(struct vivaldi_config *c)
{
	c->error_max = 1.5;
	c->ce = 0.25;
	c->cc = 0.25;
	c->adjust_window = 20;
	c->height_min = 10.0e-6;
	c->filter_size = 3;
	c->gravity_rho = 150.0;
}

void vivaldi_coord_init(struct vivaldi_coord *c, const struct vivaldi_config *cfg)
{
	memset(c, 0, sizeof(*c));
	c->error = cfg->error_max;
	c->height = cfg->height_min;
}

static double magnitude_diff(const double *a, const double *b)
{
	double sum = 0;

	for (int i = 0; i < VIVALDI_DIM; i++)
		sum += (a[i] - b[i]) * (a[i] - b[i]);
	return sqrt(sum);
}

static double raw_distance(const struct vivaldi_coord *a, const struct vivaldi_coord *b)
{
	return magnitude_diff(a->vec, b->vec) + a->height + b->height;
}

double vivaldi_distance_s(const struct vivaldi_coord *a, const struct vivaldi_coord *b)
{
	double dist = raw_distance(a, b);
	double adjusted = dist + a->adjustment + b->adjustment;

	return adjusted > 0.0 ? adjusted : dist;
}

bool vivaldi_coord_valid(const struct vivaldi_coord *c)
{
	for (int i = 0; i < VIVALDI_DIM; i++)
		if (!isfinite(c->vec[i]))
			return false;
	return isfinite(c->error) && isfinite(c->adjustment) && isfinite(c->height);
}

static void put_double(uint8_t *p, double d)
{
	uint64_t u;

	memcpy(&u, &d, sizeof(u));
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)u;
		u >>= 8;
	}
}

static double get_double(const uint8_t *p)
{
	uint64_t u = 0;
	double d;

	for (int i = 0; i < 8; i++)
		u = u << 8 | p[i];
	memcpy(&d, &u, sizeof(d));
	return d;
}

void vivaldi_coord_encode(const struct vivaldi_coord *c, uint8_t out[VIVALDI_WIRE_LEN])
{
	uint8_t *p = out;

	*p++ = 1;
	for (int i = 0; i < VIVALDI_DIM; i++, p += 8)
		put_double(p, c->vec[i]);
	put_double(p, c->error);
	put_double(p + 8, c->adjustment);
	put_double(p + 16, c->height);
}

int vivaldi_coord_decode(const uint8_t *buf, size_t len, struct vivaldi_coord *out)
{
	struct vivaldi_coord c;
	const uint8_t *p = buf + 1;

	if (!buf || len != VIVALDI_WIRE_LEN || buf[0] != 1)
		return -EINVAL;
	for (int i = 0; i < VIVALDI_DIM; i++, p += 8)
		c.vec[i] = get_double(p);
	c.error = get_double(p);
	c.adjustment = get_double(p + 8);
	c.height = get_double(p + 16);
	if (!vivaldi_coord_valid(&c))
		return -EINVAL;
	*out = c;
	return 0;
}

struct vivaldi *vivaldi_new(const struct vivaldi_config *cfg, uint64_t seed)
{
	struct vivaldi *v = calloc(1, sizeof(*v));

	if (!v)
		return NULL;
	if (cfg)
		v->cfg = *cfg;
	else
		vivaldi_config_default(&v->cfg);
	if (v->cfg.adjust_window > WINDOW_MAX)
		v->cfg.adjust_window = WINDOW_MAX;
	if (v->cfg.filter_size > FILTER_MAX)
		v->cfg.filter_size = FILTER_MAX;
	if (v->cfg.filter_size == 0)
		v->cfg.filter_size = 1;
	vivaldi_coord_init(&v->coord, &v->cfg);
	vivaldi_coord_init(&v->origin, &v->cfg);
	v->rng = seed ? seed : 0x9e3779b97f4a7c15ull;
	return v;
}

void vivaldi_free(struct vivaldi *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->n_peers; i++)
		free(v->peers[i].name);
	free(v->peers);
	free(v);
}

static double rand_unit(struct vivaldi *v)
{
	uint64_t x = v->rng;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	v->rng = x;
	return (double)(x >> 11) / 9007199254740992.0; /* [0, 1) */
}

/* serf's unitVectorAt: the unit vector from b to a and |a - b|; a random
 * direction (and 0) when the points coincide. */
static double unit_vector_at(struct vivaldi *v, const double *a, const double *b, double *out)
{
	double mag = magnitude_diff(a, b);
	double zero[VIVALDI_DIM] = {0};

	if (mag > ZERO_THRESHOLD) {
		for (int i = 0; i < VIVALDI_DIM; i++)
			out[i] = (a[i] - b[i]) / mag;
		return mag;
	}
	for (int i = 0; i < VIVALDI_DIM; i++)
		out[i] = rand_unit(v) - 0.5;
	mag = magnitude_diff(out, zero);
	if (mag > ZERO_THRESHOLD) {
		for (int i = 0; i < VIVALDI_DIM; i++)
			out[i] /= mag;
		return 0.0;
	}
	memset(out, 0, sizeof(double) * VIVALDI_DIM);
	return 0.0;
}

/* serf's ApplyForce: moves c by force along the direction from other. */
static void apply_force(struct vivaldi *v, struct vivaldi_coord *c, double force,
			const struct vivaldi_coord *other)
{
	double unit[VIVALDI_DIM];
	double mag = unit_vector_at(v, c->vec, other->vec, unit);

	for (int i = 0; i < VIVALDI_DIM; i++)
		c->vec[i] += unit[i] * force;
	if (mag > ZERO_THRESHOLD) {
		c->height = (c->height + other->height) * force / mag + c->height;
		if (c->height < v->cfg.height_min)
			c->height = v->cfg.height_min;
	}
}

static struct peer *peer_find(const struct vivaldi *v, const char *node)
{
	for (size_t i = 0; i < v->n_peers; i++)
		if (!strcmp(v->peers[i].name, node))
			return &v->peers[i];
	return NULL;
}

static struct peer *peer_get(struct vivaldi *v, const char *node)
{
	struct peer *p = peer_find(v, node);

	if (p)
		return p;
	if (v->n_peers == v->cap_peers) {
		size_t cap = v->cap_peers ? v->cap_peers * 2 : 16;
		struct peer *np = realloc(v->peers, cap * sizeof(*np));

		if (!np)
			return NULL;
		v->peers = np;
		v->cap_peers = cap;
	}
	p = &v->peers[v->n_peers];
	memset(p, 0, sizeof(*p));
	p->name = strdup(node);
	if (!p->name)
		return NULL;
	v->n_peers++;
	return p;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* serf's latencyFilter: remember rtt, answer the median of the window. */
static double latency_filter(struct vivaldi *v, struct peer *p, double rtt_s)
{
	double sorted[FILTER_MAX];

	if (p->n_samples == v->cfg.filter_size) {
		memmove(p->samples, p->samples + 1, sizeof(double) * (p->n_samples - 1));
		p->n_samples--;
	}
	p->samples[p->n_samples++] = rtt_s;
	memcpy(sorted, p->samples, sizeof(double) * p->n_samples);
	qsort(sorted, p->n_samples, sizeof(double), cmp_double);
	return sorted[p->n_samples / 2];
}

static void update_vivaldi(struct vivaldi *v, const struct vivaldi_coord *other, double rtt_s)
{
	double dist = vivaldi_distance_s(&v->coord, other);
	double wrongness, total, weight, force;

	if (rtt_s < ZERO_THRESHOLD)
		rtt_s = ZERO_THRESHOLD;
	wrongness = fabs(dist - rtt_s) / rtt_s;
	total = v->coord.error + other->error;
	if (total < ZERO_THRESHOLD)
		total = ZERO_THRESHOLD;
	weight = v->coord.error / total;
	v->coord.error = v->cfg.ce * weight * wrongness + v->coord.error * (1.0 - v->cfg.ce * weight);
	if (v->coord.error > v->cfg.error_max)
		v->coord.error = v->cfg.error_max;
	force = v->cfg.cc * weight * (rtt_s - dist);
	apply_force(v, &v->coord, force, other);
}

static void update_adjustment(struct vivaldi *v, const struct vivaldi_coord *other, double rtt_s)
{
	double sum = 0;

	if (v->cfg.adjust_window == 0)
		return;
	v->adjust[v->adjust_pos] = rtt_s - raw_distance(&v->coord, other);
	v->adjust_pos = (v->adjust_pos + 1) % v->cfg.adjust_window;
	for (unsigned i = 0; i < v->cfg.adjust_window; i++)
		sum += v->adjust[i];
	v->coord.adjustment = sum / (2.0 * v->cfg.adjust_window);
}

static void update_gravity(struct vivaldi *v)
{
	double dist = vivaldi_distance_s(&v->origin, &v->coord);
	double force = -1.0 * pow(dist / v->cfg.gravity_rho, 2.0);

	apply_force(v, &v->coord, force, &v->origin);
}

int vivaldi_update(struct vivaldi *v, const char *node, const struct vivaldi_coord *other,
		   double rtt_s)
{
	struct peer *p;
	double filtered;

	if (!node || !other || !vivaldi_coord_valid(other) || !(rtt_s > 0.0) ||
	    rtt_s > MAX_RTT_S)
		return -EINVAL;
	p = peer_get(v, node);
	if (!p)
		return -ENOMEM;
	p->coord = *other;
	filtered = latency_filter(v, p, rtt_s);
	update_vivaldi(v, other, filtered);
	update_adjustment(v, other, filtered);
	update_gravity(v);
	if (!vivaldi_coord_valid(&v->coord)) {
		v->resets++;
		vivaldi_coord_init(&v->coord, &v->cfg);
	}
	return 0;
}

const struct vivaldi_coord *vivaldi_get(const struct vivaldi *v) { return &v->coord; }

void vivaldi_forget(struct vivaldi *v, const char *node)
{
	struct peer *p = peer_find(v, node);

	if (!p)
		return;
	free(p->name);
	*p = v->peers[--v->n_peers];
}

size_t vivaldi_peer_count(const struct vivaldi *v) { return v->n_peers; }

void vivaldi_peer(const struct vivaldi *v, size_t i, const char **out_name,
		  const struct vivaldi_coord **out_coord)
{
	*out_name = v->peers[i].name;
	*out_coord = &v->peers[i].coord;
}

uint64_t vivaldi_resets(const struct vivaldi *v) { return v->resets; }
