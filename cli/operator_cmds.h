/* The `cairn operator raft` subcommands: list-peers and remove-peer, with
 * Consul's flags, table and wording, through the local agent's HTTP API. */
#ifndef CAIRN_CLI_OPERATOR_CMDS_H
#define CAIRN_CLI_OPERATOR_CMDS_H

struct json_t;

/* `cairn operator raft <list-peers|remove-peer> ...`: argv[0] is "raft".
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

#endif
