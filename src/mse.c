/*
 * mse: see mse.h for the exchange. The answering side runs in the peer
 * thread that accepted the connection, before the BitTorrent handshake, with
 * one deadline for the whole exchange: a caller that trickles its padding a
 * byte at a time cannot hold the thread longer than that.
 */
#include "mse.h"

#include <openssl/bn.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#include "sha1.h"

/* The specification's 768-bit prime P; the generator is 2. */
static const char MSE_PRIME_HEX[] =
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E34"
    "04DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A3621000000"
    "0000090563";

#define MSE_DISCARD 1024 /* key-stream bytes dropped before use */
#define MSE_VC_LEN 8
#define MSE_HASH_MAX_INPUT (4 + MSE_KEY_LEN + 20)

void mse_rc4_init(struct mse_rc4 *k, const uint8_t *key, size_t len)
{
    for (int n = 0; n < 256; n++)
        k->s[n] = (uint8_t)n;
    uint8_t j = 0;
    for (int n = 0; n < 256; n++) {
        j = (uint8_t)(j + k->s[n] + key[n % len]);
        uint8_t t = k->s[n];
        k->s[n] = k->s[j];
        k->s[j] = t;
    }
    k->i = k->j = 0;
}

void mse_rc4_crypt(struct mse_rc4 *k, uint8_t *buf, size_t len)
{
    uint8_t i = k->i, j = k->j;
    for (size_t n = 0; n < len; n++) {
        i = (uint8_t)(i + 1);
        j = (uint8_t)(j + k->s[i]);
        uint8_t t = k->s[i];
        k->s[i] = k->s[j];
        k->s[j] = t;
        buf[n] ^= k->s[(uint8_t)(k->s[i] + k->s[j])];
    }
    k->i = i;
    k->j = j;
}

bool mse_hash(const char tag[4], const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
              uint8_t out[20])
{
    uint8_t in[MSE_HASH_MAX_INPUT];
    if (alen > sizeof in - 4 || blen > sizeof in - 4 - alen)
        return false;
    memcpy(in, tag, 4);
    memcpy(in + 4, a, alen);
    if (blen > 0)
        memcpy(in + 4 + alen, b, blen);
    return sha1(in, 4 + alen + blen, out);
}

bool mse_stream_init(struct mse_rc4 *k, const char tag[4], const uint8_t secret[MSE_KEY_LEN],
                     const uint8_t skey[20])
{
    uint8_t key[20];
    if (!mse_hash(tag, secret, MSE_KEY_LEN, skey, 20, key))
        return false;
    mse_rc4_init(k, key, sizeof key);
    uint8_t drop[MSE_DISCARD] = {0};
    mse_rc4_crypt(k, drop, sizeof drop);
    return true;
}

/* base^exp mod P into out (MSE_KEY_LEN bytes, zero-padded on the left).
 * With check_base, refuses a base outside [2, P-2]. */
static bool mod_exp(const uint8_t *base, size_t base_len, const uint8_t priv[MSE_PRIVATE_LEN],
                    bool check_base, uint8_t out[MSE_KEY_LEN])
{
    BN_CTX *ctx = BN_CTX_new();
    BIGNUM *p = NULL, *b = BN_bin2bn(base, (int)base_len, NULL);
    BIGNUM *x = BN_bin2bn(priv, MSE_PRIVATE_LEN, NULL), *r = BN_new(), *top = BN_new();
    bool ok = ctx && b && x && r && top && BN_hex2bn(&p, MSE_PRIME_HEX) > 0;
    if (ok && check_base) /* top = P - 2; the base must be in [2, top] */
        ok = BN_sub(top, p, BN_value_one()) && BN_sub(top, top, BN_value_one()) &&
             BN_cmp(b, BN_value_one()) > 0 && BN_cmp(b, top) <= 0;
    ok = ok && BN_mod_exp(r, b, x, p, ctx) && BN_bn2binpad(r, out, MSE_KEY_LEN) == MSE_KEY_LEN;
    BN_free(top);
    BN_clear_free(r);
    BN_clear_free(x);
    BN_free(b);
    BN_free(p);
    BN_CTX_free(ctx);
    return ok;
}

