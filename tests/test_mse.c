/*
 * Tests for Message Stream Encryption, through mse.h (plus net.h and sha1.h
 * for the plumbing): RC4 against the textbook vectors, the direction streams
 * (RC4 keyed with HASH(tag, S, SKEY), 1024 bytes dropped), Diffie-Hellman
 * agreement and the range check on the peer's key, HASH() against SHA-1 of
 * the concatenation, and mse_accept end to end over socketpair(AF_UNIX).
 *
 * In the end-to-end tests a caller thread plays side A with the module's own
 * primitives, following the exchange in mse.h: Ya + PadA; Yb (then PadB,
 * whose length A cannot know); req1, req2 xor req3, RC4_A(VC, provide,
 * len(PadC), PadC, len(IA)), RC4_A(IA), then plain payload; and it finds B's
 * RC4_B(VC, select, len(PadD)) by trying every offset after Yb. The main
 * thread answers with mse_accept. Hostile callers: another torrent, garbage
 * instead of req1, RC4 only, over-long PadC or IA, a bad VC or Ya, a silent
 * caller, one that trickles, one that hangs up, and a stop flag already set.
 *
 * Every wait is bounded: the caller reads with SO_RCVTIMEO slices and a
 * budget, the main thread shuts its end down before joining, and the slowest
 * test (the silent caller) waits one I/O slice.
 */
#include <CUnit/CUnit.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mse.h"
#include "net.h"
#include "sha1.h"
#include "support.h"

#define VC_LEN 8
#define SELECT_LEN (VC_LEN + 4 + 2) /* B's reply: VC, crypto_select, len(PadD) */
#define HANDSHAKE_LEN 68            /* a BitTorrent handshake, the usual IA */
#define GARBAGE_LEN 600             /* more than PadA's 512 + req1's 20 */
#define ACCEPT_BUDGET_MS 2000       /* mse_accept's budget where no timeout is wanted */
#define CALLER_WAIT_MS 2500         /* the caller's read budget; B hangs up well before */

/* The specification's 768-bit prime, as mse.c has it. */
static const char PRIME_HEX[] =
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E34"
    "04DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A3621000000"
    "0000090563";

/* The torrent B answers for; A uses another one in one test. */
static const uint8_t TORRENT[20] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa,
                                    0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x01, 0x02, 0x03, 0x04, 0x05};
static const uint8_t OTHER_TORRENT[20] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                          0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee,
                                          0xff, 0x01, 0x02, 0x03, 0x04, 0x06};

/* ---- helpers ---- */

/* Deterministic noise for pads and garbage (xorshift32; seed non-zero). */
static void fill_noise(uint8_t *p, size_t len, uint32_t seed)
{
    uint32_t x = seed ? seed : 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
}

