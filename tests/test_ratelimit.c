/*
 * Tests for the token bucket, through ratelimit.h only. The bucket arithmetic
 * runs on a fake clock the tests advance by hand; the blocking paths (take()
 * sleeping, the stop flag, four threads sharing one bucket, meant for
 * ThreadSanitizer) use the real clock with bounds wide enough not to flake.
 * The real-clock tests take about 4 s in all.
 */
#include <CUnit/CUnit.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "ratelimit.h"

#define KIB 1024u
#define MIB (1024u * 1024u)
#define BLOCK (16 * KIB)

/* ---- helpers ---- */

/* The fake clock: only ever touched by the test thread. */
static int64_t fake_now;

static int64_t fake_clock(void)
{
    return fake_now;
}

static double seconds_now(void)
{
    struct timespec ts = {0, 0};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_seconds(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* ---- unlimited ---- */

static void test_ratelimit_unlimited_returns_immediately(void)
{
    struct ratelimit *r = ratelimit_new(0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL(ratelimit_rate(r), 0);
    double t0 = seconds_now();
    for (int i = 0; i < 1000; i++)
        CU_ASSERT_EQUAL(ratelimit_take(r, 100 * MIB, NULL), PT_OK);
    CU_ASSERT_TRUE(ratelimit_try_take(r, UINT64_MAX));
    CU_ASSERT_TRUE(seconds_now() - t0 < 0.5);
    ratelimit_free(r);
    ratelimit_free(NULL);
}

/* ---- bucket arithmetic, fake clock ---- */

static void test_ratelimit_starts_full_at_burst(void)
{
    fake_now = 1000;
    struct ratelimit *r = ratelimit_new(100000, fake_clock);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL(ratelimit_rate(r), 100000);
    CU_ASSERT_TRUE(ratelimit_try_take(r, 60000));
    CU_ASSERT_TRUE(ratelimit_try_take(r, 40000));
    CU_ASSERT_FALSE(ratelimit_try_take(r, 1)); /* empty: refused */
    CU_ASSERT_FALSE(ratelimit_try_take(r, 1)); /* and a refusal takes nothing */
    ratelimit_free(r);
}

static void test_ratelimit_refills_with_elapsed_time(void)
{
    fake_now = 5000;
    struct ratelimit *r = ratelimit_new(100000, fake_clock);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_TRUE(ratelimit_try_take(r, 100000));

    fake_now += 100; /* 100 ms at 100 kB/s: 10000 bytes */
    CU_ASSERT_FALSE(ratelimit_try_take(r, 10001));
    CU_ASSERT_TRUE(ratelimit_try_take(r, 10000));
    CU_ASSERT_FALSE(ratelimit_try_take(r, 1));

    fake_now += 1; /* 1 ms: 100 bytes */
    CU_ASSERT_TRUE(ratelimit_try_take(r, 60));
    CU_ASSERT_TRUE(ratelimit_try_take(r, 40));
    CU_ASSERT_FALSE(ratelimit_try_take(r, 1));

    fake_now += 250;
    CU_ASSERT_TRUE(ratelimit_try_take(r, 25000));
    CU_ASSERT_FALSE(ratelimit_try_take(r, 1));
    ratelimit_free(r);
}

static void test_ratelimit_slow_rate_keeps_fractions(void)
{
    /* 1500 B/s is 1.5 bytes per millisecond: the half bytes must add up. */
    fake_now = 0;
    struct ratelimit *r = ratelimit_new(1500, fake_clock);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    /* The burst is at least a 16 KiB block even at this rate. */
    CU_ASSERT_TRUE(ratelimit_try_take(r, BLOCK));
    while (ratelimit_try_take(r, 1))
        ;
    fake_now += 1;
    CU_ASSERT_TRUE(ratelimit_try_take(r, 1));
    CU_ASSERT_FALSE(ratelimit_try_take(r, 1));
    fake_now += 1;
    CU_ASSERT_TRUE(ratelimit_try_take(r, 2));
    CU_ASSERT_FALSE(ratelimit_try_take(r, 1));
    for (int i = 0; i < 1000; i++) {
        fake_now += 1;
        while (ratelimit_try_take(r, 1))
            ;
    }
    fake_now += 2; /* 1000 looks later, exactly 3 bytes more */
    CU_ASSERT_TRUE(ratelimit_try_take(r, 3));
    CU_ASSERT_FALSE(ratelimit_try_take(r, 1));
    ratelimit_free(r);
}

static void test_ratelimit_caps_at_burst(void)
{
    fake_now = 0;
    struct ratelimit *r = ratelimit_new(100000, fake_clock);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_TRUE(ratelimit_try_take(r, 100000));
    fake_now += 10 * 1000; /* ten seconds idle: still one second's worth */
    CU_ASSERT_TRUE(ratelimit_try_take(r, 100000));
    CU_ASSERT_FALSE(ratelimit_try_take(r, 1));
    fake_now += 100LL * 24 * 3600 * 1000; /* a hundred days idle: no overflow */
    CU_ASSERT_TRUE(ratelimit_try_take(r, 100000));
    CU_ASSERT_FALSE(ratelimit_try_take(r, 1));
    ratelimit_free(r);
}

static void test_ratelimit_request_above_burst_goes_into_debt(void)
{
    fake_now = 0;
    struct ratelimit *r = ratelimit_new(100000, fake_clock);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    /* Not while the bucket is short of full. */
    CU_ASSERT_TRUE(ratelimit_try_take(r, 1));
    CU_ASSERT_FALSE(ratelimit_try_take(r, 300000));
    fake_now += 1;
    /* A full bucket serves it at once (so take() does not sleep on this
     * clock that never moves by itself), leaving 200000 bytes of debt. */
    CU_ASSERT_EQUAL(ratelimit_take(r, 300000, NULL), PT_OK);
    CU_ASSERT_FALSE(ratelimit_try_take(r, 1));
    fake_now += 2000; /* debt repaid, back to zero */
    CU_ASSERT_FALSE(ratelimit_try_take(r, 1));
    fake_now += 10;
    CU_ASSERT_TRUE(ratelimit_try_take(r, 1000));
    CU_ASSERT_FALSE(ratelimit_try_take(r, 1));
    ratelimit_free(r);
}

/* ---- blocking, real clock ---- */

static void test_ratelimit_take_three_seconds_worth_at_1mib(void)
{
    struct ratelimit *r = ratelimit_new(MIB, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    double t0 = seconds_now();
    /* 3 MiB: the first comes from the full bucket, the other two take 2 s. */
    for (unsigned i = 0; i < 3 * MIB / BLOCK; i++)
        CU_ASSERT_EQUAL(ratelimit_take(r, BLOCK, NULL), PT_OK);
    double took = seconds_now() - t0;
    CU_ASSERT_TRUE(took > 1.5 && took < 3.5);
    ratelimit_free(r);
}

static void test_ratelimit_take_returns_stopped_when_stop_set(void)
{
    struct ratelimit *r = ratelimit_new(1000, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL(ratelimit_take(r, MIB, NULL), PT_OK); /* a full bucket: deep debt */
    atomic_bool stop;
    atomic_init(&stop, true);
    double t0 = seconds_now();
    CU_ASSERT_EQUAL(ratelimit_take(r, 1, &stop), PT_ERR_STOPPED);
    CU_ASSERT_TRUE(seconds_now() - t0 < 0.2);
    ratelimit_free(r);
}

struct stop_waiter {
    struct ratelimit *r;
    atomic_bool stop;
    enum pt_err result;
};

static void *stop_waiter_thread_main(void *arg)
{
    struct stop_waiter *w = arg;
    w->result = ratelimit_take(w->r, 1, &w->stop);
    return NULL;
}

static void test_ratelimit_take_notices_stop_while_waiting(void)
{
    struct stop_waiter w;
    w.r = ratelimit_new(1000, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w.r);
    CU_ASSERT_EQUAL(ratelimit_take(w.r, MIB, NULL), PT_OK); /* ~17 min of debt */
    atomic_init(&w.stop, false);
    w.result = PT_OK;
    pthread_t t;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, stop_waiter_thread_main, &w), 0);
    sleep_seconds(0.15);
    double t0 = seconds_now();
    atomic_store(&w.stop, true);
    pthread_join(t, NULL);
    double took = seconds_now() - t0;
    CU_ASSERT_EQUAL(w.result, PT_ERR_STOPPED);
    /* One sleep slice is 100 ms; the rest is slack for a loaded machine. */
    CU_ASSERT_TRUE(took < 0.4);
    ratelimit_free(w.r);
}

#define SHARE_THREADS 4
#define SHARE_RATE (2 * MIB)
#define SHARE_SECONDS 1.5

struct sharer {
    struct ratelimit *r;
    const atomic_bool *stop;
    atomic_uint_fast64_t *total;
};

static void *sharer_thread_main(void *arg)
{
    struct sharer *s = arg;
    while (ratelimit_take(s->r, BLOCK, s->stop) == PT_OK)
        atomic_fetch_add(s->total, BLOCK);
    return NULL;
}

static void test_ratelimit_four_threads_share_one_rate(void)
{
    struct ratelimit *r = ratelimit_new(SHARE_RATE, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    /* Empty the bucket first, so the total measures the rate, not the burst. */
    CU_ASSERT_TRUE_FATAL(ratelimit_try_take(r, SHARE_RATE));
    atomic_bool stop;
    atomic_init(&stop, false);
    atomic_uint_fast64_t total;
    atomic_init(&total, 0);
    struct sharer s = {r, &stop, &total};
    pthread_t t[SHARE_THREADS];
    double t0 = seconds_now();
    for (int i = 0; i < SHARE_THREADS; i++)
        CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, sharer_thread_main, &s), 0);
    sleep_seconds(SHARE_SECONDS);
    atomic_store(&stop, true);
    double elapsed = seconds_now() - t0;
    for (int i = 0; i < SHARE_THREADS; i++)
        pthread_join(t[i], NULL);
    double want = SHARE_RATE * elapsed;
    double got = (double)atomic_load(&total);
    CU_ASSERT_TRUE(got > 0.75 * want && got < 1.25 * want);
    if (getenv("RATELIMIT_VERBOSE"))
        printf("\n    shared: %.0f bytes in %.3f s, want %.0f\n", got, elapsed, want);
    ratelimit_free(r);
}

/* Called by tests/test_main.c (see suites.h there). */
int test_ratelimit_register(void);

int test_ratelimit_register(void)
{
    CU_pSuite s = CU_add_suite("ratelimit", NULL, NULL);
    if (!s)
        return -1;
    struct {
        const char *name;
        CU_TestFunc fn;
    } tests[] = {
        {"unlimited returns immediately", test_ratelimit_unlimited_returns_immediately},
        {"starts full at burst", test_ratelimit_starts_full_at_burst},
        {"refills with elapsed time", test_ratelimit_refills_with_elapsed_time},
        {"slow rate keeps fractions", test_ratelimit_slow_rate_keeps_fractions},
        {"caps at burst", test_ratelimit_caps_at_burst},
        {"request above burst goes into debt", test_ratelimit_request_above_burst_goes_into_debt},
        {"take three seconds worth at 1 MiB/s", test_ratelimit_take_three_seconds_worth_at_1mib},
        {"take returns stopped when stop set", test_ratelimit_take_returns_stopped_when_stop_set},
        {"take notices stop while waiting", test_ratelimit_take_notices_stop_while_waiting},
        {"four threads share one rate", test_ratelimit_four_threads_share_one_rate},
    };
    for (size_t k = 0; k < sizeof tests / sizeof tests[0]; k++)
        if (!CU_add_test(s, tests[k].name, tests[k].fn))
            return -1;
    return 0;
}
