/*
 * Tests for the candidate table, through swarm.h only: dedup and stable
 * 1-based ids, take/release with retry and failure backoff, the failure cap,
 * inbound peers, blame and bans, byte counters, a full table, ids that name
 * nobody, and four threads taking and releasing at once (for ThreadSanitizer).
 */
#include <CUnit/CUnit.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "swarm.h"

/* Filling the table costs SWARM_MAX_PEERS^2 / 2 address compares, which
 * ThreadSanitizer makes take seconds; those tests have no threads, so TSan
 * builds leave them out. */
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

/* ---- helpers ---- */

static struct peer_addr v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port)
{
    struct peer_addr p;
    memset(&p, 0, sizeof p);
    p.family = AF_INET;
    p.ip[0] = a;
    p.ip[1] = b;
    p.ip[2] = c;
    p.ip[3] = d;
    p.port = port;
    return p;
}

/* The n-th distinct address (n < 2^24). */
static struct peer_addr nth(uint32_t n)
{
    return v4(10, (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n, 6881);
}

static bool same_addr(const struct peer_addr *a, const struct peer_addr *b)
{
    return a->family == b->family && a->port == b->port && memcmp(a->ip, b->ip, 16) == 0;
}

/* The wait after the f-th failure in a row, as swarm.h describes it. */
static int64_t backoff_ms(unsigned f)
{
    int64_t w = SWARM_BACKOFF_BASE_MS;
    for (unsigned i = 1; i < f; i++)
        w *= 2;
    return w > SWARM_BACKOFF_MAX_MS ? SWARM_BACKOFF_MAX_MS : w;
}

/* Takes and releases `id` (the only candidate) as a failed dial at `now`. */
static void fail_once(struct swarm *s, uint16_t id, int64_t now)
{
    struct peer_addr got;
    CU_ASSERT_EQUAL_FATAL(swarm_take(s, now, &got), id);
    swarm_release(s, id, true, now);
}

/* ---- ids ---- */

static void test_swarm_add_dedupes_with_stable_ids(void)
{
    struct swarm *s = swarm_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct peer_addr a = v4(1, 2, 3, 4, 6881), b = v4(1, 2, 3, 4, 6882), c = v4(5, 6, 7, 8, 6881);
    struct peer_addr a6;
    memset(&a6, 0, sizeof a6);
    a6.family = AF_INET6;
    memcpy(a6.ip, a.ip, 4); /* same bytes, other family */
    a6.port = 6881;

    CU_ASSERT_EQUAL(swarm_add(s, &a), 1);
    CU_ASSERT_EQUAL(swarm_add(s, &b), 2); /* same IP, other port */
    CU_ASSERT_EQUAL(swarm_add(s, &a), 1);
    CU_ASSERT_EQUAL(swarm_add(s, &c), 3);
    CU_ASSERT_EQUAL(swarm_add(s, &a6), 4);
    CU_ASSERT_EQUAL(swarm_add(s, &b), 2);
    CU_ASSERT_EQUAL(swarm_add(s, &c), 3);
    CU_ASSERT_EQUAL(swarm_known(s), 4);
    CU_ASSERT_EQUAL(swarm_connected(s), 0);

    /* Ids are positions + 1: stats come back in id order. */
    struct swarm_peer_stats st[8];
    CU_ASSERT_EQUAL_FATAL(swarm_stats(s, st, 8), 4);
    CU_ASSERT_TRUE(same_addr(&st[0].addr, &a));
    CU_ASSERT_TRUE(same_addr(&st[1].addr, &b));
    CU_ASSERT_TRUE(same_addr(&st[2].addr, &c));
    CU_ASSERT_TRUE(same_addr(&st[3].addr, &a6));
    /* A short output array gets the first ones. */
    CU_ASSERT_EQUAL(swarm_stats(s, st, 2), 2);
    CU_ASSERT_TRUE(same_addr(&st[1].addr, &b));
    CU_ASSERT_EQUAL(swarm_stats(s, st, 0), 0);
    swarm_free(s);
    swarm_free(NULL);
}

static void test_swarm_full_table_refuses_new_peers(void)
{
    struct swarm *s = swarm_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    for (uint32_t i = 0; i < SWARM_MAX_PEERS; i++) {
        struct peer_addr a = nth(i);
        uint16_t id = swarm_add(s, &a);
        CU_ASSERT_EQUAL(id, i + 1);
        if (id != i + 1)
            break;
    }
    CU_ASSERT_EQUAL(swarm_known(s), SWARM_MAX_PEERS);
    struct peer_addr extra = nth(SWARM_MAX_PEERS);
    CU_ASSERT_EQUAL(swarm_add(s, &extra), 0);
    CU_ASSERT_EQUAL(swarm_known(s), SWARM_MAX_PEERS);
    /* Known peers still map to their ids when the table is full. */
    struct peer_addr first = nth(0), last = nth(SWARM_MAX_PEERS - 1);
    CU_ASSERT_EQUAL(swarm_add(s, &first), 1);
    CU_ASSERT_EQUAL(swarm_add(s, &last), SWARM_MAX_PEERS);
    swarm_free(s);
}

static void test_swarm_ignores_ids_that_name_nobody(void)
{
    struct swarm *s = swarm_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct peer_addr a = v4(1, 1, 1, 1, 1);
    CU_ASSERT_EQUAL(swarm_add(s, &a), 1);
    static const uint16_t bad[] = {0, 2, 4096, 65535};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        swarm_reached(s, bad[k]);
        swarm_release(s, bad[k], true, 0);
        CU_ASSERT_FALSE(swarm_blame(s, bad[k], true));
        CU_ASSERT_FALSE(swarm_banned(s, bad[k]));
        swarm_add_bytes(s, bad[k], 1, 1);
    }
    struct swarm_peer_stats st;
    CU_ASSERT_EQUAL_FATAL(swarm_stats(s, &st, 1), 1);
    CU_ASSERT_EQUAL(st.downloaded, 0);
    CU_ASSERT_EQUAL(st.hash_failures, 0);
    CU_ASSERT_FALSE(st.banned);
    struct peer_addr got;
    CU_ASSERT_EQUAL(swarm_take(s, 0, &got), 1);
    swarm_free(s);
}

