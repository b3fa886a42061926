/*
 * net: blocking TCP with timeouts, the only way ptorrent touches a socket.
 *
 * Every call is bounded in time: connect by a poll() timeout, reads and
 * writes by SO_RCVTIMEO/SO_SNDTIMEO (NET_IO_SLICE_MS) plus a total budget, so
 * a stalled peer costs a thread at most that long, and the stop flag is looked
 * at between slices so shutdown is noticed within about a second.
 *
 * A `struct net_reader` buffers what recv() returns so that the many small
 * messages of the protocol cost one system call per batch, not per message.
 * Large reads (a block's payload) go straight from the socket to their
 * destination instead, with only the next message's header read ahead into
 * the buffer: a block is never copied in user space. The reader belongs to
 * one thread (the peer thread of its socket); no locks.
 */
#ifndef PT_NET_H
#define PT_NET_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "addr.h"
#include "errors.h"

/* Reads and writes block at most this long at a time before looking at the
 * stop flag again: short enough for a prompt shutdown, long enough to cost
 * nothing. */
#define NET_IO_SLICE_MS 500
/* Send buffer size we ask for: a few blocks in flight on a fast link. The
 * receive buffer is left to the kernel (see net_tune). */
#define NET_SOCKBUF_BYTES (1 << 20)
/* The small-message buffer takes at most NET_READER_FILL bytes per recv(): a
 * thousand HAVEs or REQUESTs. Blocks bypass it (below), so reading more at a
 * time would only take in payload bytes that then have to be copied. Its
 * capacity is larger to leave room for bytes a scatter read put back
 * (net_reader_unread); pages of it that are never used cost no memory. */
#define NET_READER_FILL (16u * 1024u)
#define NET_READER_CAP (64u * 1024u)
/* The most net_reader_wait sleeps for: 512 KiB, so the sender still has
 * window left while the reader sleeps (Linux grows an autotuned receive
 * buffer to twice the low-water mark asked for; BSDs cap the mark at the
 * buffer's size). */
#define NET_WAIT_MAX_BYTES (512u * 1024u)
/* Segments a scatter read takes (net_read_scatter). */
#define NET_SCATTER_MAX 8
/* A read of at least this many bytes, once the buffer is empty, goes straight
 * to its destination (below it, one buffered recv serves several messages). */
#define NET_DIRECT_MIN 2048u
/* What a direct read takes beyond its destination, into the buffer: a PIECE
 * message's header (length 4, id 1, index 4, begin 4). When blocks stream in,
 * the next payload then starts on an empty buffer and is read directly too. */
#define NET_LOOKAHEAD 13u

/* Connects with a timeout. Returns the socket (blocking, timeouts set) or -1
 * with *err_out set (PT_ERR_CONNECT, PT_ERR_TIMEOUT, PT_ERR_STOPPED). */
int net_connect(const struct peer_addr *a, int timeout_ms, const atomic_bool *stop,
                enum pt_err *err_out);

/* Sets the slice timeouts and buffer sizes on an accepted or connected socket. */
void net_tune(int fd);

/* Writes all len bytes, or fails: PT_ERR_TIMEOUT if no progress for
 * budget_ms, PT_ERR_CLOSED, PT_ERR_STOPPED. */
enum pt_err net_write_all(int fd, const void *data, size_t len, int budget_ms,
                          const atomic_bool *stop);

struct net_reader {
    int fd;
    int stop_fd; /* polled beside fd by net_reader_wait; -1: none */
    uint8_t buf[NET_READER_CAP];
    size_t start, end; /* unread bytes are buf[start..end) */
};

void net_reader_init(struct net_reader *r, int fd); /* stop_fd -1 */

/* From now on net_reader_wait also returns, with PT_ERR_STOPPED, as soon as
 * stop_fd is readable (a wake.h latch): a thread sleeping on a quiet socket
 * sees a stop at once, not when its wait_ms ends. -1 turns that off. */
void net_reader_stop_on(struct net_reader *r, int stop_fd);

/* Bytes already buffered. */
static inline size_t net_reader_buffered(const struct net_reader *r)
{
    return r->end - r->start;
}

/* Waits up to wait_ms for data: PT_OK if data is there, PT_ERR_TIMEOUT if
 * not, PT_ERR_CLOSED on EOF, PT_ERR_STOPPED once the stop_fd is readable
 * (net_reader_stop_on), another code on error. Reads at most
 * NET_LOOKAHEAD bytes, so a block that follows stays in the socket for a
 * direct read.
 *
 * With nothing buffered and min_bytes > 1 (capped at NET_WAIT_MAX_BYTES), it
 * sleeps until that many bytes are in the socket, not just one: a thread
 * that streams blocks then wakes once per batch instead of once per TCP
 * segment, and each wake-up is a context switch. When wait_ms is up it takes
 * whatever has come, however little (PT_OK if anything has). The kernel's
 * receive low-water mark (SO_RCVLOWAT) is raised for the poll() only: a
 * blocking read would wait for it too. */
enum pt_err net_reader_wait(struct net_reader *r, int wait_ms, size_t min_bytes);

/* Reads exactly len bytes into dst, from the buffer first, then the socket
 * (straight into dst when at least NET_DIRECT_MIN bytes remain). Fails with
 * PT_ERR_TIMEOUT if no byte arrives for budget_ms. */
enum pt_err net_read_exact(struct net_reader *r, void *dst, size_t len, int budget_ms,
                           const atomic_bool *stop);

/* The monotonic clock, in milliseconds, that deadlines below are on. */
int64_t net_now_ms(void);

/* net_read_exact with one deadline (net_now_ms() time) for all len bytes
 * instead of a budget per pause, so a sender trickling a byte at a time
 * cannot hold the reader longer; it may overrun by one NET_IO_SLICE_MS. For
 * handshakes, whose bytes all come at once from any honest peer. */
enum pt_err net_read_exact_by(struct net_reader *r, void *dst, size_t len, int64_t deadline_ms,
                              const atomic_bool *stop);

/* Reads straight into the segments iov[0..n) (n <= NET_SCATTER_MAX), whose
 * first *filled bytes are in already, on from there in order, then at most
 * NET_LOOKAHEAD bytes beyond them into the buffer, which must be empty.
 * Waits, as net_read_exact does, only until `need` bytes of the segments are
 * in: the ones after those get what the same readv() calls brought, which
 * may be nothing. *filled is updated, also on error. */
enum pt_err net_read_scatter(struct net_reader *r, const struct iovec *iov, int n, size_t *filled,
                             size_t need, int budget_ms, const atomic_bool *stop);

/* Puts the bytes at offsets [from, to) of the concatenated segments iov[0..n)
 * back in front of what is buffered, to be read again: a scatter read placed
 * them where they turned out not to belong. False (nothing changed) if they
 * do not fit in the buffer. */
bool net_reader_unread(struct net_reader *r, const struct iovec *iov, int n, size_t from,
                       size_t to);

#endif
