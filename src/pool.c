/*
 * pool: DESIGN
 *
 * Slots are owned by the main thread; the only field a pool thread touches is
 * its slot's `done` flag, an atomic it sets as its very last act. The main
 * thread joins a slot only after seeing `done`, so pool_reap never blocks.
 */
#include "pool.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

struct slot {
    pthread_t thread;
    bool busy;          /* main thread only: a thread was started here and not joined */
    atomic_bool done;   /* set by the thread when fn has returned */
    void (*fn)(void *);
    void *arg;
};

struct pool {
    unsigned max;     /* immutable */
    unsigned running; /* main thread only */
    struct slot *slots;
};

struct pool *pool_new(unsigned max_threads)
{
    struct pool *p = calloc(1, sizeof *p);
    if (p)
        p->slots = calloc(max_threads ? max_threads : 1, sizeof *p->slots);
    if (!p || !p->slots) {
        free(p);
        return NULL;
    }
    p->max = max_threads;
    return p;
}

void pool_free(struct pool *p)
{
    if (!p)
        return;
    free(p->slots);
    free(p);
}

unsigned pool_max(const struct pool *p)
{
    return p->max;
}

unsigned pool_running(const struct pool *p)
{
    return p->running;
}

static void *slot_thread_main(void *arg)
{
    struct slot *s = arg;
    s->fn(s->arg);
    atomic_store(&s->done, true);
    return NULL;
}

enum pt_err pool_start(struct pool *p, void (*fn)(void *arg), void *arg)
{
    struct slot *s = NULL;
    for (unsigned i = 0; i < p->max && !s; i++)
        if (!p->slots[i].busy)
            s = &p->slots[i];
    if (!s)
        return PT_ERR_LIMIT;
    s->fn = fn;
    s->arg = arg;
    atomic_store(&s->done, false);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, POOL_STACK_BYTES);
    /* The new thread inherits a mask with every signal blocked, so SIGINT and
     * SIGTERM always reach the main thread and cut its sleep short. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&s->thread, &attr, slot_thread_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0)
        return PT_ERR_NOMEM;
    s->busy = true;
    p->running++;
    return PT_OK;
}

void pool_reap(struct pool *p)
{
    for (unsigned i = 0; i < p->max; i++) {
        struct slot *s = &p->slots[i];
        if (s->busy && atomic_load(&s->done)) {
            pthread_join(s->thread, NULL);
            s->busy = false;
            p->running--;
        }
    }
}

void pool_join_all(struct pool *p)
{
    for (unsigned i = 0; i < p->max; i++) {
        struct slot *s = &p->slots[i];
        if (s->busy) {
            pthread_join(s->thread, NULL);
            s->busy = false;
            p->running--;
        }
    }
}
