/*
 * resume: DESIGN
 *
 * Saving. The caller has fsynced the data files (storage_sync) before it
 * calls resume_save, so every piece in the bitfield is already durable. We
 * stat each file for its size and mtime (seconds and nanoseconds), encode, and
 * replace the old resume file atomically: write NAME.tmp, fsync it, rename it
 * over NAME, fsync the directory so the rename itself survives a crash.
 *
 * Loading. Everything in the file is checked before anything is believed: the
 * version, the info hash, the bitfield's length and spare bits, and each
 * file's recorded (size, mtime, mtime-ns) against a fresh stat. A file that
 * was missing at save time is recorded with length -1 and must still be
 * missing. Finally no piece may be marked whose bytes are not all on disk.
 * Error codes, for a caller that only needs to know "recheck or not":
 *   PT_ERR_NOT_FOUND       no resume file (the usual first start)
 *   PT_ERR_LIMIT           the file is larger than any valid one could be
 *   PT_ERR_BENCODE_*       the file is not one bencoded value (torn, garbage)
 *   PT_ERR_META_BAD_VALUE  it decodes but is wrong, foreign or stale
 *   others                 reading failed (PT_ERR_IO, PT_ERR_PERMISSION...)
 * The mtime check is only as fine as the file system's timestamps: a write
 * within the same tick as the save, keeping the size, goes unnoticed.
 *
 * Rechecking. The pieces are a shared pool: each worker claims the next
 * unchecked index with a compare-and-swap on `next`, so a thread that lands on
 * missing files (skipped without reading) simply claims more, and the reads
 * of all threads together move through the files roughly in order. A piece's
 * verdict goes to ok[index], one byte per piece: bits of neighbouring pieces
 * share a byte of the bitfield, bytes of ok[] do not, so workers never write
 * the same memory. The calling thread folds ok[] into the bitfield after
 * joining (pthread_join orders those writes before its reads). Meanwhile it
 * polls an atomic counter of checked pieces and reports progress.
 *
 * Recheck only reads: files are opened O_RDONLY, and a missing file stays
 * missing (storage_read would need storage_open, which creates files).
 */
#include "resume.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bencode.h"
#include "buf.h"
#include "sha1.h"
#include "storage.h"

/* A valid resume file is the bitfield plus ~60 bytes per file; 64 MiB on top
 * of the bitfield holds a million files and keeps a bogus file from being
 * read whole. */
#define RESUME_MAX_EXTRA (64u << 20)
/* Runs mapped per storage_map call in recheck; a piece over more files than
 * this is mapped in several calls. */
#define RESUME_MAX_RUNS 16
/* More hashing threads than this only queue on the disk. */
#define RESUME_MAX_THREADS 64
/* Each thread holds one piece in memory: with 16 MiB pieces this still allows
 * 16 threads, with 256 MiB pieces (the metainfo cap) one. */
#define RESUME_MAX_BUFFERS (256u << 20)
/* The calling thread wakes this often to look at the counters, and calls
 * progress() at most every RESUME_PROGRESS_MS: a few times a second. */
#define RESUME_POLL_MS 10
#define RESUME_PROGRESS_MS 200

#if defined(__APPLE__)
#define RESUME_MTIME(st) ((st).st_mtimespec)
#else
#define RESUME_MTIME(st) ((st).st_mtim) /* POSIX 2008 */
#endif

/* ---- small helpers ---- */

static bool bit_get(const uint8_t *bf, uint32_t i)
{
    return (bf[i >> 3] >> (7 - (i & 7))) & 1; /* bit 0 is the high bit of byte 0 (BEP 3) */
}

static void bit_set(uint8_t *bf, uint32_t i)
{
    bf[i >> 3] |= (uint8_t)(0x80u >> (i & 7));
}

static size_t bitfield_len(const struct metainfo *m)
{
    return ((size_t)m->piece_count + 7) / 8;
}

static char *join_path(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s%s%s", a, b, c);
    return p;
}

/* What a file looks like on disk: length -1 (and times 0) when it is missing
 * or not a regular file. */
struct stamp {
    int64_t length; /* bytes */
    int64_t mtime;  /* seconds since the epoch */
    int64_t mtime_ns;
};

