/* The check runner (see checks.h). */
#include "checks.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

#include "agent_state.h"
#include "log.h"
#include "loop.h"

struct run {
	struct checks *ck;
	struct run *next;
	char *check_id;
	uint64_t run_id; /* matches the check's run_id while it is current */
	enum agent_check_kind kind;
	uint64_t deadline_ms;
	uint64_t timeout_ms;
	char buf[AGENT_OUTPUT_MAX + 1]; /* captured output (HTTP body, script) */
	size_t len;
	bool done; /* result reported; free at the next tick */
	/* TCP */
	int fd;
	char target[300];
	/* HTTP */
	CURL *easy;
	struct curl_slist *hdrs;
	char method[16];
	/* script */
	pid_t pid;
	bool eof, exited, killed;
	int wstatus;
};

struct checks {
	struct loop *loop;
	struct agent_state *st;
	CURLM *multi;
	uint64_t curl_timer;
	struct run *runs;
	size_t n_running;
	uint64_t rng;
	uint64_t next_run_id;
};

static uint64_t rnd(struct checks *ck)
{
	uint64_t x = ck->rng;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	ck->rng = x;
	return x;
}

/* Reports a result for the run's check unless it was removed or replaced
 * since the run started. */
static void report(struct run *r, const char *status, const char *output, uint64_t now_ms)
{
	struct agent_check *c = agent_check_find(r->ck->st, r->check_id);

	r->done = true;
	if (!c || !c->running || c->run_id != r->run_id)
		return;
	c->running = false;
	c->next_run_ms = now_ms + c->interval_ms;
	(void)agent_check_result(r->ck->st, c, status, output, now_ms);
}

static void append(struct run *r, const char *p, size_t n)
{
	size_t room = AGENT_OUTPUT_MAX - r->len;

	if (n > room)
		n = room;
	memcpy(r->buf + r->len, p, n);
	r->len += n;
	r->buf[r->len] = 0;
}

/* ---- TCP ------------------------------------------------------------ */

static void tcp_close(struct run *r)
{
	if (r->fd >= 0) {
		loop_unwatch_fd(r->ck->loop, r->fd);
		close(r->fd);
		r->fd = -1;
	}
}

static void on_tcp(struct loop *l, void *ctx, unsigned events)
{
	struct run *r = ctx;
	int err = 0;
	socklen_t len = sizeof(err);
	char out[512];

	(void)events;
	if (getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err == EINPROGRESS)
		return;
	tcp_close(r);
	if (err == 0) {
		snprintf(out, sizeof(out), "TCP connect %s: Success", r->target);
		report(r, "passing", out, loop_now_ms(l));
	} else {
		snprintf(out, sizeof(out), "dial tcp %s: connect: %s", r->target, strerror(err));
		report(r, "critical", out, loop_now_ms(l));
	}
}

/* Splits "host:port" / "[v6]:port". */
static int split_host_port(const char *s, char *host, size_t hlen, char *port, size_t plen)
{
	const char *colon;

	if (s[0] == '[') {
		const char *end = strchr(s, ']');

		if (!end || end[1] != ':' || (size_t)(end - s - 1) >= hlen)
			return -EINVAL;
		memcpy(host, s + 1, (size_t)(end - s - 1));
		host[end - s - 1] = 0;
		colon = end + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || (size_t)(colon - s) >= hlen)
			return -EINVAL;
		memcpy(host, s, (size_t)(colon - s));
		host[colon - s] = 0;
	}
	if (strlen(colon + 1) >= plen || !colon[1])
		return -EINVAL;
	strcpy(port, colon + 1);
	return 0;
}

