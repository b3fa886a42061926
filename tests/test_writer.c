/*
 * Tests for the storage writer, through writer.h with a real storage in a
 * temporary directory: pieces end on disk and are counted, on_written runs
 * once per piece, several producers against a queue of two pieces lose
 * nothing and never exceed the bound, an oversized piece cannot deadlock, and
 * a write error stops the writer: it is reported with the path, blocked and
 * later producers get PT_ERR_STOPPED and keep their buffers. Pieces queued
 * together are sorted and written as runs: one write call per file segment
 * (storage_write_calls), not one per piece.
 *
 * The metainfo is built by hand: storage only reads files[], file_count,
 * total_length, piece_length and piece_count.
 */
#include <CUnit/CUnit.h>
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "metainfo.h"
#include "storage.h"
#include "writer.h"
#include "support.h"

#define MAX_FILES 8
#define MAX_PATH 64
#define MAX_PIECES 128
#define WAIT_MS 2000 /* longest a test waits for the writer thread */

/* ---- helpers ---- */

struct torrent {
    struct metainfo m;
    struct metainfo_file files[MAX_FILES];
    char paths[MAX_FILES][MAX_PATH];
};

static void torrent_init(struct torrent *t, uint32_t piece_length, size_t n,
                         const char *const paths[], const uint64_t lengths[])
{
    CU_ASSERT_FATAL(n <= MAX_FILES);
    memset(t, 0, sizeof *t);
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        snprintf(t->paths[i], MAX_PATH, "%s", paths[i]);
        t->files[i].path = t->paths[i];
        t->files[i].length = lengths[i];
        t->files[i].offset = off;
        off += lengths[i];
    }
    t->m.name = t->paths[0];
    t->m.files = t->files;
    t->m.file_count = n;
    t->m.multi_file = n > 1;
    t->m.total_length = off;
    t->m.piece_length = piece_length;
    t->m.piece_count = (uint32_t)((off + piece_length - 1) / piece_length);
    CU_ASSERT_FATAL(t->m.piece_count <= MAX_PIECES);
}

static uint8_t pattern(uint64_t off)
{
    return (uint8_t)(off * 13u + (off >> 8) + 5u);
}

static uint32_t piece_len(const struct torrent *t, uint32_t index)
{
    uint64_t off = (uint64_t)index * t->m.piece_length;
    uint64_t left = t->m.total_length - off;
    return (uint32_t)(left < t->m.piece_length ? left : t->m.piece_length);
}

/* A malloc'd copy of piece `index`'s bytes, as a peer thread would hand over. */
static uint8_t *piece_data(const struct torrent *t, uint32_t index)
{
    uint32_t len = piece_len(t, index);
    uint64_t off = (uint64_t)index * t->m.piece_length;
    uint8_t *p = malloc(len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    for (uint32_t i = 0; i < len; i++)
        p[i] = pattern(off + i);
    return p;
}
/* Every file under dir holds exactly its slice of the pattern (read with stdio). */
static bool files_hold_pattern(const struct torrent *t, const char *dir)
{
    bool all = true;
    for (size_t i = 0; i < t->m.file_count; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, t->files[i].path);
        FILE *f = fopen(path, "rb");
        if (!f) {
            fprintf(stderr, "\n  writer: cannot open %s\n", path);
            all = false;
            continue;
        }
        uint64_t k = 0;
        int c;
        bool same = true;
        while ((c = fgetc(f)) != EOF) {
            if (k >= t->files[i].length || (uint8_t)c != pattern(t->files[i].offset + k))
                same = false;
            k++;
        }
        fclose(f);
        if (!same || k != t->files[i].length) {
            fprintf(stderr, "\n  writer: %s does not hold its bytes\n", path);
            all = false;
        }
    }
    return all;
}

/* What on_written saw, plus an optional gate that holds the writer thread
 * inside the callback until the test opens it. */
struct seen {
    atomic_int calls[MAX_PIECES];
    atomic_int total;
    int delay_ms; /* sleep in each callback: a slow disk */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool gated; /* guarded by lock */
    bool in_callback; /* guarded by lock */
};

static void seen_init(struct seen *s, int delay_ms, bool gated)
{
    for (size_t i = 0; i < MAX_PIECES; i++)
        atomic_init(&s->calls[i], 0);
    atomic_init(&s->total, 0);
    s->delay_ms = delay_ms;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    s->gated = gated;
    s->in_callback = false;
}

static void seen_release(struct seen *s)
{
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
}

