/*
 * Tests for the choker, through choker.h only: regular slots by rate (from the
 * peer while downloading, to the peer while seeding), interest, snubbing, the
 * optimistic slot (kept for 30 s, then redrawn, newcomers 3x as likely) and
 * round timing. Every random draw comes from a fixed seed, so the statistical
 * test gives the same counts on every run.
 */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "choker.h"

#define T0 10000000             /* ms; an arbitrary "now" far from 0 */
#define OLD_MS (10 * 60 * 1000) /* connected this long ago counts as old */
#define MAX_TEST_PEERS 16

/* ---- helpers ---- */

/* An interested, long-connected peer that sent a block a second ago. */
static struct choker_peer old_peer(uint32_t key, uint64_t from, uint64_t to, int64_t now)
{
    struct choker_peer p;
    memset(&p, 0, sizeof p);
    p.key = key;
    p.interested = true;
    p.rate_from_peer = from;
    p.rate_to_peer = to;
    p.connected_ms = now - OLD_MS;
    p.last_block_ms = now - 1000;
    return p;
}

static bool unchoked(const struct choker_peer *peers, size_t n, uint32_t key)
{
    for (size_t i = 0; i < n; i++)
        if (peers[i].key == key)
            return peers[i].unchoke;
    CU_FAIL("no such key");
    return false;
}

static size_t count_unchoked(const struct choker_peer *peers, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += peers[i].unchoke;
    return k;
}

/* Runs a round and checks the return value matches the flags. */
static size_t run(struct choker *c, struct choker_peer *peers, size_t n, bool seeding, int64_t now)
{
    size_t got = choker_run(c, peers, n, seeding, now);
    CU_ASSERT_EQUAL(got, count_unchoked(peers, n));
    return got;
}

/* The one unchoked peer among keys [lo, hi], or 0 if none or several. */
static uint32_t only_unchoked_in(const struct choker_peer *peers, size_t n, uint32_t lo,
                                 uint32_t hi)
{
    uint32_t found = 0;
    for (size_t i = 0; i < n; i++) {
        if (peers[i].key < lo || peers[i].key > hi || !peers[i].unchoke)
            continue;
        if (found)
            return 0;
        found = peers[i].key;
    }
    return found;
}

/* Ten peers, keys 1..10, rate_from_peer = key KiB/s (so 7..10 are fastest),
 * rate_to_peer the reverse (so 1..4 are fastest). */
static void ten_peers(struct choker_peer *peers, int64_t now)
{
    for (uint32_t k = 1; k <= 10; k++)
        peers[k - 1] = old_peer(k, k * 1024u, (11u - k) * 1024u, now);
}

/* ---- regular slots ---- */

static void test_choker_unchokes_four_fastest_plus_one_optimistic(void)
{
    for (uint64_t seed = 0; seed < 32; seed++) {
        struct choker c;
        choker_init(&c, seed);
        struct choker_peer peers[10];
        ten_peers(peers, T0);
        CU_ASSERT_EQUAL(run(&c, peers, 10, false, T0), 5);
        for (uint32_t k = 7; k <= 10; k++)
            CU_ASSERT_TRUE(unchoked(peers, 10, k));
        CU_ASSERT_NOT_EQUAL(only_unchoked_in(peers, 10, 1, 6), 0);
    }
}

static void test_choker_uninterested_peers_stay_choked(void)
{
    struct choker c;
    choker_init(&c, 7);
    struct choker_peer peers[10];
    int64_t now = T0;
    for (int round = 0; round < 40; round++, now += CHOKER_OPTIMISTIC_MS) {
        ten_peers(peers, now);
        /* The three fastest, and two slow ones, are not interested. */
        for (uint32_t k = 1; k <= 10; k++)
            peers[k - 1].interested = !(k >= 8 || k == 1 || k == 3);
        CU_ASSERT_EQUAL(run(&c, peers, 10, false, now), 5);
        for (uint32_t k = 1; k <= 10; k++)
            if (!peers[k - 1].interested)
                CU_ASSERT_FALSE(peers[k - 1].unchoke);
        for (uint32_t k = 4; k <= 7; k++)
            CU_ASSERT_TRUE(unchoked(peers, 10, k));
        uint32_t opt = only_unchoked_in(peers, 10, 1, 3);
        CU_ASSERT_EQUAL(opt, 2); /* the only interested peer left */
    }

    /* Nobody interested: nobody unchoked, not even optimistically. */
    ten_peers(peers, now);
    for (size_t i = 0; i < 10; i++)
        peers[i].interested = false;
    CU_ASSERT_EQUAL(run(&c, peers, 10, false, now), 0);
}