static void hex_to_bytes(const char *hex, uint8_t *out, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned v = 0;
        CU_ASSERT_EQUAL_FATAL(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
}

/* A 96-byte big-endian number holding the small value v. */
static void small_key(uint8_t out[MSE_KEY_LEN], uint8_t v)
{
    memset(out, 0, MSE_KEY_LEN);
    out[MSE_KEY_LEN - 1] = v;
}

/* P minus d (d small; P's last byte is 0x63, so no borrow). */
static void prime_minus(uint8_t out[MSE_KEY_LEN], uint8_t d)
{
    hex_to_bytes(PRIME_HEX, out, MSE_KEY_LEN);
    CU_ASSERT_FATAL(out[MSE_KEY_LEN - 1] >= d);
    out[MSE_KEY_LEN - 1] = (uint8_t)(out[MSE_KEY_LEN - 1] - d);
}

/* "\x13BitTorrent protocol", 8 reserved bytes, the info hash, a peer id. */
static void fake_handshake(uint8_t out[HANDSHAKE_LEN], const uint8_t info_hash[20])
{
    out[0] = 19;
    memcpy(out + 1, "BitTorrent protocol", 19);
    memset(out + 20, 0, 8);
    memcpy(out + 28, info_hash, 20);
    memcpy(out + 48, "-PT0001-testtesttest", 20);
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    put16(p + 2, (uint16_t)v);
}

/* ---- the caller (side A) ---- */

enum caller_script {
    CALLER_FULL,    /* the whole exchange, then looks for B's reply */
    CALLER_GARBAGE, /* Ya, then GARBAGE_LEN bytes of noise and never req1 */
    CALLER_SILENT,  /* Ya, then nothing; keeps the socket open until B hangs up */
    CALLER_HANG_UP, /* Ya, then close() */
};

struct caller {
    /* Set before the thread starts. */
    enum caller_script script;
    int fd;
    size_t pad_a_len, pad_c_len; /* bytes; pad_c_len goes in len(PadC) as is */
    uint32_t provide;            /* crypto_provide */
    uint8_t vc[VC_LEN];          /* eight zero bytes unless a test spoils them */
    uint8_t info_hash[20];       /* SKEY as A believes it, for the keys */
    uint8_t req2_hash[20];       /* SKEY in req2: info_hash unless a test splits them */
    const uint8_t *ia;           /* IA, sent encrypted; ia_len goes in len(IA) */
    size_t ia_len;
    const uint8_t *after; /* sent in plain right after IA */
    size_t after_len;
    long trickle_ms; /* if > 0, from req1's byte trickle_from on, one byte per trickle_ms */
    size_t trickle_from;
    /* Results, read by the main thread after the join. */
    bool closed;  /* the thread closed fd itself */
    bool replied; /* B's RC4_B(VC ...) was found after PadB */
    uint32_t select;
    uint16_t pad_d_len;
    pthread_t thread;
};

static bool caller_send(struct caller *c, const void *p, size_t len)
{
    return net_write_all(c->fd, p, len, CALLER_WAIT_MS, NULL) == PT_OK;
}

/* Sends Ya and PadA; keeps the private key for the secret. */
static bool caller_send_ya(struct caller *c, uint8_t priv[MSE_PRIVATE_LEN])
{
    uint8_t out[MSE_KEY_LEN + MSE_MAX_PAD];
    if (c->pad_a_len > MSE_MAX_PAD || !mse_dh_keypair(priv, out))
        return false;
    fill_noise(out + MSE_KEY_LEN, c->pad_a_len, 0xa5a5u);
    return caller_send(c, out, MSE_KEY_LEN + c->pad_a_len);
}

/* Sends req1, req2 xor req3, then RC4_A(VC, crypto_provide, len(PadC), PadC,
 * len(IA)) and RC4_A(IA) with one continuous keyA stream, then the plain
 * bytes. */
static bool caller_send_offer(struct caller *c, const uint8_t secret[MSE_KEY_LEN])
{
    size_t head = 20 + 20, offer = VC_LEN + 4 + 2 + c->pad_c_len + 2;
    size_t total = head + offer + c->ia_len + c->after_len;
    uint8_t *msg = malloc(total), req3[20];
    struct mse_rc4 key_a;
    bool ok = msg && mse_hash("req1", secret, MSE_KEY_LEN, NULL, 0, msg) &&
              mse_hash("req2", c->req2_hash, 20, NULL, 0, msg + 20) &&
              mse_hash("req3", secret, MSE_KEY_LEN, NULL, 0, req3) &&
              mse_stream_init(&key_a, "keyA", secret, c->info_hash);
    if (ok) {
        for (int n = 0; n < 20; n++)
            msg[20 + n] ^= req3[n];
        uint8_t *p = msg + head;
        memcpy(p, c->vc, VC_LEN);
        put32(p + VC_LEN, c->provide);
        put16(p + VC_LEN + 4, (uint16_t)c->pad_c_len);
        fill_noise(p + VC_LEN + 6, c->pad_c_len, 0x5a5au);
        put16(p + VC_LEN + 6 + c->pad_c_len, (uint16_t)c->ia_len);
        if (c->ia_len > 0)
            memcpy(p + offer, c->ia, c->ia_len);
        if (c->after_len > 0)
            memcpy(p + offer + c->ia_len, c->after, c->after_len);
        mse_rc4_crypt(&key_a, p, offer);             /* RC4_A(VC ... len(IA)) */
        mse_rc4_crypt(&key_a, p + offer, c->ia_len); /* RC4_A(IA), the same stream on */
        ok = caller_send(c, msg, c->trickle_ms > 0 ? c->trickle_from : total);
        for (size_t n = c->trickle_from; ok && c->trickle_ms > 0 && n < total; n++) {
            sleep_ms(c->trickle_ms);
            ok = caller_send(c, msg + n, 1);
        }
    }
    free(msg);
    return ok;
}

/* After Yb come PadB (0..512 random bytes) and RC4_B(VC, crypto_select,
 * len(PadD)). A cannot know PadB's length, so it tries each offset: the one
 * where a fresh keyB stream turns 8 bytes into VC is where the reply starts. */
static bool caller_read_select(struct caller *c, struct net_reader *rd,
                               const uint8_t secret[MSE_KEY_LEN])
{
    static const uint8_t zero_vc[VC_LEN] = {0};
    uint8_t in[MSE_MAX_PAD + SELECT_LEN];
    size_t have = 0;
    struct mse_rc4 fresh_b;
    if (!mse_stream_init(&fresh_b, "keyB", secret, c->info_hash))
        return false;
    for (size_t off = 0; off <= MSE_MAX_PAD; off++) {
        for (; have < off + VC_LEN; have++)
            if (net_read_exact(rd, in + have, 1, CALLER_WAIT_MS, NULL) != PT_OK)
                return false;
        uint8_t reply[SELECT_LEN];
        memcpy(reply, in + off, VC_LEN);
        struct mse_rc4 k = fresh_b; /* plain data: a copy is a fresh stream */
        mse_rc4_crypt(&k, reply, VC_LEN);
        if (memcmp(reply, zero_vc, VC_LEN) != 0)
            continue;
        for (; have < off + SELECT_LEN; have++)
            if (net_read_exact(rd, in + have, 1, CALLER_WAIT_MS, NULL) != PT_OK)
                return false;
        memcpy(reply + VC_LEN, in + off + VC_LEN, SELECT_LEN - VC_LEN);
        mse_rc4_crypt(&k, reply + VC_LEN, SELECT_LEN - VC_LEN);
        c->select = (uint32_t)reply[8] << 24 | (uint32_t)reply[9] << 16 | (uint32_t)reply[10] << 8 |
                    reply[11];
        c->pad_d_len = (uint16_t)(reply[12] << 8 | reply[13]);
        c->replied = true;
        return true;
    }
    return false;
}

/* Reads whatever B sends until B hangs up (or CALLER_WAIT_MS of silence). */
static void caller_drain(struct net_reader *rd)
{
    uint8_t byte;
    while (net_read_exact(rd, &byte, 1, CALLER_WAIT_MS, NULL) == PT_OK)
        continue;
}

static void *caller_thread_main(void *arg)
{
    struct caller *c = arg;
    uint8_t priv[MSE_PRIVATE_LEN], yb[MSE_KEY_LEN], secret[MSE_KEY_LEN];
    uint8_t garbage[GARBAGE_LEN];
    struct net_reader *rd = malloc(sizeof *rd); /* 64 KiB: off the thread's stack */
    if (!rd || !caller_send_ya(c, priv))
        goto out;
    net_reader_init(rd, c->fd);
    switch (c->script) {
    case CALLER_FULL:
        if (net_read_exact(rd, yb, sizeof yb, CALLER_WAIT_MS, NULL) == PT_OK &&
            mse_dh_secret(priv, yb, secret) && caller_send_offer(c, secret))
            caller_read_select(c, rd, secret);
        break;
    case CALLER_GARBAGE:
        fill_noise(garbage, sizeof garbage, 0x1234u);
        if (caller_send(c, garbage, sizeof garbage))
            caller_drain(rd);
        break;
    case CALLER_SILENT:
        caller_drain(rd);
        break;
    case CALLER_HANG_UP:
        close(c->fd);
        c->closed = true;
        break;
    }
out:
    free(rd);
    return NULL;
}

/* ---- one exchange: a caller thread against mse_accept ---- */

struct exchange {
    int fds[2]; /* [0] B's end (mse_accept), [1] the caller's */
    struct net_reader *r;
    struct caller c;
    const char *why;
    int64_t took_ms; /* how long mse_accept took */
};

/* A well-behaved caller for TORRENT offering plain text and RC4, with a
 * BitTorrent handshake as IA; tests change what they need before the run. */
static void exchange_init(struct exchange *x, enum caller_script script, const uint8_t *ia,
                          size_t ia_len)
{
    memset(x, 0, sizeof *x);
    x->c.script = script;
    x->c.provide = MSE_CRYPTO_PLAIN | MSE_CRYPTO_RC4;
    memcpy(x->c.info_hash, TORRENT, 20);
    memcpy(x->c.req2_hash, TORRENT, 20);
    x->c.ia = ia;
    x->c.ia_len = ia_len;
}

/* Starts the caller and answers it with mse_accept for TORRENT. */
static enum pt_err exchange_run(struct exchange *x, int budget_ms, const atomic_bool *stop)
{
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, x->fds), 0);
    net_tune(x->fds[0]);
    net_tune(x->fds[1]);
    x->r = malloc(sizeof *x->r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x->r);
    net_reader_init(x->r, x->fds[0]);
    x->c.fd = x->fds[1];
    CU_ASSERT_EQUAL_FATAL(pthread_create(&x->c.thread, NULL, caller_thread_main, &x->c), 0);
    int64_t t0 = now_ms();
    enum pt_err err = mse_accept(x->r, TORRENT, net_now_ms() + budget_ms, stop, &x->why);
    x->took_ms = now_ms() - t0;
    return err;
}

