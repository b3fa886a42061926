/*
 * bufpool: one arena cut into `count` buffers, and a free list (a stack of
 * pointers) under one mutex. bufpool_get waits on `returned` with a timed
 * wait, so a waiter notices the stop flag within BUFPOOL_WAIT_SLICE_MS even
 * if nobody puts a buffer back.
 *
 * The arena is reserved whole but the OS backs a page only when it is first
 * written, so a buffer costs memory only once handed out. Where the OS has
 * transparent huge pages for regions that ask (Linux's MADV_HUGEPAGE), the
 * arena asks: a 1 MiB piece is then part of one 2 MiB page instead of 256
 * small ones, so filling the pool takes a few page faults, not thousands.
 */
#include "bufpool.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define BUFPOOL_WAIT_SLICE_MS 200
#define BUFPOOL_ALIGN ((size_t)2 << 20) /* a huge page on x86-64 and arm64 */

struct bufpool {
    size_t size;  /* immutable */
    size_t count; /* immutable */
    uint8_t *arena; /* immutable: count * size bytes; buffer i at arena + i * size */
    /* Locking: `lock` guards free_list, nfree, allocated and in_use. */
    pthread_mutex_t lock;
    pthread_cond_t returned; /* signalled by bufpool_put */
    uint8_t **free_list;     /* count slots, nfree used */
    size_t nfree;
    size_t allocated;
    size_t in_use;
};

struct bufpool *bufpool_new(size_t size, size_t count)
{
    if (count == 0 || size == 0 || size > SIZE_MAX / count)
        return NULL;
    struct bufpool *p = calloc(1, sizeof *p);
    void *arena = NULL;
    if (p)
        p->free_list = calloc(count, sizeof *p->free_list);
    if (!p || !p->free_list || posix_memalign(&arena, BUFPOOL_ALIGN, size * count) != 0) {
        if (p)
            free(p->free_list);
        free(p);
        return NULL;
    }
#ifdef MADV_HUGEPAGE
    (void)madvise(arena, size * count, MADV_HUGEPAGE); /* a hint: without it, small pages */
#endif
    p->arena = arena;
    p->size = size;
    p->count = count;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->returned, NULL);
    return p;
}

void bufpool_prefault(struct bufpool *p, size_t count)
{
    assert(p->allocated == 0); /* the pages are written: no buffer may be in use */
    size_t bytes = (count < p->count ? count : p->count) * p->size;
#ifdef MADV_POPULATE_WRITE
    if (madvise(p->arena, bytes, MADV_POPULATE_WRITE) == 0) /* Linux 5.14: no loop */
        return;
#endif
    long page = sysconf(_SC_PAGESIZE);
    for (size_t off = 0; off < bytes; off += page > 0 ? (size_t)page : 4096)
        ((volatile uint8_t *)p->arena)[off] = 0;
}

void bufpool_free(struct bufpool *p)
{
    if (!p)
        return;
    assert(p->in_use == 0); /* every buffer must be back before the pool goes */
    free(p->arena);
    free(p->free_list);
    pthread_cond_destroy(&p->returned);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* The buffer used last (its pages are backed and likely in cache), or the
 * next never-used slice of the arena, else NULL. */
static uint8_t *take_locked(struct bufpool *p)
{
    uint8_t *b = NULL;
    if (p->nfree > 0)
        b = p->free_list[--p->nfree];
    else if (p->allocated < p->count)
        b = p->arena + p->allocated++ * p->size;
    if (b)
        p->in_use++;
    return b;
}

uint8_t *bufpool_try_get(struct bufpool *p)
{
    pthread_mutex_lock(&p->lock);
    uint8_t *b = take_locked(p);
    pthread_mutex_unlock(&p->lock);
    return b;
}

uint8_t *bufpool_get(struct bufpool *p, const atomic_bool *stop)
{
    pthread_mutex_lock(&p->lock);
    uint8_t *b;
    while ((b = take_locked(p)) == NULL && !(stop && atomic_load(stop))) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += BUFPOOL_WAIT_SLICE_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&p->returned, &p->lock, &until);
    }
    pthread_mutex_unlock(&p->lock);
    return b;
}

void bufpool_put(struct bufpool *p, uint8_t *buf)
{
    if (!buf)
        return;
    pthread_mutex_lock(&p->lock);
    assert(p->nfree < p->count && p->in_use > 0); /* a double or foreign put */
    p->free_list[p->nfree++] = buf;
    p->in_use--;
    pthread_cond_signal(&p->returned);
    pthread_mutex_unlock(&p->lock);
}

size_t bufpool_size(const struct bufpool *p)
{
    return p->size;
}

size_t bufpool_in_use(struct bufpool *p)
{
    pthread_mutex_lock(&p->lock);
    size_t n = p->in_use;
    pthread_mutex_unlock(&p->lock);
    return n;
}

size_t bufpool_allocated(struct bufpool *p)
{
    pthread_mutex_lock(&p->lock);
    size_t n = p->allocated;
    pthread_mutex_unlock(&p->lock);
    return n;
}