/* ---- take and release ---- */

static void test_swarm_take_marks_connected_and_never_repeats(void)
{
    struct swarm *s = swarm_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct peer_addr a = v4(1, 2, 3, 4, 1000), b = v4(1, 2, 3, 5, 1000), got;
    swarm_add(s, &a);
    swarm_add(s, &b);

    uint16_t x = swarm_take(s, 0, &got);
    CU_ASSERT_TRUE(x == 1 || x == 2);
    CU_ASSERT_TRUE(same_addr(&got, x == 1 ? &a : &b));
    uint16_t y = swarm_take(s, 0, &got);
    CU_ASSERT_TRUE((y == 1 || y == 2) && y != x);
    CU_ASSERT_TRUE(same_addr(&got, y == 1 ? &a : &b));
    CU_ASSERT_EQUAL(swarm_take(s, 0, &got), 0);
    CU_ASSERT_EQUAL(swarm_take(s, 1000000, &got), 0); /* not even later */
    CU_ASSERT_EQUAL(swarm_connected(s), 2);

    /* A peer that left without failing comes back after SWARM_RETRY_AFTER_MS. */
    swarm_release(s, 1, false, 5000);
    CU_ASSERT_EQUAL(swarm_connected(s), 1);
    CU_ASSERT_EQUAL(swarm_take(s, 5000, &got), 0);
    CU_ASSERT_EQUAL(swarm_take(s, 5000 + SWARM_RETRY_AFTER_MS - 1, &got), 0);
    CU_ASSERT_EQUAL(swarm_take(s, 5000 + SWARM_RETRY_AFTER_MS, &got), 1);
    CU_ASSERT_TRUE(same_addr(&got, &a));
    CU_ASSERT_EQUAL(swarm_connected(s), 2);
    swarm_free(s);
}

