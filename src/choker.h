/*
 * choker: who we upload to (BEP 3 choking, tit-for-tat as in the original
 * client and libtorrent's "fastest upload" mode). Pure decision logic: the
 * caller passes a snapshot of its peers and the time, and gets back which to
 * unchoke. No I/O, no locks, no clock of its own (the time is a parameter, so
 * tests drive it), no global state: the state between rounds lives in
 * `struct choker`, owned by the caller (the session's main thread).
 *
 * Every CHOKER_INTERVAL_MS:
 *   - while downloading, unchoke the CHOKER_REGULAR_SLOTS interested peers
 *     that upload to US fastest; while seeding, the ones WE upload to fastest;
 *   - a peer that has sent us no block for CHOKER_SNUB_MS while we are
 *     downloading is "snubbed" and loses its regular slot;
 *   - plus one optimistic unchoke among the other interested peers, rotated
 *     every CHOKER_OPTIMISTIC_MS; peers connected for less than
 *     CHOKER_NEW_PEER_MS are three times as likely to be picked.
 * Peers that are not interested stay choked (unchoking them is harmless but
 * uses a slot for nothing).
 */
#ifndef PT_CHOKER_H
#define PT_CHOKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CHOKER_INTERVAL_MS 10000
#define CHOKER_OPTIMISTIC_MS 30000
#define CHOKER_SNUB_MS 60000
#define CHOKER_NEW_PEER_MS 60000
#define CHOKER_REGULAR_SLOTS 4

/* One peer as the choker sees it. Rates are bytes per second over a sliding
 * window the caller keeps (e.g. the last 20 s). */
struct choker_peer {
    uint32_t key;              /* caller's identifier, unique among the peers passed */
    bool interested;           /* the peer is interested in us */
    uint64_t rate_from_peer;   /* bytes/s it sends us */
    uint64_t rate_to_peer;     /* bytes/s we send it */
    int64_t connected_ms;      /* when the connection started (caller's clock) */
    int64_t last_block_ms;     /* when it last sent us a block; < 0 never */
    bool unchoke;              /* OUT: true if it should be unchoked */
};

struct choker {
    int64_t last_run_ms;        /* -1 before the first round */
    int64_t optimistic_since_ms;
    uint32_t optimistic_key;    /* the current optimistic unchoke */
    bool has_optimistic;
    uint64_t rng;               /* xorshift state, seeded by choker_init */
};

void choker_init(struct choker *c, uint64_t seed);

/* True if a round is due at now_ms (the first call is always due). */
bool choker_due(const struct choker *c, int64_t now_ms);

/* Runs one round: sets peers[i].unchoke for every peer. `seeding` selects the
 * ranking (rate_to_peer instead of rate_from_peer, and no snubbing). Returns
 * the number unchoked. */
size_t choker_run(struct choker *c, struct choker_peer *peers, size_t n, bool seeding,
                  int64_t now_ms);

#endif