static void on_written(void *arg, uint32_t index)
{
    struct seen *s = arg;
    if (index < MAX_PIECES)
        atomic_fetch_add(&s->calls[index], 1);
    atomic_fetch_add(&s->total, 1);
    if (s->delay_ms > 0)
        sleep_ms(s->delay_ms);
    pthread_mutex_lock(&s->lock);
    s->in_callback = true;
    pthread_cond_broadcast(&s->cond);
    while (s->gated)
        pthread_cond_wait(&s->cond, &s->lock);
    s->in_callback = false;
    pthread_mutex_unlock(&s->lock);
}

/* Waits (bounded) until the writer thread sits in the gated callback. */
static bool wait_in_callback(struct seen *s)
{
    int64_t deadline = now_ms() + WAIT_MS;
    pthread_mutex_lock(&s->lock);
    while (!s->in_callback && now_ms() < deadline) {
        pthread_mutex_unlock(&s->lock);
        sleep_ms(1);
        pthread_mutex_lock(&s->lock);
    }
    bool in = s->in_callback;
    pthread_mutex_unlock(&s->lock);
    return in;
}

static void open_gate(struct seen *s)
{
    pthread_mutex_lock(&s->lock);
    s->gated = false;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

/* Waits (bounded) until the writer has written `n` pieces. */
static bool wait_written(struct writer *w, uint32_t n)
{
    int64_t deadline = now_ms() + WAIT_MS;
    while (writer_pieces_written(w) < n && now_ms() < deadline)
        sleep_ms(1);
    return writer_pieces_written(w) >= n;
}

/* Waits (bounded) until the writer reports an error. */
static enum pt_err wait_error(struct writer *w, struct pt_errctx *ctx)
{
    int64_t deadline = now_ms() + WAIT_MS;
    enum pt_err err;
    while ((err = writer_error(w, ctx)) == PT_OK && now_ms() < deadline)
        sleep_ms(1);
    return err;
}

/* Three files, 4 KiB pieces that cross both boundaries, a short last piece. */
static const char *const three_paths[] = {"t/a", "t/sub/b", "t/c"};
static const uint64_t three_lengths[] = {10000, 5000, 30000};
#define THREE_PIECE_LEN 4096u

/* ---- tests ---- */

static void test_writer_submitted_pieces_end_on_disk(void)
{
    struct torrent t;
    torrent_init(&t, THREE_PIECE_LEN, 3, three_paths, three_lengths);
    char *tmp = make_tmpdir("writer");
    enum pt_err err;
    struct pt_errctx ctx = {PT_NO_OFFSET, ""};
    struct storage *s = storage_open(&t.m, tmp, &err, &ctx);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct seen seen;
    seen_init(&seen, 0, false);
    struct writer *w = writer_new(s, 4 * THREE_PIECE_LEN, on_written, &seen);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);

    /* Backwards, so the short last piece goes first. */
    uint32_t n = t.m.piece_count;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = n - 1 - k;
        CU_ASSERT_EQUAL(writer_submit(w, i, piece_data(&t, i), piece_len(&t, i)), PT_OK);
    }
    CU_ASSERT_TRUE(wait_written(w, n));
    CU_ASSERT_EQUAL(writer_pieces_written(w), n);
    CU_ASSERT_EQUAL(writer_error(w, &ctx), PT_OK);
    CU_ASSERT_EQUAL(writer_finish(w, &ctx), PT_OK);

    CU_ASSERT_EQUAL(atomic_load(&seen.total), (int)n);
    for (uint32_t i = 0; i < n; i++)
        CU_ASSERT_EQUAL(atomic_load(&seen.calls[i]), 1);
    CU_ASSERT_TRUE(files_hold_pattern(&t, tmp));
    seen_release(&seen);
    storage_close(s);
    remove_tree(tmp);
    free(tmp);
}

static void test_writer_finish_writes_everything_queued(void)
{
    struct torrent t;
    torrent_init(&t, THREE_PIECE_LEN, 3, three_paths, three_lengths);
    char *tmp = make_tmpdir("writer");
    enum pt_err err;
    struct pt_errctx ctx = {PT_NO_OFFSET, ""};
    struct storage *s = storage_open(&t.m, tmp, &err, &ctx);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct seen seen;
    seen_init(&seen, 0, false);
    /* Room for every piece at once, so nothing has been written when finish starts. */
    struct writer *w = writer_new(s, (size_t)t.m.total_length, on_written, &seen);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    for (uint32_t i = 0; i < t.m.piece_count; i++)
        CU_ASSERT_EQUAL(writer_submit(w, i, piece_data(&t, i), piece_len(&t, i)), PT_OK);
    CU_ASSERT_EQUAL(writer_finish(w, &ctx), PT_OK);
    CU_ASSERT_EQUAL(atomic_load(&seen.total), (int)t.m.piece_count);
    CU_ASSERT_TRUE(files_hold_pattern(&t, tmp));
    seen_release(&seen);
    storage_close(s);
    remove_tree(tmp);
    free(tmp);
}

