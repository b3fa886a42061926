/*
 * wire: the BitTorrent peer wire protocol (BEP 3) as a codec. Encodes and
 * decodes handshakes and messages with exact length checks; does no I/O and
 * takes no locks, so it is tested offline.
 *
 * A message on the wire is <4-byte big-endian length><1-byte id><payload>.
 * The peer loop reads the length and id itself (so a PIECE's block can go
 * straight to its place), then calls wire_decode() on the rest.
 */
#ifndef PT_WIRE_H
#define PT_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"

#define WIRE_HANDSHAKE_LEN 68
/* A PIECE message before its block: length, id, index, begin. */
#define WIRE_PIECE_HEADER_LEN 13
/* Any length prefix above this closes the connection: a 16 KiB block needs
 * 16 KiB + 9, and a bitfield of 8 million pieces fits in 1 MiB. */
#define WIRE_MAX_MESSAGE (1u << 20)
/* Requests larger than this are refused (every client uses 16 KiB). */
#define WIRE_MAX_BLOCK 16384u

enum wire_id {
    WIRE_KEEPALIVE = -1, /* a zero-length message; no id on the wire */
    WIRE_CHOKE = 0,
    WIRE_UNCHOKE = 1,
    WIRE_INTERESTED = 2,
    WIRE_NOT_INTERESTED = 3,
    WIRE_HAVE = 4,
    WIRE_BITFIELD = 5,
    WIRE_REQUEST = 6,
    WIRE_PIECE = 7,
    WIRE_CANCEL = 8,
    WIRE_PORT = 9,
    WIRE_EXTENDED = 20
};

struct wire_msg {
    int id;            /* enum wire_id, or another value for an unknown id */
    uint32_t index;    /* HAVE, REQUEST, CANCEL, PIECE */
    uint32_t begin;    /* REQUEST, CANCEL, PIECE */
    uint32_t length;   /* REQUEST, CANCEL; PIECE: block bytes */
    uint16_t port;     /* PORT */
    const uint8_t *payload; /* BITFIELD, PIECE block, EXTENDED, unknown: borrowed */
    size_t payload_len;
};

/* reserved may be NULL (all zero). */
void wire_handshake_build(uint8_t out[WIRE_HANDSHAKE_LEN], const uint8_t info_hash[20],
                          const uint8_t peer_id[20], const uint8_t reserved[8]);

/* True if the first 20 bytes of a handshake are "\x13BitTorrent protocol":
 * a plain handshake (a caller that opens with anything else may be trying an
 * encrypted one, see mse.h). */
bool wire_is_handshake_start(const uint8_t first[20]);

/* PT_ERR_HANDSHAKE if the protocol string or info hash is wrong. The reserved
 * bits and the peer id are copied out (either out pointer may be NULL). */
enum pt_err wire_handshake_parse(const uint8_t in[WIRE_HANDSHAKE_LEN], const uint8_t info_hash[20],
                                 uint8_t reserved_out[8], uint8_t peer_id_out[20]);

/* Decodes the payload of message `id` (len bytes after the id byte) for a
 * torrent of piece_count pieces. PT_ERR_PROTOCOL for a wrong size, an index
 * out of range, or a bitfield with spare bits set. Unknown ids decode to
 * PT_OK with the payload attached, so the caller can skip them. */
enum pt_err wire_decode(int id, const uint8_t *payload, size_t len, uint32_t piece_count,
                        struct wire_msg *out);

/* Bytes in a bitfield for piece_count pieces. */
static inline size_t wire_bitfield_len(uint32_t piece_count)
{
    return ((size_t)piece_count + 7) / 8;
}

/* Encoders: each writes a whole message (length prefix included) to out and
 * returns the bytes written. */
size_t wire_put_simple(uint8_t out[5], enum wire_id id); /* choke..not interested */
size_t wire_put_keepalive(uint8_t out[4]);
size_t wire_put_have(uint8_t out[9], uint32_t index);
/* id is WIRE_REQUEST or WIRE_CANCEL */
size_t wire_put_request(uint8_t out[17], enum wire_id id, uint32_t index, uint32_t begin,
                        uint32_t length);
/* Only the header of a PIECE; the block follows it on the wire. */
size_t wire_put_piece_header(uint8_t out[WIRE_PIECE_HEADER_LEN], uint32_t index, uint32_t begin,
                             uint32_t block_len);
/* The 5-byte header of a BITFIELD of nbytes; the bitfield follows it. */
size_t wire_put_bitfield_header(uint8_t out[5], size_t nbytes);

static inline uint32_t wire_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void wire_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

#endif