bool mse_dh_keypair(uint8_t priv_out[MSE_PRIVATE_LEN], uint8_t pub_out[MSE_KEY_LEN])
{
    static const uint8_t two = 2;
    return RAND_bytes(priv_out, MSE_PRIVATE_LEN) == 1 &&
           mod_exp(&two, 1, priv_out, false, pub_out);
}

bool mse_dh_secret(const uint8_t priv[MSE_PRIVATE_LEN], const uint8_t peer_pub[MSE_KEY_LEN],
                   uint8_t secret_out[MSE_KEY_LEN])
{
    return mod_exp(peer_pub, MSE_KEY_LEN, priv, true, secret_out);
}

/* ---- answering ------------------------------------------------------------- */

struct answer {
    struct net_reader *r;
    int64_t deadline_ms;
    const atomic_bool *stop;
    const char *why;
};

/* Reads exactly len bytes before the exchange's deadline. */
static enum pt_err take(struct answer *a, void *dst, size_t len)
{
    enum pt_err err = net_read_exact_by(a->r, dst, len, a->deadline_ms, a->stop);
    if (err == PT_ERR_TIMEOUT)
        a->why = "MSE handshake too slow";
    return err;
}

/* What is left of the deadline for a write (at least 1 ms: net_write_all
 * then tries once). */
static int left_ms(const struct answer *a)
{
    int64_t left = a->deadline_ms - net_now_ms();
    return left < 1 ? 1 : left < INT32_MAX ? (int)left : INT32_MAX;
}

static enum pt_err refuse(struct answer *a, const char *why)
{
    a->why = why;
    return PT_ERR_HANDSHAKE;
}

/* Reads Ya and sends Yb with a random PadB; fills the shared secret. */
static enum pt_err exchange_keys(struct answer *a, uint8_t secret[MSE_KEY_LEN])
{
    uint8_t ya[MSE_KEY_LEN], priv[MSE_PRIVATE_LEN], out[MSE_KEY_LEN + MSE_MAX_PAD];
    enum pt_err err = take(a, ya, sizeof ya);
    if (err != PT_OK)
        return err;
    uint16_t pad = 0;
    if (!mse_dh_keypair(priv, out) || RAND_bytes((uint8_t *)&pad, sizeof pad) != 1)
        return refuse(a, "MSE: no key pair (OpenSSL failed)");
    pad %= MSE_MAX_PAD + 1;
    if (RAND_bytes(out + MSE_KEY_LEN, MSE_MAX_PAD) != 1)
        return refuse(a, "MSE: no random padding (OpenSSL failed)");
    if (!mse_dh_secret(priv, ya, secret))
        return refuse(a, "MSE: the caller's public key is out of range");
    return net_write_all(a->r->fd, out, MSE_KEY_LEN + (size_t)pad, left_ms(a), a->stop);
}

/* Skips PadA: reads until HASH("req1", S) has gone by, at most PadA's limit
 * of bytes before it. */
static enum pt_err sync_on_req1(struct answer *a, const uint8_t secret[MSE_KEY_LEN])
{
    uint8_t req1[20], seen[MSE_MAX_PAD + 20];
    if (!mse_hash("req1", secret, MSE_KEY_LEN, NULL, 0, req1))
        return refuse(a, "MSE: SHA-1 failed");
    for (size_t n = 0; n < sizeof seen; n++) {
        enum pt_err err = take(a, &seen[n], 1);
        if (err != PT_OK)
            return err;
        if (n + 1 >= 20 && memcmp(seen + n + 1 - 20, req1, 20) == 0)
            return PT_OK;
    }
    return refuse(a, "MSE: no synchronisation hash within 532 bytes");
}

/* Checks HASH("req2", SKEY) xor HASH("req3", S): the caller wants our torrent. */
static enum pt_err check_torrent(struct answer *a, const uint8_t secret[MSE_KEY_LEN],
                                 const uint8_t info_hash[20])
{
    uint8_t got[20], req2[20], req3[20];
    enum pt_err err = take(a, got, sizeof got);
    if (err != PT_OK)
        return err;
    if (!mse_hash("req2", info_hash, 20, NULL, 0, req2) ||
        !mse_hash("req3", secret, MSE_KEY_LEN, NULL, 0, req3))
        return refuse(a, "MSE: SHA-1 failed");
    for (int n = 0; n < 20; n++)
        req2[n] ^= req3[n];
    return memcmp(got, req2, 20) == 0 ? PT_OK : refuse(a, "MSE: the caller wants another torrent");
}

