/* `cairn snapshot save|restore|inspect`, as Consul's command/snapshot:
 * save writes GET /v1/snapshot to a file (verified first), restore PUTs a
 * file to /v1/snapshot, inspect prints an archive's ID, Size, Index, Term
 * and Version offline. The archive is Cairn's own (raftd/snapshot.h). */
#ifndef CAIRN_CLI_SNAPSHOT_H
#define CAIRN_CLI_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

/* `cairn snapshot <save|restore|inspect> ...`: argv[0] is the subcommand.
 * Returns the exit status. */
int cmd_snapshot(int argc, char **argv);

/* The inspect text for an archive (malloc'd into *out), or -EINVAL with a
 * reason in *why when the archive is corrupted. */
int cli_snapshot_inspect_text(const uint8_t *buf, size_t len, char **out, const char **why);

#endif
