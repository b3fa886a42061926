/*
 * wake: a self-pipe that ends a poll() sleep at once.
 *
 * Our threads sleep in poll() on one socket with a timeout (a peer thread a
 * tick of 100 ms, the main loop the same on the listener). A flag set by
 * another thread is only seen when that sleep ends. A wake is the classic
 * self-pipe: wake_set() writes a byte, and the read end, polled beside the
 * socket, is readable from then on. Two ways to use one:
 *   - a latch, never drained, wakes every thread that polls it, now and
 *     later: the stop of all peer threads;
 *   - an event, drained by the one thread that waits on it after each
 *     wakeup: "the last piece is on disk" or "a peer turned interested"
 *     for the main loop.
 * Both ends are non-blocking and close-on-exec. wake_set() is one write():
 * async-signal-safe and callable from any thread; when the pipe is full the
 * byte is dropped, as the read end is then readable anyway.
 */
#ifndef PT_WAKE_H
#define PT_WAKE_H

#include <stdbool.h>

struct wake {
    int rd, wr; /* the pipe's ends; -1 when closed */
};

/* Opens the pipe. False (and both ends -1) if the OS refuses: a caller then
 * works on, with only its poll() timeouts to notice flags. */
bool wake_open(struct wake *w);
void wake_close(struct wake *w); /* a closed or failed wake is a no-op */

/* Makes wake_fd() readable. */
void wake_set(const struct wake *w);

/* The descriptor to poll() for POLLIN, or -1 (poll() skips negative fds). */
int wake_fd(const struct wake *w);

/* Reads every pending byte: wake_fd() is not readable again until the next
 * wake_set(). Only for an event; a latch is never drained. */
void wake_drain(const struct wake *w);

#endif
