/* JSON bodies of the HTTP API, in Consul's exact shapes (jansson).
 *
 * Pure: builds json_t trees from proto/ records and the configuration and
 * serialises them; no I/O. Field order follows Consul's Go structs (the
 * objects are built in that order and dumped with JSON_PRESERVE_ORDER).
 * Every json_t returned is a new reference the caller releases with
 * json_decref(); NULL means out of memory. */
#ifndef CAIRN_APID_RENDER_H
#define CAIRN_APID_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "proto.h"

struct arena;
struct config;

/* Standard base64 (RFC 4648 section 4, with padding) of p[0..n) into the
 * arena, NUL-terminated. NULL when out of memory. */
char *render_base64(struct arena *a, const uint8_t *p, size_t n);

/* A JSON string from s (NULL gives ""). Bytes that are not valid UTF-8
 * become U+FFFD, as Go's encoding/json does. */
json_t *render_string(const char *s);

/* One KV entry as Consul's api.KVPair / structs.DirEntry:
 * {LockIndex, Key, Flags, Value (base64, null when empty), Session (only
 *  when set), CreateIndex, ModifyIndex}. */
json_t *render_kv_entry(const struct proto_kv_entry *e);
/* A JSON array of entries (never null). */
json_t *render_kv_entries(const struct proto_kv_entry *v, size_t n);
/* Serialises entries as render_kv_entries + render_dump would, except that
 * Flags keeps Consul's full uint64 range (jansson integers stop at
 * INT64_MAX). Returns 0 or -ENOMEM; the text lives in the arena. */
int render_kv_dump(struct arena *a, const struct proto_kv_entry *v, size_t n, bool pretty,
		   char **out, size_t *out_len);
/* The same through jansson objects (render_kv_entries + render_dump), kept
 * for ?pretty and as the reference the direct compact writer is tested
 * against. */
int render_kv_dump_jansson(struct arena *a, const struct proto_kv_entry *v, size_t n,
			   bool pretty, char **out, size_t *out_len);
/* A JSON array of strings (never null: [] when empty). */
json_t *render_strs(const struct proto_strs *s);

/* One serf member as /v1/agent/members shows it: {Name, Addr, Port, Tags,
 * Status, ProtocolMin 1, ProtocolMax 5, ProtocolCur 2, DelegateMin 2,
 * DelegateMax 5, DelegateCur 4}. */
json_t *render_member(const struct proto_member *m);
json_t *render_members(const struct proto_member *v, size_t n);

/* One user event as Consul shows it: {ID, Name, Payload (base64, null when
 * empty), NodeFilter, ServiceFilter, TagFilter, Version 1, LTime}. */
struct proto_user_event;
json_t *render_user_event(const struct proto_user_event *e);
json_t *render_user_events(const struct proto_user_event *v, size_t n);

/* GET /v1/operator/raft/configuration, as Consul's
 * structs.RaftConfigurationResponse: {Servers: [{ID, Node, Address, Leader,
 * ProtocolVersion "3", Voter}], Index}. Servers is [] when empty. */
json_t *render_raft_configuration(const struct proto_operator_raft_config_reply *r);

/* GET /v1/agent/self: {Config, DebugConfig, Coord, Member, Stats, Meta}.
 * member is the local member (from gossipd, or made up from the config). */
json_t *render_agent_self(const struct config *cfg, const struct proto_member *member);

/* Serialises j into the arena: compact, or with ?pretty indented by four
 * spaces and a trailing newline (Consul's two forms). Returns 0 or
 * -ENOMEM; *out_len excludes the NUL. */
int render_dump(struct arena *a, const json_t *j, bool pretty, char **out, size_t *out_len);

#endif
