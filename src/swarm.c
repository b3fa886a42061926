/*
 * swarm: a fixed array of candidates, scanned linearly.
 * `banned` is also kept in an atomic so that peer threads can ask "am I
 * banned?" before every request batch without taking the lock. With at most a few
 * thousand entries, and calls a few times a second, a scan costs microseconds
 * and keeps the code obvious; ids are array positions + 1, so they never move.
 */
#include "swarm.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

struct candidate {
    struct swarm_peer_stats st;
    bool connected;
    bool inbound;           /* it dialled us: its port is not one to dial back */
    unsigned failures;      /* consecutive failed connections */
    int64_t next_try_ms;    /* do not dial before this */
    atomic_bool banned;     /* mirrors st.banned for lock-free swarm_banned() */
};

struct swarm {
    /* Locking: `lock` guards count and every field of peers[]. */
    pthread_mutex_t lock;
    size_t count;
    struct candidate peers[SWARM_MAX_PEERS];
};

struct swarm *swarm_new(void)
{
    struct swarm *s = calloc(1, sizeof *s);
    if (s)
        pthread_mutex_init(&s->lock, NULL);
    return s;
}

void swarm_free(struct swarm *s)
{
    if (!s)
        return;
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* ids are 1-based; 0 and out-of-range ids name nobody. */
static struct candidate *get_locked(struct swarm *s, uint16_t id)
{
    return (id >= 1 && id <= s->count) ? &s->peers[id - 1] : NULL;
}

uint16_t swarm_add(struct swarm *s, const struct peer_addr *a)
{
    pthread_mutex_lock(&s->lock);
    uint16_t id = 0;
    for (size_t i = 0; i < s->count && !id; i++)
        if (addr_equal(&s->peers[i].st.addr, a))
            id = (uint16_t)(i + 1);
    if (!id && s->count < SWARM_MAX_PEERS) {
        struct candidate *c = &s->peers[s->count++];
        c->st.addr = *a;
        id = (uint16_t)s->count;
    }
    pthread_mutex_unlock(&s->lock);
    return id;
}

uint16_t swarm_add_inbound(struct swarm *s, const struct peer_addr *a)
{
    pthread_mutex_lock(&s->lock);
    size_t i = 0;
    while (i < s->count && !addr_equal(&s->peers[i].st.addr, a))
        i++;
    uint16_t id = 0;
    if (i == s->count && s->count < SWARM_MAX_PEERS) {
        s->peers[s->count++].st.addr = *a;
        s->peers[i].inbound = true;
    }
    if (i < s->count && !s->peers[i].connected && !s->peers[i].st.banned) {
        s->peers[i].connected = true;
        id = (uint16_t)(i + 1);
    }
    pthread_mutex_unlock(&s->lock);
    return id;
}

uint16_t swarm_take(struct swarm *s, int64_t now_ms, struct peer_addr *addr_out)
{
    pthread_mutex_lock(&s->lock);
    uint16_t id = 0;
    for (size_t i = 0; i < s->count && !id; i++) {
        struct candidate *c = &s->peers[i];
        if (c->connected || c->inbound || c->st.banned || c->failures >= SWARM_MAX_FAILURES ||
            c->next_try_ms > now_ms)
            continue;
        c->connected = true;
        *addr_out = c->st.addr;
        id = (uint16_t)(i + 1);
    }
    pthread_mutex_unlock(&s->lock);
    return id;
}

void swarm_reached(struct swarm *s, uint16_t id)
{
    pthread_mutex_lock(&s->lock);
    struct candidate *c = get_locked(s, id);
    if (c) {
        c->failures = 0;
        c->st.ever_connected = true;
    }
    pthread_mutex_unlock(&s->lock);
}

void swarm_release(struct swarm *s, uint16_t id, enum swarm_outcome how, int64_t now_ms)
{
    pthread_mutex_lock(&s->lock);
    struct candidate *c = get_locked(s, id);
    if (c) {
        c->connected = false;
        bool failed = how != SWARM_DONE;
        if (how == SWARM_NEVER_AGAIN)
            c->failures = SWARM_MAX_FAILURES - 1; /* the ++ below makes it final */
        int64_t wait = SWARM_RETRY_AFTER_MS;
        if (failed) {
            c->failures++;
            wait = SWARM_BACKOFF_BASE_MS;
            for (unsigned i = 1; i < c->failures && wait < SWARM_BACKOFF_MAX_MS; i++)
                wait *= 2;
            if (wait > SWARM_BACKOFF_MAX_MS)
                wait = SWARM_BACKOFF_MAX_MS;
        }
        c->next_try_ms = now_ms + wait;
    }
    pthread_mutex_unlock(&s->lock);
}

bool swarm_blame(struct swarm *s, uint16_t id, bool sole)
{
    pthread_mutex_lock(&s->lock);
    struct candidate *c = get_locked(s, id);
    bool banned = false;
    if (c) {
        c->st.hash_failures++;
        if (sole) {
            c->st.banned = true;
            atomic_store(&c->banned, true);
        }
        banned = c->st.banned;
    }
    pthread_mutex_unlock(&s->lock);
    return banned;
}

bool swarm_banned(struct swarm *s, uint16_t id)
{
    /* No lock: ids are only handed out for entries that exist, and entries
     * never move (a fixed array). */
    return id >= 1 && id <= SWARM_MAX_PEERS && atomic_load(&s->peers[id - 1].banned);
}

void swarm_add_bytes(struct swarm *s, uint16_t id, uint64_t down, uint64_t up)
{
    pthread_mutex_lock(&s->lock);
    struct candidate *c = get_locked(s, id);
    if (c) {
        c->st.downloaded += down;
        c->st.uploaded += up;
    }
    pthread_mutex_unlock(&s->lock);
}

size_t swarm_known(struct swarm *s)
{
    pthread_mutex_lock(&s->lock);
    size_t n = s->count;
    pthread_mutex_unlock(&s->lock);
    return n;
}

size_t swarm_connected(struct swarm *s)
{
    pthread_mutex_lock(&s->lock);
    size_t n = 0;
    for (size_t i = 0; i < s->count; i++)
        n += s->peers[i].connected;
    pthread_mutex_unlock(&s->lock);
    return n;
}

size_t swarm_stats(struct swarm *s, struct swarm_peer_stats *out, size_t max)
{
    pthread_mutex_lock(&s->lock);
    size_t n = s->count < max ? s->count : max;
    for (size_t i = 0; i < n; i++)
        out[i] = s->peers[i].st;
    pthread_mutex_unlock(&s->lock);
    return n;
}
