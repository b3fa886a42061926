/*
 * picker.c: the shared piece picker (see picker.h for the contract).
 *
 * Design. One array of `struct piece`, indexed by piece number, guarded by one
 * mutex. A piece moves through four states:
 *
 *   MISSING --first block reserved--> ACTIVE --last byte hashed--> VERIFYING
 *      ^                                                               |   |
 *      +------------------------ picker_piece_failed ------------------+   |
 *                                       picker_piece_verified --> COMPLETE <+
 *
 * Only ACTIVE and VERIFYING pieces carry per-block state (an array allocated
 * on activation), and only ACTIVE pieces own a data buffer, so memory follows
 * the pieces in flight, not the size of the torrent. The block array stays
 * until the verdict so that a bad piece can be blamed on its senders.
 *
 * Hashing as the bytes come. An ACTIVE piece also carries a running SHA-1 of
 * its first `hashed` bytes. Whoever ends a block (picker_block_end) right at
 * that cursor, while no other thread is hashing the piece, becomes its hasher:
 * it marks the piece `hashing`, drops the lock, feeds the received blocks
 * from the cursor on to the digest, and retakes the lock to move the cursor
 * and look for more. Other threads go on delivering blocks meanwhile; the
 * hasher picks up those that extend the run. The bytes are hashed a few
 * microseconds after the socket wrote them, still in the CPU cache: hashing
 * a whole 4 MiB piece after its last block cost 0.25 s of CPU per 256 MiB on
 * the bench machine, and 0.15 s in 64 KiB steps just after each copy (a
 * scratch benchmark of copy-then-hash; SHA-NI Xeon). The thread whose run
 * reaches the end of the piece finalises the digest and receives the buffer:
 * that is when the piece leaves ACTIVE, so no other thread can touch it.
 *
 * A block is MISSING, REQUESTED (by one peer, or two in endgame), RECEIVING
 * (claimed by one peer, whose bytes are being copied into the buffer without
 * the lock) or RECEIVED. The claim is what makes the lock-free copy safe: no
 * other thread gets that block's address, and a piece cannot leave ACTIVE
 * (buffer handed over or freed) while one of its blocks is RECEIVING.
 *
 * `unrequested` counts MISSING blocks over the whole torrent (a MISSING piece
 * counts all its blocks), so "endgame" is simply unrequested == 0.
 *
 * Parole: a piece that failed its hash is retried from ONE peer (`exclusive`,
 * `owner`), so that if it fails again the blame is unambiguous and a peer
 * sending bad data cannot hide behind an honest one sharing its pieces. The
 * owner is forgotten when it holds no request or claim on the piece any more.
 *
 * Choice of a new piece: one scan that wraps, first eligible piece wins in
 * the random phase, first piece of lowest availability in rarest-first. Only
 * the start differs. The random phase starts at a random piece (a cheap random
 * pick; a piece just after a run of ineligible ones is favoured a little,
 * which does not matter). Rarest-first starts right after `last_started`, the
 * piece most recently activated by any peer: among equally rare pieces the
 * next index wins, so in an evenly seeded swarm the peers start pieces in
 * ascending order, pieces complete next to each other, and the writer can
 * write runs of neighbours with one pwritev each (sequential disk writes)
 * instead of seeking all over the files. A rarer piece still wins wherever it
 * is. Before any piece was started the start is random.
 */
#include "picker.h"

#include "mutex.h"

#include "bufpool.h"
#include "sha1.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum piece_state { PIECE_MISSING, PIECE_ACTIVE, PIECE_VERIFYING, PIECE_COMPLETE };

/* BLOCK_MISSING is 0 so that a calloc'd block array starts all missing. */
enum block_state { BLOCK_MISSING = 0, BLOCK_REQUESTED, BLOCK_RECEIVING, BLOCK_RECEIVED };

/* Endgame sends a block to at most this many peers at once: a second copy
 * covers one slow peer; more would only waste other peers' upload. */
#define MAX_REQUESTERS 2

