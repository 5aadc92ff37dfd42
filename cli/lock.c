/* `cairn lock` (see lock.h), following Consul's command/lock, api/lock.go
 * and api/semaphore.go. */
#include "lock.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "client.h"
#include "commands.h"
#include "kv_io.h"
#include "output.h"

#define LOCK_SESSION_TTL "15s"
#define LOCK_SESSION_TTL_MS 15000ull
#define LOCK_WAIT_MS 15000ull	     /* api.DefaultLockWaitTime: one blocking read */
#define LOCK_RETRY_MS 5000ull	     /* api.DefaultLockRetryTime: after a refused acquire */
#define LOCK_MONITOR_RETRY_MS 1000ull /* command/lock defaultMonitorRetryTime */
#define LOCK_KILL_GRACE_MS 5000ull    /* command/lock lockKillGracePeriod */
#define LOCK_RELEASE_TRIES 100

extern char **environ;

/* ---- pure helpers ------------------------------------------------------ */

int lock_parse_duration_ms(const char *s, uint64_t *out_ms)
{
	static const struct {
		const char *unit;
		double ms;
	} units[] = {{"ns", 1e-6}, {"us", 1e-3}, {"\xc2\xb5s", 1e-3}, {"ms", 1.0},
		     {"s", 1e3},   {"m", 6e4},	 {"h", 3.6e6}};
	double total = 0;

	if (!s || !*s)
		return -EINVAL;
	if (strcmp(s, "0") == 0) {
		*out_ms = 0;
		return 0;
	}
	while (*s) {
		double v = 0, scale = 1;
		bool digits = false, found = false;

		while (*s >= '0' && *s <= '9') {
			v = v * 10 + (*s++ - '0');
			digits = true;
		}
		if (*s == '.') {
			s++;
			while (*s >= '0' && *s <= '9') {
				scale /= 10;
				v += (*s++ - '0') * scale;
				digits = true;
			}
		}
		if (!digits)
			return -EINVAL;
		/* longest unit first where prefixes overlap ("ms" before "m") */
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]) && !found; i++) {
			size_t n = strlen(units[i].unit);

			if (strncmp(s, units[i].unit, n) == 0 &&
			    !(units[i].unit[0] == 'm' && n == 1 && s[1] == 's')) {
				total += v * units[i].ms;
				s += n;
				found = true;
			}
		}
		if (!found)
			return -EINVAL;
	}
	if (total > 9.2e15)
		return -EINVAL;
	*out_ms = (uint64_t)total;
	return 0;
}

int lock_sem_decode(const void *value, size_t len, int64_t limit_default, int64_t *out_limit,
		    json_t **out_holders)
{
	json_t *doc, *lim = NULL, *hold = NULL, *v, *holders;
	const char *k;

	if (len == 0) {
		holders = json_object();
		if (!holders)
			return -ENOMEM;
		*out_limit = limit_default;
		*out_holders = holders;
		return 0;
	}
	doc = json_loadb(value, len, 0, NULL);
	if (!json_is_object(doc)) {
		json_decref(doc);
		return -EINVAL;
	}
	/* Go's encoding/json: field names match case-insensitively */
	json_object_foreach(doc, k, v)
	{
		if (strcasecmp(k, "Limit") == 0)
			lim = v;
		else if (strcasecmp(k, "Holders") == 0)
			hold = v;
	}
	if ((lim && !json_is_integer(lim)) || (hold && !json_is_object(hold) && !json_is_null(hold))) {
		json_decref(doc);
		return -EINVAL;
	}
	holders = json_object();
	if (!holders) {
		json_decref(doc);
		return -ENOMEM;
	}
	if (json_is_object(hold))
		json_object_foreach(hold, k, v) if (json_is_true(v) &&
						    json_object_set_new(holders, k, json_true()) < 0)
		{
			json_decref(holders);
			json_decref(doc);
			return -ENOMEM;
		}
	*out_limit = lim ? (int64_t)json_integer_value(lim) : 0;
	*out_holders = holders;
	json_decref(doc);
	return 0;
}

void lock_sem_prune(json_t *holders, const json_t *entries)
{
	const char *k;
	json_t *v, *tmp;

	json_object_foreach_safe(holders, tmp, k, v)
	{
		bool alive = false;
		size_t i;
		const json_t *e;

		json_array_foreach(entries, i, e)
		{
			const char *s = json_string_value(json_object_get(e, "Session"));

			if (s && strcmp(s, k) == 0) {
				alive = true;
				break;
			}
		}
		if (!alive)
			(void)json_object_del(holders, k); /* k stays valid: the _safe iterator */
	}
}

char *lock_sem_encode(int64_t limit, const json_t *holders)
{
	json_t *o = json_object(), *h = json_object();
	char *text = NULL;
	const char *k;
	json_t *v;

	if (!o || !h)
		goto out;
	json_object_foreach((json_t *)holders, k, v) if (json_object_set_new(h, k, json_true()) < 0) goto out;
	if (json_object_set_new(o, "Limit", json_integer((json_int_t)limit)) < 0 ||
	    json_object_set(o, "Holders", h) < 0)
		goto out;
	/* Go marshals struct fields in order and map keys sorted */
	{
		char *ht = json_dumps(h, JSON_COMPACT | JSON_SORT_KEYS);

		if (ht && asprintf(&text, "{\"Limit\":%" PRId64 ",\"Holders\":%s}", limit, ht) < 0)
			text = NULL;
		free(ht);
	}
out:
	json_decref(h);
	json_decref(o);
	return text;
}

