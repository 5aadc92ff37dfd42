/* Configuration: flags and JSON files merged into one document, then read
 * into struct config with Consul's defaults. */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "err.h"

enum flag_kind {
	FLAG_STR,   /* one string value */
	FLAG_INT,   /* integer value */
	FLAG_BOOL,  /* present means true; -flag=false allowed */
	FLAG_LIST,  /* repeatable, appended to a JSON array */
	FLAG_FILE,  /* -config-file */
	FLAG_DIR,   /* -config-dir */
};

struct flag {
	const char *name;   /* without dashes */
	enum flag_kind kind;
	const char *path;   /* JSON path, dot-separated */
};

static const struct flag flags[] = {
	{"dev", FLAG_BOOL, "dev"},
	{"server", FLAG_BOOL, "server"},
	{"node", FLAG_STR, "node_name"},
	{"node-id", FLAG_STR, "node_id"},
	{"datacenter", FLAG_STR, "datacenter"},
	{"data-dir", FLAG_STR, "data_dir"},
	{"config-file", FLAG_FILE, NULL},
	{"config-dir", FLAG_DIR, NULL},
	{"bind", FLAG_STR, "bind_addr"},
	{"client", FLAG_STR, "client_addr"},
	{"advertise", FLAG_STR, "advertise_addr"},
	{"http-port", FLAG_INT, "ports.http"},
	{"https-port", FLAG_INT, "ports.https"},
	{"dns-port", FLAG_INT, "ports.dns"},
	{"server-port", FLAG_INT, "ports.server"},
	{"serf-lan-port", FLAG_INT, "ports.serf_lan"},
	{"serf-wan-port", FLAG_INT, "ports.serf_wan"},
	{"bootstrap-expect", FLAG_INT, "bootstrap_expect"},
	{"join", FLAG_LIST, "start_join"},
	{"retry-join", FLAG_LIST, "retry_join"},
	{"recursor", FLAG_LIST, "recursors"},
	{"log-level", FLAG_STR, "log_level"},
	{"domain", FLAG_STR, "domain"},
	{"alt-domain", FLAG_STR, "alt_domain"},
	{"encrypt", FLAG_STR, "encrypt"},
	{"run-dir", FLAG_STR, "run_dir"},
};

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		(void)vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return CAIRN_E_CONFIG;
}

int config_duration_ms(const char *s, uint64_t *out_ms)
{
	double total = 0;
	const char *p = s;

	if (!s || !*s)
		return -EINVAL;
	if (strspn(s, "0123456789") == strlen(s)) {
		unsigned long long v;

		errno = 0;
		v = strtoull(s, NULL, 10);
		if (errno || v > UINT64_MAX / 1000)
			return -EINVAL;
		*out_ms = (uint64_t)v * 1000u;
		return 0;
	}
	while (*p) {
		char *end;
		double v, mult;

		if (!isdigit((unsigned char)*p) && *p != '.')
			return -EINVAL;
		errno = 0;
		v = strtod(p, &end);
		if (errno || end == p || v < 0)
			return -EINVAL;
		p = end;
		if (!strncmp(p, "ms", 2))
			mult = 1, p += 2;
		else if (!strncmp(p, "us", 2) || !strncmp(p, "µs", strlen("µs")))
			mult = 0.001, p += (*p == 'u' ? 2 : strlen("µs"));
		else if (!strncmp(p, "ns", 2))
			mult = 0.000001, p += 2;
		else if (*p == 's')
			mult = 1000, p++;
		else if (*p == 'm')
			mult = 60000, p++;
		else if (*p == 'h')
			mult = 3600000, p++;
		else
			return -EINVAL;
		total += v * mult;
		if (total > 1e15)
			return -EINVAL;
	}
	*out_ms = (uint64_t)total;
	return 0;
}

/* Sets doc[path] = val, creating intermediate objects. Steals val. */
static int json_set_path(json_t *doc, const char *path, json_t *val)
{
	char buf[128], *dot, *key = buf;
	json_t *obj = doc;

	snprintf(buf, sizeof(buf), "%s", path);
	while ((dot = strchr(key, '.'))) {
		json_t *next;

		*dot = '\0';
		next = json_object_get(obj, key);
		if (!json_is_object(next)) {
			next = json_object();
			json_object_set_new(obj, key, next);
		}
		obj = next;
		key = dot + 1;
	}
	return json_object_set_new(obj, key, val) == 0 ? 0 : -ENOMEM;
}

