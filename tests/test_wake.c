/*
 * Tests for the self-pipe, through wake.h only: an event is readable after
 * wake_set() and not after wake_drain(); a latch wakes every thread that
 * polls it, also one that starts polling later; a closed wake is a no-op.
 * Every poll() is bounded; the slowest test waits about 50 ms.
 */
#include <CUnit/CUnit.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>

#include "support.h"
#include "wake.h"

/* 1 if the wake's fd is readable within wait_ms, 0 if not. */
static int readable(const struct wake *w, int wait_ms)
{
    struct pollfd p = {wake_fd(w), POLLIN, 0};
    return poll(&p, 1, wait_ms) == 1 && (p.revents & POLLIN) ? 1 : 0;
}

static void test_wake_set_then_drain(void)
{
    struct wake w;
    CU_ASSERT_TRUE_FATAL(wake_open(&w));
    CU_ASSERT_TRUE(wake_fd(&w) >= 0);
    CU_ASSERT_EQUAL(readable(&w, 0), 0);
    wake_set(&w);
    wake_set(&w); /* two sets, one wakeup's worth after a drain */
    CU_ASSERT_EQUAL(readable(&w, 0), 1);
    wake_drain(&w);
    CU_ASSERT_EQUAL(readable(&w, 0), 0);
    wake_drain(&w); /* draining an empty pipe does not block */
    wake_set(&w);
    CU_ASSERT_EQUAL(readable(&w, 0), 1);
    wake_close(&w);
    CU_ASSERT_EQUAL(wake_fd(&w), -1);
}

/* Far more sets than a pipe holds: none blocks, and one drain empties it. */
static void test_wake_set_never_blocks_when_full(void)
{
    struct wake w;
    CU_ASSERT_TRUE_FATAL(wake_open(&w));
    for (int i = 0; i < 200000; i++)
        wake_set(&w);
    CU_ASSERT_EQUAL(readable(&w, 0), 1);
    wake_drain(&w);
    CU_ASSERT_EQUAL(readable(&w, 0), 0);
    wake_close(&w);
}

struct poller {
    const struct wake *w;
    int64_t woke_ms; /* when poll() returned readable; -1 if it never did */
};

static void *poller_main(void *arg)
{
    struct poller *p = arg;
    p->woke_ms = readable(p->w, 5000) ? now_ms() : -1;
    return NULL;
}

/* A latch is never drained: the two threads asleep on it both wake soon
 * after wake_set(), long before their 5 s timeout, and it stays set. */
static void test_wake_latch_wakes_every_poller(void)
{
    struct wake w;
    CU_ASSERT_TRUE_FATAL(wake_open(&w));
    struct poller p[2] = {{&w, -1}, {&w, -1}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, poller_main, &p[i]), 0);
    sleep_ms(50);
    int64_t set_ms = now_ms();
    wake_set(&w);
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        CU_ASSERT_TRUE(p[i].woke_ms >= set_ms && p[i].woke_ms - set_ms < 1000);
    }
    CU_ASSERT_EQUAL(readable(&w, 0), 1); /* a latecomer sees it too */
    wake_close(&w);
}

static void test_wake_closed_is_a_no_op(void)
{
    struct wake w = {-1, -1};
    wake_set(&w);
    wake_drain(&w);
    wake_close(&w);
    CU_ASSERT_EQUAL(wake_fd(&w), -1);
}

int test_wake_register(void);

int test_wake_register(void)
{
    CU_pSuite s = CU_add_suite("wake", NULL, NULL);
    if (!s)
        return -1;
    struct {
        const char *name;
        CU_TestFunc fn;
    } tests[] = {
        {"set, then drain", test_wake_set_then_drain},
        {"set never blocks when full", test_wake_set_never_blocks_when_full},
        {"a latch wakes every poller", test_wake_latch_wakes_every_poller},
        {"a closed wake is a no-op", test_wake_closed_is_a_no_op},
    };
    for (size_t k = 0; k < sizeof tests / sizeof tests[0]; k++)
        if (!CU_add_test(s, tests[k].name, tests[k].fn))
            return -1;
    return 0;
}
