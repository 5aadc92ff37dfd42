/* The gossip encryption keyring: AES-256-GCM (GnuTLS) over every datagram
 * and stream message, with memberlist's layout.
 *
 * Sealed message: [version 1][nonce, 12 bytes][ciphertext][tag, 16 bytes].
 * The first key is the primary one (used to encrypt); every key is tried
 * to decrypt, so a new key can be installed everywhere, then made primary,
 * then the old one removed, without a moment when two members cannot talk
 * (Consul's keyring rotation). An empty keyring passes bytes through. */
#ifndef CAIRN_KEYRING_H
#define CAIRN_KEYRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KEYRING_KEY_LEN 32
#define KEYRING_OVERHEAD (1 + 12 + 16)
#define KEYRING_MAX 16

struct keyring {
	uint8_t keys[KEYRING_MAX][KEYRING_KEY_LEN]; /* keys[0] is the primary */
	size_t n;
	uint64_t decrypt_failures; /* messages dropped: no key authenticates them */
};

/* Empty keyring (no encryption). */
void keyring_init(struct keyring *k);
/* Decodes a base64 key (Consul's `encrypt` value: 32 bytes, as `cairn
 * keygen` prints) into out. Returns 0 or -EINVAL. */
int keyring_key_decode(const char *b64, uint8_t out[KEYRING_KEY_LEN]);
/* Adds a key (primary if first). Returns 0, -EEXIST or -ENOSPC. */
int keyring_add(struct keyring *k, const uint8_t key[KEYRING_KEY_LEN]);
/* Makes an installed key primary; 0 or -ENOENT. */
int keyring_use(struct keyring *k, const uint8_t key[KEYRING_KEY_LEN]);
/* Removes a key that is not primary; 0, -ENOENT or -EBUSY (primary). */
int keyring_remove(struct keyring *k, const uint8_t key[KEYRING_KEY_LEN]);
bool keyring_enabled(const struct keyring *k);

/* Seals in (len bytes) into out (room for len + KEYRING_OVERHEAD) with the
 * primary key and a random nonce; *out_len gets the sealed size. Without
 * keys, copies. Returns 0 or -EIO. */
int keyring_seal(const struct keyring *k, const uint8_t *in, size_t len, uint8_t *out,
		 size_t *out_len);
/* Opens a sealed message into out (room for len bytes); counts and
 * returns -EBADMSG when no key authenticates it (then out is garbage and
 * must not be used). Without keys, copies. */
int keyring_open(struct keyring *k, const uint8_t *in, size_t len, uint8_t *out, size_t *out_len);

#endif