/* Reads and decrypts len bytes of the caller's encrypted stream. */
static enum pt_err take_decrypted(struct answer *a, struct mse_rc4 *in, uint8_t *dst, size_t len)
{
    enum pt_err err = take(a, dst, len);
    if (err == PT_OK)
        mse_rc4_crypt(in, dst, len);
    return err;
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

/* Reads VC, crypto_provide, PadC and IA; puts the plain IA back in the
 * reader. Fills the methods the caller offers. */
static enum pt_err read_offer(struct answer *a, struct mse_rc4 *in, uint32_t *provide_out)
{
    static const uint8_t zero_vc[MSE_VC_LEN] = {0};
    uint8_t head[MSE_VC_LEN + 4 + 2], pad[MSE_MAX_PAD], ia_len[2];
    enum pt_err err = take_decrypted(a, in, head, sizeof head);
    if (err != PT_OK)
        return err;
    if (memcmp(head, zero_vc, MSE_VC_LEN) != 0)
        return refuse(a, "MSE: wrong verification constant");
    *provide_out = (uint32_t)head[8] << 24 | (uint32_t)head[9] << 16 | (uint32_t)head[10] << 8 |
                   head[11];
    uint16_t pad_len = get16(head + 12);
    if (pad_len > MSE_MAX_PAD)
        return refuse(a, "MSE: PadC longer than 512 bytes");
    err = take_decrypted(a, in, pad, pad_len);
    if (err == PT_OK)
        err = take_decrypted(a, in, ia_len, sizeof ia_len);
    if (err != PT_OK)
        return err;
    size_t n = get16(ia_len);
    if (n > MSE_MAX_IA)
        return refuse(a, "MSE: initial payload over 16 KiB");
    if (n == 0)
        return PT_OK;
    uint8_t *ia = malloc(n); /* once per connection, and off the small peer stack */
    if (!ia)
        return PT_ERR_NOMEM;
    err = take_decrypted(a, in, ia, n);
    struct iovec v = {ia, n};
    if (err == PT_OK && !net_reader_unread(a->r, &v, 1, 0, n))
        err = refuse(a, "MSE: initial payload does not fit in the reader");
    free(ia);
    return err;
}

/* Sends RC4_B(VC, crypto_select = plain text, len(PadD) = 0). */
static enum pt_err send_select(struct answer *a, struct mse_rc4 *out)
{
    uint8_t msg[MSE_VC_LEN + 4 + 2] = {0};
    msg[MSE_VC_LEN + 3] = MSE_CRYPTO_PLAIN;
    mse_rc4_crypt(out, msg, sizeof msg);
    return net_write_all(a->r->fd, msg, sizeof msg, left_ms(a), a->stop);
}

enum pt_err mse_accept(struct net_reader *r, const uint8_t info_hash[20], int64_t deadline_ms,
                       const atomic_bool *stop, const char **why_out)
{
    struct answer a = {r, deadline_ms, stop, NULL};
    uint8_t secret[MSE_KEY_LEN];
    struct mse_rc4 in, out;
    uint32_t provide = 0;
    enum pt_err err = exchange_keys(&a, secret);
    if (err == PT_OK)
        err = sync_on_req1(&a, secret);
    if (err == PT_OK)
        err = check_torrent(&a, secret, info_hash);
    if (err == PT_OK && (!mse_stream_init(&in, "keyA", secret, info_hash) ||
                         !mse_stream_init(&out, "keyB", secret, info_hash)))
        err = refuse(&a, "MSE: SHA-1 failed");
    if (err == PT_OK)
        err = read_offer(&a, &in, &provide);
    if (err == PT_OK && !(provide & MSE_CRYPTO_PLAIN))
        err = refuse(&a, "MSE: the caller wants RC4 for the payload, which ptorrent does not do");
    if (err == PT_OK)
        err = send_select(&a, &out);
    if (why_out)
        *why_out = a.why;
    return err;
}
