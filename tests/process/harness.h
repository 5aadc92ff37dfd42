/* Process-test harness: starts a real `cairn agent` on free loopback ports in
 * a temporary data directory, talks to it over HTTP (libcurl), DNS (ldns)
 * and its ZeroMQ sockets, finds its daemons' pids and tears everything down.
 *
 * Model: a test program calls harness_agent_start() once (usually from an
 * unchecked Check fixture, so the agent outlives Check's forked test
 * processes) and harness_agent_stop() at the end. The agent runs in its own
 * process group with PR_SET_PDEATHSIG, so it also goes away when the test
 * program is killed. Programs that need several servers that know each
 * other's ports use harness_cluster_start() / harness_cluster_stop()
 * instead. Every wait in here polls a condition against a deadline;
 * nothing sleeps for a fixed time to let something happen.
 *
 * Binaries are found through CAIRN_BUILD_ROOT (set by tests/process/
 * meson.build to meson.project_build_root()): <root>/cli/cairn. */
#ifndef CAIRN_TEST_HARNESS_H
#define CAIRN_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct proto_msg;
struct arena;

#define HARNESS_MAX_EXTRA 16
#define HARNESS_ARG_BUF 512

/* One running agent. */
struct agent {
	char name[64];        /* node name */
	char tmp_dir[256];    /* mkdtemp root; removed by harness_agent_stop */
	char data_dir[300];   /* <tmp_dir>/data; with -dev, the agent's own */
	char log_path[300];   /* <tmp_dir>/agent.log: agent and daemon output */
	pid_t pid;            /* the `cairn agent` process (group leader) */
	int http_port;        /* -http-port */
	int dns_port;         /* -dns-port */
	int server_port;      /* -server-port */
	int serf_lan_port;    /* -serf-lan-port */
	int serf_wan_port;    /* -serf-wan-port */
	bool dev;             /* started with -dev (data_dir read from its banner) */
	const char *extra[HARNESS_MAX_EXTRA]; /* extra agent arguments, borrowed */
	size_t n_extra;
	/* Storage for the arguments harness_cluster_start() composes (join
	 * addresses, the config file's path); extra[] points into it. */
	char arg_buf[HARNESS_ARG_BUF];
	size_t arg_used;
};

/* An HTTP answer. Owned by the caller; release with http_resp_free(). */
struct http_resp {
	long status;     /* HTTP status, or 0 when the request failed */
	char *headers;   /* raw header block, NUL-terminated */
	char *body;      /* body, NUL-terminated (may contain NULs: see len) */
	size_t body_len; /* body length in bytes */
	char err[256];   /* libcurl's reason when status is 0 */
	long new_connections; /* connections libcurl opened for this request */
};

/* Request options for http_conn_request. */
struct http_opts {
	const char *const *headers; /* NULL-terminated "Name: value" lines, or NULL */
	bool chunked;               /* send the body with Transfer-Encoding: chunked */
};

/* A libcurl handle kept across requests, so they share one keep-alive
 * connection (as real clients do). */
struct http_conn;

/* ---- time and polling ------------------------------------------------- */

/* Monotonic clock in milliseconds. */
uint64_t harness_now_ms(void);
/* Sleeps ms milliseconds: only as the pause between two polls. */
void harness_pause_ms(unsigned ms);

/* Standard base64 (with padding) of len bytes into out, which must hold
 * 4 * ((len + 2) / 3) + 1 bytes. */
void harness_base64(const void *in, size_t len, char *out);

/* ---- agent lifecycle -------------------------------------------------- */

/* Starts `cairn agent -server -bootstrap-expect 1` named name (NULL: a
 * generated name) on free ports, extra_args (NULL-terminated, may be NULL)
 * appended, then waits up to timeout_ms for /v1/status/leader to answer a
 * non-empty leader and /v1/agent/members to answer 200. Returns 0, or a
 * negative code with a reason in err (the
 * tail of the agent log is appended); on failure everything started has
 * been stopped again. Agents still running when the process that started
 * them exits are stopped by an atexit handler (Check exits a failed test's
 * process before teardown runs). */
int harness_agent_start(struct agent *a, const char *name, const char *const *extra_args,
			uint64_t timeout_ms, char *err, size_t errlen);

/* Starts `cairn agent -dev` (no -data-dir: the agent picks a temporary
 * one, learnt from its banner into a->data_dir) on free ports. */
int harness_agent_start_dev(struct agent *a, const char *name, uint64_t timeout_ms, char *err,
			    size_t errlen);

/* Simulates a machine crash: SIGKILLs the agent's process group and every
 * daemon, and waits until they are gone. Keeps the temp dir and ports for
 * harness_agent_relaunch(). */
void harness_agent_kill9(struct agent *a);

/* Starts the agent again with the same name, ports, data dir and
 * arguments, and waits for a leader. Returns 0 or a negative code with a
 * reason in err. */