struct block {
    uint16_t req[MAX_REQUESTERS]; /* peers with an outstanding request, 0 = free slot */
    uint16_t from;                /* peer receiving or that sent it, else 0 */
    uint8_t state;                /* enum block_state */
};

struct piece {
    struct block *blocks; /* ACTIVE and VERIFYING only, else NULL */
    uint8_t *buf;         /* piece-sized; ACTIVE only, else NULL */
    struct sha1_stream *sha; /* ACTIVE only: the digest of buf[0, hashed) */
    uint32_t hashed;      /* ACTIVE: bytes hashed, whole blocks, all RECEIVED */
    uint32_t avail;       /* connected peers known to have this piece */
    uint32_t missing;     /* ACTIVE: blocks in BLOCK_MISSING (lets reserve skip full pieces) */
    uint8_t state;        /* enum piece_state */
    bool hashing;         /* ACTIVE: a thread is feeding `sha`, without the lock */
    bool exclusive;       /* failed its hash once: retried from one peer only */
    bool on_disk;         /* COMPLETE and written by the storage writer: servable */
    uint16_t owner;       /* exclusive: the peer fetching it now, 0 = nobody yet */
};

/*
 * Locking: [I] immutable after picker_new, read without the lock; [M] guarded
 * by `mu`, including everything reachable from `pieces`. Exception: the bytes
 * of a RECEIVING block inside a piece buffer belong to the thread that claimed
 * it (picker_block_begin .. picker_block_end), which writes them without the
 * lock; and while a piece is `hashing`, its `sha` and the RECEIVED bytes from
 * `hashed` on belong to its hasher, which reads them without the lock (nobody
 * writes a RECEIVED block). No other thread touches a buffer until it is
 * handed over under `mu`.
 */
struct picker {
    uint32_t piece_count;  /* [I] */
    uint32_t piece_length; /* [I] bytes, every piece but the last */
    uint32_t last_length;  /* [I] bytes of the last piece */
    uint64_t total_length; /* [I] bytes */

    struct pt_mutex mu;
    struct piece *pieces; /* [I] pointer, [M] its piece_count entries */
    uint32_t done;        /* [M] pieces COMPLETE */
    uint32_t on_disk;     /* [M] pieces COMPLETE and on disk */
    uint64_t bytes_done;  /* [M] bytes of COMPLETE pieces */
    uint64_t unrequested; /* [M] MISSING blocks, see the design comment */
    uint64_t rng;         /* [M] xorshift64 state, never 0 */
    uint32_t last_started; /* [M] piece activated last, piece_count = none yet */
    struct bufpool *pool; /* [I] after picker_set_pool (before any thread); NULL: malloc */
    atomic_uint_fast64_t changes; /* atomic, no lock: bumped when work may have freed up */
};

/* ---- locking: one pt_mutex (see mutex.h) ---- */

static void take_lock(struct picker *p)
{
    pt_mutex_lock(&p->mu);
}

static void assert_locked(const struct picker *p)
{
    pt_mutex_assert_held(&p->mu);
}

static void drop_lock(struct picker *p)
{
    pt_mutex_unlock(&p->mu);
}

/* ---- geometry (immutable, no lock) ---- */

static uint32_t piece_len(const struct picker *p, uint32_t i)
{
    return i + 1 == p->piece_count ? p->last_length : p->piece_length;
}

static uint32_t blocks_in(uint32_t plen)
{
    return plen / PICKER_BLOCK_SIZE + (plen % PICKER_BLOCK_SIZE != 0);
}

static uint32_t block_len(uint32_t plen, uint32_t bi)
{
    uint32_t left = plen - bi * PICKER_BLOCK_SIZE;
    return left < PICKER_BLOCK_SIZE ? left : PICKER_BLOCK_SIZE;
}

static bool geometry_ok(uint32_t piece_count, uint32_t piece_length, uint64_t total_length)
{
    if (piece_count == 0 || piece_length == 0 || total_length == 0)
        return false;
    uint64_t need = total_length / piece_length + (total_length % piece_length != 0);
    return need == piece_count;
}

/* ---- randomness: xorshift64, state inside the picker ---- */