static void test_choker_seeding_ranks_by_rate_to_peer(void)
{
    for (uint64_t seed = 0; seed < 16; seed++) {
        struct choker c;
        choker_init(&c, seed);
        struct choker_peer peers[10];
        ten_peers(peers, T0);
        CU_ASSERT_EQUAL(run(&c, peers, 10, true, T0), 5);
        for (uint32_t k = 1; k <= 4; k++)
            CU_ASSERT_TRUE(unchoked(peers, 10, k));
        CU_ASSERT_NOT_EQUAL(only_unchoked_in(peers, 10, 5, 10), 0);
    }
}

static void test_choker_equal_rates_broken_by_lower_key(void)
{
    struct choker c;
    choker_init(&c, 1);
    struct choker_peer peers[8];
    /* Keys in a scrambled order, all at the same rate. */
    static const uint32_t keys[8] = {42, 7, 19, 3, 88, 11, 5, 60};
    for (size_t i = 0; i < 8; i++)
        peers[i] = old_peer(keys[i], 5000, 5000, T0);
    CU_ASSERT_EQUAL(run(&c, peers, 8, false, T0), 5);
    CU_ASSERT_TRUE(unchoked(peers, 8, 3));
    CU_ASSERT_TRUE(unchoked(peers, 8, 5));
    CU_ASSERT_TRUE(unchoked(peers, 8, 7));
    CU_ASSERT_TRUE(unchoked(peers, 8, 11));
}

static void test_choker_fewer_than_five_peers_all_interested_unchoked(void)
{
    for (size_t n = 1; n <= 4; n++) {
        struct choker c;
        choker_init(&c, n);
        struct choker_peer peers[4];
        for (uint32_t k = 0; k < n; k++)
            peers[k] = old_peer(k + 1, 100u * k, 100u * k, T0);
        CU_ASSERT_EQUAL(run(&c, peers, n, false, T0), n);
        CU_ASSERT_EQUAL(run(&c, peers, n, true, T0 + CHOKER_INTERVAL_MS), n);
    }

    /* Five peers, one not interested: the four others. */
    struct choker c;
    choker_init(&c, 9);
    struct choker_peer peers[5];
    for (uint32_t k = 0; k < 5; k++)
        peers[k] = old_peer(k + 1, 100u * k, 100u * k, T0);
    peers[4].interested = false;
    CU_ASSERT_EQUAL(run(&c, peers, 5, false, T0), 4);
    CU_ASSERT_FALSE(peers[4].unchoke);

    /* Three peers, one snubbed: it gets the optimistic slot, nobody else wants it. */
    for (uint32_t k = 0; k < 3; k++)
        peers[k] = old_peer(k + 1, 100u * k, 100u * k, T0);
    peers[2].last_block_ms = -1;
    CU_ASSERT_EQUAL(run(&c, peers, 3, false, T0), 3);
}

static void test_choker_no_peers(void)
{
    struct choker c;
    choker_init(&c, 0);
    CU_ASSERT_EQUAL(choker_run(&c, NULL, 0, false, T0), 0);
    CU_ASSERT_EQUAL(choker_run(&c, NULL, 0, true, T0 + CHOKER_INTERVAL_MS), 0);
    CU_ASSERT_FALSE(c.has_optimistic);
    /* The choker still works when peers arrive. */
    struct choker_peer peers[10];
    ten_peers(peers, T0 + 2 * CHOKER_INTERVAL_MS);
    CU_ASSERT_EQUAL(run(&c, peers, 10, false, T0 + 2 * CHOKER_INTERVAL_MS), 5);
}

/* ---- snubbing ---- */

/* Key 1 is the fastest both ways but, connected long ago, sent no block for
 * 61 s (or never); keys 2..6 are slower and active. */
static void snub_setup(struct choker_peer *peers, int64_t last_block_ms)
{
    for (uint32_t k = 1; k <= 6; k++)
        peers[k - 1] = old_peer(k, (10u - k) * 1024u, (10u - k) * 1024u, T0);
    peers[0].last_block_ms = last_block_ms;
}

static void test_choker_snubbed_peer_loses_regular_slot_while_downloading(void)
{
    static const int64_t last_blocks[2] = {T0 - CHOKER_SNUB_MS - 1000, -1};
    for (size_t b = 0; b < 2; b++) {
        for (uint64_t seed = 0; seed < 32; seed++) {
            struct choker c;
            choker_init(&c, seed);
            struct choker_peer peers[6];
            snub_setup(peers, last_blocks[b]);
            CU_ASSERT_EQUAL(run(&c, peers, 6, false, T0), 5);
            /* The slower 2..5 hold the regular slots; 1 and 6 share the draw. */
            for (uint32_t k = 2; k <= 5; k++)
                CU_ASSERT_TRUE(unchoked(peers, 6, k));
            CU_ASSERT_TRUE(peers[0].unchoke != peers[5].unchoke);
        }
    }
    /* Across seeds the snubbed peer sometimes wins the optimistic draw and
     * sometimes not: it is a candidate, never a regular. */
    int won = 0;
    for (uint64_t seed = 0; seed < 32; seed++) {
        struct choker c;
        choker_init(&c, seed);
        struct choker_peer peers[6];
        snub_setup(peers, -1);
        run(&c, peers, 6, false, T0);
        won += peers[0].unchoke;
    }
    CU_ASSERT_TRUE(won > 0 && won < 32);
}

