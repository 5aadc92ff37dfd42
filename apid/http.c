/* libmicrohttpd glue for the HTTP API (see http.h). */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "arena.h"
#include "clock.h"
#include "config.h"
#include "err.h"
#include "log.h"
#include "catalog_api.h"
#include "kv_direct.h"
#include "lease_pub.h"
#include "loop.h"
#include "routes.h"
#include "rpc.h"

/* Idle keep-alive connections are closed after this long. Suspended
 * connections never time out (MHD), so blocking queries are not cut. */
#define HTTP_IDLE_TIMEOUT_S 120u
/* Past the body limit we keep reading (and dropping) this much more so
 * the client gets its 413 instead of a reset; beyond it we hang up. */
#define HTTP_DISCARD_MAX (64u * 1024u * 1024u)
/* Per-request arena chunk. Small: a parked blocking query keeps its first
 * chunk for minutes (10,000 watchers: 2 KiB chunks cost 15 MB more than
 * these), while a request that renders more just takes another chunk. */
#define HTTP_ARENA_CHUNK 512u
/* MHD's per-connection pool (request line, headers, the response header).
 * MHD memsets all of it for every request on a kept-alive connection: at
 * the 32 KiB default that was 14 % of apid's CPU on KV GETs. 8 KiB holds a
 * request line and headers of about 7 KB (longer ones get 431/414): a
 * 511-byte key percent-encoded in full is 1.5 KB (tests/process/
 * test_kv_direct.c sends one with 2 KB of headers). Resident memory per
 * parked connection hardly depends on it: the pool is malloc'd and only
 * its touched pages count (see bench/RESULTS.md). */
#define HTTP_CONN_MEMORY (8u * 1024u)

enum req_state {
	REQ_NEW,     /* headers parsed, access handler not yet called */
	REQ_BODY,    /* receiving the body */
	REQ_WAITING, /* RPC in flight, connection suspended */
	REQ_READY,   /* resp filled, waiting for MHD to ask for it */
	REQ_DONE,    /* response queued */
};

struct http_req {
	struct http_server *srv;
	struct MHD_Connection *conn;
	struct arena arena; /* everything routes builds */
	const char *target; /* raw request target (arena) */
	const char *method; /* (arena) */
	enum req_state state;
	uint8_t *body; /* malloc'd, at most body_limit bytes */
	size_t body_len;
	size_t body_cap;
	uint64_t body_limit;	 /* from routes_body_limit */
	uint64_t content_length; /* from the header; 0 when absent */
	uint64_t received;	 /* body bytes received so far */
	bool too_large;
	struct routes_call call;   /* the RPC, while WAITING */
	struct routes_resp resp;   /* the answer, once READY */
	struct rpc_client *client; /* where call went */
	uint64_t call_id;
	bool in_flight;
	bool suspended;
	struct http_req *prev, *next; /* parked list */
};

struct http_server {
	struct loop *loop;
	const struct config *cfg;
	struct rpc_client *raftd;
	struct rpc_client *gossipd;
	struct MHD_Daemon *mhd;
	int epoll_fd;
	struct routes_env env;
	bool run_pending;     /* a connection was resumed: MHD_run soon */
	uint64_t deadline_ms; /* MHD wants MHD_run by then (clock_now_ms) */
	bool stopping;
	struct http_req *parked; /* suspended requests */
	size_t n_parked;
	struct kv_direct *kvd; /* direct KV reads (kv_direct.h); NULL: always the RPC */
};

/* ---- parked list ------------------------------------------------------ */

static void park(struct http_server *s, struct http_req *r)
{
	r->prev = NULL;
	r->next = s->parked;
	if (s->parked)
		s->parked->prev = r;
	s->parked = r;
	s->n_parked++;
	r->suspended = true;
	MHD_suspend_connection(r->conn);
}

static void unpark(struct http_server *s, struct http_req *r)
{
	if (!r->suspended)
		return;
	if (r->prev)
		r->prev->next = r->next;
	else
		s->parked = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
	s->n_parked--;
	r->suspended = false;
	MHD_resume_connection(r->conn);
	/* MHD must run for the resumed connection to be processed */
	s->run_pending = true;
}

/* ---- responses -------------------------------------------------------- */

