/*
 * bufpool: piece buffers, reused, bounded in number (and so in bytes).
 *
 * Every piece in flight needs a piece-sized buffer: the picker takes one when
 * a piece starts, the block bytes are read into it, the hash is taken over
 * it, and the writer gives it back after the pwrite. Reusing buffers from one
 * pool means no malloc per piece and a hard ceiling on memory: when every
 * buffer is in use, no new piece starts until the writer returns one.
 *
 * The pool's memory is one block, reserved at once, backed by the OS as
 * buffers are first handed out or all at once by bufpool_prefault, and
 * freed only by bufpool_free. Locking: one mutex and one
 * condition variable inside; never held across anything but the free list.
 * Any thread.
 */
#ifndef PT_BUFPOOL_H
#define PT_BUFPOOL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bufpool;

/* `count` buffers of `size` bytes at most. NULL on no memory or count 0. */
struct bufpool *bufpool_new(size_t size, size_t count);
/* Backs the first `count` buffers (at most all) with memory now, before
 * any is handed out: a download's memory is then fixed from its start, the
 * same for every torrent of at least `count` pieces, and the page faults are
 * taken here rather than in the peer threads' first reads. */
void bufpool_prefault(struct bufpool *p, size_t count);

/* Frees every buffer. All must have been put back. NULL is a no-op. */
void bufpool_free(struct bufpool *p);

/* A buffer, or NULL at once if all `count` are in use (or malloc failed). */
uint8_t *bufpool_try_get(struct bufpool *p);

/* A buffer, waiting for one to be put back if all are in use; NULL if *stop
 * became true first (stop may be NULL: wait as long as it takes). */
uint8_t *bufpool_get(struct bufpool *p, const atomic_bool *stop);

/* Gives a buffer back (from this pool only). NULL is a no-op. */
void bufpool_put(struct bufpool *p, uint8_t *buf);

size_t bufpool_size(const struct bufpool *p);
size_t bufpool_in_use(struct bufpool *p);
size_t bufpool_allocated(struct bufpool *p); /* buffers ever handed out: <= count */

#endif
