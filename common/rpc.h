/* Request/reply between daemons over ZeroMQ, carrying proto/ messages.
 *
 * Client: a DEALER socket. Each call gets a request id, a time-out and a
 * callback; replies may come in any order and are matched by id. Sockets use
 * ZMQ_IMMEDIATE, so a call to a daemon that is not running fails at once
 * with CAIRN_E_UNAVAILABLE instead of being queued and replayed later
 * (a write must never be applied minutes after its caller gave up). Calls
 * are not retried here: only the caller knows whether a request is safe to
 * repeat.
 *
 * Server: a ROUTER socket. The handler gets each decoded request and either
 * answers at once or keeps it (a blocking query) and answers later with
 * rpc_reply(). Malformed requests get an ERROR reply from this module and
 * never reach the handler. */
#ifndef CAIRN_RPC_H
#define CAIRN_RPC_H

#include <stdint.h>

#include "arena.h"
#include "proto.h"

struct loop;
struct rpc_client;
struct rpc_server;

/* ---- client ----------------------------------------------------------- */

/* status: 0 with reply set (which may be an ERROR message), or a negative
 * code (-ETIMEDOUT, CAIRN_E_UNAVAILABLE, CAIRN_E_PROTO) with reply NULL.
 * reply is borrowed until the callback returns. The callback may start
 * new calls. */
typedef void (*rpc_reply_fn)(void *ctx, int status, const struct proto_msg *reply);

/* Connects a DEALER to endpoint ("ipc://..." or "tcp://...") and watches it
 * on the loop. zctx is the daemon's ZeroMQ context. NULL on failure. */
struct rpc_client *rpc_client_new(struct loop *l, void *zctx, const char *endpoint);
/* Cancels every pending call without calling back. NULL is fine. */
void rpc_client_free(struct rpc_client *c);

/* Sends req (its id is assigned here) and calls fn once: with the reply,
 * or with an error at the time-out. Returns 0 and the call id in
 * *out_id (may be NULL), or a negative code, in which case fn is never
 * called. */
int rpc_call(struct rpc_client *c, struct proto_msg *req, uint64_t timeout_ms, rpc_reply_fn fn,
	     void *ctx, uint64_t *out_id);
/* Forgets a pending call: its callback will not run. Unknown ids are fine. */
void rpc_cancel(struct rpc_client *c, uint64_t id);
/* Calls pending now. */
size_t rpc_client_pending(const struct rpc_client *c);

/* ---- server ----------------------------------------------------------- */

/* One received request. While the handler runs, the server owns it: the
 * handler may reply at once (rpc_reply inside the handler is fine) and
 * return RPC_DONE. If it returns RPC_KEEP without having replied, the
 * handler owns the request and must later pass it to rpc_reply(),
 * rpc_reply_error() or rpc_req_free(). */
struct rpc_req {
	struct proto_msg msg; /* decoded request; strings live in arena */
	struct arena arena;   /* per-request memory, also for building the reply */
	void *priv;           /* handler's own pointer */
	/* private to rpc.c */
	uint8_t ident[256];    /* ROUTER identity of the caller */
	size_t ident_len;
	struct rpc_server *srv;
	int in_handler;        /* the handler is running */
	int replied;           /* a reply was sent */
};

enum rpc_disposition {
	RPC_DONE = 0, /* the handler replied (or chose not to); free the request */
	RPC_KEEP = 1, /* the handler keeps the request and replies later */
};

typedef enum rpc_disposition (*rpc_handler_fn)(void *ctx, struct rpc_req *req);

/* Binds a ROUTER to every endpoint in the NULL-terminated list and watches
 * it on the loop. NULL on failure, with a reason in err. */
struct rpc_server *rpc_server_new(struct loop *l, void *zctx, const char *const *endpoints,
				  rpc_handler_fn fn, void *ctx, char *err, size_t errlen);
/* Frees the server; requests kept by the handler must be freed first. */
void rpc_server_free(struct rpc_server *s);

/* Sends reply (its id is set to the request's) and frees req. Returns 0 or
 * a negative code (the peer may be gone); req is freed either way. */
int rpc_reply(struct rpc_req *req, struct proto_msg *reply);
/* Sends an ERROR reply with code and message, then frees req. */
int rpc_reply_error(struct rpc_req *req, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Frees a kept request without answering. NULL is fine. */
void rpc_req_free(struct rpc_req *req);

/* ---- publish / subscribe --------------------------------------------- */

/* Encodes and publishes m on a PUB socket. Returns 0 or a negative code. */
int rpc_publish(void *pub, const struct proto_msg *m);

#endif