const json_t *lock_find_entry(const json_t *entries, const char *key)
{
	size_t i;
	const json_t *e;

	json_array_foreach(entries, i, e)
	{
		const char *k = json_string_value(json_object_get(e, "Key"));

		if (k && strcmp(k, key) == 0)
			return e;
	}
	return NULL;
}

/* ---- the command --------------------------------------------------------- */

struct lock_opts {
	struct args_http http;
	uint64_t limit;		/* -n */
	const char *name;	/* -name */
	const char *timeout;	/* -timeout (or the deprecated -try) */
	uint64_t monitor_retry; /* -monitor-retry */
	const char *lock_delay; /* -lock-delay (Cairn): the session's LockDelay */
	bool shell;		/* -shell */
	bool pass_stdin;	/* -pass-stdin */
	bool verbose;		/* -verbose */
	bool child_exit_code;	/* -child-exit-code */
};

struct lk {
	const struct lock_opts *o;
	const char *prefix; /* without a leading or trailing '/' */
	char *lock_key;	    /* <prefix>/.lock */
	char *lock_path;    /* kv/<escaped lock key> */
	char *list_path;    /* kv/<escaped prefix>/ */
	char *contender_path; /* kv/<escaped prefix>/<session> (semaphore) */
	char session[64];
	uint64_t lock_delay_ms;
	bool has_lock_delay;

	pthread_mutex_t mu;
	pthread_cond_t cv; /* CLOCK_MONOTONIC; signalled on every flag change */
	bool renew_stop;   /* the renewer must end */
	bool stopping;	   /* releasing: a lost lock now is ours */
	bool child_done;   /* the child has exited (not yet necessarily reaped) */
	bool lost;	   /* the monitor saw the lock lost and ended the child */
	pid_t child;
};

static volatile sig_atomic_t got_signal; /* SIGINT/SIGTERM received */
static volatile sig_atomic_t got_alarm;	 /* the kill grace period ended */

static void on_signal(int sig)
{
	if (sig == SIGALRM)
		got_alarm = 1;
	else
		got_signal = sig;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !got_signal)
		;
}

/* Waits on l->cv until *flag or the monotonic deadline; mu held. */
static void wait_flag(struct lk *l, const bool *flag, uint64_t deadline_ms)
{
	struct timespec ts = {.tv_sec = (time_t)(deadline_ms / 1000),
			      .tv_nsec = (long)(deadline_ms % 1000) * 1000000};

	while (!*flag && now_ms() < deadline_ms)
		(void)pthread_cond_timedwait(&l->cv, &l->mu, &ts); /* re-checked above */
}

/* GET path?query. 200: the JSON body in out (caller decrefs); 404: NULL.
 * Returns 0, -EIO (transport; err says why), -EAGAIN (a 5xx, retryable),
 * -EPROTO (another status or a malformed body). */
static int get_json(struct client *c, const char *path, const char *query, json_t **out,
		    uint64_t *out_index, char *err, size_t errlen)
{
	struct client_resp r = {0};
	int rc = client_request(c, "GET", path, query, NULL, 0, &r, err, errlen);

	*out = NULL;
	if (rc < 0)
		return -EIO;
	if (out_index)
		*out_index = r.index;
	if (r.status == 200) {
		char *q = kv_io_quote_flags(r.body, r.len);

		*out = q ? json_loads(q, 0, NULL) : NULL;
		free(q);
		if (!*out) {
			snprintf(err, errlen, "malformed answer from %s", path);
			rc = -EPROTO;
		}
	} else if (r.status != 404) {
		snprintf(err, errlen, "Unexpected response code: %ld (%.200s)", r.status, r.body);
		rc = r.status >= 500 ? -EAGAIN : -EPROTO;
	}
	client_resp_close(&r);
	return rc;
}

/* PUT (or DELETE) path?query with body; true when the answer is 200 "true". */
static int put_bool(struct client *c, const char *method, const char *path, const char *query,
		    const char *body, bool *out_ok, char *err, size_t errlen)
{
	struct client_resp r = {0};
	int rc = client_request(c, method, path, query, body, body ? strlen(body) : 0, &r, err,
				errlen);

	if (rc < 0)
		return -EIO;
	if (r.status != 200) {
		snprintf(err, errlen, "Unexpected response code: %ld (%.200s)", r.status, r.body);
		rc = r.status >= 500 ? -EAGAIN : -EPROTO;
	} else {
		*out_ok = strncmp(r.body, "true", 4) == 0;
	}
	client_resp_close(&r);
	return rc;
}

static const char *str_of(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "";
}

static uint64_t u64_of(const json_t *o, const char *k)
{
	return kv_io_flags(json_object_get(o, k)); /* Flags come quoted: see get_json */
}

/* Blocking-read query string: index and wait, optionally consistent. */
static void blocking_query(char *q, size_t n, uint64_t index, uint64_t wait_ms, bool consistent)
{
	if (index)
		snprintf(q, n, "%sindex=%" PRIu64 "&wait=%" PRIu64 "ms",
			 consistent ? "consistent&" : "", index, wait_ms ? wait_ms : 1);
	else
		snprintf(q, n, "%s", consistent ? "consistent" : "");
}

