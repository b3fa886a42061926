/*
 * choker.c: one choking round over a snapshot of the peers (see choker.h for
 * the contract).
 *
 * Design. A round has two steps, both plain loops over the caller's array,
 * with no allocation:
 *
 *   1. Regular slots. CHOKER_REGULAR_SLOTS passes, each marking the best peer
 *      not yet marked (so O(slots * n), which beats sorting for 4 slots). A
 *      peer is eligible if it is interested and, while downloading, not
 *      snubbed. "Best" is the higher rate (rate_from_peer while downloading,
 *      rate_to_peer while seeding); equal rates go to the lower key, so a
 *      round is fully determined by its input and ties do not flap.
 *
 *   2. The optimistic slot, among interested peers left without a regular
 *      slot (snubbed ones included: this is how a snubbed peer gets another
 *      chance). The current one is kept while it is still a candidate and
 *      less than CHOKER_OPTIMISTIC_MS has passed since it was chosen;
 *      otherwise a new one is drawn at random, with weight 3 for peers
 *      connected for less than CHOKER_NEW_PEER_MS and 1 for the others, so a
 *      newcomer with nothing to trade gets its first pieces. The draw may land
 *      on the current peer again; it is not excluded, so the 3:1 odds hold
 *      exactly for every draw.
 *
 * Snubbing (downloading only): a peer is snubbed if it has been connected
 * for more than CHOKER_SNUB_MS and has sent us no block in the last
 * CHOKER_SNUB_MS (or never). A peer connected more recently has not had a
 * fair chance to send anything yet, so it is never snubbed.
 *
 * A regular slot that no eligible peer can fill stays empty: with only
 * snubbed peers left, the optimistic slot is the one they compete for.
 */
#include "choker.h"

#include <assert.h>

/* Weights of the optimistic draw, see the design comment. */
#define CHOKER_WEIGHT_NEW 3
#define CHOKER_WEIGHT_OLD 1

/* xorshift64 must never hold 0; this replaces a seed that mixes to 0. */
#define CHOKER_RNG_FALLBACK 0x2545f4914f6cdd1du

/* splitmix64 finaliser: nearby seeds (0, 1, 2...) give unrelated streams. */
static uint64_t mix_seed(uint64_t x)
{
    x += 0x9e3779b97f4a7c15u;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    x ^= x >> 31;
    return x ? x : CHOKER_RNG_FALLBACK;
}

void choker_init(struct choker *c, uint64_t seed)
{
    c->last_run_ms = -1;
    c->optimistic_since_ms = 0;
    c->optimistic_key = 0;
    c->has_optimistic = false;
    c->rng = mix_seed(seed);
}

bool choker_due(const struct choker *c, int64_t now_ms)
{
    return c->last_run_ms < 0 || now_ms - c->last_run_ms >= CHOKER_INTERVAL_MS;
}

/* Uniform enough in [0, n), n > 0: the modulo bias is below n / 2^48. */
static uint64_t random_below(struct choker *c, uint64_t n)
{
    uint64_t x = c->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c->rng = x;
    return (x >> 16) % n;
}

static bool is_snubbed(const struct choker_peer *p, int64_t now_ms)
{
    if (now_ms - p->connected_ms <= CHOKER_SNUB_MS)
        return false; /* too new to judge */
    return p->last_block_ms < 0 || now_ms - p->last_block_ms > CHOKER_SNUB_MS;
}

static uint64_t rank_rate(const struct choker_peer *p, bool seeding)
{
    return seeding ? p->rate_to_peer : p->rate_from_peer;
}

/* True if a should rank before b: higher rate, then lower key. */
static bool ranks_before(const struct choker_peer *a, const struct choker_peer *b, bool seeding)
{
    uint64_t ra = rank_rate(a, seeding), rb = rank_rate(b, seeding);
    if (ra != rb)
        return ra > rb;
    return a->key < b->key;
}

/* Step 1: marks up to CHOKER_REGULAR_SLOTS peers' `unchoke`. Expects every
 * `unchoke` false on entry. Returns how many it marked. */
static size_t fill_regular_slots(struct choker_peer *peers, size_t n, bool seeding, int64_t now_ms)
{
    size_t filled = 0;
    while (filled < CHOKER_REGULAR_SLOTS) {
        struct choker_peer *best = NULL;
        for (size_t i = 0; i < n; i++) {
            struct choker_peer *p = &peers[i];
            if (p->unchoke || !p->interested)
                continue;
            if (!seeding && is_snubbed(p, now_ms))
                continue;
            if (!best || ranks_before(p, best, seeding))
                best = p;
        }
        if (!best)
            break;
        best->unchoke = true;
        filled++;
    }
    return filled;
}

static bool is_optimistic_candidate(const struct choker_peer *p)
{
    return p->interested && !p->unchoke;
}

static unsigned optimistic_weight(const struct choker_peer *p, int64_t now_ms)
{
    return now_ms - p->connected_ms < CHOKER_NEW_PEER_MS ? CHOKER_WEIGHT_NEW : CHOKER_WEIGHT_OLD;
}

/* Step 2: keeps or redraws the optimistic peer and marks it. Returns the
 * peer marked, or NULL if there is no candidate. */
static struct choker_peer *pick_optimistic(struct choker *c, struct choker_peer *peers, size_t n,
                                           int64_t now_ms)
{
    uint64_t total = 0;
    struct choker_peer *current = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!is_optimistic_candidate(&peers[i]))
            continue;
        total += optimistic_weight(&peers[i], now_ms);
        if (c->has_optimistic && peers[i].key == c->optimistic_key)
            current = &peers[i];
    }

    if (current && now_ms - c->optimistic_since_ms < CHOKER_OPTIMISTIC_MS) {
        current->unchoke = true;
        return current;
    }

    c->has_optimistic = false;
    if (total == 0)
        return NULL;
    uint64_t r = random_below(c, total);
    struct choker_peer *chosen = NULL;
    for (size_t i = 0; i < n && !chosen; i++) {
        if (!is_optimistic_candidate(&peers[i]))
            continue;
        uint64_t w = optimistic_weight(&peers[i], now_ms);
        if (r < w)
            chosen = &peers[i];
        else
            r -= w;
    }
    assert(chosen); /* r < total, the sum of the same weights */
    chosen->unchoke = true;
    c->has_optimistic = true;
    c->optimistic_key = chosen->key;
    c->optimistic_since_ms = now_ms;
    return chosen;
}

size_t choker_run(struct choker *c, struct choker_peer *peers, size_t n, bool seeding,
                  int64_t now_ms)
{
    assert(c && (peers || n == 0));
    c->last_run_ms = now_ms;
    for (size_t i = 0; i < n; i++)
        peers[i].unchoke = false;

    size_t unchoked = fill_regular_slots(peers, n, seeding, now_ms);
    if (pick_optimistic(c, peers, n, now_ms))
        unchoked++;
    return unchoked;
}
