/*
 * storage: maps the torrent's byte stream onto its files and moves bytes
 * between pieces and disk with pwrite/pread.
 *
 * A piece may span many files (and zero-length files sit between them);
 * storage_map() turns (offset, length) into per-file runs with a binary
 * search over file offsets. It is pure and tested offline. Runs of adjacent
 * pieces are written with one pwritev per file (storage_write_pieces).
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

/* pwritev is in Linux, the BSDs and macOS 11 on. Where it is missing (older
 * macOS, or a build with -DSTORAGE_NO_PWRITEV) writes fall back to one pwrite
 * per piece and file segment: the same bytes, more system calls. */
#if defined(__APPLE__) && defined(__MAC_OS_X_VERSION_MIN_REQUIRED)
#if __MAC_OS_X_VERSION_MIN_REQUIRED < 110000
#define STORAGE_NO_PWRITEV 1
#endif
#endif

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

/* One piece to write: `len` bytes at `data` (borrowed for the call only)
 * go to torrent offset index * piece_length. */
struct storage_piece {
    uint32_t index;
    uint32_t len; /* bytes; piece_length except for the torrent's last piece */
    const uint8_t *data;
};

/* Writes pieces[0..count). Neighbours in the array that continue each other
 * (index + 1, the earlier one full-length) are written as one byte range: one
 * pwritev per file segment (a file boundary splits it, zero-length files are
 * skipped), so pass them sorted by index for the fewest system calls. Every
 * piece is checked to lie inside the torrent before any byte is written
 * (PT_ERR_LIMIT). Short writes and EINTR are retried; a failure returns its
 * code (PT_ERR_DISK_FULL for ENOSPC, PT_ERR_PERMISSION for EROFS...) with ctx
 * naming the file. *written_out (may be NULL): how many pieces from the front
 * of the array are wholly on disk (count on PT_OK). The caller keeps the
 * buffers. Meant for the single writer thread: writes to one range must not
 * race (reads of other, verified pieces may run at the same time). */
enum pt_err storage_write_pieces(struct storage *s, const struct storage_piece *pieces,
                                 size_t count, size_t *written_out, struct pt_errctx *ctx);

/* Writes a whole piece: storage_write_pieces with one piece. */
enum pt_err storage_write_piece(struct storage *s, uint32_t index, const uint8_t *data,
                                uint32_t len, struct pt_errctx *ctx);

/* Write system calls made so far (pwritev, or pwrite where it is missing):
 * lets tests and benchmarks see the coalescing. Any thread; lock-free. */
uint64_t storage_write_calls(struct storage *s);

/* CPU seconds the writing threads spent inside those calls (copying into the
 * page cache, allocating pages): the part of a download's CPU that goes to
 * storing it. -1 where the OS has no per-thread CPU clock. Lock-free. */
double storage_write_cpu_seconds(struct storage *s);

/* Advice: torrent bytes [offset, offset+len) will be read soon (a peer began
 * asking for a piece we seed), so the kernel may read them ahead while
 * earlier blocks are sent. posix_fadvise(POSIX_FADV_WILLNEED) on each file
 * segment whose file opens; a no-op where the OS has no posix_fadvise and
 * for ranges outside the torrent. Never fails: it is only a hint. Any thread. */
void storage_advise_willneed(struct storage *s, uint64_t offset, uint64_t len);

/* Reads torrent bytes [offset, offset+len) (a block to upload, a piece to
 * recheck). Any thread. PT_ERR_NOT_FOUND if the data is not on disk (short file). */
enum pt_err storage_read(struct storage *s, uint64_t offset, uint8_t *out, uint32_t len,
                         struct pt_errctx *ctx);

/* fsync every open file (at completion, before a resume file is written). */
enum pt_err storage_sync(struct storage *s, struct pt_errctx *ctx);

void storage_close(struct storage *s); /* NULL is a no-op */

#endif
