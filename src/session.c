/*
 * session: DESIGN
 *
 * The main thread's loop, about ten times a second:
 *
 *   1. stop?        a signal, a writer error, or every piece on disk;
 *   2. reap         join peer threads that ended, freeing their pool slots;
 *   3. dial         start a peer thread for each candidate the swarm offers,
 *                   while the pool has free slots;
 *   4. announce     when the tracker's interval is up, or early when we are
 *                   starved of peers (never more often than min interval);
 *   5. progress     redraw the status line.
 *
 * Shutdown follows STYLE.md: set the stop flag, let every peer thread notice
 * it (their reads wake every NET_IO_SLICE_MS), join them all, drain and join
 * the writer, fsync, then tell the tracker `completed` / `stopped`.
 *
 * Signals: SIGINT/SIGTERM handlers only store into lock-free atomics. Pool and
 * writer threads are created with signals blocked, so the handlers always run
 * on the main thread and interrupt its sleep.
 */
#include "session.h"

#include <errno.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "log.h"
#include "metainfo.h"
#include "peer.h"
#include "picker.h"
#include "pool.h"
#include "progress.h"
#include "sha1.h"
#include "stats.h"
#include "storage.h"
#include "swarm.h"
#include "tracker.h"
#include "units.h"
#include "writer.h"

#define SESSION_TICK_MS 100
/* Tries before giving up on a tracker that never answered, when no peer is
 * known any other way; waits 1, 2, 4 s between them. */
#define SESSION_TRACKER_TRIES 4
#define SESSION_TRACKER_BACKOFF_MAX_MS 60000
#define SESSION_DEFAULT_INTERVAL_S 1800
/* Earliest early re-announce when starved of peers. */
#define SESSION_STARVED_ANNOUNCE_MS 20000
#define SESSION_NUMWANT 200
#define SESSION_STOPPED_TIMEOUT_S 3
/* Bytes of verified pieces waiting for the disk: bounds memory, not speed. */
#define SESSION_WRITE_QUEUE_BYTES (32u << 20)

/* Written by the signal handler, read by the main loop: lock-free atomics are
 * async-signal-safe. There is one session per process. */
static atomic_bool g_stop;
static atomic_int g_signal;

static void on_signal(int sig)
{
    atomic_store(&g_signal, sig);
    atomic_store(&g_stop, true);
}

struct session {
    const struct session_config *cfg;
    struct metainfo meta;
    struct storage *storage;
    struct picker *picker;
    struct writer *writer;
    struct swarm *swarm;
    struct pool *pool;
    struct tracker_list *trackers;
    struct session_counters counters;
    struct peer_shared shared;
    struct progress progress;
    /* Tracker state: main thread only. */
    int64_t next_announce_ms, last_announce_ms, min_interval_ms;
    unsigned tracker_failures;
    bool tracker_ever_ok;
    char *tracker_id;
    uint32_t key;
    bool starved; /* the last dial step found free slots but no candidate */
    size_t max_connected;
    int64_t start_ms, complete_ms;
};

void session_config_init(struct session_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->port = SESSION_DEFAULT_PORT;
    cfg->max_peers = SESSION_DEFAULT_MAX_PEERS;
    cfg->peer_timeout_s = 60;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL); /* a signal cuts it short: that is what we want */
}

/* BEP 20 style: "-PT0100-" then 12 random bytes. */
static void make_peer_id(uint8_t id[20], uint32_t *key)
{
    memcpy(id, "-PT0100-", 8);
    if (RAND_bytes(id + 8, 12) != 1 || RAND_bytes((unsigned char *)key, sizeof *key) != 1) {
        /* No entropy from OpenSSL: fall back to time and address bits. */
        uint64_t x = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)id;
        for (int i = 8; i < 20; i++, x = x * 6364136223846793005ULL + 1442695040888963407ULL)
            id[i] = (uint8_t)(x >> 56);
        *key = (uint32_t)x;
    }
}

