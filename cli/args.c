/* Argument parsing for the `cairn` command (see args.h). */
#include "args.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const struct args_flag *find_flag(const struct args_flag *flags, size_t n, const char *name,
					 size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(flags[i].name) == len && memcmp(flags[i].name, name, len) == 0)
			return &flags[i];
	return NULL;
}

static int parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (*s == '\0')
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

static int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"1", "t", "T", "true", "TRUE", "True"};
	static const char *const no[] = {"0", "f", "F", "false", "FALSE", "False"};

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

int args_parse_flags(const struct args_flag *flags, size_t nflags, int argc, char **argv,
		     int *out_next, char *err, size_t errlen)
{
	int i = 0;

	while (i < argc) {
		const char *a = argv[i];
		const char *name, *eq, *val;
		const struct args_flag *f;
		size_t nlen;

		if (a[0] != '-' || a[1] == '\0')
			break; /* positional, or "-" meaning stdin */
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		name = a + 1;
		if (*name == '-')
			name++;
		if (strcmp(name, "h") == 0 || strcmp(name, "help") == 0) {
			snprintf(err, errlen, "help requested");
			return -ECANCELED;
		}
		if (*name == '\0' || *name == '-' || *name == '=') {
			snprintf(err, errlen, "bad flag syntax: %s", a);
			return -EINVAL;
		}
		eq = strchr(name, '=');
		nlen = eq ? (size_t)(eq - name) : strlen(name);
		f = find_flag(flags, nflags, name, nlen);
		if (!f) {
			snprintf(err, errlen, "flag provided but not defined: -%.*s", (int)nlen,
				 name);
			return -EINVAL;
		}
		i++;
		if (f->type == ARGS_BOOL) {
			bool b = true;

			if (eq && parse_bool(eq + 1, &b) < 0) {
				snprintf(err, errlen, "invalid boolean value \"%s\" for -%s",
					 eq + 1, f->name);
				return -EINVAL;
			}
			*(bool *)f->dst = b;
		} else {
			if (eq) {
				val = eq + 1;
			} else if (i < argc) {
				val = argv[i++];
			} else {
				snprintf(err, errlen, "flag needs an argument: -%s", f->name);
				return -EINVAL;
			}
			if (f->type == ARGS_U64) {
				if (parse_u64(val, (uint64_t *)f->dst) < 0) {
					snprintf(err, errlen, "invalid value \"%s\" for flag -%s",
						 val, f->name);
					return -EINVAL;
				}
			} else {
				*(const char **)f->dst = val;
			}
		}
		if (f->seen)
			*f->seen = true;
	}
	*out_next = i;
	return 0;
}

/* The flags every HTTP command takes, as args_flag initialisers. */
/* clang-format off */
#define HTTP_FLAGS(h)                                                     \
	{"http-addr", ARGS_STR, &(h)->http_addr, NULL},                   \
	{"token", ARGS_STR, &(h)->token, NULL},                           \
	{"datacenter", ARGS_STR, &(h)->datacenter, NULL}
/* clang-format on */