static void start_tcp(struct run *r, const struct agent_check *c, uint64_t now)
{
	char host[256], port[16], out[512];
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	int rc;

	snprintf(r->target, sizeof(r->target), "%s", c->tcp);
	if (split_host_port(c->tcp, host, sizeof(host), port, sizeof(port)) < 0) {
		snprintf(out, sizeof(out), "dial tcp %s: missing port in address", c->tcp);
		report(r, "critical", out, now);
		return;
	}
	/* Shortcut: a host name is resolved with a blocking getaddrinfo;
	 * literal addresses (the usual case for local checks) never block. */
	hints.ai_flags |= AI_NUMERICHOST;
	rc = getaddrinfo(host, port, &hints, &ai);
	if (rc == EAI_NONAME) {
		hints.ai_flags &= ~AI_NUMERICHOST;
		rc = getaddrinfo(host, port, &hints, &ai);
	}
	if (rc != 0 || !ai) {
		snprintf(out, sizeof(out), "dial tcp %s: lookup %s: %s", c->tcp, host,
			 gai_strerror(rc));
		report(r, "critical", out, now);
		return;
	}
	r->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (r->fd < 0) {
		freeaddrinfo(ai);
		report(r, "critical", "socket failed", now);
		return;
	}
	rc = connect(r->fd, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	if (rc == 0 || errno == EINPROGRESS) {
		if (loop_watch_fd(r->ck->loop, r->fd, LOOP_WRITE, on_tcp, r) == 0)
			return;
	}
	snprintf(out, sizeof(out), "dial tcp %s: connect: %s", c->tcp, strerror(errno));
	tcp_close(r);
	report(r, "critical", out, now);
}

/* ---- HTTP (curl multi on the loop) ---------------------------------- */

static void curl_drive(struct checks *ck, curl_socket_t fd, int ev);

struct curl_sock {
	struct checks *ck;
	curl_socket_t fd;
};

static void on_curl_sock(struct loop *l, void *ctx, unsigned events)
{
	struct curl_sock *cs = ctx;
	int ev = 0;

	(void)l;
	if (events & LOOP_READ)
		ev |= CURL_CSELECT_IN;
	if (events & LOOP_WRITE)
		ev |= CURL_CSELECT_OUT;
	if (events & LOOP_ERROR)
		ev |= CURL_CSELECT_ERR;
	curl_drive(cs->ck, cs->fd, ev);
}

static int sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct checks *ck = userp;
	struct curl_sock *cs = socketp;
	unsigned ev = 0;

	(void)e;
	if (what == CURL_POLL_REMOVE) {
		loop_unwatch_fd(ck->loop, s);
		free(cs);
		curl_multi_assign(ck->multi, s, NULL);
		return 0;
	}
	if (!cs) {
		cs = calloc(1, sizeof(*cs));
		if (!cs)
			return -1;
		cs->ck = ck;
		cs->fd = s;
		curl_multi_assign(ck->multi, s, cs);
	}
	if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
		ev |= LOOP_READ;
	if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
		ev |= LOOP_WRITE;
	return loop_watch_fd(ck->loop, s, ev, on_curl_sock, cs) < 0 ? -1 : 0;
}

static int64_t on_curl_timer(struct loop *l, void *ctx)
{
	struct checks *ck = ctx;

	(void)l;
	ck->curl_timer = 0;
	curl_drive(ck, CURL_SOCKET_TIMEOUT, 0);
	return LOOP_TIMER_STOP;
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	struct checks *ck = userp;

	(void)m;
	if (ck->curl_timer)
		loop_timer_del(ck->loop, ck->curl_timer);
	ck->curl_timer = 0;
	if (timeout_ms >= 0)
		ck->curl_timer = loop_timer_add(ck->loop, (uint64_t)timeout_ms, on_curl_timer, ck);
	return 0;
}

static size_t write_cb(char *p, size_t size, size_t n, void *ud)
{
	struct run *r = ud;

	append(r, p, size * n);
	return size * n; /* keep reading; the excess is dropped */
}

static void http_finish(struct run *r, CURLcode code, uint64_t now)
{
	char *out = malloc(AGENT_OUTPUT_MAX + 600);
	long status = 0;
	const char *url = NULL;

	if (!out)
		return;
	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(r->easy, CURLINFO_EFFECTIVE_URL, &url);
	if (code != CURLE_OK) {
		snprintf(out, AGENT_OUTPUT_MAX + 600, "%s %s: %s", r->method, url ? url : "",
			 curl_easy_strerror(code));
		report(r, "critical", out, now);
	} else {
		snprintf(out, AGENT_OUTPUT_MAX + 600, "HTTP %s %s: %ld Output: %s", r->method,
			 url ? url : "", status, r->buf);
		report(r,
		       status >= 200 && status < 300 ? "passing"
		       : status == 429		     ? "warning"
						     : "critical",
		       out, now);
	}
	free(out);
}

static void curl_drive(struct checks *ck, curl_socket_t fd, int ev)
{
	int running;
	CURLMsg *m;

	curl_multi_socket_action(ck->multi, fd, ev, &running);
	while ((m = curl_multi_info_read(ck->multi, &running))) {
		struct run *r = NULL;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		if (r) {
			http_finish(r, m->data.result, loop_now_ms(ck->loop));
			curl_multi_remove_handle(ck->multi, r->easy);
			curl_easy_cleanup(r->easy);
			r->easy = NULL;
		}
	}
}

