/*
 * Tests for the piece picker, through picker.h only: block geometry, policy
 * (only pieces the peer has, partial first, random then rarest, endgame),
 * hostile PIECE coordinates, piece hand-over and blame, resume, and a stress
 * test of 8 peer threads meant to run under ThreadSanitizer.
 */
#include <CUnit/CUnit.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "picker.h"

#define BS PICKER_BLOCK_SIZE
#define MAX_TEST_PIECES 64 /* bitfields in these tests are fixed arrays */
#define BF_BYTES (MAX_TEST_PIECES / 8)

/* ---- helpers ---- */

static void set_all(uint8_t *bf, uint32_t count)
{
    memset(bf, 0, BF_BYTES);
    for (uint32_t i = 0; i < count; i++)
        picker_set_bit(bf, i);
}

static void clear_bit(uint8_t *bf, uint32_t i)
{
    bf[i >> 3] &= (uint8_t) ~(0x80u >> (i & 7));
}

/* The byte a fake peer sends at offset k of block (piece, begin). */
static uint8_t pattern(uint32_t piece, uint32_t begin, uint32_t k)
{
    return (uint8_t)(piece * 37u + begin / BS * 11u + k * 3u + 1u);
}

/* The piece holds the bytes its blocks were sent with, and the digest the
 * picker computed as they came is the SHA-1 of those bytes. */
static bool piece_bytes_ok(const struct picker_piece *pp)
{
    for (uint32_t off = 0; off < pp->length; off++)
        if (pp->data[off] != pattern(pp->index, off - off % BS, off % BS))
            return false;
    uint8_t want[SHA1_LEN];
    return pp->digest_ok && sha1(pp->data, pp->length, want) &&
           memcmp(want, pp->digest, SHA1_LEN) == 0;
}

/* Sends block b from `peer`: claim, copy the pattern, end. Returns whether it
 * completed the piece (then *done holds it). Fails the test if not claimable. */
static bool deliver(struct picker *p, uint16_t peer, const struct picker_block *b,
                    struct picker_piece *done)
{
    uint8_t *dst = picker_block_begin(p, peer, b->piece, b->begin, b->length);
    CU_ASSERT_PTR_NOT_NULL_FATAL(dst);
    for (uint32_t k = 0; k < b->length; k++)
        dst[k] = pattern(b->piece, b->begin, k);
    return picker_block_end(p, peer, b->piece, b->begin, true, done);
}

/* Reserves one block (single-block pieces) and returns its piece, or -1. */
static long reserve_one(struct picker *p, uint16_t peer, const uint8_t *bf)
{
    struct picker_block b;
    if (picker_reserve(p, peer, bf, &b, 1) != 1)
        return -1;
    return (long)b.piece;
}

/* Downloads and verifies the whole single-block piece a reservation gives. */
static long fetch_and_verify_one(struct picker *p, uint16_t peer, const uint8_t *bf)
{
    struct picker_block b;
    struct picker_piece done;
    if (picker_reserve(p, peer, bf, &b, 1) != 1)
        return -1;
    CU_ASSERT_TRUE_FATAL(deliver(p, peer, &b, &done));
    picker_piece_verified(p, done.index);
    free(done.data);
    return (long)b.piece;
}

/* ---- geometry ---- */

static void test_picker_new_rejects_inconsistent_geometry(void)
{
    CU_ASSERT_PTR_NULL(picker_new(0, BS, 1, NULL));
    CU_ASSERT_PTR_NULL(picker_new(1, 0, 1, NULL));
    CU_ASSERT_PTR_NULL(picker_new(1, BS, 0, NULL));
    CU_ASSERT_PTR_NULL(picker_new(2, BS, BS, NULL));
    CU_ASSERT_PTR_NULL(picker_new(1, BS, BS + 1, NULL));
    struct picker *p = picker_new(2, BS, BS + 1, NULL);
    CU_ASSERT_PTR_NOT_NULL(p);
    picker_free(p);
    picker_free(NULL);
}

/* Reserves every block with one peer and checks each (piece, begin) appears
 * once with the expected length. */
static void check_block_sizes(uint32_t count, uint32_t plen, uint64_t total)
{
    struct picker *p = picker_new(count, plen, total, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    uint8_t bf[BF_BYTES];
    set_all(bf, count);
    struct picker_block b[256];
    size_t n = picker_reserve(p, 1, bf, b, 256);
    uint64_t sum = 0;
    for (size_t k = 0; k < n; k++) {
        uint32_t this_plen =
            b[k].piece + 1 == count ? (uint32_t)(total - (uint64_t)plen * (count - 1)) : plen;
        uint32_t want = this_plen - b[k].begin < BS ? this_plen - b[k].begin : BS;
        CU_ASSERT_EQUAL(b[k].begin % BS, 0);
        CU_ASSERT_TRUE(b[k].begin < this_plen);
        CU_ASSERT_EQUAL(b[k].length, want);
        for (size_t j = 0; j < k; j++)
            CU_ASSERT_FALSE(b[j].piece == b[k].piece && b[j].begin == b[k].begin);
        sum += b[k].length;
    }
    CU_ASSERT_EQUAL(sum, total);
    CU_ASSERT_EQUAL(picker_bytes_left(p), total);
    picker_free(p);
}

static void test_picker_block_sizes_cover_short_last_piece(void)
{
    /* 3 pieces of 2 blocks; the last piece is 16384 + 100 bytes. */
    check_block_sizes(3, 2 * BS, 2 * 2 * BS + BS + 100);
    /* A piece length that is not a multiple of 16 KiB: 16384, 16384, 7232. */
    check_block_sizes(3, 40000, 2 * 40000 + 100);
    /* One tiny piece. */
    check_block_sizes(1, 4 * BS, 1);
}

/* ---- policy ---- */

static void test_picker_gives_peer_only_pieces_it_has(void)
{
    uint8_t have[BF_BYTES] = {0};
    for (uint32_t i = 0; i < 4; i++)
        picker_set_bit(have, i);
    struct picker *p = picker_new(16, BS, 16 * BS, have);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);

    uint8_t bf[BF_BYTES] = {0};
    picker_set_bit(bf, 2); /* complete already */
    picker_set_bit(bf, 3); /* complete already */
    picker_set_bit(bf, 5);
    picker_set_bit(bf, 9);
    picker_peer_add_bitfield(p, bf);
    CU_ASSERT_TRUE(picker_peer_interesting(p, bf));

    struct picker_block b[16];
    size_t n = picker_reserve(p, 1, bf, b, 16);
    CU_ASSERT_EQUAL_FATAL(n, 2);
    CU_ASSERT_TRUE((b[0].piece == 5 && b[1].piece == 9) || (b[0].piece == 9 && b[1].piece == 5));
    CU_ASSERT_EQUAL(picker_reserve(p, 1, bf, b, 16), 0);

    uint8_t only_done[BF_BYTES] = {0};
    picker_set_bit(only_done, 0);
    picker_set_bit(only_done, 3);
    CU_ASSERT_FALSE(picker_peer_interesting(p, only_done));
    CU_ASSERT_EQUAL(picker_reserve(p, 2, only_done, b, 16), 0);
    uint8_t none[BF_BYTES] = {0};
    CU_ASSERT_EQUAL(picker_reserve(p, 3, none, b, 16), 0);
    picker_free(p);
}