static uint64_t make_seed(const struct picker *p)
{
    struct timespec ts = {0, 0};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t x = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec ^ (uintptr_t)p;
    /* splitmix64 finaliser: spreads the few bits that vary over all 64. */
    x += 0x9e3779b97f4a7c15u;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    x ^= x >> 31;
    return x ? x : 1;
}

/* Uniform enough in [0, n), n > 0: the modulo bias is below 2^-32 * n. */
static uint32_t random_below_locked(struct picker *p, uint32_t n)
{
    assert_locked(p);
    uint64_t x = p->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    p->rng = x;
    return (uint32_t)((x >> 16) % n);
}

/* ---- block bookkeeping ---- */

static int requester_count(const struct block *b)
{
    int n = 0;
    for (int k = 0; k < MAX_REQUESTERS; k++)
        n += b->req[k] != 0;
    return n;
}

static bool has_requester(const struct block *b, uint16_t peer)
{
    for (int k = 0; k < MAX_REQUESTERS; k++)
        if (b->req[k] == peer)
            return true;
    return false;
}

static void add_requester(struct block *b, uint16_t peer)
{
    for (int k = 0; k < MAX_REQUESTERS; k++) {
        if (b->req[k] == 0) {
            b->req[k] = peer;
            return;
        }
    }
    assert(!"block has no free requester slot");
}

/* Returns whether `peer` held a request for the block. */
static bool drop_requester(struct block *b, uint16_t peer)
{
    for (int k = 0; k < MAX_REQUESTERS; k++) {
        if (b->req[k] == peer) {
            b->req[k] = 0;
            return true;
        }
    }
    return false;
}

/* A REQUESTED or RECEIVING block lost its claim or a request: it becomes
 * REQUESTED if someone still asks for it, else MISSING. */
static void block_settle_locked(struct picker *p, struct piece *pc, struct block *b)
{
    assert_locked(p);
    b->from = 0;
    if (requester_count(b) > 0) {
        b->state = BLOCK_REQUESTED;
        return;
    }
    if (b->state != BLOCK_MISSING) {
        p->unrequested++;
        pc->missing++;
    }
    b->state = BLOCK_MISSING;
}

/* The block of an ACTIVE piece at network coordinates (piece, begin), or NULL
 * if they name no such block; its length goes to *len_out. Any input is safe. */
static struct block *find_block_locked(struct picker *p, uint32_t piece, uint32_t begin,
                                       uint32_t *len_out)
{
    assert_locked(p);
    if (piece >= p->piece_count || p->pieces[piece].state != PIECE_ACTIVE)
        return NULL;
    uint32_t plen = piece_len(p, piece);
    if (begin % PICKER_BLOCK_SIZE != 0 || begin >= plen)
        return NULL;
    *len_out = block_len(plen, begin / PICKER_BLOCK_SIZE);
    return &p->pieces[piece].blocks[begin / PICKER_BLOCK_SIZE];
}

/* An exclusive piece whose owner holds no request or claim is free for any
 * one peer again. */
static void release_owner_if_idle_locked(struct picker *p, uint32_t piece)
{
    assert_locked(p);
    struct piece *pc = &p->pieces[piece];
    if (!pc->exclusive || pc->owner == 0 || pc->state != PIECE_ACTIVE)
        return;
    uint32_t nb = blocks_in(piece_len(p, piece));
    for (uint32_t bi = 0; bi < nb; bi++)
        if (pc->blocks[bi].state == BLOCK_REQUESTED || pc->blocks[bi].state == BLOCK_RECEIVING)
            return;
    pc->owner = 0;
}

/* ---- choosing work ---- */

/* Gives a MISSING piece its block array and buffer. False on no memory. */
/* `buf` (piece-sized) becomes the piece's buffer on success; on failure the
 * caller keeps it. */