static void test_swarm_failed_release_backs_off(void)
{
    struct swarm *s = swarm_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct peer_addr a = v4(9, 9, 9, 9, 9), got;
    uint16_t id = swarm_add(s, &a);
    int64_t now = 1000;
    fail_once(s, id, now);
    CU_ASSERT_EQUAL(swarm_connected(s), 0);
    CU_ASSERT_EQUAL(swarm_take(s, now, &got), 0);
    CU_ASSERT_EQUAL(swarm_take(s, now + SWARM_BACKOFF_BASE_MS - 1, &got), 0);
    CU_ASSERT_EQUAL(swarm_take(s, now + SWARM_BACKOFF_BASE_MS, &got), id);
    swarm_free(s);
}

static void test_swarm_backoff_grows_until_peer_is_dropped(void)
{
    struct swarm *s = swarm_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct peer_addr a = v4(9, 9, 9, 9, 9), got;
    uint16_t id = swarm_add(s, &a);
    int64_t now = 0;
    for (unsigned f = 1; f < SWARM_MAX_FAILURES; f++) {
        fail_once(s, id, now);
        int64_t wait = backoff_ms(f);
        CU_ASSERT_EQUAL(swarm_take(s, now + wait - 1, &got), 0);
        now += wait; /* fail_once takes it again exactly when the backoff ends */
    }
    /* The doubling the loop walked through: 5 s, 10 s, 20 s, ... capped. */
    CU_ASSERT_EQUAL(backoff_ms(1), SWARM_BACKOFF_BASE_MS);
    CU_ASSERT_EQUAL(backoff_ms(2), 2 * SWARM_BACKOFF_BASE_MS);
    CU_ASSERT_EQUAL(backoff_ms(3), 4 * SWARM_BACKOFF_BASE_MS);
    /* The last allowed attempt fails too: the peer is never offered again. */
    fail_once(s, id, now);
    CU_ASSERT_EQUAL(swarm_take(s, now + SWARM_BACKOFF_MAX_MS, &got), 0);
    CU_ASSERT_EQUAL(swarm_take(s, INT64_MAX / 2, &got), 0);
    CU_ASSERT_EQUAL(swarm_known(s), 1);
    swarm_free(s);
}

static void test_swarm_reached_resets_failures(void)
{
    struct swarm *s = swarm_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct peer_addr a = v4(7, 7, 7, 7, 7), got;
    uint16_t id = swarm_add(s, &a);
    int64_t now = 0;
    for (unsigned f = 1; f < SWARM_MAX_FAILURES; f++) {
        fail_once(s, id, now);
        now += backoff_ms(f);
    }
    /* One failure short of the cap; this time the handshake works. */
    CU_ASSERT_EQUAL_FATAL(swarm_take(s, now, &got), id);
    swarm_reached(s, id);
    swarm_release(s, id, true, now);
    /* Back to the first step of the backoff, and a full run of failures is allowed again. */
    CU_ASSERT_EQUAL(swarm_take(s, now + SWARM_BACKOFF_BASE_MS - 1, &got), 0);
    now += SWARM_BACKOFF_BASE_MS;
    for (unsigned f = 2; f < SWARM_MAX_FAILURES; f++) {
        fail_once(s, id, now);
        now += backoff_ms(f);
    }
    CU_ASSERT_EQUAL(swarm_take(s, now, &got), id);

    struct swarm_peer_stats st;
    CU_ASSERT_EQUAL_FATAL(swarm_stats(s, &st, 1), 1);
    CU_ASSERT_TRUE(st.ever_connected);
    swarm_free(s);
}

