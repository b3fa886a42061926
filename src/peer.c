/*
 * peer: DESIGN
 *
 * One thread, one socket, one loop:
 *
 *   connect -> handshake -> loop { housekeeping every tick;
 *                                  top up the request pipeline;
 *                                  wait (bounded) for bytes; read one message }
 *
 * Serving runs in the same loop: requests from a peer we have unchoked (the
 * choker decides, through peer_link.unchoke) are queued, and up to eight
 * blocks are read with pread and sent with one write per turn, so downloading
 * and uploading interleave.
 * New pieces we verify are announced with HAVE at each housekeeping tick.
 *
 * The thread never holds a lock while it blocks: the picker, the swarm and the
 * writer each lock internally for a few memory operations per call. Requests
 * in flight are tracked here (they are this thread's) and given back to the
 * picker the moment the peer chokes us or the connection ends, so another
 * peer can fetch them at once.
 */
#include "peer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#include "buf.h"
#include "log.h"
#include "mse.h"
#include "net.h"
#include "sha1.h"
#include "wake.h"
#include "wire.h"

/* How often housekeeping runs, and the longest a read waits before it: also
 * how long a stop takes to reach every peer thread (ten wake-ups a second per
 * peer cost nothing measurable). */
#define PEER_TICK_MS 100
/* A peer that has just said INTERESTED while we choke it waits for the
 * choker, which runs in the main thread (woken through choke_wake) and
 * answers through link->unchoke. This thread sleeps in poll() on the socket,
 * where no flag can reach it, so for PEER_UNCHOKE_WATCH_MS after the
 * INTERESTED it sleeps PEER_UNCHOKE_POLL_MS at a time instead of a tick:
 * the UNCHOKE then goes out within a few ms, not at the next tick (about
 * 100 ms later for every new leecher of a seed). The watch lasts past one
 * early choke round (SESSION_EARLY_CHOKE_MS); a peer starts at most one per
 * PEER_UNCHOKE_WATCH_MS, so it costs at most 50 extra wake-ups in that time. */
#define PEER_UNCHOKE_WATCH_MS 250
#define PEER_UNCHOKE_POLL_MS 5
/* How long a closing seed waits for the peer to take the blocks still in
 * flight (see linger_close). */
#define PEER_LINGER_MS 2000
/* Blocks guessed ahead per read (see read_blocks). A wrong guess puts what
 * was read past it back into the reader, so they must fit its room. */
#define PEER_GUESS_MAX 3
/* After a wrong guess, this many blocks are read one at a time: a peer that
 * mixes other messages among its blocks (a leecher's HAVEs) then costs a
 * copy at most once per this many blocks. */
#define PEER_GUESS_PAUSE 32
_Static_assert(PEER_GUESS_MAX * (WIRE_PIECE_HEADER_LEN + WIRE_MAX_BLOCK) + NET_LOOKAHEAD <=
                   NET_READER_CAP,
               "a wrong guess must fit back into the reader");
_Static_assert(1 + 2 * PEER_GUESS_MAX <= NET_SCATTER_MAX, "one segment per header and block");

/* Blocks served per turn, sent with one write: a loopback receiver spent
 * twice the CPU on 16 KiB sends as on the 46 KiB a libtorrent seeder
 * averages (README, "What limits ptorrent now"), and one write per batch
 * costs the seeder fewer system calls. Its effect on a leecher's rate was
 * within noise in our runs (the late unchoke, SESSION_EARLY_CHOKE_MS, was
 * what made leechers slow). Eight blocks (128 KiB) fit a socket buffer many
 * times over, so one write rarely has to wait. */
#define PEER_SERVE_BATCH 8
/* Messages read per turn at most, once the first is in (read_messages): a
 * burst of requests, without starving housekeeping. */
#define PEER_READ_BURST 64

/* Slow start: until a peer's first rate is measured (a second after
 * connecting), each block it sends makes room for one more request, so a fast
 * peer's pipeline doubles every round trip instead of waiting that second at
 * PEER_PIPELINE_START. It stops at the depth that lets the batched wait
 * (wake_bytes) sleep for its most: the pipeline is topped up at half depth,
 * so at least depth / 2 blocks are in flight, and half of those must make
 * NET_WAIT_MAX_BYTES. Growing on to PEER_PIPELINE_MAX before any rate was
 * known lengthened the endgame of a 256 MiB download from 4 seeders (wall
 * medians 1.2 s against 0.93 s). */
#define PEER_SLOW_START_MAX (4 * NET_WAIT_MAX_BYTES / PICKER_BLOCK_SIZE)

struct inflight {
    struct picker_block b;
    int64_t sent_ms;
};

struct peer_conn {
    struct peer_shared *sh;
    struct peer_link *link;
    uint16_t id;
    bool inbound;        /* the peer dialled us: it sends its handshake first */
    char name[ADDR_STRLEN];
    int fd;
    struct net_reader *rd;
    uint8_t *bitfield;   /* what the peer has */
    size_t bf_len;
    uint32_t peer_pieces; /* bits set in `bitfield` */
    bool got_bitfield;
    bool reached;        /* handshake done */
    bool never_again;    /* not a peer for this torrent (or ourselves): don't redial */
    bool peer_choking;   /* the peer chokes us (BEP 3 initial state) */
    bool am_interested;
    bool starved;          /* the last picker_reserve gave fewer blocks than asked */
    uint64_t starved_at;   /* picker_changes() then */
    bool am_choking;     /* what we last told the peer (BEP 3 initial state) */
    struct picker_block *reqs; /* the peer's requests to serve, oldest first */
    size_t nreqs;
    uint8_t *told;       /* pieces we have announced (bitfield or HAVE) */
    uint8_t *have_now;   /* scratch: our bitfield, copied from the picker */
    uint32_t told_count;
    uint8_t *up;         /* a PIECE header + a block, for serving */
    uint64_t up_bytes;   /* reported to the swarm at the end */
    struct inflight *q;  /* requests in flight, oldest first: nq of them from q,
                          * which moves up q_mem as the oldest are answered */
    struct inflight *q_mem; /* PEER_PIPELINE_MAX entries */
    size_t nq;
    uint32_t guess_pause; /* blocks to read one by one after a wrong guess */
    struct picker_block *late; /* requests outstanding at the last choke: see on_choke */
    size_t nlate;
    int64_t late_until_ms; /* when `late` goes back to the picker */
    size_t depth;        /* pipeline target */
    bool slow_start;     /* depth grows by one per block until the first rate */
    int64_t last_recv_ms, last_send_ms, last_block_ms, next_tick_ms;
    int64_t interested_ms; /* when the peer last turned interested */
    bool awaiting;       /* requests sent and no block since: the snub clock runs.
                          * Cancelling them (endgame) does not stop it: a peer
                          * that answers nothing is useless either way. */
    uint64_t rate_bytes;
    int64_t rate_start_ms;
    uint64_t down_bytes; /* reported to the swarm at the end */
    uint8_t *scratch;    /* WIRE_MAX_BLOCK bytes for blocks nobody wants */
    uint8_t *msg;        /* WIRE_MAX_MESSAGE bytes for other payloads */
    const char *why;     /* reason the connection ended, for the log */
};