/* Fills r->resp with a plain-text answer even when memory is short. */
static void fallback(struct http_req *r, unsigned status, const char *text)
{
	if (routes_text(&r->arena, status, text, &r->resp) < 0) {
		memset(&r->resp, 0, sizeof(r->resp));
		r->resp.status = status;
	}
}

static enum MHD_Result send_resp(struct http_req *r)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	size_t i;

	r->state = REQ_DONE;
	resp = MHD_create_response_from_buffer(
	    r->resp.body_len, (void *)(r->resp.body ? r->resp.body : ""), MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return MHD_NO;
	if (r->resp.content_type && MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
							    r->resp.content_type) != MHD_YES)
		goto fail;
	for (i = 0; i < r->resp.n_hdrs; i++)
		if (MHD_add_response_header(resp, r->resp.hdrs[i].name, r->resp.hdrs[i].value) !=
		    MHD_YES)
			goto fail;
	ret = MHD_queue_response(r->conn, r->resp.status, resp);
	MHD_destroy_response(resp);
	return ret;
fail:
	MHD_destroy_response(resp);
	return MHD_NO;
}

/* ---- RPC -------------------------------------------------------------- */

static void note_reply(struct http_server *s, const struct proto_msg *m)
{
	uint64_t idx = 0;

	if (m->type == PROTO_KV_GET_REPLY) {
		idx = m->u.kv_get_reply.index;
		s->env.known_leader = m->u.kv_get_reply.known_leader;
	} else if (m->type == PROTO_WRITE_REPLY) {
		idx = m->u.write_reply.index;
		s->env.known_leader = true;
	} else if (m->type == PROTO_STATUS_LEADER_REPLY) {
		s->env.known_leader =
		    m->u.status_leader_reply.leader && m->u.status_leader_reply.leader[0];
	}
	if (idx > s->env.last_index)
		s->env.last_index = idx;
}

static void finish(struct http_req *r, int status, const struct proto_msg *reply)
{
	struct http_server *s = r->srv;

	if (status == 0 && reply)
		note_reply(s, reply);
	if (routes_finish(&s->env, &r->call, status, reply, &r->arena, &r->resp) < 0)
		fallback(r, 500, "out of memory");
	if (status < 0)
		log_debug("%s %s: %s", r->method, r->target, err_str(status));
	r->state = REQ_READY;
}

static void on_reply(void *ctx, int status, const struct proto_msg *reply)
{
	struct http_req *r = ctx;

	r->in_flight = false;
	if (r->state != REQ_WAITING)
		return;
	finish(r, status, reply);
	unpark(r->srv, r);
}

static enum MHD_Result dispatch(struct http_server *s, struct http_req *r)
{
	struct routes_req rq = {
	    .method = r->method,
	    .target = r->target,
	    .body = r->body,
	    .body_len = r->body_len,
	    .body_too_large = r->too_large,
	    .body_seen = r->content_length > r->received ? r->content_length : r->received,
	};
	struct routes_action act;
	struct rpc_client *client;
	int rc;

	if (s->stopping) {
		fallback(r, 503, "agent shutting down");
		return send_resp(r);
	}
	s->env.now_ms = loop_now_ms(s->loop);
	if (routes_dispatch(&s->env, &rq, &r->arena, &act) < 0) {
		fallback(r, 500, "out of memory");
		return send_resp(r);
	}
	if (act.respond) {
		r->resp = act.resp;
		return send_resp(r);
	}
	r->call = act.call;
	if (s->kvd && (r->call.op == ROUTES_OP_KV_GET || r->call.op == ROUTES_OP_KV_KEYS) &&
	    r->call.msg.type == PROTO_KV_GET) {
		/* answered from raftd's store when its lease page allows;
		 * rendered by routes_finish exactly as an RPC reply */
		struct proto_msg reply;

		if (kv_direct_read(s->kvd, &r->call.msg.u.kv_get, lease_now_ns(), &r->arena,
				   &reply) == 1) {
			finish(r, 0, &reply);
			return send_resp(r);
		}
	}
	client = r->call.peer == ROUTES_PEER_GOSSIPD ? s->gossipd : s->raftd;
	r->state = REQ_WAITING;
	rc = client ? rpc_call(client, &r->call.msg, r->call.timeout_ms, on_reply, r, &r->call_id)
		    : CAIRN_E_UNAVAILABLE;
	/* the request is encoded and sent: the body is no longer needed */
	free(r->body);
	r->body = NULL;
	r->body_len = r->body_cap = 0;
	if (rc < 0) {
		finish(r, rc, NULL);
		return send_resp(r);
	}
	if (r->state == REQ_READY) /* answered synchronously */
		return send_resp(r);
	r->client = client;
	r->in_flight = true;
	park(s, r);
	return MHD_YES;
}