static uint64_t remaining(uint64_t deadline_ms)
{
	uint64_t t = now_ms();

	return deadline_ms == 0 ? LOCK_WAIT_MS
				: (t >= deadline_ms ? 0
						    : (deadline_ms - t < LOCK_WAIT_MS ? deadline_ms - t
										      : LOCK_WAIT_MS));
}

/* Acquires <prefix>/.lock as api.Lock.Lock. Returns 0 when held, 1 on
 * timeout or a signal, -1 after printing an error. */
static int acquire_lock(struct lk *l, struct client *c, uint64_t deadline_ms)
{
	char q[160], err[512], flagq[200];
	uint64_t index = 0;

	snprintf(flagq, sizeof(flagq), "acquire=%s&flags=%" PRIu64, l->session,
		 (uint64_t)LOCK_FLAG_VALUE);
	for (;;) {
		json_t *arr = NULL;
		const json_t *e;
		uint64_t wait = remaining(deadline_ms), idx = 0;
		bool ok = false;
		int rc;

		if (got_signal || (deadline_ms && wait == 0))
			return 1;
		blocking_query(q, sizeof(q), index, wait, false);
		rc = get_json(c, l->lock_path, q, &arr, &idx, err, sizeof(err));
		if (rc < 0) {
			fprintf(stderr, "Lock acquisition failed: failed to read lock: %s\n", err);
			return -1;
		}
		e = json_array_get(arr, 0);
		if (e && u64_of(e, "Flags") != LOCK_FLAG_VALUE) {
			json_decref(arr);
			fprintf(stderr, "Lock acquisition failed: Existing key does not match lock use\n");
			return -1;
		}
		if (e && *str_of(e, "Session")) {
			json_decref(arr);
			index = idx; /* held by someone: wait for a change */
			continue;
		}
		json_decref(arr);
		rc = put_bool(c, "PUT", l->lock_path, flagq, NULL, &ok, err, sizeof(err));
		if (rc < 0) {
			fprintf(stderr, "Lock acquisition failed: failed to acquire lock: %s\n", err);
			return -1;
		}
		if (ok)
			return 0;
		/* Refused: held again already (wait on it), or a lock-delay. */
		rc = get_json(c, l->lock_path, NULL, &arr, &idx, err, sizeof(err));
		if (rc < 0) {
			fprintf(stderr, "Lock acquisition failed: failed to read lock: %s\n", err);
			return -1;
		}
		e = json_array_get(arr, 0);
		if (e && *str_of(e, "Session")) {
			index = idx;
		} else {
			uint64_t w = deadline_ms ? remaining(deadline_ms) : LOCK_RETRY_MS;

			sleep_ms(w < LOCK_RETRY_MS ? w : LOCK_RETRY_MS);
			index = 0;
		}
		json_decref(arr);
	}
}

/* The .lock entry of a semaphore listing decoded, pruned of dead holders.
 * Returns 0, or -1 after writing the reason in err. */
static int sem_state(struct lk *l, const json_t *arr, int64_t *limit, json_t **holders,
		     uint64_t *modify_index, char *err, size_t errlen)
{
	const json_t *e = lock_find_entry(arr, l->lock_key);
	char *val = NULL;
	size_t len = 0;
	int rc;

	*modify_index = e ? u64_of(e, "ModifyIndex") : 0;
	if (e && u64_of(e, "Flags") != LOCK_SEM_FLAG_VALUE) {
		snprintf(err, errlen, "Existing key does not match semaphore use");
		return -1;
	}
	if (e && output_kv_value(json_object_get(e, "Value"), &val, &len) < 0) {
		snprintf(err, errlen, "lock decoding failed: bad base64");
		return -1;
	}
	rc = lock_sem_decode(val, len, (int64_t)l->o->limit, limit, holders);
	free(val);
	if (rc < 0) {
		snprintf(err, errlen, "lock decoding failed: not a semaphore lock");
		return -1;
	}
	lock_sem_prune(*holders, arr);
	return 0;
}

/* Acquires a slot as api.Semaphore.Acquire. Returns as acquire_lock. */
static int acquire_sem(struct lk *l, struct client *c, uint64_t deadline_ms)
{
	char q[200], err[512];
	uint64_t index = 0;
	bool ok = false;

	snprintf(q, sizeof(q), "acquire=%s&flags=%" PRIu64, l->session,
		 (uint64_t)LOCK_SEM_FLAG_VALUE);
	if (put_bool(c, "PUT", l->contender_path, q, NULL, &ok, err, sizeof(err)) < 0 || !ok) {
		fprintf(stderr, "Lock acquisition failed: failed to make contender entry: %s\n",
			ok ? "" : (err[0] ? err : "refused"));
		return -1;
	}
	for (;;) {
		json_t *arr = NULL, *holders = NULL;
		uint64_t wait = remaining(deadline_ms), idx = 0, mod = 0;
		int64_t limit = 0;
		char *text;
		int rc;

		if (got_signal || (deadline_ms && wait == 0))
			return 1;
		blocking_query(q, sizeof(q), index, wait, false);
		{
			char qq[220];

			snprintf(qq, sizeof(qq), "recurse%s%s", q[0] ? "&" : "", q);
			rc = get_json(c, l->list_path, qq, &arr, &idx, err, sizeof(err));
		}
		if (rc < 0) {
			fprintf(stderr, "Lock acquisition failed: failed to read prefix: %s\n", err);
			return -1;
		}
		if (sem_state(l, arr, &limit, &holders, &mod, err, sizeof(err)) < 0) {
			json_decref(arr);
			fprintf(stderr, "Lock acquisition failed: %s\n", err);
			return -1;
		}
		json_decref(arr);
		if (limit != (int64_t)l->o->limit) {
			json_decref(holders);
			fprintf(stderr,
				"Lock acquisition failed: semaphore limit conflict (lock: %" PRId64
				", local: %" PRIu64 ")\n",
				limit, l->o->limit);
			return -1;
		}
		if ((int64_t)json_object_size(holders) >= limit) {
			json_decref(holders);
			index = idx;
			continue;
		}
		text = json_object_set_new(holders, l->session, json_true()) == 0
			   ? lock_sem_encode(limit, holders)
			   : NULL;
		json_decref(holders);
		if (!text) {
			fprintf(stderr, "Lock acquisition failed: out of memory\n");
			return -1;
		}
		snprintf(q, sizeof(q), "cas=%" PRIu64 "&flags=%" PRIu64, mod,
			 (uint64_t)LOCK_SEM_FLAG_VALUE);
		ok = false;
		rc = put_bool(c, "PUT", l->lock_path, q, text, &ok, err, sizeof(err));
		free(text);
		if (rc < 0) {
			fprintf(stderr, "Lock acquisition failed: failed to update lock: %s\n", err);
			return -1;
		}
		if (ok)
			return 0;
		index = 0; /* lost a race with another contender: read again */
	}
}

