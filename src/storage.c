/*
 * storage: DESIGN
 *
 * The torrent is one long byte stream; file i covers
 * [files[i].offset, files[i].offset + files[i].length). Mapping a piece is a
 * binary search for the first file that contains its first byte, then a walk
 * forward. Files are created up front (so zero-length files exist and an
 * unwritable directory fails at once, not mid-download) and opened lazily on
 * first use, so a torrent of 100,000 files does not need 100,000 descriptors
 * until it uses them.
 */
#include "storage.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Most runs one piece can need: beyond this, pieces are written file by file
 * in several calls. A 16 MiB piece over 1-byte files would need millions. */
#define STORAGE_MAX_RUNS 64

struct storage {
    const struct metainfo *meta; /* immutable after open */
    char *dir;                   /* immutable after open */
    bool read_only;              /* immutable after open: seeding data we must not touch */
    /* Locking: `lock` guards fds[] (opening and closing a file). Reads and
     * writes use an fd outside the lock; an fd, once open, stays open until
     * storage_close, which runs after every user thread has been joined. */
    pthread_mutex_t lock;
    int *fds; /* -1 until first use */
};

size_t storage_map(const struct metainfo *m, uint64_t offset, uint64_t len,
                   struct storage_run *runs, size_t max)
{
    if (len == 0 || offset >= m->total_length || len > m->total_length - offset)
        return 0;
    /* First file whose end is past `offset` (zero-length files end where they start). */
    size_t lo = 0, hi = m->file_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->files[mid].offset + m->files[mid].length <= offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t n = 0;
    for (size_t i = lo; i < m->file_count && len > 0; i++) {
        const struct metainfo_file *f = &m->files[i];
        if (f->length == 0)
            continue;
        if (n == max)
            return 0;
        uint64_t in_file = offset - f->offset;
        uint64_t take = f->length - in_file < len ? f->length - in_file : len;
        runs[n++] = (struct storage_run){i, in_file, take};
        offset += take;
        len -= take;
    }
    return len == 0 ? n : 0;
}

static char *join_path(const char *dir, const char *rel)
{
    size_t n = strlen(dir) + strlen(rel) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, rel);
    return p;
}

/* mkdir -p for every directory in `path` before its last component. */
static enum pt_err make_parents(char *path, struct pt_errctx *ctx)
{
    for (char *s = strchr(path + 1, '/'); s; s = strchr(s + 1, '/')) {
        *s = '\0';
        int rc = mkdir(path, 0755);
        int saved = errno;
        struct stat st;
        bool ok = rc == 0 || (saved == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode));
        if (!ok) {
            enum pt_err e = pt_err_from_errno(saved == EEXIST ? ENOTDIR : saved);
            pt_fail(ctx, e, PT_NO_OFFSET, "%s: cannot create directory: %s", path,
                    strerror(saved == EEXIST ? ENOTDIR : saved));
            *s = '/';
            return e;
        }
        *s = '/';
    }
    return PT_OK;
}

/* Creates the file if missing; cuts it to size if it is longer than the torrent says. */
static enum pt_err create_file(const char *path, uint64_t length, struct pt_errctx *ctx)
{
    int fd = open(path, O_WRONLY | O_CREAT, 0644);
    if (fd < 0) {
        int saved = errno;
        return pt_fail(ctx, pt_err_from_errno(saved), PT_NO_OFFSET, "%s: %s", path,
                       strerror(saved));
    }
    struct stat st;
    enum pt_err e = PT_OK;
    if (fstat(fd, &st) == 0 && (uint64_t)st.st_size > length && ftruncate(fd, (off_t)length) < 0) {
        int saved = errno;
        e = pt_fail(ctx, pt_err_from_errno(saved), PT_NO_OFFSET, "%s: %s", path, strerror(saved));
    }
    close(fd);
    return e;
}