static void start_http(struct run *r, const struct agent_check *c, uint64_t now)
{
	CURL *e = curl_easy_init();
	const char *k;
	json_t *v;

	if (!e) {
		report(r, "critical", "out of memory", now);
		return;
	}
	snprintf(r->method, sizeof(r->method), "%s", c->method ? c->method : "GET");
	curl_easy_setopt(e, CURLOPT_URL, c->http);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
	if (!strcmp(r->method, "HEAD"))
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	if (c->body)
		curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, c->body);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "Consul Health Check");
	if (c->tls_skip_verify) {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	r->hdrs = curl_slist_append(NULL, "Accept: text/plain, text/*, */*");
	json_object_foreach(c->header, k, v)
	{
		for (size_t i = 0; json_is_array(v) && i < json_array_size(v); i++) {
			char line[1024];

			if (!json_is_string(json_array_get(v, i)))
				continue;
			snprintf(line, sizeof(line), "%s: %s", k,
				 json_string_value(json_array_get(v, i)));
			r->hdrs = curl_slist_append(r->hdrs, line);
		}
	}
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
	r->easy = e;
	if (curl_multi_add_handle(r->ck->multi, e) != CURLM_OK) {
		curl_easy_cleanup(e);
		r->easy = NULL;
		report(r, "critical", "cannot start the HTTP request", now);
	}
}

/* ---- scripts -------------------------------------------------------- */