/* Whether we still hold the lock or slot, from one (blocking) read.
 * Returns 1 held, 0 not held, or get_json's error. */
static int check_held(struct lk *l, struct client *c, uint64_t *index, char *err, size_t errlen)
{
	char q[160], qq[200];
	json_t *arr = NULL, *holders = NULL;
	uint64_t idx = 0, mod;
	int64_t limit;
	int rc, held;

	blocking_query(q, sizeof(q), *index, LOCK_WAIT_MS, true);
	if (l->o->limit == 1) {
		rc = get_json(c, l->lock_path, q, &arr, &idx, err, errlen);
		if (rc < 0)
			return rc;
		held = strcmp(str_of(json_array_get(arr, 0), "Session"), l->session) == 0;
	} else {
		snprintf(qq, sizeof(qq), "recurse&%s", q);
		rc = get_json(c, l->list_path, qq, &arr, &idx, err, errlen);
		if (rc < 0)
			return rc;
		held = sem_state(l, arr, &limit, &holders, &mod, err, errlen) == 0 &&
		       json_object_get(holders, l->session) != NULL;
		json_decref(holders);
	}
	json_decref(arr);
	*index = idx;
	return held;
}

/* Ends the child as Consul's killChild: SIGTERM, then SIGKILL after the
 * grace period. mu held; the child is not reaped while !child_done. */
static void kill_child_locked(struct lk *l)
{
	uint64_t deadline = now_ms() + LOCK_KILL_GRACE_MS;

	if (l->child_done || l->child <= 0)
		return;
	(void)kill(l->child, SIGTERM); /* the zombie keeps the pid ours until reaped */
	wait_flag(l, &l->child_done, deadline);
	if (!l->child_done)
		(void)kill(l->child, SIGKILL);
}

/* Watches the lock while the child runs (api monitorLock with
 * MonitorRetries): a lost lock ends the child. */
static void *monitor_main(void *arg)
{
	struct lk *l = arg;
	struct client *c = cmd_client(&l->o->http);
	uint64_t index = 0, retries = l->o->monitor_retry;
	char err[512];

	for (;;) {
		int rc;

		pthread_mutex_lock(&l->mu);
		if (l->stopping || !c) {
			pthread_mutex_unlock(&l->mu);
			break;
		}
		pthread_mutex_unlock(&l->mu);
		rc = c ? check_held(l, c, &index, err, sizeof(err)) : -EIO;
		if (rc == 1) {
			retries = l->o->monitor_retry;
			continue;
		}
		if (rc < 0 && rc != -EPROTO && retries > 0) {
			/* ride out a brief unavailability (5xx or no answer) */
			retries--;
			index = 0;
			pthread_mutex_lock(&l->mu);
			wait_flag(l, &l->stopping, now_ms() + LOCK_MONITOR_RETRY_MS);
			pthread_mutex_unlock(&l->mu);
			continue;
		}
		pthread_mutex_lock(&l->mu);
		if (!l->stopping) {
			l->lost = true;
			if (l->o->verbose)
				printf("Lock lost, killing child\n");
			kill_child_locked(l);
		}
		pthread_mutex_unlock(&l->mu);
		break;
	}
	client_free(c);
	return NULL;
}

/* Renews the session every TTL/2 (api RenewPeriodic), retrying each
 * second after a failed renewal, until told to stop or the session is
 * gone (404). */
static void *renew_main(void *arg)
{
	struct lk *l = arg;
	struct client *c = cmd_client(&l->o->http);
	char path[128], err[512];
	uint64_t next = now_ms() + LOCK_SESSION_TTL_MS / 2;

	snprintf(path, sizeof(path), "session/renew/%s", l->session);
	pthread_mutex_lock(&l->mu);
	while (c && !l->renew_stop) {
		struct client_resp r = {0};
		int rc;

		wait_flag(l, &l->renew_stop, next);
		if (l->renew_stop)
			break;
		pthread_mutex_unlock(&l->mu);
		rc = client_request(c, "PUT", path, NULL, "", 0, &r, err, sizeof(err));
		pthread_mutex_lock(&l->mu);
		if (rc == 0 && r.status == 404) {
			client_resp_close(&r);
			break;
		}
		next = now_ms() + (rc == 0 && r.status == 200 ? LOCK_SESSION_TTL_MS / 2
							       : LOCK_MONITOR_RETRY_MS);
		client_resp_close(&r);
	}
	pthread_mutex_unlock(&l->mu);
	client_free(c);
	return NULL;
}