static void fill_request(struct session *s, struct tracker_request *req, enum tracker_event ev)
{
    memset(req, 0, sizeof *req);
    memcpy(req->info_hash, s->meta.info_hash, 20);
    memcpy(req->peer_id, s->shared.peer_id, 20);
    req->port = s->cfg->port;
    req->downloaded = atomic_load(&s->counters.downloaded);
    req->uploaded = atomic_load(&s->counters.uploaded);
    req->left = picker_bytes_left(s->picker);
    req->event = ev;
    req->numwant = ev == TRACKER_EVENT_STOPPED ? 0 : SESSION_NUMWANT;
    req->key = s->key;
    req->tracker_id = s->tracker_id;
}

static void take_response(struct session *s, struct tracker_response *r, int64_t now)
{
    size_t added = 0;
    for (size_t i = 0; i < r->peer_count; i++)
        added += swarm_add(s->swarm, &r->peers[i]) != 0;
    if (r->tracker_id) {
        free(s->tracker_id);
        s->tracker_id = strdup(r->tracker_id);
    }
    int64_t interval = r->interval > 0 ? r->interval : SESSION_DEFAULT_INTERVAL_S;
    s->min_interval_ms = (r->min_interval > 0 ? r->min_interval : 0) * 1000;
    s->next_announce_ms = now + interval * 1000;
    s->tracker_ever_ok = true;
    s->tracker_failures = 0;
    log_info("tracker: %zu peers (%zu new), next announce in %llds", r->peer_count, added,
             (long long)interval);
}

/* One announce. Returns false when the download cannot go on (a tracker
 * that never answered and no other source of peers). */
static bool announce(struct session *s, enum tracker_event ev)
{
    if (!s->trackers)
        return true;
    struct tracker_request req;
    struct tracker_response resp;
    struct pt_errctx ctx = {PT_NO_OFFSET, ""};
    fill_request(s, &req, ev);
    int64_t now = peer_now_ms();
    s->last_announce_ms = now;
    enum pt_err err = tracker_list_announce(s->trackers, &req, &g_stop, &resp, NULL, &ctx);
    now = peer_now_ms();
    if (err == PT_OK) {
        take_response(s, &resp, now);
        tracker_response_release(&resp);
        return true;
    }
    tracker_response_release(&resp);
    if (err == PT_ERR_STOPPED)
        return true;
    s->tracker_failures++;
    int64_t backoff = 1000;
    for (unsigned i = 1; i < s->tracker_failures && backoff < SESSION_TRACKER_BACKOFF_MAX_MS; i++)
        backoff *= 2;
    s->next_announce_ms = now + (backoff < SESSION_TRACKER_BACKOFF_MAX_MS
                                     ? backoff : SESSION_TRACKER_BACKOFF_MAX_MS);
    bool alone = swarm_known(s->swarm) == 0 && !s->tracker_ever_ok;
    bool give_up = alone && (err == PT_ERR_TRACKER_FAILURE ||
                             s->tracker_failures >= SESSION_TRACKER_TRIES);
    progress_clear(&s->progress);
    if (give_up) {
        fprintf(stderr, "ptorrent: %s: %s%s\n", pt_strerror(err), ctx.msg,
                err == PT_ERR_TRACKER_FAILURE ? "" : " (gave up after repeated tries)");
        return false;
    }
    log_warn("%s: %s (try %u)", pt_strerror(err), ctx.msg, s->tracker_failures);
    return true;
}

static void dial_peers(struct session *s, int64_t now)
{
    s->starved = false;
    while (pool_running(s->pool) < pool_max(s->pool)) {
        struct peer_args *a = malloc(sizeof *a);
        if (!a)
            return;
        a->id = swarm_take(s->swarm, now, &a->addr);
        if (a->id == 0) {
            free(a);
            s->starved = true;
            return;
        }
        a->shared = &s->shared;
        a->fd = -1;
        if (pool_start(s->pool, peer_thread_main, a) != PT_OK) {
            swarm_release(s->swarm, a->id, false, now);
            free(a);
            return;
        }
    }
}

