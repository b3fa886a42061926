/*
 * mutex: a pthread mutex that checks its use in debug builds.
 *
 * Debug builds (no NDEBUG) make it an error-checking mutex and remember which
 * thread holds it, so relocking, unlocking a mutex we do not hold, or calling
 * a `_locked` function without the lock fails an assert instead of
 * deadlocking or racing. Release builds are a plain mutex.
 */
#ifndef PT_MUTEX_H
#define PT_MUTEX_H

#include <pthread.h>
#include <stdbool.h>

struct pt_mutex {
    pthread_mutex_t mu;
#ifndef NDEBUG
    bool locked;     /* written only by the holder, under mu */
    pthread_t owner; /* valid while locked */
#endif
};

/* 0 or the pthread error code. */
int pt_mutex_init(struct pt_mutex *m);
void pt_mutex_destroy(struct pt_mutex *m);
void pt_mutex_lock(struct pt_mutex *m);
void pt_mutex_unlock(struct pt_mutex *m);
/* Asserts that the calling thread holds m (debug builds; no-op otherwise). */
void pt_mutex_assert_held(const struct pt_mutex *m);

#endif
