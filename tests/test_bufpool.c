/*
 * Tests for the piece-buffer pool, through bufpool.h: buffers are handed out
 * lazily and never more than `count`, each whole and apart from the others
 * (they are slices of one arena); try_get refuses at once when all are
 * out; a buffer put back is the one handed out next (no new malloc); get
 * waits for a put, or gives up with NULL once the stop flag is set; and a
 * stress test (run it under TSan) where eight threads share three buffers,
 * each filling its buffer with its own pattern and checking nobody else
 * wrote to it while it was held. bufpool_prefault backs the buffers it is
 * asked for with memory (mincore says their pages are resident), and only
 * those.
 */
#include <CUnit/CUnit.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "bufpool.h"
#include "support.h"

#define BUF_SIZE 1024 /* bytes; small so the stress test fills and checks quickly */

/* ---- helpers ---- */

/* Puts `buf` back into `pool` after `delay_ms`, from its own thread. */
struct late_put {
    struct bufpool *pool;
    uint8_t *buf;
    long delay_ms;
};

static void *late_put_thread_main(void *arg)
{
    struct late_put *lp = arg;
    sleep_ms(lp->delay_ms);
    bufpool_put(lp->pool, lp->buf);
    return NULL;
}

/* Sets *stop after `delay_ms` (unless it is negative: already set), from its
 * own thread. If the waiter has not returned RESCUE_MS later, puts `buf`
 * back, so a get that ignores the flag fails the test instead of hanging it. */
#define RESCUE_MS 2000

struct late_stop {
    atomic_bool *stop;
    long delay_ms;
    struct bufpool *pool;
    uint8_t *buf;
    atomic_bool returned; /* set by the waiter once get is back */
    bool rescued;         /* read after join */
};

static void *late_stop_thread_main(void *arg)
{
    struct late_stop *ls = arg;
    if (ls->delay_ms >= 0) {
        sleep_ms(ls->delay_ms);
        atomic_store(ls->stop, true);
    }
    int64_t deadline = now_ms() + RESCUE_MS;
    while (!atomic_load(&ls->returned) && now_ms() < deadline)
        sleep_ms(5);
    if (!atomic_load(&ls->returned)) {
        ls->rescued = true;
        bufpool_put(ls->pool, ls->buf);
    }
    return NULL;
}

/* bufpool_get on `p`, whose only buffer `only` is out, with *stop set after
 * delay_ms (negative: set already). Asserts it gives up with NULL, without
 * a rescue, after at least delay_ms and less than delay_ms + max_late_ms. */
static void check_get_gives_up(struct bufpool *p, uint8_t *only, atomic_bool *stop, long delay_ms,
                               long max_late_ms)
{
    struct late_stop ls = {.stop = stop, .delay_ms = delay_ms, .pool = p, .buf = only};
    atomic_init(&ls.returned, false);
    pthread_t th;
    int64_t t0 = now_ms();
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, late_stop_thread_main, &ls), 0);
    uint8_t *b = bufpool_get(p, stop);
    int64_t waited = now_ms() - t0;
    atomic_store(&ls.returned, true);
    pthread_join(th, NULL);

    long from = delay_ms > 0 ? delay_ms : 0;
    CU_ASSERT_PTR_NULL(b);
    CU_ASSERT_FALSE(ls.rescued);
    CU_ASSERT(waited >= from - 10); /* it did wait for the flag */
    CU_ASSERT(waited < from + max_late_ms);
    if (b || ls.rescued || waited < from - 10 || waited >= from + max_late_ms)
        fprintf(stderr, "\n  bufpool: stopped get gave %p after %lld ms%s, want NULL in %ld..%ld\n",
                (void *)b, (long long)waited, ls.rescued ? " (rescued)" : "", from,
                from + max_late_ms);
    /* After a rescue `only` is back in the pool unless get took it: take it out again. */
    if (ls.rescued && b != only)
        CU_ASSERT_PTR_EQUAL(bufpool_try_get(p), only);
}

/* ---- construction and counting ---- */

static void test_bufpool_new_with_count_zero_is_null(void)
{
    CU_ASSERT_PTR_NULL(bufpool_new(BUF_SIZE, 0));
    bufpool_free(NULL); /* a no-op */
}

