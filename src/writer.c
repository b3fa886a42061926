/*
 * writer: DESIGN
 *
 * The redis bio.c pattern, with the bound it lacks: a FIFO of pieces guarded
 * by one mutex and two condition variables, `not_empty` (the writer waits on
 * it) and `not_full` (producers wait on it).
 *
 * Batching. The writer takes EVERY piece queued at that moment (at most
 * WRITER_BATCH_MAX) in one turn of the lock, unlocks, sorts the batch by
 * index and writes each run of consecutive indices with one
 * storage_write_pieces call: one pwritev per file segment instead of one
 * pwrite per piece. The picker starts neighbouring pieces (see picker.c), so
 * when the disk is the bottleneck the queue fills with neighbours and the
 * batches grow exactly when fewer, larger writes help; when the disk keeps
 * up, batches are small (often one piece) and little changes.
 *
 * After each run, for each piece on disk in index order: on_written, then
 * its buffer is released. Only then are the run's bytes subtracted from
 * `queued_bytes` and `not_full` broadcast: memory is released before a
 * producer is let in, so the bound holds for bytes really held, and producers
 * need not wait for the whole batch. The writer never holds its lock during
 * I/O or a callback, nor any other lock with it.
 */
#include "writer.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Most pieces written per batch: 64 pieces of 256 KiB are 16 MiB per
 * pwritev, beyond which fewer calls save nothing measurable; it also keeps
 * the batch arrays on the writer's stack small and matches storage's iovec
 * cap, so one file segment of a batch is one call. */
#define WRITER_BATCH_MAX 64

struct job {
    struct job *next;
    uint32_t index;
    uint32_t len;
    uint8_t *data;
};

struct writer {
    struct storage *storage;      /* immutable; storage has its own lock */
    size_t max_bytes;             /* immutable */
    writer_written_fn on_written; /* immutable */
    void *arg;                    /* immutable */
    void (*release)(void *arg, uint8_t *data); /* set before the first submit */
    void *release_arg;
    pthread_t thread;
    /* Locking: `lock` guards head, tail, queued_bytes, finishing, failed,
     * error and error_ctx. */
    pthread_mutex_t lock;
    pthread_cond_t not_empty; /* signalled when a job is queued or finishing is set */
    pthread_cond_t not_full;  /* broadcast when bytes are freed or the writer fails */
    struct job *head, *tail;
    size_t queued_bytes; /* bytes of queued jobs plus those being written */
    bool finishing;      /* writer_finish was called: drain and exit */
    bool failed;         /* a write failed: refuse new work */
    enum pt_err error;
    struct pt_errctx error_ctx;
    atomic_uint_fast32_t written; /* pieces written; read without the lock */
};

/* Takes up to WRITER_BATCH_MAX queued jobs, oldest first, into jobs[];
 * returns how many, 0 only when finishing and the queue is empty.
 * *failed_out: a write had already failed (then the batch is only drained). */
static size_t next_batch(struct writer *w, struct job **jobs, bool *failed_out)
{
    size_t n = 0;
    pthread_mutex_lock(&w->lock);
    while (!w->head && !w->finishing)
        pthread_cond_wait(&w->not_empty, &w->lock);
    while (w->head && n < WRITER_BATCH_MAX) {
        jobs[n++] = w->head;
        w->head = w->head->next;
    }
    if (!w->head)
        w->tail = NULL;
    *failed_out = w->failed;
    pthread_mutex_unlock(&w->lock);
    return n;
}

/* Insertion sort by index: a batch is at most 64 jobs and mostly in order. */
static void sort_batch(struct job **jobs, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        struct job *j = jobs[i];
        size_t k = i;
        for (; k > 0 && jobs[k - 1]->index > j->index; k--)
            jobs[k] = jobs[k - 1];
        jobs[k] = j;
    }
}

/* Jobs from the front of jobs[] with consecutive indices. At least 1. */
static size_t run_length(struct job *const *jobs, size_t n)
{
    size_t k = 1;
    while (k < n && jobs[k]->index == jobs[k - 1]->index + 1)
        k++;
    return k;
}

/* After a run: report the pieces on disk (the first `written`), release every
 * buffer, then give the run's bytes back and record any error. */
static void run_done(struct writer *w, struct job **jobs, size_t n, size_t written,
                     enum pt_err err, const struct pt_errctx *ctx)
{
    size_t bytes = 0;
    for (size_t k = 0; k < n; k++) {
        if (k < written) {
            atomic_fetch_add(&w->written, 1);
            if (w->on_written)
                w->on_written(w->arg, jobs[k]->index);
        }
        bytes += jobs[k]->len;
        if (w->release)
            w->release(w->release_arg, jobs[k]->data);
        else
            free(jobs[k]->data);
        free(jobs[k]);
    }
    pthread_mutex_lock(&w->lock);
    w->queued_bytes -= bytes;
    if (err != PT_OK && !w->failed) {
        w->failed = true;
        w->error = err;
        w->error_ctx = *ctx;
    }
    pthread_cond_broadcast(&w->not_full);
    pthread_mutex_unlock(&w->lock);
}