/* The struct with every fd closed (-1); NULL on no memory. */
static struct storage *storage_alloc(const struct metainfo *m, const char *dir,
                                     enum pt_err *err_out, struct pt_errctx *ctx)
{
    struct storage *s = calloc(1, sizeof *s);
    if (!s) {
        *err_out = pt_fail(ctx, PT_ERR_NOMEM, PT_NO_OFFSET, "out of memory");
        return NULL;
    }
    s->meta = m;
    pthread_mutex_init(&s->lock, NULL);
    s->fds = malloc(m->file_count * sizeof *s->fds);
    s->dir = strdup(dir);
    if (!s->fds || !s->dir) {
        *err_out = pt_fail(ctx, PT_ERR_NOMEM, PT_NO_OFFSET, "out of memory");
        storage_close(s);
        return NULL;
    }
    for (size_t i = 0; i < m->file_count; i++)
        s->fds[i] = -1;
    return s;
}

struct storage *storage_open_readonly(const struct metainfo *m, const char *dir,
                                      enum pt_err *err_out, struct pt_errctx *ctx)
{
    struct storage *s = storage_alloc(m, dir, err_out, ctx);
    if (!s)
        return NULL;
    s->read_only = true;
    for (size_t i = 0; i < m->file_count; i++) {
        char *path = join_path(dir, m->files[i].path);
        struct stat st;
        int rc = path ? stat(path, &st) : -1;
        int saved = path ? errno : ENOMEM;
        bool ok = rc == 0 && S_ISREG(st.st_mode);
        if (!ok)
            *err_out = pt_fail(ctx, rc == 0 ? PT_ERR_NOT_FOUND : pt_err_from_errno(saved),
                               PT_NO_OFFSET, "%s: %s", path ? path : m->files[i].path,
                               rc == 0 ? "not a regular file" : strerror(saved));
        free(path);
        if (!ok) {
            storage_close(s);
            return NULL;
        }
    }
    *err_out = PT_OK;
    return s;
}

struct storage *storage_open(const struct metainfo *m, const char *dir, enum pt_err *err_out,
                             struct pt_errctx *ctx)
{
    struct storage *s = storage_alloc(m, dir, err_out, ctx);
    if (!s)
        return NULL;
    /* DIR itself, and its parents, as `mkdir -p` would (aria2c does too). */
    char *probe = join_path(dir, ".");
    enum pt_err e = probe ? make_parents(probe, ctx) : PT_ERR_NOMEM;
    free(probe);
    if (e != PT_OK) {
        *err_out = e;
        storage_close(s);
        return NULL;
    }
    for (size_t i = 0; i < m->file_count; i++) {
        char *path = join_path(dir, m->files[i].path);
        e = path ? make_parents(path, ctx) : PT_ERR_NOMEM;
        if (e == PT_OK)
            e = create_file(path, m->files[i].length, ctx);
        free(path);
        if (e != PT_OK) {
            *err_out = e;
            storage_close(s);
            return NULL;
        }
    }
    *err_out = PT_OK;
    return s;
}

static int file_fd(struct storage *s, size_t i, struct pt_errctx *ctx, enum pt_err *err_out)
{
    pthread_mutex_lock(&s->lock);
    if (s->fds[i] < 0) {
        char *path = join_path(s->dir, s->meta->files[i].path);
        s->fds[i] = path ? open(path, s->read_only ? O_RDONLY : O_RDWR) : -1;
        int saved = path ? errno : ENOMEM;
        if (s->fds[i] < 0) {
            *err_out = pt_fail(ctx, pt_err_from_errno(saved), PT_NO_OFFSET, "%s: %s",
                               path ? path : s->meta->files[i].path, strerror(saved));
        }
        free(path);
    }
    int fd = s->fds[i];
    pthread_mutex_unlock(&s->lock);
    return fd;
}