/* Hangs up B's end (so a caller still waiting sees EOF), joins, closes. */
static void exchange_finish(struct exchange *x)
{
    shutdown(x->fds[0], SHUT_RDWR);
    pthread_join(x->c.thread, NULL);
    free(x->r);
    close(x->fds[0]);
    if (!x->c.closed)
        close(x->fds[1]);
}

/* Runs an exchange that mse_accept must refuse as a bad handshake, promptly
 * and without ever sending its selection. */
static void check_refused(struct exchange *x)
{
    CU_ASSERT_EQUAL(exchange_run(x, ACCEPT_BUDGET_MS, NULL), PT_ERR_HANDSHAKE);
    CU_ASSERT_PTR_NOT_NULL(x->why);
    CU_ASSERT_TRUE(x->took_ms < ACCEPT_BUDGET_MS / 2);
    exchange_finish(x);
    CU_ASSERT_FALSE(x->c.replied);
}

/* A full exchange that mse_accept must accept: A is told plain text with no
 * PadD, and the reader then yields IA followed by the plain bytes. */
static void check_accepted(struct exchange *x)
{
    CU_ASSERT_EQUAL(exchange_run(x, ACCEPT_BUDGET_MS, NULL), PT_OK);
    size_t len = x->c.ia_len + x->c.after_len;
    uint8_t *got = malloc(len), *want = malloc(len);
    CU_ASSERT_FATAL(got && want);
    if (x->c.ia_len > 0)
        memcpy(want, x->c.ia, x->c.ia_len);
    if (x->c.after_len > 0)
        memcpy(want + x->c.ia_len, x->c.after, x->c.after_len);
    CU_ASSERT_EQUAL(net_read_exact(x->r, got, len, 1000, NULL), PT_OK);
    CU_ASSERT_EQUAL(memcmp(got, want, len), 0);
    CU_ASSERT_EQUAL(net_reader_buffered(x->r), 0); /* and nothing more */
    exchange_finish(x);
    CU_ASSERT_TRUE(x->c.replied);
    CU_ASSERT_EQUAL(x->c.select, MSE_CRYPTO_PLAIN);
    CU_ASSERT_EQUAL(x->c.pad_d_len, 0);
    free(got);
    free(want);
}

