/* The HTTP subcommands of `cairn`: kv get|put|delete, members, version.
 * Each takes the arguments after its name (argv[0] is the first flag or
 * positional), prints results to stdout and errors to stderr, and returns
 * the process exit code (0 or 1). */
#ifndef CAIRN_CLI_COMMANDS_H
#define CAIRN_CLI_COMMANDS_H

/* `cairn kv <get|put|delete> ...`: argv[0] is the kv subcommand. */
int cmd_kv(int argc, char **argv);

/* `cairn members ...`. */
int cmd_members(int argc, char **argv);

/* `cairn version`. */
int cmd_version(int argc, char **argv);

#endif