static void test_swarm_inbound_peer_is_connected_but_never_dialled(void)
{
    struct swarm *s = swarm_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct peer_addr in = v4(3, 3, 3, 3, 50123), out = v4(3, 3, 3, 4, 6881), got;

    uint16_t id = swarm_add_inbound(s, &in);
    CU_ASSERT_EQUAL(id, 1);
    CU_ASSERT_EQUAL(swarm_known(s), 1);
    CU_ASSERT_EQUAL(swarm_connected(s), 1);
    /* The same address again while connected is refused. */
    CU_ASSERT_EQUAL(swarm_add_inbound(s, &in), 0);
    CU_ASSERT_EQUAL(swarm_known(s), 1);
    /* swarm_add finds the same entry. */
    CU_ASSERT_EQUAL(swarm_add(s, &in), id);

    /* Gone: its source port is not one to dial, now or later. */
    swarm_release(s, id, false, 0);
    CU_ASSERT_EQUAL(swarm_connected(s), 0);
    CU_ASSERT_EQUAL(swarm_take(s, 10 * SWARM_BACKOFF_MAX_MS, &got), 0);
    /* It may connect to us again, under the same id. */
    CU_ASSERT_EQUAL(swarm_add_inbound(s, &in), id);
    swarm_release(s, id, false, 0);

    /* A dialable candidate that connects to us is marked connected, and is
     * still offered for dialling after it leaves. */
    uint16_t oid = swarm_add(s, &out);
    CU_ASSERT_EQUAL(oid, 2);
    CU_ASSERT_EQUAL(swarm_add_inbound(s, &out), oid);
    CU_ASSERT_EQUAL(swarm_take(s, 0, &got), 0);
    swarm_release(s, oid, false, 0);
    CU_ASSERT_EQUAL(swarm_take(s, SWARM_RETRY_AFTER_MS, &got), oid);
    CU_ASSERT_TRUE(same_addr(&got, &out));
    swarm_release(s, oid, false, 0);

    /* A banned address cannot come back in. */
    CU_ASSERT_TRUE(swarm_blame(s, id, true));
    CU_ASSERT_EQUAL(swarm_add_inbound(s, &in), 0);
    CU_ASSERT_EQUAL(swarm_connected(s), 0);
    swarm_free(s);
}

static void test_swarm_full_table_refuses_new_inbound(void)
{
    struct swarm *s = swarm_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    /* Fill with inbound entries (each is a new address, found by one scan). */
    for (uint32_t i = 0; i < SWARM_MAX_PEERS; i++) {
        struct peer_addr a = nth(i);
        if (swarm_add_inbound(s, &a) != i + 1) {
            CU_FAIL("inbound id is not the next position");
            break;
        }
    }
    struct peer_addr extra = nth(SWARM_MAX_PEERS);
    CU_ASSERT_EQUAL(swarm_add_inbound(s, &extra), 0);
    CU_ASSERT_EQUAL(swarm_add(s, &extra), 0);
    CU_ASSERT_EQUAL(swarm_known(s), SWARM_MAX_PEERS);
    CU_ASSERT_EQUAL(swarm_connected(s), SWARM_MAX_PEERS);
    swarm_free(s);
}

/* ---- blame ---- */

static void test_swarm_sole_blame_bans_forever(void)
{
    struct swarm *s = swarm_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct peer_addr a = v4(6, 6, 6, 6, 6), b = v4(6, 6, 6, 7, 6), got;
    uint16_t ia = swarm_add(s, &a), ib = swarm_add(s, &b);
    CU_ASSERT_EQUAL_FATAL(swarm_take(s, 0, &got), ia);
    CU_ASSERT_TRUE(swarm_blame(s, ia, true));
    CU_ASSERT_TRUE(swarm_banned(s, ia));
    CU_ASSERT_FALSE(swarm_banned(s, ib));
    swarm_release(s, ia, false, 0);
    /* Only the other peer is offered, and never the banned one. */
    CU_ASSERT_EQUAL(swarm_take(s, 0, &got), ib);
    swarm_release(s, ib, false, 0);
    for (int64_t t = 0; t <= 4 * SWARM_BACKOFF_MAX_MS; t += SWARM_RETRY_AFTER_MS) {
        uint16_t id = swarm_take(s, t, &got);
        CU_ASSERT_NOT_EQUAL(id, ia);
        if (id)
            swarm_release(s, id, false, t);
    }
    /* Re-adding the address does not lift the ban. */
    CU_ASSERT_EQUAL(swarm_add(s, &a), ia);
    CU_ASSERT_TRUE(swarm_banned(s, ia));
    /* A banned peer stays banned whatever is blamed next. */
    CU_ASSERT_TRUE(swarm_blame(s, ia, false));

    struct swarm_peer_stats st[2];
    CU_ASSERT_EQUAL_FATAL(swarm_stats(s, st, 2), 2);
    CU_ASSERT_TRUE(st[0].banned);
    CU_ASSERT_EQUAL(st[0].hash_failures, 2);
    CU_ASSERT_FALSE(st[1].banned);
    CU_ASSERT_EQUAL(st[1].hash_failures, 0);
    swarm_free(s);
}

