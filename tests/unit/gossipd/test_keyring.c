/* Unit tests: the gossip keyring (gossipd/keyring.c): base64 keys, seal
 * and open with AES-256-GCM, wrong keys and tampering dropped and counted,
 * rotation (install, use, remove). */
#include <check.h>
#include <errno.h>
#include <string.h>

#include "keyring.h"

Suite *keyring_suite(void);

/* 32 bytes 0x00..0x1f and 32 bytes 0x20..0x3f, base64 */
static const char *k1_b64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
static const char *k2_b64 = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

START_TEST(test_key_decode)
{
	uint8_t k[KEYRING_KEY_LEN];

	ck_assert_int_eq(keyring_key_decode(k1_b64, k), 0);
	ck_assert_uint_eq(k[0], 0);
	ck_assert_uint_eq(k[31], 31);
	ck_assert_int_eq(keyring_key_decode("AAEC", k), -EINVAL); /* 3 bytes */
	ck_assert_int_eq(keyring_key_decode("not base64!", k), -EINVAL);
}
END_TEST

START_TEST(test_seal_open_and_wrong_key)
{
	struct keyring a, b, none;
	uint8_t k1[32], k2[32], sealed[128], out[128];
	size_t slen, olen;
	const char *msg = "ping";

	keyring_init(&a);
	keyring_init(&b);
	keyring_init(&none);
	ck_assert_int_eq(keyring_key_decode(k1_b64, k1), 0);
	ck_assert_int_eq(keyring_key_decode(k2_b64, k2), 0);
	ck_assert_int_eq(keyring_add(&a, k1), 0);
	ck_assert_int_eq(keyring_add(&a, k1), -EEXIST);
	ck_assert_int_eq(keyring_add(&b, k2), 0);

	ck_assert_int_eq(keyring_seal(&a, (const uint8_t *)msg, 4, sealed, &slen), 0);
	ck_assert_uint_eq(slen, 4 + KEYRING_OVERHEAD);
	ck_assert_uint_eq(sealed[0], 1);
	ck_assert(memcmp(sealed + 13, msg, 4) != 0); /* not in clear */
	ck_assert_int_eq(keyring_open(&a, sealed, slen, out, &olen), 0);
	ck_assert_uint_eq(olen, 4);
	ck_assert_mem_eq(out, msg, 4);

	/* another key, tampering, truncation: dropped and counted */
	ck_assert_int_eq(keyring_open(&b, sealed, slen, out, &olen), -EBADMSG);
	ck_assert_uint_eq(b.decrypt_failures, 1);
	sealed[slen - 1] ^= 1;
	ck_assert_int_eq(keyring_open(&a, sealed, slen, out, &olen), -EBADMSG);
	ck_assert_int_eq(keyring_open(&a, sealed, 10, out, &olen), -EBADMSG);
	ck_assert_uint_eq(a.decrypt_failures, 2);

	/* no keys: bytes pass through */
	ck_assert(!keyring_enabled(&none));
	ck_assert_int_eq(keyring_seal(&none, (const uint8_t *)msg, 4, sealed, &slen), 0);
	ck_assert_uint_eq(slen, 4);
	ck_assert_mem_eq(sealed, msg, 4);
}
END_TEST

START_TEST(test_rotation)
{
	struct keyring old, mid;
	uint8_t k1[32], k2[32], sealed[64], out[64];
	size_t slen, olen;

	keyring_init(&old);
	keyring_init(&mid);
	ck_assert_int_eq(keyring_key_decode(k1_b64, k1), 0);
	ck_assert_int_eq(keyring_key_decode(k2_b64, k2), 0);
	ck_assert_int_eq(keyring_add(&old, k1), 0);
	ck_assert_int_eq(keyring_add(&mid, k1), 0);
	/* install k2 on mid: it still writes k1, reads both */
	ck_assert_int_eq(keyring_add(&mid, k2), 0);
	ck_assert_int_eq(keyring_seal(&mid, (const uint8_t *)"x", 1, sealed, &slen), 0);
	ck_assert_int_eq(keyring_open(&old, sealed, slen, out, &olen), 0);
	/* use k2: old cannot read mid any more, mid still reads old */
	ck_assert_int_eq(keyring_use(&mid, k2), 0);
	ck_assert_int_eq(keyring_seal(&mid, (const uint8_t *)"x", 1, sealed, &slen), 0);
	ck_assert_int_eq(keyring_open(&old, sealed, slen, out, &olen), -EBADMSG);
	ck_assert_int_eq(keyring_seal(&old, (const uint8_t *)"y", 1, sealed, &slen), 0);
	ck_assert_int_eq(keyring_open(&mid, sealed, slen, out, &olen), 0);
	/* the primary cannot be removed; the old one can */
	ck_assert_int_eq(keyring_remove(&mid, k2), -EBUSY);
	ck_assert_int_eq(keyring_remove(&mid, k1), 0);
	ck_assert_int_eq(keyring_remove(&mid, k1), -ENOENT);
	ck_assert_int_eq(keyring_open(&mid, sealed, slen, out, &olen), -EBADMSG);
}
END_TEST

Suite *keyring_suite(void)
{
	Suite *s = suite_create("keyring");
	TCase *tc = tcase_create("keyring");

	tcase_add_test(tc, test_key_decode);
	tcase_add_test(tc, test_seal_open_and_wrong_key);
	tcase_add_test(tc, test_rotation);
	suite_add_tcase(s, tc);
	return s;
}
