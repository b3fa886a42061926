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
 *
 * Writing. The writer hands over a batch of pieces sorted by index; each run
 * of neighbours (index + 1, every piece but the last full-length) is one byte
 * range of the torrent, cut at file boundaries into segments, and each
 * segment is ONE pwritev whose iovecs point into the piece buffers: no copy,
 * and a run of 64 pieces inside one file is one system call instead of 64.
 * Short writes (a signal, a nearly full disk) continue where they stopped.
 * Reads stay one pread per segment: a peer asks for 16 KiB at a time.
 */
#include "storage.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* iovecs per pwritev. The system's limit is IOV_MAX (<limits.h>, which
 * glibc shows only to XSI programs; UIO_MAXIOV there), else 16, the POSIX
 * minimum. Capped at 64 to keep the array on the stack small: the writer
 * hands over at most 64 pieces at once (WRITER_BATCH_MAX), so 64 iovecs
 * still cover one file segment of a whole batch in one call. */
#if defined(IOV_MAX)
#define STORAGE_SYS_IOV IOV_MAX
#elif defined(UIO_MAXIOV)
#define STORAGE_SYS_IOV UIO_MAXIOV
#else
#define STORAGE_SYS_IOV 16
#endif
#define STORAGE_MAX_IOV (STORAGE_SYS_IOV < 64 ? STORAGE_SYS_IOV : 64)