static int create_session(struct lk *l, struct client *c)
{
	struct client_resp r = {0};
	json_t *body = json_pack("{s:s, s:s}", "Name", l->o->name, "TTL", LOCK_SESSION_TTL), *doc;
	char err[512], *text = NULL;
	int ret = -1;

	if (body && l->o->limit > 1)
		json_object_set_new(body, "Behavior", json_string("delete"));
	if (body && l->has_lock_delay) {
		char d[32];

		snprintf(d, sizeof(d), "%" PRIu64 "ms", l->lock_delay_ms);
		json_object_set_new(body, "LockDelay", json_string(d));
	}
	text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (!text) {
		fprintf(stderr, "Lock acquisition failed: out of memory\n");
		return -1;
	}
	if (client_request(c, "PUT", "session/create", NULL, text, strlen(text), &r, err,
			   sizeof(err)) < 0) {
		fprintf(stderr, "Lock acquisition failed: failed to create session: %s\n", err);
		goto out;
	}
	if (r.status != 200) {
		fprintf(stderr,
			"Lock acquisition failed: failed to create session: Unexpected response "
			"code: %ld (%s)\n",
			r.status, r.body);
		goto out;
	}
	doc = json_loadb(r.body, r.len, 0, NULL);
	if (!json_is_string(json_object_get(doc, "ID")) ||
	    strlen(str_of(doc, "ID")) >= sizeof(l->session)) {
		json_decref(doc);
		fprintf(stderr, "Lock acquisition failed: failed to create session: bad answer\n");
		goto out;
	}
	snprintf(l->session, sizeof(l->session), "%s", str_of(doc, "ID"));
	json_decref(doc);
	ret = 0;
out:
	client_resp_close(&r);
	free(text);
	return ret;
}

/* Gives the lock or slot back (api Unlock / Release). */
static int release(struct lk *l, struct client *c)
{
	char q[200], err[512];
	bool ok = false;

	if (l->o->limit == 1) {
		snprintf(q, sizeof(q), "release=%s&flags=%" PRIu64, l->session,
			 (uint64_t)LOCK_FLAG_VALUE);
		if (put_bool(c, "PUT", l->lock_path, q, NULL, &ok, err, sizeof(err)) < 0) {
			fprintf(stderr, "Lock release failed: failed to release lock: %s\n", err);
			return -1;
		}
		return 0;
	}
	for (int tries = 0; tries < LOCK_RELEASE_TRIES; tries++) {
		json_t *arr = NULL, *holders = NULL;
		const json_t *e;
		int64_t limit = 0;
		char *val = NULL, *text;
		size_t len = 0;
		uint64_t mod;
		int rc;

		if (get_json(c, l->lock_path, NULL, &arr, NULL, err, sizeof(err)) < 0) {
			fprintf(stderr, "Lock release failed: %s\n", err);
			return -1;
		}
		e = json_array_get(arr, 0);
		mod = e ? u64_of(e, "ModifyIndex") : 0;
		rc = e ? output_kv_value(json_object_get(e, "Value"), &val, &len) : 0;
		if (rc == 0)
			rc = lock_sem_decode(val, len, (int64_t)l->o->limit, &limit, &holders);
		free(val);
		json_decref(arr);
		if (rc < 0) {
			fprintf(stderr, "Lock release failed: lock decoding failed\n");
			return -1;
		}
		if (!json_object_get(holders, l->session)) {
			json_decref(holders);
			break;
		}
		(void)json_object_del(holders, l->session);
		text = lock_sem_encode(limit, holders);
		json_decref(holders);
		if (!text)
			return -1;
		snprintf(q, sizeof(q), "cas=%" PRIu64 "&flags=%" PRIu64, mod,
			 (uint64_t)LOCK_SEM_FLAG_VALUE);
		ok = false;
		rc = put_bool(c, "PUT", l->lock_path, q, text, &ok, err, sizeof(err));
		free(text);
		if (rc < 0) {
			fprintf(stderr, "Lock release failed: failed to update lock: %s\n", err);
			return -1;
		}
		if (ok)
			break;
	}
	if (put_bool(c, "DELETE", l->contender_path, NULL, NULL, &ok, err, sizeof(err)) < 0) {
		fprintf(stderr, "Lock release failed: %s\n", err);
		return -1;
	}
	return 0;
}

/* Removes the lock key when nobody holds it (api Lock/Semaphore Destroy);
 * "in use" is not an error. */
