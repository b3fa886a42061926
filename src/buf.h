/*
 * buf: a growable byte buffer, used by encoders (bencode, peer messages) and
 * for reading whole files.
 *
 * Ownership: the caller owns the struct; buf_release() frees the bytes.
 * buf_take() hands the bytes to the caller ("you now own the storage").
 * On allocation failure the buffer is marked failed, later appends do nothing,
 * and buf_ok() returns false: encoders check once at the end.
 * Not shared between threads.
 */
#ifndef PT_BUF_H
#define PT_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"

struct buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    bool failed;
};

void buf_init(struct buf *b);
void buf_release(struct buf *b);
/* Returns the bytes (caller frees) and leaves `b` empty. NULL if failed. */
uint8_t *buf_take(struct buf *b, size_t *len_out);
bool buf_ok(const struct buf *b);

void buf_append(struct buf *b, const void *data, size_t len);
void buf_append_str(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Makes room for `len` more bytes; returns a pointer to them (len not yet
 * counted: call buf_commit) or NULL if failed. */
uint8_t *buf_reserve(struct buf *b, size_t len);
void buf_commit(struct buf *b, size_t len);

/* Reads a whole file of at most `max_len` bytes. PT_ERR_LIMIT if larger. */
enum pt_err buf_read_file(struct buf *b, const char *path, size_t max_len);

#endif
