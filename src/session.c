/*
 * session: DESIGN
 *
 * Before the loop: load the resume file (or recheck what is on disk), open
 * the storage, start the writer, listen on --port.
 *
 * The main thread's loop, about ten times a second:
 *
 *   1. stop?        a signal, a writer error, or done: every piece on disk
 *                   and the seeding limits (--seed-ratio/--seed-time) met;
 *   2. reap         join peer threads that ended, freeing their pool slots;
 *   3. dial         start a peer thread for each candidate the swarm offers,
 *                   while the pool has free slots;
 *   4. choke        every 10 s (sooner when a new peer is waiting and slots
 *                   are free), the choker picks whom we upload to;
 *   5. announce     when the tracker's interval is up, or early when we are
 *                   starved of peers (never more often than min interval);
 *   6. resume       every few seconds, if pieces were written: fsync the
 *                   data, then write the resume file atomically;
 *   7. progress     redraw the status line;
 *   8. accept       wait up to one tick for an inbound peer (this is the
 *                   loop's sleep) and hand it to the same bounded pool.
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
#include <fcntl.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <pthread.h>
#include <sys/stat.h>

#include "bufpool.h"
#include "choker.h"
#include "cli.h"
#include "listener.h"
#include "log.h"
#include "metainfo.h"
#include "peer.h"
#include "picker.h"
#include "pool.h"
#include "progress.h"
#include "ratelimit.h"
#include "resume.h"
#include "sha1.h"
#include "stats.h"
#include "storage.h"
#include "swarm.h"
#include "tracker.h"
#include "units.h"
#include "wake.h"
#include "wire.h"
#include "writer.h"

#define SESSION_TICK_MS 100
/* An extra choke round for an interested peer waiting while an upload slot
 * is free comes at most this often. It was 1 s, and a seed that had just
 * started (its first round at start) kept a libtorrent leecher choked for
 * 0.9 s after its bitfield (strace): 0.6-0.7 s of a 64 MiB upload that
 * libtorrent serves in 0.7 s. Rounds in between only add unchoked peers: a
 * slot is free. */
#define SESSION_EARLY_CHOKE_MS 100
/* Tries before giving up on a tracker that never answered, when no peer is
 * known any other way; waits 1, 2, 4 s between them. */
#define SESSION_TRACKER_TRIES 4
#define SESSION_TRACKER_BACKOFF_MAX_MS 60000
#define SESSION_DEFAULT_INTERVAL_S 1800
/* Earliest early re-announce when starved of peers. */
#define SESSION_STARVED_ANNOUNCE_MS 20000
#define SESSION_NUMWANT 200
#define SESSION_STOPPED_TIMEOUT_S 3
/* How often the resume file is rewritten while pieces complete: at most this
 * much verified data is fetched again after a crash. */
#define SESSION_RESUME_INTERVAL_MS 5000
/* Peer links the choker can look at in one round (the --max-peers cap). */
#define SESSION_MAX_LINKS 1000
/* Bytes of piece buffers: pieces being downloaded, hashed or waiting for the
 * disk all live in this pool, so it bounds memory (the write queue has the
 * same bound). The whole pool is backed before the first peer starts (see
 * make_parts), and on the VM we measure on each MiB backed after other
 * processes freed memory costs 1.4-2.3 ms of CPU: 20 MiB kept 1, 4 and 100
 * loopback seeders as busy as 32 MiB did (measured), for 12 MiB less. Never
 * fewer than SESSION_POOL_MIN_PIECES buffers, so that with large pieces each
 * busy peer that finishes a piece finds a free buffer while the writer is
 * still storing earlier ones: with 4 MiB pieces from 4 seeders, 5 buffers
 * (one per peer and one for the disk) left peers waiting for the writer,
 * and 8 took a 4 GiB download from 12.1-17.1 s to 9.0-13.1 s (3 runs each). */
#define SESSION_POOL_BYTES (20u << 20)
#define SESSION_POOL_MIN_PIECES 8

/* Written by the signal handler, read by the main loop: lock-free atomics are
 * async-signal-safe. There is one session per process. g_stop_wake is the
 * latch that makes threads asleep in poll() see g_stop at once (wake.h); it
 * is set right after g_stop, by the handler or by session_teardown, and
 * never closed: the handler may run until the process exits. */
