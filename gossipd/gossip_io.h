/* One gossip pool on the network: a UDP socket and a TCP listener on
 * bind_addr:port, the SWIM core (swim.c) driven by the event loop, the
 * keyring sealing every datagram and stream message, and the pool's
 * persisted state (<data_dir>/gossip/<pool>.json: our incarnation and the
 * members to rejoin through after a restart).
 *
 * Streams are one message per TCP connection: a 4-byte big-endian length,
 * then the sealed message (at most GOSSIP_IO_MAX_STREAM bytes). */
#ifndef CAIRN_GOSSIP_IO_H
#define CAIRN_GOSSIP_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "members.h"
#include "swim.h"

#define GOSSIP_IO_MAX_STREAM (16u << 20)

struct loop;
struct keyring;
struct gossip_net;

typedef void (*gossip_event_fn)(void *ctx, struct gossip_net *n, enum member_event ev,
				const struct member *m, uint64_t seq);

struct gossip_net_config {
	const char *bind_addr;	 /* IP literal to bind (0.0.0.0 / ::) */
	uint16_t port;		 /* UDP and TCP */
	const char *state_path;	 /* persisted state file, or NULL */
	struct keyring *keyring; /* borrowed; shared by the pools */
	struct swim_config swim;
	const struct member *self; /* copied by swim */
	uint32_t incarnation;
	struct members *table;	  /* borrowed */
	gossip_event_fn on_event; /* member table changed */
	/* a user event arrived for the first time (may be NULL) */
	void (*on_user_event)(void *ctx, const struct swim_user_event *ev);
	/* queries (swim_query) and their answers (may be NULL) */
	void (*on_query)(void *ctx, const char *op, const uint8_t *arg, size_t arg_len,
			 uint8_t *out, size_t *out_len);
	void (*on_query_response)(void *ctx, const char *id, const char *node,
				  const uint8_t *payload, size_t len);
	void *ctx;
	/* network coordinates (swim_io's ack_payload and ping_complete, called
	 * with coord_ctx; may be NULL) */
	size_t (*ack_payload)(void *coord_ctx, uint8_t *buf, size_t cap);
	void (*ping_complete)(void *coord_ctx, const char *name, uint64_t rtt_us,
			      const uint8_t *payload, size_t len);
	void *coord_ctx;
};

/* Binds the sockets and starts SWIM. NULL on failure, with a reason. */
struct gossip_net *gossip_net_new(struct loop *l, const struct gossip_net_config *c, char *err,
				  size_t errlen);
/* Closes sockets and connections, writes the state one last time. */
void gossip_net_free(struct gossip_net *n);

/* Starts a join through each address ("host", "host:port", "[v6]:port";
 * default port: the pool's). Returns how many resolved (name lookups
 * block: call with few addresses). */
size_t gossip_net_join(struct gossip_net *n, const char *const *addrs, size_t n_addrs);
/* Push/pull answers received for our joins so far (a join succeeded when
 * this grows). */
uint64_t gossip_net_join_replies(const struct gossip_net *n);
/* The SWIM core; call gossip_net_kick() after changing it directly. */
struct swim *gossip_net_swim(struct gossip_net *n);
void gossip_net_kick(struct gossip_net *n);
/* Marks the persisted state as left (no automatic rejoin) and saves it. */
void gossip_net_mark_left(struct gossip_net *n);
uint64_t gossip_net_decrypt_failures(const struct gossip_net *n);

/* Reads a state file: the incarnation, whether we had left, and up to
 * max addresses ("ip:port", caller frees each with free()). Returns 0 or
 * -ENOENT / -EINVAL. */
int gossip_state_load(const char *path, uint32_t *out_incarnation, bool *out_left, char **out_addrs,
		      size_t max, size_t *out_n);

#endif