static bool piece_activate_locked(struct picker *p, uint32_t i, uint8_t *buf)
{
    assert_locked(p);
    struct piece *pc = &p->pieces[i];
    uint32_t plen = piece_len(p, i);
    struct block *blocks = calloc(blocks_in(plen), sizeof *blocks);
    struct sha1_stream *sha = sha1_stream_new();
    if (!blocks || !sha) {
        free(blocks);
        sha1_stream_free(sha);
        return false;
    }
    pc->blocks = blocks;
    pc->buf = buf;
    pc->sha = sha;
    pc->hashed = 0;
    pc->hashing = false;
    pc->missing = blocks_in(plen);
    pc->state = PIECE_ACTIVE;
    p->last_started = i; /* rarest-first continues after it: see the design comment */
    return true;
}

/* May `peer` be given this block? Normally only if nobody asked for it; in
 * endgame (`share`) also if exactly one other peer asked and nothing arrives. */
static bool block_offerable(const struct block *b, uint16_t peer, bool share)
{
    if (b->state == BLOCK_MISSING)
        return true;
    return share && b->state == BLOCK_REQUESTED && requester_count(b) == 1 &&
           !has_requester(b, peer);
}

/* Reserves for `peer` the offerable blocks of ACTIVE piece i, appending them
 * to out[*n] while *n < max. */
static void take_blocks_locked(struct picker *p, uint32_t i, uint16_t peer, bool share,
                               struct picker_block *out, size_t *n, size_t max)
{
    assert_locked(p);
    struct piece *pc = &p->pieces[i];
    uint32_t plen = piece_len(p, i);
    uint32_t nb = blocks_in(plen);
    if (pc->exclusive && pc->owner != 0 && pc->owner != peer)
        return;
    if (!share && pc->missing == 0)
        return; /* every block is asked for already: nothing to scan */
    if (pc->exclusive)
        pc->owner = peer;
    for (uint32_t bi = 0; bi < nb && *n < max; bi++) {
        struct block *b = &pc->blocks[bi];
        if (!block_offerable(b, peer, share))
            continue;
        if (b->state == BLOCK_MISSING) {
            p->unrequested--;
            pc->missing--;
        }
        b->state = BLOCK_REQUESTED;
        add_requester(b, peer);
        out[(*n)++] = (struct picker_block){i, bi * PICKER_BLOCK_SIZE, block_len(plen, bi)};
    }
}

/* Where the scan for a new piece begins: random in the random phase (and
 * before any piece was started), else just after the last piece started, so
 * that ties in rarity go to the next index (locality, see the design comment). */
static uint32_t scan_start_locked(struct picker *p, bool rarest)
{
    assert_locked(p);
    if (!rarest || p->last_started >= p->piece_count)
        return random_below_locked(p, p->piece_count);
    return p->last_started + 1 == p->piece_count ? 0 : p->last_started + 1;
}

/* The MISSING piece the peer has that should be started next: random while
 * fewer than PICKER_RANDOM_FIRST are complete, rarest after (ties to the
 * piece after the last one started). piece_count if there is none. One
 * O(piece_count) scan. */
static uint32_t pick_new_piece_locked(struct picker *p, const uint8_t *bitfield)
{
    assert_locked(p);
    uint32_t count = p->piece_count;
    bool rarest = p->done >= PICKER_RANDOM_FIRST;
    uint32_t start = scan_start_locked(p, rarest);
    uint32_t best = count;
    for (uint32_t k = 0; k < count; k++) {
        uint32_t i = (uint32_t)(((uint64_t)start + k) % count);
        if (p->pieces[i].state != PIECE_MISSING || !picker_bit(bitfield, i))
            continue;
        if (!rarest)
            return i;
        if (best == count || p->pieces[i].avail < p->pieces[best].avail)
            best = i;
    }
    return best;
}

/* ---- hashing as the bytes come (see the design comment) ---- */

/* Bytes [from, to) of a piece that one thread feeds to the piece's digest
 * without the lock. */
struct hash_run {
    uint32_t piece;
    uint32_t from, to;
    const uint8_t *data;     /* the piece buffer */
    struct sha1_stream *sha; /* the piece's digest, the hasher's until it is done */
};

/* If nobody hashes piece i and RECEIVED blocks follow its cursor, makes the
 * caller its hasher: *run_out gets those blocks. */
