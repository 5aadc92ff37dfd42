/* The gossip member table: who is in a pool, their addresses, tags and
 * status, and the event sequence subscribers synchronise on.
 *
 * Pure: no I/O, no clock. gossipd keeps one table per pool (LAN, and WAN
 * on servers). Every change bumps the table's sequence by one and reports
 * what kind of event it was, so the caller can publish MEMBER_EVENT with
 * that sequence; a MEMBERS snapshot carries the sequence it reflects
 * (DESIGN.md: subscribers take the snapshot, then apply larger sequences).
 * SWIM (a later issue) drives the same table through members_upsert() and
 * members_set_status(). */
#ifndef CAIRN_MEMBERS_H
#define CAIRN_MEMBERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct arena;
struct proto_member;

/* Serf/Consul member status numbers, as in the MEMBERS reply. */
enum member_status {
	MEMBER_NONE = 0,
	MEMBER_ALIVE = 1,
	MEMBER_LEAVING = 2,
	MEMBER_LEFT = 3,
	MEMBER_FAILED = 4,
};

/* MEMBER_EVENT kinds (proto/messages.def). */
enum member_event {
	MEMBER_EVENT_NONE = 0, /* nothing changed */
	MEMBER_EVENT_JOIN = 1,
	MEMBER_EVENT_UPDATE = 2,
	MEMBER_EVENT_LEAVE = 3,
	MEMBER_EVENT_FAIL = 4,
	MEMBER_EVENT_REAP = 5,
};

struct member_tag {
	char *key;
	char *val;
};

struct member {
	char *name;		 /* node name; unique in the table */
	char *addr;		 /* gossip address, IP literal */
	uint16_t port;		 /* gossip port */
	struct member_tag *tags; /* sorted by key */
	size_t n_tags;
	enum member_status status;
};

struct members {
	struct member *v; /* sorted by name */
	size_t n, cap;
	uint64_t seq; /* sequence of the last event; 0 before any */
};

/* What the local agent advertises about itself (from the config). */
struct members_self {
	const char *node_name;	/* cfg->node_name */
	const char *addr;	/* cfg->advertise_addr */
	uint16_t port;		/* cfg->ports.serf_lan (serf_wan for the WAN pool) */
	const char *datacenter; /* cfg->datacenter */
	const char *node_id;	/* cfg->node_id */
	bool server;		/* cfg->server */
	int server_port;	/* cfg->ports.server (servers only) */
	int bootstrap_expect;	/* 0 = not set */
	const char *build;	/* CAIRN_VERSION */
};

/* Caller-provided storage. */
void members_init(struct members *t);
/* Frees every member. Safe on a zeroed struct. */
void members_close(struct members *t);

/* Fills *out (caller frees with member_free_fields()) with the local
 * member: name, address, port, status alive, and Consul's serf tags:
 * role ("consul" on servers, "node" on clients), dc, id, segment "",
 * vsn "2", vsn_min "2", vsn_max "3", build; servers add port (the server
 * RPC port), raft_vsn "3", and expect when bootstrap_expect is set.
 * wan: the WAN pool's view, named "<node>.<dc>" as Consul does. Returns 0,
 * -EINVAL (missing name/address) or -ENOMEM. */
int members_self_build(const struct members_self *self, bool wan, struct member *out);

/* Sets key to val on m (replacing any value), keeping tags sorted.
 * Returns 0 or -ENOMEM. */
int member_tag_set(struct member *m, const char *key, const char *val);
/* The value of key, or NULL. Borrowed. */
const char *member_tag_get(const struct member *m, const char *key);
/* Frees m's strings and tags and zeroes it. */
void member_free_fields(struct member *m);

/* Inserts a copy of m, or updates the member of the same name. Bumps seq
 * and sets *out_event (JOIN for a new member or one coming back from
 * left/failed, UPDATE for changed address/port/tags, LEAVE/FAIL for those
 * status changes, NONE when nothing differs, in which case seq stays).
 * out_event may be NULL. Returns 0 or -ENOMEM (table unchanged). */
int members_upsert(struct members *t, const struct member *m, enum member_event *out_event);

/* Removes the member (a reap); bumps seq. Returns 0 or -ENOENT. */
int members_remove(struct members *t, const char *name);

/* The member called name (exact match), or NULL. Borrowed until the next
 * change. */
const struct member *members_find(const struct members *t, const char *name);

/* Fills a proto record from m, borrowing m's strings and allocating the
 * tag map's arrays from a. Returns 0 or -ENOMEM. */
int member_to_proto(const struct member *m, struct arena *a, struct proto_member *out);

/* Every member as proto records allocated from a (in name order). */
int members_to_proto(const struct members *t, struct arena *a, struct proto_member **out_v,
		     size_t *out_n);

#endif