/* Deep merge: objects merge key by key; anything else in src replaces. */
static void json_merge(json_t *dst, json_t *src)
{
	const char *key;
	json_t *v;

	json_object_foreach(src, key, v) {
		json_t *d = json_object_get(dst, key);

		if (json_is_object(d) && json_is_object(v))
			json_merge(d, v);
		else
			json_object_set(dst, key, v);
	}
}

static int load_file(json_t *doc, const char *path, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *f = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);

	if (!f)
		return fail(err, errlen, "%s:%d: %s", path, jerr.line, jerr.text);
	if (!json_is_object(f)) {
		json_decref(f);
		return fail(err, errlen, "%s: the configuration must be a JSON object", path);
	}
	json_merge(doc, f);
	json_decref(f);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int load_dir(json_t *doc, const char *dir, char *err, size_t errlen)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	if (!d)
		return fail(err, errlen, "config dir %s: %s", dir, strerror(errno));
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);

		if (len < 6 || strcmp(de->d_name + len - 5, ".json") || de->d_name[0] == '.')
			continue;
		if (n == cap) {
			char **nn = realloc(names, (cap = cap ? cap * 2 : 8) * sizeof(*names));

			if (!nn) {
				rc = -ENOMEM;
				goto out;
			}
			names = nn;
		}
		names[n] = strdup(de->d_name);
		if (!names[n]) {
			rc = -ENOMEM;
			goto out;
		}
		n++;
	}
	qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; i < n && rc == 0; i++) {
		char path[PATH_MAX];

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		rc = load_file(doc, path, err, errlen);
	}
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return rc;
}

static const struct flag *find_flag(const char *name)
{
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		if (!strcmp(flags[i].name, name))
			return &flags[i];
	return NULL;
}

/* Applies the flags to overlay (after files), collecting file and dir
 * loads into doc in order. */
