/* Vivaldi network coordinates as serf's coordinate package computes them:
 * pure arithmetic, no I/O, no clock.
 *
 * Model (Dabek et al., "Vivaldi: A Decentralized Network Coordinate
 * System", SIGCOMM 2004; Ledlie et al., "Network Coordinates in the Wild",
 * NSDI 2007; serf coordinate/client.go). Each node holds a point in an
 * 8-dimensional Euclidean space plus a non-Euclidean height (the access
 * link), an error estimate and an adjustment term. The estimated round
 * trip time between a and b is |a.vec - b.vec| + a.height + b.height
 * (+ both adjustments when the sum stays positive), in seconds. Every
 * observed RTT to a peer whose coordinate came with the answer moves our
 * point like a spring (vivaldi_update):
 *   - latency filter: the median of the last 3 RTTs to that peer is used;
 *   - Vivaldi: weight = err / (err + other.err); err moves towards the
 *     relative error by CE × weight; the point moves by CC × weight ×
 *     (rtt − estimate) along the unit vector between the two points
 *     (random direction when they coincide), the height in proportion;
 *   - adjustment: the mean of the last 20 (rtt − raw estimate) halved;
 *   - gravity: a pull towards the origin of (distance / rho)^2 that stops
 *     drift.
 * A coordinate that turns NaN or infinite is reset (counted). */
#ifndef CAIRN_GOSSIPD_VIVALDI_H
#define CAIRN_GOSSIPD_VIVALDI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VIVALDI_DIM 8 /* serf's Dimensionality */

/* One node's coordinate; distances in seconds. */
struct vivaldi_coord {
	double vec[VIVALDI_DIM]; /* Euclidean part */
	double error;		 /* confidence: 0 exact .. error_max unknown */
	double adjustment;	 /* added to distances when they stay positive */
	double height;		 /* non-Euclidean access-link part, >= height_min */
};

/* serf's coordinate.DefaultConfig() values. */
struct vivaldi_config {
	double error_max;	/* VivaldiErrorMax 1.5 (also the initial error) */
	double ce;		/* VivaldiCE 0.25 */
	double cc;		/* VivaldiCC 0.25 */
	unsigned adjust_window; /* AdjustmentWindowSize 20 (max 64) */
	double height_min;	/* HeightMin 10 µs */
	unsigned filter_size;	/* LatencyFilterSize 3 (max 8) */
	double gravity_rho;	/* GravityRho 150 */
};

void vivaldi_config_default(struct vivaldi_config *c);

/* The coordinate of a node that has observed nothing: the origin with the
 * maximum error and the minimum height. */
void vivaldi_coord_init(struct vivaldi_coord *c, const struct vivaldi_config *cfg);

/* Estimated RTT between a and b in seconds (serf's DistanceTo). */
double vivaldi_distance_s(const struct vivaldi_coord *a, const struct vivaldi_coord *b);

/* True when every component is finite. */
bool vivaldi_coord_valid(const struct vivaldi_coord *c);

/* Wire form: a version byte (1) then the 8 vector components, error,
 * adjustment and height as IEEE-754 doubles, big-endian. */
#define VIVALDI_WIRE_LEN (1 + 8 * (VIVALDI_DIM + 3))
void vivaldi_coord_encode(const struct vivaldi_coord *c, uint8_t out[VIVALDI_WIRE_LEN]);
/* Decodes buf[0..len). Returns 0, or -EINVAL for a wrong length, version
 * or a non-finite value. *out is written only on success. */
int vivaldi_coord_decode(const uint8_t *buf, size_t len, struct vivaldi_coord *out);

/* One node's coordinate client: its coordinate and, per peer, the latency
 * filter and the peer's last coordinate (serf's coordinate cache). */
struct vivaldi;

/* A new client at the initial coordinate; seed drives the random
 * direction used when two points coincide. cfg is copied (NULL: the
 * defaults). Returns NULL when out of memory. */
struct vivaldi *vivaldi_new(const struct vivaldi_config *cfg, uint64_t seed);
/* Frees everything. NULL is fine. */
void vivaldi_free(struct vivaldi *v);

/* One observation (serf's Client.Update): rtt_s to peer node, whose
 * coordinate is other. Returns 0, or -EINVAL (rtt not in (0, 10 s], other
 * not valid) or -ENOMEM, changing nothing then. */
int vivaldi_update(struct vivaldi *v, const char *node, const struct vivaldi_coord *other,
		   double rtt_s);

/* Our current coordinate (borrowed; valid until the next update). */
const struct vivaldi_coord *vivaldi_get(const struct vivaldi *v);

/* Drops what we know of node (it left). */
void vivaldi_forget(struct vivaldi *v, const char *node);

/* Peers with a known coordinate: count, and the i-th (name and coord
 * borrowed until the next update or forget). */
size_t vivaldi_peer_count(const struct vivaldi *v);
void vivaldi_peer(const struct vivaldi *v, size_t i, const char **out_name,
		  const struct vivaldi_coord **out_coord);

/* Times the coordinate was reset after turning invalid. */
uint64_t vivaldi_resets(const struct vivaldi *v);

#endif
