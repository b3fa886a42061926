/*
 * writer: DESIGN
 *
 * The redis bio.c pattern, with the bound it lacks: a FIFO of pieces guarded
 * by one mutex and two condition variables, `not_empty` (the writer waits on
 * it) and `not_full` (producers wait on it). The writer pops a piece, unlocks,
 * writes it to disk, frees it, and only then subtracts its bytes from
 * `queued_bytes` and signals `not_full`: memory is released before a producer
 * is let in, so the bound holds for bytes really held.
 */
#include "writer.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

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
    size_t queued_bytes; /* bytes of queued jobs plus the one being written */
    bool finishing;      /* writer_finish was called: drain and exit */
    bool failed;         /* a write failed: refuse new work */
    enum pt_err error;
    struct pt_errctx error_ctx;
    atomic_uint_fast32_t written; /* pieces written; read without the lock */
};

/* Takes the next job, or NULL when finishing and the queue is empty. */
static struct job *next_job(struct writer *w)
{
    pthread_mutex_lock(&w->lock);
    while (!w->head && !w->finishing)
        pthread_cond_wait(&w->not_empty, &w->lock);
    struct job *j = w->head;
    if (j) {
        w->head = j->next;
        if (!w->head)
            w->tail = NULL;
    }
    pthread_mutex_unlock(&w->lock);
    return j;
}

/* After a job: give its bytes back and record any error. */
static void job_done(struct writer *w, struct job *j, enum pt_err err, const struct pt_errctx *ctx)
{
    size_t len = j->len;
    if (w->release)
        w->release(w->release_arg, j->data);
    else
        free(j->data);
    free(j);
    pthread_mutex_lock(&w->lock);
    w->queued_bytes -= len;
    if (err != PT_OK && !w->failed) {
        w->failed = true;
        w->error = err;
        w->error_ctx = *ctx;
    }
    pthread_cond_broadcast(&w->not_full);
    pthread_mutex_unlock(&w->lock);
}

static void *writer_thread_main(void *arg)
{
    struct writer *w = arg;
    log_set_role("writer");
    struct job *j;
    while ((j = next_job(w)) != NULL) {
        struct pt_errctx ctx = {PT_NO_OFFSET, ""};
        pthread_mutex_lock(&w->lock);
        bool failed = w->failed;
        pthread_mutex_unlock(&w->lock);
        /* After a failure, drain without writing: the session is stopping. */
        enum pt_err err = failed ? PT_OK
                                 : storage_write_piece(w->storage, j->index, j->data, j->len, &ctx);
        if (err == PT_OK && !failed) {
            atomic_fetch_add(&w->written, 1);
            if (w->on_written)
                w->on_written(w->arg, j->index);
        } else if (err != PT_OK) {
            log_error("writing piece %u: %s", j->index, ctx.msg);
        }
        job_done(w, j, err, &ctx);
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
