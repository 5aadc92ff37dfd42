/* `cairn`: the command-line entry point; dispatches to the subcommands. */
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "commands.h"
#include "gossip_cmds.h"
#include "lock.h"
#include "operator_cmds.h"
#include "snapshot.h"

static void usage(FILE *f)
{
	fprintf(f, "Usage: cairn <command> [args]\n\n"
		   "Commands:\n"
		   "    agent      Runs a Cairn agent (the four daemons, supervised)\n"
		   "    force-leave Forces a member of the cluster to enter the \"left\" state\n"
		   "    join       Tells a running agent to join the cluster\n"
		   "    keygen     Generates a new encryption key\n"
		   "    keyring    Manages gossip layer encryption keys\n"
		   "    kv         Get, put, delete, export and import keys\n"
		   "    leave      Gracefully leaves the cluster\n"
		   "    lock       Execute a command holding a lock\n"
		   "    members    Lists the members of the cluster\n"
		   "    operator   Raft peers: operator raft list-peers|remove-peer\n"
		   "    snapshot   Saves, restores and inspects snapshots of the state\n"
		   "    version    Prints the Cairn version\n");
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : NULL;

	if (!cmd || strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 ||
	    strcmp(cmd, "-help") == 0 || strcmp(cmd, "help") == 0) {
		usage(cmd ? stdout : stderr);
		return cmd ? 0 : 1;
	}
	if (strcmp(cmd, "agent") == 0)
		return agent_main(argc - 1, argv + 1);
	if (strcmp(cmd, "kv") == 0)
		return cmd_kv(argc - 2, argv + 2);
	if (strcmp(cmd, "lock") == 0)
		return cmd_lock(argc - 2, argv + 2);
	if (strcmp(cmd, "members") == 0)
		return cmd_members(argc - 2, argv + 2);
	if (strcmp(cmd, "join") == 0)
		return cmd_join(argc - 2, argv + 2);
	if (strcmp(cmd, "leave") == 0)
		return cmd_leave(argc - 2, argv + 2);
	if (strcmp(cmd, "force-leave") == 0)
		return cmd_force_leave(argc - 2, argv + 2);
	if (strcmp(cmd, "keygen") == 0)
		return cmd_keygen(argc - 2, argv + 2);
	if (strcmp(cmd, "keyring") == 0)
		return cmd_keyring(argc - 2, argv + 2);
	if (strcmp(cmd, "operator") == 0)
		return cmd_operator(argc - 2, argv + 2);
	if (strcmp(cmd, "snapshot") == 0)
		return cmd_snapshot(argc - 2, argv + 2);
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "-version") == 0 ||
	    strcmp(cmd, "--version") == 0 || strcmp(cmd, "-v") == 0)
		return cmd_version(0, argv + 2);
	fprintf(stderr, "cairn: unknown command \"%s\"\n\n", cmd);
	usage(stderr);
	return 1;
}