int64_t peer_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static enum pt_err send_bytes(struct peer_conn *c, const void *p, size_t len)
{
    c->last_send_ms = peer_now_ms();
    return net_write_all(c->fd, p, len, PEER_MESSAGE_TIMEOUT_MS, c->sh->stop);
}

static enum pt_err send_simple(struct peer_conn *c, enum wire_id id)
{
    uint8_t m[5];
    return send_bytes(c, m, wire_put_simple(m, id));
}

/* Reads and checks the peer's handshake. */
static enum pt_err read_handshake(struct peer_conn *c, int64_t deadline_ms)
{
    uint8_t hs[WIRE_HANDSHAKE_LEN];
    enum pt_err err = net_read_exact_by(c->rd, hs, sizeof hs, deadline_ms, c->sh->stop);
    if (err == PT_OK)
        err = wire_handshake_parse(hs, c->sh->meta->info_hash, NULL, NULL);
    if (err == PT_ERR_HANDSHAKE) {
        c->why = "bad handshake (wrong protocol or info hash)";
    } else if (err == PT_OK && memcmp(hs + 48, c->sh->peer_id, 20) == 0) {
        c->why = "connected to ourselves"; /* the tracker lists us too */
        err = PT_ERR_HANDSHAKE;
    }
    if (err == PT_ERR_HANDSHAKE)
        c->never_again = true;
    return err;
}

/* Inbound: a caller that opens with anything but the plain handshake is
 * tried as an encrypted (MSE) one; see mse.h. Its first 20 bytes are only
 * looked at: they go back in the reader for whichever handshake follows. */
static enum pt_err answer_encryption(struct peer_conn *c, int64_t deadline_ms)
{
    uint8_t first[20];
    enum pt_err err = net_read_exact_by(c->rd, first, sizeof first, deadline_ms, c->sh->stop);
    struct iovec v = {first, sizeof first};
    if (err != PT_OK || !net_reader_unread(c->rd, &v, 1, 0, sizeof first))
        return err != PT_OK ? err : PT_ERR_HANDSHAKE; /* 20 bytes just read always fit */
    if (wire_is_handshake_start(first))
        return PT_OK;
    const char *why = NULL;
    err = mse_accept(c->rd, c->sh->meta->info_hash, deadline_ms, c->sh->stop, &why);
    if (err != PT_OK) {
        c->why = why ? why : "encrypted (MSE) handshake failed";
        c->never_again = err == PT_ERR_HANDSHAKE;
        return err;
    }
    atomic_fetch_add(&c->sh->counters->encrypted_handshakes, 1);
    log_debug("encrypted (MSE) handshake answered; payload in plain text");
    return PT_OK;
}

/* Outbound: we speak first. Inbound: we check who is calling (and for which
 * torrent) before saying anything. One deadline for all of it: a peer that
 * trickles its bytes cannot hold the thread longer. */
static enum pt_err handshake(struct peer_conn *c)
{
    int64_t deadline_ms = net_now_ms() + PEER_HANDSHAKE_TIMEOUT_MS;
    uint8_t hs[WIRE_HANDSHAKE_LEN];
    wire_handshake_build(hs, c->sh->meta->info_hash, c->sh->peer_id, NULL);
    enum pt_err err = c->inbound ? answer_encryption(c, deadline_ms) : PT_OK;
    if (err == PT_OK && c->inbound)
        err = read_handshake(c, deadline_ms);
    if (err == PT_OK)
        err = send_bytes(c, hs, sizeof hs);
    if (err == PT_OK && !c->inbound)
        err = read_handshake(c, deadline_ms);
    return err;
}

/* After the handshake: our bitfield, if we have anything (BEP 3 allows
 * leaving it out when we have nothing). */
static enum pt_err send_bitfield(struct peer_conn *c)
{
    picker_copy_disk_bitfield(c->sh->picker, c->told);
    c->told_count = 0;
    for (uint32_t i = 0; i < c->sh->meta->piece_count; i++)
        c->told_count += picker_bit(c->told, i);
    if (c->told_count == 0)
        return PT_OK;
    uint8_t hdr[5];
    enum pt_err err = send_bytes(c, hdr, wire_put_bitfield_header(hdr, c->bf_len));
    return err == PT_OK ? send_bytes(c, c->told, c->bf_len) : err;
}

/* Sends HAVE for every piece written to disk since we last told the peer,
 * in one write (a piece is servable only once it is on disk). Not for a
 * piece the peer already has: it could never ask us for it, so the message
 * only costs both sides (libtorrent's default, send_redundant_have off). A
 * seed gets none: with 100 seeders that saves 100 HAVEs per piece. */
