/* Gossip encryption keyring; see keyring.h. */
#include "keyring.h"

#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <string.h>

#define SEAL_VERSION 1
#define NONCE_LEN 12
#define TAG_LEN 16

void keyring_init(struct keyring *k) { memset(k, 0, sizeof(*k)); }

bool keyring_enabled(const struct keyring *k) { return k->n > 0; }

int keyring_key_decode(const char *b64, uint8_t out[KEYRING_KEY_LEN])
{
	gnutls_datum_t in = {(unsigned char *)b64, (unsigned)strlen(b64)};
	gnutls_datum_t dec = {NULL, 0};
	int rc = -EINVAL;

	if (gnutls_base64_decode2(&in, &dec) < 0)
		return -EINVAL;
	if (dec.size == KEYRING_KEY_LEN) {
		memcpy(out, dec.data, KEYRING_KEY_LEN);
		rc = 0;
	}
	gnutls_free(dec.data);
	return rc;
}

static long find(const struct keyring *k, const uint8_t key[KEYRING_KEY_LEN])
{
	for (size_t i = 0; i < k->n; i++)
		if (memcmp(k->keys[i], key, KEYRING_KEY_LEN) == 0)
			return (long)i;
	return -1;
}

int keyring_add(struct keyring *k, const uint8_t key[KEYRING_KEY_LEN])
{
	if (find(k, key) >= 0)
		return -EEXIST;
	if (k->n == KEYRING_MAX)
		return -ENOSPC;
	memcpy(k->keys[k->n++], key, KEYRING_KEY_LEN);
	return 0;
}

int keyring_use(struct keyring *k, const uint8_t key[KEYRING_KEY_LEN])
{
	long i = find(k, key);
	uint8_t tmp[KEYRING_KEY_LEN];

	if (i < 0)
		return -ENOENT;
	memcpy(tmp, k->keys[0], KEYRING_KEY_LEN);
	memcpy(k->keys[0], k->keys[i], KEYRING_KEY_LEN);
	memcpy(k->keys[i], tmp, KEYRING_KEY_LEN);
	return 0;
}

int keyring_remove(struct keyring *k, const uint8_t key[KEYRING_KEY_LEN])
{
	long i = find(k, key);

	if (i < 0)
		return -ENOENT;
	if (i == 0)
		return -EBUSY;
	memmove(k->keys[i], k->keys[i + 1], (k->n - (size_t)i - 1) * KEYRING_KEY_LEN);
	k->n--;
	return 0;
}

int keyring_seal(const struct keyring *k, const uint8_t *in, size_t len, uint8_t *out,
		 size_t *out_len)
{
	gnutls_aead_cipher_hd_t h;
	gnutls_datum_t key = {(unsigned char *)k->keys[0], KEYRING_KEY_LEN};
	size_t ct_len = len + TAG_LEN;
	int rc;

	if (k->n == 0) {
		memcpy(out, in, len);
		*out_len = len;
		return 0;
	}
	out[0] = SEAL_VERSION;
	if (gnutls_rnd(GNUTLS_RND_NONCE, out + 1, NONCE_LEN) < 0)
		return -EIO;
	if (gnutls_aead_cipher_init(&h, GNUTLS_CIPHER_AES_256_GCM, &key) < 0)
		return -EIO;
	rc = gnutls_aead_cipher_encrypt(h, out + 1, NONCE_LEN, NULL, 0, TAG_LEN, in, len,
					out + 1 + NONCE_LEN, &ct_len);
	gnutls_aead_cipher_deinit(h);
	if (rc < 0)
		return -EIO;
	*out_len = 1 + NONCE_LEN + ct_len;
	return 0;
}

int keyring_open(struct keyring *k, const uint8_t *in, size_t len, uint8_t *out, size_t *out_len)
{
	if (k->n == 0) {
		memcpy(out, in, len);
		*out_len = len;
		return 0;
	}
	if (len < KEYRING_OVERHEAD || in[0] != SEAL_VERSION)
		goto bad;
	for (size_t i = 0; i < k->n; i++) {
		gnutls_aead_cipher_hd_t h;
		gnutls_datum_t key = {k->keys[i], KEYRING_KEY_LEN};
		size_t pt_len = len;
		int rc;

		if (gnutls_aead_cipher_init(&h, GNUTLS_CIPHER_AES_256_GCM, &key) < 0)
			return -EIO;
		rc = gnutls_aead_cipher_decrypt(h, in + 1, NONCE_LEN, NULL, 0, TAG_LEN,
						in + 1 + NONCE_LEN, len - 1 - NONCE_LEN, out,
						&pt_len);
		gnutls_aead_cipher_deinit(h);
		if (rc >= 0) {
			*out_len = pt_len;
			return 0;
		}
	}
bad:
	k->decrypt_failures++;
	return -EBADMSG;
}