static void test_writer_finish_with_nothing_queued(void)
{
    struct torrent t;
    torrent_init(&t, THREE_PIECE_LEN, 3, three_paths, three_lengths);
    char *tmp = make_tmpdir("writer");
    enum pt_err err;
    struct pt_errctx ctx = {PT_NO_OFFSET, ""};
    struct storage *s = storage_open(&t.m, tmp, &err, &ctx);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct writer *w = writer_new(s, THREE_PIECE_LEN, NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    CU_ASSERT_EQUAL(writer_pieces_written(w), 0);
    CU_ASSERT_EQUAL(writer_error(w, NULL), PT_OK);
    CU_ASSERT_EQUAL(writer_finish(w, NULL), PT_OK);
    storage_close(s);
    remove_tree(tmp);
    free(tmp);
}

/* ---- back-pressure ---- */

#define BP_PRODUCERS 4
#define BP_PIECE_LEN 4096u
#define BP_PIECES 64u
#define BP_MAX_QUEUED 2u /* pieces */

struct producer {
    pthread_t thread;
    struct writer *w;
    const struct torrent *t;
    uint32_t first; /* this producer submits first, first + BP_PRODUCERS, ... */
    atomic_uint *submitted;
    int not_ok;      /* submits that did not return PT_OK */
    int over_bound;  /* times more than BP_MAX_QUEUED pieces were unwritten */
};

static void *producer_thread_main(void *arg)
{
    struct producer *p = arg;
    for (uint32_t i = p->first; i < p->t->m.piece_count; i += BP_PRODUCERS) {
        uint8_t *data = piece_data(p->t, i);
        if (writer_submit(p->w, i, data, piece_len(p->t, i)) != PT_OK) {
            free(data);
            p->not_ok++;
            continue;
        }
        /* Count first, then read written: written only grows, so sub - written
         * can only understate what was queued when this piece went in. */
        unsigned sub = atomic_fetch_add(p->submitted, 1) + 1;
        uint32_t written = writer_pieces_written(p->w);
        if (sub > written + BP_MAX_QUEUED)
            p->over_bound++;
    }
    return NULL;
}

static void test_writer_back_pressure_loses_nothing(void)
{
    static const char *const paths[] = {"bp/x", "bp/y"};
    static const uint64_t lengths[] = {100000, BP_PIECES * BP_PIECE_LEN - 100000};
    struct torrent t;
    torrent_init(&t, BP_PIECE_LEN, 2, paths, lengths);
    CU_ASSERT_EQUAL_FATAL(t.m.piece_count, BP_PIECES);
    char *tmp = make_tmpdir("writer");
    enum pt_err err;
    struct pt_errctx ctx = {PT_NO_OFFSET, ""};
    struct storage *s = storage_open(&t.m, tmp, &err, &ctx);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct seen seen;
    seen_init(&seen, 1, false); /* 1 ms per piece: the producers outrun the disk */
    struct writer *w = writer_new(s, BP_MAX_QUEUED * BP_PIECE_LEN, on_written, &seen);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);

    atomic_uint submitted;
    atomic_init(&submitted, 0);
    struct producer prod[BP_PRODUCERS];
    for (uint32_t k = 0; k < BP_PRODUCERS; k++) {
        prod[k] = (struct producer){.w = w, .t = &t, .first = k, .submitted = &submitted};
        CU_ASSERT_EQUAL_FATAL(
            pthread_create(&prod[k].thread, NULL, producer_thread_main, &prod[k]), 0);
    }
    int not_ok = 0, over = 0;
    for (uint32_t k = 0; k < BP_PRODUCERS; k++) {
        pthread_join(prod[k].thread, NULL);
        not_ok += prod[k].not_ok;
        over += prod[k].over_bound;
    }
    CU_ASSERT_EQUAL(not_ok, 0);
    CU_ASSERT_EQUAL(over, 0);
    CU_ASSERT_EQUAL(atomic_load(&submitted), BP_PIECES);
    CU_ASSERT_TRUE(wait_written(w, BP_PIECES));
    CU_ASSERT_EQUAL(writer_finish(w, &ctx), PT_OK);
    CU_ASSERT_EQUAL(atomic_load(&seen.total), (int)BP_PIECES);
    for (uint32_t i = 0; i < BP_PIECES; i++)
        CU_ASSERT_EQUAL(atomic_load(&seen.calls[i]), 1);
    CU_ASSERT_TRUE(files_hold_pattern(&t, tmp));
    seen_release(&seen);
    storage_close(s);
    remove_tree(tmp);
    free(tmp);
}

