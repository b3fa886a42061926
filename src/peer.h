/*
 * peer: one peer connection, run by one pool thread from connect to close.
 *
 * The loop is blocking and simple: connect, handshake, learn what the peer
 * has, say we are interested, and while unchoked keep a pipeline of requests
 * full; each PIECE block is read from the socket straight into its place in
 * the picker's piece buffer; a completed piece is hashed here, off every lock,
 * and handed to the storage writer's queue.
 *
 * Everything in `struct peer_conn` (socket, buffers, the peer's bitfield, the
 * requests in flight) belongs to its thread and needs no lock. What is shared
 * is reached through `struct peer_shared`, each part with its own lock or
 * atomics (see docs/ARCHITECTURE.md).
 */
#ifndef PT_PEER_H
#define PT_PEER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "addr.h"
#include "metainfo.h"
#include "picker.h"
#include "ratelimit.h"
#include "storage.h"
#include "swarm.h"
#include "wake.h"
#include "writer.h"

/* Timeouts (seconds unless said). */
#define PEER_CONNECT_TIMEOUT_MS 5000
#define PEER_HANDSHAKE_TIMEOUT_MS 10000
#define PEER_MESSAGE_TIMEOUT_MS 30000   /* the rest of a message once it has begun */
#define PEER_KEEPALIVE_MS 60000         /* send a keep-alive after this much silence */
#define PEER_IDLE_TIMEOUT_MS 180000     /* drop a peer that sends nothing at all */
/* Requests in flight per peer: the pipeline starts at the low end and follows
 * the peer's rate (PEER_PIPELINE_SECONDS of it), within these bounds. */
#define PEER_PIPELINE_MIN 4
#define PEER_PIPELINE_START 32
#define PEER_PIPELINE_MAX 500
#define PEER_PIPELINE_SECONDS 2
/* In endgame a peer asks for blocks already requested from another peer
 * only once its own pipeline is empty, and this many at a time: with many
 * peers the pipelines reserve the whole torrent early, and duplicating from
 * every pipeline that had room cost as many bytes again as the torrent
 * (100 seeders at 512 KiB/s each: 59.7 MiB wasted for 64 MiB). */
#define PEER_ENDGAME_BATCH 4
/* After a choke, the requests it cancelled stay ours while the peer keeps
 * sending blocks it had queued, until none has come for this long. */
#define PEER_LATE_GRACE_MS 1000
/* Requests from a peer we queue before serving; BEP 3 clients keep far fewer
 * in flight (libtorrent's default is 500 over all its peers' pipes). */
#define PEER_MAX_QUEUED_REQUESTS 256

/* Counters the whole session publishes: C11 atomics, no lock. */
struct session_counters {
    atomic_uint_fast64_t downloaded; /* bytes of blocks received into pieces */
    atomic_uint_fast64_t wasted;     /* duplicate, unrequested or hash-failed bytes */
    atomic_uint_fast64_t uploaded;
    atomic_uint_fast32_t hash_failures;
    atomic_uint_fast32_t encrypted_handshakes; /* inbound MSE handshakes answered */
    atomic_int_fast64_t first_byte_ms; /* ms since start of the first block; -1 none */
};

/* What the main thread (the choker) and one peer thread share about one
 * connection. Every field is an atomic: the peer thread writes the counters
 * and the peer's interest, the choker writes `unchoke`. `connected_ms` is set
 * before the thread starts. The main thread reuses a link after its thread
 * has set `done`. */
struct peer_link {
    atomic_bool active;            /* past the handshake, not yet ended */
    atomic_bool done;              /* the thread is finished with this link */
    atomic_bool peer_interested;   /* the peer is interested in us */
    atomic_bool peer_is_seed;      /* the peer has every piece */
    atomic_bool unchoke;           /* the choker wants this peer unchoked */
    atomic_uint_fast64_t bytes_from; /* block bytes the peer sent us */
    atomic_uint_fast64_t bytes_to;   /* block bytes we sent the peer */
    atomic_int_fast64_t last_block_ms; /* when it last sent us a block; -1 never */
    int64_t connected_ms;
};

/* What every peer thread shares. The pointers and plain fields are set
 * before the first peer thread starts and never change afterwards. */
struct peer_shared {
    const struct metainfo *meta;
    uint8_t peer_id[20];
    struct picker *picker;   /* its own mutex */
    struct writer *writer;   /* its own mutex */
    struct swarm *swarm;     /* its own mutex */
    const atomic_bool *stop; /* set by the main thread to end every peer */
    int stop_fd;             /* readable once stop is set (a wake.h latch), or -1 */
    const struct wake *choke_wake; /* set when a peer turns interested: the main
                                    * loop runs its choker at once; may be NULL */
    struct storage *storage; /* its own lock; pread of verified pieces */
    struct session_counters *counters;
    struct ratelimit *down_limit, *up_limit; /* shared token buckets (own mutex) */
    int64_t start_ms;        /* session start, for first_byte_ms */
    int snub_timeout_ms;     /* no requested data for this long: drop the peer */
};

/* Arguments of one peer thread; the thread frees them. */
struct peer_args {
    struct peer_shared *shared;
    uint16_t id;            /* swarm id */
    struct peer_addr addr;
    int fd;                 /* an accepted socket, or -1 to dial addr */
    struct peer_link *link; /* shared with the choker; the thread sets link->done last */
};

/* Pool entry point: runs the connection to its end, then releases the swarm
 * entry. Takes ownership of `args` (a struct peer_args *). */
void peer_thread_main(void *args);

/* Milliseconds on a monotonic clock. */
int64_t peer_now_ms(void);

#endif
