/* Cairn's snapshot archive: a self-describing, checksummed copy of the
 * state machine's tables as of one Raft index.
 *
 * Used for GET/PUT /v1/snapshot, for InstallSnapshot between servers and
 * by `cairn snapshot inspect`. Our own format (not Consul's tar.gz): it
 * restores only into Cairn. Layout, integers big-endian:
 *
 *   "CAIRNSNP"                     8 bytes, magic
 *   u32 version                    SNAPSHOT_VERSION
 *   u64 index, u64 term            last Raft entry the state includes
 *   u64 config_index               index of the configuration in force there
 *   u64 created_ms                 wall clock when taken (informational)
 *   u32 config_len, config bytes   raft_config_encode() text
 *   records: u8 table (store.h enum), u32 klen, u32 vlen, key, value
 *   u8 0xFF, u64 record count      end marker
 *   u32 CRC-32 (IEEE)              over every byte before it
 *
 * Pure: no I/O, no store; the caller feeds records in and walks them out
 * (replica.c copies them from and into LMDB). */
#ifndef CAIRN_RAFTD_SNAPSHOT_H
#define CAIRN_RAFTD_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#define SNAPSHOT_MAGIC "CAIRNSNP"
#define SNAPSHOT_VERSION 1u
#define SNAPSHOT_END 0xFFu

/* What an archive's header and trailer say. */
struct snapshot_meta {
	uint64_t index;	       /* last Raft index included */
	uint64_t term;	       /* its term */
	uint64_t config_index; /* index of the configuration entry in force */
	uint64_t created_ms;   /* Unix time in ms when it was taken */
	const uint8_t *config; /* configuration payload (borrowed from the archive) */
	size_t config_len;
	uint64_t records; /* table entries */
	uint64_t size;	  /* archive bytes */
	uint32_t crc;	  /* stored CRC-32 */
};

/* An archive being written into a growing buffer. */
struct snapshot_writer {
	uint8_t *buf;
	size_t len, cap;
	uint64_t records;
	int err; /* first failure (-ENOMEM), sticky */
};

/* Starts an archive with m's header (index, term, config_index,
 * created_ms, config). Returns 0 or -ENOMEM. */
int snapshot_writer_begin(struct snapshot_writer *w, const struct snapshot_meta *m);
/* Appends one record of table (< SNAPSHOT_END). Returns 0 or -ENOMEM /
 * -EINVAL (table out of range, or a key or value over 4 GiB). */
int snapshot_writer_add(struct snapshot_writer *w, unsigned table, const void *key, size_t klen,
			const void *val, size_t vlen);
/* Writes the end marker and the checksum. Returns 0 or w->err. */
int snapshot_writer_end(struct snapshot_writer *w);
/* Frees the buffer; the struct may be begun again. */
void snapshot_writer_free(struct snapshot_writer *w);

/* Checks an archive completely (magic, version, every record's bounds,
 * the count and the CRC) and fills out (pointers into buf). Returns 0,
 * or -EINVAL with a short reason in *why (static text). */
int snapshot_parse(const uint8_t *buf, size_t len, struct snapshot_meta *out, const char **why);

/* Called for each record of a parsed archive, in order. Return 0 to go
 * on or a negative code to stop with it. */
typedef int (*snapshot_record_fn)(void *ctx, unsigned table, const uint8_t *key, size_t klen,
				  const uint8_t *val, size_t vlen);
/* Walks the records of an archive snapshot_parse() accepted. Returns 0,
 * the callback's code, or -EINVAL. */
int snapshot_each(const uint8_t *buf, size_t len, snapshot_record_fn fn, void *ctx);

/* CRC-32 (IEEE 802.3, as zlib's crc32), continuing from crc (0 to start). */
uint32_t snapshot_crc32(uint32_t crc, const void *data, size_t len);

#endif