static enum pt_err announce_new_pieces(struct peer_conn *c)
{
    if (picker_pieces_on_disk(c->sh->picker) == c->told_count)
        return PT_OK;
    picker_copy_disk_bitfield(c->sh->picker, c->have_now);
    struct buf out;
    buf_init(&out);
    for (uint32_t i = 0; i < c->sh->meta->piece_count; i++) {
        if (!picker_bit(c->have_now, i) || picker_bit(c->told, i))
            continue;
        if (!picker_bit(c->bitfield, i)) {
            uint8_t m[9];
            buf_append(&out, m, wire_put_have(m, i));
        }
        picker_set_bit(c->told, i);
        c->told_count++;
    }
    enum pt_err err = buf_ok(&out) ? PT_OK : PT_ERR_NOMEM;
    if (err == PT_OK && out.len > 0)
        err = send_bytes(c, out.data, out.len);
    buf_release(&out);
    return err;
}

/* Tells the peer when the choker changed its mind; a choke drops the peer's
 * queued requests (BEP 3). */
static enum pt_err apply_choke(struct peer_conn *c)
{
    bool unchoke = atomic_load(&c->link->unchoke);
    if (unchoke != c->am_choking)
        return PT_OK;
    c->am_choking = !unchoke;
    if (c->am_choking)
        c->nreqs = 0;
    return send_simple(c, c->am_choking ? WIRE_CHOKE : WIRE_UNCHOKE);
}

/* REQUEST: queue it if it is for a verified piece, inside the piece, at
 * most one block long, and we are not choking the peer. */
static enum pt_err on_request(struct peer_conn *c, const struct wire_msg *m)
{
    uint32_t psize = metainfo_piece_size(c->sh->meta, m->index);
    if (m->length == 0 || m->length > WIRE_MAX_BLOCK || m->begin > psize ||
        m->length > psize - m->begin)
        return c->why = "request outside the piece or over 16 KiB", PT_ERR_PROTOCOL;
    if (c->am_choking || c->nreqs >= PEER_MAX_QUEUED_REQUESTS ||
        !picker_on_disk(c->sh->picker, m->index))
        return PT_OK; /* dropped, as BEP 3 says for requests while choked */
    c->reqs[c->nreqs++] = (struct picker_block){m->index, m->begin, m->length};
    /* Peers ask for a piece's blocks in order: at its first block, let the
     * kernel read the whole piece ahead while earlier requests are served,
     * so the preads that follow find it in the page cache. Once per piece is
     * enough, and costs one call. */
    if (m->begin == 0)
        storage_advise_willneed(c->sh->storage, (uint64_t)m->index * c->sh->meta->piece_length,
                                psize);
    return PT_OK;
}

static void on_cancel(struct peer_conn *c, const struct wire_msg *m)
{
    for (size_t i = 0; i < c->nreqs; i++) {
        if (c->reqs[i].piece == m->index && c->reqs[i].begin == m->begin &&
            c->reqs[i].length == m->length) {
            memmove(&c->reqs[i], &c->reqs[i + 1], (c->nreqs - i - 1) * sizeof c->reqs[0]);
            c->nreqs--;
            return;
        }
    }
}

/* Puts one PIECE message for block r (header, then the bytes read from
 * storage) at dst, which has room for WIRE_PIECE_HEADER_LEN + r.length. */
static enum pt_err put_upload_block(struct peer_conn *c, struct picker_block r, uint8_t *dst)
{
    struct pt_errctx ctx = {PT_NO_OFFSET, ""};
    uint64_t offset = (uint64_t)r.piece * c->sh->meta->piece_length + r.begin;
    enum pt_err err =
        storage_read(c->sh->storage, offset, dst + WIRE_PIECE_HEADER_LEN, r.length, &ctx);
    if (err != PT_OK) {
        log_error("cannot read block for upload: %s", ctx.msg);
        return c->why = "our storage failed", err;
    }
    wire_put_piece_header(dst, r.piece, r.begin, r.length);
    return PT_OK;
}

/* Sends the oldest queued blocks, up to PEER_SERVE_BATCH of them: one pread
 * each into c->up, then one write for all. Under --max-upload-rate the first
 * block may wait for tokens, the others go only if their tokens are there
 * now, so a turn never sleeps longer than one block did. */
static enum pt_err serve_batch(struct peer_conn *c)
{
    size_t max = c->nreqs < PEER_SERVE_BATCH ? c->nreqs : PEER_SERVE_BATCH;
    size_t n = 0, len = 0;
    uint64_t bytes = 0;
    enum pt_err err = ratelimit_take(c->sh->up_limit, c->reqs[0].length, c->sh->stop);
    while (err == PT_OK && n < max) {
        if (n > 0 && !ratelimit_try_take(c->sh->up_limit, c->reqs[n].length))
            break;
        err = put_upload_block(c, c->reqs[n], c->up + len);
        len += WIRE_PIECE_HEADER_LEN + (size_t)c->reqs[n].length;
        bytes += c->reqs[n].length;
        n++;
    }
    memmove(&c->reqs[0], &c->reqs[n], (c->nreqs - n) * sizeof c->reqs[0]);
    c->nreqs -= n;
    if (err == PT_OK)
        err = send_bytes(c, c->up, len);
    if (err == PT_OK) {
        c->up_bytes += bytes;
        atomic_fetch_add(&c->link->bytes_to, bytes);
        atomic_fetch_add(&c->sh->counters->uploaded, bytes);
    }
    return err;
}

/* Says interested / not interested when what the peer has changes that. */
static enum pt_err update_interest(struct peer_conn *c)
{
    bool want = picker_peer_interesting(c->sh->picker, c->bitfield);
    if (want == c->am_interested || (!want && c->nq > 0))
        return PT_OK;
    c->am_interested = want;
    return send_simple(c, want ? WIRE_INTERESTED : WIRE_NOT_INTERESTED);
}

static void give_back_all(struct peer_conn *c)
{
    for (size_t i = 0; i < c->nq; i++)
        picker_unreserve(c->sh->picker, c->id, &c->q[i].b);
    c->nq = 0;
    c->q = c->q_mem;
}

/* Gives the requests outstanding at the last choke back to the picker. */
static void release_late(struct peer_conn *c)
{
    for (size_t i = 0; i < c->nlate; i++)
        picker_unreserve(c->sh->picker, c->id, &c->late[i]);
    c->nlate = 0;
}

