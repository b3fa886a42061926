/*
 * session: one download, from the .torrent to the last byte on disk.
 *
 * The main thread runs the session: it owns the tracker conversation and the
 * bounded pool of peer threads, watches the storage writer, prints progress,
 * and decides what the user sees. It is the only module that turns errors
 * into messages and exit codes (with the CLI).
 */
#ifndef PT_SESSION_H
#define PT_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"

#define SESSION_MAX_CLI_PEERS 64
#define SESSION_DEFAULT_MAX_PEERS 50
#define SESSION_DEFAULT_PORT 6881

enum session_mode {
    SESSION_DOWNLOAD, /* fetch what is missing; seed after only if asked */
    SESSION_SEED      /* the data must be complete: upload until told to stop */
};

struct session_config {
    enum session_mode mode;
    const char *torrent_path;
    const char *out_dir;        /* download: -o DIR; seed: -d DIR */
    bool quiet;                 /* -q: no progress, no summary */
    int verbose;                /* -v: 1 info, 2 debug */
    uint16_t port;              /* where we listen (the next free one if taken; 0 any);
                                 * the tracker is told the port really bound */
    struct peer_addr peers[SESSION_MAX_CLI_PEERS]; /* --peer */
    size_t peer_count;
    unsigned max_peers;         /* peer threads at once */
    const char *stats_json;     /* --stats-json FILE, or NULL */
    int peer_timeout_s;         /* drop a peer that leaves requests unanswered this long */
    double seed_ratio;          /* keep seeding until uploaded/size reaches this; < 0 no */
    int64_t seed_time_s;        /* keep seeding this long after completion; < 0 no */
    uint64_t max_download_rate; /* bytes/s over all peers; 0 unlimited */
    uint64_t max_upload_rate;   /* bytes/s over all peers; 0 unlimited */
};

void session_config_init(struct session_config *cfg);

/* Runs a download or a seed to its end. Returns the process exit code (enum
 * cli_exit): 0 complete (and seeding limits reached), 2 bad .torrent or, for
 * SESSION_SEED, incomplete data, 3 failure (tracker, disk), 130/143 on
 * SIGINT/SIGTERM. Prints its own errors. One session per process. */
int session_run(const struct session_config *cfg);

#endif
