/*
 * wire: BEP 3 message layouts. Every fixed-size message is checked for its
 * exact size; a peer that pads or truncates one is broken or hostile and the
 * caller drops it.
 */
#include "wire.h"

#include <string.h>

static const char protocol[] = "BitTorrent protocol";

void wire_handshake_build(uint8_t out[WIRE_HANDSHAKE_LEN], const uint8_t info_hash[20],
                          const uint8_t peer_id[20], const uint8_t reserved[8])
{
    out[0] = 19;
    memcpy(out + 1, protocol, 19);
    if (reserved)
        memcpy(out + 20, reserved, 8);
    else
        memset(out + 20, 0, 8);
    memcpy(out + 28, info_hash, 20);
    memcpy(out + 48, peer_id, 20);
}

bool wire_is_handshake_start(const uint8_t first[20])
{
    return first[0] == 19 && memcmp(first + 1, protocol, 19) == 0;
}

enum pt_err wire_handshake_parse(const uint8_t in[WIRE_HANDSHAKE_LEN], const uint8_t info_hash[20],
                                 uint8_t reserved_out[8], uint8_t peer_id_out[20])
{
    if (!wire_is_handshake_start(in))
        return PT_ERR_HANDSHAKE;
    if (memcmp(in + 28, info_hash, 20) != 0)
        return PT_ERR_HANDSHAKE;
    if (reserved_out)
        memcpy(reserved_out, in + 20, 8);
    if (peer_id_out)
        memcpy(peer_id_out, in + 48, 20);
    return PT_OK;
}

/* The bits past piece_count in the last byte must be zero (BEP 3). */
static bool spare_bits_clear(const uint8_t *bf, size_t len, uint32_t piece_count)
{
    unsigned used = piece_count % 8;
    if (used == 0 || len == 0)
        return true;
    return (bf[len - 1] & (0xffu >> used)) == 0;
}

enum pt_err wire_decode(int id, const uint8_t *p, size_t len, uint32_t piece_count,
                        struct wire_msg *out)
{
    memset(out, 0, sizeof *out);
    out->id = id;
    switch (id) {
    case WIRE_CHOKE:
    case WIRE_UNCHOKE:
    case WIRE_INTERESTED:
    case WIRE_NOT_INTERESTED:
        return len == 0 ? PT_OK : PT_ERR_PROTOCOL;
    case WIRE_HAVE:
        if (len != 4)
            return PT_ERR_PROTOCOL;
        out->index = wire_get_u32(p);
        return out->index < piece_count ? PT_OK : PT_ERR_PROTOCOL;
    case WIRE_BITFIELD:
        if (len != wire_bitfield_len(piece_count) || !spare_bits_clear(p, len, piece_count))
            return PT_ERR_PROTOCOL;
        out->payload = p;
        out->payload_len = len;
        return PT_OK;
    case WIRE_REQUEST:
    case WIRE_CANCEL:
        if (len != 12)
            return PT_ERR_PROTOCOL;
        out->index = wire_get_u32(p);
        out->begin = wire_get_u32(p + 4);
        out->length = wire_get_u32(p + 8);
        return out->index < piece_count ? PT_OK : PT_ERR_PROTOCOL;
    case WIRE_PIECE:
        if (len < 8 || len - 8 > WIRE_MAX_BLOCK)
            return PT_ERR_PROTOCOL;
        out->index = wire_get_u32(p);
        out->begin = wire_get_u32(p + 4);
        out->length = (uint32_t)(len - 8);
        out->payload = p + 8;
        out->payload_len = len - 8;
        return out->index < piece_count ? PT_OK : PT_ERR_PROTOCOL;
    case WIRE_PORT:
        if (len != 2)
            return PT_ERR_PROTOCOL;
        out->port = (uint16_t)(p[0] << 8 | p[1]);
        return PT_OK;
    default: /* WIRE_EXTENDED and ids we do not know: the caller skips them */
        out->payload = p;
        out->payload_len = len;
        return PT_OK;
    }
}

size_t wire_put_simple(uint8_t out[5], enum wire_id id)
{
    wire_put_u32(out, 1);
    out[4] = (uint8_t)id;
    return 5;
}

size_t wire_put_keepalive(uint8_t out[4])
{
    wire_put_u32(out, 0);
    return 4;
}

size_t wire_put_have(uint8_t out[9], uint32_t index)
{
    wire_put_u32(out, 5);
    out[4] = WIRE_HAVE;
    wire_put_u32(out + 5, index);
    return 9;
}

size_t wire_put_request(uint8_t out[17], enum wire_id id, uint32_t index, uint32_t begin,
                        uint32_t length)
{
    wire_put_u32(out, 13);
    out[4] = (uint8_t)id;
    wire_put_u32(out + 5, index);
    wire_put_u32(out + 9, begin);
    wire_put_u32(out + 13, length);
    return 17;
}

size_t wire_put_piece_header(uint8_t out[WIRE_PIECE_HEADER_LEN], uint32_t index, uint32_t begin,
                             uint32_t block_len)
{
    wire_put_u32(out, 9 + block_len);
    out[4] = WIRE_PIECE;
    wire_put_u32(out + 5, index);
    wire_put_u32(out + 9, begin);
    return 13;
}

size_t wire_put_bitfield_header(uint8_t out[5], size_t nbytes)
{
    wire_put_u32(out, (uint32_t)(1 + nbytes));
    out[4] = WIRE_BITFIELD;
    return 5;
}