/* ---- body ------------------------------------------------------------- */

static void body_start(struct http_server *s, struct http_req *r)
{
	const char *cl =
	    MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	char *end;
	unsigned long long n;

	r->body_limit = routes_body_limit(&s->env, r->method, r->target);
	if (!cl)
		return;
	errno = 0;
	n = strtoull(cl, &end, 10);
	if (errno || end == cl)
		return;
	r->content_length = n;
	if (n > r->body_limit)
		r->too_large = true;
	else if (n > 0 && (r->body = malloc(n)) != NULL)
		r->body_cap = n;
}

/* Keeps at most body_limit bytes; returns false to hang up on a client
 * that sends far more. */
static bool body_append(struct http_req *r, const char *data, size_t n)
{
	r->received += n;
	if (!r->too_large && r->body_len + n > r->body_limit) {
		r->too_large = true;
		free(r->body);
		r->body = NULL;
		r->body_len = r->body_cap = 0;
	}
	if (r->too_large)
		return r->received <= r->body_limit + HTTP_DISCARD_MAX;
	if (r->body_len + n > r->body_cap) {
		size_t cap = r->body_cap ? r->body_cap * 2 : 4096;
		uint8_t *nb;

		while (cap < r->body_len + n)
			cap *= 2;
		if (cap > r->body_limit)
			cap = (size_t)r->body_limit;
		nb = realloc(r->body, cap);
		if (!nb)
			return false;
		r->body = nb;
		r->body_cap = cap;
	}
	memcpy(r->body + r->body_len, data, n);
	r->body_len += n;
	return true;
}

/* ---- MHD callbacks ---------------------------------------------------- */

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct http_req *r = calloc(1, sizeof(*r));

	(void)conn;
	if (!r)
		return NULL;
	r->srv = cls;
	arena_init(&r->arena, HTTP_ARENA_CHUNK);
	r->target = arena_strdup(&r->arena, uri ? uri : "/");
	return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct http_server *s = cls;
	struct http_req *r = *con_cls;

	(void)url;
	(void)version;
	if (!r || !r->target)
		return MHD_NO; /* out of memory in on_uri */
	switch (r->state) {
	case REQ_NEW:
		r->conn = conn;
		r->method = arena_strdup(&r->arena, method);
		if (!r->method)
			return MHD_NO;
		r->state = REQ_BODY;
		body_start(s, r);
		/* A client that waits for 100-continue gets its 413 at once
		 * and never sends the body; so does one announcing far more
		 * than we would read and drop (it may see a reset instead). */
		if (r->too_large &&
		    (MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT) ||
		     r->content_length > r->body_limit + HTTP_DISCARD_MAX))
			return dispatch(s, r);
		return MHD_YES;
	case REQ_BODY:
		if (*upload_data_size) {
			size_t n = *upload_data_size;

			*upload_data_size = 0;
			return body_append(r, upload_data, n) ? MHD_YES : MHD_NO;
		}
		return dispatch(s, r);
	case REQ_READY:
		return send_resp(r);
	case REQ_WAITING:
	case REQ_DONE:
		/* nothing new: MHD may call again with more (ignored) data */
		*upload_data_size = 0;
		return MHD_YES;
	}
	return MHD_NO;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct http_server *s = cls;
	struct http_req *r = *con_cls;

	(void)conn;
	(void)toe;
	if (!r)
		return;
	if (r->in_flight)
		rpc_cancel(r->client, r->call_id);
	if (r->suspended) {
		/* MHD never completes a suspended request; keep the list sane */
		if (r->prev)
			r->prev->next = r->next;
		else
			s->parked = r->next;
		if (r->next)
			r->next->prev = r->prev;
		s->n_parked--;
	}
	free(r->body);
	arena_close(&r->arena);
	free(r);
	*con_cls = NULL;
}