static int parse_flags(int argc, char **argv, json_t *doc, json_t *overlay, char *err, size_t errlen)
{
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i], *eq;
		char name[64];
		const char *val = NULL;
		const struct flag *f;
		size_t nlen;
		int rc;

		if (arg[0] != '-' || !arg[1])
			return fail(err, errlen, "unexpected argument '%s'", arg);
		arg += arg[1] == '-' ? 2 : 1;
		eq = strchr(arg, '=');
		nlen = eq ? (size_t)(eq - arg) : strlen(arg);
		if (nlen >= sizeof(name))
			return fail(err, errlen, "unknown flag -%s", arg);
		memcpy(name, arg, nlen);
		name[nlen] = '\0';
		f = find_flag(name);
		if (!f)
			return fail(err, errlen, "unknown flag -%s", name);
		if (eq)
			val = eq + 1;
		if (f->kind == FLAG_BOOL) {
			bool b = true;

			if (val) {
				if (!strcasecmp(val, "true") || !strcmp(val, "1"))
					b = true;
				else if (!strcasecmp(val, "false") || !strcmp(val, "0"))
					b = false;
				else
					return fail(err, errlen, "-%s takes true or false", name);
			}
			rc = json_set_path(overlay, f->path, json_boolean(b));
			if (rc < 0)
				return rc;
			continue;
		}
		if (!val) {
			if (i + 1 >= argc)
				return fail(err, errlen, "flag -%s needs a value", name);
			val = argv[++i];
		}
		switch (f->kind) {
		case FLAG_STR:
			rc = json_set_path(overlay, f->path, json_string(val));
			break;
		case FLAG_INT: {
			char *end;
			long v;

			errno = 0;
			v = strtol(val, &end, 10);
			if (errno || end == val || *end || v < -1 || v > INT_MAX)
				return fail(err, errlen, "-%s: '%s' is not a valid number", name, val);
			rc = json_set_path(overlay, f->path, json_integer(v));
			break;
		}
		case FLAG_LIST: {
			json_t *arr = json_object_get(overlay, f->path);

			if (!json_is_array(arr)) {
				arr = json_array();
				json_object_set_new(overlay, f->path, arr);
			}
			rc = json_array_append_new(arr, json_string(val)) ? -ENOMEM : 0;
			break;
		}
		case FLAG_FILE:
			rc = load_file(doc, val, err, errlen);
			break;
		case FLAG_DIR:
			rc = load_dir(doc, val, err, errlen);
			break;
		default:
			rc = -EINVAL;
			break;
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ---- typed getters with defaults ------------------------------------------ */

static json_t *get_path(json_t *doc, const char *path)
{
	char buf[128], *dot, *key = buf;
	json_t *obj = doc;

	snprintf(buf, sizeof(buf), "%s", path);
	while ((dot = strchr(key, '.'))) {
		*dot = '\0';
		obj = json_object_get(obj, key);
		if (!json_is_object(obj))
			return NULL;
		key = dot + 1;
	}
	return json_object_get(obj, key);
}

static int get_str(json_t *doc, const char *path, const char *def, char **out, char *err,
		   size_t errlen)
{
	json_t *v = get_path(doc, path);

	if (v && !json_is_string(v) && !json_is_null(v))
		return fail(err, errlen, "%s must be a string", path);
	if (v && json_is_string(v))
		def = json_string_value(v);
	*out = def ? strdup(def) : NULL;
	if (def && !*out)
		return -ENOMEM;
	return 0;
}

static int get_bool(json_t *doc, const char *path, bool def, bool *out, char *err, size_t errlen)
{
	json_t *v = get_path(doc, path);

	if (!v) {
		*out = def;
		return 0;
	}
	if (!json_is_boolean(v))
		return fail(err, errlen, "%s must be true or false", path);
	*out = json_is_true(v);
	return 0;
}

static int get_int(json_t *doc, const char *path, long long def, long long lo, long long hi,
		   long long *out, char *err, size_t errlen)
{
	json_t *v = get_path(doc, path);
	long long x;

	if (!v) {
		*out = def;
		return 0;
	}
	if (!json_is_integer(v))
		return fail(err, errlen, "%s must be an integer", path);
	x = json_integer_value(v);
	if (x < lo || x > hi)
		return fail(err, errlen, "%s: %lld is out of range [%lld, %lld]", path, x, lo, hi);
	*out = x;
	return 0;
}

static int get_port(json_t *doc, const char *path, int def, int *out, char *err, size_t errlen)
{
	long long v = def;
	int rc = get_int(doc, path, def, -1, 65535, &v, err, errlen);

	if (rc == 0)
		*out = (int)v;
	return rc;
}

static int get_duration(json_t *doc, const char *path, uint64_t def_ms, uint64_t *out, char *err,
			size_t errlen)
{
	json_t *v = get_path(doc, path);

	if (!v) {
		*out = def_ms;
		return 0;
	}
	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		/* Consul reads bare numbers in durations as nanoseconds; nobody
		 * means that for TTLs, so take seconds as the docs' examples do. */
		*out = (uint64_t)json_integer_value(v) * 1000u;
		return 0;
	}
	if (!json_is_string(v) || config_duration_ms(json_string_value(v), out) < 0)
		return fail(err, errlen, "%s must be a duration like \"10s\"", path);
	return 0;
}

static int get_list(json_t *doc, const char *path, char ***out, char *err, size_t errlen)
{
	json_t *v = get_path(doc, path), *it;
	size_t i, n;
	char **list;

	if (v && json_is_string(v)) {
		list = calloc(2, sizeof(*list));
		if (!list || !(list[0] = strdup(json_string_value(v)))) {
			free(list);
			return -ENOMEM;
		}
		*out = list;
		return 0;
	}
	if (v && !json_is_array(v))
		return fail(err, errlen, "%s must be a list of strings", path);
	n = v ? json_array_size(v) : 0;
	list = calloc(n + 1, sizeof(*list));
	if (!list)
		return -ENOMEM;
	json_array_foreach(v, i, it) {
		if (!json_is_string(it)) {
			free(list);
			return fail(err, errlen, "%s must be a list of strings", path);
		}
		list[i] = strdup(json_string_value(it));
	}
	*out = list;
	return 0;
}

static void free_list(char **l)
{
	if (!l)
		return;
	for (char **p = l; *p; p++)
		free(*p);
	free(l);
}

/* ---- derived values ---------------------------------------------------------- */

