/*
 * Tests for the peer wire codec, through wire.h only: the handshake both ways,
 * the exact size of every BEP 3 message (one byte short or long is refused),
 * index ranges, bitfield spare bits, unknown ids, and encoders checked against
 * hand-written bytes and decoded back.
 */
#include <CUnit/CUnit.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "wire.h"

#define PIECES 10u /* piece count of the torrent in most tests: bitfield of 2 bytes */

/* ---- helpers ---- */

static void fill(uint8_t *p, size_t len, uint8_t seed)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(seed + i * 7u);
}

/* Asserts that an encoder wrote exactly `want`. */
static void check_bytes(const uint8_t *got, size_t got_len, const uint8_t *want, size_t want_len)
{
    CU_ASSERT_EQUAL(got_len, want_len);
    bool same = got_len == want_len && memcmp(got, want, want_len) == 0;
    CU_ASSERT_TRUE(same);
    if (!same) {
        fprintf(stderr, "\n  wire: got");
        for (size_t i = 0; i < got_len; i++)
            fprintf(stderr, " %02x", got[i]);
        fprintf(stderr, "\n  want    ");
        for (size_t i = 0; i < want_len; i++)
            fprintf(stderr, " %02x", want[i]);
        fprintf(stderr, "\n");
    }
}

/* Decodes a whole encoded message as the peer loop does: length prefix, id,
 * then wire_decode on the rest. */
static enum pt_err decode_framed(const uint8_t *msg, size_t len, uint32_t piece_count,
                                 struct wire_msg *out)
{
    CU_ASSERT_FATAL(len >= 5);
    CU_ASSERT_EQUAL_FATAL(wire_get_u32(msg), len - 4);
    return wire_decode(msg[4], msg + 5, len - 5, piece_count, out);
}

/* ---- handshake ---- */

/* Only the exact "\x13BitTorrent protocol" opens a plain handshake: any
 * other byte there may be an encrypted (MSE) one. */
static void test_wire_is_handshake_start_only_for_exact_protocol_string(void)
{
    uint8_t first[20];
    memcpy(first, "\023BitTorrent protocol", 20); /* \023 is 19 */
    CU_ASSERT_TRUE(wire_is_handshake_start(first));
    for (size_t i = 0; i < 20; i++) {
        first[i] ^= 0x20;
        CU_ASSERT_FALSE(wire_is_handshake_start(first));
        first[i] ^= 0x20;
    }
    CU_ASSERT_TRUE(wire_is_handshake_start(first)); /* the loop put every byte back */
}

static void test_wire_handshake_round_trip(void)
{
    uint8_t hash[20], id[20], reserved[8] = {0, 0, 0, 0, 0, 0x10, 0, 0x05};
    fill(hash, sizeof hash, 1);
    fill(id, sizeof id, 100);
    uint8_t hs[WIRE_HANDSHAKE_LEN];
    wire_handshake_build(hs, hash, id, reserved);

    /* The layout BEP 3 gives: pstrlen, pstr, reserved, info_hash, peer_id. */
    CU_ASSERT_EQUAL(hs[0], 19);
    CU_ASSERT_EQUAL(memcmp(hs + 1, "BitTorrent protocol", 19), 0);
    CU_ASSERT_EQUAL(memcmp(hs + 20, reserved, 8), 0);
    CU_ASSERT_EQUAL(memcmp(hs + 28, hash, 20), 0);
    CU_ASSERT_EQUAL(memcmp(hs + 48, id, 20), 0);

    uint8_t res_out[8], id_out[20];
    CU_ASSERT_EQUAL(wire_handshake_parse(hs, hash, res_out, id_out), PT_OK);
    CU_ASSERT_EQUAL(memcmp(res_out, reserved, 8), 0);
    CU_ASSERT_EQUAL(memcmp(id_out, id, 20), 0);
    /* Either out pointer may be NULL. */
    CU_ASSERT_EQUAL(wire_handshake_parse(hs, hash, NULL, NULL), PT_OK);
}

static void test_wire_handshake_null_reserved_is_zero(void)
{
    uint8_t hash[20], id[20], hs[WIRE_HANDSHAKE_LEN];
    fill(hash, sizeof hash, 3);
    fill(id, sizeof id, 4);
    memset(hs, 0xee, sizeof hs);
    wire_handshake_build(hs, hash, id, NULL);
    static const uint8_t zero[8] = {0};
    CU_ASSERT_EQUAL(memcmp(hs + 20, zero, 8), 0);
    uint8_t res_out[8];
    memset(res_out, 0xee, sizeof res_out);
    CU_ASSERT_EQUAL(wire_handshake_parse(hs, hash, res_out, NULL), PT_OK);
    CU_ASSERT_EQUAL(memcmp(res_out, zero, 8), 0);
}