static struct stamp stamp_of(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return (struct stamp){-1, 0, 0};
    return (struct stamp){(int64_t)st.st_size, (int64_t)RESUME_MTIME(st).tv_sec,
                          (int64_t)RESUME_MTIME(st).tv_nsec};
}

/* DIR/files[i].path for every file (free with free_paths), or NULL. */
static char **file_paths(const struct metainfo *m, const char *dir)
{
    char **paths = calloc(m->file_count ? m->file_count : 1, sizeof *paths);
    if (!paths)
        return NULL;
    for (size_t i = 0; i < m->file_count; i++) {
        paths[i] = join_path(dir, "/", m->files[i].path);
        if (!paths[i]) {
            for (size_t k = 0; k < i; k++)
                free(paths[k]);
            free(paths);
            return NULL;
        }
    }
    return paths;
}

static void free_paths(char **paths, size_t n)
{
    if (!paths)
        return;
    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
}

char *resume_path(const struct metainfo *m, const char *dir)
{
    char hex[2 * SHA1_LEN + 1];
    sha1_hex(m->info_hash, hex);
    char name[sizeof hex + 16];
    snprintf(name, sizeof name, "/%s.resume", hex);
    char *sub = join_path(dir, "/", RESUME_DIR);
    char *path = sub ? join_path(sub, name, "") : NULL;
    free(sub);
    return path;
}

/* ---- save ---- */

static enum pt_err encode_state(const struct metainfo *m, const char *dir,
                                const struct resume_state *st, struct buf *out,
                                struct pt_errctx *ctx)
{
    if (st->uploaded > INT64_MAX || st->downloaded > INT64_MAX)
        return pt_fail(ctx, PT_ERR_LIMIT, PT_NO_OFFSET, "resume: byte counters out of range");
    char **paths = file_paths(m, dir);
    if (!paths)
        return pt_fail(ctx, PT_ERR_NOMEM, PT_NO_OFFSET, "out of memory");
    /* Keys in byte order: downloaded files info-hash pieces uploaded version. */
    bencode_put_dict(out);
    bencode_put_cstr(out, "downloaded");
    bencode_put_int(out, (int64_t)st->downloaded);
    bencode_put_cstr(out, "files");
    bencode_put_list(out);
    for (size_t i = 0; i < m->file_count; i++) {
        struct stamp s = stamp_of(paths[i]);
        bencode_put_dict(out);
        bencode_put_cstr(out, "length");
        bencode_put_int(out, s.length);
        bencode_put_cstr(out, "mtime");
        bencode_put_int(out, s.mtime);
        bencode_put_cstr(out, "mtime-ns");
        bencode_put_int(out, s.mtime_ns);
        bencode_put_end(out);
    }
    bencode_put_end(out);
    bencode_put_cstr(out, "info-hash");
    bencode_put_str(out, m->info_hash, SHA1_LEN);
    bencode_put_cstr(out, "pieces");
    bencode_put_str(out, st->bitfield, bitfield_len(m));
    bencode_put_cstr(out, "uploaded");
    bencode_put_int(out, (int64_t)st->uploaded);
    bencode_put_cstr(out, "version");
    bencode_put_int(out, RESUME_VERSION);
    bencode_put_end(out);
    free_paths(paths, m->file_count);
    if (!buf_ok(out))
        return pt_fail(ctx, PT_ERR_NOMEM, PT_NO_OFFSET, "out of memory");
    return PT_OK;
}

static enum pt_err errno_fail(struct pt_errctx *ctx, int saved, const char *what, const char *path)
{
    return pt_fail(ctx, pt_err_from_errno(saved), PT_NO_OFFSET, "%s: %s: %s", path, what,
                   strerror(saved));
}

/* Writes all of data to a new file `path` and fsyncs it. */
static enum pt_err write_synced(const char *path, const uint8_t *data, size_t len,
                                struct pt_errctx *ctx)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return errno_fail(ctx, errno, "cannot create", path);
    enum pt_err err = PT_OK;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, data + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err = errno_fail(ctx, errno, "write", path);
            goto out;
        }
        done += (size_t)n;
    }
    if (fsync(fd) != 0)
        err = errno_fail(ctx, errno, "fsync", path);
