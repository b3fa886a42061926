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

struct session_config {
    const char *torrent_path;
    const char *out_dir;
    bool quiet;                 /* -q: no progress, no summary */
    int verbose;                /* -v: 1 info, 2 debug */
    uint16_t port;              /* told to the tracker */
    struct peer_addr peers[SESSION_MAX_CLI_PEERS]; /* --peer */
    size_t peer_count;
    unsigned max_peers;         /* peer threads at once */
    const char *stats_json;     /* --stats-json FILE, or NULL */
    int peer_timeout_s;         /* drop a peer that leaves requests unanswered this long */
};

void session_config_init(struct session_config *cfg);

/* Runs a download to its end. Returns the process exit code (enum cli_exit):
 * 0 complete, 2 bad .torrent, 3 failure (tracker, disk), 130/143 on
 * SIGINT/SIGTERM. Prints its own errors. */
int session_download(const struct session_config *cfg);

#endif
