/* The HTTP subcommands of `cairn`: kv get|put|delete, members, version.
 * Each takes the arguments after its name (argv[0] is the first flag or
 * positional), prints results to stdout and errors to stderr, and returns
 * the process exit code (0 or 1). */
#ifndef CAIRN_CLI_COMMANDS_H
#define CAIRN_CLI_COMMANDS_H

#include <stddef.h>

struct args_flag;
struct args_http;
struct client;

/* A client for the agent named by -http-addr, CAIRN_HTTP_ADDR or
 * CONSUL_HTTP_ADDR (and the token likewise). Prints the reason and returns
 * NULL on failure; free with client_free(). */
struct client *cmd_client(const struct args_http *h);

/* Parses -http-addr, -token and -datacenter plus the extra flags. Returns
 * the index of the first positional argument, -1 after printing an error,
 * or -2 after printing usage for -h (the command then exits 0). */
int cmd_parse_http(int argc, char **argv, const struct args_flag *extra, size_t n_extra,
		   struct args_http *h, const char *usage);

/* `cairn kv <get|put|delete> ...`: argv[0] is the kv subcommand. */
int cmd_kv(int argc, char **argv);

/* `cairn members ...`. */
int cmd_members(int argc, char **argv);

/* `cairn version`. */
int cmd_version(int argc, char **argv);

#endif