out:
    /* close() can report a deferred write error (NFS): it counts. */
    if (close(fd) != 0 && err == PT_OK)
        err = errno_fail(ctx, errno, "close", path);
    return err;
}

/* fsync a directory so a rename inside it is durable. File systems that
 * cannot sync a directory say EINVAL; there is nothing more we can do. */
static enum pt_err sync_dir(const char *path, struct pt_errctx *ctx)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno_fail(ctx, errno, "cannot open directory", path);
    enum pt_err err = PT_OK;
    if (fsync(fd) != 0 && errno != EINVAL)
        err = errno_fail(ctx, errno, "fsync", path);
    close(fd);
    return err;
}

enum pt_err resume_save(const struct metainfo *m, const char *dir, const struct resume_state *st,
                        struct pt_errctx *ctx)
{
    struct buf b;
    buf_init(&b);
    char *sub = join_path(dir, "/", RESUME_DIR);
    char *path = resume_path(m, dir);
    char *tmp = path ? join_path(path, ".tmp", "") : NULL;
    bool tmp_made = false;
    enum pt_err err = PT_OK;
    if (!sub || !path || !tmp) {
        err = pt_fail(ctx, PT_ERR_NOMEM, PT_NO_OFFSET, "out of memory");
        goto out;
    }
    if (mkdir(sub, 0755) != 0 && errno != EEXIST) {
        err = errno_fail(ctx, errno, "cannot create directory", sub);
        goto out;
    }
    err = encode_state(m, dir, st, &b, ctx);
    if (err != PT_OK)
        goto out;
    tmp_made = true;
    err = write_synced(tmp, b.data, b.len, ctx);
    if (err != PT_OK)
        goto out;
    if (rename(tmp, path) != 0) {
        err = errno_fail(ctx, errno, "cannot rename to resume file", tmp);
        goto out;
    }
    tmp_made = false;
    err = sync_dir(sub, ctx);
out:
    if (tmp_made)
        unlink(tmp);
    buf_release(&b);
    free(tmp);
    free(path);
    free(sub);
    return err;
}

/* ---- load ---- */

/* The INT under `key`, or NULL after recording why in ctx. */
static const struct bencode_node *get_int(const struct bencode_doc *doc,
                                          const struct bencode_node *dict, const char *key,
                                          const char *path, struct pt_errctx *ctx)
{
    const struct bencode_node *n = bencode_dict_get(doc, dict, key);
    if (!n || n->type != BENCODE_INT) {
        pt_fail(ctx, PT_ERR_META_BAD_VALUE, dict->start, "%s: `%s` is %s", path, key,
                n ? "not an integer" : "missing");
        return NULL;
    }
    return n;
}

/* Checks the `files` list against the files on disk now. */
static enum pt_err check_files(const struct metainfo *m, const char *dir,
                               const struct bencode_doc *doc, const struct bencode_node *files,
                               const char *path, struct pt_errctx *ctx)
{
    if (!files || files->type != BENCODE_LIST)
        return pt_fail(ctx, PT_ERR_META_BAD_VALUE, PT_NO_OFFSET, "%s: `files` is %s", path,
                       files ? "not a list" : "missing");
    if (files->count != m->file_count)
        return pt_fail(ctx, PT_ERR_META_BAD_VALUE, files->start,
                       "%s: lists %u files, the torrent has %zu", path, (unsigned)files->count,
                       m->file_count);
    const struct bencode_node *f = bencode_first(files);
    for (size_t i = 0; i < m->file_count; i++, f = bencode_next(doc, f)) {
        if (f->type != BENCODE_DICT)
            return pt_fail(ctx, PT_ERR_META_BAD_VALUE, f->start, "%s: file %zu is not a dict",
                           path, i);
        const struct bencode_node *len = get_int(doc, f, "length", path, ctx);
        const struct bencode_node *sec = len ? get_int(doc, f, "mtime", path, ctx) : NULL;
        const struct bencode_node *ns = sec ? get_int(doc, f, "mtime-ns", path, ctx) : NULL;
        if (!ns)
            return PT_ERR_META_BAD_VALUE;
        char *fpath = join_path(dir, "/", m->files[i].path);
        if (!fpath)
            return pt_fail(ctx, PT_ERR_NOMEM, PT_NO_OFFSET, "out of memory");
        struct stamp now = stamp_of(fpath);
        enum pt_err err = PT_OK;
        if (len->ival != now.length) {
            if (len->ival < 0)
                err = pt_fail(ctx, PT_ERR_META_BAD_VALUE, len->start,
                              "resume file is stale: %s appeared", fpath);
            else if (now.length < 0)
                err = pt_fail(ctx, PT_ERR_META_BAD_VALUE, len->start,
                              "resume file is stale: %s is missing", fpath);
            else
                err = pt_fail(ctx, PT_ERR_META_BAD_VALUE, len->start,
                              "resume file is stale: size of %s changed (%lld, now %lld)", fpath,
                              (long long)len->ival, (long long)now.length);
        } else if (sec->ival != now.mtime || ns->ival != now.mtime_ns) {
            err = pt_fail(ctx, PT_ERR_META_BAD_VALUE, sec->start,
                          "resume file is stale: mtime of %s changed", fpath);
        }
        free(fpath);
        if (err != PT_OK)
            return err;
    }
    return PT_OK;
}

