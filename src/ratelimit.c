/*
 * ratelimit.c: a token bucket shared by threads (see ratelimit.h for the
 * contract).
 *
 * Design. The bucket holds `tokens` and remembers when it was last refilled.
 * Every look at it first adds elapsed_ms * rate / 1000 bytes, capped at the
 * burst. Tokens are counted in thousandths of a byte, so that this refill is
 * exact (rate bytes/s is rate milli-bytes/ms) and a slow rate does not lose a
 * fraction of a byte at every look.
 *
 * A request is served when the bucket holds min(bytes, burst): a request
 * larger than the burst waits for a full bucket, then drives it negative,
 * and the debt is repaid by later callers waiting. Without this a request
 * above the burst could never be served.
 *
 * ratelimit_take() is a loop: lock, refill, take or compute how long until
 * the tokens will be there, unlock, sleep min(that, 100 ms), check the stop
 * flag, retry. It never sleeps holding the mutex, and waiters are not queued:
 * whoever looks first after the refill wins, which is fair enough for peer
 * threads asking for blocks of the same size.
 *
 * Locking: `mu` guards the fields marked [M]; fields marked [I] never change
 * after ratelimit_new(), so the unlimited path and ratelimit_rate() read them
 * without the lock.
 */
#include "ratelimit.h"

#include "mutex.h"

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

/* The smallest burst: one PIECE message (13-byte header and a 16 KiB block),
 * so that at any rate the common request fits in a full bucket. */
#define RATELIMIT_MIN_BURST (16384 + 13)

/* Rates above 1 TiB/s are treated as unlimited: nothing reaches them, and
 * the cap keeps every milli-byte count well inside int64_t. */
#define RATELIMIT_MAX_RATE (UINT64_C(1) << 40)

/* Requests above 1 TiB are served as 1 TiB, for the same reason; no caller
 * asks for more than a few blocks at a time. */
#define RATELIMIT_MAX_TAKE (UINT64_C(1) << 40)

/* take() sleeps at most this long between looks at the bucket and the stop
 * flag, so a shutdown is noticed within about this delay. */
#define RATELIMIT_SLICE_MS 100

#define MILLI 1000

struct ratelimit {
    uint64_t rate;           /* [I] bytes per second as given; 0 = unlimited */
    bool unlimited;          /* [I] rate 0 or above RATELIMIT_MAX_RATE */
    int64_t burst_mb;        /* [I] capacity, milli-bytes */
    int64_t (*now_ms)(void); /* [I] monotonic clock, milliseconds */
    struct pt_mutex mu;
    int64_t tokens_mb; /* [M] milli-bytes; negative while in debt */
    int64_t last_ms;   /* [M] when tokens_mb was last refilled */
};

/* ---- clock ---- */

static int64_t monotonic_ms(void)
{
    struct timespec ts = {0, 0};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    /* An EINTR just makes the caller look at the bucket and the flag early. */
    nanosleep(&ts, NULL);
}

/* ---- locking: one pt_mutex (see mutex.h) ---- */

static void take_lock(struct ratelimit *r)
{
    pt_mutex_lock(&r->mu);
}

static void assert_locked(const struct ratelimit *r)
{
    pt_mutex_assert_held(&r->mu);
}

static void drop_lock(struct ratelimit *r)
{
    pt_mutex_unlock(&r->mu);
}

/* ---- the bucket ---- */

struct ratelimit *ratelimit_new(uint64_t bytes_per_second, int64_t (*now_ms)(void))
{
    struct ratelimit *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    if (pt_mutex_init(&r->mu) != 0) {
        free(r);
        return NULL;
    }
    r->rate = bytes_per_second;
    r->unlimited = bytes_per_second == 0 || bytes_per_second > RATELIMIT_MAX_RATE;
    r->now_ms = now_ms ? now_ms : monotonic_ms;
    if (!r->unlimited) {
        uint64_t burst = bytes_per_second * RATELIMIT_BURST_SECONDS;
        if (burst < RATELIMIT_MIN_BURST)
            burst = RATELIMIT_MIN_BURST;
        r->burst_mb = (int64_t)burst * MILLI;
        r->tokens_mb = r->burst_mb; /* start full */
        r->last_ms = r->now_ms();
    }
    return r;
}

void ratelimit_free(struct ratelimit *r)
{
    if (!r)
        return;
    pt_mutex_destroy(&r->mu);
    free(r);
}

uint64_t ratelimit_rate(const struct ratelimit *r)
{
    return r->rate;
}

/* Adds the tokens accrued since last_ms, up to the burst. */
static void refill_locked(struct ratelimit *r, int64_t now)
{
    assert_locked(r);
    if (now <= r->last_ms)
        return; /* same millisecond (or a clock that went back: wait for it) */
    int64_t elapsed = now - r->last_ms;
    r->last_ms = now;
    int64_t missing = r->burst_mb - r->tokens_mb;
    if (missing <= 0)
        return;
    /* Compare before multiplying: a long-idle bucket would overflow. */
    int64_t rate = (int64_t)r->rate;
    if (elapsed >= missing / rate + 1)
        r->tokens_mb = r->burst_mb;
    else
        r->tokens_mb += elapsed * rate;
}

/* Takes `bytes` if the bucket holds min(bytes, burst) and returns 0;
 * otherwise takes nothing and returns how many milliseconds until it will. */
static int64_t take_or_wait_locked(struct ratelimit *r, uint64_t bytes)
{
    assert_locked(r);
    refill_locked(r, r->now_ms());
    if (bytes > RATELIMIT_MAX_TAKE)
        bytes = RATELIMIT_MAX_TAKE;
    int64_t want_mb = (int64_t)bytes * MILLI;
    int64_t need_mb = want_mb < r->burst_mb ? want_mb : r->burst_mb;
    if (r->tokens_mb >= need_mb) {
        r->tokens_mb -= want_mb;
        return 0;
    }
    int64_t rate = (int64_t)r->rate;
    return (need_mb - r->tokens_mb + rate - 1) / rate; /* rounded up, so >= 1 */
}

bool ratelimit_try_take(struct ratelimit *r, uint64_t bytes)
{
    if (r->unlimited)
        return true;
    take_lock(r);
    int64_t wait = take_or_wait_locked(r, bytes);
    drop_lock(r);
    return wait == 0;
}

enum pt_err ratelimit_take(struct ratelimit *r, uint64_t bytes, const atomic_bool *stop)
{
    if (r->unlimited)
        return PT_OK;
    for (;;) {
        take_lock(r);
        int64_t wait = take_or_wait_locked(r, bytes);
        drop_lock(r);
        if (wait == 0)
            return PT_OK;
        if (stop && atomic_load(stop))
            return PT_ERR_STOPPED;
        sleep_ms(wait < RATELIMIT_SLICE_MS ? wait : RATELIMIT_SLICE_MS);
    }
}