static void test_wire_handshake_rejects_wrong_protocol(void)
{
    uint8_t hash[20], id[20], hs[WIRE_HANDSHAKE_LEN], bad[WIRE_HANDSHAKE_LEN];
    fill(hash, sizeof hash, 5);
    fill(id, sizeof id, 6);
    wire_handshake_build(hs, hash, id, NULL);

    /* A wrong length byte. */
    memcpy(bad, hs, sizeof bad);
    bad[0] = 18;
    CU_ASSERT_EQUAL(wire_handshake_parse(bad, hash, NULL, NULL), PT_ERR_HANDSHAKE);
    bad[0] = 0;
    CU_ASSERT_EQUAL(wire_handshake_parse(bad, hash, NULL, NULL), PT_ERR_HANDSHAKE);
    /* Each byte of the protocol string changed in turn. */
    for (size_t k = 1; k < 20; k++) {
        memcpy(bad, hs, sizeof bad);
        bad[k] ^= 0x20;
        CU_ASSERT_EQUAL(wire_handshake_parse(bad, hash, NULL, NULL), PT_ERR_HANDSHAKE);
    }
}

static void test_wire_handshake_rejects_wrong_info_hash(void)
{
    uint8_t hash[20], other[20], id[20], hs[WIRE_HANDSHAKE_LEN];
    fill(hash, sizeof hash, 7);
    fill(id, sizeof id, 8);
    wire_handshake_build(hs, hash, id, NULL);
    for (size_t k = 0; k < 20; k++) {
        memcpy(other, hash, sizeof other);
        other[k] ^= 1;
        CU_ASSERT_EQUAL(wire_handshake_parse(hs, other, NULL, NULL), PT_ERR_HANDSHAKE);
    }
    /* The peer id and reserved bytes may be anything. */
    hs[20] = 0xff;
    hs[67] ^= 0xff;
    CU_ASSERT_EQUAL(wire_handshake_parse(hs, hash, NULL, NULL), PT_OK);
}

/* ---- decoding ---- */

static void test_wire_decode_state_messages_need_empty_payload(void)
{
    static const int ids[] = {WIRE_CHOKE, WIRE_UNCHOKE, WIRE_INTERESTED, WIRE_NOT_INTERESTED};
    uint8_t junk[4] = {0};
    struct wire_msg m;
    for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++) {
        CU_ASSERT_EQUAL(wire_decode(ids[k], junk, 0, PIECES, &m), PT_OK);
        CU_ASSERT_EQUAL(m.id, ids[k]);
        CU_ASSERT_EQUAL(wire_decode(ids[k], NULL, 0, PIECES, &m), PT_OK);
        CU_ASSERT_EQUAL(wire_decode(ids[k], junk, 1, PIECES, &m), PT_ERR_PROTOCOL);
        CU_ASSERT_EQUAL(wire_decode(ids[k], junk, 4, PIECES, &m), PT_ERR_PROTOCOL);
    }
}

static void test_wire_decode_have_size_and_index(void)
{
    struct wire_msg m;
    uint8_t p[5] = {0, 0, 0, 9, 0};
    CU_ASSERT_EQUAL(wire_decode(WIRE_HAVE, p, 4, PIECES, &m), PT_OK);
    CU_ASSERT_EQUAL(m.id, WIRE_HAVE);
    CU_ASSERT_EQUAL(m.index, 9);
    CU_ASSERT_EQUAL(wire_decode(WIRE_HAVE, p, 3, PIECES, &m), PT_ERR_PROTOCOL);
    CU_ASSERT_EQUAL(wire_decode(WIRE_HAVE, p, 5, PIECES, &m), PT_ERR_PROTOCOL);
    CU_ASSERT_EQUAL(wire_decode(WIRE_HAVE, p, 0, PIECES, &m), PT_ERR_PROTOCOL);

    /* index == piece_count is one past the end. */
    uint8_t q[4] = {0, 0, 0, PIECES};
    CU_ASSERT_EQUAL(wire_decode(WIRE_HAVE, q, 4, PIECES, &m), PT_ERR_PROTOCOL);
    uint8_t big[4] = {0xff, 0xff, 0xff, 0xff};
    CU_ASSERT_EQUAL(wire_decode(WIRE_HAVE, big, 4, PIECES, &m), PT_ERR_PROTOCOL);
    uint8_t zero[4] = {0};
    CU_ASSERT_EQUAL(wire_decode(WIRE_HAVE, zero, 4, PIECES, &m), PT_OK);
    CU_ASSERT_EQUAL(m.index, 0);
}