/* The peer choked us: BEP 3 says it dropped our requests. But a block already
 * in the peer's send buffer still comes (libtorrent seeders do this: with 100
 * of them at 512 KiB/s, each choking once early on, 21 MiB of a 64 MiB torrent
 * came after a choke and was thrown away because the block had meanwhile been
 * asked of another peer). So the requests move to `late`, still reserved, and
 * go back to the picker only once the peer has sent no block for
 * PEER_LATE_GRACE_MS (see housekeeping); a late block is used as if still
 * requested (see read_piece). */
static void on_choke(struct peer_conn *c, int64_t now)
{
    release_late(c); /* a second choke: what the first left is not coming */
    for (size_t i = 0; i < c->nq; i++)
        c->late[i] = c->q[i].b;
    c->nlate = c->nq;
    c->nq = 0;
    c->q = c->q_mem;
    c->late_until_ms = now + PEER_LATE_GRACE_MS;
    c->peer_choking = true;
    c->awaiting = false;
}

/* Was (piece, begin, length) asked of this peer before its last choke?
 * Forgets it if so (the caller owns its reservation now), and waits longer
 * for the rest: the peer is still sending. */
static bool take_late(struct peer_conn *c, uint32_t piece, uint32_t begin, uint32_t length,
                      int64_t now)
{
    for (size_t i = 0; i < c->nlate; i++) {
        const struct picker_block *b = &c->late[i];
        if (b->piece == piece && b->begin == begin && b->length == length) {
            c->late[i] = c->late[--c->nlate];
            c->late_until_ms = now + PEER_LATE_GRACE_MS;
            return true;
        }
    }
    return false;
}

/* Blocks mostly arrive oldest first: dropping q[0] is then O(1). */
static void drop_inflight(struct peer_conn *c, size_t i)
{
    if (i == 0)
        c->q++;
    else
        memmove(&c->q[i], &c->q[i + 1], (c->nq - i - 1) * sizeof c->q[0]);
    if (--c->nq == 0)
        c->q = c->q_mem;
}

/* Room for n more requests at the end of q. */
static void make_room(struct peer_conn *c, size_t n)
{
    if ((size_t)(c->q - c->q_mem) + c->nq + n <= PEER_PIPELINE_MAX)
        return;
    memmove(c->q_mem, c->q, c->nq * sizeof c->q[0]);
    c->q = c->q_mem;
}

/* Tops the pipeline up towards `depth` requests, up to 64 per call, sent in
 * one write. */
static enum pt_err fill_pipeline(struct peer_conn *c)
{
    /* Top up only once half the pipeline has drained: one write then carries
     * many requests, instead of one write per block received. */
    if (c->peer_choking || !c->am_interested || c->nq > c->depth / 2)
        return PT_OK;
    if (swarm_banned(c->sh->swarm, c->id)) /* lock-free: checked before every batch */
        return c->why = "banned", PT_ERR_STOPPED;
    uint64_t changes = picker_changes(c->sh->picker);
    if (c->starved && changes == c->starved_at)
        return PT_OK; /* nothing new to take since the picker last came back short */
    struct picker_block blocks[64];
    size_t want = c->depth - c->nq;
    if (want > 64)
        want = 64;
    if (picker_in_endgame(c->sh->picker)) {
        /* Everything is requested: duplicates only from an idle peer (see
         * PEER_ENDGAME_BATCH), which is when they save time. */
        if (c->nq > 0)
            return PT_OK;
        if (want > PEER_ENDGAME_BATCH)
            want = PEER_ENDGAME_BATCH;
    }
    size_t n = picker_reserve(c->sh->picker, c->id, c->bitfield, blocks, want);
    c->starved = n < want;
    c->starved_at = changes;
    if (n == 0)
        return PT_OK;
    uint8_t out[64 * 17];
    size_t len = 0;
    int64_t now = peer_now_ms();
    if (!c->awaiting) {
        c->awaiting = true;
        c->last_block_ms = now; /* the snub clock starts with the first request */
    }
    make_room(c, n);
    for (size_t i = 0; i < n; i++) {
        len += wire_put_request(out + len, WIRE_REQUEST, blocks[i].piece, blocks[i].begin,
                                blocks[i].length);
        c->q[c->nq++] = (struct inflight){blocks[i], now};
    }
    return send_bytes(c, out, len);
}

/* Endgame: forget blocks another peer delivered first, and tell the peer. */
static enum pt_err cancel_unwanted(struct peer_conn *c)
{
    for (size_t i = 0; i < c->nq;) {
        struct picker_block b = c->q[i].b;
        if (picker_block_wanted(c->sh->picker, &b)) {
            i++;
            continue;
        }
        uint8_t m[17];
        picker_unreserve(c->sh->picker, c->id, &b);
        drop_inflight(c, i);
        enum pt_err err = send_bytes(c, m, wire_put_request(m, WIRE_CANCEL, b.piece, b.begin,
                                                            b.length));
        if (err != PT_OK)
            return err;
    }
    return PT_OK;
}

/* Pipeline depth follows the measured rate: PEER_PIPELINE_SECONDS of data. */
static void adapt_depth(struct peer_conn *c, int64_t now)
{
    int64_t elapsed = now - c->rate_start_ms;
    if (elapsed < 1000)
        return;
    uint64_t rate = c->rate_bytes * 1000 / (uint64_t)elapsed; /* bytes per second */
    uint64_t target = rate * PEER_PIPELINE_SECONDS / PICKER_BLOCK_SIZE;
    c->slow_start = false;
    if (target > c->depth)
        c->depth = target > PEER_PIPELINE_MAX ? PEER_PIPELINE_MAX : (size_t)target;
    else if (target < c->depth / 2 && c->depth > PEER_PIPELINE_MIN)
        c->depth = target < PEER_PIPELINE_MIN ? PEER_PIPELINE_MIN : (size_t)target;
    c->rate_bytes = 0;
    c->rate_start_ms = now;
}