static void sample_progress(struct session *s, int64_t now, bool force)
{
    struct progress_sample ps;
    ps.total = s->meta.total_length;
    ps.done = ps.total - picker_bytes_left(s->picker);
    ps.received = atomic_load(&s->counters.downloaded);
    ps.peers_connected = (unsigned)swarm_connected(s->swarm);
    ps.peers_known = (unsigned)swarm_known(s->swarm);
    if (ps.peers_connected > s->max_connected)
        s->max_connected = ps.peers_connected;
    progress_update(&s->progress, &ps, now, force);
}

/* The main loop. Returns the exit code. */
static int run_loop(struct session *s)
{
    if (!announce(s, TRACKER_EVENT_STARTED))
        return CLI_EXIT_FAILURE;
    for (;;) {
        int64_t now = peer_now_ms();
        struct pt_errctx ctx;
        if (atomic_load(&g_stop))
            return atomic_load(&g_signal) == SIGTERM ? CLI_EXIT_SIGTERM : CLI_EXIT_SIGINT;
        if (writer_error(s->writer, &ctx) != PT_OK) {
            progress_clear(&s->progress);
            fprintf(stderr, "ptorrent: cannot write: %s\n", ctx.msg);
            return CLI_EXIT_FAILURE;
        }
        if (writer_pieces_written(s->writer) == s->meta.piece_count) {
            s->complete_ms = now;
            return CLI_EXIT_OK;
        }
        pool_reap(s->pool);
        dial_peers(s, now);
        bool early = s->starved && s->tracker_ever_ok &&
                     now - s->last_announce_ms >= SESSION_STARVED_ANNOUNCE_MS &&
                     now - s->last_announce_ms >= s->min_interval_ms;
        if ((now >= s->next_announce_ms || early) && !announce(s, TRACKER_EVENT_NONE))
            return CLI_EXIT_FAILURE;
        sample_progress(s, now, false);
        sleep_ms(SESSION_TICK_MS);
    }
}

static struct tracker_list *make_trackers(const struct metainfo *m)
{
    if (m->tier_count == 0)
        return NULL;
    const char *const **tiers = calloc(m->tier_count, sizeof *tiers);
    size_t *sizes = calloc(m->tier_count, sizeof *sizes);
    struct tracker_list *tl = NULL;
    if (tiers && sizes) {
        for (size_t i = 0; i < m->tier_count; i++) {
            tiers[i] = (const char *const *)m->tiers[i].urls;
            sizes[i] = m->tiers[i].count;
        }
        tl = tracker_list_new(tiers, sizes, m->tier_count);
    }
    free(tiers);
    free(sizes);
    return tl;
}

