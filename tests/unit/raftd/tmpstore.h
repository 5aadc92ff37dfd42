/* A raftd store in a fresh temporary directory, for unit tests that need
 * real LMDB state (catalog, sessions, txn, coordinates, reconcile,
 * autopilot). */
#ifndef CAIRN_TEST_TMPSTORE_H
#define CAIRN_TEST_TMPSTORE_H

#include <stddef.h>

struct store;

/* Makes <TMPDIR or /tmp>/cairn-<tag>-test-XXXXXX in dir (len bytes) and
 * opens a 64 MiB store in its "raft" subdirectory, as raftd lays out its
 * data directory. Fails the running Check test on any error. */
struct store *tmpstore_open(const char *tag, char *dir, size_t len);

/* Closes st (NULL is fine) and removes dir with everything under it. */
void tmpstore_close(struct store *st, const char *dir);

#endif