/* Runs every PEER_TICK_MS: timers, bans, endgame. Returns non-OK to end. */
static enum pt_err housekeeping(struct peer_conn *c, int64_t now)
{
    c->next_tick_ms = now + PEER_TICK_MS;
    c->starved = false; /* look again at least once a tick (endgame may have begun) */
    if (swarm_banned(c->sh->swarm, c->id))
        return c->why = "banned", PT_ERR_STOPPED;
    if (c->peer_pieces == c->sh->meta->piece_count && picker_is_complete(c->sh->picker))
        return c->why = "both sides have everything", PT_ERR_STOPPED;
    if (c->awaiting && now - c->last_block_ms > c->sh->snub_timeout_ms)
        return c->why = "snubbed: no requested data in time", PT_ERR_TIMEOUT;
    if (now - c->last_recv_ms > PEER_IDLE_TIMEOUT_MS)
        return c->why = "idle", PT_ERR_TIMEOUT;
    if (c->nlate > 0 && now >= c->late_until_ms)
        release_late(c); /* the peer really dropped them: others may fetch them */
    adapt_depth(c, now);
    enum pt_err e = announce_new_pieces(c);
    if (e != PT_OK)
        return e;
    if (picker_in_endgame(c->sh->picker)) {
        enum pt_err err = cancel_unwanted(c);
        if (err != PT_OK)
            return err;
    }
    if (now - c->last_send_ms > PEER_KEEPALIVE_MS) {
        uint8_t m[4];
        return send_bytes(c, m, wire_put_keepalive(m));
    }
    return PT_OK;
}

/* A piece is complete and hashed (the picker hashed it as it came): store it
 * or blame its senders. */
static void finish_piece(struct peer_conn *c, struct picker_piece *p)
{
    const struct metainfo *m = c->sh->meta;
    bool good = p->digest_ok && memcmp(p->digest, m->piece_hashes + (size_t)p->index * SHA1_LEN,
                                       SHA1_LEN) == 0;
    if (good) {
        picker_piece_verified(c->sh->picker, p->index);
        if (writer_submit(c->sh->writer, p->index, p->data, p->length) != PT_OK)
            picker_release_buffer(c->sh->picker, p->data); /* the writer failed: stopping */
        return;
    }
    uint16_t blame[64];
    size_t n = picker_piece_failed(c->sh->picker, p->index, blame, 64);
    picker_release_buffer(c->sh->picker, p->data);
    atomic_fetch_add(&c->sh->counters->hash_failures, 1);
    atomic_fetch_add(&c->sh->counters->wasted, p->length);
    log_warn("piece %u failed its hash check (%zu peer%s sent it)", p->index, n,
             n == 1 ? "" : "s");
    for (size_t i = 0; i < n; i++)
        if (swarm_blame(c->sh->swarm, blame[i], n == 1))
            log_warn("banned peer #%u: it alone sent piece %u, which was corrupt", blame[i],
                     p->index);
}

static size_t find_inflight(const struct peer_conn *c, uint32_t piece, uint32_t begin)
{
    for (size_t i = 0; i < c->nq; i++)
        if (c->q[i].b.piece == piece && c->q[i].b.begin == begin)
            return i;
    return c->nq;
}

static void count_block(struct peer_conn *c, uint32_t len, int64_t now)
{
    c->down_bytes += len;
    c->rate_bytes += len;
    if (c->slow_start && c->depth < PEER_SLOW_START_MAX)
        c->depth++;
    c->last_block_ms = now;
    c->awaiting = c->nq > 0;
    atomic_fetch_add(&c->sh->counters->downloaded, len);
    atomic_fetch_add(&c->link->bytes_from, len);
    atomic_store(&c->link->last_block_ms, now);
    int_fast64_t none = -1;
    atomic_compare_exchange_strong(&c->sh->counters->first_byte_ms, &none,
                                   now - c->sh->start_ms);
}

/* A block expected next from this peer, claimed before its bytes arrive. */
struct guess {
    struct picker_block b;
    uint8_t *dst;
    uint8_t hdr[WIRE_PIECE_HEADER_LEN]; /* where its PIECE header is read to */
};

/* Guesses that the next blocks to come are the oldest requests, in order:
 * every client we test answers requests in the order sent. Claims them,
 * stopping at the first that cannot be (another peer may also be sending it,
 * in endgame). Returns how many. */
static size_t claim_guesses(struct peer_conn *c, struct guess *g)
{
    if (c->guess_pause > 0) {
        c->guess_pause--;
        return 0;
    }
    size_t n = 0;
    for (; n < PEER_GUESS_MAX && n < c->nq; n++) {
        g[n].b = c->q[n].b;
        g[n].dst = picker_block_claim_next(c->sh->picker, c->id, &g[n].b);
        if (!g[n].dst)
            break;
    }
    return n;
}

/* What the first `have` bytes after the previous block say of a guess: */
enum guess_state {
    GUESS_NOTHING, /* no byte of another message yet */
    GUESS_WAIT,    /* a message has begun that may be the guessed block: the
                    * rest of it is coming, *more bytes are needed to know */
    GUESS_WRONG,   /* another message, or another block */
    GUESS_RIGHT,   /* the guessed block, all of it */
};

static enum guess_state guess_check(const struct guess *g, size_t have, size_t *more)
{
    size_t whole = WIRE_PIECE_HEADER_LEN + g->b.length;
    uint8_t want[WIRE_PIECE_HEADER_LEN];
    wire_put_piece_header(want, g->b.piece, g->b.begin, g->b.length);
    if (have == 0)
        return GUESS_NOTHING;
    if (memcmp(g->hdr, want, have < WIRE_PIECE_HEADER_LEN ? have : WIRE_PIECE_HEADER_LEN) != 0)
        return GUESS_WRONG;
    if (have < 4) { /* every message starts with its length */
        *more = 4 - have;
        return GUESS_WAIT;
    }
    if (have < whole) { /* its length is the guessed block's: `whole` bytes will come */
        *more = whole - have;
        return GUESS_WAIT;
    }
    return GUESS_RIGHT;
}