/* Builds every part; returns an exit code (0 = ready). */
static int session_setup(struct session *s)
{
    struct pt_errctx ctx = {PT_NO_OFFSET, ""};
    enum pt_err err = metainfo_load(s->cfg->torrent_path, &s->meta, &ctx);
    if (err != PT_OK) {
        if (ctx.offset != PT_NO_OFFSET)
            fprintf(stderr, "ptorrent: %s: %s (at byte %zu)\n", s->cfg->torrent_path, ctx.msg,
                    ctx.offset);
        else
            fprintf(stderr, "ptorrent: %s: %s\n", s->cfg->torrent_path, ctx.msg);
        return err == PT_ERR_NOMEM ? CLI_EXIT_FAILURE : CLI_EXIT_BAD_INPUT;
    }
    if (s->meta.tier_count == 0 && s->cfg->peer_count == 0) {
        fprintf(stderr, "ptorrent: %s: no tracker in the torrent and no --peer given\n",
                s->cfg->torrent_path);
        return CLI_EXIT_BAD_INPUT;
    }
    s->storage = storage_open(&s->meta, s->cfg->out_dir, &err, &ctx);
    if (!s->storage) {
        fprintf(stderr, "ptorrent: cannot create the download: %s\n", ctx.msg);
        return CLI_EXIT_FAILURE;
    }
    size_t queue = SESSION_WRITE_QUEUE_BYTES;
    if (queue < 2 * (size_t)s->meta.piece_length)
        queue = 2 * (size_t)s->meta.piece_length;
    s->picker = picker_new(s->meta.piece_count, s->meta.piece_length, s->meta.total_length, NULL);
    s->writer = s->picker ? writer_new(s->storage, queue, NULL, NULL) : NULL;
    s->swarm = swarm_new();
    s->pool = pool_new(s->cfg->max_peers);
    s->trackers = make_trackers(&s->meta);
    if (!s->picker || !s->writer || !s->swarm || !s->pool ||
        (s->meta.tier_count && !s->trackers)) {
        fprintf(stderr, "ptorrent: out of memory\n");
        return CLI_EXIT_FAILURE;
    }
    for (size_t i = 0; i < s->cfg->peer_count; i++)
        swarm_add(s->swarm, &s->cfg->peers[i]);
    return CLI_EXIT_OK;
}

static void init_shared(struct session *s)
{
    atomic_init(&s->counters.downloaded, 0);
    atomic_init(&s->counters.wasted, 0);
    atomic_init(&s->counters.uploaded, 0);
    atomic_init(&s->counters.hash_failures, 0);
    atomic_init(&s->counters.first_byte_ms, -1);
    make_peer_id(s->shared.peer_id, &s->key);
    s->shared.meta = &s->meta;
    s->shared.picker = s->picker;
    s->shared.writer = s->writer;
    s->shared.swarm = s->swarm;
    s->shared.stop = &g_stop;
    s->shared.counters = &s->counters;
    s->shared.start_ms = s->start_ms;
    s->shared.snub_timeout_ms = s->cfg->peer_timeout_s * 1000;
}

static void write_stats(struct session *s, int rc, int64_t end_ms)
{
    struct swarm_peer_stats *peers = calloc(SWARM_MAX_PEERS, sizeof *peers);
    char hex[41];
    sha1_hex(s->meta.info_hash, hex);
    struct stats_report r = {
        .command = "download",
        .info_hash_hex = hex,
        .total_size = s->meta.total_length,
        .piece_count = s->meta.piece_count,
        .result = rc == CLI_EXIT_OK ? "complete" : rc >= CLI_EXIT_SIGINT ? "interrupted" : "failed",
        .wall_seconds = (double)(end_ms - s->start_ms) / 1000.0,
        .first_byte_seconds = (double)atomic_load(&s->counters.first_byte_ms) / 1000.0,
        .complete_seconds = s->complete_ms ? (double)(s->complete_ms - s->start_ms) / 1000.0 : -1,
        .downloaded = atomic_load(&s->counters.downloaded),
        .uploaded = atomic_load(&s->counters.uploaded),
        .wasted = atomic_load(&s->counters.wasted),
        .pieces_failed = (uint32_t)atomic_load(&s->counters.hash_failures),
        .peers_known = swarm_known(s->swarm),
        .peers_max_connected = s->max_connected,
        .peers = peers,
        .peer_count = peers ? swarm_stats(s->swarm, peers, SWARM_MAX_PEERS) : 0,
    };
    if (stats_write(&r, s->cfg->stats_json) != PT_OK)
        fprintf(stderr, "ptorrent: cannot write %s\n", s->cfg->stats_json);
    free(peers);
}