struct storage {
    const struct metainfo *meta; /* immutable after open */
    char *dir;                   /* immutable after open */
    bool read_only;              /* immutable after open: seeding data we must not touch */
    /* Locking: `lock` guards fds[] (opening and closing a file). Reads and
     * writes use an fd outside the lock; an fd, once open, stays open until
     * storage_close, which runs after every user thread has been joined. */
    pthread_mutex_t lock;
    int *fds;                          /* -1 until first use */
    atomic_uint_fast64_t write_calls;  /* pwritev/pwrite calls so far; no lock */
    atomic_uint_fast64_t write_cpu_ns; /* CPU time inside them; no lock */
    atomic_bool write_cpu_known;       /* false once a thread CPU clock failed */
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
    atomic_init(&s->write_calls, 0);
    atomic_init(&s->write_cpu_ns, 0);
    atomic_init(&s->write_cpu_known, true);
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

/* Reads one run of bytes from its file, retrying short reads. */
static enum pt_err read_run(struct storage *s, const struct storage_run *r, uint8_t *p,
                            struct pt_errctx *ctx)
{
    enum pt_err err = PT_OK;
    int fd = file_fd(s, r->file, ctx, &err);
    if (fd < 0)
        return err;
    uint64_t done = 0;
    while (done < r->len) {
        ssize_t n = pread(fd, p + done, r->len - done, (off_t)(r->file_off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int saved = n < 0 ? errno : 0;
            enum pt_err e = n < 0 ? pt_err_from_errno(saved) : PT_ERR_NOT_FOUND;
            return pt_fail(ctx, e, PT_NO_OFFSET, "%s/%s: %s", s->dir, s->meta->files[r->file].path,
                           n < 0 ? strerror(saved) : "data not on disk");
        }
        done += (uint64_t)n;
    }
    return PT_OK;
}

/* The file segment holding torrent byte `offset`, at most `left` bytes long
 * (zero-length files skipped). One binary search per segment: a run of
 * pieces crosses few files, and this needs no array of runs. */
static bool next_segment(const struct metainfo *m, uint64_t offset, uint64_t left,
                         struct storage_run *seg)
{
    if (storage_map(m, offset, 1, seg, 1) != 1)
        return false;
    uint64_t rest = m->files[seg->file].length - seg->file_off;
    seg->len = rest < left ? rest : left;
    return true;
}

enum pt_err storage_read(struct storage *s, uint64_t offset, uint8_t *out, uint32_t len,
                         struct pt_errctx *ctx)
{
    /* Checked whole before the first byte moves. */
    if (offset > s->meta->total_length || len > s->meta->total_length - offset)
        return pt_fail(ctx, PT_ERR_LIMIT, PT_NO_OFFSET, "range outside the torrent");
    while (len > 0) {
        struct storage_run seg;
        if (!next_segment(s->meta, offset, len, &seg))
            return pt_fail(ctx, PT_ERR_LIMIT, PT_NO_OFFSET, "range outside the torrent");
        enum pt_err e = read_run(s, &seg, out, ctx);
        if (e != PT_OK)
            return e;
        out += seg.len;
        offset += seg.len;
        len -= (uint32_t)seg.len;
    }
    return PT_OK;
}

/* ---- writing: runs of neighbouring pieces, one pwritev per file segment ---- */

/* CPU time of the calling thread in ns, or -1 where the OS has no per-thread
 * CPU clock (it is optional in POSIX). */
static int64_t thread_cpu_ns(void)
{
#if defined(CLOCK_THREAD_CPUTIME_ID)
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0)
        return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
#endif
    return -1;
}

static ssize_t write_vec_raw(struct storage *s, int fd, const struct iovec *iov, int n, off_t at)
{
#if defined(STORAGE_NO_PWRITEV)
    ssize_t total = 0;
    for (int i = 0; i < n; i++) {
        atomic_fetch_add(&s->write_calls, 1);
        ssize_t w = pwrite(fd, iov[i].iov_base, iov[i].iov_len, at + total);
        if (w < 0)
            return total > 0 ? total : -1; /* errno is pwrite's */
        total += w;
        if ((size_t)w < iov[i].iov_len)
            break;
    }
    return total;
#else
    atomic_fetch_add(&s->write_calls, 1);
    return pwritev(fd, iov, n, at);
#endif
}

/* One system call, counted and timed (CPU). Where pwritev is missing, one
 * pwrite per iovec, stopping at the first short one (pwritev may return
 * short too, so the caller's loop is the same). */
static ssize_t write_vec(struct storage *s, int fd, const struct iovec *iov, int n, off_t at)
{
    int64_t t0 = thread_cpu_ns();
    ssize_t w = write_vec_raw(s, fd, iov, n, at);
    int64_t t1 = thread_cpu_ns();
    if (t0 >= 0 && t1 >= t0)
        atomic_fetch_add(&s->write_cpu_ns, (uint64_t)(t1 - t0));
    else
        atomic_store(&s->write_cpu_known, false);
    return w;
}

/* Writes iov[0..n) (n <= STORAGE_MAX_IOV) to file `file` at `at`, retrying
 * short writes (advancing through the iovecs, which it modifies) and EINTR.
 * Adds the bytes written to *done, also when it fails part way. Errors are
 * reported as for a pwrite: the path and strerror. */
static enum pt_err write_iov_all(struct storage *s, size_t file, int fd, struct iovec *iov,
                                 size_t n, uint64_t at, uint64_t *done, struct pt_errctx *ctx)
{
    size_t first = 0;
    while (first < n) {
        ssize_t w = write_vec(s, fd, iov + first, (int)(n - first), (off_t)at);
        int saved = errno;
        if (w < 0 && saved == EINTR)
            continue;
        if (w <= 0) /* 0 for a non-empty write: the file system gave up silently */
            return pt_fail(ctx, w < 0 ? pt_err_from_errno(saved) : PT_ERR_IO, PT_NO_OFFSET,
                           "%s/%s: %s", s->dir, s->meta->files[file].path,
                           w < 0 ? strerror(saved) : "nothing written");
        at += (uint64_t)w;
        *done += (uint64_t)w;
        size_t left = (size_t)w;
        while (first < n && left >= iov[first].iov_len)
            left -= iov[first++].iov_len;
        if (left > 0) {
            iov[first].iov_base = (uint8_t *)iov[first].iov_base + left;
            iov[first].iov_len -= left;
        }
    }
    return PT_OK;
}

/* A position inside a list of pieces: piece k, byte `at` of it. */
struct piece_cursor {
    const struct storage_piece *pieces;
    size_t k;
    uint32_t at;
};

/* Points up to STORAGE_MAX_IOV iovecs at the next bytes of the cursor, at
 * most `want` of them, and advances it. Returns the iovecs used; *bytes_out
 * the bytes they cover. Zero-length pieces give no iovec. */
static size_t fill_iov(struct piece_cursor *c, uint64_t want, struct iovec *iov,
                       uint64_t *bytes_out)
{
    size_t n = 0;
    uint64_t bytes = 0;
    while (bytes < want && n < STORAGE_MAX_IOV) {
        const struct storage_piece *p = &c->pieces[c->k];
        uint64_t take = p->len - c->at < want - bytes ? p->len - c->at : want - bytes;
        if (take > 0) {
            iov[n].iov_base = (void *)(p->data + c->at); /* pwritev's iovec is not const */
            iov[n++].iov_len = (size_t)take;
        }
        bytes += take;
        c->at += (uint32_t)take;
        if (c->at == p->len) {
            c->k++;
            c->at = 0;
        }
    }
    *bytes_out = bytes;
    return n;
}

/* Writes the next seg->len bytes of the cursor to one file segment: one
 * pwritev per STORAGE_MAX_IOV pieces (plus retries of short writes). Adds
 * the bytes written to *done, also when it fails part way. */
static enum pt_err write_segment(struct storage *s, const struct storage_run *seg,
                                 struct piece_cursor *c, uint64_t *done, struct pt_errctx *ctx)
{
    enum pt_err err = PT_OK;
    int fd = file_fd(s, seg->file, ctx, &err);
    if (fd < 0)
        return err;
    uint64_t seg_done = 0;
    while (err == PT_OK && seg_done < seg->len) {
        struct iovec iov[STORAGE_MAX_IOV];
        uint64_t bytes;
        size_t n = fill_iov(c, seg->len - seg_done, iov, &bytes);
        err = write_iov_all(s, seg->file, fd, iov, n, seg->file_off + seg_done, &seg_done, ctx);
    }
    *done += seg_done;
    return err;
}

/* How many pieces from the front of the run lie wholly in its first `done`
 * bytes. */
static size_t pieces_within(const struct storage_piece *pieces, size_t n, uint64_t done)
{
    size_t k = 0;
    uint64_t end = 0;
    while (k < n && end + pieces[k].len <= done)
        end += pieces[k++].len;
    return k;
}

/* How many pieces from the front of `pieces` form one byte range: each next
 * index is one more and each piece before it full-length (it ends where the
 * next begins). At least 1. */
static size_t contiguous_count(const struct storage *s, const struct storage_piece *pieces,
                               size_t count)
{
    size_t n = 1;
    while (n < count && pieces[n].index == pieces[n - 1].index + 1 &&
           pieces[n - 1].len == s->meta->piece_length)
        n++;
    return n;
}

/* Writes one contiguous run of n pieces, file segment by file segment.
 * *written_out: how many of its pieces are wholly on disk (all on PT_OK). */
static enum pt_err write_run(struct storage *s, const struct storage_piece *pieces, size_t n,
                             size_t *written_out, struct pt_errctx *ctx)
{
    uint64_t offset = (uint64_t)pieces[0].index * s->meta->piece_length;
    uint64_t left = 0;
    for (size_t k = 0; k < n; k++)
        left += pieces[k].len;
    struct piece_cursor c = {pieces, 0, 0};
    enum pt_err err = PT_OK;
    uint64_t done = 0; /* bytes of the run on disk */
    while (err == PT_OK && left > 0) {
        struct storage_run seg;
        if (!next_segment(s->meta, offset, left, &seg)) {
            err = pt_fail(ctx, PT_ERR_LIMIT, PT_NO_OFFSET, "range outside the torrent");
            break;
        }
        err = write_segment(s, &seg, &c, &done, ctx);
        offset += seg.len;
        left -= seg.len;
    }
    *written_out = err == PT_OK ? n : pieces_within(pieces, n, done);
    return err;
}

/* Every piece inside the torrent, before the first byte moves: a bad one
 * never leaves a batch half written. */
static enum pt_err check_pieces(const struct storage *s, const struct storage_piece *pieces,
                                size_t count, struct pt_errctx *ctx)
{
    uint64_t total = s->meta->total_length;
    for (size_t k = 0; k < count; k++) {
        uint64_t offset = (uint64_t)pieces[k].index * s->meta->piece_length;
        if (offset > total || pieces[k].len > total - offset)
            return pt_fail(ctx, PT_ERR_LIMIT, PT_NO_OFFSET, "piece %u: range outside the torrent",
                           pieces[k].index);
    }
    return PT_OK;
}

enum pt_err storage_write_pieces(struct storage *s, const struct storage_piece *pieces,
                                 size_t count, size_t *written_out, struct pt_errctx *ctx)
{
    size_t done = 0;
    enum pt_err err = PT_OK;
    if (s->read_only)
        err = pt_fail(ctx, PT_ERR_PERMISSION, PT_NO_OFFSET, "%s: opened read-only", s->dir);
    if (err == PT_OK)
        err = check_pieces(s, pieces, count, ctx);
    while (err == PT_OK && done < count) {
        size_t n = contiguous_count(s, pieces + done, count - done);
        size_t ok = 0;
        err = write_run(s, pieces + done, n, &ok, ctx);
        done += ok;
    }
    if (written_out)
        *written_out = done;
    return err;
}

enum pt_err storage_write_piece(struct storage *s, uint32_t index, const uint8_t *data,
                                uint32_t len, struct pt_errctx *ctx)
{
    struct storage_piece p = {index, len, data};
    return storage_write_pieces(s, &p, 1, NULL, ctx);
}

uint64_t storage_write_calls(struct storage *s)
{
    return atomic_load(&s->write_calls);
}

double storage_write_cpu_seconds(struct storage *s)
{
#if defined(CLOCK_THREAD_CPUTIME_ID)
    if (atomic_load(&s->write_cpu_known))
        return (double)atomic_load(&s->write_cpu_ns) / 1e9;
#endif
    (void)s;
    return -1;
}

/* ---- advice to the page cache ---- */

void storage_advise_willneed(struct storage *s, uint64_t offset, uint64_t len)
{
#if defined(POSIX_FADV_WILLNEED)
    if (offset > s->meta->total_length || len > s->meta->total_length - offset)
        return;
    while (len > 0) {
        struct storage_run seg;
        if (!next_segment(s->meta, offset, len, &seg))
            return;
        struct pt_errctx ignored = {PT_NO_OFFSET, ""};
        enum pt_err err = PT_OK;
        int fd = file_fd(s, seg.file, &ignored, &err); /* the read that follows opens it anyway */
        if (fd >= 0) /* advice only: its result changes nothing we do */
            (void)posix_fadvise(fd, (off_t)seg.file_off, (off_t)seg.len, POSIX_FADV_WILLNEED);
        offset += seg.len;
        len -= seg.len;
    }
#else
    (void)s;
    (void)offset;
    (void)len;
#endif
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
            err = pt_fail(ctx, pt_err_from_errno(saved), PT_NO_OFFSET, "%s/%s: fsync: %s", s->dir,
                          s->meta->files[i].path, strerror(saved));
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
