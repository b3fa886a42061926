#include "sha1.h"

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