static void test_writer_piece_larger_than_bound_does_not_deadlock(void)
{
    struct torrent t;
    torrent_init(&t, THREE_PIECE_LEN, 3, three_paths, three_lengths);
    char *tmp = make_tmpdir("writer");
    enum pt_err err;
    struct pt_errctx ctx = {PT_NO_OFFSET, ""};
    struct storage *s = storage_open(&t.m, tmp, &err, &ctx);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    /* A bound smaller than one piece: each goes in alone once the queue is empty. */
    struct writer *w = writer_new(s, 100, NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    for (uint32_t i = 0; i < t.m.piece_count; i++)
        CU_ASSERT_EQUAL(writer_submit(w, i, piece_data(&t, i), piece_len(&t, i)), PT_OK);
    CU_ASSERT_TRUE(wait_written(w, t.m.piece_count));
    CU_ASSERT_EQUAL(writer_finish(w, &ctx), PT_OK);
    CU_ASSERT_TRUE(files_hold_pattern(&t, tmp));
    storage_close(s);
    remove_tree(tmp);
    free(tmp);
}

/* ---- batching: runs of neighbours in one pwritev per file segment ---- */

/* 1000-byte pieces over a (2500), an empty file, b (4000) and c (3700):
 * pieces 2 and 6 span two files each; 11 pieces, the last 200 bytes. */
static const char *const batch_paths[] = {"w/a", "w/empty", "w/b", "w/c"};
static const uint64_t batch_lengths[] = {2500, 0, 4000, 3700};
#define BATCH_PIECE_LEN 1000

/* Submits indices[0..n) while the writer thread sits in the gated callback
 * of piece `first` (so they are all queued when it looks again), then lets
 * it go and waits for them. Returns the write calls made for them. */
static uint64_t submit_held_back(struct writer *w, struct storage *s, struct seen *seen,
                                 const struct torrent *t, uint32_t first,
                                 const uint32_t *indices, size_t n)
{
    CU_ASSERT_EQUAL(writer_submit(w, first, piece_data(t, first), piece_len(t, first)), PT_OK);
    CU_ASSERT_TRUE_FATAL(wait_in_callback(seen));
    uint64_t before = storage_write_calls(s); /* piece `first` is on disk already */
    for (size_t k = 0; k < n; k++)
        CU_ASSERT_EQUAL(writer_submit(w, indices[k], piece_data(t, indices[k]),
                                      piece_len(t, indices[k])),
                        PT_OK);
    open_gate(seen);
    CU_ASSERT_TRUE(wait_written(w, 1 + (uint32_t)n));
    return storage_write_calls(s) - before;
}


/* Ten neighbours queued at once: one call per file segment (a, b, c; the
 * empty file skipped), not one per piece; every byte in place. */
static void test_writer_coalesces_consecutive_pieces(void)
{
    struct torrent t;
    torrent_init(&t, BATCH_PIECE_LEN, 4, batch_paths, batch_lengths);
    CU_ASSERT_EQUAL_FATAL(t.m.piece_count, 11);
    char *tmp = make_tmpdir("writer");
    enum pt_err err;
    struct pt_errctx ctx = {PT_NO_OFFSET, ""};
    struct storage *s = storage_open(&t.m, tmp, &err, &ctx);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct seen seen;
    seen_init(&seen, 0, true);
    struct writer *w = writer_new(s, 16 * BATCH_PIECE_LEN, on_written, &seen);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);

    static const uint32_t rest[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    uint64_t calls = submit_held_back(w, s, &seen, &t, 0, rest, 10);
    CU_ASSERT_TRUE(write_calls_are(calls, 3));
    if (!write_calls_are(calls, 3))
        fprintf(stderr, "\n  writer: 10 pieces took %llu write calls\n",
                (unsigned long long)calls);
    CU_ASSERT_EQUAL(writer_finish(w, &ctx), PT_OK);
    CU_ASSERT_TRUE(files_hold_pattern(&t, tmp));
    for (uint32_t i = 0; i < t.m.piece_count; i++)
        CU_ASSERT_EQUAL(atomic_load(&seen.calls[i]), 1);
    seen_release(&seen);
    storage_close(s);
    remove_tree(tmp);
    free(tmp);
}

/* Queued as 5, 3, 4, 9: sorted into runs 3-5 (inside b) and 9 (inside c),
 * two calls; on_written once per piece. */
static void test_writer_sorts_out_of_order_batch(void)
{
    struct torrent t;
    torrent_init(&t, BATCH_PIECE_LEN, 4, batch_paths, batch_lengths);
    char *tmp = make_tmpdir("writer");
    enum pt_err err;
    struct pt_errctx ctx = {PT_NO_OFFSET, ""};
    struct storage *s = storage_open(&t.m, tmp, &err, &ctx);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct seen seen;
    seen_init(&seen, 0, true);
    struct writer *w = writer_new(s, 16 * BATCH_PIECE_LEN, on_written, &seen);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);

    static const uint32_t shuffled[] = {5, 3, 4, 9};
    uint64_t calls = submit_held_back(w, s, &seen, &t, 0, shuffled, 4);
    CU_ASSERT_TRUE(write_calls_are(calls, 2));
    CU_ASSERT_EQUAL(atomic_load(&seen.total), 5);
    static const uint32_t others[] = {10, 1, 8, 2, 7, 6};
    for (size_t k = 0; k < 6; k++)
        CU_ASSERT_EQUAL(writer_submit(w, others[k], piece_data(&t, others[k]),
                                      piece_len(&t, others[k])),
                        PT_OK);
    CU_ASSERT_TRUE(wait_written(w, t.m.piece_count));
    CU_ASSERT_EQUAL(writer_finish(w, &ctx), PT_OK);
    CU_ASSERT_TRUE(files_hold_pattern(&t, tmp));
    for (uint32_t i = 0; i < t.m.piece_count; i++)
        CU_ASSERT_EQUAL(atomic_load(&seen.calls[i]), 1);
    seen_release(&seen);
    storage_close(s);
    remove_tree(tmp);
    free(tmp);
}