/* The bytes of a claimed block are all in: tell the picker, count them,
 * hash the piece if it is complete. */
static enum pt_err block_arrived(struct peer_conn *c, const struct picker_block *b)
{
    struct picker_piece done;
    bool complete = picker_block_end(c->sh->picker, c->id, b->piece, b->begin, true, &done);
    count_block(c, b->length, peer_now_ms());
    if (complete)
        finish_piece(c, &done);
    /* The download limit: wait for tokens before reading more from anyone. */
    return ratelimit_take(c->sh->down_limit, b->length, c->sh->stop);
}

/* Reads the payload of block `cur` (claimed; its bytes go to dst) and, in the
 * same readv() calls, whatever has already arrived of the blocks guessed to
 * come next: one system call for several blocks, each still read straight
 * into its place. A guess is checked by its header. A guessed block that has
 * begun to arrive is read to its end. A wrong guess (another message came
 * first) gives the bytes read past that point back to the reader, to be
 * parsed as usual, and its block back to plain "requested". */
static enum pt_err read_blocks(struct peer_conn *c, struct picker_block cur, uint8_t *dst)
{
    struct guess g[PEER_GUESS_MAX];
    size_t ng = 0;
    if (net_reader_buffered(c->rd) == 0 && cur.length >= NET_DIRECT_MIN)
        ng = claim_guesses(c, g);
    struct iovec iov[1 + 2 * PEER_GUESS_MAX];
    iov[0] = (struct iovec){dst, cur.length};
    for (size_t i = 0; i < ng; i++) {
        iov[1 + 2 * i] = (struct iovec){g[i].hdr, WIRE_PIECE_HEADER_LEN};
        iov[2 + 2 * i] = (struct iovec){g[i].dst, g[i].b.length};
    }
    int n = 1 + 2 * (int)ng;
    size_t got = cur.length; /* bytes of the segments filled */
    enum pt_err err;
    if (ng == 0) {
        err = net_read_exact(c->rd, dst, cur.length, PEER_MESSAGE_TIMEOUT_MS, c->sh->stop);
    } else {
        got = 0;
        err = net_read_scatter(c->rd, iov, n, &got, cur.length, PEER_MESSAGE_TIMEOUT_MS,
                               c->sh->stop);
    }
    if (err != PT_OK) {
        struct picker_piece unused;
        picker_block_end(c->sh->picker, c->id, cur.piece, cur.begin, false, &unused);
    } else {
        err = block_arrived(c, &cur);
    }
    size_t at = cur.length; /* bytes of the segments dealt with */
    size_t i = 0;
    while (i < ng && err == PT_OK) {
        size_t more = 0;
        enum guess_state st = guess_check(&g[i], got - at, &more);
        if (st == GUESS_NOTHING)
            break;
        if (st == GUESS_WRONG) {
            log_debug("another message came before block %u+%u: reading %zu bytes again",
                      g[i].b.piece, g[i].b.begin, got - at);
            c->guess_pause = PEER_GUESS_PAUSE;
            break;
        }
        if (st == GUESS_WAIT) {
            err = net_read_scatter(c->rd, iov, n, &got, got + more, PEER_MESSAGE_TIMEOUT_MS,
                                   c->sh->stop);
            continue;
        }
        at += WIRE_PIECE_HEADER_LEN + g[i].b.length;
        drop_inflight(c, 0); /* it was the oldest request: the ones before it are in */
        err = block_arrived(c, &g[i].b);
        i++;
    }
    if (err == PT_OK && at < got && !net_reader_unread(c->rd, iov, n, at, got))
        err = PT_ERR_PROTOCOL; /* cannot happen: see the _Static_assert above */
    for (; i < ng; i++)
        picker_block_unclaim(c->sh->picker, c->id, &g[i].b);
    return err;
}

/* PIECE: `len` is the message length after the id byte. */
static enum pt_err read_piece(struct peer_conn *c, uint32_t len)
{
    uint8_t hdr[8];
    if (len < 8 || len - 8 > WIRE_MAX_BLOCK)
        return c->why = "bad piece length", PT_ERR_PROTOCOL;
    enum pt_err err = net_read_exact(c->rd, hdr, 8, PEER_MESSAGE_TIMEOUT_MS, c->sh->stop);
    if (err != PT_OK)
        return err;
    uint32_t index = wire_get_u32(hdr), begin = wire_get_u32(hdr + 4), blen = len - 8;
    if (index >= c->sh->meta->piece_count)
        return c->why = "piece index out of range", PT_ERR_PROTOCOL;
    size_t k = find_inflight(c, index, begin);
    if (k < c->nq && c->q[k].b.length != blen)
        return c->why = "block size differs from the request", PT_ERR_PROTOCOL;
    uint8_t *dst = NULL;
    bool asked = k < c->nq;
    bool late = !asked && take_late(c, index, begin, blen, peer_now_ms());
    if (asked)
        drop_inflight(c, k);
    if (asked || late) {
        dst = picker_block_begin(c->sh->picker, c->id, index, begin, blen);
        if (!dst) /* another peer delivered it first (endgame) */
            picker_unreserve(c->sh->picker, c->id,
                             &(struct picker_block){index, begin, blen});
    }
    if (!dst) { /* unrequested, cancelled or duplicate: read and drop */
        atomic_fetch_add(&c->sh->counters->wasted, blen);
        return net_read_exact(c->rd, c->scratch, blen, PEER_MESSAGE_TIMEOUT_MS, c->sh->stop);
    }
    return read_blocks(c, (struct picker_block){index, begin, blen}, dst);
}

static enum pt_err on_bitfield(struct peer_conn *c, const struct wire_msg *m)
{
    /* BEP 3 sends it once, first; aria2c may send another later, and haves
     * may come first. Harmless either way: the latest picture replaces ours. */
    c->got_bitfield = true;
    picker_peer_remove_bitfield(c->sh->picker, c->bitfield);
    memcpy(c->bitfield, m->payload, c->bf_len);
    picker_peer_add_bitfield(c->sh->picker, c->bitfield);
    c->starved = false;
    c->peer_pieces = 0;
    for (uint32_t i = 0; i < c->sh->meta->piece_count; i++)
        c->peer_pieces += picker_bit(c->bitfield, i);
    atomic_store(&c->link->peer_is_seed, c->peer_pieces == c->sh->meta->piece_count);
    return update_interest(c);
}

