#include "sha1.h"

#include <stdlib.h>

#include <openssl/evp.h>

bool sha1(const void *data, size_t len, uint8_t out[SHA1_LEN])
{
    unsigned int n = 0;
    /* EVP_Digest keeps the context on its own stack frame: no allocation to leak. */
    return EVP_Digest(data, len, out, &n, EVP_sha1(), NULL) == 1 && n == SHA1_LEN;
}

void sha1_hex(const uint8_t hash[SHA1_LEN], char out[2 * SHA1_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < SHA1_LEN; i++) {
        out[2 * i] = digits[hash[i] >> 4];
        out[2 * i + 1] = digits[hash[i] & 15];
    }
    out[2 * SHA1_LEN] = '\0';
}

struct sha1_stream {
    EVP_MD_CTX *ctx;
    bool failed; /* an OpenSSL call failed: the digest would be wrong */
};

struct sha1_stream *sha1_stream_new(void)
{
    struct sha1_stream *s = malloc(sizeof *s);
    if (!s)
        return NULL;
    s->ctx = EVP_MD_CTX_new();
    if (!s->ctx || EVP_DigestInit_ex(s->ctx, EVP_sha1(), NULL) != 1) {
        sha1_stream_free(s);
        return NULL;
    }
    s->failed = false;
    return s;
}

void sha1_stream_free(struct sha1_stream *s)
{
    if (!s)
        return;
    EVP_MD_CTX_free(s->ctx);
    free(s);
}

void sha1_stream_update(struct sha1_stream *s, const void *data, size_t len)
{
    if (!s->failed && EVP_DigestUpdate(s->ctx, data, len) != 1)
        s->failed = true;
}

bool sha1_stream_final(struct sha1_stream *s, uint8_t out[SHA1_LEN])
{
    unsigned int n = 0;
    if (s->failed || EVP_DigestFinal_ex(s->ctx, out, &n) != 1 || n != SHA1_LEN)
        s->failed = true;
    return !s->failed;
}