static atomic_bool g_stop;
static atomic_int g_signal;
static struct wake g_stop_wake = {-1, -1};

static void on_signal(int sig)
{
    atomic_store(&g_signal, sig);
    atomic_store(&g_stop, true);
    wake_set(&g_stop_wake);
}

/* Pieces on disk, for the resume file. Written by the writer thread (its
 * on_written callback), read by the main thread.
 * Locking: `lock` guards bitfield, count and dirty. */
struct written {
    pthread_mutex_t lock;
    uint8_t *bitfield;
    uint32_t count;
    bool dirty; /* changed since the resume file was last written */
};

struct session {
    const struct session_config *cfg;
    struct metainfo meta;
    struct storage *storage;
    struct picker *picker;
    struct writer *writer;
    struct swarm *swarm;
    struct pool *pool;
    struct tracker_list *trackers;
    struct listener *listener;
    struct bufpool *buffers; /* piece buffers */
    struct ratelimit *down_limit, *up_limit;
    struct session_counters counters;
    struct peer_shared shared;
    struct progress progress;
    struct written written;
    /* Set by the writer thread when the last piece is on disk, and by a
     * peer thread when its peer turns interested; drained by the main loop,
     * which then finishes, or runs the choker, at once, not at its next
     * tick. */
    struct wake loop_wake;
    /* Main thread only: one link per possible peer thread, and what the
     * choker saw of each last round (to turn counters into rates). */
    struct peer_link *links;
    bool *link_busy;
    uint64_t *prev_from, *prev_to;
    struct choker choker;
    int64_t last_choke_ms;
    int64_t last_resume_ms;
    uint16_t port;          /* really bound */
    bool completed_sent;    /* event=completed told to the tracker */
    bool started_complete;  /* every piece was on disk before we began */
    uint64_t resumed_up, resumed_down; /* totals from earlier runs */
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
    cfg->seed_ratio = -1;
    cfg->seed_time_s = -1;
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

/* len random bytes from the OS. Not OpenSSL's RAND_bytes: its first call
 * sets up a generator (about 1.4 ms of CPU, measured), which a download that
 * dials out in plain text never needs again. */
static bool os_random(void *out, size_t len)
{
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, out, len);
    close(fd);
    return n == (ssize_t)len;
}

/* BEP 20 style: "-PT0100-" then 12 random bytes; the tracker key is random too. */
static void make_peer_id(uint8_t id[20], uint32_t *key)
{
    memcpy(id, "-PT0100-", 8);
    uint8_t r[16];
    if (os_random(r, sizeof r) || RAND_bytes(r, sizeof r) == 1) {
        memcpy(id + 8, r, 12);
        memcpy(key, r + 12, sizeof *key);
        return;
    }
    /* No entropy at all: time and address bits will do for an id. */
    uint64_t x = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)id;
    for (int i = 8; i < 20; i++, x = x * 6364136223846793005ULL + 1442695040888963407ULL)
        id[i] = (uint8_t)(x >> 56);
    *key = (uint32_t)x;
}

static void fill_request(struct session *s, struct tracker_request *req, enum tracker_event ev)
{
    memset(req, 0, sizeof *req);
    memcpy(req->info_hash, s->meta.info_hash, 20);
    memcpy(req->peer_id, s->shared.peer_id, 20);
    req->port = s->port;
    req->downloaded = atomic_load(&s->counters.downloaded) + s->resumed_down;
    req->uploaded = atomic_load(&s->counters.uploaded) + s->resumed_up;
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
    /* A seed waits for peers to come to it; a download with nobody to ask
     * cannot make progress. */
    bool alone = s->cfg->mode == SESSION_DOWNLOAD && swarm_known(s->swarm) == 0 &&
                 !s->tracker_ever_ok;
    bool give_up = alone && (err == PT_ERR_TRACKER_FAILURE ||
                             s->tracker_failures >= SESSION_TRACKER_TRIES);
    progress_clear(&s->progress);
    if (give_up) {
        fprintf(stderr, "ptorrent: %s: %s%s\n", pt_strerror(err), ctx.msg,
                err == PT_ERR_TRACKER_FAILURE ? "" : " (gave up after repeated tries)");
        return false;
    }
    log_info("%s: %s (try %u)", pt_strerror(err), ctx.msg, s->tracker_failures);
    return true;
}