/* No piece may be marked that needs bytes past the end of a file as it is on
 * disk (recorded sizes equal the current ones once check_files passed). */
static enum pt_err check_marked_on_disk(const struct metainfo *m, const uint8_t *bf,
                                        const struct bencode_doc *doc,
                                        const struct bencode_node *files, const char *path,
                                        struct pt_errctx *ctx)
{
    const struct bencode_node *f = bencode_first(files);
    for (size_t i = 0; i < m->file_count; i++, f = bencode_next(doc, f)) {
        const struct metainfo_file *mf = &m->files[i];
        int64_t on_disk = bencode_dict_get(doc, f, "length")->ival;
        uint64_t have = on_disk < 0 ? 0 : (uint64_t)on_disk;
        if (mf->length == 0 || have >= mf->length)
            continue;
        uint32_t first = (uint32_t)((mf->offset + have) / m->piece_length);
        uint32_t last = (uint32_t)((mf->offset + mf->length - 1) / m->piece_length);
        for (uint32_t p = first; p <= last; p++) {
            if (bit_get(bf, p))
                return pt_fail(ctx, PT_ERR_META_BAD_VALUE, PT_NO_OFFSET,
                               "%s: piece %u is marked but %s is %s", path, p, mf->path,
                               on_disk < 0 ? "missing" : "short");
        }
    }
    return PT_OK;
}