/* MHD reports both its own trouble and every malformed request; only the
 * former is worth a warning (a client must not be able to flood the log). */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	static const char *const own[] = {"accept", "epoll",  "bind",	  "listen",
					  "socket", "thread", "Failed to"};
	char buf[512];
	size_t n, i;
	bool warn = false;

	(void)cls;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	for (i = 0; i < sizeof(own) / sizeof(own[0]); i++)
		if (strcasestr(buf, own[i]))
			warn = true;
	if (warn)
		log_warn("http: %s", buf);
	else
		log_debug("http: %s", buf);
}

/* ---- loop glue -------------------------------------------------------- */

static void run_mhd(struct http_server *s)
{
	s->run_pending = false;
	if (MHD_run(s->mhd) != MHD_YES)
		log_debug("http: MHD_run failed");
}

static void on_epoll(struct loop *l, void *ctx, unsigned events)
{
	(void)l;
	(void)events;
	run_mhd(ctx);
}

/* Once per loop iteration: run MHD if a connection was resumed or its
 * deadline passed, then cap the poll time-out by MHD_get_timeout. MHD's
 * connection sockets are edge-triggered inside its epoll set, so data it
 * already read shows up as a zero time-out, not as a readable fd: run
 * again while that is so (bounded, the loop comes back anyway). */
static void before_sleep(struct loop *l, void *ctx)
{
	struct http_server *s = ctx;
	uint64_t now = clock_now_ms();
	int i;

	if (s->run_pending || now >= s->deadline_ms)
		run_mhd(s);
	for (i = 0; i < 8; i++) {
		MHD_UNSIGNED_LONG_LONG t;

		if (MHD_get_timeout(s->mhd, &t) != MHD_YES) {
			s->deadline_ms = UINT64_MAX;
			return;
		}
		if (t > 0) {
			s->deadline_ms = now + t;
			loop_cap_timeout(l, t);
			return;
		}
		run_mhd(s);
	}
	s->deadline_ms = now;
	loop_cap_timeout(l, 0);
}

/* ---- lifecycle -------------------------------------------------------- */

static unsigned connection_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur > 256)
		return (unsigned)(rl.rlim_cur > 1000000 ? 1000000 : rl.rlim_cur - 128);
	return 128;
}

/* Direct KV reads from the local raftd's store (kv_direct.h): on servers,
 * unless CAIRN_APID_KV_DIRECT=0 (for comparisons: reads then all take the
 * RPC). NULL: none. */
static struct kv_direct *kv_direct_setup(const struct config *cfg)
{
	const char *env = getenv("CAIRN_APID_KV_DIRECT");
	char store_dir[4096], lease[4096];
	struct kv_direct *kd;

	if (!cfg->server || !cfg->data_dir || !cfg->run_dir || (env && strcmp(env, "0") == 0))
		return NULL;
	if ((size_t)snprintf(store_dir, sizeof(store_dir), "%s/raft", cfg->data_dir) >=
		sizeof(store_dir) ||
	    (size_t)snprintf(lease, sizeof(lease), "%s/%s", cfg->run_dir, LEASE_PUB_FILE) >=
		sizeof(lease))
		return NULL;
	kd = kv_direct_new(store_dir, lease);
	if (!kd)
		log_warn("out of memory: every KV read goes through raftd");
	return kd;
}