static void test_picker_finishes_partial_pieces_first(void)
{
    struct picker *p = picker_new(8, 4 * BS, 8 * 4 * BS, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    uint8_t bf[BF_BYTES];
    set_all(bf, 8);
    struct picker_block first, more[3], other;
    struct picker_piece done;

    CU_ASSERT_EQUAL_FATAL(picker_reserve(p, 1, bf, &first, 1), 1);
    CU_ASSERT_FALSE(deliver(p, 1, &first, &done));
    /* Another peer is steered to the rest of the started piece. */
    CU_ASSERT_EQUAL_FATAL(picker_reserve(p, 2, bf, more, 3), 3);
    for (int k = 0; k < 3; k++) {
        CU_ASSERT_EQUAL(more[k].piece, first.piece);
        CU_ASSERT_NOT_EQUAL(more[k].begin, first.begin);
    }
    /* Returned blocks of the started piece come before any new piece. */
    picker_unreserve(p, 2, &more[1]);
    CU_ASSERT_EQUAL_FATAL(picker_reserve(p, 3, bf, &other, 1), 1);
    CU_ASSERT_EQUAL(other.piece, first.piece);
    CU_ASSERT_EQUAL(other.begin, more[1].begin);
    /* With the started piece fully requested, a new piece begins. */
    CU_ASSERT_EQUAL_FATAL(picker_reserve(p, 3, bf, &other, 1), 1);
    CU_ASSERT_NOT_EQUAL(other.piece, first.piece);
    picker_free(p);
}

/* Availability: piece 0 has 1 peer, the others 3. */
static void add_skewed_availability(struct picker *p, uint32_t count)
{
    uint8_t all[BF_BYTES], most[BF_BYTES];
    set_all(all, count);
    set_all(most, count);
    clear_bit(most, 0);
    picker_peer_add_bitfield(p, all);
    picker_peer_add_bitfield(p, most);
    picker_peer_add_bitfield(p, most);
}

static void test_picker_random_phase_ignores_rarity(void)
{
    uint8_t all[BF_BYTES];
    set_all(all, 16);
    int picked_rarest = 0, trials = 40;
    for (int t = 0; t < trials; t++) {
        struct picker *p = picker_new(16, BS, 16 * BS, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        add_skewed_availability(p, 16);
        picked_rarest += reserve_one(p, 1, all) == 0;
        picker_free(p);
    }
    /* Rarest-first would pick piece 0 every time; random picks it ~1/16. */
    CU_ASSERT_TRUE(picked_rarest < trials / 2);
}

static void test_picker_rarest_first_after_random_phase(void)
{
    const uint32_t count = 12;
    struct picker *p = picker_new(count, BS, (uint64_t)count * BS, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    uint8_t all[BF_BYTES], no10[BF_BYTES], no10_11[BF_BYTES];
    set_all(all, count);
    set_all(no10, count);
    clear_bit(no10, 10);
    set_all(no10_11, count);
    clear_bit(no10_11, 10);
    clear_bit(no10_11, 11);
    picker_peer_add_bitfield(p, all);
    picker_peer_add_bitfield(p, no10);
    picker_peer_add_bitfield(p, no10_11);
    /* Availability: piece 10 -> 1, piece 11 -> 2, others -> 3. Finish the
     * random phase on pieces other than 10 and 11. */
    for (uint32_t k = 0; k < PICKER_RANDOM_FIRST; k++)
        CU_ASSERT_TRUE(fetch_and_verify_one(p, 9, no10_11) >= 0);
    CU_ASSERT_EQUAL(picker_pieces_done(p), PICKER_RANDOM_FIRST);

    CU_ASSERT_EQUAL(reserve_one(p, 1, all), 10);
    CU_ASSERT_EQUAL(reserve_one(p, 1, all), 11);
    long next = reserve_one(p, 1, all);
    CU_ASSERT_TRUE(next >= 0 && next < 10);
    picker_free(p);
}

/* Before any piece was started there is no neighbour to prefer: the first
 * start among equally rare pieces is random. */
static void test_picker_rarest_ties_broken_at_random(void)
{
    uint8_t have[BF_BYTES] = {0}, all[BF_BYTES], most[BF_BYTES];
    for (uint32_t i = 0; i < PICKER_RANDOM_FIRST; i++)
        picker_set_bit(have, i);
    set_all(all, 16);
    set_all(most, 16);
    clear_bit(most, 6);
    clear_bit(most, 13);
    int got6 = 0, got13 = 0, other = 0;
    for (int t = 0; t < 40; t++) {
        struct picker *p = picker_new(16, BS, 16 * BS, have);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        picker_peer_add_bitfield(p, all);
        picker_peer_add_bitfield(p, most);
        long i = reserve_one(p, 1, all);
        got6 += i == 6;
        got13 += i == 13;
        other += i != 6 && i != 13;
        picker_free(p);
    }
    CU_ASSERT_EQUAL(other, 0);
    CU_ASSERT_TRUE(got6 > 0 && got13 > 0);
}

/* Locality: with equal availability the rarest phase starts the piece right
 * after the one started last, whichever peer asks, so pieces complete next
 * to each other and the writer coalesces them; a rarer piece still wins and
 * the run continues after it. */
static void test_picker_rarest_phase_starts_consecutive_pieces(void)
{
    const uint32_t count = 32;
    uint8_t have[BF_BYTES] = {0}, all[BF_BYTES];
    for (uint32_t i = 0; i < PICKER_RANDOM_FIRST; i++)
        picker_set_bit(have, i); /* the random phase is over */
    set_all(all, count);
    struct picker *p = picker_new(count, BS, (uint64_t)count * BS, have);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    picker_peer_add_bitfield(p, all);
    picker_peer_add_bitfield(p, all);

    /* The first start is random (nothing was started yet); the next ones
     * follow it, alternating between two peers, wrapping past the end and
     * skipping the pieces we have. */
    long prev = reserve_one(p, 1, all);
    CU_ASSERT_TRUE_FATAL(prev >= (long)PICKER_RANDOM_FIRST && prev < (long)count);
    for (int k = 0; k < 12; k++) {
        long want = prev + 1 == (long)count ? (long)PICKER_RANDOM_FIRST : prev + 1;
        long got = reserve_one(p, (uint16_t)(1 + k % 2), all);
        CU_ASSERT_EQUAL(got, want);
        prev = got;
    }

    /* One peer leaves and a third arrives without piece r: r is now the
     * only piece with availability 1 and wins over the next index. */
    long r = prev + 5 >= (long)count ? prev + 5 - (long)count + (long)PICKER_RANDOM_FIRST
                                     : prev + 5;
    uint8_t no_r[BF_BYTES];
    set_all(no_r, count);
    clear_bit(no_r, (uint32_t)r);
    picker_peer_remove_bitfield(p, all);
    picker_peer_add_bitfield(p, no_r);
    CU_ASSERT_EQUAL(reserve_one(p, 1, all), r);
    /* Then the run goes on after r. */
    long after = r + 1 == (long)count ? (long)PICKER_RANDOM_FIRST : r + 1;
    CU_ASSERT_EQUAL(reserve_one(p, 2, all), after);
    picker_free(p);
}

static void test_picker_have_messages_update_rarity(void)
{
    uint8_t have[BF_BYTES] = {0}, all[BF_BYTES];
    for (uint32_t i = 0; i < PICKER_RANDOM_FIRST; i++)
        picker_set_bit(have, i);
    set_all(all, 8);
    struct picker *p = picker_new(8, BS, 8 * BS, have);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    picker_peer_add_bitfield(p, all);
    picker_peer_have(p, 4);
    picker_peer_have(p, 5);
    picker_peer_have(p, 7);
    picker_peer_have(p, 8);          /* out of range: ignored */
    picker_peer_have(p, UINT32_MAX); /* out of range: ignored */
    CU_ASSERT_EQUAL(reserve_one(p, 1, all), 6);
    /* A peer with pieces 4 and 5 leaves: 4 and 5 become the rarest. */
    uint8_t gone[BF_BYTES] = {0};
    picker_set_bit(gone, 4);
    picker_set_bit(gone, 5);
    picker_peer_remove_bitfield(p, gone);
    picker_peer_remove_bitfield(p, gone);
    long i = reserve_one(p, 1, all);
    CU_ASSERT_TRUE(i == 4 || i == 5);
    picker_free(p);
}

/* ---- endgame and giving back ---- */

static void test_picker_endgame_shares_block_with_one_more_peer(void)
{
    uint8_t all[BF_BYTES];
    set_all(all, 1);
    struct picker *p = picker_new(1, 3 * BS, 3 * BS, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    struct picker_block a[8], b[8], c[8];
    struct picker_piece done;

    CU_ASSERT_EQUAL_FATAL(picker_reserve(p, 1, all, a, 2), 2);
    CU_ASSERT_FALSE(picker_in_endgame(p));
    CU_ASSERT_EQUAL_FATAL(picker_reserve(p, 1, all, a + 2, 8), 1);
    CU_ASSERT_TRUE(picker_in_endgame(p));
    /* Never the same block twice to the same peer. */
    CU_ASSERT_EQUAL(picker_reserve(p, 1, all, b, 8), 0);
    /* A second peer gets every outstanding block once. */
    CU_ASSERT_EQUAL_FATAL(picker_reserve(p, 2, all, b, 8), 3);
    CU_ASSERT_EQUAL(picker_reserve(p, 2, all, c, 8), 0);
    /* At most two requesters per block. */
    CU_ASSERT_EQUAL(picker_reserve(p, 3, all, c, 8), 0);

    /* Peer 2's copy of one block arrives: the block is no longer wanted, and
     * peer 1's copy is refused. */
    CU_ASSERT_FALSE(deliver(p, 2, &b[0], &done));
    CU_ASSERT_FALSE(picker_block_wanted(p, &b[0]));
    CU_ASSERT_TRUE(picker_block_wanted(p, &b[1]));
    CU_ASSERT_PTR_NULL(picker_block_begin(p, 1, b[0].piece, b[0].begin, b[0].length));
    picker_unreserve(p, 1, &b[0]); /* peer 1 cancels: harmless */
    CU_ASSERT_EQUAL(picker_reserve(p, 3, all, c, 8), 0);

    /* Peer 1 gives up on b[1]: peer 3 may take it as the second requester. */
    picker_unreserve(p, 1, &b[1]);
    CU_ASSERT_EQUAL_FATAL(picker_reserve(p, 3, all, c, 8), 1);
    CU_ASSERT_EQUAL(c[0].piece, b[1].piece);
    CU_ASSERT_EQUAL(c[0].begin, b[1].begin);
    picker_free(p);
}

static void test_picker_failed_receive_keeps_other_request(void)
{
    uint8_t all[BF_BYTES];
    set_all(all, 1);
    struct picker *p = picker_new(1, BS, BS, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    struct picker_block a, b, c;
    CU_ASSERT_EQUAL_FATAL(picker_reserve(p, 1, all, &a, 1), 1);
    CU_ASSERT_EQUAL_FATAL(picker_reserve(p, 2, all, &b, 1), 1);

    CU_ASSERT_PTR_NOT_NULL(picker_block_begin(p, 1, a.piece, a.begin, a.length));
    /* While peer 1's copy arrives, peer 2's copy is refused and nobody new
     * gets the block. */
    CU_ASSERT_PTR_NULL(picker_block_begin(p, 2, b.piece, b.begin, b.length));
    CU_ASSERT_EQUAL(picker_reserve(p, 3, all, &c, 1), 0);
    /* Peer 1's connection drops mid-block: peer 2 still has it requested, so
     * it is still wanted, and one more peer may join. */
    CU_ASSERT_FALSE(picker_block_end(p, 1, a.piece, a.begin, false, NULL));
    CU_ASSERT_TRUE(picker_block_wanted(p, &b));
    CU_ASSERT_EQUAL(picker_reserve(p, 3, all, &c, 1), 1);
    CU_ASSERT_EQUAL(picker_reserve(p, 4, all, &c, 1), 0);
    /* Both requesters give up: the block is missing, for anyone. */
    picker_unreserve(p, 2, &b);
    picker_unreserve(p, 3, &c);
    CU_ASSERT_FALSE(picker_in_endgame(p));
    CU_ASSERT_EQUAL(picker_reserve(p, 4, all, &c, 1), 1);
    picker_free(p);
}

/* A claim ahead of the data is only for a block the peer alone requested;
 * undone, the block is that peer's request again (nobody else gets it); the
 * data arriving after all completes the piece as usual. */
static void test_picker_claim_next_and_unclaim(void)
{
    uint8_t all[BF_BYTES];
    set_all(all, 1);
    struct picker *p = picker_new(1, 3 * BS, 3 * BS, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    struct picker_block a[3], b[3];
    struct picker_piece done;
    CU_ASSERT_EQUAL_FATAL(picker_reserve(p, 1, all, a, 2), 2);
    CU_ASSERT_PTR_NULL(picker_block_claim_next(p, 2, &a[0])); /* not peer 2's */
    uint8_t *dst = picker_block_claim_next(p, 1, &a[1]);
    CU_ASSERT_PTR_NOT_NULL_FATAL(dst);
    CU_ASSERT_PTR_NULL(picker_block_claim_next(p, 1, &a[1])); /* claimed already */
    CU_ASSERT_PTR_NULL(picker_block_begin(p, 2, a[1].piece, a[1].begin, a[1].length));
    picker_block_unclaim(p, 1, &a[1]);
    /* Requested by peer 1 again: the third block is all peer 2 may take, and
     * then endgame lets it share one of peer 1's. */
    CU_ASSERT_EQUAL_FATAL(picker_reserve(p, 2, all, b, 1), 1);
    CU_ASSERT_EQUAL(b[0].begin, 2 * BS);
    CU_ASSERT_TRUE(picker_in_endgame(p));
    CU_ASSERT_EQUAL_FATAL(picker_reserve(p, 2, all, b + 1, 1), 1);
    /* A block two peers asked for is not claimed ahead. */
    CU_ASSERT_EQUAL(b[1].begin, a[0].begin);
    CU_ASSERT_PTR_NULL(picker_block_claim_next(p, 1, &a[0]));
    /* Peer 1's own block can be claimed again, at the same place. */
    CU_ASSERT_PTR_EQUAL_FATAL(picker_block_claim_next(p, 1, &a[1]), dst);
    for (uint32_t k = 0; k < BS; k++)
        dst[k] = pattern(a[1].piece, a[1].begin, k);
    CU_ASSERT_FALSE(picker_block_end(p, 1, a[1].piece, a[1].begin, true, &done));
    picker_block_unclaim(p, 1, &a[1]); /* after the data: no effect */
    CU_ASSERT_FALSE(picker_block_wanted(p, &a[1]));
    CU_ASSERT_FALSE(deliver(p, 1, &a[0], &done));
    CU_ASSERT_TRUE_FATAL(deliver(p, 2, &b[0], &done));
    CU_ASSERT_TRUE(piece_bytes_ok(&done));
    free(done.data);
    picker_free(p);
}

static void test_picker_unreserve_on_disconnect_frees_blocks(void)
{
    struct picker *p = picker_new(2, 4 * BS, 8 * BS, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    uint8_t only0[BF_BYTES] = {0};
    picker_set_bit(only0, 0);
    struct picker_block a[4], b[4];

    picker_peer_add_bitfield(p, only0);
    CU_ASSERT_EQUAL_FATAL(picker_reserve(p, 1, only0, a, 4), 4);
    picker_peer_add_bitfield(p, only0);
    CU_ASSERT_EQUAL(picker_reserve(p, 2, only0, b, 4), 0); /* not endgame: piece 1 untouched */

    picker_unreserve(p, 3, &a[0]); /* peer 3 never held it: ignored */
    CU_ASSERT_EQUAL(picker_reserve(p, 2, only0, b, 4), 0);

    for (int k = 0; k < 4; k++) /* peer 1 disconnects */
        picker_unreserve(p, 1, &a[k]);
    picker_peer_remove_bitfield(p, only0);
    CU_ASSERT_EQUAL_FATAL(picker_reserve(p, 2, only0, b, 4), 4);
    for (int k = 0; k < 4; k++)
        CU_ASSERT_EQUAL(b[k].piece, 0);
    picker_free(p);
}

/* ---- hostile PIECE messages ---- */

static void test_picker_block_begin_rejects_bad_claims(void)
{
    /* Pieces 0 and 1: 2 blocks; piece 2: 16384 + 3616 bytes; piece 1 is
     * never started. */
    struct picker *p = picker_new(3, 2 * BS, 4 * BS + 20000, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    uint8_t bf[BF_BYTES] = {0};
    picker_set_bit(bf, 0);
    picker_set_bit(bf, 2);
    struct picker_block b[8];
    CU_ASSERT_EQUAL_FATAL(picker_reserve(p, 1, bf, b, 8), 4);

    CU_ASSERT_PTR_NULL(picker_block_begin(p, 1, 3, 0, BS));
    CU_ASSERT_PTR_NULL(picker_block_begin(p, 1, UINT32_MAX, 0, BS));
    CU_ASSERT_PTR_NULL(picker_block_begin(p, 1, 1, 0, BS)); /* not started */
    CU_ASSERT_PTR_NULL(picker_block_begin(p, 1, 0, 100, BS));
    CU_ASSERT_PTR_NULL(picker_block_begin(p, 1, 0, BS - 1, 1));
    CU_ASSERT_PTR_NULL(picker_block_begin(p, 1, 0, 2 * BS, BS));
    CU_ASSERT_PTR_NULL(picker_block_begin(p, 1, 0, UINT32_MAX - UINT32_MAX % BS, BS));
    CU_ASSERT_PTR_NULL(picker_block_begin(p, 1, 0, 0, BS - 1));
    CU_ASSERT_PTR_NULL(picker_block_begin(p, 1, 0, 0, BS + 1));
    CU_ASSERT_PTR_NULL(picker_block_begin(p, 1, 0, 0, 0));
    CU_ASSERT_PTR_NULL(picker_block_begin(p, 1, 2, BS, BS)); /* last block is 3616 */
    CU_ASSERT_PTR_NULL(picker_block_begin(p, 1, 2, BS, UINT32_MAX));
    CU_ASSERT_PTR_NULL(picker_block_begin(p, 0, 0, 0, BS)); /* peer id 0 is nobody */
    CU_ASSERT_FALSE(picker_block_end(p, 1, 7, 0, true, NULL));
    CU_ASSERT_FALSE(picker_block_end(p, 1, 0, 100, true, NULL));
    CU_ASSERT_FALSE(picker_block_end(p, 1, 0, 0, true, NULL)); /* never claimed */

    uint8_t *dst = picker_block_begin(p, 1, 2, BS, 3616);
    CU_ASSERT_PTR_NOT_NULL(dst);
    /* Duplicate claims, from another peer or the same one. */
    CU_ASSERT_PTR_NULL(picker_block_begin(p, 2, 2, BS, 3616));
    CU_ASSERT_PTR_NULL(picker_block_begin(p, 1, 2, BS, 3616));
    /* Only the claimant can end the claim. */
    CU_ASSERT_FALSE(picker_block_end(p, 2, 2, BS, false, NULL));
    CU_ASSERT_PTR_NULL(picker_block_begin(p, 2, 2, BS, 3616));
    CU_ASSERT_FALSE(picker_block_end(p, 1, 2, BS, true, NULL));
    /* Received: a late copy is refused too. */
    CU_ASSERT_PTR_NULL(picker_block_begin(p, 2, 2, BS, 3616));
    CU_ASSERT_FALSE(picker_block_end(p, 1, 2, BS, true, NULL));
    picker_free(p); /* frees the buffers of the pieces in progress */
}

/* ---- completion, verification, blame ---- */

static void test_picker_completed_piece_holds_block_bytes(void)
{
    const uint32_t count = 3, plen = 3 * BS;
    const uint64_t total = 2 * (uint64_t)plen + BS + 777;
    struct picker *p = picker_new(count, plen, total, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    uint8_t all[BF_BYTES];
    set_all(all, count);
    struct picker_block b[16];
    size_t n = picker_reserve(p, 1, all, b, 16);
    CU_ASSERT_EQUAL_FATAL(n, 8);
    uint32_t completed = 0;
    for (size_t k = n; k-- > 0;) { /* deliver in reverse order */
        struct picker_piece done;
        if (!deliver(p, 1, &b[k], &done))
            continue;
        completed++;
        CU_ASSERT_EQUAL(done.length, done.index + 1 == count ? BS + 777 : plen);
        CU_ASSERT_TRUE(piece_bytes_ok(&done));
        CU_ASSERT_FALSE(picker_have(p, done.index));
        picker_piece_verified(p, done.index);
        CU_ASSERT_TRUE(picker_have(p, done.index));
        free(done.data);
    }
    CU_ASSERT_EQUAL(completed, count);
    CU_ASSERT_TRUE(picker_is_complete(p));
    CU_ASSERT_EQUAL(picker_bytes_left(p), 0);
    picker_free(p);
}

static void test_picker_piece_failed_blames_senders_and_refetches(void)
{
    struct picker *p = picker_new(1, 4 * BS, 4 * BS, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    uint8_t all[BF_BYTES];
    set_all(all, 1);
    struct picker_block b[4];
    CU_ASSERT_EQUAL_FATAL(picker_reserve(p, 7, all, b, 2), 2);
    CU_ASSERT_EQUAL_FATAL(picker_reserve(p, 3, all, b + 2, 1), 1);
    CU_ASSERT_EQUAL_FATAL(picker_reserve(p, 9, all, b + 3, 1), 1);
    uint16_t sender[4] = {7, 7, 3, 9};
    struct picker_piece done;
    for (int k = 0; k < 3; k++)
        CU_ASSERT_FALSE(deliver(p, sender[k], &b[k], &done));
    CU_ASSERT_TRUE_FATAL(deliver(p, sender[3], &b[3], &done));
    free(done.data);

    uint16_t blame[8] = {0};
    size_t nb = picker_piece_failed(p, 0, blame, 8);
    CU_ASSERT_EQUAL_FATAL(nb, 3);
    int seen = 0;
    for (size_t k = 0; k < nb; k++)
        seen |= (blame[k] == 7) << 0 | (blame[k] == 3) << 1 | (blame[k] == 9) << 2;
    CU_ASSERT_EQUAL(seen, 7);
    CU_ASSERT_EQUAL(picker_piece_failed(p, 0, blame, 8), 0); /* no longer hashing */

    /* The piece can be fetched again, from anyone, and blame is capped. */
    CU_ASSERT_FALSE(picker_have(p, 0));
    CU_ASSERT_EQUAL(picker_bytes_left(p), 4 * BS);
    CU_ASSERT_EQUAL_FATAL(picker_reserve(p, 5, all, b, 4), 4);
    for (int k = 0; k < 4; k++)
        CU_ASSERT_EQUAL(deliver(p, 5, &b[k], &done), k == 3);
    CU_ASSERT_TRUE(piece_bytes_ok(&done)); /* hashed afresh, not on top of the bad copy */
    free(done.data);
    CU_ASSERT_EQUAL(picker_piece_failed(p, 0, blame, 8), 1);
    CU_ASSERT_EQUAL(blame[0], 5);
    picker_free(p);
}

/* The digest is hashed in order as blocks come: blocks that arrive ahead of
 * the hashed prefix wait, and the one that fills the gap hashes them all. The
 * short last block and the piece's completion come with the last delivery,
 * whichever block that is. */
static void test_picker_digest_of_blocks_out_of_order(void)
{
    uint32_t plen = 4 * BS + 100;
    struct picker *p = picker_new(1, plen, plen, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    uint8_t all[BF_BYTES];
    set_all(all, 1);
    struct picker_block b[5];
    CU_ASSERT_EQUAL_FATAL(picker_reserve(p, 1, all, b, 5), 5);
    CU_ASSERT_EQUAL(b[4].length, 100);
    static const int order[5] = {3, 1, 4, 0, 2};
    struct picker_piece done;
    for (int k = 0; k < 5; k++)
        CU_ASSERT_EQUAL(deliver(p, 1, &b[order[k]], &done), k == 4);
    CU_ASSERT_EQUAL(done.length, plen);
    CU_ASSERT_TRUE(piece_bytes_ok(&done));
    picker_piece_verified(p, 0);
    free(done.data);
    CU_ASSERT_TRUE(picker_is_complete(p));
    picker_free(p);
}

/* A block cut off (ok=false) leaves a gap that the hasher stops at; the
 * block fetched again fills it. */
static void test_picker_digest_waits_for_refetched_block(void)
{
    struct picker *p = picker_new(1, 3 * BS, 3 * BS, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    uint8_t all[BF_BYTES];
    set_all(all, 1);
    struct picker_block b[3], again;
    struct picker_piece done;
    CU_ASSERT_EQUAL_FATAL(picker_reserve(p, 1, all, b, 3), 3);
    CU_ASSERT_FALSE(deliver(p, 1, &b[0], &done));
    uint8_t *dst = picker_block_begin(p, 1, b[1].piece, b[1].begin, b[1].length);
    CU_ASSERT_PTR_NOT_NULL_FATAL(dst);
    memset(dst, 0xee, b[1].length / 2); /* half of it, then the connection drops */
    CU_ASSERT_FALSE(picker_block_end(p, 1, b[1].piece, b[1].begin, false, NULL));
    CU_ASSERT_FALSE(deliver(p, 1, &b[2], &done));
    CU_ASSERT_EQUAL_FATAL(picker_reserve(p, 2, all, &again, 1), 1);
    CU_ASSERT_EQUAL(again.begin, b[1].begin);
    CU_ASSERT_TRUE_FATAL(deliver(p, 2, &again, &done));
    CU_ASSERT_TRUE(piece_bytes_ok(&done));
    free(done.data);
    picker_free(p);
}

/* After a failure the piece is on parole: one peer fetches all of it, so a
 * second failure names a single culprit. */
static void test_picker_failed_piece_retried_from_one_peer(void)
{
    struct picker *p = picker_new(2, 4 * BS, 8 * BS, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    uint8_t only0[BF_BYTES] = {0x80}, all[BF_BYTES];
    set_all(all, 2);
    struct picker_block b[4];
    struct picker_piece done;
    CU_ASSERT_EQUAL_FATAL(picker_reserve(p, 1, only0, b, 2), 2);
    CU_ASSERT_EQUAL_FATAL(picker_reserve(p, 2, only0, b + 2, 2), 2);
    for (int k = 0; k < 4; k++)
        (void)deliver(p, k < 2 ? 1 : 2, &b[k], &done);
    free(done.data);
    uint16_t blame[4];
    CU_ASSERT_EQUAL_FATAL(picker_piece_failed(p, 0, blame, 4), 2);

    /* Peer 1 takes one block of piece 0: it now owns the whole piece. */
    CU_ASSERT_EQUAL_FATAL(picker_reserve(p, 1, only0, b, 1), 1);
    CU_ASSERT_EQUAL(b[0].piece, 0);
    /* Peer 2 gets nothing of piece 0, not even in endgame, only piece 1. */
    struct picker_block other[8];
    size_t n = picker_reserve(p, 2, all, other, 8);
    for (size_t k = 0; k < n; k++)
        CU_ASSERT_EQUAL(other[k].piece, 1);
    CU_ASSERT_PTR_NULL(picker_block_begin(p, 2, 0, BS, BS));
    /* The owner leaves: the piece is free for one new owner. */
    picker_unreserve(p, 1, &b[0]);
    CU_ASSERT_EQUAL(picker_reserve(p, 2, only0, other, 8), 4);
    picker_free(p);
}

/* A verified piece is not servable until the writer says it is on disk. */
static void test_picker_serves_only_pieces_on_disk(void)
{
    uint8_t have[BF_BYTES] = {0x80}, all[BF_BYTES], disk[BF_BYTES];
    set_all(all, 2);
    struct picker *p = picker_new(2, BS, 2 * BS, have);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_TRUE(picker_on_disk(p, 0)); /* resumed pieces are on disk */
    CU_ASSERT_EQUAL(fetch_and_verify_one(p, 3, all), 1);
    CU_ASSERT_TRUE(picker_have(p, 1));
    CU_ASSERT_FALSE(picker_on_disk(p, 1));
    CU_ASSERT_EQUAL(picker_pieces_on_disk(p), 1);
    picker_copy_disk_bitfield(p, disk);
    CU_ASSERT_EQUAL(disk[0], 0x80);
    picker_piece_written(p, 1);
    picker_piece_written(p, 1); /* twice is harmless */
    picker_piece_written(p, 7); /* out of range is ignored */
    CU_ASSERT_TRUE(picker_on_disk(p, 1));
    CU_ASSERT_EQUAL(picker_pieces_on_disk(p), 2);
    picker_copy_disk_bitfield(p, disk);
    CU_ASSERT_EQUAL(disk[0], 0xc0);
    picker_free(p);
}

static void test_picker_resume_bitfield_counts_as_done(void)
{
    const uint32_t count = 10;
    const uint64_t total = 9 * (uint64_t)BS + 1000;
    uint8_t have[BF_BYTES] = {0}, copy[BF_BYTES];
    picker_set_bit(have, 0);
    picker_set_bit(have, 3);
    picker_set_bit(have, 9); /* the short last piece */
    struct picker *p = picker_new(count, BS, total, have);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(picker_pieces_done(p), 3);
    CU_ASSERT_EQUAL(picker_bytes_left(p), total - 2 * BS - 1000);
    CU_ASSERT_TRUE(picker_have(p, 3));
    CU_ASSERT_FALSE(picker_have(p, 4));
    CU_ASSERT_FALSE(picker_have(p, count));
    memset(copy, 0xff, sizeof copy);
    picker_copy_bitfield(p, copy);
    CU_ASSERT_EQUAL(memcmp(copy, have, 2), 0);
    CU_ASSERT_FALSE(picker_peer_interesting(p, have));
    struct picker_block b;
    CU_ASSERT_EQUAL(picker_reserve(p, 1, have, &b, 1), 0);
    CU_ASSERT_FALSE(picker_is_complete(p));
    picker_free(p);

    uint8_t full[BF_BYTES];
    set_all(full, count);
    p = picker_new(count, BS, total, full);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_TRUE(picker_is_complete(p));
    CU_ASSERT_EQUAL(picker_bytes_left(p), 0);
    CU_ASSERT_FALSE(picker_in_endgame(p));
    CU_ASSERT_EQUAL(picker_reserve(p, 1, full, &b, 1), 0);
    picker_free(p);
}

static void test_picker_bytes_left_drops_only_when_verified(void)
{
    const uint64_t total = 2 * (uint64_t)BS + 10;
    struct picker *p = picker_new(3, BS, total, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    uint8_t all[BF_BYTES];
    set_all(all, 3);
    struct picker_block b[3];
    CU_ASSERT_EQUAL_FATAL(picker_reserve(p, 1, all, b, 3), 3);
    uint64_t left = total;
    for (int k = 0; k < 3; k++) {
        struct picker_piece done;
        CU_ASSERT_TRUE_FATAL(deliver(p, 1, &b[k], &done));
        CU_ASSERT_EQUAL(picker_bytes_left(p), left);
        CU_ASSERT_FALSE(picker_is_complete(p));
        picker_piece_verified(p, done.index);
        picker_piece_verified(p, done.index); /* twice: ignored */
        left -= done.length;
        CU_ASSERT_EQUAL(picker_bytes_left(p), left);
        CU_ASSERT_EQUAL(picker_pieces_done(p), (uint32_t)k + 1);
        free(done.data);
    }
    CU_ASSERT_TRUE(picker_is_complete(p));
    CU_ASSERT_FALSE(picker_in_endgame(p));
    picker_free(p);
}

/* ---- stress: 8 peer threads ---- */

#define STRESS_THREADS 8
#define STRESS_ROUNDS 20 /* fresh pickers: more interleavings, each endgame again */
#define STRESS_PIECES 48
#define STRESS_PIECE_LEN (4 * BS)
#define STRESS_TOTAL ((uint64_t)(STRESS_PIECES - 1) * STRESS_PIECE_LEN + 30000)
#define STRESS_FAILS 4    /* hash failures injected per round, at most */
#define STRESS_SECONDS 60 /* a hang fails the test instead of the run */

struct stress_peer {
    struct picker *p;
    uint16_t id;
    uint32_t rng;
    atomic_int *verified;   /* [STRESS_PIECES], per piece */
    atomic_int *fails_left; /* shared by the round's threads */
    /* Read by the main thread after join: */
    int errors;
    int dropped; /* copies refused by picker_block_begin */
    int cut;     /* receptions ended with ok=false */
    int failed;  /* pieces reported bad */
};

static uint32_t stress_random(struct stress_peer *sp)
{
    uint32_t x = sp->rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    sp->rng = x;
    return x;
}

static bool past_deadline(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec - start->tv_sec > STRESS_SECONDS;
}

static void stress_hash_result(struct stress_peer *sp, struct picker_piece *done)
{
    if (done->index >= STRESS_PIECES || !piece_bytes_ok(done))
        sp->errors++;
    if (stress_random(sp) % 8 == 0 && atomic_fetch_sub(sp->fails_left, 1) > 0) {
        uint16_t blame[STRESS_THREADS];
        size_t n = picker_piece_failed(sp->p, done->index, blame, STRESS_THREADS);
        for (size_t k = 0; k < n; k++)
            sp->errors += blame[k] == 0 || blame[k] > STRESS_THREADS;
        sp->errors += n == 0;
        sp->failed++;
    } else {
        picker_piece_verified(sp->p, done->index);
        atomic_fetch_add(&sp->verified[done->index], 1);
    }
    free(done->data);
}

/* One reserved block: give it back, drop it, or receive it (sometimes cut). */
static void stress_handle_block(struct stress_peer *sp, const struct picker_block *b)
{
    uint32_t r = stress_random(sp);
    if (r % 8 == 0 || !picker_block_wanted(sp->p, b)) {
        picker_unreserve(sp->p, sp->id, b);
        return;
    }
    uint8_t *dst = picker_block_begin(sp->p, sp->id, b->piece, b->begin, b->length);
    if (!dst) { /* endgame: the other copy won; drop ours */
        sp->dropped++;
        picker_unreserve(sp->p, sp->id, b);
        return;
    }
    bool ok = r % 16 != 1;
    uint32_t n = ok ? b->length : b->length / 2;
    for (uint32_t k = 0; k < n; k++)
        dst[k] = ok ? pattern(b->piece, b->begin, k) : 0xee;
    sp->cut += !ok;
    struct picker_piece done;
    if (picker_block_end(sp->p, sp->id, b->piece, b->begin, ok, &done))
        stress_hash_result(sp, &done);
}

static void *stress_peer_thread_main(void *arg)
{
    struct stress_peer *sp = arg;
    uint8_t bf[BF_BYTES];
    set_all(bf, STRESS_PIECES);
    for (uint32_t i = 0; i < STRESS_PIECES && sp->id != 1; i++)
        if (i % 4 == sp->id % 4) /* peer 1 has everything; others lack a quarter */
            clear_bit(bf, i);
    picker_peer_add_bitfield(sp->p, bf);
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (!picker_is_complete(sp->p) && !past_deadline(&start)) {
        struct picker_block blocks[4];
        size_t n = picker_reserve(sp->p, sp->id, bf, blocks, 4);
        for (size_t k = 0; k < n; k++)
            stress_handle_block(sp, &blocks[k]);
        if (stress_random(sp) % 64 == 0) { /* reconnect */
            picker_peer_remove_bitfield(sp->p, bf);
            picker_peer_add_bitfield(sp->p, bf);
        }
        if (n == 0)
            sched_yield();
    }
    picker_peer_remove_bitfield(sp->p, bf);
    return NULL;
}

/* One download by 8 threads; adds the threads' counters to *total. */
static void stress_round(uint32_t round, struct stress_peer *total)
{
    struct picker *p = picker_new(STRESS_PIECES, STRESS_PIECE_LEN, STRESS_TOTAL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    atomic_int verified[STRESS_PIECES];
    atomic_int fails_left;
    atomic_init(&fails_left, STRESS_FAILS);
    for (int i = 0; i < STRESS_PIECES; i++)
        atomic_init(&verified[i], 0);
    struct stress_peer peers[STRESS_THREADS];
    pthread_t tids[STRESS_THREADS];
    int started = 0;
    for (int t = 0; t < STRESS_THREADS; t++) {
        uint32_t seed = 2654435761u * (uint32_t)(t + 1) + round * 40503u;
        peers[t] = (struct stress_peer){.p = p,
                                        .id = (uint16_t)(t + 1),
                                        .rng = seed ? seed : 1,
                                        .verified = verified,
                                        .fails_left = &fails_left};
        int rc = pthread_create(&tids[t], NULL, stress_peer_thread_main, &peers[t]);
        CU_ASSERT_EQUAL(rc, 0);
        started += rc == 0;
    }
    for (int t = 0; t < started; t++) {
        pthread_join(tids[t], NULL);
        total->errors += peers[t].errors;
        total->dropped += peers[t].dropped;
        total->cut += peers[t].cut;
        total->failed += peers[t].failed;
    }
    CU_ASSERT_TRUE(picker_is_complete(p));
    CU_ASSERT_EQUAL(picker_bytes_left(p), 0);
    CU_ASSERT_EQUAL(picker_pieces_done(p), STRESS_PIECES);
    for (int i = 0; i < STRESS_PIECES; i++)
        CU_ASSERT_EQUAL(atomic_load(&verified[i]), 1);
    picker_free(p);
}

static void test_picker_stress_eight_peer_threads(void)
{
    struct stress_peer total = {0};
    for (uint32_t round = 0; round < STRESS_ROUNDS; round++)
        stress_round(round, &total);
    CU_ASSERT_EQUAL(total.errors, 0);
    /* The hostile paths really ran. */
    CU_ASSERT_TRUE(total.cut > 0);
    CU_ASSERT_TRUE(total.failed > 0);
    if (getenv("PICKER_STRESS_VERBOSE"))
        printf("\n    stress: dropped %d, cut %d, failed %d\n", total.dropped, total.cut,
               total.failed);
}

/* Called by tests/test_main.c (see suites.h there). */
int test_picker_register(void);

int test_picker_register(void)
{
    CU_pSuite s = CU_add_suite("picker", NULL, NULL);
    if (!s)
        return -1;
    struct {
        const char *name;
        CU_TestFunc fn;
    } tests[] = {
        {"new rejects inconsistent geometry", test_picker_new_rejects_inconsistent_geometry},
        {"block sizes cover short last piece", test_picker_block_sizes_cover_short_last_piece},
        {"gives peer only pieces it has", test_picker_gives_peer_only_pieces_it_has},
        {"finishes partial pieces first", test_picker_finishes_partial_pieces_first},
        {"random phase ignores rarity", test_picker_random_phase_ignores_rarity},
        {"rarest first after random phase", test_picker_rarest_first_after_random_phase},
        {"rarest ties broken at random", test_picker_rarest_ties_broken_at_random},
        {"rarest phase starts consecutive pieces",
         test_picker_rarest_phase_starts_consecutive_pieces},
        {"have messages update rarity", test_picker_have_messages_update_rarity},
        {"endgame shares block with one more peer",
         test_picker_endgame_shares_block_with_one_more_peer},
        {"failed receive keeps other request", test_picker_failed_receive_keeps_other_request},
        {"unreserve on disconnect frees blocks", test_picker_unreserve_on_disconnect_frees_blocks},
        {"claim next and unclaim", test_picker_claim_next_and_unclaim},
        {"block begin rejects bad claims", test_picker_block_begin_rejects_bad_claims},
        {"completed piece holds block bytes", test_picker_completed_piece_holds_block_bytes},
        {"piece failed blames senders and refetches",
         test_picker_piece_failed_blames_senders_and_refetches},
        {"failed piece retried from one peer", test_picker_failed_piece_retried_from_one_peer},
        {"digest of blocks out of order", test_picker_digest_of_blocks_out_of_order},
        {"digest waits for refetched block", test_picker_digest_waits_for_refetched_block},
        {"serves only pieces on disk", test_picker_serves_only_pieces_on_disk},
        {"resume bitfield counts as done", test_picker_resume_bitfield_counts_as_done},
        {"bytes left drops only when verified", test_picker_bytes_left_drops_only_when_verified},
        {"stress: eight peer threads", test_picker_stress_eight_peer_threads},
    };
    for (size_t k = 0; k < sizeof tests / sizeof tests[0]; k++)
        if (!CU_add_test(s, tests[k].name, tests[k].fn))
            return -1;
    return 0;
}