/* Validates the decoded document; on success copies the state into *st. */
static enum pt_err parse_state(const struct metainfo *m, const char *dir,
                               const struct bencode_doc *doc, const char *path,
                               struct resume_state *st, struct pt_errctx *ctx)
{
    const struct bencode_node *root = bencode_root(doc);
    if (root->type != BENCODE_DICT)
        return pt_fail(ctx, PT_ERR_META_BAD_VALUE, 0, "%s: not a dictionary", path);
    if (doc->unsorted_keys)
        return pt_fail(ctx, PT_ERR_META_BAD_VALUE, PT_NO_OFFSET, "%s: keys out of order", path);
    const struct bencode_node *version = get_int(doc, root, "version", path, ctx);
    if (!version)
        return PT_ERR_META_BAD_VALUE;
    if (version->ival != RESUME_VERSION)
        return pt_fail(ctx, PT_ERR_META_BAD_VALUE, version->start,
                       "%s: version %lld, expected %d", path, (long long)version->ival,
                       RESUME_VERSION);
    const struct bencode_node *hash = bencode_dict_get(doc, root, "info-hash");
    if (!hash || hash->type != BENCODE_STR || hash->slen != SHA1_LEN ||
        memcmp(hash->str, m->info_hash, SHA1_LEN) != 0)
        return pt_fail(ctx, PT_ERR_META_BAD_VALUE, hash ? hash->start : PT_NO_OFFSET,
                       "%s: belongs to another torrent (info hash)", path);
    const struct bencode_node *pieces = bencode_dict_get(doc, root, "pieces");
    size_t bf_len = bitfield_len(m);
    if (!pieces || pieces->type != BENCODE_STR || pieces->slen != bf_len)
        return pt_fail(ctx, PT_ERR_META_BAD_VALUE, pieces ? pieces->start : PT_NO_OFFSET,
                       "%s: `pieces` is not a bitfield of %zu bytes", path, bf_len);
    for (uint32_t i = m->piece_count; i < bf_len * 8; i++) {
        if (bit_get(pieces->str, i))
            return pt_fail(ctx, PT_ERR_META_BAD_VALUE, pieces->start,
                           "%s: `pieces` has spare bits set", path);
    }
    const struct bencode_node *up = get_int(doc, root, "uploaded", path, ctx);
    const struct bencode_node *down = up ? get_int(doc, root, "downloaded", path, ctx) : NULL;
    if (!down)
        return PT_ERR_META_BAD_VALUE;
    if (up->ival < 0 || down->ival < 0)
        return pt_fail(ctx, PT_ERR_META_BAD_VALUE, up->ival < 0 ? up->start : down->start,
                       "%s: negative byte counter", path);
    const struct bencode_node *files = bencode_dict_get(doc, root, "files");
    enum pt_err err = check_files(m, dir, doc, files, path, ctx);
    if (err == PT_OK)
        err = check_marked_on_disk(m, pieces->str, doc, files, path, ctx);
    if (err != PT_OK)
        return err;
    st->bitfield = malloc(bf_len);
    if (!st->bitfield)
        return pt_fail(ctx, PT_ERR_NOMEM, PT_NO_OFFSET, "out of memory");
    memcpy(st->bitfield, pieces->str, bf_len);
    st->uploaded = (uint64_t)up->ival;
    st->downloaded = (uint64_t)down->ival;
    return PT_OK;
}

enum pt_err resume_load(const struct metainfo *m, const char *dir, struct resume_state *st,
                        struct pt_errctx *ctx)
{
    memset(st, 0, sizeof *st);
    struct buf b;
    buf_init(&b);
    struct bencode_doc doc = {0};
    enum pt_err err = PT_OK;
    char *path = resume_path(m, dir);
    if (!path) {
        err = pt_fail(ctx, PT_ERR_NOMEM, PT_NO_OFFSET, "out of memory");
        goto out;
    }
    err = buf_read_file(&b, path, RESUME_MAX_EXTRA + bitfield_len(m));
    if (err == PT_ERR_NOT_FOUND) {
        pt_fail(ctx, err, PT_NO_OFFSET, "%s: no resume file", path);
        goto out;
    }
    if (err != PT_OK) {
        pt_fail(ctx, err, PT_NO_OFFSET, "%s: cannot read: %s", path, pt_strerror(err));
        goto out;
    }
    size_t off = 0;
    err = bencode_decode(b.data ? b.data : (const uint8_t *)"", b.len, &doc, &off);
    if (err != PT_OK) {
        pt_fail(ctx, err, off, "%s: corrupt at byte %zu: %s", path, off, pt_strerror(err));
        goto out;
    }
    err = parse_state(m, dir, &doc, path, st, ctx);
out:
    if (err != PT_OK) {
        free(st->bitfield);
        memset(st, 0, sizeof *st);
    }
    bencode_release(&doc);
    buf_release(&b);
    free(path);
    return err;
}

/* ---- recheck ---- */

/* Shared by the workers. Locking: none needed. m, paths, avail and stop are
 * read-only while workers run; next, checked and running are atomics; ok[i] is
 * written only by the worker that claimed piece i and read by the caller after
 * joining. */
struct recheck {
    const struct metainfo *m;
    char **paths;    /* DIR/files[i].path */
    int64_t *avail;  /* bytes of file i on disk, -1 if missing */
    const _Atomic(_Bool) *stop; /* may be NULL */
    uint8_t *ok;     /* piece_count bytes: 1 = verified */
    atomic_uint_least32_t next;    /* first unclaimed piece */
    atomic_uint_least32_t checked; /* pieces finished (good or not) */
    atomic_uint running;           /* workers that have not returned yet */
};

/* One worker: private buffer and a one-entry cache of the last opened file
 * (consecutive pieces mostly live in the same file). */
