/*
 * support: helpers shared by the CUnit suites (not a suite itself).
 * The monotonic clock and sleeps for tests that time things, temporary
 * directories for tests that touch the file system, and the storage
 * write-call check of the storage and writer suites.
 */
#ifndef PT_TEST_SUPPORT_H
#define PT_TEST_SUPPORT_H

#include <stdbool.h>
#include <stdint.h>

/* Milliseconds on the monotonic clock, and a sleep of ms milliseconds. */
int64_t now_ms(void);
void sleep_ms(long ms);

/* A new directory /tmp/pt_<tag>_XXXXXX (caller frees the returned path);
 * fails the current test fatally if it cannot be made. */
char *make_tmpdir(const char *tag);

/* rm -rf of `path`, never following symlinks. */
void remove_tree(const char *path);

/* storage_write_calls() against the pwritev calls a test expects: exact
 * where pwritev exists; the fallback (STORAGE_NO_PWRITEV) makes one pwrite
 * per iovec, so there only "at least". */
bool write_calls_are(uint64_t got, uint64_t want);

#endif
