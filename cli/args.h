/* Argument parsing for the `cairn` command: pure, no I/O.
 *
 * Flags follow Go's flag package, as Consul's CLI does: "-flag", "--flag",
 * "-flag=value" and "-flag value" (the last not for booleans, which take
 * "-flag=true|false"); parsing stops at the first argument that is not a
 * flag, at a lone "-" (a positional meaning stdin) and after "--". Flags
 * must come before positional arguments. All strings in the results are
 * borrowed from argv. */
#ifndef CAIRN_CLI_ARGS_H
#define CAIRN_CLI_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum args_type {
	ARGS_BOOL, /* dst is bool * */
	ARGS_U64,  /* dst is uint64_t * (decimal) */
	ARGS_STR,  /* dst is const char ** */
};

struct args_flag {
	const char *name;    /* without dashes: "modify-index" */
	enum args_type type; /* how to read the value */
	void *dst;	     /* where the value goes */
	bool *seen;	     /* set true when given; may be NULL */
};

/* Parses flags from argv[0..argc) against the table. On success writes in
 * out_next the index of the first positional argument and returns 0; on an
 * unknown flag, a missing value or a bad number returns -EINVAL with a
 * reason in err; on -h, -help or --help returns -ECANCELED (print usage).
 * args_parse_kv and args_parse_members pass -ECANCELED on too. */
int args_parse_flags(const struct args_flag *flags, size_t nflags, int argc, char **argv,
		     int *out_next, char *err, size_t errlen);

/* Flags every HTTP command takes. */
struct args_http {
	const char *http_addr;	/* -http-addr, NULL if not given */
	const char *token;	/* -token, NULL if not given */
	const char *datacenter; /* -datacenter, NULL if not given */
};

enum args_kv_cmd {
	ARGS_KV_GET,
	ARGS_KV_PUT,
	ARGS_KV_DELETE,
};

struct args_kv {
	enum args_kv_cmd cmd;
	struct args_http http;
	bool recurse;	       /* get, delete */
	bool detailed;	       /* get */
	bool keys;	       /* get: list key names only */
	const char *separator; /* get -keys: roll up below this, default "/" */
	bool cas;	       /* put, delete */
	bool has_modify_index; /* -modify-index given */
	uint64_t modify_index; /* with cas */
	bool has_flags;	       /* put: -flags given */
	uint64_t flags;	       /* put */
	const char *key;       /* "" for a recursive get/delete of everything */
	const char *value;     /* put: the DATA argument, NULL when absent (empty
				  value); "-" means stdin, "@path" a file */
};

/* Parses the arguments after "kv <cmd>" (argv[0] is the first of them) with
 * Consul's rules: get [-recurse] [-detailed] [-keys [-separator=S]] KEY, put [-cas -modify-index=N]
 * [-flags=N] KEY [DATA], delete [-recurse | -cas -modify-index=N] KEY.
 * Returns 0, or -EINVAL with Consul's message in err. */
int args_parse_kv(enum args_kv_cmd cmd, int argc, char **argv, struct args_kv *out, char *err,
		  size_t errlen);

struct args_members {
	struct args_http http;
	bool wan;      /* -wan: list the WAN pool */
	bool detailed; /* -detailed: print all tags */
};

/* Parses the arguments after "members". Returns 0 or -EINVAL. */
int args_parse_members(int argc, char **argv, struct args_members *out, char *err, size_t errlen);

/* Resolves the HTTP API base URL: the -http-addr flag, else CAIRN_HTTP_ADDR,
 * else CONSUL_HTTP_ADDR (pass getenv() results; NULL or "" means unset),
 * else 127.0.0.1:8500. Accepts "host:port", "http://host:port" and
 * "https://host:port"; writes "http(s)://host:port" without a trailing
 * slash. Returns 0, -EINVAL for an unsupported scheme (unix://...) or an
 * empty address, -ENAMETOOLONG when out is too small. */
int args_http_base(const char *flag, const char *env_cairn, const char *env_consul, char *out,
		   size_t outlen);

/* Resolves the ACL token: -token, else CAIRN_HTTP_TOKEN, else
 * CONSUL_HTTP_TOKEN; NULL when none (empty counts as unset). */
const char *args_http_token(const char *flag, const char *env_cairn, const char *env_consul);

#endif