struct recheck_worker {
    struct recheck *r;
    uint8_t *buf; /* piece_length bytes */
    pthread_t thread;
    int fd;         /* -1 or open O_RDONLY on paths[fd_file] */
    size_t fd_file;
};

/* True if every byte of torrent range [off, off+len) is inside a file on disk. */
static bool range_on_disk(const struct recheck *r, uint64_t off, uint64_t len)
{
    const struct metainfo *m = r->m;
    struct storage_run first;
    if (storage_map(m, off, 1, &first, 1) != 1)
        return false;
    uint64_t end = off + len;
    for (size_t i = first.file; i < m->file_count && m->files[i].offset < end; i++) {
        const struct metainfo_file *f = &m->files[i];
        if (f->length == 0)
            continue;
        uint64_t f_end = f->offset + f->length;
        uint64_t need = (end < f_end ? end : f_end) - f->offset; /* a prefix of the file */
        if (r->avail[i] < 0 || (uint64_t)r->avail[i] < need)
            return false;
    }
    return true;
}

/* The workers together read each file from start to end (see the design
 * comment): tell the kernel, which then reads further ahead (Linux doubles
 * its readahead window) and the disk streams instead of seeking. Advice
 * only, so its result is ignored; fd is always an open descriptor here. Where
 * posix_fadvise is missing (macOS, OpenBSD) there is nothing to do. */
static void advise_sequential(int fd)
{
#if defined(POSIX_FADV_SEQUENTIAL)
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL); /* length 0: to the end */
#else
    (void)fd;
#endif
}

