/*
 * swarm: the candidate peers of one download, as the main thread learns them
 * from trackers and --peer, with what we know of each: connected now or not,
 * how often it failed (for backoff), banned, bytes exchanged.
 *
 * Each candidate has a small stable id (1..SWARM_MAX_PEERS): the picker
 * records ids for the blocks it receives, so a piece that fails its hash can
 * be blamed on an address even after that connection has ended.
 *
 * Locking: one mutex inside guards the whole table; every function takes it
 * itself. No function holds it across I/O. Any thread may call any function.
 */
#ifndef PT_SWARM_H
#define PT_SWARM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"

/* Candidates we remember at most; trackers hand out 50-200 at a time. */
#define SWARM_MAX_PEERS 4096u
/* Backoff after a failed connection: 5 s doubling per failure, at most 2 min,
 * and after SWARM_MAX_FAILURES failures in a row we stop trying that peer. */
#define SWARM_BACKOFF_BASE_MS 5000
#define SWARM_BACKOFF_MAX_MS 120000
#define SWARM_MAX_FAILURES 6
/* A peer we talked to but left (nothing to trade) is retried after this. */
#define SWARM_RETRY_AFTER_MS 10000

struct swarm;

struct swarm_peer_stats {
    struct peer_addr addr;
    uint64_t downloaded; /* bytes of blocks received and used */
    uint64_t uploaded;
    bool banned;
    bool ever_connected; /* got past the handshake at least once */
    unsigned hash_failures;
};

struct swarm *swarm_new(void);
void swarm_free(struct swarm *s); /* NULL is a no-op */

/* Adds a candidate unless known. Returns its id, or 0 if the table is full. */
uint16_t swarm_add(struct swarm *s, const struct peer_addr *a);

/* A peer connected to us: adds (or finds) its entry and marks it connected.
 * Inbound entries come from the peer's ephemeral source port, so they are
 * never offered for dialling. Returns 0 if the table is full or that
 * address is connected already. */
uint16_t swarm_add_inbound(struct swarm *s, const struct peer_addr *a);

/* Picks a candidate to dial now (not connected, not banned, backoff over),
 * marks it connected and returns its id, or 0 if none. */
uint16_t swarm_take(struct swarm *s, int64_t now_ms, struct peer_addr *addr_out);

/* The connection to `id` got past the handshake. */
void swarm_reached(struct swarm *s, uint16_t id);

/* How a connection ended: SWARM_FAILED counts against the peer (backoff);
 * SWARM_NEVER_AGAIN (a wrong info hash, ourselves) stops us dialling it.
 * (false/true work as SWARM_DONE/SWARM_FAILED.) */
enum swarm_outcome { SWARM_DONE = 0, SWARM_FAILED = 1, SWARM_NEVER_AGAIN = 2 };

/* The connection to `id` ended. */
void swarm_release(struct swarm *s, uint16_t id, enum swarm_outcome how, int64_t now_ms);

/* A piece that failed its hash had blocks from `id`; `sole` if only from it.
 * A peer that alone sent a bad piece is banned (the picker retries a failed
 * piece from one peer only, so a liar cannot hide behind an honest peer).
 * Returns true if the peer is now banned. */
bool swarm_blame(struct swarm *s, uint16_t id, bool sole);
bool swarm_banned(struct swarm *s, uint16_t id);

void swarm_add_bytes(struct swarm *s, uint16_t id, uint64_t down, uint64_t up);

size_t swarm_known(struct swarm *s);
size_t swarm_connected(struct swarm *s);
/* Copies per-peer figures of every candidate; returns how many (at most max). */
size_t swarm_stats(struct swarm *s, struct swarm_peer_stats *out, size_t max);

#endif
