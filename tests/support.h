/*
 * support: helpers shared by the CUnit suites (not a suite itself).
 * Temporary directories for tests that touch the file system.
 */
#ifndef PT_TEST_SUPPORT_H
#define PT_TEST_SUPPORT_H

/* A new directory /tmp/pt_<tag>_XXXXXX (caller frees the returned path);
 * fails the current test fatally if it cannot be made. */
char *make_tmpdir(const char *tag);

/* rm -rf of `path`, never following symlinks. */
void remove_tree(const char *path);

#endif