int harness_agent_relaunch(struct agent *a, uint64_t timeout_ms, char *err, size_t errlen);

/* SIGTERMs the agent, waits up to 15 s for it, then SIGKILLs its process
 * group and any daemon left behind, and removes the temp dir (unless
 * CAIRN_TEST_KEEP is set). Safe to call twice or on a zeroed struct. */
void harness_agent_stop(struct agent *a);

/* Sends sig (SIGTERM or SIGINT) to the agent alone and waits up to
 * timeout_ms for it and every daemon it had to exit, then scans the log for
 * sanitizer reports. Returns 0 when all exited and the log is clean,
 * -ETIMEDOUT when something is still running, -EFAULT for a sanitizer
 * report; err says which. Leaves the temp dir (harness_agent_stop removes
 * it and kills leftovers). */
int harness_agent_terminate(struct agent *a, int sig, uint64_t timeout_ms, char *err,
			    size_t errlen);

/* Pid of the agent's cairn-<role> daemon (role: "raftd", "apid", "gossipd",
 * "dnsd"), found by scanning /proc for that executable among the agent's
 * descendants; 0 when none is running (zombies do not count). */
pid_t harness_daemon_pid(const struct agent *a, const char *role);

/* Waits up to timeout_ms for the role's daemon to run with a pid other than
 * old_pid (0: any pid). Returns the pid, or 0 at the deadline. */
pid_t harness_wait_daemon(const struct agent *a, const char *role, pid_t old_pid,
			  uint64_t timeout_ms);

/* True while pid exists and is not a zombie. */
bool harness_pid_alive(pid_t pid);

/* Waits up to timeout_ms for GET /v1/status/leader to answer 200 with a
 * non-empty leader. Returns true when it did. */
bool harness_wait_leader(const struct agent *a, uint64_t timeout_ms);

/* Searches the agent log for sanitizer reports ("ERROR: AddressSanitizer",
 * "runtime error:", "ERROR: LeakSanitizer"). Returns true and copies the
 * first such line into out when one is found. */
bool harness_log_has_sanitizer_report(const struct agent *a, char *out, size_t outlen);

/* Prints the last max_bytes of the agent log on stderr (for failures). */
void harness_dump_log(const struct agent *a, size_t max_bytes);

/* Fills a for a start with harness_agent_relaunch() without starting
 * anything: name, a fresh temp dir (data dir and log inside) and five
 * ports that are free for TCP and UDP on 127.0.0.1, drawn at random from
 * 20000-31999 (below the kernel's ephemeral range, so the agents' own
 * outgoing connections cannot take them before they are bound). For
 * agents that must know each other's ports before any of them runs.
 * Returns 0 or a negative code with a reason in err. */
int harness_agent_prepare(struct agent *a, const char *name, char *err, size_t errlen);

/* ---- clusters of servers ---------------------------------------------- */

/* How the servers of a cluster find each other. */
enum harness_cluster_join {
	/* Every server gets `-retry-join 127.0.0.1:<server port>` for each
	 * server (itself included): raftd forms the cluster directly. The
	 * gossip pools stay separate unless join_lan_pool is set. */
	HARNESS_JOIN_RAFT,
	/* Servers 2..n get `-retry-join 127.0.0.1:<server 1's serf LAN port>`
	 * (Consul's retry_join): one LAN pool, in which raftd discovers the
	 * other servers. */
	HARNESS_JOIN_GOSSIP,
};

/* Options of harness_cluster_start(); a zeroed struct is a raft-joined
 * cluster of servers named node1..nodeN with a 60 s limit per wait. */
struct harness_cluster_opts {
	const char *name_prefix; /* node names: the prefix followed by 1..n
				  * ("srv": srv1, srv2, ...); NULL: "node" */
	enum harness_cluster_join join;
	const char *const *extra_args; /* NULL-terminated arguments for every
					* server (after -bootstrap-expect and
					* -config-file, before the joins), borrowed:
					* they must outlive the agents; may be NULL */
	const char *config_json;       /* non-NULL: written to <tmp_dir>/cluster.json
					* of every server and given with -config-file */
	bool join_lan_pool;	       /* once a leader is agreed, servers 2..n
					* PUT /v1/agent/join to server 1's serf LAN
					* port (must answer 200) and the start waits
					* until every server lists n members (for
					* HARNESS_JOIN_RAFT clusters that need one
					* pool) */
	uint64_t timeout_ms;	       /* limit of each wait; 0: 60000 */
};