/* ---- errors ---- */

/* Replaces the file at dir/rel by a directory, so the storage's lazy open() fails. */
static void sabotage(const char *dir, const char *rel)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    CU_ASSERT_EQUAL_FATAL(unlink(path), 0);
    CU_ASSERT_EQUAL_FATAL(mkdir(path, 0755), 0);
}

static void test_writer_reports_error_and_refuses_more(void)
{
    struct torrent t;
    torrent_init(&t, THREE_PIECE_LEN, 3, three_paths, three_lengths);
    char *tmp = make_tmpdir("writer");
    enum pt_err err;
    struct pt_errctx ctx = {PT_NO_OFFSET, ""};
    struct storage *s = storage_open(&t.m, tmp, &err, &ctx);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    sabotage(tmp, "t/sub/b"); /* bytes 10000..15000: pieces 2 and 3 */
    struct seen seen;
    seen_init(&seen, 0, false);
    struct writer *w = writer_new(s, 2 * THREE_PIECE_LEN, on_written, &seen);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);

    CU_ASSERT_EQUAL(writer_submit(w, 0, piece_data(&t, 0), piece_len(&t, 0)), PT_OK);
    CU_ASSERT_TRUE(wait_written(w, 1));
    CU_ASSERT_EQUAL(writer_submit(w, 3, piece_data(&t, 3), piece_len(&t, 3)), PT_OK);

    struct pt_errctx wctx = {PT_NO_OFFSET, ""};
    err = wait_error(w, &wctx);
    CU_ASSERT_NOT_EQUAL(err, PT_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(wctx.msg, "t/sub/b"));
    if (!strstr(wctx.msg, "t/sub/b"))
        fprintf(stderr, "\n  writer: message '%s' does not name t/sub/b\n", wctx.msg);

    /* From now on pieces are refused and stay the caller's (ASan checks the free). */
    uint8_t *data = piece_data(&t, 4);
    CU_ASSERT_EQUAL(writer_submit(w, 4, data, piece_len(&t, 4)), PT_ERR_STOPPED);
    CU_ASSERT_EQUAL(data[0], pattern(4u * THREE_PIECE_LEN));
    free(data);
    CU_ASSERT_EQUAL(writer_pieces_written(w), 1);

    memset(&wctx, 0, sizeof wctx);
    CU_ASSERT_EQUAL(writer_finish(w, &wctx), err);
    CU_ASSERT_PTR_NOT_NULL(strstr(wctx.msg, "t/sub/b"));
    CU_ASSERT_EQUAL(atomic_load(&seen.total), 1);
    CU_ASSERT_EQUAL(atomic_load(&seen.calls[0]), 1);
    seen_release(&seen);
    storage_close(s);
    remove_tree(tmp);
    free(tmp);
}