static void test_wire_decode_bitfield_exact_length(void)
{
    struct wire_msg m;
    uint8_t bf[4] = {0xff, 0xc0, 0, 0}; /* 10 pieces: all set, spare bits clear */
    CU_ASSERT_EQUAL(wire_bitfield_len(PIECES), 2);
    CU_ASSERT_EQUAL(wire_decode(WIRE_BITFIELD, bf, 2, PIECES, &m), PT_OK);
    CU_ASSERT_EQUAL(m.id, WIRE_BITFIELD);
    CU_ASSERT_PTR_EQUAL(m.payload, bf);
    CU_ASSERT_EQUAL(m.payload_len, 2);
    /* One byte short or long. */
    CU_ASSERT_EQUAL(wire_decode(WIRE_BITFIELD, bf, 1, PIECES, &m), PT_ERR_PROTOCOL);
    CU_ASSERT_EQUAL(wire_decode(WIRE_BITFIELD, bf, 3, PIECES, &m), PT_ERR_PROTOCOL);
    CU_ASSERT_EQUAL(wire_decode(WIRE_BITFIELD, bf, 0, PIECES, &m), PT_ERR_PROTOCOL);

    /* Piece counts on and around a byte boundary. */
    CU_ASSERT_EQUAL(wire_bitfield_len(1), 1);
    CU_ASSERT_EQUAL(wire_bitfield_len(8), 1);
    CU_ASSERT_EQUAL(wire_bitfield_len(9), 2);
    CU_ASSERT_EQUAL(wire_bitfield_len(16), 2);
    CU_ASSERT_EQUAL(wire_bitfield_len(17), 3);
    uint8_t full[3] = {0xff, 0xff, 0x80};
    CU_ASSERT_EQUAL(wire_decode(WIRE_BITFIELD, full, 2, 16, &m), PT_OK);
    CU_ASSERT_EQUAL(wire_decode(WIRE_BITFIELD, full, 3, 16, &m), PT_ERR_PROTOCOL);
    CU_ASSERT_EQUAL(wire_decode(WIRE_BITFIELD, full, 3, 17, &m), PT_OK);
    CU_ASSERT_EQUAL(wire_decode(WIRE_BITFIELD, full, 2, 17, &m), PT_ERR_PROTOCOL);
}

static void test_wire_decode_bitfield_rejects_spare_bits(void)
{
    struct wire_msg m;
    /* 10 pieces use the top 2 bits of byte 1; each of the 6 spare bits alone is refused. */
    for (unsigned bit = 0; bit < 6; bit++) {
        uint8_t bf[2] = {0, (uint8_t)(1u << bit)};
        CU_ASSERT_EQUAL(wire_decode(WIRE_BITFIELD, bf, 2, PIECES, &m), PT_ERR_PROTOCOL);
    }
    uint8_t last[2] = {0, 0x40}; /* piece 9, the last real one */
    CU_ASSERT_EQUAL(wire_decode(WIRE_BITFIELD, last, 2, PIECES, &m), PT_OK);
    /* 1 piece: only the top bit may be set. */
    uint8_t one[1] = {0x80};
    CU_ASSERT_EQUAL(wire_decode(WIRE_BITFIELD, one, 1, 1, &m), PT_OK);
    one[0] = 0xc0;
    CU_ASSERT_EQUAL(wire_decode(WIRE_BITFIELD, one, 1, 1, &m), PT_ERR_PROTOCOL);
    one[0] = 0x01;
    CU_ASSERT_EQUAL(wire_decode(WIRE_BITFIELD, one, 1, 1, &m), PT_ERR_PROTOCOL);
    /* A multiple of 8 has no spare bits. */
    uint8_t eight[1] = {0xff};
    CU_ASSERT_EQUAL(wire_decode(WIRE_BITFIELD, eight, 1, 8, &m), PT_OK);
}

