/*
 * storage: maps the torrent's byte stream onto its files and moves bytes
 * between pieces and disk with pwrite/pread.
 *
 * A piece may span many files (and zero-length files sit between them);
 * storage_map() turns (offset, length) into per-file runs with a binary
 * search over file offsets. It is pure and tested offline.
 *
 * storage_open() creates the directories and every file (zero-length files
 * included) under the output directory; paths come from metainfo, which has
 * already refused anything that could escape it. Files are opened lazily and
 * kept open; the fd table is guarded by `storage.lock` (held only to open a
 * file, never across a read or write). pwrite/pread need no lock: writes go to
 * disjoint ranges (one writer thread) and reads only touch verified pieces.
 */
#ifndef PT_STORAGE_H
#define PT_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "metainfo.h"

struct storage;

struct storage_run {
    size_t file;        /* index into metainfo.files */
    uint64_t file_off;  /* offset inside that file */
    uint64_t len;       /* bytes in this run */
};

/* Splits torrent bytes [offset, offset+len) into runs, in order, skipping
 * zero-length files. Returns the number of runs written (at most max), or 0 if
 * the range is outside the torrent or needs more than max runs. */
size_t storage_map(const struct metainfo *m, uint64_t offset, uint64_t len,
                   struct storage_run *runs, size_t max);

/* Creates DIR (if missing), the torrent's directories and files. The metainfo
 * must outlive the storage. NULL on failure with *err_out and ctx->msg naming
 * the path. */
struct storage *storage_open(const struct metainfo *m, const char *dir, enum pt_err *err_out,
                             struct pt_errctx *ctx);

/* For seeding: opens DIR as it is, creating and changing nothing (the data
 * may be on a read-only file system). Every file must exist as a regular
 * file; they are opened read-only, lazily. Writes fail with
 * PT_ERR_PERMISSION. */
struct storage *storage_open_readonly(const struct metainfo *m, const char *dir,
                                      enum pt_err *err_out, struct pt_errctx *ctx);

/* Writes a whole piece. Any thread; ctx names the file on failure. */
enum pt_err storage_write_piece(struct storage *s, uint32_t index, const uint8_t *data,
                                uint32_t len, struct pt_errctx *ctx);

/* Reads torrent bytes [offset, offset+len) (a block to upload, a piece to
 * recheck). Any thread. PT_ERR_NOT_FOUND if the data is not on disk (short file). */
enum pt_err storage_read(struct storage *s, uint64_t offset, uint8_t *out, uint32_t len,
                         struct pt_errctx *ctx);

/* fsync every open file (at completion, before a resume file is written). */
enum pt_err storage_sync(struct storage *s, struct pt_errctx *ctx);

void storage_close(struct storage *s); /* NULL is a no-op */

#endif
