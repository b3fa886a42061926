/*
 * writer: the storage writer thread and its bounded queue.
 *
 * Peer threads hand verified pieces to writer_submit(); one writer thread
 * takes every piece queued at that moment (up to 64), sorts them by index and
 * writes each run of consecutive pieces with storage_write_pieces() (one
 * pwritev per file segment). The queue is bounded in BYTES: when it is full,
 * writer_submit() blocks the peer thread until the writer has made room
 * (back-pressure: a slow disk slows the download instead of growing memory),
 * and nothing is ever dropped.
 *
 * The first write error stops the writer: it records the error, wakes every
 * blocked producer (they get PT_ERR_STOPPED) and refuses new pieces; the
 * session sees it with writer_error() and stops the download.
 *
 * Threads: writer_submit, writer_pieces_written, writer_error from any thread;
 * writer_new and writer_finish from the session's main thread only.
 */
#ifndef PT_WRITER_H
#define PT_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "storage.h"

struct writer;

/* Called on the writer thread once for each piece after it is on disk (e.g.
 * to update a resume bitfield), before its buffer is released; within one
 * batch in index order, so not necessarily in the order submitted. Never for
 * a piece that was not written. May be NULL. Must not block for long. */
typedef void (*writer_written_fn)(void *arg, uint32_t index);

/* Starts the writer thread. max_bytes >= the largest piece. NULL on failure. */
struct writer *writer_new(struct storage *s, size_t max_bytes, writer_written_fn on_written,
                          void *arg);

/* How the writer gives back a piece buffer after writing it (default: free).
 * Call before the first writer_submit. */
void writer_set_release(struct writer *w, void (*release)(void *arg, uint8_t *data), void *arg);

/* Queues piece `index` (len bytes at data). On PT_OK the writer takes
 * ownership of data and releases it after writing; on error (the writer
 * has failed or is finishing) the caller keeps it. Blocks while the queue is
 * full. */
enum pt_err writer_submit(struct writer *w, uint32_t index, uint8_t *data, uint32_t len);

/* Pieces written so far. */
uint32_t writer_pieces_written(struct writer *w);

/* PT_OK, or the first write error with its message copied to ctx. */
enum pt_err writer_error(struct writer *w, struct pt_errctx *ctx);

/* Writes everything still queued, stops the thread, joins it, frees w.
 * Returns the first error seen (PT_OK if none). */
enum pt_err writer_finish(struct writer *w, struct pt_errctx *ctx);

#endif
