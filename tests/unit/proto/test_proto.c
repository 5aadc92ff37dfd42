/* Codec tests: round trips of every message, and rejection of truncated,
 * oversized, wrong-typed and unknown input. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "arena.h"
#include "err.h"
#include "proto.h"

static struct arena A;

static void setup(void)
{
	arena_init(&A, 0);
}

static void teardown(void)
{
	arena_close(&A);
}

static struct proto_msg sample_kv_reply(void)
{
	static struct proto_kv_entry e[2];
	static const char *keys[] = {"a/", "b"};
	struct proto_msg m = proto_msg_make(PROTO_KV_GET_REPLY);

	e[0] = (struct proto_kv_entry){.key = "a/x", .create_index = 5, .modify_index = 9,
				       .flags = 42, .value = {(const uint8_t *)"hi\0there", 8}};
	e[1] = (struct proto_kv_entry){.key = "a/y", .create_index = 1, .modify_index = 1,
				       .session = "s1"};
	m.id = 77;
	m.u.kv_get_reply.index = 9;
	m.u.kv_get_reply.known_leader = true;
	m.u.kv_get_reply.last_contact_ms = 3;
	m.u.kv_get_reply.entries.v = e;
	m.u.kv_get_reply.entries.n = 2;
	m.u.kv_get_reply.keys.v = keys;
	m.u.kv_get_reply.keys.n = 2;
	return m;
}

static void encode(const struct proto_msg *m, uint8_t **buf, size_t *len)
{
	ck_assert_int_eq(proto_encode(m, buf, len), 0);
	ck_assert_uint_gt(*len, 0);
}

START_TEST(roundtrip_kv_reply)
{
	struct proto_msg m = sample_kv_reply(), out;
	uint8_t *buf;
	size_t len;
	char err[128];

	encode(&m, &buf, &len);
	ck_assert_int_eq(proto_decode(buf, len, &A, &out, err, sizeof(err)), 0);
	ck_assert_int_eq(out.type, PROTO_KV_GET_REPLY);
	ck_assert_uint_eq(out.id, 77);
	ck_assert_uint_eq(out.version, PROTO_VERSION);
	ck_assert_uint_eq(out.u.kv_get_reply.index, 9);
	ck_assert(out.u.kv_get_reply.known_leader);
	ck_assert_uint_eq(out.u.kv_get_reply.entries.n, 2);
	ck_assert_str_eq(out.u.kv_get_reply.entries.v[0].key, "a/x");
	ck_assert_uint_eq(out.u.kv_get_reply.entries.v[0].flags, 42);
	ck_assert_uint_eq(out.u.kv_get_reply.entries.v[0].value.len, 8);
	ck_assert_mem_eq(out.u.kv_get_reply.entries.v[0].value.ptr, "hi\0there", 8);
	ck_assert_ptr_null(out.u.kv_get_reply.entries.v[0].session);
	ck_assert_str_eq(out.u.kv_get_reply.entries.v[1].session, "s1");
	ck_assert_uint_eq(out.u.kv_get_reply.entries.v[1].value.len, 0);
	ck_assert_uint_eq(out.u.kv_get_reply.keys.n, 2);
	ck_assert_str_eq(out.u.kv_get_reply.keys.v[1], "b");
	free(buf);
}
END_TEST

START_TEST(roundtrip_every_type)
{
	size_t n;
	const struct proto_msg_desc *d = proto_msg_descs(&n);

	ck_assert_uint_gt(n, 10);
	for (size_t i = 0; i < n; i++) {
		struct proto_msg m = proto_msg_make(d[i].type), out;
		uint8_t *buf;
		size_t len;

		m.id = 1000 + i;
		encode(&m, &buf, &len);
		ck_assert_int_eq(proto_decode(buf, len, &A, &out, NULL, 0), 0);
		ck_assert_int_eq(out.type, d[i].type);
		ck_assert_uint_eq(out.id, 1000 + i);
		free(buf);
	}
}
END_TEST

START_TEST(roundtrip_map_and_i64)
{
	static const char *k[] = {"role", "dc"}, *v[] = {"consul", "dc1"};
	struct proto_msg m = proto_msg_make(PROTO_ERROR), out;
	struct proto_member mem = {.name = "n1", .addr = "127.0.0.1", .port = 8301,
				   .tags = {k, v, 2}, .status = 1};
	uint8_t *buf;
	size_t len;

	m.u.error.code = CAIRN_E_NOLEADER;
	m.u.error.message = "No cluster leader";
	encode(&m, &buf, &len);
	ck_assert_int_eq(proto_decode(buf, len, &A, &out, NULL, 0), 0);
	ck_assert_int_eq(out.u.error.code, CAIRN_E_NOLEADER);
	ck_assert_str_eq(out.u.error.message, "No cluster leader");
	free(buf);

	m = proto_msg_make(PROTO_MEMBERS_REPLY);
	m.u.members_reply.seq = 3;
	m.u.members_reply.members.v = &mem;
	m.u.members_reply.members.n = 1;
	encode(&m, &buf, &len);
	ck_assert_int_eq(proto_decode(buf, len, &A, &out, NULL, 0), 0);
	ck_assert_uint_eq(out.u.members_reply.members.n, 1);
	ck_assert_uint_eq(out.u.members_reply.members.v[0].tags.n, 2);
	ck_assert_str_eq(out.u.members_reply.members.v[0].tags.keys[1], "dc");
	ck_assert_str_eq(out.u.members_reply.members.v[0].tags.vals[0], "consul");
	free(buf);
}
END_TEST

/* Every strict prefix of a valid message must be rejected, never crash. */
START_TEST(rejects_every_truncation)
{
	struct proto_msg m = sample_kv_reply(), out;
	uint8_t *buf;
	size_t len;

	encode(&m, &buf, &len);
	for (size_t cut = 0; cut < len; cut++) {
		uint8_t *copy = malloc(cut ? cut : 1);

		memcpy(copy, buf, cut);
		ck_assert_int_eq(proto_decode(copy, cut, &A, &out, NULL, 0), CAIRN_E_PROTO);
		free(copy);
		arena_reset(&A);
	}
	free(buf);
}
END_TEST