/* ---- RC4 ---- */

static void check_rc4(const char *key, const char *plain, const uint8_t *want)
{
    uint8_t buf[32];
    size_t len = strlen(plain);
    CU_ASSERT_FATAL(len <= sizeof buf);
    memcpy(buf, plain, len);
    struct mse_rc4 k;
    mse_rc4_init(&k, (const uint8_t *)key, strlen(key));
    mse_rc4_crypt(&k, buf, len);
    CU_ASSERT_EQUAL(memcmp(buf, want, len), 0);
}

static void test_mse_rc4_matches_textbook_vectors(void)
{
    static const uint8_t key[] = {0xBB, 0xF3, 0x16, 0xE8, 0xD9, 0x40, 0xAF, 0x0A, 0xD3};
    static const uint8_t wiki[] = {0x10, 0x21, 0xBF, 0x04, 0x20};
    static const uint8_t secret[] = {0x45, 0xA0, 0x1F, 0x64, 0x5F, 0xC3, 0x5B,
                                     0x38, 0x35, 0x52, 0x54, 0x4B, 0x9B, 0xF5};
    check_rc4("Key", "Plaintext", key);
    check_rc4("Wiki", "pedia", wiki);
    check_rc4("Secret", "Attack at dawn", secret);
}

/* The stream continues across calls, and the same key decrypts. */
static void test_mse_rc4_twice_gives_back_plaintext(void)
{
    static const char plain[] = "Attack at dawn, and again at dusk";
    size_t len = sizeof plain - 1;
    uint8_t buf[sizeof plain];
    memcpy(buf, plain, sizeof plain);
    struct mse_rc4 k;
    mse_rc4_init(&k, (const uint8_t *)"Secret", 6);
    mse_rc4_crypt(&k, buf, 5);
    mse_rc4_crypt(&k, buf + 5, len - 5);
    CU_ASSERT_NOT_EQUAL(memcmp(buf, plain, len), 0);
    mse_rc4_init(&k, (const uint8_t *)"Secret", 6);
    mse_rc4_crypt(&k, buf, len);
    CU_ASSERT_EQUAL(memcmp(buf, plain, len), 0);
}

