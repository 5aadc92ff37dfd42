/* `cairn agent`: loads the configuration like every daemon does, then
 * starts cairn-raftd (servers only), cairn-gossipd, cairn-apid and
 * cairn-dnsd as child processes with the same arguments, restarts any that
 * dies (back-off 100 ms doubling to 5 s), and stops them all on SIGINT or
 * SIGTERM. A dev and test convenience; production uses the systemd units. */
#ifndef CAIRN_CLI_AGENT_H
#define CAIRN_CLI_AGENT_H

/* Runs the agent until SIGINT/SIGTERM. argv[0] is "agent"; the rest are
 * the agent flags (see config_load). Returns the process exit code: 0 after
 * a clean stop, 1 when the configuration or the binaries are wrong. */
int agent_main(int argc, char **argv);

#endif
