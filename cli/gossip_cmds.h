/* The gossip subcommands of `cairn`: join, leave, force-leave and keygen,
 * with Consul's flags and wording. Each returns the process exit code. */
#ifndef CAIRN_CLI_GOSSIP_CMDS_H
#define CAIRN_CLI_GOSSIP_CMDS_H

/* `cairn join [-wan] address...`: PUT /v1/agent/join/<address> for each. */
int cmd_join(int argc, char **argv);
/* `cairn leave`: PUT /v1/agent/leave. */
int cmd_leave(int argc, char **argv);
/* `cairn force-leave [-prune] [-wan] node`: PUT /v1/agent/force-leave/<node>. */
int cmd_force_leave(int argc, char **argv);
/* `cairn keyring -list | -install K | -use K | -remove K`: /v1/operator/keyring. */
int cmd_keyring(int argc, char **argv);
/* `cairn keygen`: prints a new base64 32-byte gossip key. */
int cmd_keygen(int argc, char **argv);

#endif
