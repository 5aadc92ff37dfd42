/* The agent's recent user events: the last EVENTS_KEEP events this agent
 * received (Consul keeps 256), oldest first, with an index that grows by
 * one per stored event (X-Consul-Index of /v1/event/list). Pure. */
#ifndef CAIRN_EVENTS_H
#define CAIRN_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EVENTS_KEEP 256

struct swim_user_event;
struct arena;
struct proto_user_event;

struct events_entry {
	char *id, *name, *node_filter, *service_filter, *tag_filter;
	uint8_t *payload;
	size_t payload_len;
	uint64_t ltime;
};

struct events {
	struct events_entry v[EVENTS_KEEP]; /* ring */
	size_t start, n;
	uint64_t index; /* events stored so far */
};

void events_init(struct events *e);
void events_close(struct events *e);

/* Stores a copy of ev if node (our node name) matches its node filter (a
 * POSIX extended regular expression; an invalid one matches nothing).
 * Returns 1 if stored, 0 if filtered out, -ENOMEM. */
int events_add(struct events *e, const struct swim_user_event *ev, const char *node);

/* The stored events named name (NULL or "": all), oldest first, as proto
 * records borrowing e's strings, array from a. Returns 0 or -ENOMEM. */
int events_to_proto(const struct events *e, const char *name, struct arena *a,
		    struct proto_user_event **out_v, size_t *out_n);

#endif
