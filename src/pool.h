/*
 * pool: a bounded set of POSIX threads, one per peer connection.
 *
 * The main thread starts a thread with pool_start() while pool_running() is
 * below the bound, calls pool_reap() now and then to join threads that have
 * finished (freeing their slot for the next peer), and pool_join_all() at
 * shutdown. Threads get a small fixed stack (POOL_STACK_BYTES): a peer thread
 * keeps its big buffers on the heap, so hundreds of peers cost little memory.
 *
 * Threads: every function is for the main thread only, except that the
 * threads themselves mark their slot done (through an atomic) as they return.
 */
#ifndef PT_POOL_H
#define PT_POOL_H

#include <stddef.h>

#include "errors.h"

/* 256 KiB: peer threads use a few KiB of stack; sanitizers need more headroom,
 * so the Makefile's sanitizer builds are still well inside this. */
#define POOL_STACK_BYTES (256u * 1024u)

struct pool;

struct pool *pool_new(unsigned max_threads);
void pool_free(struct pool *p); /* joins nothing: call pool_join_all first */

unsigned pool_max(const struct pool *p);
unsigned pool_running(const struct pool *p);

/* Runs fn(arg) on a new thread in a free slot. PT_ERR_LIMIT when every slot is
 * busy; PT_ERR_NOMEM if the thread cannot be created. On error fn never runs
 * and the caller still owns arg. */
enum pt_err pool_start(struct pool *p, void (*fn)(void *arg), void *arg);

/* Joins every thread that has returned. Never blocks on a running one. */
void pool_reap(struct pool *p);

/* Joins every thread (the caller has told them to stop). */
void pool_join_all(struct pool *p);

#endif