static void test_choker_snubbed_peer_keeps_slot_while_seeding(void)
{
    for (uint64_t seed = 0; seed < 32; seed++) {
        struct choker c;
        choker_init(&c, seed);
        struct choker_peer peers[6];
        snub_setup(peers, -1);
        CU_ASSERT_EQUAL(run(&c, peers, 6, true, T0), 5);
        for (uint32_t k = 1; k <= 4; k++)
            CU_ASSERT_TRUE(unchoked(peers, 6, k));
    }
}

static void test_choker_recent_peer_not_snubbed_without_blocks(void)
{
    for (uint64_t seed = 0; seed < 32; seed++) {
        struct choker c;
        choker_init(&c, seed);
        struct choker_peer peers[6];
        snub_setup(peers, -1);
        /* Connected 5 s ago: too early to call it a snub, so it keeps its slot. */
        peers[0].connected_ms = T0 - 5000;
        run(&c, peers, 6, false, T0);
        for (uint32_t k = 1; k <= 4; k++)
            CU_ASSERT_TRUE(unchoked(peers, 6, k));
    }
}

/* ---- optimistic unchoke ---- */

static void test_choker_optimistic_kept_30s_then_rotates(void)
{
    struct choker c;
    choker_init(&c, 12345);
    struct choker_peer peers[10];
    int64_t now = T0;
    uint32_t prev = 0;
    int changes = 0;
    bool seen[11] = {false};
    for (int period = 0; period < 12; period++) {
        uint32_t opt = 0;
        /* Three rounds, 10 s apart, within one 30 s period: the same peer. */
        for (int r = 0; r < 3; r++, now += CHOKER_INTERVAL_MS) {
            CU_ASSERT_TRUE(choker_due(&c, now));
            ten_peers(peers, now);
            CU_ASSERT_EQUAL(run(&c, peers, 10, false, now), 5);
            uint32_t got = only_unchoked_in(peers, 10, 1, 6);
            CU_ASSERT_NOT_EQUAL(got, 0);
            if (r == 0)
                opt = got;
            else
                CU_ASSERT_EQUAL(got, opt);
        }
        seen[opt] = true;
        changes += period > 0 && opt != prev;
        prev = opt;
    }
    /* Six equally likely candidates over 11 redraws: it moves most times. */
    int distinct = 0;
    for (int k = 1; k <= 6; k++)
        distinct += seen[k];
    CU_ASSERT_TRUE(changes >= 6);
    CU_ASSERT_TRUE(distinct >= 3);
}

static void test_choker_optimistic_replaced_when_it_leaves(void)
{
    struct choker c;
    choker_init(&c, 99);
    struct choker_peer peers[10];
    ten_peers(peers, T0);
    run(&c, peers, 10, false, T0);
    uint32_t opt = only_unchoked_in(peers, 10, 1, 6);
    CU_ASSERT_FATAL(opt != 0);

    /* It loses interest 10 s later: another candidate gets the slot at once. */
    int64_t now = T0 + CHOKER_INTERVAL_MS;
    ten_peers(peers, now);
    peers[opt - 1].interested = false;
    CU_ASSERT_EQUAL(run(&c, peers, 10, false, now), 5);
    uint32_t next = only_unchoked_in(peers, 10, 1, 6);
    CU_ASSERT_NOT_EQUAL(next, 0);
    CU_ASSERT_NOT_EQUAL(next, opt);

    /* It disconnects (is left out of the array): same. */
    now += CHOKER_INTERVAL_MS;
    ten_peers(peers, now);
    peers[next - 1] = peers[9];
    CU_ASSERT_EQUAL(run(&c, peers, 9, false, now), 5);
    uint32_t third = only_unchoked_in(peers, 9, 1, 6);
    CU_ASSERT_NOT_EQUAL(third, 0);
    CU_ASSERT_NOT_EQUAL(third, next);
}

#define DRAWS 6000