/* Moves one run of bytes to or from its file, retrying short transfers. */
static enum pt_err transfer_run(struct storage *s, const struct storage_run *r, uint8_t *p,
                                bool write, struct pt_errctx *ctx)
{
    enum pt_err err = PT_OK;
    int fd = file_fd(s, r->file, ctx, &err);
    if (fd < 0)
        return err;
    uint64_t done = 0;
    while (done < r->len) {
        off_t at = (off_t)(r->file_off + done);
        ssize_t n = write ? pwrite(fd, p + done, r->len - done, at)
                          : pread(fd, p + done, r->len - done, at);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int saved = n < 0 ? errno : 0;
            enum pt_err e = n < 0 ? pt_err_from_errno(saved) : PT_ERR_NOT_FOUND;
            return pt_fail(ctx, e, PT_NO_OFFSET, "%s/%s: %s", s->dir,
                           s->meta->files[r->file].path,
                           n < 0 ? strerror(saved) : "data not on disk");
        }
        done += (uint64_t)n;
    }
    return PT_OK;
}

static enum pt_err transfer(struct storage *s, uint64_t offset, uint8_t *p, uint32_t len,
                            bool write, struct pt_errctx *ctx)
{
    /* Checked whole before the first byte moves: never a partial write. */
    if (offset > s->meta->total_length || len > s->meta->total_length - offset)
        return pt_fail(ctx, PT_ERR_LIMIT, PT_NO_OFFSET, "range outside the torrent");
    while (len > 0) {
        struct storage_run runs[STORAGE_MAX_RUNS];
        size_t n = storage_map(s->meta, offset, len, runs, STORAGE_MAX_RUNS);
        if (n == 0) {
            /* Too many files for one call: take just the first run's worth. */
            n = storage_map(s->meta, offset, 1, runs, 1);
            if (n == 0)
                return pt_fail(ctx, PT_ERR_LIMIT, PT_NO_OFFSET, "range outside the torrent");
            runs[0].len = s->meta->files[runs[0].file].length - runs[0].file_off;
            if (runs[0].len > len)
                runs[0].len = len;
        }
        for (size_t i = 0; i < n; i++) {
            enum pt_err e = transfer_run(s, &runs[i], p, write, ctx);
            if (e != PT_OK)
                return e;
            p += runs[i].len;
            offset += runs[i].len;
            len -= (uint32_t)runs[i].len;
        }
    }
    return PT_OK;
}

enum pt_err storage_write_piece(struct storage *s, uint32_t index, const uint8_t *data,
                                uint32_t len, struct pt_errctx *ctx)
{
    if (s->read_only)
        return pt_fail(ctx, PT_ERR_PERMISSION, PT_NO_OFFSET, "%s: opened read-only", s->dir);
    uint64_t offset = (uint64_t)index * s->meta->piece_length;
    return transfer(s, offset, (uint8_t *)data, len, true, ctx);
}

enum pt_err storage_read(struct storage *s, uint64_t offset, uint8_t *out, uint32_t len,
                         struct pt_errctx *ctx)
{
    return transfer(s, offset, out, len, false, ctx);
}

enum pt_err storage_sync(struct storage *s, struct pt_errctx *ctx)
{
    enum pt_err err = PT_OK;
    for (size_t i = 0; i < s->meta->file_count; i++) {
        pthread_mutex_lock(&s->lock); /* only to read the slot: never fsync under it */
        int fd = s->fds[i];
        pthread_mutex_unlock(&s->lock);
        if (fd >= 0 && fsync(fd) < 0 && err == PT_OK) {
            int saved = errno;
            err = pt_fail(ctx, pt_err_from_errno(saved), PT_NO_OFFSET, "%s/%s: fsync: %s",
                          s->dir, s->meta->files[i].path, strerror(saved));
        }
    }
    return err;
}

void storage_close(struct storage *s)
{
    if (!s)
        return;
    for (size_t i = 0; s->fds && i < s->meta->file_count; i++)
        if (s->fds[i] >= 0)
            close(s->fds[i]);
    pthread_mutex_destroy(&s->lock);
    free(s->fds);
    free(s->dir);
    free(s);
}