static void on_pipe(struct loop *l, void *ctx, unsigned events)
{
	struct run *r = ctx;
	char buf[4096];
	ssize_t n;

	(void)events;
	for (;;) {
		n = read(r->fd, buf, sizeof(buf));
		if (n > 0) {
			append(r, buf, (size_t)n);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		break;
	}
	loop_unwatch_fd(l, r->fd);
	close(r->fd);
	r->fd = -1;
	r->eof = true;
}

static void start_script(struct run *r, const struct agent_check *c, uint64_t now)
{
	size_t n = json_array_size(c->args);
	char **argv = calloc(n + 1, sizeof(*argv));
	int p[2];
	sigset_t all;

	if (!argv || pipe2(p, O_CLOEXEC) < 0) {
		free(argv);
		report(r, "critical", "cannot start the script", now);
		return;
	}
	for (size_t i = 0; i < n; i++)
		argv[i] = (char *)json_string_value(json_array_get(c->args, i));
	r->pid = fork();
	if (r->pid == 0) {
		/* child: own process group (killed as a whole at Timeout),
		 * default signal mask (the loop blocks SIGINT/SIGTERM) */
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		setpgid(0, 0);
		dup2(p[1], 1);
		dup2(p[1], 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	free(argv);
	close(p[1]);
	if (r->pid < 0) {
		close(p[0]);
		report(r, "critical", "cannot fork the script", now);
		return;
	}
	(void)setpgid(r->pid, r->pid); /* either side may win the race */
	r->fd = p[0];
	(void)fcntl(r->fd, F_SETFL, fcntl(r->fd, F_GETFL) | O_NONBLOCK);
	if (loop_watch_fd(r->ck->loop, r->fd, LOOP_READ, on_pipe, r) < 0) {
		close(r->fd);
		r->fd = -1;
		r->eof = true;
	}
}

/* Reaps and reports a script run. */
static void script_poll(struct run *r, uint64_t now)
{
	if (!r->exited && r->pid > 0) {
		pid_t got = waitpid(r->pid, &r->wstatus, WNOHANG);

		if (got == r->pid || (got < 0 && errno == ECHILD))
			r->exited = true;
	}
	if (r->done)
		return;
	if (!r->exited && now >= r->deadline_ms && !r->killed) {
		char out[128];

		(void)kill(-r->pid, SIGKILL);
		r->killed = true;
		snprintf(out, sizeof(out), "Timed out (%llums) running check",
			 (unsigned long long)r->timeout_ms);
		report(r, "critical", out, now);
		return;
	}
	if (r->exited && (r->eof || r->fd < 0)) {
		int code = WIFEXITED(r->wstatus) ? WEXITSTATUS(r->wstatus) : 2;

		report(r, code == 0 ? "passing" : code == 1 ? "warning" : "critical", r->buf, now);
	}
}

/* ---- lifecycle ------------------------------------------------------ */

static void run_free(struct run *r)
{
	if (r->fd >= 0) {
		loop_unwatch_fd(r->ck->loop, r->fd);
		close(r->fd);
	}
	if (r->easy) {
		curl_multi_remove_handle(r->ck->multi, r->easy);
		curl_easy_cleanup(r->easy);
	}
	curl_slist_free_all(r->hdrs);
	free(r->check_id);
	free(r);
}

static void start(struct checks *ck, struct agent_check *c, uint64_t now)
{
	struct run *r = calloc(1, sizeof(*r));

	if (!r || !(r->check_id = strdup(c->id))) {
		free(r);
		return;
	}
	r->ck = ck;
	r->fd = -1;
	r->kind = c->kind;
	r->timeout_ms = c->timeout_ms;
	r->deadline_ms = now + c->timeout_ms;
	r->next = ck->runs;
	ck->runs = r;
	c->running = true;
	c->run_id = r->run_id = ++ck->next_run_id;
	switch (c->kind) {
	case AGENT_CHECK_TCP:
		start_tcp(r, c, now);
		break;
	case AGENT_CHECK_HTTP:
		start_http(r, c, now);
		break;
	case AGENT_CHECK_SCRIPT:
		start_script(r, c, now);
		break;
	default:
		report(r, "critical", "not a runnable check", now);
		break;
	}
}

struct checks *checks_new(struct loop *l, struct agent_state *st)
{
	struct checks *ck = calloc(1, sizeof(*ck));

	if (!ck)
		return NULL;
	ck->loop = l;
	ck->st = st;
	ck->rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid() ^ loop_now_ms(l);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || !(ck->multi = curl_multi_init())) {
		free(ck);
		return NULL;
	}
	curl_multi_setopt(ck->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
	curl_multi_setopt(ck->multi, CURLMOPT_SOCKETDATA, ck);
	curl_multi_setopt(ck->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(ck->multi, CURLMOPT_TIMERDATA, ck);
	return ck;
}

void checks_free(struct checks *ck)
{
	if (!ck)
		return;
	while (ck->runs) {
		struct run *r = ck->runs;

		ck->runs = r->next;
		if (r->kind == AGENT_CHECK_SCRIPT && r->pid > 0 && !r->exited) {
			(void)kill(-r->pid, SIGKILL);
			(void)waitpid(r->pid, NULL, 0);
		}
		run_free(r);
	}
	if (ck->curl_timer)
		loop_timer_del(ck->loop, ck->curl_timer);
	curl_multi_cleanup(ck->multi);
	curl_global_cleanup();
	free(ck);
}

void checks_tick(struct checks *ck, uint64_t now)
{
	struct agent_state *st = ck->st;
	struct run **pp = &ck->runs;

	/* finished runs go; time-outs of TCP runs (curl and scripts enforce
	 * or are checked on their own) */
	while (*pp) {
		struct run *r = *pp;

		if (r->kind == AGENT_CHECK_SCRIPT)
			script_poll(r, now);
		if (!r->done && r->kind == AGENT_CHECK_TCP && now >= r->deadline_ms) {
			char out[400];

			tcp_close(r);
			snprintf(out, sizeof(out), "dial tcp %s: i/o timeout", r->target);
			report(r, "critical", out, now);
		}
		if (r->done && (r->kind != AGENT_CHECK_SCRIPT || r->exited)) {
			*pp = r->next;
			run_free(r);
			continue;
		}
		pp = &r->next;
	}
	ck->n_running = 0;
	for (size_t i = 0; i < st->n_checks; i++) {
		struct agent_check *c = st->checks[i];

		if (c->kind != AGENT_CHECK_HTTP && c->kind != AGENT_CHECK_TCP &&
		    c->kind != AGENT_CHECK_SCRIPT)
			continue;
		if (c->running) {
			ck->n_running++;
			continue;
		}
		if (c->next_run_ms == 0) {
			/* spread first runs across the interval, as Consul's
			 * random stagger does, so checks never fire together */
			c->next_run_ms = now + rnd(ck) % (c->interval_ms ? c->interval_ms : 1);
			continue;
		}
		if (c->next_run_ms <= now) {
			start(ck, c, now);
			ck->n_running++;
		}
	}
}

size_t checks_running(const struct checks *ck) { return ck ? ck->n_running : 0; }
