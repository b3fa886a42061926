/*
 * peer: DESIGN
 *
 * One thread, one socket, one loop:
 *
 *   connect -> handshake -> loop { housekeeping every tick;
 *                                  top up the request pipeline;
 *                                  wait (bounded) for bytes; read one message }
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

#include "log.h"
#include "net.h"
#include "sha1.h"
#include "wire.h"

/* How often housekeeping runs, and the longest a read waits before it. */
#define PEER_TICK_MS 250

struct inflight {
    struct picker_block b;
    int64_t sent_ms;
};

struct peer_conn {
    struct peer_shared *sh;
    uint16_t id;
    char name[ADDR_STRLEN];
    int fd;
    struct net_reader *rd;
    uint8_t *bitfield;   /* what the peer has */
    size_t bf_len;
    bool got_bitfield;
    bool reached;        /* handshake done */
    bool peer_choking;   /* the peer chokes us (BEP 3 initial state) */
    bool am_interested;
    struct inflight *q;  /* requests in flight, oldest first */
    size_t nq;
    size_t depth;        /* pipeline target */
    int64_t last_recv_ms, last_send_ms, last_block_ms, next_tick_ms;
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

static enum pt_err handshake(struct peer_conn *c)
{
    uint8_t hs[WIRE_HANDSHAKE_LEN];
    wire_handshake_build(hs, c->sh->meta->info_hash, c->sh->peer_id, NULL);
    enum pt_err err = send_bytes(c, hs, sizeof hs);
    if (err == PT_OK)
        err = net_read_exact(c->rd, hs, sizeof hs, PEER_HANDSHAKE_TIMEOUT_MS, c->sh->stop);
    if (err == PT_OK)
        err = wire_handshake_parse(hs, c->sh->meta->info_hash, NULL, NULL);
    if (err == PT_OK && memcmp(hs + 48, c->sh->peer_id, 20) == 0)
        err = PT_ERR_HANDSHAKE; /* we dialled ourselves */
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
}

static void drop_inflight(struct peer_conn *c, size_t i)
{
    memmove(&c->q[i], &c->q[i + 1], (c->nq - i - 1) * sizeof c->q[0]);
    c->nq--;
}

/* Tops the pipeline up to `depth` requests, sent in one write. */
static enum pt_err fill_pipeline(struct peer_conn *c)
{
    if (c->peer_choking || !c->am_interested || c->nq >= c->depth)
        return PT_OK;
    struct picker_block blocks[64];
    size_t want = c->depth - c->nq;
    if (want > 64)
        want = 64;
    size_t n = picker_reserve(c->sh->picker, c->id, c->bitfield, blocks, want);
    if (n == 0)
        return PT_OK;
    uint8_t out[64 * 17];
    size_t len = 0;
    int64_t now = peer_now_ms();
    if (c->nq == 0)
        c->last_block_ms = now; /* the snub clock starts with the first request */
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
    if (swarm_banned(c->sh->swarm, c->id))
        return c->why = "banned", PT_ERR_STOPPED;
    if (picker_is_complete(c->sh->picker))
        return c->why = "download complete", PT_ERR_STOPPED;
    if (c->nq > 0 && now - c->last_block_ms > c->sh->snub_timeout_ms)
        return c->why = "snubbed: no requested data in time", PT_ERR_TIMEOUT;
    if (now - c->last_recv_ms > PEER_IDLE_TIMEOUT_MS)
        return c->why = "idle", PT_ERR_TIMEOUT;
    adapt_depth(c, now);
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

/* A piece is complete: hash it off every lock, then store it or blame. */
static void finish_piece(struct peer_conn *c, struct picker_piece *p)
{
    const struct metainfo *m = c->sh->meta;
    uint8_t digest[SHA1_LEN];
    bool good = sha1(p->data, p->length, digest) &&
                memcmp(digest, m->piece_hashes + (size_t)p->index * SHA1_LEN, SHA1_LEN) == 0;
    if (good) {
        picker_piece_verified(c->sh->picker, p->index);
        if (writer_submit(c->sh->writer, p->index, p->data, p->length) != PT_OK)
            free(p->data); /* the writer failed; the session is stopping */
        return;
    }
    uint16_t blame[64];
    size_t n = picker_piece_failed(c->sh->picker, p->index, blame, 64);
    free(p->data);
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
    c->last_block_ms = now;
    atomic_fetch_add(&c->sh->counters->downloaded, len);
    int_fast64_t none = -1;
    atomic_compare_exchange_strong(&c->sh->counters->first_byte_ms, &none,
                                   now - c->sh->start_ms);
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
    if (k < c->nq) {
        drop_inflight(c, k);
        dst = picker_block_begin(c->sh->picker, c->id, index, begin, blen);
        if (!dst) /* another peer delivered it first (endgame) */
            picker_unreserve(c->sh->picker, c->id,
                             &(struct picker_block){index, begin, blen});
    }
    if (!dst) { /* unrequested, cancelled or duplicate: read and drop */
        atomic_fetch_add(&c->sh->counters->wasted, blen);
        return net_read_exact(c->rd, c->scratch, blen, PEER_MESSAGE_TIMEOUT_MS, c->sh->stop);
    }
    err = net_read_exact(c->rd, dst, blen, PEER_MESSAGE_TIMEOUT_MS, c->sh->stop);
    struct picker_piece done;
    bool complete = picker_block_end(c->sh->picker, c->id, index, begin, err == PT_OK, &done);
    if (err != PT_OK)
        return err;
    count_block(c, blen, peer_now_ms());
    if (complete)
        finish_piece(c, &done);
    return PT_OK;
}

static enum pt_err on_bitfield(struct peer_conn *c, const struct wire_msg *m)
{
    if (c->got_bitfield)
        return c->why = "second bitfield", PT_ERR_PROTOCOL;
    c->got_bitfield = true;
    /* Haves may have come first (against BEP 3, but harmless): replace them. */
    picker_peer_remove_bitfield(c->sh->picker, c->bitfield);
    memcpy(c->bitfield, m->payload, c->bf_len);
    picker_peer_add_bitfield(c->sh->picker, c->bitfield);
    return update_interest(c);
}

static enum pt_err on_have(struct peer_conn *c, uint32_t index)
{
    if (picker_bit(c->bitfield, index))
        return PT_OK;
    picker_set_bit(c->bitfield, index);
    picker_peer_have(c->sh->picker, index);
    return update_interest(c);
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
        c->peer_choking = true;
        give_back_all(c); /* others may fetch them now */
        return PT_OK;
    case WIRE_UNCHOKE:
        c->peer_choking = false;
        c->last_block_ms = peer_now_ms();
        return PT_OK;
    case WIRE_HAVE:
        return on_have(c, m.index);
    case WIRE_BITFIELD:
        return on_bitfield(c, &m);
    default:
        /* interested/not interested/request/cancel matter once we upload;
         * port, extended and unknown ids are skipped. */
        return PT_OK;
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

static enum pt_err run(struct peer_conn *c)
{
    enum pt_err err = handshake(c);
    if (err != PT_OK)
        return err;
    c->reached = true;
    swarm_reached(c->sh->swarm, c->id);
    log_info("connected");
    while (err == PT_OK) {
        if (atomic_load(c->sh->stop))
            return c->why = "stopping", PT_ERR_STOPPED;
        int64_t now = peer_now_ms();
        if (now >= c->next_tick_ms)
            err = housekeeping(c, now);
        if (err == PT_OK)
            err = fill_pipeline(c);
        if (err == PT_OK)
            err = net_reader_wait(c->rd, PEER_TICK_MS);
        if (err == PT_ERR_TIMEOUT)
            err = PT_OK; /* nothing yet: loop for housekeeping */
        else if (err == PT_OK)
            err = read_message(c);
    }
    return err;
}

static bool conn_init(struct peer_conn *c, struct peer_args *a)
{
    memset(c, 0, sizeof *c);
    c->sh = a->shared;
    c->id = a->id;
    c->fd = a->fd;
    addr_format(&a->addr, c->name);
    c->bf_len = wire_bitfield_len(c->sh->meta->piece_count);
    c->bitfield = calloc(1, c->bf_len);
    c->rd = malloc(sizeof *c->rd);
    c->q = malloc(PEER_PIPELINE_MAX * sizeof *c->q);
    c->scratch = malloc(WIRE_MAX_BLOCK);
    c->msg = malloc(WIRE_MAX_MESSAGE);
    c->peer_choking = true;
    c->depth = PEER_PIPELINE_START;
    int64_t now = peer_now_ms();
    c->last_recv_ms = c->last_send_ms = c->rate_start_ms = now;
    return c->bitfield && c->rd && c->q && c->scratch && c->msg;
}

static void conn_release(struct peer_conn *c)
{
    give_back_all(c);
    picker_peer_remove_bitfield(c->sh->picker, c->bitfield);
    if (c->fd >= 0) {
        shutdown(c->fd, SHUT_RDWR);
        close(c->fd);
    }
    free(c->bitfield);
    free(c->rd);
    free(c->q);
    free(c->scratch);
    free(c->msg);
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
            err = run(&c);
        }
    }
    if (err != PT_ERR_STOPPED || (c.why && strcmp(c.why, "stopping") != 0))
        log_info("disconnected: %s", c.why ? c.why : pt_strerror(err));
    swarm_add_bytes(c.sh->swarm, c.id, c.down_bytes, 0);
    swarm_release(c.sh->swarm, c.id, !c.reached, peer_now_ms());
    conn_release(&c);
    free(a);
}
