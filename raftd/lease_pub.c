/* raftd's published read lease (see lease_pub.h). */
#include "lease_pub.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The page's layout: every field a 64-bit word, accessed atomically. */
enum {
	W_MAGIC = 0, /* magic << 32 | version */
	W_SEQ,	     /* seqlock sequence: odd while a write is in progress */
	W_GEN,
	W_PID,
	W_FLAGS, /* bit 0 leader, bit 1 known leader, bit 2 contact unknown */
	W_ALIVE,
	W_LEASE,
	W_CONTACT,
	W_APPLIED,
	W_COUNT,
};

#define F_LEADER 1u
#define F_KNOWN 2u
#define F_NOCONTACT 4u
#define READ_TRIES 64

static uint64_t magic_word(void) { return (uint64_t)LEASE_PAGE_MAGIC << 32 | LEASE_PAGE_VERSION; }

void lease_page_write(void *page, const struct lease_info *info)
{
	uint64_t *w = page;
	uint64_t seq = __atomic_load_n(&w[W_SEQ], __ATOMIC_RELAXED);
	uint64_t flags = (info->is_leader ? F_LEADER : 0) | (info->known_leader ? F_KNOWN : 0) |
			 (info->contact_unknown ? F_NOCONTACT : 0);

	__atomic_store_n(&w[W_SEQ], seq | 1u, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	__atomic_store_n(&w[W_MAGIC], magic_word(), __ATOMIC_RELAXED);
	__atomic_store_n(&w[W_GEN], info->generation, __ATOMIC_RELAXED);
	__atomic_store_n(&w[W_PID], info->pid, __ATOMIC_RELAXED);
	__atomic_store_n(&w[W_FLAGS], flags, __ATOMIC_RELAXED);
	__atomic_store_n(&w[W_ALIVE], info->alive_until_ns, __ATOMIC_RELAXED);
	__atomic_store_n(&w[W_LEASE], info->lease_until_ns, __ATOMIC_RELAXED);
	__atomic_store_n(&w[W_CONTACT], info->contact_at_ns, __ATOMIC_RELAXED);
	__atomic_store_n(&w[W_APPLIED], info->applied_index, __ATOMIC_RELAXED);
	__atomic_store_n(&w[W_SEQ], (seq | 1u) + 1u, __ATOMIC_RELEASE);
}

int lease_page_read(const void *page, struct lease_info *out)
{
	const uint64_t *w = page;
	int i;

	for (i = 0; i < READ_TRIES; i++) {
		uint64_t s1 = __atomic_load_n(&w[W_SEQ], __ATOMIC_ACQUIRE), s2, flags, magic;
		struct lease_info li;

		if (s1 & 1u)
			continue;
		magic = __atomic_load_n(&w[W_MAGIC], __ATOMIC_RELAXED);
		li.generation = __atomic_load_n(&w[W_GEN], __ATOMIC_RELAXED);
		li.pid = __atomic_load_n(&w[W_PID], __ATOMIC_RELAXED);
		flags = __atomic_load_n(&w[W_FLAGS], __ATOMIC_RELAXED);
		li.alive_until_ns = __atomic_load_n(&w[W_ALIVE], __ATOMIC_RELAXED);
		li.lease_until_ns = __atomic_load_n(&w[W_LEASE], __ATOMIC_RELAXED);
		li.contact_at_ns = __atomic_load_n(&w[W_CONTACT], __ATOMIC_RELAXED);
		li.applied_index = __atomic_load_n(&w[W_APPLIED], __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		s2 = __atomic_load_n(&w[W_SEQ], __ATOMIC_RELAXED);
		if (s1 != s2)
			continue;
		if (magic != magic_word())
			return -EINVAL;
		li.is_leader = flags & F_LEADER;
		li.known_leader = flags & F_KNOWN;
		li.contact_unknown = flags & F_NOCONTACT;
		*out = li;
		return 0;
	}
	return -EAGAIN;
}

uint64_t lease_info_last_contact_ms(const struct lease_info *info, uint64_t now_ns)
{
	if (info->is_leader)
		return 0;
	if (info->contact_unknown)
		return UINT64_MAX;
	return now_ns > info->contact_at_ns ? (now_ns - info->contact_at_ns) / 1000000u : 0;
}

uint64_t lease_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- writer ---------------------------------------------------------------- */

struct lease_pub {
	void *page;
	struct lease_info last;
};

int lease_pub_open(const char *path, struct lease_pub **out)
{
	struct lease_pub *p;
	struct stat st;
	int fd, rc;

	/* Never shrink the file under a reader's mapping (SIGBUS): no O_TRUNC,
	 * and only grow it to the page size. */
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 ||
	    (st.st_size < (off_t)LEASE_PAGE_SIZE && ftruncate(fd, LEASE_PAGE_SIZE) < 0)) {
		rc = -errno;
		close(fd);
		return rc;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		close(fd);
		return -ENOMEM;
	}
	p->page = mmap(NULL, LEASE_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	rc = -errno;
	close(fd);
	if (p->page == MAP_FAILED) {
		free(p);
		return rc;
	}
	lease_page_write(p->page, &p->last);
	*out = p;
	return 0;
}

void lease_pub_set(struct lease_pub *p, const struct lease_info *info)
{
	p->last = *info;
	lease_page_write(p->page, info);
}

const struct lease_info *lease_pub_last(const struct lease_pub *p) { return &p->last; }

void lease_pub_close(struct lease_pub *p)
{
	if (!p)
		return;
	p->last.alive_until_ns = 0;
	p->last.lease_until_ns = 0;
	p->last.is_leader = false;
	lease_page_write(p->page, &p->last);
	munmap(p->page, LEASE_PAGE_SIZE);
	free(p);
}

/* ---- reader ---------------------------------------------------------------- */

struct lease_view {
	const void *page;
};

int lease_view_open(const char *path, struct lease_view **out)
{
	struct lease_view *v;
	struct stat st;
	void *page;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	if (st.st_size < (off_t)LEASE_PAGE_SIZE) {
		close(fd);
		return -EAGAIN; /* raftd is creating it */
	}
	page = mmap(NULL, LEASE_PAGE_SIZE, PROT_READ, MAP_SHARED, fd, 0);
	rc = -errno;
	close(fd);
	if (page == MAP_FAILED)
		return rc;
	v = calloc(1, sizeof(*v));
	if (!v) {
		munmap(page, LEASE_PAGE_SIZE);
		return -ENOMEM;
	}
	v->page = page;
	*out = v;
	return 0;
}

int lease_view_read(const struct lease_view *v, struct lease_info *out)
{
	return lease_page_read(v->page, out);
}

void lease_view_close(struct lease_view *v)
{
	if (!v)
		return;
	munmap((void *)v->page, LEASE_PAGE_SIZE);
	free(v);
}
