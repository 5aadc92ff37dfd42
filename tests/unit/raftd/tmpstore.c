/* Temporary stores for raftd's unit tests (see tmpstore.h). */
#include "tmpstore.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"

static void rmtree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;

	if (!d) {
		(void)unlink(path);
		return;
	}
	while ((e = readdir(d))) {
		char sub[600];

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
		rmtree(sub);
	}
	closedir(d);
	(void)rmdir(path);
}

struct store *tmpstore_open(const char *tag, char *dir, size_t len)
{
	char err[256], sub[600];
	const char *base = getenv("TMPDIR");
	struct store *st = NULL;

	snprintf(dir, len, "%s/cairn-%s-test-XXXXXX", base && *base ? base : "/tmp", tag);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(sub, sizeof(sub), "%s/raft", dir);
	ck_assert_int_eq(mkdir(sub, 0700), 0);
	ck_assert_msg(store_open(sub, 64ull << 20, &st, err, sizeof(err)) == 0, "store_open: %s",
		      err);
	return st;
}

void tmpstore_close(struct store *st, const char *dir)
{
	store_close(st);
	rmtree(dir);
}