static void test_wire_decode_request_and_cancel(void)
{
    static const int ids[] = {WIRE_REQUEST, WIRE_CANCEL};
    uint8_t p[13] = {0, 0, 0, 9, 0, 0, 0x40, 0, 0, 0, 0x40, 0, 0xaa};
    struct wire_msg m;
    for (size_t k = 0; k < 2; k++) {
        CU_ASSERT_EQUAL(wire_decode(ids[k], p, 12, PIECES, &m), PT_OK);
        CU_ASSERT_EQUAL(m.id, ids[k]);
        CU_ASSERT_EQUAL(m.index, 9);
        CU_ASSERT_EQUAL(m.begin, 0x4000);
        CU_ASSERT_EQUAL(m.length, 0x4000);
        CU_ASSERT_EQUAL(wire_decode(ids[k], p, 11, PIECES, &m), PT_ERR_PROTOCOL);
        CU_ASSERT_EQUAL(wire_decode(ids[k], p, 13, PIECES, &m), PT_ERR_PROTOCOL);
        CU_ASSERT_EQUAL(wire_decode(ids[k], p, 0, PIECES, &m), PT_ERR_PROTOCOL);
        uint8_t out_of_range[12] = {0, 0, 0, PIECES, 0, 0, 0, 0, 0, 0, 0x40, 0};
        CU_ASSERT_EQUAL(wire_decode(ids[k], out_of_range, 12, PIECES, &m), PT_ERR_PROTOCOL);
    }
}

static void test_wire_decode_piece_sizes(void)
{
    static uint8_t p[8 + WIRE_MAX_BLOCK + 1];
    fill(p, sizeof p, 9);
    p[0] = p[1] = p[2] = 0;
    p[3] = 3; /* index 3 */
    p[4] = 0;
    p[5] = 0;
    p[6] = 0x40;
    p[7] = 0; /* begin 16384 */
    struct wire_msg m;

    CU_ASSERT_EQUAL(wire_decode(WIRE_PIECE, p, 8 + WIRE_MAX_BLOCK, PIECES, &m), PT_OK);
    CU_ASSERT_EQUAL(m.id, WIRE_PIECE);
    CU_ASSERT_EQUAL(m.index, 3);
    CU_ASSERT_EQUAL(m.begin, 16384);
    CU_ASSERT_EQUAL(m.length, WIRE_MAX_BLOCK);
    CU_ASSERT_PTR_EQUAL(m.payload, p + 8);
    CU_ASSERT_EQUAL(m.payload_len, WIRE_MAX_BLOCK);

    /* An empty block is allowed by the size rule; less than the header is not. */
    CU_ASSERT_EQUAL(wire_decode(WIRE_PIECE, p, 8, PIECES, &m), PT_OK);
    CU_ASSERT_EQUAL(m.length, 0);
    CU_ASSERT_EQUAL(m.payload_len, 0);
    CU_ASSERT_EQUAL(wire_decode(WIRE_PIECE, p, 7, PIECES, &m), PT_ERR_PROTOCOL);
    CU_ASSERT_EQUAL(wire_decode(WIRE_PIECE, p, 0, PIECES, &m), PT_ERR_PROTOCOL);
    /* One byte past the largest block. */
    CU_ASSERT_EQUAL(wire_decode(WIRE_PIECE, p, 8 + WIRE_MAX_BLOCK + 1, PIECES, &m),
                    PT_ERR_PROTOCOL);
    /* Index out of range. */
    p[3] = PIECES;
    CU_ASSERT_EQUAL(wire_decode(WIRE_PIECE, p, 8 + 100, PIECES, &m), PT_ERR_PROTOCOL);
}

static void test_wire_decode_port(void)
{
    uint8_t p[3] = {0x1a, 0xe1, 0};
    struct wire_msg m;
    CU_ASSERT_EQUAL(wire_decode(WIRE_PORT, p, 2, PIECES, &m), PT_OK);
    CU_ASSERT_EQUAL(m.id, WIRE_PORT);
    CU_ASSERT_EQUAL(m.port, 6881);
    CU_ASSERT_EQUAL(wire_decode(WIRE_PORT, p, 1, PIECES, &m), PT_ERR_PROTOCOL);
    CU_ASSERT_EQUAL(wire_decode(WIRE_PORT, p, 3, PIECES, &m), PT_ERR_PROTOCOL);
    uint8_t hi[2] = {0xff, 0xfe};
    CU_ASSERT_EQUAL(wire_decode(WIRE_PORT, hi, 2, PIECES, &m), PT_OK);
    CU_ASSERT_EQUAL(m.port, 65534);
}