/* A direction's stream is RC4 keyed with SHA-1(tag, S, SKEY), the first 1024
 * bytes dropped: both ends of a real connection must agree on this, which an
 * exchange between two copies of this module cannot show. */
static void test_mse_stream_is_rc4_of_hash_with_1024_dropped(void)
{
    uint8_t secret[MSE_KEY_LEN], in[4 + MSE_KEY_LEN + 20], key[20];
    fill_noise(secret, sizeof secret, 77);
    memcpy(in, "keyA", 4);
    memcpy(in + 4, secret, MSE_KEY_LEN);
    memcpy(in + 4 + MSE_KEY_LEN, TORRENT, 20);
    CU_ASSERT_TRUE_FATAL(sha1(in, sizeof in, key));
    struct mse_rc4 want, got;
    mse_rc4_init(&want, key, sizeof key);
    uint8_t drop[1024] = {0}, a[64] = {0}, b[64] = {0};
    mse_rc4_crypt(&want, drop, sizeof drop);
    mse_rc4_crypt(&want, a, sizeof a);
    CU_ASSERT_TRUE_FATAL(mse_stream_init(&got, "keyA", secret, TORRENT));
    mse_rc4_crypt(&got, b, sizeof b);
    CU_ASSERT_EQUAL(memcmp(a, b, sizeof a), 0);
    /* keyB is another stream. */
    memset(b, 0, sizeof b);
    CU_ASSERT_TRUE_FATAL(mse_stream_init(&got, "keyB", secret, TORRENT));
    mse_rc4_crypt(&got, b, sizeof b);
    CU_ASSERT_NOT_EQUAL(memcmp(a, b, sizeof a), 0);
}

/* ---- Diffie-Hellman ---- */

static void test_mse_dh_both_sides_agree(void)
{
    uint8_t priv_a[MSE_PRIVATE_LEN], pub_a[MSE_KEY_LEN], priv_b[MSE_PRIVATE_LEN],
        pub_b[MSE_KEY_LEN], s_a[MSE_KEY_LEN], s_b[MSE_KEY_LEN], p[MSE_KEY_LEN];
    CU_ASSERT_TRUE_FATAL(mse_dh_keypair(priv_a, pub_a));
    CU_ASSERT_TRUE_FATAL(mse_dh_keypair(priv_b, pub_b));
    CU_ASSERT_NOT_EQUAL(memcmp(priv_a, priv_b, MSE_PRIVATE_LEN), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(pub_a, pub_b, MSE_KEY_LEN), 0);
    prime_minus(p, 0);
    CU_ASSERT_TRUE(memcmp(pub_a, p, MSE_KEY_LEN) < 0); /* reduced mod P */
    CU_ASSERT_TRUE_FATAL(mse_dh_secret(priv_a, pub_b, s_a));
    CU_ASSERT_TRUE_FATAL(mse_dh_secret(priv_b, pub_a, s_b));
    CU_ASSERT_EQUAL(memcmp(s_a, s_b, MSE_KEY_LEN), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(s_a, pub_a, MSE_KEY_LEN), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(s_a, pub_b, MSE_KEY_LEN), 0);
}

/* Keys outside [2, P-2] make the secret guessable (0, 1 or +-1). 2 is the
 * generator: 2^priv is the public key itself. */
static void test_mse_dh_refuses_keys_out_of_range(void)
{
    uint8_t priv[MSE_PRIVATE_LEN], pub[MSE_KEY_LEN], peer[MSE_KEY_LEN], s[MSE_KEY_LEN];
    CU_ASSERT_TRUE_FATAL(mse_dh_keypair(priv, pub));
    small_key(peer, 0);
    CU_ASSERT_FALSE(mse_dh_secret(priv, peer, s));
    small_key(peer, 1);
    CU_ASSERT_FALSE(mse_dh_secret(priv, peer, s));
    prime_minus(peer, 1);
    CU_ASSERT_FALSE(mse_dh_secret(priv, peer, s));
    prime_minus(peer, 0);
    CU_ASSERT_FALSE(mse_dh_secret(priv, peer, s));
    memset(peer, 0xff, sizeof peer);
    CU_ASSERT_FALSE(mse_dh_secret(priv, peer, s));

    prime_minus(peer, 2);
    CU_ASSERT_TRUE(mse_dh_secret(priv, peer, s));
    small_key(peer, 2);
    CU_ASSERT_TRUE_FATAL(mse_dh_secret(priv, peer, s));
    CU_ASSERT_EQUAL(memcmp(s, pub, MSE_KEY_LEN), 0);
}

