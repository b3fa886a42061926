/*
 * resume: what survives a restart. Each torrent's state lives in
 * DIR/.ptorrent/<infohash-hex>.resume, bencoded (keys sorted):
 *
 *   d
 *     7:version  i1e
 *     9:info-hash 20:<raw info hash>
 *     6:pieces   <bitfield bytes: pieces verified AND written>
 *     5:files    l d 6:lengthi..e 5:mtimei..e 5:mtime-nsi..e e ... e   (one per file, torrent order)
 *     8:uploaded i..e
 *     10:downloaded i..e
 *   e
 *
 * Writing is crash-safe: the caller fsyncs the data files first; then the
 * file is written to a temp name in the same directory, fsynced, renamed over
 * the old one, and the directory is fsynced. A reader therefore sees either
 * the old state or the new one, never a torn file, and never a piece marked
 * that is not on disk.
 *
 * Loading never trusts blindly: the version, the info hash, the bitfield
 * length (and zero spare bits), and every file's current size and mtime on
 * disk must match. Any mismatch, truncation or garbage gives
 * PT_ERR_NOT_FOUND / a parse error and the caller rechecks from disk.
 *
 * No locks: callers serialise (the session's main thread only).
 */
#ifndef PT_RESUME_H
#define PT_RESUME_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "metainfo.h"

#define RESUME_VERSION 1
#define RESUME_DIR ".ptorrent"

struct resume_state {
    uint8_t *bitfield; /* ceil(piece_count/8) bytes, caller-owned in save; malloc'd by load */
    uint64_t uploaded, downloaded;
};

/* The path DIR/.ptorrent/<hex>.resume (caller frees), or NULL. */
char *resume_path(const struct metainfo *m, const char *dir);

/* Writes the state for the torrent's files as they are now on disk (their
 * sizes and mtimes are read with stat). Creates DIR/.ptorrent if needed. */
enum pt_err resume_save(const struct metainfo *m, const char *dir, const struct resume_state *st,
                        struct pt_errctx *ctx);

/* Loads and validates. On PT_OK st->bitfield is malloc'd (caller frees). On
 * any error *st is zeroed and ctx->msg says why (missing, corrupt, stale...). */
enum pt_err resume_load(const struct metainfo *m, const char *dir, struct resume_state *st,
                        struct pt_errctx *ctx);

/* Checks pieces on disk with SHA-1, on `threads` threads (0 = one per core):
 * sets the bit in `have_out` for each piece whose bytes are all present and
 * match its hash; pieces whose files are missing or short are skipped without
 * reading. progress(arg, checked, total) is called from the calling thread a
 * few times a second (may be NULL). Returns PT_OK, or PT_ERR_STOPPED if *stop
 * became true (stop may be NULL). */
enum pt_err resume_recheck(const struct metainfo *m, const char *dir, unsigned threads,
                           uint8_t *have_out, void (*progress)(void *arg, uint32_t checked,
                                                               uint32_t total),
                           void *arg, const atomic_bool *stop);

#endif