static bool hash_run_take_locked(struct picker *p, uint32_t i, struct hash_run *run_out)
{
    assert_locked(p);
    struct piece *pc = &p->pieces[i];
    if (pc->hashing)
        return false;
    uint32_t plen = piece_len(p, i);
    uint32_t end = pc->hashed;
    while (end < plen && pc->blocks[end / PICKER_BLOCK_SIZE].state == BLOCK_RECEIVED)
        end += block_len(plen, end / PICKER_BLOCK_SIZE);
    if (end == pc->hashed)
        return false;
    pc->hashing = true;
    *run_out = (struct hash_run){i, pc->hashed, end, pc->buf, pc->sha};
    return true;
}

/* Every byte of the piece is in and hashed: the piece leaves ACTIVE and its
 * buffer moves to the hasher (*done_out; its digest is filled by the caller). */
static void piece_whole_locked(struct picker *p, uint32_t i, struct picker_piece *done_out)
{
    assert_locked(p);
    struct piece *pc = &p->pieces[i];
    done_out->index = i;
    done_out->length = piece_len(p, i);
    done_out->data = pc->buf;
    pc->buf = NULL; /* the caller owns it now */
    pc->sha = NULL; /* the caller frees it */
    pc->hashed = done_out->length;
    pc->hashing = false;
    pc->state = PIECE_VERIFYING;
}

/* Called without the lock by the hasher of run->piece: feeds runs to the
 * digest until no received bytes follow the cursor (false: another block
 * must come first) or the piece is whole (true: *done_out holds it, with its
 * digest, and the caller owns its buffer). */
static bool hash_runs(struct picker *p, struct hash_run *run, struct picker_piece *done_out)
{
    uint32_t plen = piece_len(p, run->piece);
    for (;;) {
        sha1_stream_update(run->sha, run->data + run->from, run->to - run->from);
        if (run->to == plen)
            break;
        take_lock(p);
        struct piece *pc = &p->pieces[run->piece];
        pc->hashed = run->to;
        pc->hashing = false;
        bool more = hash_run_take_locked(p, run->piece, run);
        drop_lock(p);
        if (!more)
            return false;
    }
    assert(done_out);
    struct sha1_stream *sha = run->sha;
    take_lock(p);
    piece_whole_locked(p, run->piece, done_out);
    drop_lock(p);
    done_out->digest_ok = sha1_stream_final(sha, done_out->digest);
    sha1_stream_free(sha);
    return true;
}

/* Ends a successful claim. */
static void block_arrived_locked(struct block *b)
{
    b->state = BLOCK_RECEIVED;
    memset(b->req, 0, sizeof b->req); /* other endgame requesters learn via block_wanted */
}

/* ---- public functions ---- */

struct picker *picker_new(uint32_t piece_count, uint32_t piece_length, uint64_t total_length,
                          const uint8_t *have)
{
    if (!geometry_ok(piece_count, piece_length, total_length))
        return NULL;
    struct picker *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->pieces = calloc(piece_count, sizeof *p->pieces);
    if (!p->pieces || pt_mutex_init(&p->mu) != 0)
        goto fail;
    p->piece_count = piece_count;
    p->piece_length = piece_length;
    p->total_length = total_length;
    p->last_length = (uint32_t)(total_length - (uint64_t)(piece_count - 1) * piece_length);
    for (uint32_t i = 0; i < piece_count; i++) {
        if (have && picker_bit(have, i)) {
            p->pieces[i].state = PIECE_COMPLETE;
            p->pieces[i].on_disk = true; /* resumed pieces are on disk already */
            p->on_disk++;
            p->done++;
            p->bytes_done += piece_len(p, i);
        } else {
            p->unrequested += blocks_in(piece_len(p, i));
        }
    }
    p->rng = make_seed(p);
    p->last_started = piece_count; /* none yet */
    return p;
fail:
    free(p->pieces);
    free(p);
    return NULL;
}