/* ---- HASH ---- */

static void test_mse_hash_is_sha1_of_concatenation(void)
{
    uint8_t a[MSE_KEY_LEN], b[20], buf[4 + MSE_KEY_LEN + 20], want[20], got[20];
    fill_noise(a, sizeof a, 3);
    fill_noise(b, sizeof b, 4);
    memcpy(buf, "keyB", 4);
    memcpy(buf + 4, a, sizeof a);
    memcpy(buf + 4 + sizeof a, b, sizeof b);
    CU_ASSERT_TRUE_FATAL(sha1(buf, sizeof buf, want));
    CU_ASSERT_TRUE_FATAL(mse_hash("keyB", a, sizeof a, b, sizeof b, got));
    CU_ASSERT_EQUAL(memcmp(got, want, 20), 0);

    /* Without b, and with another tag. */
    memcpy(buf, "req1", 4);
    CU_ASSERT_TRUE_FATAL(sha1(buf, 4 + sizeof a, want));
    CU_ASSERT_TRUE_FATAL(mse_hash("req1", a, sizeof a, NULL, 0, got));
    CU_ASSERT_EQUAL(memcmp(got, want, 20), 0);
    CU_ASSERT_TRUE_FATAL(mse_hash("req3", a, sizeof a, NULL, 0, got));
    CU_ASSERT_NOT_EQUAL(memcmp(got, want, 20), 0);
}

/* ---- mse_accept: callers it accepts ---- */

static const uint8_t PLAIN_AFTER[10] = {'p', 'l', 'a', 'i', 'n', ' ', 't', 'e', 'x', 't'};

static void check_ia_then_plain(size_t pad_a_len, size_t pad_c_len)
{
    uint8_t hs[HANDSHAKE_LEN];
    fake_handshake(hs, TORRENT);
    struct exchange x;
    exchange_init(&x, CALLER_FULL, hs, sizeof hs);
    x.c.pad_a_len = pad_a_len;
    x.c.pad_c_len = pad_c_len;
    x.c.after = PLAIN_AFTER;
    x.c.after_len = sizeof PLAIN_AFTER;
    check_accepted(&x);
}

static void test_mse_accept_ia_then_plain_no_pads(void)
{
    check_ia_then_plain(0, 0);
}

/* PadA at its limit: req1 is found 512 bytes late. */
static void test_mse_accept_ia_then_plain_longest_pads(void)
{
    check_ia_then_plain(MSE_MAX_PAD, MSE_MAX_PAD);
}

/* No IA: the handshake follows in plain text, as libtorrent sends it. */
static void test_mse_accept_empty_ia_then_plain_handshake(void)
{
    uint8_t hs[HANDSHAKE_LEN];
    fake_handshake(hs, TORRENT);
    struct exchange x;
    exchange_init(&x, CALLER_FULL, NULL, 0);
    x.c.pad_a_len = 100;
    x.c.after = hs;
    x.c.after_len = sizeof hs;
    check_accepted(&x);
}

/* The largest IA we take, past the reader's direct-read size, comes back
 * whole and before the plain bytes. */
static void test_mse_accept_longest_ia(void)
{
    uint8_t *ia = malloc(MSE_MAX_IA);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ia);
    fill_noise(ia, MSE_MAX_IA, 99);
    fake_handshake(ia, TORRENT);
    struct exchange x;
    exchange_init(&x, CALLER_FULL, ia, MSE_MAX_IA);
    x.c.after = PLAIN_AFTER;
    x.c.after_len = sizeof PLAIN_AFTER;
    check_accepted(&x);
    free(ia);
}

/* ---- mse_accept: callers it refuses ---- */

/* A caller for another torrent; then one whose keys are right but whose
 * req2 names another torrent, which only the req2 check can catch. */
static void test_mse_accept_refuses_another_torrent(void)
{
    uint8_t hs[HANDSHAKE_LEN];
    fake_handshake(hs, OTHER_TORRENT);
    struct exchange x;
    exchange_init(&x, CALLER_FULL, hs, sizeof hs);
    memcpy(x.c.info_hash, OTHER_TORRENT, 20);
    memcpy(x.c.req2_hash, OTHER_TORRENT, 20);
    check_refused(&x);

    fake_handshake(hs, TORRENT);
    exchange_init(&x, CALLER_FULL, hs, sizeof hs);
    memcpy(x.c.req2_hash, OTHER_TORRENT, 20);
    check_refused(&x);
}