static enum pt_err on_have(struct peer_conn *c, uint32_t index)
{
    if (picker_bit(c->bitfield, index))
        return PT_OK;
    picker_set_bit(c->bitfield, index);
    picker_peer_have(c->sh->picker, index);
    c->starved = false; /* the peer has something new */
    if (++c->peer_pieces == c->sh->meta->piece_count)
        atomic_store(&c->link->peer_is_seed, true);
    return update_interest(c);
}

/* The peer wants our data: tell the choker now, not at its next tick, and
 * watch for its answer (PEER_UNCHOKE_WATCH_MS). At most once per watch, so a
 * peer that flips between INTERESTED and NOT_INTERESTED cannot keep the main
 * loop (or this thread's short sleeps) spinning. */
static void on_interested(struct peer_conn *c)
{
    if (atomic_exchange(&c->link->peer_interested, true) || !c->am_choking)
        return;
    int64_t now = peer_now_ms();
    if (now - c->interested_ms < PEER_UNCHOKE_WATCH_MS)
        return; /* a watch is on already */
    c->interested_ms = now;
    if (c->sh->choke_wake)
        wake_set(c->sh->choke_wake);
}

/* How long the loop may sleep on the socket before its next look at the
 * choker's decision and the housekeeping tick. */
static int wait_ms(const struct peer_conn *c, int64_t now)
{
    if (c->nreqs > 0)
        return 0; /* blocks to serve: only glance at the socket */
    if (c->am_choking && now - c->interested_ms < PEER_UNCHOKE_WATCH_MS &&
        atomic_load(&c->link->peer_interested))
        return PEER_UNCHOKE_POLL_MS;
    return PEER_TICK_MS;
}

/* Every message but PIECE: read its payload whole, decode, act. */
static enum pt_err handle_message(struct peer_conn *c, int id, uint32_t len)
{
    enum pt_err err = net_read_exact(c->rd, c->msg, len, PEER_MESSAGE_TIMEOUT_MS, c->sh->stop);
    if (err != PT_OK)
        return err;
    struct wire_msg m;
    if (wire_decode(id, c->msg, len, c->sh->meta->piece_count, &m) != PT_OK)
        return c->why = "malformed message", PT_ERR_PROTOCOL;
    switch (m.id) {
    case WIRE_CHOKE:
        on_choke(c, peer_now_ms());
        return PT_OK;
    case WIRE_UNCHOKE:
        c->peer_choking = false;
        return PT_OK;
    case WIRE_HAVE:
        return on_have(c, m.index);
    case WIRE_BITFIELD:
        return on_bitfield(c, &m);
    case WIRE_INTERESTED:
        on_interested(c);
        return PT_OK;
    case WIRE_NOT_INTERESTED:
        atomic_store(&c->link->peer_interested, false);
        return PT_OK;
    case WIRE_REQUEST:
        return on_request(c, &m);
    case WIRE_CANCEL:
        on_cancel(c, &m);
        return PT_OK;
    default:
        return PT_OK; /* port, extended and unknown ids are skipped */
    }
}

static enum pt_err read_message(struct peer_conn *c)
{
    uint8_t pre[4];
    enum pt_err err = net_read_exact(c->rd, pre, 4, PEER_MESSAGE_TIMEOUT_MS, c->sh->stop);
    if (err != PT_OK)
        return err;
    c->last_recv_ms = peer_now_ms();
    uint32_t len = wire_get_u32(pre);
    if (len == 0)
        return PT_OK; /* keep-alive */
    if (len > WIRE_MAX_MESSAGE)
        return c->why = "message length over 1 MiB", PT_ERR_PROTOCOL;
    uint8_t id;
    err = net_read_exact(c->rd, &id, 1, PEER_MESSAGE_TIMEOUT_MS, c->sh->stop);
    if (err != PT_OK)
        return err;
    if (id == WIRE_PIECE)
        return read_piece(c, len - 1);
    return handle_message(c, id, len - 1);
}

/* Reads one message, then those that have begun to arrive already (bytes in
 * the reader's buffer), up to PEER_READ_BURST, until a batch of requests is
 * queued: a leecher sends its REQUESTs in bursts, and taking a burst in one
 * turn is what lets serve_batch send its blocks with one write. Stopping
 * at a batch keeps the queue short: a request that finds it full
 * (PEER_MAX_QUEUED_REQUESTS) is dropped, and a leecher with hundreds in
 * flight would wait for it forever. */
static enum pt_err read_messages(struct peer_conn *c)
{
    enum pt_err err = read_message(c);
    for (int i = 1; err == PT_OK && i < PEER_READ_BURST && c->nreqs < PEER_SERVE_BATCH &&
                    net_reader_buffered(c->rd) > 0;
         i++)
        err = read_message(c);
    return err;
}

/* How many bytes to sleep for before reading: half of what the requests in
 * flight will bring, so the other half keeps the peer sending while this
 * thread reads and asks for more. 1 (wake for anything) when nothing is
 * owed, or when we unchoke the peer: its requests must not wait for our
 * blocks. */
static size_t wake_bytes(const struct peer_conn *c)
{
    if (!c->am_choking)
        return 1;
    size_t owed = 0;
    for (size_t i = 0; i < c->nq && owed < 2 * NET_WAIT_MAX_BYTES; i++)
        owed += WIRE_PIECE_HEADER_LEN + c->q[i].b.length;
    return owed > 2 ? owed / 2 : 1;
}