/* A free link, reset for a new connection, or NULL. */
static struct peer_link *take_link(struct session *s, int64_t now)
{
    for (unsigned i = 0; i < s->cfg->max_peers; i++) {
        if (s->link_busy[i])
            continue;
        struct peer_link *l = &s->links[i];
        s->link_busy[i] = true;
        atomic_store(&l->active, false);
        atomic_store(&l->done, false);
        atomic_store(&l->peer_interested, false);
        atomic_store(&l->peer_is_seed, false);
        atomic_store(&l->unchoke, false);
        atomic_store(&l->bytes_from, 0);
        atomic_store(&l->bytes_to, 0);
        atomic_store(&l->last_block_ms, -1);
        l->connected_ms = now;
        s->prev_from[i] = s->prev_to[i] = 0;
        return l;
    }
    return NULL;
}

/* Links whose thread has finished can be reused. */
static void reap_links(struct session *s)
{
    for (unsigned i = 0; i < s->cfg->max_peers; i++)
        if (s->link_busy[i] && atomic_load(&s->links[i].done))
            s->link_busy[i] = false;
}

/* Starts a peer thread for swarm entry `id`: dialled (fd < 0) or accepted.
 * On failure the swarm entry is released and the socket closed. */
static bool start_peer(struct session *s, uint16_t id, const struct peer_addr *addr, int fd,
                       int64_t now)
{
    struct peer_args *a = malloc(sizeof *a);
    struct peer_link *link = a ? take_link(s, now) : NULL;
    if (a && link) {
        *a = (struct peer_args){&s->shared, id, *addr, fd, link};
        if (pool_start(s->pool, peer_thread_main, a) == PT_OK)
            return true;
        s->link_busy[link - s->links] = false;
    }
    free(a);
    if (fd >= 0)
        close(fd);
    swarm_release(s->swarm, id, SWARM_DONE, now);
    return false;
}

static void dial_peers(struct session *s, int64_t now)
{
    s->starved = false;
    while (pool_running(s->pool) < pool_max(s->pool)) {
        struct peer_addr addr;
        uint16_t id = swarm_take(s->swarm, now, &addr);
        if (id == 0) {
            s->starved = true;
            return;
        }
        if (!start_peer(s, id, &addr, -1, now))
            return;
    }
}

/* The loop's sleep: wait one tick for an inbound peer. */
static void accept_peer(struct session *s, int64_t now)
{
    struct peer_addr addr;
    int fd = listener_accept(s->listener, SESSION_TICK_MS, wake_fd(&s->loop_wake), &addr);
    wake_drain(&s->loop_wake);
    if (fd < 0)
        return;
    uint16_t id = pool_running(s->pool) < pool_max(s->pool) ? swarm_add_inbound(s->swarm, &addr) : 0;
    if (id == 0) { /* no free slot, banned, or already connected */
        close(fd);
        return;
    }
    start_peer(s, id, &addr, fd, now);
}

/* Is a new interested peer waiting while an upload slot is free? */
static bool choke_round_wanted(struct session *s, int64_t now)
{
    if (choker_due(&s->choker, now))
        return true;
    unsigned unchoked = 0, waiting = 0;
    for (unsigned i = 0; i < s->cfg->max_peers; i++) {
        struct peer_link *l = &s->links[i];
        if (!s->link_busy[i] || !atomic_load(&l->active))
            continue;
        bool u = atomic_load(&l->unchoke);
        unchoked += u;
        waiting += !u && atomic_load(&l->peer_interested);
    }
    return waiting > 0 && unchoked < CHOKER_REGULAR_SLOTS + 1 &&
           now - s->last_choke_ms >= SESSION_EARLY_CHOKE_MS;
}

