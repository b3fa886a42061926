/*
 * create: makes a .torrent from a file or a directory (`ptorrent create`).
 *
 * Files of a directory are taken in a deterministic order (byte order of
 * their relative paths, recursively; symlinks and special files are skipped,
 * hidden files included), hashing runs on all cores, and with
 * `no_date` the output is byte-for-byte reproducible. Keys are written
 * sorted (canonical bencode), so any client computes the same info hash.
 *
 * The piece length, unless given, is the power of two between 16 KiB and
 * 16 MiB that gives 1,000-2,000 pieces (the closest to that range).
 */
#ifndef PT_CREATE_H
#define PT_CREATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"

#define CREATE_MIN_PIECE (16u * 1024u)
#define CREATE_MAX_PIECE (16u * 1024u * 1024u)
#define CREATE_MAX_TRACKERS 64

struct create_opts {
    const char *path;          /* file or directory to share */
    const char *out_path;      /* the .torrent to write */
    const char *trackers[CREATE_MAX_TRACKERS]; /* each its own tier; first is `announce` */
    size_t tracker_count;
    uint32_t piece_length;     /* 0 = choose */
    bool is_private;
    const char *comment;       /* NULL = none */
    bool no_date;              /* omit `creation date` */
    const char *created_by;    /* NULL = "ptorrent <version>" */
    unsigned threads;          /* 0 = one per core */
};

/* Piece length for a total size, as described above. */
uint32_t create_choose_piece_length(uint64_t total_size);

/* Builds and writes the torrent. On error ctx->msg names the file at fault. */
enum pt_err create_torrent(const struct create_opts *o, struct pt_errctx *ctx);

/* `ptorrent create` itself: parses argv (argv[0] is "create") and returns an
 * exit code (0 ok, 1 usage, 2 bad input, 3 failure). */
int create_cli(int argc, char **argv);
extern const char *const create_usage;

#endif