static int mkdir_p(const char *path)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0750) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0750) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static bool valid_uuid(const char *s)
{
	if (strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (!isxdigit((unsigned char)s[i])) {
			return false;
		}
	}
	return true;
}

/* Reads <data_dir>/node-id, creating it atomically (write a temp file,
 * link() it into place) so that four daemons starting at once agree. */
static int load_node_id(const char *data_dir, char **out)
{
	char path[PATH_MAX], tmp[PATH_MAX], id[64];
	uint8_t r[16];
	FILE *f;
	int fd;

	snprintf(path, sizeof(path), "%s/node-id", data_dir);
	for (int attempt = 0; attempt < 2; attempt++) {
		f = fopen(path, "r");
		if (f) {
			size_t n = fread(id, 1, sizeof(id) - 1, f);

			fclose(f);
			id[n] = '\0';
			id[strcspn(id, " \r\n")] = '\0';
			if (!valid_uuid(id))
				return -EINVAL;
			*out = strdup(id);
			return *out ? 0 : -ENOMEM;
		}
		if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
			return -EIO;
		r[6] = (uint8_t)((r[6] & 0x0f) | 0x40);
		r[8] = (uint8_t)((r[8] & 0x3f) | 0x80);
		snprintf(id, sizeof(id),
			 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0],
			 r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12],
			 r[13], r[14], r[15]);
		snprintf(tmp, sizeof(tmp), "%s/.node-id.%d", data_dir, (int)getpid());
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
		if (fd < 0)
			return -errno;
		if (write(fd, id, strlen(id)) != (ssize_t)strlen(id) || fsync(fd) < 0) {
			close(fd);
			unlink(tmp);
			return -EIO;
		}
		close(fd);
		/* link() fails with EEXIST if another daemon won: read theirs. */
		if (link(tmp, path) < 0 && errno != EEXIST) {
			int e = errno;

			unlink(tmp);
			return -e;
		}
		unlink(tmp);
	}
	return -EIO;
}

/* The first private IPv4 address of this machine, as Consul picks one to
 * advertise when bound to 0.0.0.0; 127.0.0.1 if there is none. */
static char *pick_advertise(void)
{
	struct ifaddrs *ifs, *it;
	char buf[INET_ADDRSTRLEN] = "127.0.0.1";

	if (getifaddrs(&ifs) == 0) {
		for (it = ifs; it; it = it->ifa_next) {
			struct sockaddr_in *sin = (struct sockaddr_in *)(void *)it->ifa_addr;

			if (!sin || sin->sin_family != AF_INET)
				continue;
			if ((ntohl(sin->sin_addr.s_addr) >> 24) == 127)
				continue;
			inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
			break;
		}
		freeifaddrs(ifs);
	}
	return strdup(buf);
}

static bool valid_dc(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_')
			return false;
	return true;
}

