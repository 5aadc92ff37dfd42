/* The `cairn operator raft` subcommands (list-peers, remove-peer) and
 * `cairn operator autopilot` (get-config, set-config: the flags given change,
 * written back with ?cas= of the configuration read), with Consul's flags,
 * output and wording, through the local agent's HTTP API. */
#ifndef CAIRN_CLI_OPERATOR_CMDS_H
#define CAIRN_CLI_OPERATOR_CMDS_H

struct json_t;

/* `cairn operator raft <list-peers|remove-peer> ...` (argv[0] "raft") and
 * `cairn operator autopilot <get-config|set-config> ...` (argv[0] "autopilot").
 * Returns the process exit code (0 or 1). */
int cmd_operator(int argc, char **argv);

/* Pure: the `list-peers` table from the JSON of
 * GET /v1/operator/raft/configuration (borrowed): columns Node, ID,
 * Address, State (leader/follower), Voter (true/false) and RaftProtocol
 * (ProtocolVersion, "<=1" when empty), in configuration order, aligned as
 * Consul's columnize does (two spaces between columns, the last one not
 * padded), one line per server after the header, each ending in a newline.
 * On success *out is malloc'd text the caller frees with free(). Returns 0,
 * -EINVAL when the answer has no Servers array of objects, -ENOMEM. */
int operator_raft_peers_table(const struct json_t *config, char **out);

/* Pure: `cairn operator autopilot get-config`'s text from the JSON of GET
 * /v1/operator/autopilot/configuration (borrowed): Consul's "Key = value"
 * lines (CleanupDeadServers, LastContactThreshold, MaxTrailingLogs,
 * MinQuorum, ServerStabilizationTime, RedundancyZoneTag,
 * DisableUpgradeMigration, UpgradeVersionTag). On success *out is malloc'd
 * text the caller frees. Returns 0, -EINVAL (not a configuration), -ENOMEM. */
int operator_autopilot_config_text(const struct json_t *cfg, char **out);

#endif