static void test_bufpool_allocates_lazily(void)
{
    struct bufpool *p = bufpool_new(BUF_SIZE, 8);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(bufpool_size(p), BUF_SIZE);
    CU_ASSERT_EQUAL(bufpool_allocated(p), 0);
    CU_ASSERT_EQUAL(bufpool_in_use(p), 0);

    uint8_t *b = bufpool_try_get(p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    memset(b, 0xab, BUF_SIZE); /* the whole size is ours (ASan checks) */
    CU_ASSERT_EQUAL(bufpool_allocated(p), 1);
    CU_ASSERT_EQUAL(bufpool_in_use(p), 1);

    bufpool_put(p, b);
    CU_ASSERT_EQUAL(bufpool_allocated(p), 1); /* kept for reuse, not freed */
    CU_ASSERT_EQUAL(bufpool_in_use(p), 0);
    bufpool_free(p);
}

/* Resident pages of [b, b + len), by mincore (b page-aligned). */
static size_t resident_pages(uint8_t *b, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), n = (len + page - 1) / page, count = 0;
#if defined(__linux__)
    unsigned char *vec = malloc(n);
#else
    char *vec = malloc(n);
#endif
    CU_ASSERT_PTR_NOT_NULL_FATAL(vec);
    CU_ASSERT_EQUAL(mincore(b, len, vec), 0);
    for (size_t i = 0; i < n; i++)
        count += vec[i] & 1;
    free(vec);
    return count;
}

/* 8 MiB buffers: an arena this large is a fresh mapping (malloc's mmap
 * threshold is at most 32 MiB), so no page of it is resident before. */
static void test_bufpool_prefault_backs_the_buffers(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), size = (size_t)8 << 20;
    struct bufpool *p = bufpool_new(size, 4);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    bufpool_prefault(p, 2);
    uint8_t *b[3];
    for (int i = 0; i < 3; i++) {
        b[i] = bufpool_try_get(p);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b[i]);
    }
    /* Checked before anything here writes to them. */
    CU_ASSERT_EQUAL(resident_pages(b[0], size), size / page);
    CU_ASSERT_EQUAL(resident_pages(b[1], size), size / page);
    CU_ASSERT_EQUAL(resident_pages(b[2], size), 0); /* not asked for */
    CU_ASSERT_EQUAL(bufpool_allocated(p), 3); /* prefaulting handed nothing out */
    for (int i = 0; i < 3; i++)
        bufpool_put(p, b[i]);
    bufpool_free(p);
}

static void test_bufpool_try_get_hands_out_at_most_count(void)
{
    enum { COUNT = 4 };
    struct bufpool *p = bufpool_new(BUF_SIZE, COUNT);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    uint8_t *got[COUNT];
    for (size_t i = 0; i < COUNT; i++) {
        got[i] = bufpool_try_get(p);
        CU_ASSERT_PTR_NOT_NULL_FATAL(got[i]);
        for (size_t j = 0; j < i; j++)
            CU_ASSERT_PTR_NOT_EQUAL(got[i], got[j]);
        CU_ASSERT_EQUAL(bufpool_allocated(p), i + 1);
        CU_ASSERT_EQUAL(bufpool_in_use(p), i + 1);
    }
    /* Exhausted: NULL at once, again and again, and no allocation past count. */
    for (int k = 0; k < 3; k++) {
        CU_ASSERT_PTR_NULL(bufpool_try_get(p));
        CU_ASSERT_EQUAL(bufpool_allocated(p), COUNT);
        CU_ASSERT_EQUAL(bufpool_in_use(p), COUNT);
    }
    for (size_t i = 0; i < COUNT; i++)
        bufpool_put(p, got[i]);
    CU_ASSERT_EQUAL(bufpool_in_use(p), 0);
    CU_ASSERT_EQUAL(bufpool_allocated(p), COUNT);
    bufpool_free(p);
}

/* The buffers are slices of one arena: each must be whole and apart from
 * the others. Every byte of every buffer gets its owner's mark; a slice that
 * overlapped its neighbour would lose some of them. The size is odd so that a
 * slice computed with the wrong stride would show. */
static void test_bufpool_buffers_do_not_overlap(void)
{
    enum { COUNT = 5, SIZE = 3 * 1000 + 7 };
    struct bufpool *p = bufpool_new(SIZE, COUNT);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    uint8_t *got[COUNT];
    for (size_t i = 0; i < COUNT; i++) {
        got[i] = bufpool_try_get(p);
        CU_ASSERT_PTR_NOT_NULL_FATAL(got[i]);
        memset(got[i], (int)(0xA0 + i), SIZE);
    }
    for (size_t i = 0; i < COUNT; i++) {
        size_t bad = 0;
        for (size_t k = 0; k < SIZE; k++)
            bad += got[i][k] != (uint8_t)(0xA0 + i);
        CU_ASSERT_EQUAL(bad, 0);
    }
    for (size_t i = 0; i < COUNT; i++)
        bufpool_put(p, got[i]);
    bufpool_free(p);
}

/* size * count must not wrap around into a small arena. */
static void test_bufpool_new_refuses_a_size_that_overflows(void)
{
    CU_ASSERT_PTR_NULL(bufpool_new(SIZE_MAX / 2 + 1, 2));
    CU_ASSERT_PTR_NULL(bufpool_new(SIZE_MAX, 3));
}