void picker_free(struct picker *p)
{
    if (!p)
        return;
    for (uint32_t i = 0; i < p->piece_count; i++) {
        picker_release_buffer(p, p->pieces[i].buf);
        sha1_stream_free(p->pieces[i].sha);
        free(p->pieces[i].blocks);
    }
    free(p->pieces);
    pt_mutex_destroy(&p->mu);
    free(p);
}

void picker_peer_add_bitfield(struct picker *p, const uint8_t *bitfield)
{
    take_lock(p);
    for (uint32_t i = 0; i < p->piece_count; i++)
        if (picker_bit(bitfield, i) && p->pieces[i].avail < UINT32_MAX)
            p->pieces[i].avail++;
    drop_lock(p);
}

void picker_peer_remove_bitfield(struct picker *p, const uint8_t *bitfield)
{
    take_lock(p);
    for (uint32_t i = 0; i < p->piece_count; i++)
        if (picker_bit(bitfield, i) && p->pieces[i].avail > 0)
            p->pieces[i].avail--;
    drop_lock(p);
}

void picker_peer_have(struct picker *p, uint32_t index)
{
    take_lock(p);
    if (index < p->piece_count && p->pieces[index].avail < UINT32_MAX)
        p->pieces[index].avail++;
    drop_lock(p);
}

bool picker_peer_interesting(struct picker *p, const uint8_t *bitfield)
{
    bool interesting = false;
    take_lock(p);
    for (uint32_t i = 0; i < p->piece_count && !interesting; i++)
        interesting = picker_bit(bitfield, i) && p->pieces[i].state != PIECE_COMPLETE;
    drop_lock(p);
    return interesting;
}

/* Takes up to `want` piece buffers for new pieces BEFORE the picker lock is
 * taken (the pool has its own lock: never hold both), so that a call that
 * cannot start a piece costs no scan. Returns how many it got. */
static size_t take_buffers(struct picker *p, uint8_t **bufs, size_t want)
{
    size_t got = 0;
    while (got < want) {
        bufs[got] = p->pool ? bufpool_try_get(p->pool) : malloc(p->piece_length);
        if (!bufs[got])
            break;
        got++;
    }
    return got;
}

#define PICKER_MAX_NEW_PIECES 64 /* per reserve call: 64 blocks of 16 KiB pieces */

size_t picker_reserve(struct picker *p, uint16_t peer_id, const uint8_t *bitfield,
                      struct picker_block *out, size_t max)
{
    size_t n = 0;
    if (peer_id == 0 || max == 0)
        return 0;
    uint8_t *bufs[PICKER_MAX_NEW_PIECES];
    uint32_t per_piece = blocks_in(p->piece_length);
    size_t want = (max + per_piece - 1) / per_piece;
    size_t nbufs = take_buffers(p, bufs, want < PICKER_MAX_NEW_PIECES ? want
                                                                      : PICKER_MAX_NEW_PIECES);
    take_lock(p);
    for (uint32_t i = 0; i < p->piece_count && n < max; i++)
        if (p->pieces[i].state == PIECE_ACTIVE && picker_bit(bitfield, i))
            take_blocks_locked(p, i, peer_id, false, out, &n, max);
    while (n < max && nbufs > 0) {
        uint32_t i = pick_new_piece_locked(p, bitfield);
        if (i == p->piece_count || !piece_activate_locked(p, i, bufs[nbufs - 1]))
            break;
        nbufs--;
        take_blocks_locked(p, i, peer_id, false, out, &n, max);
    }
    for (uint32_t i = 0; i < p->piece_count && n < max && p->unrequested == 0; i++)
        if (p->pieces[i].state == PIECE_ACTIVE && picker_bit(bitfield, i))
            take_blocks_locked(p, i, peer_id, true, out, &n, max);
    drop_lock(p);
    while (nbufs > 0) /* unused: back to the pool, outside the picker lock */
        picker_release_buffer(p, bufs[--nbufs]);
    return n;
}