static void test_wire_decode_unknown_id_keeps_payload(void)
{
    uint8_t p[7] = {1, 2, 3, 4, 5, 6, 7};
    struct wire_msg m;
    static const int ids[] = {WIRE_EXTENDED, 10, 13, 255};
    for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++) {
        CU_ASSERT_EQUAL(wire_decode(ids[k], p, sizeof p, PIECES, &m), PT_OK);
        CU_ASSERT_EQUAL(m.id, ids[k]);
        CU_ASSERT_PTR_EQUAL(m.payload, p);
        CU_ASSERT_EQUAL(m.payload_len, sizeof p);
        CU_ASSERT_EQUAL(wire_decode(ids[k], p, 0, PIECES, &m), PT_OK);
        CU_ASSERT_EQUAL(m.payload_len, 0);
    }
}

/* ---- encoding ---- */

static void test_wire_put_simple_bytes(void)
{
    static const int ids[] = {WIRE_CHOKE, WIRE_UNCHOKE, WIRE_INTERESTED, WIRE_NOT_INTERESTED};
    for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++) {
        uint8_t out[5];
        const uint8_t want[5] = {0, 0, 0, 1, (uint8_t)ids[k]};
        size_t n = wire_put_simple(out, (enum wire_id)ids[k]);
        check_bytes(out, n, want, sizeof want);
        struct wire_msg m;
        CU_ASSERT_EQUAL(decode_framed(out, n, PIECES, &m), PT_OK);
        CU_ASSERT_EQUAL(m.id, ids[k]);
    }
}

static void test_wire_put_keepalive_bytes(void)
{
    uint8_t out[4] = {0xff, 0xff, 0xff, 0xff};
    static const uint8_t want[4] = {0, 0, 0, 0};
    size_t n = wire_put_keepalive(out);
    check_bytes(out, n, want, sizeof want);
}

static void test_wire_put_have_bytes(void)
{
    uint8_t out[9];
    static const uint8_t want[9] = {0, 0, 0, 5, 4, 0x01, 0x02, 0x03, 0x04};
    size_t n = wire_put_have(out, 0x01020304u);
    check_bytes(out, n, want, sizeof want);
    struct wire_msg m;
    CU_ASSERT_EQUAL(decode_framed(out, n, 0x01020305u, &m), PT_OK);
    CU_ASSERT_EQUAL(m.id, WIRE_HAVE);
    CU_ASSERT_EQUAL(m.index, 0x01020304u);
}

static void test_wire_put_request_and_cancel_bytes(void)
{
    uint8_t out[17];
    static const uint8_t want_req[17] = {0, 0, 0, 13, 6,    0, 0, 0, 7, 0,
                                         0, 0x40, 0,  0, 0, 0x40, 0};
    size_t n = wire_put_request(out, WIRE_REQUEST, 7, 0x4000, 0x4000);
    check_bytes(out, n, want_req, sizeof want_req);
    struct wire_msg m;
    CU_ASSERT_EQUAL(decode_framed(out, n, PIECES, &m), PT_OK);
    CU_ASSERT_EQUAL(m.id, WIRE_REQUEST);
    CU_ASSERT_EQUAL(m.index, 7);
    CU_ASSERT_EQUAL(m.begin, 0x4000);
    CU_ASSERT_EQUAL(m.length, 0x4000);

    static const uint8_t want_cancel[17] = {0,    0,    0,    13,   8,    0xaa, 0xbb, 0xcc, 0xdd,
                                            0x11, 0x22, 0x33, 0x44, 0x00, 0x00, 0x01, 0x00};
    n = wire_put_request(out, WIRE_CANCEL, 0xaabbccddu, 0x11223344u, 256);
    check_bytes(out, n, want_cancel, sizeof want_cancel);
    CU_ASSERT_EQUAL(decode_framed(out, n, 0xffffffffu, &m), PT_OK);
    CU_ASSERT_EQUAL(m.id, WIRE_CANCEL);
    CU_ASSERT_EQUAL(m.index, 0xaabbccddu);
    CU_ASSERT_EQUAL(m.begin, 0x11223344u);
    CU_ASSERT_EQUAL(m.length, 256);
}