struct http_server *http_server_new(struct loop *l, const struct config *cfg,
				    struct rpc_client *raftd, struct rpc_client *gossipd, char *err,
				    size_t errlen)
{
	struct http_server *s;
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	struct sockaddr *sa;
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	char addr[64];
	const union MHD_DaemonInfo *info;
	const char *ca = cfg->client_addr ? cfg->client_addr : "127.0.0.1";
	size_t alen;

	if (cfg->ports.http < 0 || cfg->ports.http > 65535) {
		snprintf(err, errlen, "http port %d is not usable", cfg->ports.http);
		return NULL;
	}
	if (MHD_is_feature_supported(MHD_FEATURE_EPOLL) != MHD_YES) {
		snprintf(err, errlen, "libmicrohttpd was built without epoll");
		return NULL;
	}
	/* Consul allows a space-separated list; we listen on the first */
	alen = strcspn(ca, " \t");
	if (alen == 0 || alen >= sizeof(addr)) {
		snprintf(err, errlen, "client_addr \"%s\" is not an IP address", ca);
		return NULL;
	}
	memcpy(addr, ca, alen);
	addr[alen] = '\0';
	memset(&sin, 0, sizeof(sin));
	memset(&sin6, 0, sizeof(sin6));
	if (inet_pton(AF_INET, addr, &sin.sin_addr) == 1) {
		sin.sin_family = AF_INET;
		sin.sin_port = htons((uint16_t)cfg->ports.http);
		sa = (struct sockaddr *)&sin;
	} else if (inet_pton(AF_INET6, addr, &sin6.sin6_addr) == 1) {
		sin6.sin6_family = AF_INET6;
		sin6.sin6_port = htons((uint16_t)cfg->ports.http);
		sa = (struct sockaddr *)&sin6;
		flags |= MHD_USE_IPv6;
	} else {
		snprintf(err, errlen, "client_addr \"%s\" is not an IP address", addr);
		return NULL;
	}

	s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->loop = l;
	s->cfg = cfg;
	s->raftd = raftd;
	s->gossipd = gossipd;
	s->epoll_fd = -1;
	s->deadline_ms = UINT64_MAX;
	s->env.cfg = cfg;
	s->env.last_index = 1;
	s->env.catalog_cache = catalog_api_cache_new(); /* NULL only disables it */
	s->kvd = kv_direct_setup(cfg);

	s->mhd = MHD_start_daemon(
	    flags, (uint16_t)cfg->ports.http, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER,
	    on_mhd_log, s, MHD_OPTION_SOCK_ADDR, sa, MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_CONNECTION_TIMEOUT,
	    HTTP_IDLE_TIMEOUT_S, MHD_OPTION_CONNECTION_LIMIT, connection_limit(),
	    MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	    (size_t)HTTP_CONN_MEMORY, MHD_OPTION_END);
	if (!s->mhd) {
		snprintf(err, errlen, "cannot listen on %s port %d: %s", addr, cfg->ports.http,
			 strerror(errno));
		goto fail;
	}
	info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	if (!info || info->epoll_fd < 0) {
		snprintf(err, errlen, "libmicrohttpd has no epoll fd");
		goto fail;
	}
	s->epoll_fd = info->epoll_fd;
	if (loop_watch_fd(l, s->epoll_fd, LOOP_READ, on_epoll, s) < 0 ||
	    loop_add_before_sleep(l, before_sleep, s) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return s;
fail:
	/* the before-sleep hook is added last, so it is never left behind */
	if (s->epoll_fd >= 0)
		loop_unwatch_fd(l, s->epoll_fd);
	if (s->mhd)
		MHD_stop_daemon(s->mhd);
	kv_direct_free(s->kvd);
	catalog_api_cache_free(s->env.catalog_cache);
	free(s);
	return NULL;
}

void http_server_free(struct http_server *s)
{
	int i;

	if (!s)
		return;
	s->stopping = true;
	/* MHD_stop_daemon must not see suspended connections: answer each */
	while (s->parked) {
		struct http_req *r = s->parked;

		if (r->in_flight) {
			rpc_cancel(r->client, r->call_id);
			r->in_flight = false;
		}
		fallback(r, 503, "agent shutting down");
		r->state = REQ_READY;
		unpark(s, r);
	}
	for (i = 0; i < 3; i++)
		run_mhd(s);
	loop_unwatch_fd(s->loop, s->epoll_fd);
	MHD_stop_daemon(s->mhd);
	catalog_api_cache_free(s->env.catalog_cache);
	kv_direct_free(s->kvd);
	free(s);
}

int http_server_port(const struct http_server *s)
{
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);

	return info ? info->port : -1;
}

size_t http_server_parked(const struct http_server *s) { return s ? s->n_parked : 0; }

void http_server_set_agent(struct http_server *s, struct agent_state *st) { s->env.agent = st; }