/* Starts n server agents (`cairn agent -server -bootstrap-expect <n>`)
 * into out[0..n-1] (zeroed first) on ports picked up front with
 * harness_agent_prepare(), joined as o->join says, all spawned before any
 * is waited for (no leader exists until all run); then waits until every
 * live server names the same one of them as leader
 * (harness_cluster_leader), and with o->join_lan_pool for the one LAN
 * pool. Each agent keeps its arguments, so harness_agent_kill9() /
 * harness_agent_relaunch() work on it as on any agent. Returns 0, or a
 * negative code with a reason in err; on failure the last 3000 bytes of
 * every log are printed on stderr and the agents are left running for
 * harness_cluster_stop(). */
int harness_cluster_start(struct agent *out, size_t n, const struct harness_cluster_opts *o,
			  char *err, size_t errlen);

/* Index in ags[0..n-1] of the server every live agent (pid != 0) names as
 * leader on /v1/status/leader ("127.0.0.1:<server_port>"), when that
 * server is itself live and is not not_this (-1: any); polls every 50 ms
 * up to timeout_ms (0: asks once). Returns -1 at the deadline, after
 * printing every live agent's answer on stderr (when timeout_ms > 0). */
int harness_cluster_leader(const struct agent *ags, size_t n, uint64_t timeout_ms, int not_this);

/* harness_agent_stop() on each of the n agents. */
void harness_cluster_stop(struct agent *ags, size_t n);

/* ---- HTTP ------------------------------------------------------------- */

/* Performs method on http://127.0.0.1:<http_port><path> with body (may be
 * NULL; body_len bytes) and a 30 s transfer time-out. Returns the answer in
 * out (always initialised; free with http_resp_free). Returns 0 when an HTTP
 * answer arrived, -EIO otherwise (out->status 0, out->err set). */
int http_request(const struct agent *a, const char *method, const char *path, const void *body,
		 size_t body_len, struct http_resp *out);
int http_get(const struct agent *a, const char *path, struct http_resp *out);
/* Connection-reusing variants; opts may be NULL. */
struct http_conn *http_conn_new(const struct agent *a);
void http_conn_free(struct http_conn *hc);
int http_conn_request(struct http_conn *hc, const char *method, const char *path,
		      const void *body, size_t body_len, const struct http_opts *opts,
		      struct http_resp *out);
int http_put(const struct agent *a, const char *path, const char *body, struct http_resp *out);
int http_delete(const struct agent *a, const char *path, struct http_resp *out);
void http_resp_free(struct http_resp *r);

/* Parses the body as JSON (jansson); NULL when it is not JSON. The caller
 * frees the result with json_decref(). */
struct json_t *http_json(const struct http_resp *r);

/* Value of header name (case-insensitive) copied into out; false when the
 * answer has no such header. */
bool http_header(const struct http_resp *r, const char *name, char *out, size_t outlen);
/* X-Consul-Index as a number; 0 when absent or not a number. */
uint64_t http_index(const struct http_resp *r);

/* ---- DNS -------------------------------------------------------------- */

/* Answer summary of one DNS query. */
struct dns_result {
	int rcode;          /* LDNS_RCODE_* */
	bool aa;            /* authoritative answer flag */
	size_t n_answer;    /* answer RRs */
	size_t n_authority; /* authority RRs */
	char a[8][64];      /* A/AAAA addresses in the answer, textual */
	size_t n_a;
	uint32_t a_ttl;         /* TTL of the first A/AAAA answer */
	bool soa_in_authority; /* an SOA in the authority section */
	uint16_t id_sent;      /* query id */
	uint16_t id_received;  /* reply id */
};

/* Sends one UDP query for name/type (LDNS_RR_TYPE_*) to the agent's DNS
 * port and waits up to timeout_ms for the answer. Returns 0 or a negative
 * code (-ETIMEDOUT when nothing came back). */
int dns_query(const struct agent *a, const char *name, int rr_type, uint64_t timeout_ms,
	      struct dns_result *out);

/* Sends the query wire (len bytes) to a's dnsd over UDP, or over TCP with
 * the two-byte length prefix, and returns the parsed reply (caller frees
 * with ldns_pkt_free), or NULL when none came within timeout_ms or it did
 * not parse. *out_len, when not NULL, gets the reply's size in bytes. */
struct ldns_struct_pkt *harness_dns_exchange(const struct agent *a, const uint8_t *wire,
					     size_t len, bool tcp, unsigned timeout_ms,
					     size_t *out_len);

/* ---- ZeroMQ ----------------------------------------------------------- */

/* Sends the raw frame buf/len with a DEALER connected to endpoint and waits
 * up to timeout_ms for one reply frame, decoded with proto_decode into out
 * (memory from arena). Returns 0 when a reply decoded, -ETIMEDOUT when
 * nothing came, or proto_decode's code. */
int zmq_roundtrip(const char *endpoint, const void *buf, size_t len, uint64_t timeout_ms,
		  struct arena *arena, struct proto_msg *out);

/* "ipc://<data_dir>/run/<name>.sock". */
void harness_ipc_endpoint(const struct agent *a, const char *name, char *out, size_t outlen);

#endif