static int read_config(json_t *doc, struct config *c, char *err, size_t errlen)
{
	char host[256] = "cairn";
	long long v;
	uint64_t ms;
	int rc = 0;

	(void)gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	host[strcspn(host, ".")] = '\0';

#define TRY(x)                                                                                     \
	do {                                                                                       \
		if ((rc = (x)) < 0)                                                                \
			return rc;                                                                 \
	} while (0)
	TRY(get_bool(doc, "dev", false, &c->dev, err, errlen));
	TRY(get_bool(doc, "server", c->dev, &c->server, err, errlen));
	if (c->dev)
		c->server = true;
	TRY(get_str(doc, "datacenter", "dc1", &c->datacenter, err, errlen));
	for (char *p = c->datacenter; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	if (!valid_dc(c->datacenter))
		return fail(err, errlen, "datacenter '%s' may hold only letters, digits, - and _",
			    c->datacenter);
	TRY(get_str(doc, "node_name", host, &c->node_name, err, errlen));
	if (!c->node_name[0] || strlen(c->node_name) > 128)
		return fail(err, errlen, "node_name must be 1-128 characters");
	TRY(get_str(doc, "data_dir", NULL, &c->data_dir, err, errlen));
	TRY(get_str(doc, "run_dir", NULL, &c->run_dir, err, errlen));
	TRY(get_str(doc, "node_id", NULL, &c->node_id, err, errlen));
	if (c->node_id && !valid_uuid(c->node_id))
		return fail(err, errlen, "node_id '%s' is not a UUID", c->node_id);
	TRY(get_str(doc, "domain", "consul.", &c->domain, err, errlen));
	TRY(get_str(doc, "alt_domain", NULL, &c->alt_domain, err, errlen));
	TRY(get_str(doc, "bind_addr", c->dev ? "127.0.0.1" : "0.0.0.0", &c->bind_addr, err, errlen));
	TRY(get_str(doc, "client_addr", "127.0.0.1", &c->client_addr, err, errlen));
	TRY(get_str(doc, "advertise_addr", NULL, &c->advertise_addr, err, errlen));
	if (!c->advertise_addr) {
		if (strcmp(c->bind_addr, "0.0.0.0") && strcmp(c->bind_addr, "::"))
			c->advertise_addr = strdup(c->bind_addr);
		else
			c->advertise_addr = pick_advertise();
		if (!c->advertise_addr)
			return -ENOMEM;
	}
	TRY(get_str(doc, "log_level", "info", &c->log_level, err, errlen));
	TRY(get_int(doc, "bootstrap_expect", c->dev ? 1 : 0, 0, 64, &v, err, errlen));
	c->bootstrap_expect = (int)v;
	if (c->bootstrap_expect && !c->server)
		return fail(err, errlen, "bootstrap_expect needs server mode");
	TRY(get_list(doc, "start_join", &c->start_join, err, errlen));
	TRY(get_list(doc, "retry_join", &c->retry_join, err, errlen));
	TRY(get_list(doc, "recursors", &c->recursors, err, errlen));
	TRY(get_port(doc, "ports.http", 8500, &c->ports.http, err, errlen));
	TRY(get_port(doc, "ports.https", -1, &c->ports.https, err, errlen));
	TRY(get_port(doc, "ports.dns", 8600, &c->ports.dns, err, errlen));
	TRY(get_port(doc, "ports.server", 8300, &c->ports.server, err, errlen));
	TRY(get_port(doc, "ports.serf_lan", 8301, &c->ports.serf_lan, err, errlen));
	TRY(get_port(doc, "ports.serf_wan", 8302, &c->ports.serf_wan, err, errlen));

	TRY(get_duration(doc, "dns_config.node_ttl", 0, &ms, err, errlen));
	c->dns.node_ttl_s = (uint32_t)(ms / 1000);
	{
		json_t *st = get_path(doc, "dns_config.service_ttl");

		ms = 0;
		if (json_is_object(st) && json_object_get(st, "*")) {
			json_t *tmp = json_pack("{sO}", "x", json_object_get(st, "*"));

			rc = get_duration(tmp, "x", 0, &ms, err, errlen);
			json_decref(tmp);
			if (rc < 0)
				return rc;
		}
		c->dns.service_ttl_s = (uint32_t)(ms / 1000);
	}
	TRY(get_duration(doc, "dns_config.soa.min_ttl", 0, &ms, err, errlen));
	c->dns.soa_min_ttl_s = (uint32_t)(ms / 1000);
	TRY(get_bool(doc, "dns_config.allow_stale", true, &c->dns.allow_stale, err, errlen));
	TRY(get_duration(doc, "dns_config.max_stale", 87600ull * 3600 * 1000, &c->dns.max_stale_ms,
			 err, errlen));
	TRY(get_bool(doc, "dns_config.only_passing", false, &c->dns.only_passing, err, errlen));
	TRY(get_bool(doc, "dns_config.enable_truncate", true, &c->dns.enable_truncate, err, errlen));
	TRY(get_int(doc, "dns_config.udp_answer_limit", 3, 1, 1000, &v, err, errlen));
	c->dns.udp_answer_limit = (uint32_t)v;
	TRY(get_int(doc, "dns_config.a_record_limit", 0, 0, 100000, &v, err, errlen));
	c->dns.a_record_limit = (uint32_t)v;
	TRY(get_int(doc, "limits.kv_max_value_size", 512 * 1024, 1, 64ll * 1024 * 1024, &v, err,
		    errlen));
	c->kv_max_value_size = (uint64_t)v;
	TRY(get_int(doc, "limits.http_max_body", (long long)c->kv_max_value_size + 64 * 1024, 1024,
		    128ll * 1024 * 1024, &v, err, errlen));
	c->http_max_body = (uint64_t)v;
	TRY(get_int(doc, "limits.txn_max_req_len", 512 * 1024, 1, 64ll * 1024 * 1024, &v, err,
		    errlen));
	c->txn_max_req_len = (uint64_t)v;
	TRY(get_int(doc, "raft_snapshot_threshold", 16384, 1, 1ll << 40, &v, err, errlen));
	c->raft_snapshot_threshold = (uint64_t)v;
	TRY(get_int(doc, "raft_trailing_logs", 10240, 0, 1ll << 40, &v, err, errlen));
	c->raft_trailing_logs = (uint64_t)v;
#undef TRY

	/* The domain always ends in exactly one dot. */
	if (c->domain[strlen(c->domain) - 1] != '.') {
		char *d = malloc(strlen(c->domain) + 2);

		if (!d)
			return -ENOMEM;
		sprintf(d, "%s.", c->domain);
		free(c->domain);
		c->domain = d;
	}
	if (c->alt_domain && c->alt_domain[strlen(c->alt_domain) - 1] != '.') {
		char *d = malloc(strlen(c->alt_domain) + 2);

		if (!d)
			return -ENOMEM;
		sprintf(d, "%s.", c->alt_domain);
		free(c->alt_domain);
		c->alt_domain = d;
	}
	return 0;
}

int config_load(int argc, char **argv, struct config *out, char *err, size_t errlen)
{
	struct config c = {0};
	json_t *doc = json_object(), *overlay = json_object();
	int rc;

	if (!doc || !overlay) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = parse_flags(argc, argv, doc, overlay, err, errlen);
	if (rc < 0)
		goto fail;
	json_merge(doc, overlay);
	rc = read_config(doc, &c, err, errlen);
	if (rc < 0)
		goto fail;
	if (c.data_dir) {
		rc = mkdir_p(c.data_dir);
		if (rc < 0) {
			rc = fail(err, errlen, "data_dir %s: %s", c.data_dir, strerror(-rc));
			goto fail;
		}
		if (!c.run_dir) {
			size_t n = strlen(c.data_dir) + 5;

			c.run_dir = malloc(n);
			if (!c.run_dir) {
				rc = -ENOMEM;
				goto fail;
			}
			snprintf(c.run_dir, n, "%s/run", c.data_dir);
		}
		if (!c.node_id) {
			rc = load_node_id(c.data_dir, &c.node_id);
			if (rc < 0) {
				rc = fail(err, errlen, "node id in %s: %s", c.data_dir, strerror(-rc));
				goto fail;
			}
		}
	} else if (!c.dev) {
		rc = fail(err, errlen, "data_dir is required (or use -dev)");
		goto fail;
	}
	if (c.run_dir) {
		rc = mkdir_p(c.run_dir);
		if (rc < 0) {
			rc = fail(err, errlen, "run_dir %s: %s", c.run_dir, strerror(-rc));
			goto fail;
		}
	}
	json_decref(overlay);
	c.json = doc;
	*out = c;
	return 0;
fail:
	if (rc == -ENOMEM)
		(void)fail(err, errlen, "out of memory");
	json_decref(overlay);
	json_decref(doc);
	config_close(&c);
	return rc;
}

void config_close(struct config *c)
{
	free(c->datacenter);
	free(c->node_name);
	free(c->node_id);
	free(c->data_dir);
	free(c->run_dir);
	free(c->domain);
	free(c->alt_domain);
	free(c->bind_addr);
	free(c->advertise_addr);
	free(c->client_addr);
	free(c->log_level);
	free_list(c->start_join);
	free_list(c->retry_join);
	free_list(c->recursors);
	if (c->json)
		json_decref(c->json);
	memset(c, 0, sizeof(*c));
}

int config_ipc_endpoint(const struct config *c, const char *name, char *buf, size_t len)
{
	int n;

	if (!c->run_dir)
		return -EINVAL;
	n = snprintf(buf, len, "ipc://%s/%s.sock", c->run_dir, name);
	/* sun_path holds 108 bytes including the NUL. */
	if (n < 0 || (size_t)n >= len || (size_t)n - strlen("ipc://") >= 108)
		return -ENAMETOOLONG;
	return 0;
}