void picker_unreserve(struct picker *p, uint16_t peer_id, const struct picker_block *b)
{
    uint32_t len;
    if (peer_id == 0)
        return;
    take_lock(p);
    struct block *blk = find_block_locked(p, b->piece, b->begin, &len);
    if (blk && drop_requester(blk, peer_id) && blk->state == BLOCK_REQUESTED) {
        block_settle_locked(p, &p->pieces[b->piece], blk);
        release_owner_if_idle_locked(p, b->piece);
    }
    drop_lock(p);
    atomic_fetch_add(&p->changes, 1);
}

bool picker_block_wanted(struct picker *p, const struct picker_block *b)
{
    uint32_t len;
    take_lock(p);
    struct block *blk = find_block_locked(p, b->piece, b->begin, &len);
    bool wanted = blk && blk->state != BLOCK_RECEIVED;
    drop_lock(p);
    return wanted;
}

uint8_t *picker_block_begin(struct picker *p, uint16_t peer_id, uint32_t piece, uint32_t begin,
                            uint32_t length)
{
    uint8_t *dst = NULL;
    uint32_t len;
    if (peer_id == 0)
        return NULL;
    take_lock(p);
    struct block *b = find_block_locked(p, piece, begin, &len);
    const struct piece *pc = b ? &p->pieces[piece] : NULL;
    bool on_parole = pc && pc->exclusive && pc->owner != peer_id;
    if (b && !on_parole && len == length &&
        (b->state == BLOCK_MISSING || b->state == BLOCK_REQUESTED)) {
        if (b->state == BLOCK_MISSING) {
            p->unrequested--;
            p->pieces[piece].missing--;
        }
        drop_requester(b, peer_id); /* this request is being answered */
        b->state = BLOCK_RECEIVING;
        b->from = peer_id;
        dst = p->pieces[piece].buf + begin;
    }
    drop_lock(p);
    return dst;
}

uint8_t *picker_block_claim_next(struct picker *p, uint16_t peer_id, const struct picker_block *blk)
{
    uint8_t *dst = NULL;
    uint32_t len;
    take_lock(p);
    struct block *b = find_block_locked(p, blk->piece, blk->begin, &len);
    const struct piece *pc = b ? &p->pieces[blk->piece] : NULL;
    bool on_parole = pc && pc->exclusive && pc->owner != peer_id;
    if (b && !on_parole && len == blk->length && b->state == BLOCK_REQUESTED &&
        requester_count(b) == 1 && has_requester(b, peer_id)) {
        drop_requester(b, peer_id);
        b->state = BLOCK_RECEIVING;
        b->from = peer_id;
        dst = p->pieces[blk->piece].buf + blk->begin;
    }
    drop_lock(p);
    return dst;
}

void picker_block_unclaim(struct picker *p, uint16_t peer_id, const struct picker_block *blk)
{
    uint32_t len;
    take_lock(p);
    struct block *b = find_block_locked(p, blk->piece, blk->begin, &len);
    if (b && b->state == BLOCK_RECEIVING && b->from == peer_id) {
        b->from = 0;
        b->state = BLOCK_REQUESTED;
        add_requester(b, peer_id);
    }
    drop_lock(p);
}

bool picker_block_end(struct picker *p, uint16_t peer_id, uint32_t piece, uint32_t begin, bool ok,
                      struct picker_piece *done_out)
{
    struct hash_run run;
    bool hasher = false;
    uint32_t len;
    take_lock(p);
    struct block *b = find_block_locked(p, piece, begin, &len);
    if (!b || b->state != BLOCK_RECEIVING || b->from != peer_id)
        goto out;
    if (ok) {
        block_arrived_locked(b);
        hasher = hash_run_take_locked(p, piece, &run);
    } else {
        block_settle_locked(p, &p->pieces[piece], b);
        release_owner_if_idle_locked(p, piece);
    }
out:
    drop_lock(p);
    return hasher && hash_runs(p, &run, done_out);
}

void picker_piece_verified(struct picker *p, uint32_t index)
{
    take_lock(p);
    if (index < p->piece_count && p->pieces[index].state == PIECE_VERIFYING) {
        struct piece *pc = &p->pieces[index];
        free(pc->blocks);
        pc->blocks = NULL;
        pc->state = PIECE_COMPLETE;
        p->done++;
        p->bytes_done += piece_len(p, index);
    }
    drop_lock(p);
}