static bool read_run(struct recheck_worker *w, const struct storage_run *run, uint8_t *p)
{
    if (w->fd < 0 || w->fd_file != run->file) {
        if (w->fd >= 0)
            close(w->fd);
        w->fd = open(w->r->paths[run->file], O_RDONLY | O_CLOEXEC);
        w->fd_file = run->file;
        if (w->fd < 0)
            return false;
        advise_sequential(w->fd);
    }
    uint64_t done = 0;
    while (done < run->len) {
        ssize_t n = pread(w->fd, p + done, run->len - done, (off_t)(run->file_off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false; /* an error, or the file shrank since we looked */
        done += (uint64_t)n;
    }
    return true;
}

static bool piece_ok(struct recheck_worker *w, uint32_t index)
{
    const struct metainfo *m = w->r->m;
    uint64_t off = (uint64_t)index * m->piece_length;
    uint32_t len = metainfo_piece_size(m, index);
    if (!range_on_disk(w->r, off, len))
        return false;
    uint8_t *p = w->buf;
    uint64_t left = len;
    while (left > 0) {
        struct storage_run runs[RESUME_MAX_RUNS];
        size_t n = storage_map(m, off, left, runs, RESUME_MAX_RUNS);
        if (n == 0) {
            /* More files than runs[] holds: take the first file's share. */
            n = storage_map(m, off, 1, runs, 1);
            if (n == 0)
                return false;
            uint64_t rest = m->files[runs[0].file].length - runs[0].file_off;
            runs[0].len = rest < left ? rest : left;
        }
        for (size_t k = 0; k < n; k++) {
            if (!read_run(w, &runs[k], p))
                return false;
            p += runs[k].len;
            off += runs[k].len;
            left -= runs[k].len;
        }
    }
    uint8_t digest[SHA1_LEN];
    return sha1(w->buf, len, digest) &&
           memcmp(digest, m->piece_hashes + (size_t)index * SHA1_LEN, SHA1_LEN) == 0;
}

/* Claims piece indexes until none are left or *stop is set. */
static void recheck_run(struct recheck_worker *w)
{
    struct recheck *r = w->r;
    for (;;) {
        if (r->stop && atomic_load(r->stop))
            break;
        uint_least32_t i = atomic_load(&r->next);
        bool claimed = false;
        while (i < r->m->piece_count && !claimed)
            claimed = atomic_compare_exchange_weak(&r->next, &i, i + 1);
        if (!claimed)
            break;
        r->ok[i] = piece_ok(w, (uint32_t)i);
        atomic_fetch_add(&r->checked, 1);
    }
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
}

static void *recheck_thread_main(void *arg)
{
    struct recheck_worker *w = arg;
    recheck_run(w);
    atomic_fetch_sub(&w->r->running, 1);
    return NULL;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* How many workers: asked (0 = cores), then at least 1, at most the pieces,
 * RESUME_MAX_THREADS and what RESUME_MAX_BUFFERS allows. */
static unsigned worker_count(const struct metainfo *m, unsigned threads)
{
    unsigned long n = threads;
    if (n == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n = cores > 0 ? (unsigned long)cores : 1;
    }
    unsigned long by_mem = RESUME_MAX_BUFFERS / m->piece_length;
    if (n > by_mem)
        n = by_mem;
    if (n > RESUME_MAX_THREADS)
        n = RESUME_MAX_THREADS;
    if (n > m->piece_count)
        n = m->piece_count;
    return n ? (unsigned)n : 1;
}

/* Returns PT_OK, PT_ERR_STOPPED, or PT_ERR_NOMEM (then have_out is all zero). */
enum pt_err resume_recheck(const struct metainfo *m, const char *dir, unsigned threads,
                           uint8_t *have_out, void (*progress)(void *arg, uint32_t checked,
                                                               uint32_t total),
                           void *arg, const _Atomic(_Bool) *stop)
{
    memset(have_out, 0, bitfield_len(m));
    if (stop && atomic_load(stop))
        return PT_ERR_STOPPED;
    unsigned n = worker_count(m, threads);
    struct recheck r = {.m = m, .stop = stop};
    atomic_init(&r.next, 0);
    atomic_init(&r.checked, 0);
    atomic_init(&r.running, 0);
    struct recheck_worker *w = calloc(n, sizeof *w);
    r.paths = file_paths(m, dir);
    r.avail = calloc(m->file_count ? m->file_count : 1, sizeof *r.avail);
    r.ok = calloc(m->piece_count ? m->piece_count : 1, 1);
    enum pt_err err = PT_OK;
    if (!w || !r.paths || !r.avail || !r.ok) {
        err = PT_ERR_NOMEM;
        goto out;
    }
    /* One stat per file, before any thread starts: shared read-only after. */
    for (size_t i = 0; i < m->file_count; i++)
        r.avail[i] = stamp_of(r.paths[i]).length;
    /* Buffers first: a thread that could not get one is simply not started. */
    unsigned bufs = 0;
    while (bufs < n) {
        w[bufs] = (struct recheck_worker){.r = &r, .fd = -1};
        w[bufs].buf = malloc(m->piece_length);
        if (!w[bufs].buf)
            break;
        bufs++;
    }
    if (bufs == 0) {
        err = PT_ERR_NOMEM;
        goto out;
    }
    unsigned started = 0;
    atomic_store(&r.running, bufs);
    while (started < bufs && pthread_create(&w[started].thread, NULL, recheck_thread_main,
                                            &w[started]) == 0)
        started++;
    atomic_fetch_sub(&r.running, bufs - started);
    if (started == 0)
        recheck_run(&w[0]); /* no thread at all: do the work here */

    uint64_t last = now_ms();
    while (atomic_load(&r.running) > 0) {
        nanosleep(&(struct timespec){0, RESUME_POLL_MS * 1000000L}, NULL);
        if (progress && now_ms() - last >= RESUME_PROGRESS_MS) {
            progress(arg, (uint32_t)atomic_load(&r.checked), m->piece_count);
            last = now_ms();
        }
    }
    for (unsigned i = 0; i < started; i++)
        pthread_join(w[i].thread, NULL);
    uint32_t checked = (uint32_t)atomic_load(&r.checked);
    if (progress)
        progress(arg, checked, m->piece_count);
    /* Verdicts of pieces checked before a stop are still true: keep them. */
    for (uint32_t i = 0; i < m->piece_count; i++)
        if (r.ok[i])
            bit_set(have_out, i);
    if (checked < m->piece_count)
        err = PT_ERR_STOPPED;
out:
    if (w)
        for (unsigned i = 0; i < n; i++)
            free(w[i].buf);
    free(w);
    free(r.ok);
    free(r.avail);
    free_paths(r.paths, m->file_count);
    return err;
}
