/*
 * sha1: SHA-1 through OpenSSL's EVP interface, one-shot and incremental.
 * Pure computation on caller memory; any thread may call it, and a
 * `struct sha1_stream` may move between threads as long as one uses it at a
 * time (the caller provides that exclusion: see picker.c).
 */
#ifndef PT_SHA1_H
#define PT_SHA1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHA1_LEN 20

/* Hashes len bytes into out. Returns false only if OpenSSL fails (no memory). */
bool sha1(const void *data, size_t len, uint8_t out[SHA1_LEN]);

/* Lowercase hex of a 20-byte hash into out (41 bytes with NUL). */
void sha1_hex(const uint8_t hash[SHA1_LEN], char out[2 * SHA1_LEN + 1]);

/* A running SHA-1 over bytes given in pieces, in order. */
struct sha1_stream;

/* A new stream, ready for its first bytes. NULL on no memory. The caller
 * frees it with sha1_stream_free (NULL is a no-op). */
struct sha1_stream *sha1_stream_new(void);
void sha1_stream_free(struct sha1_stream *s);

/* Adds len bytes. A failure inside OpenSSL is remembered and reported by
 * sha1_stream_final, so callers need not check every update. */
void sha1_stream_update(struct sha1_stream *s, const void *data, size_t len);

/* The digest of every byte given since sha1_stream_new. False if OpenSSL
 * failed at any step (out is then undefined). The stream may not be updated
 * afterwards, only freed. */
bool sha1_stream_final(struct sha1_stream *s, uint8_t out[SHA1_LEN]);

#endif