/* No req1 within PadA's limit: refused after 532 bytes, not after the budget. */
static void test_mse_accept_refuses_garbage_promptly(void)
{
    struct exchange x;
    exchange_init(&x, CALLER_GARBAGE, NULL, 0);
    check_refused(&x);
}

static void test_mse_accept_refuses_rc4_only(void)
{
    uint8_t hs[HANDSHAKE_LEN];
    fake_handshake(hs, TORRENT);
    struct exchange x;
    exchange_init(&x, CALLER_FULL, hs, sizeof hs);
    x.c.provide = MSE_CRYPTO_RC4;
    check_refused(&x);
}

static void test_mse_accept_refuses_long_pad_c(void)
{
    uint8_t hs[HANDSHAKE_LEN];
    fake_handshake(hs, TORRENT);
    struct exchange x;
    exchange_init(&x, CALLER_FULL, hs, sizeof hs);
    x.c.pad_c_len = MSE_MAX_PAD + 1;
    check_refused(&x);
}

static void test_mse_accept_refuses_bad_vc(void)
{
    uint8_t hs[HANDSHAKE_LEN];
    fake_handshake(hs, TORRENT);
    struct exchange x;
    exchange_init(&x, CALLER_FULL, hs, sizeof hs);
    x.c.vc[VC_LEN - 1] = 1;
    check_refused(&x);
}

static void test_mse_accept_refuses_long_ia(void)
{
    uint8_t *ia = calloc(1, MSE_MAX_IA + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ia);
    struct exchange x;
    exchange_init(&x, CALLER_FULL, ia, MSE_MAX_IA + 1);
    check_refused(&x);
    free(ia);
}

