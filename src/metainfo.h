/*
 * metainfo: parses a .torrent file (BEP 3, BEP 12 announce-list, BEP 27
 * private) into plain data.
 *
 * The info hash is SHA-1 over the raw bytes of the `info` value exactly as
 * they appear in the file. Every path is checked component by component: an
 * empty, "." or ".." component, one containing '/', '\\' or NUL, or an absolute
 * path is rejected, so a file's path joined under the output directory can
 * never point outside it. Sizes are summed with overflow checks.
 *
 * Ownership: the caller owns `struct metainfo` and frees it with
 * metainfo_release(). All strings inside are NUL-terminated copies.
 * No locks: after parsing, a metainfo is read-only and may be shared by threads.
 */
#ifndef PT_METAINFO_H
#define PT_METAINFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"

/* Caps that keep a hostile file from making us allocate without bound. */
#define METAINFO_MAX_FILE_SIZE (64u << 20)   /* bytes of .torrent we read */
#define METAINFO_MAX_PIECE_LENGTH (256u << 20)
#define METAINFO_MAX_PATH_DEPTH 64

struct metainfo_file {
    char *path;      /* relative to the output dir, '/'-separated; multi-file: "name/a/b" */
    uint64_t length; /* bytes */
    uint64_t offset; /* where the file starts in the concatenated torrent data */
};

struct metainfo_tier {
    char **urls;
    size_t count;
};

struct metainfo {
    char *name;
    uint8_t info_hash[20];
    uint32_t piece_length;
    uint32_t piece_count;
    uint8_t *piece_hashes;  /* 20 * piece_count bytes */
    uint64_t total_length;
    bool multi_file;
    struct metainfo_file *files;
    size_t file_count;
    /* Trackers as tiers: `announce-list` when present, else one tier holding
     * `announce`. Empty when the torrent has neither (trackerless). */
    struct metainfo_tier *tiers;
    size_t tier_count;
    bool is_private;
    char *comment;        /* NULL if absent */
    char *created_by;     /* NULL if absent */
    int64_t creation_date; /* seconds since the epoch; -1 if absent */
    uint8_t *info_bytes;  /* a copy of the raw `info` dictionary (for BEP 9) */
    size_t info_len;
};

/* Parses a whole .torrent in memory. On error *out is left empty and `err`
 * (may be NULL) names the key or file at fault and the byte offset. */
enum pt_err metainfo_parse(const uint8_t *data, size_t len, struct metainfo *out,
                           struct pt_errctx *err);

/* Reads and parses a .torrent file (at most METAINFO_MAX_FILE_SIZE bytes). */
enum pt_err metainfo_load(const char *path, struct metainfo *out, struct pt_errctx *err);

void metainfo_release(struct metainfo *m);

/* Bytes in piece `index` (the last one may be short). index < piece_count. */
uint32_t metainfo_piece_size(const struct metainfo *m, uint32_t index);

/* Checks one path component as described above. */
bool metainfo_component_ok(const uint8_t *s, size_t len);

#endif
