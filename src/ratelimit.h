/*
 * ratelimit: a token bucket shared by every peer thread, one per direction
 * (--max-download-rate, --max-upload-rate), like aria2c's and
 * transmission-cli's global limits.
 *
 * Tokens are bytes. They accrue at `rate` bytes per second up to a burst of
 * RATELIMIT_BURST_SECONDS of rate (at least one block), and ratelimit_take()
 * blocks the caller until it can take what it asks for. Locking: one mutex
 * inside guards the bucket; it is never held while sleeping. Any thread.
 * A rate of 0 means unlimited: take() returns at once without locking.
 * The clock is injectable for tests.
 */
#ifndef PT_RATELIMIT_H
#define PT_RATELIMIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "errors.h"

#define RATELIMIT_BURST_SECONDS 1

struct ratelimit;

/* now_ms: a monotonic clock in milliseconds; NULL = CLOCK_MONOTONIC. */
struct ratelimit *ratelimit_new(uint64_t bytes_per_second, int64_t (*now_ms)(void));
void ratelimit_free(struct ratelimit *r); /* NULL is a no-op */

/* Takes `bytes` tokens, sleeping (in slices of at most 100 ms, checking
 * *stop) until the bucket has them. PT_ERR_STOPPED if *stop became true
 * (stop may be NULL). A request larger than the burst is allowed to drive
 * the bucket negative, so it never waits forever. */
enum pt_err ratelimit_take(struct ratelimit *r, uint64_t bytes, const atomic_bool *stop);

/* Non-blocking: takes the tokens and returns true if they are there now. */
bool ratelimit_try_take(struct ratelimit *r, uint64_t bytes);

uint64_t ratelimit_rate(const struct ratelimit *r);

#endif
