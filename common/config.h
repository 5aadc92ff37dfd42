/* The agent's configuration: one JSON document (files, a directory of
 * *.json files and command-line flags, merged in that order) read the same
 * way by all four daemons and by `cairn agent`.
 *
 * Option names are Consul's (datacenter, node_name, data_dir, server,
 * bootstrap_expect, ports.http, dns_config.node_ttl ...). The merged
 * document stays available in `json` so that a daemon can read options
 * only it cares about. */
#ifndef CAIRN_CONFIG_H
#define CAIRN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_t;

struct config_ports {
	int http;     /* HTTP API, default 8500; -1 disables */
	int https;    /* HTTPS API, default -1 (off) */
	int dns;      /* DNS, default 8600 */
	int server;   /* raftd RPC (ZeroMQ), default 8300 */
	int serf_lan; /* gossip LAN, default 8301 */
	int serf_wan; /* gossip WAN, default 8302 */
};

struct config_dns {
	uint32_t node_ttl_s;       /* TTL of node answers, default 0 */
	uint32_t service_ttl_s;    /* default TTL of service answers, default 0 */
	uint32_t soa_min_ttl_s;    /* negative TTL in SOA, default 0 */
	bool allow_stale;          /* default true */
	uint64_t max_stale_ms;     /* default 87600 h, as Consul */
	bool only_passing;         /* default false */
	bool enable_truncate;      /* default true */
	uint32_t udp_answer_limit; /* default 3 */
	uint32_t a_record_limit;   /* default 0 = no limit */
};

struct config {
	char *datacenter;      /* default "dc1"; lower-cased */
	char *node_name;       /* default the host name */
	char *node_id;         /* UUID, from node_id or <data_dir>/node-id */
	char *data_dir;        /* required unless dev; dev gets a temp dir */
	char *run_dir;         /* ipc sockets: <data_dir>/run unless set */
	char *domain;          /* default "consul." (always ends in a dot) */
	char *alt_domain;      /* NULL unless set */
	char *bind_addr;       /* cluster traffic; default 127.0.0.1 in dev, else 0.0.0.0 */
	char *advertise_addr;  /* what others use to reach us; default bind or 127.0.0.1 */
	char *client_addr;     /* HTTP and DNS listeners; default 127.0.0.1 */
	char *log_level;       /* default "info" */
	bool server;           /* runs raftd */
	bool dev;              /* -dev mode */
	int bootstrap_expect;  /* 0 = not set */
	char **start_join;     /* NULL-terminated list of addresses */
	char **retry_join;     /* NULL-terminated list of addresses */
	char **recursors;      /* NULL-terminated list of DNS upstreams */
	struct config_ports ports;
	struct config_dns dns;
	uint64_t kv_max_value_size; /* bytes, default 512 KiB */
	uint64_t http_max_body;     /* bytes, default kv_max_value_size + 64 KiB */
	uint64_t txn_max_req_len;   /* bytes, /v1/txn body, default 512 KiB (limits.txn_max_req_len) */
	uint64_t raft_snapshot_threshold; /* log entries between snapshots, default 16384 */
	uint64_t raft_trailing_logs;      /* log entries kept behind a snapshot, default 10240 */
	struct json_t *json;   /* the merged document; owned by the config */
};

/* Parses command-line flags (Consul's names: -dev -server -node
 * -datacenter -data-dir -config-file -config-dir -bind -client
 * -advertise -http-port -dns-port -server-port -serf-lan-port
 * -serf-wan-port -bootstrap-expect -join -retry-join -log-level -domain;
 * both "-flag value" and "-flag=value", one or two dashes), loads the files
 * they name, merges and validates. argv[0] is skipped. Fills out on
 * success; on failure returns CAIRN_E_CONFIG (or -errno) and writes a reason
 * into err. In dev mode with no data_dir, out->data_dir is left NULL for
 * the caller (`cairn agent`) to choose; daemons require one.
 * Also creates data_dir, run_dir and the persisted node id when missing. */
int config_load(int argc, char **argv, struct config *out, char *err, size_t errlen);

/* Parses a Go-style duration as Consul writes them ("10s", "1500ms",
 * "5m", "1h30m", "0"); a bare number is taken as seconds. Returns 0 and
 * the value in *out_ms, or -EINVAL. */
int config_duration_ms(const char *s, uint64_t *out_ms);

/* Frees everything config_load allocated; safe on a zeroed struct. */
void config_close(struct config *c);

/* Writes "ipc://<run_dir>/<name>.sock" into buf. Returns 0 or -ENAMETOOLONG. */
int config_ipc_endpoint(const struct config *c, const char *name, char *buf, size_t len);

/* Names of the local sockets, used with config_ipc_endpoint. */
#define CONFIG_SOCK_RAFTD "raftd"          /* ROUTER: state RPC */
#define CONFIG_SOCK_GOSSIPD "gossipd"      /* ROUTER: membership RPC */
#define CONFIG_SOCK_GOSSIP_EVENTS "gossipd-events" /* PUB: member events */

#endif