static int cleanup(struct lk *l, struct client *c)
{
	json_t *arr = NULL, *holders = NULL;
	const json_t *e;
	char err[512], q[64];
	uint64_t mod = 0;
	int64_t limit;
	bool ok = false, in_use;

	if (l->o->limit == 1) {
		if (get_json(c, l->lock_path, NULL, &arr, NULL, err, sizeof(err)) < 0) {
			fprintf(stderr, "Lock cleanup failed: failed to read lock: %s\n", err);
			return -1;
		}
		e = json_array_get(arr, 0);
		if (!e) {
			json_decref(arr);
			return 0;
		}
		if (u64_of(e, "Flags") != LOCK_FLAG_VALUE) {
			json_decref(arr);
			fprintf(stderr, "Lock cleanup failed: Existing key does not match lock use\n");
			return -1;
		}
		in_use = *str_of(e, "Session") != '\0';
		mod = u64_of(e, "ModifyIndex");
	} else {
		snprintf(q, sizeof(q), "recurse");
		if (get_json(c, l->list_path, q, &arr, NULL, err, sizeof(err)) < 0) {
			fprintf(stderr, "Lock cleanup failed: failed to read prefix: %s\n", err);
			return -1;
		}
		if (!lock_find_entry(arr, l->lock_key)) {
			json_decref(arr);
			return 0;
		}
		if (sem_state(l, arr, &limit, &holders, &mod, err, sizeof(err)) < 0) {
			json_decref(arr);
			fprintf(stderr, "Lock cleanup failed: %s\n", err);
			return -1;
		}
		in_use = json_object_size(holders) > 0;
		json_decref(holders);
	}
	json_decref(arr);
	if (in_use) {
		if (l->o->verbose)
			printf("Cleanup aborted, lock in use\n");
		return 0;
	}
	snprintf(q, sizeof(q), "cas=%" PRIu64, mod);
	if (put_bool(c, "DELETE", l->lock_path, q, NULL, &ok, err, sizeof(err)) < 0) {
		fprintf(stderr, "Lock cleanup failed: failed to remove lock: %s\n", err);
		return -1;
	}
	if (l->o->verbose)
		printf(ok ? "Cleanup succeeded\n" : "Cleanup aborted, lock in use\n");
	return 0;
}

/* The child's environment: ours plus CONSUL_LOCK_HELD=true, built before
 * fork (only async-signal-safe calls may follow fork in a threaded
 * process). */
static char **child_env(void)
{
	size_t n = 0, k = 0;
	char **env;

	while (environ[n])
		n++;
	env = calloc(n + 2, sizeof(*env));
	if (!env)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "CONSUL_LOCK_HELD=", 17) != 0)
			env[k++] = environ[i];
	env[k++] = (char *)"CONSUL_LOCK_HELD=true";
	env[k] = NULL;
	return env;
}

/* Starts the child: argv[0..argc) run directly, or joined with spaces and
 * run by $SHELL (default /bin/sh) -c as Consul's ExecScript. */
static pid_t spawn_child(const struct lock_opts *o, int argc, char **argv, const sigset_t *mask)
{
	char **env = child_env(), *script = NULL, *sh_argv[4];
	const char *shell = getenv("SHELL");
	size_t len = 1;
	pid_t pid;

	if (!env)
		return -1;
	if (o->shell) {
		for (int i = 0; i < argc; i++)
			len += strlen(argv[i]) + 1;
		script = calloc(1, len);
		if (!script) {
			free(env);
			return -1;
		}
		for (int i = 0; i < argc; i++) {
			if (i)
				strcat(script, " ");
			strcat(script, argv[i]);
		}
		if (!shell || !*shell)
			shell = "/bin/sh";
		sh_argv[0] = (char *)shell;
		sh_argv[1] = (char *)"-c";
		sh_argv[2] = script;
		sh_argv[3] = NULL;
	}
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid == 0) {
		struct sigaction dfl = {.sa_handler = SIG_DFL};

		sigaction(SIGINT, &dfl, NULL);
		sigaction(SIGTERM, &dfl, NULL);
		sigaction(SIGALRM, &dfl, NULL);
		pthread_sigmask(SIG_SETMASK, mask, NULL);
		if (!o->pass_stdin) {
			int fd = open("/dev/null", O_RDONLY);

			if (fd >= 0 && fd != 0) {
				dup2(fd, 0);
				close(fd);
			}
		}
		if (o->shell)
			execve(sh_argv[0], sh_argv, env);
		else
			execvpe(argv[0], argv, env);
		{
			static const char msg[] = "Error executing handler: exec failed\n";

			(void)!write(2, msg, sizeof(msg) - 1);
		}
		_exit(127);
	}
	free(script);
	free(env);
	return pid;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: cairn lock [options] prefix child...\n\n"
		"  Acquires a lock or semaphore at a given path, and invokes a child process\n"
		"  when successful. The child process can assume the lock is held while it\n"
		"  executes. If the lock is lost or communication is disrupted the child\n"
		"  process will be sent a SIGTERM signal and given time to gracefully exit.\n"
		"  After the grace period expires the process will be hard terminated.\n\n"
		"  When -n=1, only a single lock holder or leader exists providing mutual\n"
		"  exclusion. Setting a higher value switches to a semaphore allowing multiple\n"
		"  holders to coordinate.\n\n"
		"Options:\n"
		"  -child-exit-code   Exit 2 if the child process exited with an error\n"
		"  -n=1               Number of concurrent holders (>1: a semaphore)\n"
		"  -monitor-retry=3   Retries (1 s apart) on errors while monitoring the lock\n"
		"  -name=NAME         Name of the lock session\n"
		"  -pass-stdin        Pass stdin to the child process\n"
		"  -shell=true        Run the child through $SHELL -c (default /bin/sh)\n"
		"  -timeout=DURATION  Maximum time to wait for the lock (0: forever)\n"
		"  -verbose           Verbose output\n"
		"  -lock-delay=DUR    Cairn: the session's LockDelay (default 15s)\n"
		"  -http-addr=host:port -token=T -datacenter=DC\n");
}