int args_parse_kv(enum args_kv_cmd cmd, int argc, char **argv, struct args_kv *out, char *err,
		  size_t errlen)
{
	struct args_kv kv = {.cmd = cmd, .separator = "/"};
	const struct args_flag get_flags[] = {
	    HTTP_FLAGS(&kv.http),
	    {"recurse", ARGS_BOOL, &kv.recurse, NULL},
	    {"detailed", ARGS_BOOL, &kv.detailed, NULL},
	    {"keys", ARGS_BOOL, &kv.keys, NULL},
	    {"separator", ARGS_STR, &kv.separator, NULL},
	};
	const struct args_flag put_flags[] = {
	    HTTP_FLAGS(&kv.http),
	    {"cas", ARGS_BOOL, &kv.cas, NULL},
	    {"modify-index", ARGS_U64, &kv.modify_index, &kv.has_modify_index},
	    {"flags", ARGS_U64, &kv.flags, &kv.has_flags},
	};
	const struct args_flag del_flags[] = {
	    HTTP_FLAGS(&kv.http),
	    {"recurse", ARGS_BOOL, &kv.recurse, NULL},
	    {"cas", ARGS_BOOL, &kv.cas, NULL},
	    {"modify-index", ARGS_U64, &kv.modify_index, &kv.has_modify_index},
	};
	const struct args_flag *flags;
	size_t nflags;
	int next, npos, rc;

	switch (cmd) {
	case ARGS_KV_GET:
		flags = get_flags;
		nflags = sizeof(get_flags) / sizeof(get_flags[0]);
		break;
	case ARGS_KV_PUT:
		flags = put_flags;
		nflags = sizeof(put_flags) / sizeof(put_flags[0]);
		break;
	case ARGS_KV_DELETE:
		flags = del_flags;
		nflags = sizeof(del_flags) / sizeof(del_flags[0]);
		break;
	default:
		snprintf(err, errlen, "unknown kv command");
		return -EINVAL;
	}
	rc = args_parse_flags(flags, nflags, argc, argv, &next, err, errlen);
	if (rc < 0)
		return rc;
	npos = argc - next;

	switch (cmd) {
	case ARGS_KV_GET:
		if (npos > 1) {
			snprintf(err, errlen, "Too many arguments (expected 1, got %d)", npos);
			return -EINVAL;
		}
		kv.key = npos == 1 ? argv[next] : "";
		if (kv.key[0] == '\0' && !kv.recurse && !kv.keys) {
			snprintf(err, errlen, "Error! Missing KEY argument");
			return -EINVAL;
		}
		if (kv.keys && kv.detailed) {
			snprintf(err, errlen, "Cannot specify both -keys and -detailed!");
			return -EINVAL;
		}
		break;
	case ARGS_KV_PUT:
		if (npos < 1) {
			snprintf(err, errlen, "Error! Missing KEY argument");
			return -EINVAL;
		}
		if (npos > 2) {
			snprintf(err, errlen, "Too many arguments (expected 1 or 2, got %d)", npos);
			return -EINVAL;
		}
		kv.key = argv[next];
		kv.value = npos == 2 ? argv[next + 1] : NULL;
		if (kv.key[0] == '\0') {
			snprintf(err, errlen, "Error! Missing KEY argument");
			return -EINVAL;
		}
		break;
	case ARGS_KV_DELETE:
		if (npos > 1) {
			snprintf(err, errlen, "Too many arguments (expected 1, got %d)", npos);
			return -EINVAL;
		}
		kv.key = npos == 1 ? argv[next] : "";
		if (kv.key[0] == '\0' && !kv.recurse) {
			snprintf(err, errlen, "Error! Missing KEY argument");
			return -EINVAL;
		}
		if (kv.cas && kv.recurse) {
			snprintf(err, errlen, "Cannot specify both -cas and -recurse!");
			return -EINVAL;
		}
		break;
	}
	if (kv.cas && !kv.has_modify_index) {
		snprintf(err, errlen, "Must specify -modify-index with -cas!");
		return -EINVAL;
	}
	if (kv.has_modify_index && !kv.cas) {
		snprintf(err, errlen, "Cannot specify -modify-index without -cas!");
		return -EINVAL;
	}
	*out = kv;
	return 0;
}

int args_parse_members(int argc, char **argv, struct args_members *out, char *err, size_t errlen)
{
	struct args_members m = {0};
	const struct args_flag flags[] = {
	    HTTP_FLAGS(&m.http),
	    {"wan", ARGS_BOOL, &m.wan, NULL},
	    {"detailed", ARGS_BOOL, &m.detailed, NULL},
	};
	int next, rc;

	rc = args_parse_flags(flags, sizeof(flags) / sizeof(flags[0]), argc, argv, &next, err,
			      errlen);
	if (rc < 0)
		return rc;
	if (next < argc) {
		snprintf(err, errlen, "Too many arguments (expected 0, got %d)", argc - next);
		return -EINVAL;
	}
	*out = m;
	return 0;
}

static const char *pick(const char *a, const char *b, const char *c)
{
	if (a && *a)
		return a;
	if (b && *b)
		return b;
	if (c && *c)
		return c;
	return NULL;
}

int args_http_base(const char *flag, const char *env_cairn, const char *env_consul, char *out,
		   size_t outlen)
{
	const char *addr = pick(flag, env_cairn, env_consul);
	const char *scheme = "http";
	const char *rest;
	size_t len;
	int n;

	if (!addr)
		addr = "127.0.0.1:8500";
	rest = addr;
	if (strncasecmp(addr, "http://", 7) == 0) {
		rest = addr + 7;
	} else if (strncasecmp(addr, "https://", 8) == 0) {
		scheme = "https";
		rest = addr + 8;
	} else if (strstr(addr, "://")) {
		return -EINVAL; /* unix:// and friends */
	}
	len = strlen(rest);
	while (len > 0 && rest[len - 1] == '/')
		len--;
	if (len == 0)
		return -EINVAL;
	n = snprintf(out, outlen, "%s://%.*s", scheme, (int)len, rest);
	if (n < 0 || (size_t)n >= outlen)
		return -ENAMETOOLONG;
	return 0;
}

const char *args_http_token(const char *flag, const char *env_cairn, const char *env_consul)
{
	return pick(flag, env_cairn, env_consul);
}
