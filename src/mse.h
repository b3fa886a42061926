/*
 * mse: the answering side of Message Stream Encryption (MSE, "protocol
 * encryption"), the obfuscated handshake that libtorrent, aria2c and
 * Transmission try before the plain BitTorrent one.
 *
 * A peer that calls us and finds no MSE gives up on that connection and
 * dials again in plain text, about a second later for aria2c. Answering MSE
 * saves that second. The exchange (as the Vuze/Azureus specification has it;
 * A calls, B answers):
 *
 *   A -> B  Ya (96-byte Diffie-Hellman public key), PadA (0..512 bytes)
 *   B -> A  Yb, PadB
 *   A -> B  HASH("req1", S), HASH("req2", SKEY) xor HASH("req3", S),
 *           RC4_A(VC, crypto_provide, len(PadC), PadC, len(IA)), RC4_A(IA)
 *   B -> A  RC4_B(VC, crypto_select, len(PadD), PadD), then the payload
 *
 * S is the shared secret, SKEY the info hash, VC eight zero bytes, IA the
 * caller's first payload bytes (usually its BitTorrent handshake). ptorrent
 * selects plain text for the payload: the obfuscation ends with the
 * handshake and blocks still go from the socket straight into piece
 * buffers. A peer that offers only RC4 payload encryption is refused.
 *
 * Pure functions plus one blocking call on a connection; no shared state,
 * any thread.
 */
#ifndef PT_MSE_H
#define PT_MSE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "net.h"

#define MSE_KEY_LEN 96      /* a public key or the shared secret, big-endian */
#define MSE_PRIVATE_LEN 20  /* 160 random bits, as the specification advises */
#define MSE_MAX_PAD 512     /* PadA..PadD are at most this long */
#define MSE_MAX_IA 16384    /* our cap on IA, so it fits back in the reader */
#define MSE_CRYPTO_PLAIN 0x01u
#define MSE_CRYPTO_RC4 0x02u

/* RC4 state. Plain data: the caller owns it. */
struct mse_rc4 {
    uint8_t s[256];
    uint8_t i, j;
};

/* RC4 key schedule over key[0..len) (len >= 1), nothing discarded. */
void mse_rc4_init(struct mse_rc4 *k, const uint8_t *key, size_t len);
/* XORs the next len key-stream bytes into buf: encrypts or decrypts. */
void mse_rc4_crypt(struct mse_rc4 *k, uint8_t *buf, size_t len);
/* The stream for one direction: RC4 keyed with HASH(tag, S, SKEY), its
 * first 1024 bytes discarded. tag is "keyA" (caller to answerer) or "keyB". */
bool mse_stream_init(struct mse_rc4 *k, const char tag[4], const uint8_t secret[MSE_KEY_LEN],
                     const uint8_t skey[20]);

/* SHA-1 of the 4-byte tag, then a[0..alen), then b[0..blen) (b may be NULL
 * with blen 0): the specification's HASH(). False if OpenSSL fails or
 * alen + blen is over MSE_KEY_LEN + 20 (the most the exchange hashes). */
bool mse_hash(const char tag[4], const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
              uint8_t out[20]);

/* A fresh Diffie-Hellman key pair: priv_out random, pub_out = 2^priv mod P. */
bool mse_dh_keypair(uint8_t priv_out[MSE_PRIVATE_LEN], uint8_t pub_out[MSE_KEY_LEN]);
/* secret_out = peer_pub^priv mod P. False if peer_pub is not in [2, P-2]
 * (a key that would make the secret guessable) or OpenSSL fails. */
bool mse_dh_secret(const uint8_t priv[MSE_PRIVATE_LEN], const uint8_t peer_pub[MSE_KEY_LEN],
                   uint8_t secret_out[MSE_KEY_LEN]);

/* Answers an MSE handshake on fd for the torrent info_hash. The reader holds
 * (or will receive) the caller's Ya. On PT_OK plain text was selected and the
 * reader holds the decrypted IA followed by whatever else came: read the
 * BitTorrent handshake from it as usual. The whole exchange must end by
 * deadline_ms (net_now_ms() time). Errors:
 * PT_ERR_HANDSHAKE (no sync, another torrent, bad VC, RC4 only, over-long
 * pad or IA; *why_out says which), timeouts, PT_ERR_CLOSED, PT_ERR_STOPPED. */
enum pt_err mse_accept(struct net_reader *r, const uint8_t info_hash[20], int64_t deadline_ms,
                       const atomic_bool *stop, const char **why_out);

#endif
