#include "mutex.h"

#include <assert.h>

int pt_mutex_init(struct pt_mutex *m)
{
    pthread_mutexattr_t attr;
    int rc = pthread_mutexattr_init(&attr);
    if (rc != 0)
        return rc;
#ifndef NDEBUG
    rc = pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
    m->locked = false;
#endif
    if (rc == 0)
        rc = pthread_mutex_init(&m->mu, &attr);
    pthread_mutexattr_destroy(&attr);
    return rc;
}

void pt_mutex_destroy(struct pt_mutex *m)
{
    pthread_mutex_destroy(&m->mu);
}

void pt_mutex_lock(struct pt_mutex *m)
{
    int rc = pthread_mutex_lock(&m->mu);
    assert(rc == 0); /* EDEADLK from the error-checking mutex: relocking */
    (void)rc;
#ifndef NDEBUG
    m->owner = pthread_self();
    m->locked = true;
#endif
}

void pt_mutex_assert_held(const struct pt_mutex *m)
{
#ifndef NDEBUG
    assert(m->locked && pthread_equal(m->owner, pthread_self()));
#else
    (void)m;
#endif
}

void pt_mutex_unlock(struct pt_mutex *m)
{
    pt_mutex_assert_held(m);
#ifndef NDEBUG
    m->locked = false;
#endif
    int rc = pthread_mutex_unlock(&m->mu);
    assert(rc == 0); /* EPERM: unlocking a mutex this thread does not hold */
    (void)rc;
}