static void test_swarm_shared_blame_counts_without_ban(void)
{
    struct swarm *s = swarm_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct peer_addr a = v4(5, 5, 5, 5, 5), got;
    uint16_t id = swarm_add(s, &a);
    for (int k = 0; k < 3; k++)
        CU_ASSERT_FALSE(swarm_blame(s, id, false));
    CU_ASSERT_FALSE(swarm_banned(s, id));
    struct swarm_peer_stats st;
    CU_ASSERT_EQUAL_FATAL(swarm_stats(s, &st, 1), 1);
    CU_ASSERT_EQUAL(st.hash_failures, 3);
    CU_ASSERT_FALSE(st.banned);
    CU_ASSERT_EQUAL(swarm_take(s, 0, &got), id);
    swarm_free(s);
}

/* ---- counters ---- */

static void test_swarm_add_bytes_shows_in_stats(void)
{
    struct swarm *s = swarm_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct peer_addr a = v4(4, 4, 4, 4, 4), b = v4(4, 4, 4, 5, 4), got;
    uint16_t ia = swarm_add(s, &a), ib = swarm_add(s, &b);
    swarm_add_bytes(s, ia, 100, 5);
    swarm_add_bytes(s, ia, 50, 0);
    swarm_add_bytes(s, ib, 0, 1ull << 40); /* past 32 bits */
    CU_ASSERT_EQUAL_FATAL(swarm_take(s, 0, &got), ia);
    swarm_reached(s, ia);

    struct swarm_peer_stats st[2];
    CU_ASSERT_EQUAL_FATAL(swarm_stats(s, st, 2), 2);
    CU_ASSERT_EQUAL(st[0].downloaded, 150);
    CU_ASSERT_EQUAL(st[0].uploaded, 5);
    CU_ASSERT_TRUE(st[0].ever_connected);
    CU_ASSERT_EQUAL(st[1].downloaded, 0);
    CU_ASSERT_EQUAL(st[1].uploaded, 1ull << 40);
    CU_ASSERT_FALSE(st[1].ever_connected);
    CU_ASSERT_EQUAL(swarm_connected(s), 1);
    CU_ASSERT_EQUAL(swarm_known(s), 2);
    swarm_free(s);
}

/* ---- threads ---- */

#define STRESS_THREADS 4
#define STRESS_PEERS 64
#define STRESS_ROUNDS 2000

struct stress {
    struct swarm *s;
    atomic_int held[STRESS_PEERS + 1]; /* by id: 1 while some thread holds it */
    atomic_int double_takes;
    atomic_int bad_ids;
};

struct stress_thread {
    pthread_t thread;
    struct stress *st;
    unsigned seed;
};

