/*
 * picker: the shared piece picker. Which block should this peer fetch next,
 * where do its bytes go, and when is a piece complete?
 *
 * One `struct picker` is shared by every peer thread of a download and guarded
 * by ONE mutex inside it; every function below takes and releases that mutex
 * itself, so callers never hold it and never hold it across I/O.
 *
 * Policy (BEP 3 practice, as libtorrent and Transmission do it):
 *   - pieces partly downloaded are finished first;
 *   - until PICKER_RANDOM_FIRST pieces are complete, a random piece is chosen
 *     (to get something to trade quickly);
 *   - after that, rarest first (lowest availability); among equally rare
 *     pieces, the one right after the piece most recently started by any peer
 *     (so peers start neighbouring pieces, completed pieces tend to be
 *     adjacent and the writer coalesces them into sequential writes; random
 *     ties would scatter writes over the whole torrent);
 *   - work is handed out in blocks of PICKER_BLOCK_SIZE (16 KiB; the last block
 *     of the last piece may be shorter), so several peers can share one piece;
 *   - endgame: once every missing block has been requested, a block already
 *     requested by one peer may be given to one more (at most 2 requesters);
 *     when one copy arrives, the other requester finds out through
 *     picker_block_wanted() and sends `cancel`.
 *
 * Piece data: the picker owns one buffer per piece in progress. A peer thread
 * receiving a PIECE message calls picker_block_begin() to claim the block and
 * get the address where its bytes belong, reads from the socket straight into
 * it (without the lock: the claim makes that region the thread's alone), then
 * calls picker_block_end(). The picker hashes a piece as its blocks arrive,
 * in order, while they are still in the CPU cache: picker_block_end may feed
 * the digest with this block and the received blocks after it (without the
 * lock; one thread at a time per piece). The caller whose call hashes the
 * last bytes of a piece receives the whole piece buffer and its SHA-1
 * (ownership moves to it), compares the digest, and reports
 * picker_piece_verified() or picker_piece_failed().
 *
 * Peers are named by a small id chosen by the session (1..PICKER_MAX_PEER_ID);
 * the picker records which peers sent which blocks so that a piece failing its
 * hash can be blamed on its contributors.
 */
#ifndef PT_PICKER_H
#define PT_PICKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sha1.h"

#define PICKER_BLOCK_SIZE 16384u
/* Random picks before rarest-first: a new peer has nothing to trade, so any
 * complete piece beats a rare but slow one. libtorrent uses 4 too. */
#define PICKER_RANDOM_FIRST 4u
#define PICKER_MAX_PEER_ID 65535u

struct picker;

struct picker_block {
    uint32_t piece;
    uint32_t begin;  /* byte offset in the piece, a multiple of PICKER_BLOCK_SIZE */
    uint32_t length; /* bytes; PICKER_BLOCK_SIZE except at the very end */
};

/* A piece whose blocks have all arrived and been hashed. `data` (length
 * bytes) is owned by the receiver, who must report picker_piece_verified/failed
 * and then release it with picker_release_buffer (or hand it to someone who
 * will). */
struct picker_piece {
    uint32_t index;
    uint32_t length;
    uint8_t *data;
    uint8_t digest[SHA1_LEN]; /* SHA-1 of data, valid if digest_ok */
    bool digest_ok;           /* false: OpenSSL failed, the piece is unverifiable */
};

/* piece_length > 0, total_length > 0, piece_count == ceil(total/piece_length).
 * `have` (ceil(piece_count/8) bytes, may be NULL) marks pieces already verified
 * (resume). Returns NULL on no memory. */
struct picker *picker_new(uint32_t piece_count, uint32_t piece_length, uint64_t total_length,
                          const uint8_t *have);
void picker_free(struct picker *p); /* NULL is a no-op; frees piece buffers still held */

/* Availability. `bitfield` is ceil(piece_count/8) bytes, spare bits zero. A
 * peer thread calls add when the peer's bitfield arrives, have for each HAVE,
 * and remove with its final bitfield when the connection ends. */
void picker_peer_add_bitfield(struct picker *p, const uint8_t *bitfield);
void picker_peer_remove_bitfield(struct picker *p, const uint8_t *bitfield);
void picker_peer_have(struct picker *p, uint32_t index);

/* Does the peer have a piece we still need? */
bool picker_peer_interesting(struct picker *p, const uint8_t *bitfield);

/* Reserves up to `max` blocks the peer (id `peer_id`, having `bitfield`) can
 * send, writes them to out[], returns how many. 0 means nothing to do with this
 * peer now. Each returned block must later be given back with picker_unreserve
 * (choke, disconnect, timeout) unless its data arrives (picker_block_end). */
size_t picker_reserve(struct picker *p, uint16_t peer_id, const uint8_t *bitfield,
                      struct picker_block *out, size_t max);