START_TEST(rejects_trailing_bytes)
{
	struct proto_msg m = proto_msg_make(PROTO_PING), out;
	uint8_t *buf, *bigger;
	size_t len;
	char err[128];

	encode(&m, &buf, &len);
	bigger = malloc(len + 1);
	memcpy(bigger, buf, len);
	bigger[len] = 0xc0;
	ck_assert_int_eq(proto_decode(bigger, len + 1, &A, &out, err, sizeof(err)), CAIRN_E_PROTO);
	ck_assert_ptr_nonnull(strstr(err, "trailing"));
	free(buf);
	free(bigger);
}
END_TEST

/* Packs an envelope with a custom body for the rejection tests. */
static size_t pack(uint8_t *out, size_t cap, uint32_t version, uint32_t type, uint64_t id,
		   void (*body)(msgpack_packer *))
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	size_t n;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 4);
	msgpack_pack_uint32(&pk, version);
	msgpack_pack_uint32(&pk, type);
	msgpack_pack_uint64(&pk, id);
	body(&pk);
	n = sb.size < cap ? sb.size : cap;
	memcpy(out, sb.data, n);
	msgpack_sbuffer_destroy(&sb);
	return n;
}

static void body_ping_ok(msgpack_packer *pk)
{
	msgpack_pack_array(pk, 1);
	msgpack_pack_uint64(pk, 5);
}

static void body_ping_string(msgpack_packer *pk)
{
	msgpack_pack_array(pk, 1);
	msgpack_pack_str(pk, 2);
	msgpack_pack_str_body(pk, "no", 2);
}

static void body_ping_negative(msgpack_packer *pk)
{
	msgpack_pack_array(pk, 1);
	msgpack_pack_int64(pk, -5);
}

static void body_ping_two_fields(msgpack_packer *pk)
{
	msgpack_pack_array(pk, 2);
	msgpack_pack_uint64(pk, 5);
	msgpack_pack_uint64(pk, 6);
}

static void body_kvget_huge_count(msgpack_packer *pk)
{
	/* array32 claiming 4 billion fields with nothing behind it */
	msgpack_pack_array(pk, 0xffffffffu);
}

static void body_error_nul_string(msgpack_packer *pk)
{
	msgpack_pack_array(pk, 2);
	msgpack_pack_int64(pk, -1);
	msgpack_pack_str(pk, 3);
	msgpack_pack_str_body(pk, "a\0b", 3);
}

static void body_reply_huge_list(msgpack_packer *pk)
{
	msgpack_pack_array(pk, 5);
	msgpack_pack_uint64(pk, 1);
	msgpack_pack_true(pk);
	msgpack_pack_uint64(pk, 0);
	msgpack_pack_array(pk, 0x7fffffffu); /* entries: a lie */
}