static void *stress_thread_main(void *arg)
{
    struct stress_thread *t = arg;
    struct stress *st = t->st;
    unsigned seed = t->seed;
    for (int r = 0; r < STRESS_ROUNDS; r++) {
        seed = seed * 1103515245u + 12345u;
        /* Everyone keeps adding the same addresses: they must dedupe. */
        struct peer_addr a = nth((seed >> 8) % STRESS_PEERS);
        uint16_t added = swarm_add(st->s, &a);
        if (added < 1 || added > STRESS_PEERS)
            atomic_fetch_add(&st->bad_ids, 1);
        struct peer_addr got;
        uint16_t id = swarm_take(st->s, 0, &got);
        if (!id)
            continue;
        if (id > STRESS_PEERS) {
            atomic_fetch_add(&st->bad_ids, 1);
            continue;
        }
        if (atomic_exchange(&st->held[id], 1) != 0)
            atomic_fetch_add(&st->double_takes, 1);
        swarm_add_bytes(st->s, id, 1, 0);
        atomic_store(&st->held[id], 0);
        /* Released at time -SWARM_RETRY_AFTER_MS so it is at once available again. */
        swarm_release(st->s, id, false, -SWARM_RETRY_AFTER_MS);
    }
    return NULL;
}

static void test_swarm_stress_four_threads_take_and_release(void)
{
    struct stress st;
    st.s = swarm_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(st.s);
    for (size_t i = 0; i <= STRESS_PEERS; i++)
        atomic_init(&st.held[i], 0);
    atomic_init(&st.double_takes, 0);
    atomic_init(&st.bad_ids, 0);
    struct stress_thread th[STRESS_THREADS];
    for (unsigned k = 0; k < STRESS_THREADS; k++) {
        th[k].st = &st;
        th[k].seed = 77u + k;
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[k].thread, NULL, stress_thread_main, &th[k]), 0);
    }
    for (unsigned k = 0; k < STRESS_THREADS; k++)
        pthread_join(th[k].thread, NULL);
    CU_ASSERT_EQUAL(atomic_load(&st.double_takes), 0);
    CU_ASSERT_EQUAL(atomic_load(&st.bad_ids), 0);
    CU_ASSERT_TRUE(swarm_known(st.s) <= STRESS_PEERS);
    CU_ASSERT_EQUAL(swarm_connected(st.s), 0);
    struct swarm_peer_stats stats[STRESS_PEERS];
    size_t n = swarm_stats(st.s, stats, STRESS_PEERS);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            CU_ASSERT_FALSE(same_addr(&stats[i].addr, &stats[j].addr));
    swarm_free(st.s);
}

/* Called by tests/test_main.c (see suites.h there). */
int test_swarm_register(void);

int test_swarm_register(void)
{
    CU_pSuite s = CU_add_suite("swarm", NULL, NULL);
    if (!s)
        return -1;
    struct {
        const char *name;
        CU_TestFunc fn;
    } tests[] = {
        {"add dedupes with stable ids", test_swarm_add_dedupes_with_stable_ids},
        {"ignores ids that name nobody", test_swarm_ignores_ids_that_name_nobody},
        {"take marks connected and never repeats",
         test_swarm_take_marks_connected_and_never_repeats},
        {"failed release backs off", test_swarm_failed_release_backs_off},
        {"backoff grows until peer is dropped", test_swarm_backoff_grows_until_peer_is_dropped},
        {"reached resets failures", test_swarm_reached_resets_failures},
        {"inbound peer is connected but never dialled",
         test_swarm_inbound_peer_is_connected_but_never_dialled},
        {"sole blame bans forever", test_swarm_sole_blame_bans_forever},
        {"shared blame counts without ban", test_swarm_shared_blame_counts_without_ban},
        {"add bytes shows in stats", test_swarm_add_bytes_shows_in_stats},
        {"stress: four threads take and release",
         test_swarm_stress_four_threads_take_and_release},
    };
    for (size_t k = 0; k < sizeof tests / sizeof tests[0]; k++)
        if (!CU_add_test(s, tests[k].name, tests[k].fn))
            return -1;
    if (UNDER_TSAN)
        return 0;
    if (!CU_add_test(s, "full table refuses new peers", test_swarm_full_table_refuses_new_peers) ||
        !CU_add_test(s, "full table refuses new inbound",
                     test_swarm_full_table_refuses_new_inbound))
        return -1;
    return 0;
}