static void test_choker_new_peers_picked_three_times_as_often(void)
{
    struct choker c;
    choker_init(&c, 2024);
    struct choker_peer peers[8];
    unsigned picks[9] = {0};
    int64_t now = T0;
    for (int d = 0; d < DRAWS; d++, now += CHOKER_OPTIMISTIC_MS) {
        /* Keys 1..4 fill the regular slots; 5, 6 are new, 7, 8 old. */
        for (uint32_t k = 1; k <= 8; k++)
            peers[k - 1] = old_peer(k, k <= 4 ? 100000u : 10u, 0, now);
        peers[4].connected_ms = now - 1000;
        peers[5].connected_ms = now - (CHOKER_NEW_PEER_MS - 1);
        run(&c, peers, 8, false, now);
        uint32_t opt = only_unchoked_in(peers, 8, 5, 8);
        CU_ASSERT_FATAL(opt != 0);
        picks[opt]++;
    }
    /* Expected 3/8 of the draws for each new peer, 1/8 for each old one; with
     * a fixed seed the counts never change, and the bounds are wide anyway
     * (over 6 standard deviations). */
    unsigned new_picks = picks[5] + picks[6], old_picks = picks[7] + picks[8];
    double ratio = (double)new_picks / (double)old_picks;
    CU_ASSERT_TRUE(ratio > 2.5 && ratio < 3.6);
    for (uint32_t k = 5; k <= 6; k++)
        CU_ASSERT_TRUE(picks[k] > DRAWS * 3 / 8 - 300 && picks[k] < DRAWS * 3 / 8 + 300);
    for (uint32_t k = 7; k <= 8; k++)
        CU_ASSERT_TRUE(picks[k] > DRAWS / 8 - 200 && picks[k] < DRAWS / 8 + 200);
    if (getenv("CHOKER_VERBOSE"))
        printf("\n    picks: new %u %u, old %u %u\n", picks[5], picks[6], picks[7], picks[8]);
}

/* ---- timing ---- */

static void test_choker_due_every_interval(void)
{
    struct choker c;
    choker_init(&c, 3);
    CU_ASSERT_TRUE(choker_due(&c, 0)); /* the first call, whatever the time */
    CU_ASSERT_TRUE(choker_due(&c, T0));
    choker_run(&c, NULL, 0, false, T0);
    CU_ASSERT_FALSE(choker_due(&c, T0));
    CU_ASSERT_FALSE(choker_due(&c, T0 + CHOKER_INTERVAL_MS - 1));
    CU_ASSERT_TRUE(choker_due(&c, T0 + CHOKER_INTERVAL_MS));
    CU_ASSERT_TRUE(choker_due(&c, T0 + 5 * CHOKER_INTERVAL_MS));
    /* A round run late restarts the interval from when it ran. */
    choker_run(&c, NULL, 0, false, T0 + CHOKER_INTERVAL_MS + 2500);
    CU_ASSERT_FALSE(choker_due(&c, T0 + 2 * CHOKER_INTERVAL_MS));
    CU_ASSERT_TRUE(choker_due(&c, T0 + 2 * CHOKER_INTERVAL_MS + 2500));
}

/* Called by tests/test_main.c (see suites.h there). */
int test_choker_register(void);

int test_choker_register(void)
{
    CU_pSuite s = CU_add_suite("choker", NULL, NULL);
    if (!s)
        return -1;
    struct {
        const char *name;
        CU_TestFunc fn;
    } tests[] = {
        {"unchokes four fastest plus one optimistic",
         test_choker_unchokes_four_fastest_plus_one_optimistic},
        {"uninterested peers stay choked", test_choker_uninterested_peers_stay_choked},
        {"seeding ranks by rate to peer", test_choker_seeding_ranks_by_rate_to_peer},
        {"equal rates broken by lower key", test_choker_equal_rates_broken_by_lower_key},
        {"fewer than five peers: all interested unchoked",
         test_choker_fewer_than_five_peers_all_interested_unchoked},
        {"no peers", test_choker_no_peers},
        {"snubbed peer loses regular slot while downloading",
         test_choker_snubbed_peer_loses_regular_slot_while_downloading},
        {"snubbed peer keeps slot while seeding",
         test_choker_snubbed_peer_keeps_slot_while_seeding},
        {"recent peer not snubbed without blocks",
         test_choker_recent_peer_not_snubbed_without_blocks},
        {"optimistic kept 30 s then rotates", test_choker_optimistic_kept_30s_then_rotates},
        {"optimistic replaced when it leaves", test_choker_optimistic_replaced_when_it_leaves},
        {"new peers picked three times as often",
         test_choker_new_peers_picked_three_times_as_often},
        {"due every interval", test_choker_due_every_interval},
    };
    for (size_t k = 0; k < sizeof tests / sizeof tests[0]; k++)
        if (!CU_add_test(s, tests[k].name, tests[k].fn))
            return -1;
    return 0;
}