START_TEST(rejects_wrong_types_and_counts)
{
	uint8_t buf[256];
	struct proto_msg out;
	size_t n;

	n = pack(buf, sizeof(buf), PROTO_VERSION, PROTO_PING, 9, body_ping_ok);
	ck_assert_int_eq(proto_decode(buf, n, &A, &out, NULL, 0), 0);
	ck_assert_uint_eq(out.u.ping.sent_ms, 5);

	n = pack(buf, sizeof(buf), PROTO_VERSION, PROTO_PING, 9, body_ping_string);
	ck_assert_int_eq(proto_decode(buf, n, &A, &out, NULL, 0), CAIRN_E_PROTO);
	ck_assert_uint_eq(out.id, 9); /* still known, so an error reply can carry it */
	ck_assert_int_eq(out.type, PROTO_PING);

	n = pack(buf, sizeof(buf), PROTO_VERSION, PROTO_PING, 9, body_ping_negative);
	ck_assert_int_eq(proto_decode(buf, n, &A, &out, NULL, 0), CAIRN_E_PROTO);
	n = pack(buf, sizeof(buf), PROTO_VERSION, PROTO_PING, 9, body_ping_two_fields);
	ck_assert_int_eq(proto_decode(buf, n, &A, &out, NULL, 0), CAIRN_E_PROTO);
	n = pack(buf, sizeof(buf), PROTO_VERSION, PROTO_KV_GET, 9, body_kvget_huge_count);
	ck_assert_int_eq(proto_decode(buf, n, &A, &out, NULL, 0), CAIRN_E_PROTO);
	n = pack(buf, sizeof(buf), PROTO_VERSION, PROTO_ERROR, 9, body_error_nul_string);
	ck_assert_int_eq(proto_decode(buf, n, &A, &out, NULL, 0), CAIRN_E_PROTO);
	n = pack(buf, sizeof(buf), PROTO_VERSION, PROTO_KV_GET_REPLY, 9, body_reply_huge_list);
	ck_assert_int_eq(proto_decode(buf, n, &A, &out, NULL, 0), CAIRN_E_PROTO);
	/* A lying count must not have made us allocate for it. */
	ck_assert_uint_lt(A.used, 4096);
}
END_TEST

START_TEST(rejects_version_and_unknown_type)
{
	uint8_t buf[64];
	struct proto_msg out;
	size_t n;
	char err[128];

	n = pack(buf, sizeof(buf), PROTO_VERSION + 1, PROTO_PING, 4, body_ping_ok);
	ck_assert_int_eq(proto_decode(buf, n, &A, &out, err, sizeof(err)), CAIRN_E_VERSION);
	ck_assert_uint_eq(out.id, 4);
	n = pack(buf, sizeof(buf), PROTO_VERSION, 9999, 4, body_ping_ok);
	ck_assert_int_eq(proto_decode(buf, n, &A, &out, err, sizeof(err)), CAIRN_E_PROTO);
	ck_assert_int_eq(out.type, PROTO_NONE);
	ck_assert_uint_eq(out.id, 4);
	ck_assert_int_eq(proto_decode((const uint8_t *)"\xc0", 1, &A, &out, NULL, 0), CAIRN_E_PROTO);
	ck_assert_int_eq(proto_decode((const uint8_t *)"", 0, &A, &out, NULL, 0), CAIRN_E_PROTO);
	ck_assert_int_eq(proto_decode(buf, PROTO_MAX_MSG + 1u, &A, &out, NULL, 0), CAIRN_E_PROTO);
}
END_TEST

/* Deterministic random mutation: flip bytes of valid messages; the decoder
 * must return 0 or an error and never crash (ASan checks the reads). */
START_TEST(survives_mutations)
{
	struct proto_msg m = sample_kv_reply(), out;
	uint8_t *buf;
	size_t len;
	uint32_t seed = 12345;

	encode(&m, &buf, &len);
	for (int round = 0; round < 20000; round++) {
		uint8_t *copy = malloc(len);
		int rc;

		memcpy(copy, buf, len);
		for (int k = 0; k < 3; k++) {
			seed = seed * 1103515245u + 12345u;
			copy[(seed >> 8) % len] = (uint8_t)(seed >> 16);
		}
		rc = proto_decode(copy, len, &A, &out, NULL, 0);
		ck_assert(rc == 0 || rc == CAIRN_E_PROTO || rc == CAIRN_E_VERSION);
		free(copy);
		arena_reset(&A);
	}
	free(buf);
}
END_TEST

START_TEST(descriptors_are_complete)
{
	size_t n, nr;
	const struct proto_msg_desc *d = proto_msg_descs(&n);
	const struct proto_record_desc *const *r = proto_record_descs(&nr);

	ck_assert_uint_ge(nr, 3); /* helpers append records */
	for (size_t i = 0; i < n; i++) {
		ck_assert_ptr_nonnull(d[i].body);
		ck_assert_ptr_eq(proto_msg_desc(d[i].type), &d[i]);
		ck_assert_str_eq(proto_type_name(d[i].type), d[i].upper);
		for (size_t f = 0; f < d[i].body->n_fields; f++)
			ck_assert_uint_gt(strlen(d[i].body->fields[f].doc), 0);
	}
	ck_assert_str_eq(proto_type_name((enum proto_type)424242), "UNKNOWN");
	ck_assert_ptr_nonnull(r[0]);
}
END_TEST

static Suite *proto_suite(void)
{
	Suite *s = suite_create("proto");
	TCase *tc = tcase_create("codec");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, roundtrip_kv_reply);
	tcase_add_test(tc, roundtrip_every_type);
	tcase_add_test(tc, roundtrip_map_and_i64);
	tcase_add_test(tc, rejects_every_truncation);
	tcase_add_test(tc, rejects_trailing_bytes);
	tcase_add_test(tc, rejects_wrong_types_and_counts);
	tcase_add_test(tc, rejects_version_and_unknown_type);
	tcase_add_test(tc, survives_mutations);
	tcase_add_test(tc, descriptors_are_complete);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(proto_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