static void test_wire_put_piece_header_bytes(void)
{
    uint8_t out[13];
    /* Length prefix counts id + index + begin + block: 9 + 16384 = 0x4009. */
    static const uint8_t want[13] = {0, 0, 0x40, 0x09, 7, 0, 0, 0, 2, 0, 0, 0x80, 0};
    size_t n = wire_put_piece_header(out, 2, 0x8000, 16384);
    check_bytes(out, n, want, sizeof want);

    /* Header plus block decodes back to the same coordinates and block. */
    static uint8_t msg[13 + 16384];
    memcpy(msg, out, n);
    fill(msg + 13, 16384, 42);
    struct wire_msg m;
    CU_ASSERT_EQUAL(decode_framed(msg, sizeof msg, PIECES, &m), PT_OK);
    CU_ASSERT_EQUAL(m.id, WIRE_PIECE);
    CU_ASSERT_EQUAL(m.index, 2);
    CU_ASSERT_EQUAL(m.begin, 0x8000);
    CU_ASSERT_EQUAL(m.length, 16384);
    CU_ASSERT_PTR_EQUAL(m.payload, msg + 13);
    CU_ASSERT_EQUAL(m.payload_len, 16384);
}

static void test_wire_put_bitfield_header_bytes(void)
{
    uint8_t out[5];
    static const uint8_t want[5] = {0, 0, 0, 3, 5};
    size_t n = wire_put_bitfield_header(out, 2);
    check_bytes(out, n, want, sizeof want);

    uint8_t msg[7];
    memcpy(msg, out, n);
    msg[5] = 0xa5;
    msg[6] = 0x40;
    struct wire_msg m;
    CU_ASSERT_EQUAL(decode_framed(msg, sizeof msg, PIECES, &m), PT_OK);
    CU_ASSERT_EQUAL(m.id, WIRE_BITFIELD);
    CU_ASSERT_EQUAL(m.payload_len, 2);
    CU_ASSERT_EQUAL(m.payload[0], 0xa5);

    static const uint8_t want_big[5] = {0, 0x01, 0x00, 0x01, 5};
    n = wire_put_bitfield_header(out, 65536);
    check_bytes(out, n, want_big, sizeof want_big);
}

static void test_wire_u32_helpers_are_big_endian(void)
{
    uint8_t b[4];
    wire_put_u32(b, 0xdeadbeefu);
    static const uint8_t want[4] = {0xde, 0xad, 0xbe, 0xef};
    check_bytes(b, 4, want, 4);
    CU_ASSERT_EQUAL(wire_get_u32(b), 0xdeadbeefu);
    wire_put_u32(b, 0);
    CU_ASSERT_EQUAL(wire_get_u32(b), 0);
}

/* Called by tests/test_main.c (see suites.h there). */
int test_wire_register(void);

int test_wire_register(void)
{
    CU_pSuite s = CU_add_suite("wire", NULL, NULL);
    if (!s)
        return -1;
    struct {
        const char *name;
        CU_TestFunc fn;
    } tests[] = {
        {"is_handshake_start only for the exact protocol string",
         test_wire_is_handshake_start_only_for_exact_protocol_string},
        {"handshake round trip", test_wire_handshake_round_trip},
        {"handshake null reserved is zero", test_wire_handshake_null_reserved_is_zero},
        {"handshake rejects wrong protocol", test_wire_handshake_rejects_wrong_protocol},
        {"handshake rejects wrong info hash", test_wire_handshake_rejects_wrong_info_hash},
        {"decode state messages need empty payload",
         test_wire_decode_state_messages_need_empty_payload},
        {"decode have size and index", test_wire_decode_have_size_and_index},
        {"decode bitfield exact length", test_wire_decode_bitfield_exact_length},
        {"decode bitfield rejects spare bits", test_wire_decode_bitfield_rejects_spare_bits},
        {"decode request and cancel", test_wire_decode_request_and_cancel},
        {"decode piece sizes", test_wire_decode_piece_sizes},
        {"decode port", test_wire_decode_port},
        {"decode unknown id keeps payload", test_wire_decode_unknown_id_keeps_payload},
        {"put simple bytes", test_wire_put_simple_bytes},
        {"put keepalive bytes", test_wire_put_keepalive_bytes},
        {"put have bytes", test_wire_put_have_bytes},
        {"put request and cancel bytes", test_wire_put_request_and_cancel_bytes},
        {"put piece header bytes", test_wire_put_piece_header_bytes},
        {"put bitfield header bytes", test_wire_put_bitfield_header_bytes},
        {"u32 helpers are big endian", test_wire_u32_helpers_are_big_endian},
    };
    for (size_t k = 0; k < sizeof tests / sizeof tests[0]; k++)
        if (!CU_add_test(s, tests[k].name, tests[k].fn))
            return -1;
    return 0;
}
