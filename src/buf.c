#include "buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(struct buf *b)
{
    memset(b, 0, sizeof *b);
}

void buf_release(struct buf *b)
{
    free(b->data);
    buf_init(b);
}

uint8_t *buf_take(struct buf *b, size_t *len_out)
{
    uint8_t *p = b->failed ? NULL : b->data;
    if (len_out)
        *len_out = b->failed ? 0 : b->len;
    if (b->failed)
        free(b->data);
    buf_init(b);
    return p;
}

bool buf_ok(const struct buf *b)
{
    return !b->failed;
}

uint8_t *buf_reserve(struct buf *b, size_t len)
{
    if (b->failed)
        return NULL;
    if (len > SIZE_MAX / 2 - b->len) {
        b->failed = true;
        return NULL;
    }
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + len + 1)
            cap *= 2;
        uint8_t *p = realloc(b->data, cap);
        if (!p) {
            b->failed = true;
            return NULL;
        }
        b->data = p;
        b->cap = cap;
    }
    return b->data + b->len;
}

void buf_commit(struct buf *b, size_t len)
{
    if (b->failed)
        return;
    b->len += len;
    b->data[b->len] = '\0'; /* reserve keeps one spare byte: text stays terminated */
}

void buf_append(struct buf *b, const void *data, size_t len)
{
    uint8_t *p = buf_reserve(b, len);
    if (!p)
        return;
    if (len)
        memcpy(p, data, len);
    buf_commit(b, len);
}

void buf_append_str(struct buf *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return;
    }
    uint8_t *p = buf_reserve(b, (size_t)n);
    if (!p)
        return;
    va_start(ap, fmt);
    vsnprintf((char *)p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf_commit(b, (size_t)n);
}

enum pt_err buf_read_file(struct buf *b, const char *path, size_t max_len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return pt_err_from_errno(errno);
    enum pt_err err = PT_OK;
    for (;;) {
        uint8_t *p = buf_reserve(b, 65536);
        if (!p) {
            err = PT_ERR_NOMEM;
            break;
        }
        size_t n = fread(p, 1, 65536, f);
        buf_commit(b, n);
        if (b->len > max_len) {
            err = PT_ERR_LIMIT;
            break;
        }
        if (n < 65536) {
            if (ferror(f))
                err = pt_err_from_errno(errno);
            break;
        }
    }
    fclose(f);
    return err;
}
