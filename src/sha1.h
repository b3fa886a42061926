/*
 * sha1: SHA-1 through OpenSSL's EVP interface, one-shot and incremental.
 * Pure computation on caller memory; any thread may call it.
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

#endif