struct blocked_submit {
    struct writer *w;
    uint32_t index;
    uint8_t *data;
    uint32_t len;
    enum pt_err result;
};

static void *blocked_submit_thread_main(void *arg)
{
    struct blocked_submit *b = arg;
    b->result = writer_submit(b->w, b->index, b->data, b->len);
    return NULL;
}

/* A producer blocked on a full queue when the write fails is woken with
 * PT_ERR_STOPPED. The queue holds a short good piece (its callback held by a
 * gate) and a full bad piece; the producer's full piece cannot fit even once
 * the short one is done, so it is still waiting when the bad one fails. */
static void test_writer_error_wakes_blocked_producer(void)
{
    static const char *const paths[] = {"e/bad", "e/good"};
    static const uint64_t lengths[] = {4096, 4096 + 1000};
    struct torrent t;
    torrent_init(&t, 2048, 2, paths, lengths);
    CU_ASSERT_EQUAL_FATAL(t.m.piece_count, 5); /* 0,1 bad; 2,3 good; 4 good and short */
    char *tmp = make_tmpdir("writer");
    enum pt_err err;
    struct pt_errctx ctx = {PT_NO_OFFSET, ""};
    struct storage *s = storage_open(&t.m, tmp, &err, &ctx);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    sabotage(tmp, "e/bad");
    struct seen seen;
    seen_init(&seen, 0, true);
    struct writer *w = writer_new(s, 1000 + 2048, on_written, &seen);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);

    CU_ASSERT_EQUAL(writer_submit(w, 4, piece_data(&t, 4), piece_len(&t, 4)), PT_OK);
    CU_ASSERT_TRUE_FATAL(wait_in_callback(&seen));
    CU_ASSERT_EQUAL(writer_submit(w, 0, piece_data(&t, 0), piece_len(&t, 0)), PT_OK);

    struct blocked_submit b = {w, 2, piece_data(&t, 2), piece_len(&t, 2), PT_OK};
    pthread_t th;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, blocked_submit_thread_main, &b), 0);
    sleep_ms(50); /* let it block; the outcome is the same if it has not yet */
    open_gate(&seen);
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL(b.result, PT_ERR_STOPPED);
    free(b.data); /* refused: still ours */

    struct pt_errctx wctx = {PT_NO_OFFSET, ""};
    CU_ASSERT_NOT_EQUAL(writer_error(w, &wctx), PT_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(wctx.msg, "e/bad"));
    CU_ASSERT_NOT_EQUAL(writer_finish(w, NULL), PT_OK);
    CU_ASSERT_EQUAL(atomic_load(&seen.total), 1);
    CU_ASSERT_EQUAL(atomic_load(&seen.calls[4]), 1);
    seen_release(&seen);
    storage_close(s);
    remove_tree(tmp);
    free(tmp);
}

/* Called by tests/test_main.c (see suites.h there). */
int test_writer_register(void);

int test_writer_register(void)
{
    CU_pSuite s = CU_add_suite("writer", NULL, NULL);
    if (!s)
        return -1;
    struct {
        const char *name;
        CU_TestFunc fn;
    } tests[] = {
        {"submitted pieces end on disk", test_writer_submitted_pieces_end_on_disk},
        {"finish writes everything queued", test_writer_finish_writes_everything_queued},
        {"finish with nothing queued", test_writer_finish_with_nothing_queued},
        {"back-pressure loses nothing", test_writer_back_pressure_loses_nothing},
        {"piece larger than bound does not deadlock",
         test_writer_piece_larger_than_bound_does_not_deadlock},
        {"reports error and refuses more", test_writer_reports_error_and_refuses_more},
        {"error wakes blocked producer", test_writer_error_wakes_blocked_producer},
        {"coalesces consecutive pieces", test_writer_coalesces_consecutive_pieces},
        {"sorts out-of-order batch", test_writer_sorts_out_of_order_batch},
    };
    for (size_t k = 0; k < sizeof tests / sizeof tests[0]; k++)
        if (!CU_add_test(s, tests[k].name, tests[k].fn))
            return -1;
    return 0;
}