/* A Ya of 1 would make S = 1: refused before anything is sent back. */
static void test_mse_accept_refuses_weak_ya(void)
{
    int fds[2];
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    net_tune(fds[0]);
    uint8_t ya[MSE_KEY_LEN], byte;
    small_key(ya, 1);
    CU_ASSERT_EQUAL_FATAL(write(fds[1], ya, sizeof ya), (ssize_t)sizeof ya);
    struct net_reader *r = malloc(sizeof *r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    net_reader_init(r, fds[0]);
    const char *why = NULL;
    CU_ASSERT_EQUAL(mse_accept(r, TORRENT, net_now_ms() + ACCEPT_BUDGET_MS, NULL, &why),
                    PT_ERR_HANDSHAKE);
    CU_ASSERT_PTR_NOT_NULL(why);
    shutdown(fds[0], SHUT_WR);
    CU_ASSERT_EQUAL(read(fds[1], &byte, 1), 0); /* no Yb came */
    free(r);
    close(fds[0]);
    close(fds[1]);
}

/* ---- mse_accept: time, hang-ups and the stop flag ---- */

/* Ya, then silence: the budget ends the wait (rounded up to one I/O slice). */
static void test_mse_accept_times_out_on_silent_caller(void)
{
    struct exchange x;
    exchange_init(&x, CALLER_SILENT, NULL, 0);
    CU_ASSERT_EQUAL(exchange_run(&x, 300, NULL), PT_ERR_TIMEOUT);
    CU_ASSERT_TRUE(x.took_ms >= 250);
    CU_ASSERT_TRUE(x.took_ms < 2000);
    exchange_finish(&x);
    CU_ASSERT_FALSE(x.c.replied);
}

/* A caller that trickles req1 a byte at a time cannot hold the answer past
 * its budget: the budget is one deadline for the whole exchange. */
static void test_mse_accept_times_out_on_trickling_caller(void)
{
    uint8_t hs[HANDSHAKE_LEN];
    fake_handshake(hs, TORRENT);
    struct exchange x;
    exchange_init(&x, CALLER_FULL, hs, sizeof hs);
    x.c.trickle_ms = 40; /* each byte well within a read's budget, the whole far past it */
    x.c.trickle_from = 0;
    CU_ASSERT_EQUAL(exchange_run(&x, 300, NULL), PT_ERR_TIMEOUT);
    CU_ASSERT_TRUE(x.took_ms >= 250);
    CU_ASSERT_TRUE(x.took_ms < 1000);
    exchange_finish(&x);
    CU_ASSERT_FALSE(x.c.replied);
}

/* The same with the IA trickled: one read of many bytes, each byte within
 * the budget of a pause, must still end at the exchange's deadline. */
static void test_mse_accept_times_out_on_trickled_ia(void)
{
    uint8_t ia[100];
    fill_noise(ia, sizeof ia, 0x1234u);
    struct exchange x;
    exchange_init(&x, CALLER_FULL, ia, sizeof ia);
    x.c.trickle_ms = 40; /* 100 bytes: 4 s in all */
    x.c.trickle_from = 20 + 20 + VC_LEN + 4 + 2 + 2; /* req1, req2^req3, header, len(IA) */
    CU_ASSERT_EQUAL(exchange_run(&x, 300, NULL), PT_ERR_TIMEOUT);
    CU_ASSERT_TRUE(x.took_ms >= 250);
    CU_ASSERT_TRUE(x.took_ms < 1000);
    exchange_finish(&x);
    CU_ASSERT_FALSE(x.c.replied);
}

/* Ya, then close(): whether B meets the close sending Yb (EPIPE) or reading
 * req1 (EOF, or ECONNRESET for unread data), net.c calls it PT_ERR_CLOSED. */
static void test_mse_accept_reports_caller_hang_up(void)
{
    struct exchange x;
    exchange_init(&x, CALLER_HANG_UP, NULL, 0);
    CU_ASSERT_EQUAL(exchange_run(&x, ACCEPT_BUDGET_MS, NULL), PT_ERR_CLOSED);
    CU_ASSERT_TRUE(x.took_ms < ACCEPT_BUDGET_MS / 2);
    exchange_finish(&x);
    CU_ASSERT_TRUE(x.c.closed);
}

static void test_mse_accept_honours_stop_flag(void)
{
    atomic_bool stop;
    atomic_init(&stop, true);
    struct exchange x;
    exchange_init(&x, CALLER_SILENT, NULL, 0);
    CU_ASSERT_EQUAL(exchange_run(&x, ACCEPT_BUDGET_MS, &stop), PT_ERR_STOPPED);
    CU_ASSERT_TRUE(x.took_ms < ACCEPT_BUDGET_MS / 2);
    exchange_finish(&x);
}

/* Called by tests/test_main.c (see suites.h there). */
int test_mse_register(void);

int test_mse_register(void)
{
    CU_pSuite s = CU_add_suite("mse", NULL, NULL);
    if (!s)
        return -1;
    struct {
        const char *name;
        CU_TestFunc fn;
    } tests[] = {
        {"rc4 matches textbook vectors", test_mse_rc4_matches_textbook_vectors},
        {"rc4 twice gives back plaintext", test_mse_rc4_twice_gives_back_plaintext},
        {"stream is rc4 of hash with 1024 dropped",
         test_mse_stream_is_rc4_of_hash_with_1024_dropped},
        {"dh both sides agree", test_mse_dh_both_sides_agree},
        {"dh refuses keys out of range", test_mse_dh_refuses_keys_out_of_range},
        {"hash is sha1 of concatenation", test_mse_hash_is_sha1_of_concatenation},
        {"accept: IA then plain, no pads", test_mse_accept_ia_then_plain_no_pads},
        {"accept: IA then plain, longest pads", test_mse_accept_ia_then_plain_longest_pads},
        {"accept: empty IA then plain handshake", test_mse_accept_empty_ia_then_plain_handshake},
        {"accept: longest IA", test_mse_accept_longest_ia},
        {"accept refuses another torrent", test_mse_accept_refuses_another_torrent},
        {"accept refuses garbage promptly", test_mse_accept_refuses_garbage_promptly},
        {"accept refuses RC4 only", test_mse_accept_refuses_rc4_only},
        {"accept refuses PadC over 512", test_mse_accept_refuses_long_pad_c},
        {"accept refuses bad VC", test_mse_accept_refuses_bad_vc},
        {"accept refuses IA over 16 KiB", test_mse_accept_refuses_long_ia},
        {"accept refuses weak Ya", test_mse_accept_refuses_weak_ya},
        {"accept times out on silent caller", test_mse_accept_times_out_on_silent_caller},
        {"accept times out on trickling caller", test_mse_accept_times_out_on_trickling_caller},
        {"accept times out on a trickled IA", test_mse_accept_times_out_on_trickled_ia},
        {"accept reports caller hang-up", test_mse_accept_reports_caller_hang_up},
        {"accept honours stop flag", test_mse_accept_honours_stop_flag},
    };
    for (size_t k = 0; k < sizeof tests / sizeof tests[0]; k++)
        if (!CU_add_test(s, tests[k].name, tests[k].fn))
            return -1;
    return 0;
}