/* Gives back a reservation (the peer choked us, disconnected or timed out). */
void picker_unreserve(struct picker *p, uint16_t peer_id, const struct picker_block *b);

/* False once the block has arrived or the piece is complete: the requester
 * should send `cancel` (endgame) and forget the block. */
bool picker_block_wanted(struct picker *p, const struct picker_block *b);

/* A PIECE message for (piece, begin, length) is arriving from `peer_id`.
 * Returns where its `length` bytes go, or NULL if the block is unknown, of
 * the wrong size, already received or being received from another peer: read
 * the bytes elsewhere and drop them (count them as wasted). */
uint8_t *picker_block_begin(struct picker *p, uint16_t peer_id, uint32_t piece, uint32_t begin,
                            uint32_t length);

/* A claim ahead of the data, for a peer that reads several blocks in one
 * call: the block must be requested by `peer_id` alone (so no other peer can
 * be sending it). Returns where its bytes go, or NULL (nothing changed).
 * End it with picker_block_end once the bytes are in, or with
 * picker_block_unclaim if they turn out not to be coming yet. */
uint8_t *picker_block_claim_next(struct picker *p, uint16_t peer_id, const struct picker_block *b);

/* Undoes picker_block_claim_next: the block is again requested by peer_id
 * (and nothing of it has arrived). */
void picker_block_unclaim(struct picker *p, uint16_t peer_id, const struct picker_block *b);

/* Ends a claim made by picker_block_begin or _claim_next. ok=false: the bytes
 * did not all arrive (connection lost): the block goes back to "missing".
 * ok=true: the block is received, and if it continues the piece's hashed
 * prefix and no other thread is hashing the piece, this call hashes it and
 * the received blocks after it, without the lock. If that reaches the end of
 * the piece, *done_out is filled, ownership of done_out->data moves to the
 * caller, returns true. Otherwise returns false: another call completes the
 * piece (with one thread, the call that delivers its last missing block). */
bool picker_block_end(struct picker *p, uint16_t peer_id, uint32_t piece, uint32_t begin, bool ok,
                      struct picker_piece *done_out);

/* After hashing: the piece is good. The picker marks it complete; the caller
 * keeps ownership of the data (normally handing it to the storage writer). */
void picker_piece_verified(struct picker *p, uint32_t index);

/* After hashing: the piece is bad. All its blocks become missing again. Writes
 * the ids of the peers that sent blocks of it to blame_out (up to max_blame,
 * distinct) and returns how many. The caller frees the data. */
size_t picker_piece_failed(struct picker *p, uint32_t index, uint16_t *blame_out,
                           size_t max_blame);

/* What we may serve and announce: a verified piece only once the storage
 * writer has written it (before that, a read from disk would return zeros).
 * The writer's callback reports each written piece here; pieces given to
 * picker_new as `have` count as on disk. */
void picker_piece_written(struct picker *p, uint32_t index);
bool picker_on_disk(struct picker *p, uint32_t index);
uint32_t picker_pieces_on_disk(struct picker *p);
void picker_copy_disk_bitfield(struct picker *p, uint8_t *out);

/* Piece buffers come from `pool` (see bufpool.h) instead of malloc: when all
 * its buffers are in flight, no new piece is started. Call before any other
 * thread uses the picker. */
struct bufpool;
void picker_set_pool(struct picker *p, struct bufpool *pool);

/* Gives back a piece buffer handed out by picker_block_end (to the pool, or
 * free() without one). NULL is a no-op. Any thread; takes no picker lock. */
void picker_release_buffer(struct picker *p, uint8_t *data);

/* A counter (lock-free) that grows whenever work may have become available
 * to reserve: a buffer returned, a reservation given back, a piece failed.
 * A peer whose picker_reserve came back short retries only once it moved,
 * instead of rescanning the picker after every message. */
uint64_t picker_changes(struct picker *p);

/* Progress and state, each a consistent snapshot taken under the lock. */
bool picker_is_complete(struct picker *p);
uint32_t picker_pieces_done(struct picker *p);
uint64_t picker_bytes_left(struct picker *p); /* bytes of pieces not yet verified */
bool picker_in_endgame(struct picker *p);
bool picker_have(struct picker *p, uint32_t index);
/* Copies our verified-pieces bitfield (ceil(piece_count/8) bytes) to out. */
void picker_copy_bitfield(struct picker *p, uint8_t *out);

/* Helpers on raw bitfields (no lock; bit 0 is the high bit of byte 0, BEP 3). */
static inline bool picker_bit(const uint8_t *bf, uint32_t i)
{
    return (bf[i >> 3] >> (7 - (i & 7))) & 1;
}
static inline void picker_set_bit(uint8_t *bf, uint32_t i)
{
    bf[i >> 3] |= (uint8_t)(0x80u >> (i & 7));
}

#endif