static enum pt_err run(struct peer_conn *c)
{
    enum pt_err err = handshake(c);
    if (err != PT_OK)
        return err;
    c->reached = true;
    swarm_reached(c->sh->swarm, c->id);
    atomic_store(&c->link->active, true);
    log_info("connected (%s)", c->inbound ? "inbound" : "outbound");
    err = send_bitfield(c);
    while (err == PT_OK) {
        if (atomic_load(c->sh->stop))
            return c->why = "stopping", PT_ERR_STOPPED;
        int64_t now = peer_now_ms();
        if (now >= c->next_tick_ms)
            err = housekeeping(c, now);
        if (err == PT_OK)
            err = apply_choke(c);
        if (err == PT_OK)
            err = fill_pipeline(c);
        if (err == PT_OK && c->nreqs > 0)
            err = serve_batch(c);
        if (err != PT_OK)
            break;
        /* With blocks to serve, only glance at the socket; else wait a tick
         * (or less: wait_ms), or less if a batch of blocks comes first
         * (wake_bytes). No data yet is not an error: loop for housekeeping. */
        enum pt_err waited = net_reader_wait(c->rd, wait_ms(c, now), wake_bytes(c));
        if (waited == PT_OK)
            err = read_messages(c);
        else if (waited != PT_ERR_TIMEOUT)
            err = waited;
    }
    return err;
}

static bool conn_init(struct peer_conn *c, struct peer_args *a)
{
    memset(c, 0, sizeof *c);
    c->sh = a->shared;
    c->link = a->link;
    c->id = a->id;
    c->fd = a->fd;
    c->inbound = a->fd >= 0;
    c->am_choking = true;
    addr_format(&a->addr, c->name);
    c->bf_len = wire_bitfield_len(c->sh->meta->piece_count);
    c->bitfield = calloc(1, c->bf_len);
    c->rd = malloc(sizeof *c->rd);
    c->q = c->q_mem = malloc(PEER_PIPELINE_MAX * sizeof *c->q);
    c->late = malloc(PEER_PIPELINE_MAX * sizeof *c->late);
    c->scratch = malloc(WIRE_MAX_BLOCK);
    c->msg = malloc(WIRE_MAX_MESSAGE);
    c->reqs = malloc(PEER_MAX_QUEUED_REQUESTS * sizeof *c->reqs);
    c->told = calloc(1, c->bf_len);
    c->have_now = calloc(1, c->bf_len);
    c->up = malloc(PEER_SERVE_BATCH * (WIRE_PIECE_HEADER_LEN + WIRE_MAX_BLOCK));
    c->peer_choking = true;
    c->depth = PEER_PIPELINE_START;
    c->slow_start = true;
    int64_t now = peer_now_ms();
    c->last_recv_ms = c->last_send_ms = c->rate_start_ms = now;
    c->interested_ms = now - PEER_UNCHOKE_WATCH_MS; /* no watch yet */
    return c->bitfield && c->rd && c->q && c->late && c->scratch && c->msg && c->reqs &&
           c->told && c->have_now && c->up;
}

/* Blocks we sent may still sit in our socket buffer. Closing a socket with
 * unread input makes the kernel send RST and drop them, so the peer would
 * miss the last blocks of a seed that stops at its ratio. Half-close instead
 * (FIN after the data), read and discard until the peer closes or
 * PEER_LINGER_MS passes, then close. */
static void linger_close(struct peer_conn *c)
{
    shutdown(c->fd, SHUT_WR);
    int64_t end = peer_now_ms() + PEER_LINGER_MS;
    net_reader_init(c->rd, c->fd);
    for (int64_t now = peer_now_ms(); now < end; now = peer_now_ms()) {
        enum pt_err err = net_reader_wait(c->rd, (int)(end - now), 1);
        if (err != PT_OK)
            break; /* EOF (the peer has it all), error, or time is up */
        c->rd->start = c->rd->end; /* discard */
    }
}

static void conn_release(struct peer_conn *c)
{
    if (c->q)
        give_back_all(c);
    if (c->late)
        release_late(c);
    if (c->bitfield)
        picker_peer_remove_bitfield(c->sh->picker, c->bitfield);
    if (c->fd >= 0) {
        if (c->up_bytes > 0)
            linger_close(c);
        shutdown(c->fd, SHUT_RDWR);
        close(c->fd);
    }
    free(c->bitfield);
    free(c->rd);
    free(c->q_mem);
    free(c->late);
    free(c->scratch);
    free(c->msg);
    free(c->reqs);
    free(c->told);
    free(c->have_now);
    free(c->up);
}

void peer_thread_main(void *arg)
{
    struct peer_args *a = arg;
    struct peer_conn c;
    char role[ADDR_STRLEN + 8];
    snprintf(role, sizeof role, "peer %s", addr_format(&a->addr, (char[ADDR_STRLEN]){0}));
    log_set_role(role);
    enum pt_err err = PT_ERR_NOMEM;
    if (conn_init(&c, a)) {
        if (c.fd < 0)
            c.fd = net_connect(&a->addr, PEER_CONNECT_TIMEOUT_MS, c.sh->stop, &err);
        if (c.fd >= 0) {
            net_reader_init(c.rd, c.fd);
            net_reader_stop_on(c.rd, c.sh->stop_fd); /* not in linger_close */
            err = run(&c);
        }
    }
    if (err != PT_ERR_STOPPED || (c.why && strcmp(c.why, "stopping") != 0))
        log_info("disconnected: %s", c.why ? c.why : pt_strerror(err));
    /* A seed is of no more use once we are complete too (we never lose a
     * piece): redialling it every SWARM_RETRY_AFTER_MS while we seed would
     * only start a thread that the "both sides have everything" check, or
     * the peer, ends at once. */
    if (c.reached && c.peer_pieces == c.sh->meta->piece_count &&
        picker_is_complete(c.sh->picker))
        c.never_again = true;
    swarm_add_bytes(c.sh->swarm, c.id, c.down_bytes, c.up_bytes);
    swarm_release(c.sh->swarm, c.id,
                  c.never_again ? SWARM_NEVER_AGAIN : c.reached ? SWARM_DONE : SWARM_FAILED,
                  peer_now_ms());
    conn_release(&c);
    atomic_store(&a->link->active, false);
    atomic_store(&a->link->done, true); /* last touch: the main thread may reuse it */
    free(a);
}
