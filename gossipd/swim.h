/* SWIM membership with the Lifeguard refinements, as HashiCorp memberlist
 * does it: pure protocol logic, no sockets, no clock, no randomness.
 *
 * Model. One struct swim is one node's view of one pool. The caller feeds
 * it events — a datagram arrived (swim_recv_packet), a stream message
 * arrived (swim_recv_stream), time passed (swim_tick) — and it asks for
 * effects through struct swim_io: send a datagram (UDP, lossy), send a
 * stream message (TCP, reliable, one message per connection), read the
 * clock, draw a random number, and report member state changes.
 *
 * Protocol (SWIM paper, Das et al. 2002, §4-5; Lifeguard, Dadgar et al.
 * 2017; memberlist state.go):
 * - every probe interval one member (round robin over a shuffled list) gets
 *   a PING; no ACK within the probe timeout → PING_REQ through k members
 *   (they answer NACK if the target stays silent: Lifeguard §IV-B) and a
 *   PING over the stream; no ACK by the end of the interval → SUSPECT.
 * - local health ("awareness", Lifeguard §IV-A): a score 0..max raised by
 *   failed probes, missing nacks and having to refute, lowered by answered
 *   probes; probe interval and timeout are multiplied by score+1.
 * - suspicion (Lifeguard §IV-C): timeout starts at max = max_mult × min and
 *   falls towards min = suspicion_mult × log10(N) × probe interval as
 *   independent confirmations arrive (k = suspicion_mult − 2 expected);
 *   then the member is declared DEAD.
 * - refutation: a node told it is suspect or dead answers with ALIVE at a
 *   higher incarnation.
 * - dissemination: state changes are queued as broadcasts, piggybacked on
 *   every packet (compound packets up to the MTU) and sent to gossip_nodes
 *   random members every gossip interval, each retransmitted
 *   retransmit_mult × ceil(log10(N+1)) times, newest and least-sent first.
 * - push/pull: every push/pull interval (scaled up above 32 members) a full
 *   state exchange over the stream with one random member; joins use it
 *   too. Failed members are retried every reconnect interval (as serf
 *   does), which is what heals partitions.
 *
 * Wire format (docs/gossip.md): a datagram is one or more msgpack arrays
 * back to back, each [type, fields...]; a stream message is exactly one.
 *
 * The optional member table (members.c) is kept in step: ALIVE/SUSPECT map
 * to MEMBER_ALIVE, DEAD to MEMBER_FAILED, LEFT to MEMBER_LEFT; reaps remove
 * the entry. Each change is reported through io->member_event with the
 * table's new sequence number. */
#ifndef CAIRN_SWIM_H
#define CAIRN_SWIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "members.h"

/* A gossip address: IPv6, or IPv4 as ::ffff:a.b.c.d; port in host order. */
struct swim_addr {
	uint8_t ip[16];
	uint16_t port;
};

enum swim_state {
	SWIM_NONE = 0, /* unknown member */
	SWIM_ALIVE = 1,
	SWIM_SUSPECT = 2,
	SWIM_DEAD = 3,
	SWIM_LEFT = 4,
};

/* A user event (Consul's /v1/event/fire), spread by gossip with
 * de-duplication by id and ordered by a Lamport clock. Strings borrowed. */
struct swim_user_event {
	const char *id; /* UUID chosen by the firing agent */
	const char *name;
	const uint8_t *payload;
	size_t payload_len;
	const char *node_filter; /* regular expressions, "" for none */
	const char *service_filter;
	const char *tag_filter;
	uint64_t ltime; /* Lamport time (set by swim_fire_event) */
};

#define SWIM_EVENT_MAX 512 /* name + payload bytes, serf's limit */