static void print_summary(struct session *s, int64_t end_ms)
{
    char sz[UNITS_STRLEN], rate[UNITS_STRLEN];
    double secs = (double)(end_ms - s->start_ms) / 1000.0;
    uint64_t got = atomic_load(&s->counters.downloaded);
    struct swarm_peer_stats *peers = calloc(SWARM_MAX_PEERS, sizeof *peers);
    size_t n = peers ? swarm_stats(s->swarm, peers, SWARM_MAX_PEERS) : 0, used = 0;
    for (size_t i = 0; i < n; i++)
        used += peers[i].downloaded > 0;
    free(peers);
    fprintf(stderr, "downloaded %s in %.1f s (%s/s average) from %zu peer%s; %u piece%s failed "
                    "the hash check\n",
            units_bytes(got, sz), secs, units_bytes(secs > 0 ? (uint64_t)(got / secs) : got, rate),
            used, used == 1 ? "" : "s", (unsigned)atomic_load(&s->counters.hash_failures),
            atomic_load(&s->counters.hash_failures) == 1 ? "" : "s");
}

/* Stops every thread, flushes, says goodbye to the tracker. Returns rc, or a
 * failure code if flushing failed. */
static int session_teardown(struct session *s, int rc)
{
    atomic_store(&g_stop, true);
    if (s->pool)
        pool_join_all(s->pool);
    struct pt_errctx ctx = {PT_NO_OFFSET, ""};
    if (s->writer && writer_finish(s->writer, &ctx) != PT_OK && rc == CLI_EXIT_OK) {
        fprintf(stderr, "ptorrent: cannot write: %s\n", ctx.msg);
        rc = CLI_EXIT_FAILURE;
    }
    s->writer = NULL;
    if (rc == CLI_EXIT_OK && storage_sync(s->storage, &ctx) != PT_OK) {
        fprintf(stderr, "ptorrent: %s\n", ctx.msg);
        rc = CLI_EXIT_FAILURE;
    }
    if (s->trackers && s->tracker_ever_ok) {
        struct tracker_request req;
        struct tracker_response resp;
        if (rc == CLI_EXIT_OK) {
            fill_request(s, &req, TRACKER_EVENT_COMPLETED);
            req.timeout_s = SESSION_STOPPED_TIMEOUT_S;
            tracker_list_announce(s->trackers, &req, NULL, &resp, NULL, &ctx);
            tracker_response_release(&resp);
        }
        fill_request(s, &req, TRACKER_EVENT_STOPPED);
        req.timeout_s = SESSION_STOPPED_TIMEOUT_S;
        tracker_list_announce(s->trackers, &req, NULL, &resp, NULL, &ctx);
        tracker_response_release(&resp);
    }
    return rc;
}

static void session_free(struct session *s)
{
    tracker_list_free(s->trackers);
    pool_free(s->pool);
    swarm_free(s->swarm);
    picker_free(s->picker);
    storage_close(s->storage);
    free(s->tracker_id);
    metainfo_release(&s->meta);
    free(s);
}

int session_download(const struct session_config *cfg)
{
    struct session *s = calloc(1, sizeof *s);
    if (!s) {
        fprintf(stderr, "ptorrent: out of memory\n");
        return CLI_EXIT_FAILURE;
    }
    s->cfg = cfg;
    s->start_ms = peer_now_ms();
    install_signals();
    int rc = session_setup(s);
    if (rc != CLI_EXIT_OK) {
        if (s->writer)
            writer_finish(s->writer, NULL);
        session_free(s);
        return rc;
    }
    init_shared(s);
    progress_init(&s->progress, !cfg->quiet, s->start_ms);
    rc = run_loop(s);
    sample_progress(s, peer_now_ms(), true);
    progress_clear(&s->progress);
    rc = session_teardown(s, rc);
    int64_t end_ms = peer_now_ms();
    if (rc == CLI_EXIT_SIGINT || rc == CLI_EXIT_SIGTERM)
        fprintf(stderr, "ptorrent: interrupted; partial data left in %s\n", cfg->out_dir);
    else if (!cfg->quiet && rc == CLI_EXIT_OK)
        print_summary(s, end_ms);
    if (cfg->stats_json)
        write_stats(s, rc, end_ms);
    session_free(s);
    return rc;
}