static void run_choker(struct session *s, int64_t now)
{
    if (!choke_round_wanted(s, now))
        return;
    struct choker_peer cp[SESSION_MAX_LINKS];
    unsigned idx[SESSION_MAX_LINKS];
    size_t n = 0;
    double secs = (double)(now - s->last_choke_ms) / 1000.0;
    if (secs < 0.001)
        secs = 0.001;
    for (unsigned i = 0; i < s->cfg->max_peers && n < SESSION_MAX_LINKS; i++) {
        struct peer_link *l = &s->links[i];
        if (!s->link_busy[i] || !atomic_load(&l->active))
            continue;
        uint64_t from = atomic_load(&l->bytes_from), to = atomic_load(&l->bytes_to);
        cp[n] = (struct choker_peer){
            .key = i,
            .interested = atomic_load(&l->peer_interested),
            .rate_from_peer = (uint64_t)((double)(from - s->prev_from[i]) / secs),
            .rate_to_peer = (uint64_t)((double)(to - s->prev_to[i]) / secs),
            .connected_ms = l->connected_ms,
            .last_block_ms = atomic_load(&l->last_block_ms),
        };
        s->prev_from[i] = from;
        s->prev_to[i] = to;
        idx[n++] = i;
    }
    choker_run(&s->choker, cp, n, picker_is_complete(s->picker), now);
    for (size_t k = 0; k < n; k++)
        atomic_store(&s->links[idx[k]].unchoke, cp[k].unchoke);
    s->last_choke_ms = now;
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

/* The writer thread's callback after each pwrite: record the piece for the
 * resume file, then let the picker mark it servable (two locks, one after
 * the other, never both). */
static void on_piece_written(void *arg, uint32_t index)
{
    struct session *s = arg;
    struct written *w = &s->written;
    bool last = false;
    pthread_mutex_lock(&w->lock);
    if (!picker_bit(w->bitfield, index)) {
        picker_set_bit(w->bitfield, index);
        w->count++;
        w->dirty = true;
        last = w->count == s->meta.piece_count;
    }
    pthread_mutex_unlock(&w->lock);
    picker_piece_written(s->picker, index);
    if (last)
        wake_set(&s->loop_wake);
}

static uint32_t pieces_on_disk(struct session *s)
{
    pthread_mutex_lock(&s->written.lock);
    uint32_t n = s->written.count;
    pthread_mutex_unlock(&s->written.lock);
    return n;
}

/* Copy the bitfield, fsync the data it describes, then write the resume
 * file: a piece is never marked that is not durably on disk. */
static void save_resume(struct session *s, bool force)
{
    size_t len = wire_bitfield_len(s->meta.piece_count);
    uint8_t *bf = malloc(len);
    if (!bf)
        return;
    pthread_mutex_lock(&s->written.lock);
    bool dirty = s->written.dirty || force;
    memcpy(bf, s->written.bitfield, len);
    s->written.dirty = false;
    pthread_mutex_unlock(&s->written.lock);
    struct pt_errctx ctx = {PT_NO_OFFSET, ""};
    if (dirty && storage_sync(s->storage, &ctx) == PT_OK) {
        struct resume_state st = {bf, atomic_load(&s->counters.uploaded) + s->resumed_up,
                                  atomic_load(&s->counters.downloaded) + s->resumed_down};
        if (resume_save(&s->meta, s->cfg->out_dir, &st, &ctx) != PT_OK)
            log_warn("resume file not saved: %s", ctx.msg);
    } else if (dirty) {
        log_warn("resume file not saved: %s", ctx.msg);
    }
    free(bf);
}

/* Seeding limits after completion. With neither given, a download stops at
 * once and a seed runs until interrupted. */
static bool seeding_done(struct session *s, int64_t now)
{
    const struct session_config *c = s->cfg;
    if (c->seed_ratio < 0 && c->seed_time_s < 0)
        return c->mode == SESSION_DOWNLOAD;
    uint64_t up = atomic_load(&s->counters.uploaded) + s->resumed_up;
    if (c->seed_ratio >= 0 && (double)up >= c->seed_ratio * (double)s->meta.total_length)
        return true;
    return c->seed_time_s >= 0 && now - s->complete_ms >= c->seed_time_s * 1000;
}

/* Every piece is on disk: tell the tracker once, save the resume file. */
static void on_complete(struct session *s, int64_t now)
{
    s->complete_ms = now;
    save_resume(s, true);
    if (!s->completed_sent && s->cfg->mode == SESSION_DOWNLOAD && !s->started_complete) {
        progress_clear(&s->progress);
        if (!s->cfg->quiet)
            fprintf(stderr, "download complete\n");
        announce(s, TRACKER_EVENT_COMPLETED);
    }
    s->completed_sent = true;
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
        if (!s->complete_ms && pieces_on_disk(s) == s->meta.piece_count)
            on_complete(s, now);
        if (s->complete_ms && seeding_done(s, now))
            return CLI_EXIT_OK;
        pool_reap(s->pool);
        reap_links(s);
        dial_peers(s, now);
        run_choker(s, now);
        bool early = s->starved && s->tracker_ever_ok && !s->complete_ms &&
                     now - s->last_announce_ms >= SESSION_STARVED_ANNOUNCE_MS &&
                     now - s->last_announce_ms >= s->min_interval_ms;
        if ((now >= s->next_announce_ms || early) && !announce(s, TRACKER_EVENT_NONE))
            return CLI_EXIT_FAILURE;
        if (now - s->last_resume_ms >= SESSION_RESUME_INTERVAL_MS) {
            save_resume(s, false);
            s->last_resume_ms = now;
        }
        sample_progress(s, now, false);
        accept_peer(s, now);
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

static void show_check_progress(void *arg, uint32_t checked, uint32_t total)
{
    struct session *s = arg;
    if (s->cfg->quiet)
        return;
    fprintf(stderr, "%schecking existing data: %u/%u pieces%s", s->progress.tty ? "\r\033[K" : "",
            checked, total, s->progress.tty ? "" : "\n");
}

/* Does any of the torrent's files exist with data in it? */
static bool any_data_on_disk(struct session *s)
{
    for (size_t i = 0; i < s->meta.file_count; i++) {
        size_t n = strlen(s->cfg->out_dir) + strlen(s->meta.files[i].path) + 2;
        char *p = malloc(n);
        struct stat st;
        bool some = false;
        if (p) {
            snprintf(p, n, "%s/%s", s->cfg->out_dir, s->meta.files[i].path);
            some = stat(p, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
        }
        free(p);
        if (some)
            return true;
    }
    return false;
}

/* What is already on disk: the resume file if it is valid, else a SHA-1
 * recheck of whatever bytes exist. Fills s->written. */
static int load_have(struct session *s)
{
    size_t len = wire_bitfield_len(s->meta.piece_count);
    struct resume_state st;
    struct pt_errctx ctx = {PT_NO_OFFSET, ""};
    s->written.bitfield = calloc(1, len);
    if (!s->written.bitfield)
        return CLI_EXIT_FAILURE;
    if (resume_load(&s->meta, s->cfg->out_dir, &st, &ctx) == PT_OK) {
        memcpy(s->written.bitfield, st.bitfield, len);
        s->resumed_up = st.uploaded;
        s->resumed_down = st.downloaded;
        free(st.bitfield);
        log_info("resume file accepted");
    } else if (any_data_on_disk(s)) {
        if (!s->cfg->quiet)
            fprintf(stderr, "resume: %s; checking the data on disk\n", ctx.msg);
        progress_init(&s->progress, !s->cfg->quiet, peer_now_ms());
        enum pt_err err = resume_recheck(&s->meta, s->cfg->out_dir, 0, s->written.bitfield,
                                         show_check_progress, s, &g_stop);
        if (err == PT_ERR_STOPPED)
            return atomic_load(&g_signal) == SIGTERM ? CLI_EXIT_SIGTERM : CLI_EXIT_SIGINT;
        if (err != PT_OK) {
            fprintf(stderr, "ptorrent: checking %s: %s\n", s->cfg->out_dir, pt_strerror(err));
            return CLI_EXIT_FAILURE;
        }
        if (!s->cfg->quiet && s->progress.tty)
            fputs("\n", stderr);
    }
    for (uint32_t i = 0; i < s->meta.piece_count; i++)
        s->written.count += picker_bit(s->written.bitfield, i);
    s->started_complete = s->written.count == s->meta.piece_count;
    if (s->cfg->mode == SESSION_SEED && !s->started_complete) {
        fprintf(stderr, "ptorrent: %s holds %u of the %u pieces of %s; download it first\n",
                s->cfg->out_dir, s->written.count, s->meta.piece_count, s->meta.name);
        return CLI_EXIT_BAD_INPUT;
    }
    return CLI_EXIT_OK;
}

static void give_back_buffer(void *pool, uint8_t *data)
{
    bufpool_put(pool, data);
}

/* The shared parts: picker, writer, swarm, pool, links, limits, trackers. */
static int make_parts(struct session *s)
{
    size_t buffers = SESSION_POOL_BYTES / s->meta.piece_length;
    if (buffers < SESSION_POOL_MIN_PIECES)
        buffers = SESSION_POOL_MIN_PIECES;
    unsigned links = s->cfg->max_peers;
    s->buffers = bufpool_new(s->meta.piece_length, buffers);
    s->picker = picker_new(s->meta.piece_count, s->meta.piece_length, s->meta.total_length,
                           s->written.bitfield);
    s->writer = s->picker && s->buffers ? writer_new(s->storage, buffers * s->meta.piece_length,
                                                  on_piece_written, s)
                                     : NULL;
    if (s->writer) {
        /* As many buffers as pieces still missing could be in flight at once. */
        bufpool_prefault(s->buffers, s->meta.piece_count - picker_pieces_on_disk(s->picker));
        picker_set_pool(s->picker, s->buffers);
        writer_set_release(s->writer, give_back_buffer, s->buffers);
    }
    s->swarm = swarm_new();
    s->pool = pool_new(links);
    s->trackers = make_trackers(&s->meta);
    s->links = calloc(links, sizeof *s->links);
    s->link_busy = calloc(links, sizeof *s->link_busy);
    s->prev_from = calloc(links, sizeof *s->prev_from);
    s->prev_to = calloc(links, sizeof *s->prev_to);
    s->down_limit = ratelimit_new(s->cfg->max_download_rate, NULL);
    s->up_limit = ratelimit_new(s->cfg->max_upload_rate, NULL);
    if (!s->picker || !s->writer || !s->swarm || !s->pool || !s->links || !s->link_busy ||
        !s->prev_from || !s->prev_to || !s->down_limit || !s->up_limit ||
        (s->meta.tier_count && !s->trackers)) {
        fprintf(stderr, "ptorrent: out of memory\n");
        return CLI_EXIT_FAILURE;
    }
    for (size_t i = 0; i < s->cfg->peer_count; i++)
        swarm_add(s->swarm, &s->cfg->peers[i]);
    return CLI_EXIT_OK;
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
    if (s->meta.tier_count == 0 && s->cfg->peer_count == 0 && s->cfg->mode == SESSION_DOWNLOAD) {
        fprintf(stderr, "ptorrent: %s: no tracker in the torrent and no --peer given\n",
                s->cfg->torrent_path);
        return CLI_EXIT_BAD_INPUT;
    }
    int rc = load_have(s);
    if (rc != CLI_EXIT_OK)
        return rc;
    /* A seed changes nothing on disk: its data may even be read-only. */
    s->storage = s->cfg->mode == SESSION_SEED
                     ? storage_open_readonly(&s->meta, s->cfg->out_dir, &err, &ctx)
                     : storage_open(&s->meta, s->cfg->out_dir, &err, &ctx);
    if (!s->storage) {
        fprintf(stderr, "ptorrent: cannot %s: %s\n",
                s->cfg->mode == SESSION_SEED ? "open the data" : "create the download", ctx.msg);
        return CLI_EXIT_FAILURE;
    }
    s->listener = listener_open(s->cfg->port, &err, &ctx);
    if (!s->listener) {
        fprintf(stderr, "ptorrent: %s\n", ctx.msg);
        return CLI_EXIT_FAILURE;
    }
    s->port = listener_port(s->listener);
    if (s->cfg->port != 0 && s->port != s->cfg->port && !s->cfg->quiet)
        fprintf(stderr, "port %u is taken: listening on %u\n", (unsigned)s->cfg->port,
                (unsigned)s->port);
    log_info("listening on port %u", (unsigned)s->port);
    return make_parts(s);
}

static void init_shared(struct session *s)
{
    atomic_init(&s->counters.downloaded, 0);
    atomic_init(&s->counters.wasted, 0);
    atomic_init(&s->counters.uploaded, 0);
    atomic_init(&s->counters.hash_failures, 0);
    atomic_init(&s->counters.encrypted_handshakes, 0);
    atomic_init(&s->counters.first_byte_ms, -1);
    make_peer_id(s->shared.peer_id, &s->key);
    s->shared.meta = &s->meta;
    s->shared.picker = s->picker;
    s->shared.writer = s->writer;
    s->shared.swarm = s->swarm;
    s->shared.storage = s->storage;
    s->shared.down_limit = s->down_limit;
    s->shared.up_limit = s->up_limit;
    s->shared.stop = &g_stop;
    s->shared.stop_fd = wake_fd(&g_stop_wake);
    s->shared.choke_wake = &s->loop_wake;
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
        .command = s->cfg->mode == SESSION_SEED ? "seed" : "download",
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
        .encrypted_handshakes = (uint32_t)atomic_load(&s->counters.encrypted_handshakes),
        .store_cpu_seconds = s->storage ? storage_write_cpu_seconds(s->storage) : -1,
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
    uint64_t sent = atomic_load(&s->counters.uploaded);
    char up[UNITS_STRLEN];
    fprintf(stderr, "downloaded %s in %.1f s (%s/s average) from %zu peer%s; uploaded %s; %u "
                    "piece%s failed the hash check\n",
            units_bytes(got, sz), secs, units_bytes(secs > 0 ? (uint64_t)(got / secs) : got, rate),
            used, used == 1 ? "" : "s", units_bytes(sent, up),
            (unsigned)atomic_load(&s->counters.hash_failures),
            atomic_load(&s->counters.hash_failures) == 1 ? "" : "s");
}

/* Stops every thread, flushes, says goodbye to the tracker. Returns rc, or a
 * failure code if flushing failed. */
static int session_teardown(struct session *s, int rc)
{
    atomic_store(&g_stop, true);
    wake_set(&g_stop_wake);
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
    if (s->storage && s->writer == NULL)
        save_resume(s, true); /* whatever is on disk now, fsynced first */
    if (s->trackers && s->tracker_ever_ok) {
        struct tracker_request req;
        struct tracker_response resp;
        fill_request(s, &req, TRACKER_EVENT_STOPPED);
        req.timeout_s = SESSION_STOPPED_TIMEOUT_S;
        tracker_list_announce(s->trackers, &req, NULL, &resp, NULL, &ctx);
        tracker_response_release(&resp);
    }
    return rc;
}

static void session_free(struct session *s)
{
    wake_close(&s->loop_wake);
    listener_close(s->listener);
    ratelimit_free(s->down_limit);
    ratelimit_free(s->up_limit);
    free(s->links);
    free(s->link_busy);
    free(s->prev_from);
    free(s->prev_to);
    free(s->written.bitfield);
    pthread_mutex_destroy(&s->written.lock);
    tracker_list_free(s->trackers);
    pool_free(s->pool);
    swarm_free(s->swarm);
    picker_free(s->picker); /* gives in-flight buffers back to the pool */
    bufpool_free(s->buffers);
    storage_close(s->storage);
    free(s->tracker_id);
    metainfo_release(&s->meta);
    free(s);
}

int session_run(const struct session_config *cfg)
{
    struct session *s = calloc(1, sizeof *s);
    if (!s) {
        fprintf(stderr, "ptorrent: out of memory\n");
        return CLI_EXIT_FAILURE;
    }
    s->cfg = cfg;
    s->start_ms = peer_now_ms();
    pthread_mutex_init(&s->written.lock, NULL);
    /* Without the pipes the threads still see the flags at their ticks. */
    if (g_stop_wake.rd < 0)
        (void)wake_open(&g_stop_wake);
    (void)wake_open(&s->loop_wake);
    choker_init(&s->choker, (uint64_t)s->start_ms ^ (uint64_t)(uintptr_t)s);
    s->last_choke_ms = s->start_ms;
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
    if (rc == CLI_EXIT_OK)
        sample_progress(s, peer_now_ms(), true); /* show the final 100% */
    progress_clear(&s->progress);
    rc = session_teardown(s, rc);
    int64_t end_ms = peer_now_ms();
    if ((rc == CLI_EXIT_SIGINT || rc == CLI_EXIT_SIGTERM) && !s->complete_ms)
        fprintf(stderr, "ptorrent: interrupted; partial data left in %s (run again to resume)\n",
                cfg->out_dir);
    else if (rc == CLI_EXIT_SIGINT || rc == CLI_EXIT_SIGTERM)
        fprintf(stderr, "ptorrent: stopped\n");
    else if (!cfg->quiet && rc == CLI_EXIT_OK)
        print_summary(s, end_ms);
    if (cfg->stats_json)
        write_stats(s, rc, end_ms);
    session_free(s);
    return rc;
}