struct swim_io {
	void *ctx;
	/* Sends one datagram; may drop it. buf is borrowed for the call. */
	void (*send_packet)(void *ctx, const struct swim_addr *to, const uint8_t *buf, size_t len);
	/* Sends one message over a reliable stream (a fresh TCP connection). */
	void (*send_stream)(void *ctx, const struct swim_addr *to, const uint8_t *buf, size_t len);
	uint64_t (*now_ms)(void *ctx);	 /* monotonic milliseconds */
	uint32_t (*rand_u32)(void *ctx); /* uniform random */
	/* Optional: a member's SWIM state changed (name borrowed). */
	void (*state_change)(void *ctx, const char *name, enum swim_state from, enum swim_state to);
	/* Optional: the member table changed; m borrowed (for REAP a copy of
	 * the removed member), seq the table's new sequence. */
	void (*member_event)(void *ctx, enum member_event ev, const struct member *m, uint64_t seq);
	/* Optional: a user event seen for the first time (ours included). */
	void (*user_event)(void *ctx, const struct swim_user_event *ev);
	/* Optional: a query (swim_query) seen for the first time, ours
	 * included: handle it and write the answer (at most *out_len bytes)
	 * into out, setting *out_len; it goes back to the querying node. */
	void (*query)(void *ctx, const char *op, const uint8_t *arg, size_t arg_len, uint8_t *out,
		      size_t *out_len);
	/* Optional: an answer to one of our queries (id, answering node). */
	void (*query_response)(void *ctx, const char *id, const char *node, const uint8_t *payload,
			       size_t len);
	/* Optional (memberlist's PingDelegate): bytes attached to the ACKs we
	 * send, at most cap (SWIM_ACK_PAYLOAD_MAX) written into buf; returns
	 * the length (0: none). serf puts the node's coordinate there. */
	size_t (*ack_payload)(void *ctx, uint8_t *buf, size_t cap);
	/* Optional: our direct probe of name was answered after rtt_us
	 * (measured with now_us) and its ACK carried payload (borrowed).
	 * Only direct answers count, as memberlist's NotifyPingComplete. */
	void (*ping_complete)(void *ctx, const char *name, uint64_t rtt_us, const uint8_t *payload,
			      size_t len);
	/* Optional: a monotonic microsecond clock for RTTs (NULL: now_ms × 1000). */
	uint64_t (*now_us)(void *ctx);
};

#define SWIM_ACK_PAYLOAD_MAX 256 /* bytes of an ACK's payload */

#define SWIM_QUERY_MAX 1024 /* bytes of a query's argument or answer */

struct swim_config {
	uint64_t probe_interval_ms;	/* LAN 1000, WAN 5000 */
	uint64_t probe_timeout_ms;	/* LAN 500, WAN 3000 */
	unsigned indirect_checks;	/* k for PING_REQ: 3 */
	unsigned suspicion_mult;	/* LAN 4, WAN 6 */
	unsigned suspicion_max_mult;	/* 6 */
	unsigned retransmit_mult;	/* 4 */
	uint64_t gossip_interval_ms;	/* LAN 200, WAN 500 */
	unsigned gossip_nodes;		/* LAN 3, WAN 4 */
	uint64_t gossip_to_dead_ms;	/* keep gossiping to the dead: 30 s */
	uint64_t pushpull_interval_ms;	/* LAN 30 s, WAN 60 s; 0 = never */
	uint64_t reconnect_interval_ms; /* retry a failed member: 30 s; 0 = never */
	uint64_t reap_failed_ms;	/* forget failed members: 72 h */
	uint64_t reap_left_ms;		/* forget left members: 72 h */
	unsigned awareness_max;		/* 8 */
	size_t mtu;			/* datagram payload limit: 1400 */
	bool tcp_fallback;		/* stream PING when the direct one fails */
};

/* memberlist's DefaultLANConfig / DefaultWANConfig values. */
void swim_config_lan(struct swim_config *c);
void swim_config_wan(struct swim_config *c);

struct swim;

/* Counters for tests, benchmarks and /v1/agent/self. */
struct swim_stats {
	uint64_t packets_sent, bytes_sent;
	uint64_t streams_sent, stream_bytes_sent;
	uint64_t packets_recv, bad_packets;
	uint64_t probes, probe_failures, refutes;
	uint64_t join_replies; /* push/pull answers to our joins */
};