/* Writes one run of consecutive pieces (unless a write failed before: then
 * the session is stopping and the run is only drained). Returns false once
 * a write has failed. */
static bool write_run(struct writer *w, struct job **jobs, size_t n, bool failed)
{
    struct storage_piece pieces[WRITER_BATCH_MAX];
    for (size_t k = 0; k < n; k++)
        pieces[k] = (struct storage_piece){jobs[k]->index, jobs[k]->len, jobs[k]->data};
    struct pt_errctx ctx = {PT_NO_OFFSET, ""};
    size_t written = 0;
    enum pt_err err = failed ? PT_OK
                             : storage_write_pieces(w->storage, pieces, n, &written, &ctx);
    if (err != PT_OK)
        log_error("writing piece %u: %s", pieces[written < n ? written : n - 1].index, ctx.msg);
    run_done(w, jobs, n, written, err, &ctx);
    return !failed && err == PT_OK;
}

static void *writer_thread_main(void *arg)
{
    struct writer *w = arg;
    log_set_role("writer");
    struct job *jobs[WRITER_BATCH_MAX];
    bool failed;
    size_t n;
    while ((n = next_batch(w, jobs, &failed)) > 0) {
        sort_batch(jobs, n);
        for (size_t k = 0; k < n;) {
            size_t run = run_length(jobs + k, n - k);
            failed = !write_run(w, jobs + k, run, failed);
            k += run;
        }
    }
    return NULL;
}

struct writer *writer_new(struct storage *s, size_t max_bytes, writer_written_fn on_written,
                          void *arg)
{
    struct writer *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->storage = s;
    w->max_bytes = max_bytes;
    w->on_written = on_written;
    w->arg = arg;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->not_empty, NULL);
    pthread_cond_init(&w->not_full, NULL);
    atomic_init(&w->written, 0);
    /* Signals belong to the main thread: start ours with them blocked. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&w->thread, NULL, writer_thread_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        pthread_cond_destroy(&w->not_full);
        pthread_cond_destroy(&w->not_empty);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return NULL;
    }
    return w;
}

enum pt_err writer_submit(struct writer *w, uint32_t index, uint8_t *data, uint32_t len)
{
    struct job *j = malloc(sizeof *j);
    if (!j)
        return PT_ERR_NOMEM;
    *j = (struct job){NULL, index, len, data};
    pthread_mutex_lock(&w->lock);
    /* A piece larger than the whole bound still goes in once the queue is
     * empty, so an odd configuration cannot deadlock. */
    while (!w->failed && !w->finishing && w->queued_bytes > 0 &&
           w->queued_bytes + len > w->max_bytes)
        pthread_cond_wait(&w->not_full, &w->lock);
    enum pt_err err = (w->failed || w->finishing) ? PT_ERR_STOPPED : PT_OK;
    if (err == PT_OK) {
        if (w->tail)
            w->tail->next = j;
        else
            w->head = j;
        w->tail = j;
        w->queued_bytes += len;
        pthread_cond_signal(&w->not_empty);
    }
    pthread_mutex_unlock(&w->lock);
    if (err != PT_OK)
        free(j);
    return err;
}

void writer_set_release(struct writer *w, void (*release)(void *arg, uint8_t *data), void *arg)
{
    w->release = release;
    w->release_arg = arg;
}

uint32_t writer_pieces_written(struct writer *w)
{
    return (uint32_t)atomic_load(&w->written);
}

enum pt_err writer_error(struct writer *w, struct pt_errctx *ctx)
{
    pthread_mutex_lock(&w->lock);
    enum pt_err err = w->failed ? w->error : PT_OK;
    if (err != PT_OK && ctx)
        *ctx = w->error_ctx;
    pthread_mutex_unlock(&w->lock);
    return err;
}

enum pt_err writer_finish(struct writer *w, struct pt_errctx *ctx)
{
    pthread_mutex_lock(&w->lock);
    w->finishing = true;
    pthread_cond_broadcast(&w->not_empty);
    pthread_cond_broadcast(&w->not_full);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    enum pt_err err = writer_error(w, ctx);
    pthread_cond_destroy(&w->not_full);
    pthread_cond_destroy(&w->not_empty);
    pthread_mutex_destroy(&w->lock);
    free(w);
    return err;
}