/* Joins the prefix like Go's path.Join(prefix, ".lock") for clean input:
 * no leading or trailing slashes. Writes into buf. */
static const char *clean_prefix(const char *p, char *buf, size_t n)
{
	size_t len;

	while (*p == '/')
		p++;
	snprintf(buf, n, "%s", p);
	len = strlen(buf);
	while (len > 0 && buf[len - 1] == '/')
		buf[--len] = '\0';
	return buf;
}

static int setup_paths(struct lk *l)
{
	char *esc_prefix = client_escape_key(l->prefix);
	int rc = -ENOMEM;

	if (!esc_prefix)
		return rc;
	if (asprintf(&l->lock_key, "%s/.lock", l->prefix) < 0)
		l->lock_key = NULL;
	else if (asprintf(&l->lock_path, "kv/%s/.lock", esc_prefix) < 0)
		l->lock_path = NULL;
	else if (asprintf(&l->list_path, "kv/%s/", esc_prefix) < 0)
		l->list_path = NULL;
	else
		rc = 0;
	free(esc_prefix);
	return rc;
}

int cmd_lock(int argc, char **argv)
{
	struct lock_opts o = {.limit = 1, .monitor_retry = 3, .shell = true};
	bool has_limit = false;
	const char *try_ = NULL;
	struct args_flag flags[] = {
	    {"http-addr", ARGS_STR, &o.http.http_addr, NULL},
	    {"token", ARGS_STR, &o.http.token, NULL},
	    {"datacenter", ARGS_STR, &o.http.datacenter, NULL},
	    {"n", ARGS_U64, &o.limit, &has_limit},
	    {"name", ARGS_STR, &o.name, NULL},
	    {"timeout", ARGS_STR, &o.timeout, NULL},
	    {"try", ARGS_STR, &try_, NULL},
	    {"monitor-retry", ARGS_U64, &o.monitor_retry, NULL},
	    {"lock-delay", ARGS_STR, &o.lock_delay, NULL},
	    {"shell", ARGS_BOOL, &o.shell, NULL},
	    {"pass-stdin", ARGS_BOOL, &o.pass_stdin, NULL},
	    {"verbose", ARGS_BOOL, &o.verbose, NULL},
	    {"child-exit-code", ARGS_BOOL, &o.child_exit_code, NULL},
	};
	struct lk l = {.o = &o};
	struct client *c = NULL;
	struct client_resp r = {0};
	struct sigaction sa = {.sa_handler = on_signal};
	sigset_t block, old;
	pthread_t renewer, monitor;
	bool renewer_on = false, monitor_on = false, session_on = false;
	char err[512], prefix_buf[1024], *name = NULL;
	uint64_t timeout_ms = 0, deadline = 0;
	int next, rc, ret = 1, status = 0;
	bool child_failed = false;

	(void)has_limit;
	rc = args_parse_flags(flags, sizeof(flags) / sizeof(flags[0]), argc, argv, &next, err,
			      sizeof(err));
	if (rc == -ECANCELED) {
		usage(stdout);
		return 0;
	}
	if (rc < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (o.limit == 0 || o.limit > 1000000) {
		fprintf(stderr, "Lock holder limit must be positive\n");
		return 1;
	}
	if (argc - next < 2) {
		fprintf(stderr, "Key prefix and child command must be specified\n");
		return 1;
	}
	if (!o.timeout)
		o.timeout = try_;
	if (o.timeout && lock_parse_duration_ms(o.timeout, &timeout_ms) < 0) {
		fprintf(stderr, "invalid value \"%s\" for flag -timeout\n", o.timeout);
		return 1;
	}
	if (o.lock_delay) {
		if (lock_parse_duration_ms(o.lock_delay, &l.lock_delay_ms) < 0) {
			fprintf(stderr, "invalid value \"%s\" for flag -lock-delay\n", o.lock_delay);
			return 1;
		}
		l.has_lock_delay = true;
	}
	l.prefix = clean_prefix(argv[next], prefix_buf, sizeof(prefix_buf));
	if (!*l.prefix) {
		fprintf(stderr, "Key prefix and child command must be specified\n");
		return 1;
	}
	if (!o.name) {
		size_t len = 0;
		FILE *f = open_memstream(&name, &len);

		if (!f)
			return 1;
		fprintf(f, "Consul lock for '");
		for (int i = next + 1; i < argc; i++)
			fprintf(f, "%s%s", i > next + 1 ? " " : "", argv[i]);
		fprintf(f, "' at '%s'", l.prefix);
		if (fclose(f) != 0)
			return 1;
		o.name = name;
	}
	if (setup_paths(&l) < 0) {
		fprintf(stderr, "Error! Out of memory\n");
		free(name);
		return 1;
	}
	pthread_mutex_init(&l.mu, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&l.cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	/* No SA_RESTART: a signal interrupts waiting for the child. Worker
	 * threads block these so they always reach the main thread. */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGALRM, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGALRM);

	c = cmd_client(&o.http);
	if (!c)
		goto out;
	if (client_request(c, "GET", "agent/self", NULL, NULL, 0, &r, err, sizeof(err)) < 0 ||
	    r.status != 200) {
		if (r.body)
			snprintf(err, sizeof(err), "Unexpected response code: %ld (%s)", r.status,
				 r.body);
		fprintf(stderr, "Error querying Cairn agent: %s\n", err);
		goto out;
	}
	if (o.verbose && o.limit == 1)
		printf("Setting up lock at path: %s\n", l.lock_key);
	else if (o.verbose)
		printf("Setting up semaphore (limit %" PRIu64 ") at prefix: %s\n", o.limit,
		       l.prefix);
	if (create_session(&l, c) < 0)
		goto out;
	session_on = true;
	if (o.limit > 1) {
		char *esc = client_escape_key(l.session);

		if (!esc || asprintf(&l.contender_path, "%s%s", l.list_path, esc) < 0) {
			l.contender_path = NULL;
			free(esc);
			fprintf(stderr, "Error! Out of memory\n");
			goto out;
		}
		free(esc);
	}
	pthread_sigmask(SIG_BLOCK, &block, &old);
	renewer_on = pthread_create(&renewer, NULL, renew_main, &l) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (o.verbose)
		printf("Attempting lock acquisition\n");
	if (timeout_ms)
		deadline = now_ms() + timeout_ms;
	rc = o.limit == 1 ? acquire_lock(&l, c, deadline) : acquire_sem(&l, c, deadline);
	if (rc != 0) {
		if (rc > 0)
			fprintf(stderr, "Shutdown triggered or timeout during lock acquisition\n");
		if (o.limit > 1) {
			bool ok;

			(void)put_bool(c, "DELETE", l.contender_path, NULL, NULL, &ok, err,
				       sizeof(err)); /* best effort: the session goes too */
		}
		goto out;
	}
	if (got_signal) {
		fprintf(stderr, "Shutdown triggered during lock acquisition\n");
		goto release;
	}
	if (o.verbose)
		printf("Starting handler\n");
	pthread_sigmask(SIG_BLOCK, &block, &old);
	l.child = spawn_child(&o, argc - next - 1, argv + next + 1, &old);
	if (l.child > 0)
		monitor_on = pthread_create(&monitor, NULL, monitor_main, &l) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (l.child < 0) {
		fprintf(stderr, "Error executing handler: %s\n", strerror(errno));
		child_failed = true;
		goto release;
	}
	for (bool forwarded = false, killed = false;;) {
		siginfo_t si;

		if (got_signal && !forwarded) {
			/* as Consul: forward the signal, then kill after the grace */
			forwarded = true;
			if (o.verbose)
				printf("Shutdown triggered, killing child\n");
			(void)kill(l.child, got_signal);
			alarm((unsigned)(LOCK_KILL_GRACE_MS / 1000));
		} else if (got_alarm && !killed) {
			killed = true;
			(void)kill(l.child, SIGKILL);
		}
		/* not reaped yet (WNOWAIT): the monitor may still signal the pid */
		if (waitid(P_PID, (id_t)l.child, &si, WEXITED | WNOWAIT) == 0)
			break;
		if (errno != EINTR) {
			fprintf(stderr, "Error running handler: %s\n", strerror(errno));
			break;
		}
	}
	alarm(0);
	pthread_mutex_lock(&l.mu);
	if (waitpid(l.child, &status, 0) == l.child)
		child_failed = !WIFEXITED(status) || WEXITSTATUS(status) != 0;
	l.child_done = true;
	l.stopping = true;
	pthread_cond_broadcast(&l.cv);
	pthread_mutex_unlock(&l.mu);
	if (child_failed && !l.lost && !got_signal)
		fprintf(stderr, "Error running handler: child exited with status %d\n",
			WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	if (o.verbose && !l.lost)
		printf("Child terminated, releasing lock\n");
release:
	/* A lost lock is not ours to release: the invalidation did it. */
	rc = l.lost ? 0 : release(&l, c);
	if (monitor_on)
		pthread_join(monitor, NULL);
	monitor_on = false;
	if (rc < 0)
		goto out;
	/* Consul's Unlock stops the renewer, which destroys the session. */
	pthread_mutex_lock(&l.mu);
	l.renew_stop = true;
	pthread_cond_broadcast(&l.cv);
	pthread_mutex_unlock(&l.mu);
	if (renewer_on)
		pthread_join(renewer, NULL);
	renewer_on = false;
	if (cleanup(&l, c) < 0)
		goto out;
	ret = o.child_exit_code && child_failed && !l.lost && !got_signal ? 2 : 0;
out:
	pthread_mutex_lock(&l.mu);
	l.renew_stop = true;
	l.stopping = true;
	pthread_cond_broadcast(&l.cv);
	pthread_mutex_unlock(&l.mu);
	if (monitor_on)
		pthread_join(monitor, NULL);
	if (renewer_on)
		pthread_join(renewer, NULL);
	if (session_on && c) {
		char path[128];
		struct client_resp d = {0};

		snprintf(path, sizeof(path), "session/destroy/%s", l.session);
		(void)client_request(c, "PUT", path, NULL, "", 0, &d, err, sizeof(err));
		client_resp_close(&d); /* best effort, as Consul's renewer */
	}
	client_resp_close(&r);
	client_free(c);
	pthread_cond_destroy(&l.cv);
	pthread_mutex_destroy(&l.mu);
	free(l.lock_key);
	free(l.lock_path);
	free(l.list_path);
	free(l.contender_path);
	free(name);
	return ret;
}