/* A new node. self: name, address (IP literal), port and tags of the local
 * member (copied). incarnation: start value (a restart passes the persisted
 * value + 1). table: optional member table (borrowed, must outlive s) to
 * keep in step; the local member is inserted alive. io is copied. Returns
 * NULL when out of memory or when self's address is not an IP literal. */
struct swim *swim_new(const struct swim_config *cfg, const struct swim_io *io,
		      const struct member *self, uint32_t incarnation, struct members *table);
/* Frees everything. NULL is fine. */
void swim_free(struct swim *s);

/* A datagram from `from`. Malformed content is counted and dropped (the
 * messages before the bad one are kept). Returns 0 or -EINVAL. */
int swim_recv_packet(struct swim *s, const struct swim_addr *from, const uint8_t *buf, size_t len);
/* One stream message (PING fallback, ACK, push/pull). Returns 0 or -EINVAL. */
int swim_recv_stream(struct swim *s, const struct swim_addr *from, const uint8_t *buf, size_t len);
/* Runs all work that is due (probes, gossip, push/pull, suspicion and
 * relay time-outs, reaping). Returns the time (ms) it should next be
 * called; swim_wake_ms() tells the same after a receive. */
uint64_t swim_tick(struct swim *s);
uint64_t swim_wake_ms(const struct swim *s);

/* Starts a join through addr: a push/pull exchange over the stream. The
 * answer (if any) arrives through swim_recv_stream. Returns 0 or -ENOMEM. */
int swim_join(struct swim *s, const struct swim_addr *addr);
/* Graceful leave: broadcasts that the local member left and stops probing.
 * Keep calling swim_tick until swim_leave_done() (or a deadline). */
int swim_leave(struct swim *s);
bool swim_leave_done(const struct swim *s);
/* serf's force-leave: a failed member becomes left (cluster-wide), with
 * prune also forgotten. Returns 0, -ENOENT (unknown) or -EBUSY (alive). */
int swim_force_leave(struct swim *s, const char *name, bool prune);

/* Fires a user event: stamps ev->ltime, delivers it locally through
 * io->user_event and queues it for gossip. Returns 0, -EINVAL (name
 * missing, or name + payload over SWIM_EVENT_MAX) or -ENOMEM. */
int swim_fire_event(struct swim *s, struct swim_user_event *ev);

/* Sends a query to every member (as serf's queries): it is gossiped like
 * a user event, each node (this one included) handles it through
 * io->query and answers this node directly; answers arrive through
 * io->query_response. id must be unique. Returns 0, -EINVAL or -ENOMEM. */
int swim_query(struct swim *s, const char *id, const char *op, const uint8_t *arg, size_t arg_len);

/* Adds m (name, address, port, tags) as alive without any message
 * (simulation set-up only). Returns 0, -EEXIST, -EINVAL or -ENOMEM. */
int swim_add_member(struct swim *s, const struct member *m, uint32_t incarnation);

/* The state of member name in this view (SWIM_NONE if unknown). */
enum swim_state swim_member_state(const struct swim *s, const char *name);
/* Alive + suspect members, self included. */
size_t swim_num_live(const struct swim *s);
/* All members known, self included. */
size_t swim_num_members(const struct swim *s);
uint32_t swim_incarnation(const struct swim *s);
unsigned swim_awareness(const struct swim *s);
size_t swim_queue_len(const struct swim *s);
const struct swim_stats *swim_stats(const struct swim *s);

/* "a.b.c.d" or an IPv6 literal to a swim_addr; 0 or -EINVAL. */
int swim_addr_parse(const char *ip, uint16_t port, struct swim_addr *out);
/* The IP literal of a (buf of at least 46 bytes). */
void swim_addr_ip_str(const struct swim_addr *a, char *buf, size_t len);

#endif