static void test_bufpool_put_then_get_reuses_the_buffer(void)
{
    struct bufpool *p = bufpool_new(BUF_SIZE, 3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);

    /* One buffer out and back, many times: always the same one, one malloc. */
    uint8_t *first = bufpool_try_get(p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(first);
    bufpool_put(p, first);
    for (int k = 0; k < 10; k++) {
        uint8_t *b = bufpool_try_get(p);
        CU_ASSERT_PTR_EQUAL(b, first);
        CU_ASSERT_EQUAL(bufpool_allocated(p), 1);
        bufpool_put(p, b);
    }

    /* All three out; the middle one back; try_get and get return exactly it. */
    uint8_t *a = bufpool_try_get(p), *b = bufpool_try_get(p), *c = bufpool_try_get(p);
    CU_ASSERT_FATAL(a && b && c);
    CU_ASSERT_EQUAL(bufpool_allocated(p), 3);
    bufpool_put(p, b);
    uint8_t *again = bufpool_try_get(p);
    CU_ASSERT_PTR_EQUAL(again, b);
    bufpool_put(p, again);
    again = bufpool_get(p, NULL);
    CU_ASSERT_PTR_EQUAL(again, b);
    CU_ASSERT_EQUAL(bufpool_allocated(p), 3);
    CU_ASSERT_PTR_NULL(bufpool_try_get(p));

    bufpool_put(p, a);
    bufpool_put(p, again);
    bufpool_put(p, c);
    bufpool_free(p); /* frees all three (ASan/LeakSanitizer checks) */
}

static void test_bufpool_in_use_tracks_gets_and_puts(void)
{
    struct bufpool *p = bufpool_new(BUF_SIZE, 5);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    uint8_t *a = bufpool_try_get(p);
    uint8_t *b = bufpool_get(p, NULL);
    CU_ASSERT_FATAL(a && b);
    CU_ASSERT_EQUAL(bufpool_in_use(p), 2);
    bufpool_put(p, NULL); /* a no-op */
    CU_ASSERT_EQUAL(bufpool_in_use(p), 2);
    bufpool_put(p, a);
    CU_ASSERT_EQUAL(bufpool_in_use(p), 1);
    a = bufpool_try_get(p);
    uint8_t *c = bufpool_try_get(p);
    CU_ASSERT_FATAL(a && c);
    CU_ASSERT_EQUAL(bufpool_in_use(p), 3);
    CU_ASSERT_EQUAL(bufpool_allocated(p), 3);
    bufpool_put(p, c);
    bufpool_put(p, b);
    bufpool_put(p, a);
    CU_ASSERT_EQUAL(bufpool_in_use(p), 0);
    CU_ASSERT_EQUAL(bufpool_allocated(p), 3);
    bufpool_free(p);
}

/* ---- waiting ---- */

static void test_bufpool_get_waits_for_a_put(void)
{
    struct bufpool *p = bufpool_new(BUF_SIZE, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    uint8_t *only = bufpool_try_get(p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(only);

    struct late_put lp = {p, only, 200};
    pthread_t th;
    int64_t t0 = now_ms();
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, late_put_thread_main, &lp), 0);
    atomic_bool stop;
    atomic_init(&stop, false); /* never set: the wait ends only by the put */
    uint8_t *b = bufpool_get(p, &stop);
    int64_t waited = now_ms() - t0;
    pthread_join(th, NULL);

    CU_ASSERT_PTR_EQUAL(b, only);
    CU_ASSERT(waited >= 150);
    CU_ASSERT(waited < 2000);
    if (waited < 150 || waited >= 2000)
        fprintf(stderr, "\n  bufpool: get returned after %lld ms, want ~200\n", (long long)waited);
    CU_ASSERT_EQUAL(bufpool_allocated(p), 1);
    CU_ASSERT_EQUAL(bufpool_in_use(p), 1);
    bufpool_put(p, b);
    bufpool_free(p);
}

static void test_bufpool_get_gives_up_when_stopped(void)
{
    struct bufpool *p = bufpool_new(BUF_SIZE, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    uint8_t *only = bufpool_try_get(p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(only);
    atomic_bool stop;

    /* Stop already set and nothing free: NULL without waiting. */
    atomic_init(&stop, true);
    check_get_gives_up(p, only, &stop, -1, 100);

    /* Stop set while get waits (nobody puts): NULL within half a second. */
    atomic_store(&stop, false);
    check_get_gives_up(p, only, &stop, 50, 500);

    CU_ASSERT_EQUAL(bufpool_in_use(p), 1);
    CU_ASSERT_EQUAL(bufpool_allocated(p), 1);
    bufpool_put(p, only);
    bufpool_free(p);
}

/* ---- stress ---- */

#define STRESS_THREADS 8
#define STRESS_CYCLES 2000
#define STRESS_COUNT 3 /* buffers: far fewer than threads, so most gets wait */

struct stress {
    pthread_t thread;
    struct bufpool *pool;
    unsigned id;
    atomic_int *held; /* buffers held by all threads right now */
    int got_null;     /* get returned NULL (it must not: no stop flag) */
    int corrupted;    /* a held buffer changed under us */
    int over_count;   /* held or allocated went past STRESS_COUNT */
};

/* Thread- and cycle-specific, so a buffer shared with another thread, or a
 * stale one, shows. */
static uint8_t stress_byte(unsigned id, unsigned cycle, size_t i)
{
    return (uint8_t)(id * 37u + cycle * 11u + i * 7u + (i >> 8));
}

static void *stress_thread_main(void *arg)
{
    struct stress *st = arg;
    for (unsigned cycle = 0; cycle < STRESS_CYCLES; cycle++) {
        /* Mostly the blocking get; every fourth a try_get, which may fail. */
        uint8_t *b = (cycle % 4 == 3) ? bufpool_try_get(st->pool) : bufpool_get(st->pool, NULL);
        if (!b) {
            if (cycle % 4 != 3)
                st->got_null++;
            continue;
        }
        if (atomic_fetch_add(st->held, 1) + 1 > STRESS_COUNT)
            st->over_count++;
        if (bufpool_allocated(st->pool) > STRESS_COUNT)
            st->over_count++;
        for (size_t i = 0; i < BUF_SIZE; i++)
            b[i] = stress_byte(st->id, cycle, i);
        if (cycle % 16 == 0)
            sched_yield(); /* hold it a while: let the others pile up */
        for (size_t i = 0; i < BUF_SIZE; i++) {
            if (b[i] != stress_byte(st->id, cycle, i)) {
                st->corrupted++;
                break;
            }
        }
        atomic_fetch_sub(st->held, 1);
        bufpool_put(st->pool, b);
    }
    return NULL;
}

static void test_bufpool_stress_threads_never_share_a_buffer(void)
{
    struct bufpool *p = bufpool_new(BUF_SIZE, STRESS_COUNT);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    atomic_int held;
    atomic_init(&held, 0);
    struct stress st[STRESS_THREADS];
    for (unsigned k = 0; k < STRESS_THREADS; k++) {
        st[k] = (struct stress){.pool = p, .id = k + 1, .held = &held};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&st[k].thread, NULL, stress_thread_main, &st[k]), 0);
    }
    int got_null = 0, corrupted = 0, over = 0;
    for (unsigned k = 0; k < STRESS_THREADS; k++) {
        pthread_join(st[k].thread, NULL);
        got_null += st[k].got_null;
        corrupted += st[k].corrupted;
        over += st[k].over_count;
    }
    CU_ASSERT_EQUAL(got_null, 0);
    CU_ASSERT_EQUAL(corrupted, 0);
    CU_ASSERT_EQUAL(over, 0);
    if (got_null || corrupted || over)
        fprintf(stderr, "\n  bufpool stress: %d NULL gets, %d corrupted, %d over count\n", got_null,
                corrupted, over);
    CU_ASSERT_EQUAL(atomic_load(&held), 0);
    CU_ASSERT(bufpool_allocated(p) <= STRESS_COUNT);
    CU_ASSERT(bufpool_allocated(p) >= 1);
    CU_ASSERT_EQUAL(bufpool_in_use(p), 0);
    bufpool_free(p);
}

/* Called by tests/test_main.c (see suites.h there). */
int test_bufpool_register(void);

int test_bufpool_register(void)
{
    CU_pSuite s = CU_add_suite("bufpool", NULL, NULL);
    if (!s)
        return -1;
    struct {
        const char *name;
        CU_TestFunc fn;
    } tests[] = {
        {"new with count zero is NULL", test_bufpool_new_with_count_zero_is_null},
        {"allocates lazily", test_bufpool_allocates_lazily},
        {"prefault backs the buffers", test_bufpool_prefault_backs_the_buffers},
        {"try_get hands out at most count", test_bufpool_try_get_hands_out_at_most_count},
        {"buffers do not overlap", test_bufpool_buffers_do_not_overlap},
        {"new refuses a size that overflows", test_bufpool_new_refuses_a_size_that_overflows},
        {"put then get reuses the buffer", test_bufpool_put_then_get_reuses_the_buffer},
        {"in_use tracks gets and puts", test_bufpool_in_use_tracks_gets_and_puts},
        {"get waits for a put", test_bufpool_get_waits_for_a_put},
        {"get gives up when stopped", test_bufpool_get_gives_up_when_stopped},
        {"stress: threads never share a buffer", test_bufpool_stress_threads_never_share_a_buffer},
    };
    for (size_t k = 0; k < sizeof tests / sizeof tests[0]; k++)
        if (!CU_add_test(s, tests[k].name, tests[k].fn))
            return -1;
    return 0;
}
