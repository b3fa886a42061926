/*
 * stats: the --stats-json report written at exit. Plain data in, one JSON
 * object out; the field names are documented in README.md. Main thread only.
 */
#ifndef PT_STATS_H
#define PT_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "errors.h"
#include "swarm.h"

struct stats_report {
    const char *command;        /* "download" or "seed" */
    const char *info_hash_hex;
    uint64_t total_size;
    uint32_t piece_count;
    const char *result;          /* "complete", "interrupted", "failed" */
    double wall_seconds;
    double first_byte_seconds;   /* < 0: none */
    double complete_seconds;     /* < 0: not complete */
    uint64_t downloaded, uploaded, wasted;
    uint32_t pieces_failed;
    uint32_t encrypted_handshakes; /* inbound MSE handshakes answered */
    double store_cpu_seconds;    /* CPU inside write calls; < 0: unknown */
    size_t peers_known, peers_max_connected;
    const struct swarm_peer_stats *peers;
    size_t peer_count;
};

/* Appends the JSON object (with user/system CPU and peak RSS from getrusage)
 * to out. */
void stats_format(const struct stats_report *r, struct buf *out);

/* Formats and writes to path (atomically: temp file + rename). */
enum pt_err stats_write(const struct stats_report *r, const char *path);

#endif