/* Adds `peer` to blame[0..*n) unless it is there already or the list is full. */
static void blame_add(uint16_t *blame, size_t *n, size_t max, uint16_t peer)
{
    for (size_t k = 0; k < *n; k++)
        if (blame[k] == peer)
            return;
    if (*n < max && peer != 0)
        blame[(*n)++] = peer;
}

size_t picker_piece_failed(struct picker *p, uint32_t index, uint16_t *blame_out, size_t max_blame)
{
    size_t n = 0;
    take_lock(p);
    if (index < p->piece_count && p->pieces[index].state == PIECE_VERIFYING) {
        struct piece *pc = &p->pieces[index];
        uint32_t nb = blocks_in(piece_len(p, index));
        for (uint32_t bi = 0; bi < nb; bi++)
            blame_add(blame_out, &n, max_blame, pc->blocks[bi].from);
        free(pc->blocks);
        pc->blocks = NULL;
        pc->state = PIECE_MISSING;
        pc->exclusive = true; /* parole: see the design comment */
        pc->owner = 0;
        p->unrequested += nb;
    }
    drop_lock(p);
    atomic_fetch_add(&p->changes, 1);
    return n;
}

bool picker_is_complete(struct picker *p)
{
    take_lock(p);
    bool complete = p->done == p->piece_count;
    drop_lock(p);
    return complete;
}

uint32_t picker_pieces_done(struct picker *p)
{
    take_lock(p);
    uint32_t done = p->done;
    drop_lock(p);
    return done;
}

uint64_t picker_bytes_left(struct picker *p)
{
    take_lock(p);
    uint64_t left = p->total_length - p->bytes_done;
    drop_lock(p);
    return left;
}

bool picker_in_endgame(struct picker *p)
{
    take_lock(p);
    bool endgame = p->unrequested == 0 && p->done < p->piece_count;
    drop_lock(p);
    return endgame;
}

bool picker_have(struct picker *p, uint32_t index)
{
    take_lock(p);
    bool have = index < p->piece_count && p->pieces[index].state == PIECE_COMPLETE;
    drop_lock(p);
    return have;
}

void picker_copy_bitfield(struct picker *p, uint8_t *out)
{
    take_lock(p);
    memset(out, 0, p->piece_count / 8 + (p->piece_count % 8 != 0));
    for (uint32_t i = 0; i < p->piece_count; i++)
        if (p->pieces[i].state == PIECE_COMPLETE)
            picker_set_bit(out, i);
    drop_lock(p);
}

void picker_piece_written(struct picker *p, uint32_t index)
{
    take_lock(p);
    if (index < p->piece_count && p->pieces[index].state == PIECE_COMPLETE &&
        !p->pieces[index].on_disk) {
        p->pieces[index].on_disk = true;
        p->on_disk++;
    }
    drop_lock(p);
}

bool picker_on_disk(struct picker *p, uint32_t index)
{
    take_lock(p);
    bool yes = index < p->piece_count && p->pieces[index].on_disk;
    drop_lock(p);
    return yes;
}

uint32_t picker_pieces_on_disk(struct picker *p)
{
    take_lock(p);
    uint32_t n = p->on_disk;
    drop_lock(p);
    return n;
}

void picker_copy_disk_bitfield(struct picker *p, uint8_t *out)
{
    take_lock(p);
    memset(out, 0, p->piece_count / 8 + (p->piece_count % 8 != 0));
    for (uint32_t i = 0; i < p->piece_count; i++)
        if (p->pieces[i].on_disk)
            picker_set_bit(out, i);
    drop_lock(p);
}

void picker_set_pool(struct picker *p, struct bufpool *pool)
{
    p->pool = pool;
}

void picker_release_buffer(struct picker *p, uint8_t *data)
{
    if (p->pool)
        bufpool_put(p->pool, data);
    else
        free(data);
    atomic_fetch_add(&p->changes, 1); /* a new piece may start now */
}

uint64_t picker_changes(struct picker *p)
{
    return atomic_load(&p->changes);
}
