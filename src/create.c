/*
 * create: DESIGN
 *
 * Four steps, each finished before the next starts:
 *
 *  1. List. A file is one entry. A directory is walked with opendir/readdir
 *     and lstat, never following a symlink below PATH (symlinks, FIFOs,
 *     sockets and devices are left out and counted, and so is an existing
 *     OUT inside the tree, which the new torrent is about to replace); each
 *     regular file is recorded with its size and mtime. The list is then sorted by relative
 *     path with strcmp: byte order, as mktorrent does, so the result never
 *     depends on readdir's order. Each directory's names are read and the
 *     directory closed before descending, so the walk holds one descriptor.
 *
 *  2. Hash. The piece range is cut into one contiguous slice per thread (each
 *     thread reads its part of the data front to back). A thread maps a
 *     piece's first byte to its file by a binary search over the files' start
 *     offsets, then reads with pread on into the following files when the
 *     piece spans several, and writes the piece's SHA-1 at 20 * index in the
 *     shared array `hashes`.
 *     No lock: the slices are disjoint, so no two threads write the same
 *     bytes, nobody reads the array while they run, and the main thread reads
 *     it only after pthread_join, which orders every thread's writes before
 *     that read. Everything else the threads see is immutable while they run,
 *     except the `failed` flag, an atomic that lets the others stop early
 *     after one hits an error.
 *
 *  3. Check. A file is checked when a thread opens it (still a regular file
 *     of the listed size), a read that ends early means it shrank, and after
 *     hashing every file is stat'ed again: a changed size or mtime means the
 *     hashes may not describe the data, which is an error, never a warning.
 *
 *  4. Write. The torrent is encoded with every dictionary's keys in sorted
 *     order (canonical bencode), parsed back with metainfo_parse as a
 *     self-check (our own reader's rules on paths, sizes and counts), and
 *     written to a new temporary file beside OUT that is then renamed over it,
 *     so OUT is either the old file or the whole new one.
 */
#include "create.h"

#include <assert.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bencode.h"
#include "buf.h"
#include "cli.h"
#include "metainfo.h"
#include "sha1.h"
#include "units.h"

/* create_choose_piece_length aims at 1,000-2,000 pieces: enough to spread a
 * download over many peers, few enough to keep the .torrent small (2,000
 * hashes are 40 KB). Halving from above this bound lands above 1,000. */
#define CREATE_TARGET_MAX_PIECES 2000u
/* metainfo.h's node cap holds about 100,000 files with short paths; more
 * files than that would make a torrent our own reader refuses. */
#define CREATE_MAX_FILES 100000u
/* Hashes take at most half of what metainfo_load reads (64 MiB), leaving the
 * rest for the file list. Beyond this the piece length must grow. */
#define CREATE_MAX_PIECES ((uint32_t)(METAINFO_MAX_FILE_SIZE / 2 / SHA1_LEN))
/* More threads than this only queue on the disk. */
#define CREATE_MAX_THREADS 64u
/* Each thread holds one piece in memory: this bounds the sum (16 threads of
 * 16 MiB pieces) so many cores and big pieces do not take gigabytes. */
#define CREATE_READ_BUDGET (256u << 20)
/* Temporary names tried beside OUT before giving up. */
#define CREATE_TMP_TRIES 100

/* One regular file of the torrent. Immutable once the list is sorted. */
struct cfile {
    char *full;      /* path to open: PATH itself, or PATH/rel (owned) */
    const char *rel; /* into `full`: path below PATH, '/'-separated; NULL for a single file */
    uint64_t length; /* bytes, from the walk */
    uint64_t offset; /* where the file starts in the concatenated data */
    time_t mtime;    /* from the walk; compared again after hashing */
};

struct flist {
    struct cfile *v;
    size_t count, cap;
    uint64_t total;   /* bytes in all files */
    size_t skipped;   /* symlinks and special files left out */
    bool out_skipped; /* an earlier OUT inside PATH was left out */
};

/* What create_run learned, for the CLI's summary and exit code. */
struct create_result {
    bool output_side; /* the error (if any) was in writing OUT, not in PATH */
    uint8_t info_hash[SHA1_LEN];
    char name[256];
    uint32_t piece_length;
    uint32_t piece_count;
    uint64_t total;
    size_t file_count;
    size_t skipped;
    bool out_skipped;
};

/* ---- piece length ---------------------------------------------------------- */

uint32_t create_choose_piece_length(uint64_t total_size)
{
    /* Doubling stops at the first length giving at most 2,000 pieces; the
     * length before gave more than 2,000, so this one gives more than 1,000. */
    uint32_t len = CREATE_MIN_PIECE;
    while (len < CREATE_MAX_PIECE &&
           total_size / len + (total_size % len != 0) > CREATE_TARGET_MAX_PIECES)
        len *= 2;
    return len;
}

static bool piece_length_ok(uint64_t v)
{
    return v >= CREATE_MIN_PIECE && v <= CREATE_MAX_PIECE && (v & (v - 1)) == 0;
}

/* ---- listing ---------------------------------------------------------------- */

static void flist_release(struct flist *fl)
{
    for (size_t i = 0; i < fl->count; i++)
        free(fl->v[i].full);
    free(fl->v);
    memset(fl, 0, sizeof *fl);
}

/* Adds a file; on success the list takes `full`, on error the caller keeps it. */
static enum pt_err flist_add(struct flist *fl, char *full, const char *rel, const struct stat *st,
                             struct pt_errctx *ctx)
{
    if (fl->count == CREATE_MAX_FILES)
        return pt_fail(ctx, PT_ERR_LIMIT, PT_NO_OFFSET, "%s: more than %u files", full,
                       CREATE_MAX_FILES);
    if (fl->count == fl->cap) {
        size_t cap = fl->cap ? 2 * fl->cap : 64;
        struct cfile *v = realloc(fl->v, cap * sizeof *v);
        if (!v)
            return pt_fail(ctx, PT_ERR_NOMEM, PT_NO_OFFSET, "out of memory listing files");
        fl->v = v;
        fl->cap = cap;
    }
    fl->v[fl->count++] = (struct cfile){full, rel, (uint64_t)st->st_size, 0, st->st_mtime};
    return PT_OK;
}

/* "dir/name" in a new string, or NULL. */
static char *path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *s = malloc(a + b + 2);
    if (s) {
        memcpy(s, dir, a);
        s[a] = '/';
        memcpy(s + a + 1, name, b + 1);
    }
    return s;
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* The entries of directory `dir` except "." and "..", in readdir order. */
static enum pt_err read_names(const char *dir, char ***names_out, size_t *count_out,
                              struct pt_errctx *ctx)
{
    char **names = NULL;
    size_t n = 0, cap = 0;
    enum pt_err err = PT_OK;
    DIR *d = opendir(dir);
    if (!d) {
        int saved = errno;
        return pt_fail(ctx, pt_err_from_errno(saved), PT_NO_OFFSET, "%s: %s", dir, strerror(saved));
    }
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            int saved = errno;
            if (saved)
                err = pt_fail(ctx, pt_err_from_errno(saved), PT_NO_OFFSET, "%s: %s", dir,
                              strerror(saved));
            break;
        }
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (n == cap) {
            size_t ncap = cap ? 2 * cap : 16;
            char **nv = realloc(names, ncap * sizeof *nv);
            if (!nv) {
                err = pt_fail(ctx, PT_ERR_NOMEM, PT_NO_OFFSET, "out of memory listing %s", dir);
                break;
            }
            names = nv;
            cap = ncap;
        }
        names[n] = strdup(de->d_name);
        if (!names[n]) {
            err = pt_fail(ctx, PT_ERR_NOMEM, PT_NO_OFFSET, "out of memory listing %s", dir);
            break;
        }
        n++;
    }
    closedir(d);
    if (err != PT_OK) {
        free_names(names, n);
        return err;
    }
    *names_out = names;
    *count_out = n;
    return PT_OK;
}

struct walker {
    struct flist *fl;
    size_t root_len; /* bytes of PATH at the start of every `full` */
    struct pt_errctx *ctx;
    /* OUT as it was before we started, if it exists: a torrent written
     * inside the tree it describes must not describe its own old version,
     * which the rename at the end replaces. */
    bool out_exists;
    dev_t out_dev;
    ino_t out_ino;
};

static enum pt_err walk_dir(struct walker *w, const char *dir, unsigned depth);

/* One entry `name` of directory `dir`, `depth` components below PATH. */
static enum pt_err walk_entry(struct walker *w, const char *dir, const char *name, unsigned depth)
{
    enum pt_err err = PT_OK;
    char *full = path_join(dir, name);
    if (!full)
        return pt_fail(w->ctx, PT_ERR_NOMEM, PT_NO_OFFSET, "out of memory listing %s", dir);
    struct stat st;
    if (lstat(full, &st) != 0) {
        int saved = errno;
        err = pt_fail(w->ctx, pt_err_from_errno(saved), PT_NO_OFFSET, "%s: %s", full,
                      strerror(saved));
        goto out;
    }
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
        w->fl->skipped++; /* a symlink (never followed), FIFO, socket or device */
        goto out;
    }
    if (!metainfo_component_ok((const uint8_t *)name, strlen(name))) {
        err = pt_fail(w->ctx, PT_ERR_META_BAD_PATH, PT_NO_OFFSET,
                      "%s: a name torrent clients refuse (it contains '\\'); rename it", full);
        goto out;
    }
    if (depth > METAINFO_MAX_PATH_DEPTH) {
        err = pt_fail(w->ctx, PT_ERR_LIMIT, PT_NO_OFFSET, "%s: more than %d levels below %.*s",
                      full, METAINFO_MAX_PATH_DEPTH, (int)w->root_len, full);
        goto out;
    }
    if (S_ISDIR(st.st_mode)) {
        err = walk_dir(w, full, depth);
        goto out;
    }
    if (w->out_exists && st.st_dev == w->out_dev && st.st_ino == w->out_ino) {
        w->fl->out_skipped = true;
        goto out;
    }
    err = flist_add(w->fl, full, full + w->root_len + 1, &st, w->ctx);
    if (err == PT_OK)
        full = NULL; /* the list owns it now */
out:
    free(full);
    return err;
}

/* Recursion depth is bounded by METAINFO_MAX_PATH_DEPTH (walk_entry). */
static enum pt_err walk_dir(struct walker *w, const char *dir, unsigned depth)
{
    char **names = NULL;
    size_t n = 0;
    enum pt_err err = read_names(dir, &names, &n, w->ctx);
    for (size_t i = 0; err == PT_OK && i < n; i++)
        err = walk_entry(w, dir, names[i], depth + 1);
    free_names(names, n);
    return err;
}

static int cfile_cmp(const void *a, const void *b)
{
    return strcmp(((const struct cfile *)a)->rel, ((const struct cfile *)b)->rel);
}

/* Lists PATH (`root`, already stat'ed as `st`) into `fl`, sorted, with
 * offsets; `out` is the .torrent to be written. */
static enum pt_err list_files(const char *root, const struct stat *st, const char *out,
                              struct flist *fl, struct pt_errctx *ctx)
{
    enum pt_err err;
    if (S_ISREG(st->st_mode)) {
        /* The real path: PATH may be a symlink the user named, and the
         * hashing threads open files with O_NOFOLLOW. */
        char *full = realpath(root, NULL);
        if (!full) {
            int saved = errno;
            return pt_fail(ctx, pt_err_from_errno(saved), PT_NO_OFFSET, "%s: %s", root,
                           strerror(saved));
        }
        err = flist_add(fl, full, NULL, st, ctx);
        if (err != PT_OK)
            free(full);
    } else {
        struct walker w = {fl, strlen(root), ctx, false, 0, 0};
        struct stat ost;
        if (stat(out, &ost) == 0) {
            w.out_exists = true;
            w.out_dev = ost.st_dev;
            w.out_ino = ost.st_ino;
        }
        err = walk_dir(&w, root, 0);
        if (err == PT_OK && fl->count > 0)
            qsort(fl->v, fl->count, sizeof *fl->v, cfile_cmp);
    }
    if (err != PT_OK)
        return err;
    uint64_t off = 0;
    for (size_t i = 0; i < fl->count; i++) {
        if (fl->v[i].length > (uint64_t)INT64_MAX - off)
            return pt_fail(ctx, PT_ERR_LIMIT, PT_NO_OFFSET, "%s: total size overflows", root);
        fl->v[i].offset = off;
        off += fl->v[i].length;
    }
    fl->total = off;
    return PT_OK;
}

/* ---- hashing ----------------------------------------------------------------- */

/* Shared by the hashing threads. Locking: none. Every field but `hashes`
 * and `failed` is immutable while threads run; `hashes` is written at
 * disjoint offsets (see DESIGN); `failed` is atomic. */
struct hasher {
    const struct cfile *files;
    size_t file_count;
    uint64_t total;        /* bytes */
    uint32_t piece_length; /* bytes */
    uint32_t piece_count;
    uint8_t *hashes;    /* SHA1_LEN * piece_count bytes */
    atomic_bool failed; /* some thread failed: the others stop */
};

/* One thread's slice and state; only that thread touches it until joined. */
struct hash_job {
    struct hasher *h;
    uint32_t first, end; /* pieces [first, end) */
    uint8_t *buf;        /* one piece (owned) */
    size_t open_index;   /* the file `fd` belongs to; SIZE_MAX if none */
    int fd;
    enum pt_err err;
    struct pt_errctx ctx;
    pthread_t thread;
};

/* The file holding byte `off` (< total): the last file starting at or before
 * it. A zero-length file starts where the next one does, so the last of
 * several at the same offset is the one with data. */
static size_t file_at(const struct hasher *h, uint64_t off)
{
    size_t lo = 0, hi = h->file_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (h->files[mid].offset <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    assert(lo > 0);
    assert(off - h->files[lo - 1].offset < h->files[lo - 1].length);
    return lo - 1;
}

/* Makes j->fd the descriptor of file i, checking the file is still the one listed. */
static enum pt_err job_open(struct hash_job *j, size_t i)
{
    const struct cfile *f = &j->h->files[i];
    if (j->open_index == i)
        return PT_OK;
    if (j->fd >= 0)
        close(j->fd);
    j->open_index = SIZE_MAX;
    /* O_NOFOLLOW and O_NONBLOCK: a file replaced after the walk by a symlink
     * or a FIFO fails here or at the S_ISREG check instead of being followed
     * or blocking the open. O_NONBLOCK changes nothing for a regular file. */
    j->fd = open(f->full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (j->fd < 0) {
        int saved = errno;
        return pt_fail(&j->ctx, pt_err_from_errno(saved), PT_NO_OFFSET, "%s: %s", f->full,
                       strerror(saved));
    }
    struct stat st;
    if (fstat(j->fd, &st) != 0) {
        int saved = errno;
        return pt_fail(&j->ctx, pt_err_from_errno(saved), PT_NO_OFFSET, "%s: %s", f->full,
                       strerror(saved));
    }
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != f->length)
        return pt_fail(&j->ctx, PT_ERR_IO, PT_NO_OFFSET,
                       "%s: changed while the torrent was being made (was %llu bytes, now %lld)",
                       f->full, (unsigned long long)f->length, (long long)st.st_size);
    j->open_index = i;
    return PT_OK;
}

/* Reads `len` bytes at `in_file` of file i into dst. */
static enum pt_err job_read(struct hash_job *j, size_t i, uint64_t in_file, uint8_t *dst,
                            size_t len)
{
    enum pt_err err = job_open(j, i);
    size_t done = 0;
    while (err == PT_OK && done < len) {
        ssize_t n = pread(j->fd, dst + done, len - done, (off_t)(in_file + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int saved = errno;
            return pt_fail(&j->ctx, pt_err_from_errno(saved), PT_NO_OFFSET, "%s: %s",
                           j->h->files[i].full, strerror(saved));
        }
        if (n == 0)
            return pt_fail(&j->ctx, PT_ERR_IO, PT_NO_OFFSET,
                           "%s: shrank while the torrent was being made", j->h->files[i].full);
        done += (size_t)n;
    }
    return err;
}

/* Reads piece p (which may span files) into j->buf; its size in *len_out. */
static enum pt_err read_piece(struct hash_job *j, uint32_t p, size_t *len_out)
{
    const struct hasher *h = j->h;
    uint64_t off = (uint64_t)p * h->piece_length;
    uint64_t left = h->total - off;
    size_t len = left < h->piece_length ? (size_t)left : h->piece_length;
    size_t done = 0;
    for (size_t i = file_at(h, off); done < len; i++) {
        assert(i < h->file_count);
        const struct cfile *f = &h->files[i];
        uint64_t in_file = off + done - f->offset;
        uint64_t avail = f->length - in_file;
        size_t take = avail < len - done ? (size_t)avail : len - done;
        if (take > 0) {
            enum pt_err err = job_read(j, i, in_file, j->buf + done, take);
            if (err != PT_OK)
                return err;
        }
        done += take;
    }
    *len_out = len;
    return PT_OK;
}

static void *hash_thread_main(void *arg)
{
    struct hash_job *j = arg;
    struct hasher *h = j->h;
    for (uint32_t p = j->first; p < j->end && j->err == PT_OK; p++) {
        size_t len = 0;
        if (atomic_load(&h->failed)) {
            j->err = PT_ERR_STOPPED;
            break;
        }
        j->err = read_piece(j, p, &len);
        if (j->err == PT_OK && !sha1(j->buf, len, h->hashes + (size_t)p * SHA1_LEN))
            j->err = pt_fail(&j->ctx, PT_ERR_NOMEM, PT_NO_OFFSET, "SHA-1 failed (out of memory)");
    }
    if (j->fd >= 0)
        close(j->fd);
    j->fd = -1;
    if (j->err != PT_OK && j->err != PT_ERR_STOPPED)
        atomic_store(&h->failed, true);
    return NULL;
}

/* How many threads hash: as asked (0 = one per online core), at most one per
 * piece and within CREATE_MAX_THREADS and CREATE_READ_BUDGET. */
static unsigned thread_count(unsigned asked, uint32_t piece_length, uint32_t pieces)
{
    long n = asked;
    if (n == 0) {
#ifdef _SC_NPROCESSORS_ONLN
        n = sysconf(_SC_NPROCESSORS_ONLN);
#endif
        if (n < 1)
            n = 1;
    }
    if (n > (long)CREATE_MAX_THREADS)
        n = CREATE_MAX_THREADS;
    if (n > (long)(CREATE_READ_BUDGET / piece_length))
        n = (long)(CREATE_READ_BUDGET / piece_length);
    if (n > (long)pieces)
        n = (long)pieces;
    return n < 1 ? 1u : (unsigned)n;
}

/* Hashes every piece into h->hashes (allocated by the caller) on `nthreads`
 * threads, all joined before it returns. */
static enum pt_err hash_all(struct hasher *h, unsigned nthreads, struct pt_errctx *ctx)
{
    enum pt_err err = PT_OK;
    unsigned started = 0;
    struct hash_job *jobs = calloc(nthreads, sizeof *jobs);
    if (!jobs)
        return pt_fail(ctx, PT_ERR_NOMEM, PT_NO_OFFSET, "out of memory for hashing");
    size_t buf_len = h->total < h->piece_length ? (size_t)h->total : h->piece_length;
    for (unsigned k = 0; k < nthreads; k++) {
        jobs[k].h = h;
        jobs[k].first = (uint32_t)((uint64_t)h->piece_count * k / nthreads);
        jobs[k].end = (uint32_t)((uint64_t)h->piece_count * (k + 1) / nthreads);
        jobs[k].open_index = SIZE_MAX;
        jobs[k].fd = -1;
        jobs[k].ctx.offset = PT_NO_OFFSET;
        jobs[k].buf = malloc(buf_len);
        if (!jobs[k].buf) {
            err = pt_fail(ctx, PT_ERR_NOMEM, PT_NO_OFFSET, "out of memory for read buffers");
            goto out;
        }
    }
    for (; started < nthreads; started++) {
        int rc = pthread_create(&jobs[started].thread, NULL, hash_thread_main, &jobs[started]);
        if (rc != 0) {
            atomic_store(&h->failed, true);
            err = pt_fail(ctx, PT_ERR_NOMEM, PT_NO_OFFSET, "cannot start a hashing thread: %s",
                          strerror(rc));
            break;
        }
    }
    for (unsigned k = 0; k < started; k++)
        pthread_join(jobs[k].thread, NULL);
    /* The first real error, by slice; the others were only told to stop. */
    for (unsigned k = 0; err == PT_OK && k < started; k++) {
        if (jobs[k].err != PT_OK && jobs[k].err != PT_ERR_STOPPED) {
            err = jobs[k].err;
            if (ctx)
                *ctx = jobs[k].ctx;
        }
    }
out:
    for (unsigned k = 0; k < nthreads; k++)
        free(jobs[k].buf);
    free(jobs);
    return err;
}

/* Every file must still have the size and mtime the walk saw. */
static enum pt_err recheck_files(const struct flist *fl, struct pt_errctx *ctx)
{
    for (size_t i = 0; i < fl->count; i++) {
        const struct cfile *f = &fl->v[i];
        struct stat st;
        if (stat(f->full, &st) != 0) {
            int saved = errno;
            return pt_fail(ctx, pt_err_from_errno(saved), PT_NO_OFFSET, "%s: %s", f->full,
                           strerror(saved));
        }
        if ((uint64_t)st.st_size != f->length || st.st_mtime != f->mtime)
            return pt_fail(ctx, PT_ERR_IO, PT_NO_OFFSET,
                           "%s: changed while the torrent was being made; try again once "
                           "nothing writes to it",
                           f->full);
    }
    return PT_OK;
}

/* ---- encoding and writing ------------------------------------------------------ */

/* `rel` ("a/b/c") as a bencoded list of its components. */
static void put_path(struct buf *b, const char *rel)
{
    bencode_put_list(b);
    for (;;) {
        const char *slash = strchr(rel, '/');
        size_t n = slash ? (size_t)(slash - rel) : strlen(rel);
        bencode_put_str(b, rel, n);
        if (!slash)
            break;
        rel = slash + 1;
    }
    bencode_put_end(b);
}

/* The whole torrent. Keys in byte order: the top level is announce <
 * announce-list < comment < created by < creation date < info; the info dict is
 * files < length < name < piece length < pieces < private. */
static void encode_torrent(const struct create_opts *o, const struct flist *fl, bool multi,
                           const char *name, uint32_t piece_length, const uint8_t *hashes,
                           uint32_t pieces, struct buf *b)
{
    bencode_put_dict(b);
    if (o->tracker_count > 0) {
        bencode_put_cstr(b, "announce");
        bencode_put_cstr(b, o->trackers[0]);
    }
    if (o->tracker_count > 1) {
        bencode_put_cstr(b, "announce-list");
        bencode_put_list(b);
        for (size_t i = 0; i < o->tracker_count; i++) {
            bencode_put_list(b);
            bencode_put_cstr(b, o->trackers[i]);
            bencode_put_end(b);
        }
        bencode_put_end(b);
    }
    if (o->comment) {
        bencode_put_cstr(b, "comment");
        bencode_put_cstr(b, o->comment);
    }
    bencode_put_cstr(b, "created by");
    bencode_put_cstr(b, o->created_by ? o->created_by : "ptorrent " PT_VERSION);
    if (!o->no_date) {
        bencode_put_cstr(b, "creation date");
        bencode_put_int(b, (int64_t)time(NULL));
    }
    bencode_put_cstr(b, "info");
    bencode_put_dict(b);
    if (multi) {
        bencode_put_cstr(b, "files");
        bencode_put_list(b);
        for (size_t i = 0; i < fl->count; i++) {
            bencode_put_dict(b);
            bencode_put_cstr(b, "length");
            bencode_put_int(b, (int64_t)fl->v[i].length);
            bencode_put_cstr(b, "path");
            put_path(b, fl->v[i].rel);
            bencode_put_end(b);
        }
        bencode_put_end(b);
    } else {
        bencode_put_cstr(b, "length");
        bencode_put_int(b, (int64_t)fl->total);
    }
    bencode_put_cstr(b, "name");
    bencode_put_cstr(b, name);
    bencode_put_cstr(b, "piece length");
    bencode_put_int(b, piece_length);
    bencode_put_cstr(b, "pieces");
    bencode_put_str(b, hashes, (size_t)pieces * SHA1_LEN);
    if (o->is_private) {
        bencode_put_cstr(b, "private");
        bencode_put_int(b, 1);
    }
    bencode_put_end(b);
    bencode_put_end(b);
}

/* Writes all of data; returns 0 or the saved errno. */
static int write_all(int fd, const uint8_t *data, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, data + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno;
        done += (size_t)n;
    }
    return 0;
}

/* Names of temporary files differ between threads of one process too. */
static atomic_uint tmp_serial;

/* Writes `data` to a new file beside `path` and renames it over `path`. The
 * temporary file is made with mode 0666 less the umask, like any new file. */
static enum pt_err write_atomically(const char *path, const uint8_t *data, size_t len,
                                    struct pt_errctx *ctx)
{
    enum pt_err err = PT_OK;
    int fd = -1, saved = 0;
    const char *what;
    struct buf tmp;
    buf_init(&tmp);
    for (int tries = 0; fd < 0 && tries < CREATE_TMP_TRIES; tries++) {
        tmp.len = 0;
        buf_printf(&tmp, "%s.tmp-%ld-%u", path, (long)getpid(), atomic_fetch_add(&tmp_serial, 1));
        buf_append(&tmp, "", 1);
        if (!buf_ok(&tmp)) {
            buf_release(&tmp);
            return pt_fail(ctx, PT_ERR_NOMEM, PT_NO_OFFSET, "out of memory");
        }
        fd = open((const char *)tmp.data, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        saved = errno;
        err = pt_fail(ctx, pt_err_from_errno(saved), PT_NO_OFFSET, "%s: %s", path, strerror(saved));
        buf_release(&tmp);
        return err;
    }
    const char *tmp_path = (const char *)tmp.data;
    saved = write_all(fd, data, len);
    what = "write";
    if (saved == 0 && fsync(fd) != 0) {
        saved = errno;
        what = "fsync";
    }
    if (close(fd) != 0 && saved == 0) {
        saved = errno;
        what = "close";
    }
    if (saved == 0 && rename(tmp_path, path) != 0) {
        saved = errno;
        what = "rename";
    }
    if (saved != 0) {
        unlink(tmp_path);
        err = pt_fail(ctx, pt_err_from_errno(saved), PT_NO_OFFSET, "%s: %s failed: %s", path, what,
                      strerror(saved));
    }
    buf_release(&tmp);
    return err;
}

/* ---- create_torrent ------------------------------------------------------------- */

/* The torrent's name: the last component of `root` (trailing slashes already
 * gone), or of its real path when that is "." or "..". */
static enum pt_err torrent_name(const char *root, char *out, size_t cap, struct pt_errctx *ctx)
{
    char *real = NULL;
    const char *slash = strrchr(root, '/');
    const char *name = slash ? slash + 1 : root;
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || *name == '\0') {
        real = realpath(root, NULL);
        if (!real) {
            int saved = errno;
            return pt_fail(ctx, pt_err_from_errno(saved), PT_NO_OFFSET, "%s: %s", root,
                           strerror(saved));
        }
        slash = strrchr(real, '/');
        name = slash ? slash + 1 : real;
    }
    enum pt_err err = PT_OK;
    if (!metainfo_component_ok((const uint8_t *)name, strlen(name)))
        err = pt_fail(ctx, PT_ERR_META_BAD_PATH, PT_NO_OFFSET,
                      "%s: cannot be a torrent's name (the root directory, or it contains '\\')",
                      root);
    else if (strlen(name) >= cap)
        err = pt_fail(ctx, PT_ERR_LIMIT, PT_NO_OFFSET, "%s: name longer than %zu bytes", root,
                      cap - 1);
    else
        memcpy(out, name, strlen(name) + 1);
    free(real);
    return err;
}

static enum pt_err check_opts(const struct create_opts *o, struct pt_errctx *ctx)
{
    if (!o->path || !o->out_path)
        return pt_fail(ctx, PT_ERR_USAGE, PT_NO_OFFSET, "a PATH and an output file are needed");
    if (o->tracker_count > CREATE_MAX_TRACKERS)
        return pt_fail(ctx, PT_ERR_USAGE, PT_NO_OFFSET, "more than %d trackers",
                       CREATE_MAX_TRACKERS);
    for (size_t i = 0; i < o->tracker_count; i++)
        if (!o->trackers[i] || !o->trackers[i][0])
            return pt_fail(ctx, PT_ERR_USAGE, PT_NO_OFFSET, "tracker %zu is empty", i + 1);
    if (o->piece_length != 0 && !piece_length_ok(o->piece_length))
        return pt_fail(ctx, PT_ERR_USAGE, PT_NO_OFFSET,
                       "piece length %u is not a power of two from %u to %u", o->piece_length,
                       CREATE_MIN_PIECE, CREATE_MAX_PIECE);
    return PT_OK;
}

/* Hashes, encodes and self-checks; the torrent's bytes in `out`. */
static enum pt_err make_torrent(const struct create_opts *o, const struct flist *fl, bool multi,
                                struct create_result *res, struct buf *out, struct pt_errctx *ctx)
{
    struct hasher h = {.files = fl->v,
                       .file_count = fl->count,
                       .total = fl->total,
                       .piece_length = res->piece_length,
                       .piece_count = res->piece_count};
    atomic_init(&h.failed, false);
    h.hashes = malloc((size_t)res->piece_count * SHA1_LEN);
    if (!h.hashes)
        return pt_fail(ctx, PT_ERR_NOMEM, PT_NO_OFFSET, "out of memory for %u piece hashes",
                       res->piece_count);
    unsigned nthreads = thread_count(o->threads, res->piece_length, res->piece_count);
    enum pt_err err = hash_all(&h, nthreads, ctx);
    if (err == PT_OK)
        err = recheck_files(fl, ctx);
    if (err == PT_OK) {
        encode_torrent(o, fl, multi, res->name, res->piece_length, h.hashes, res->piece_count, out);
        if (!buf_ok(out))
            err = pt_fail(ctx, PT_ERR_NOMEM, PT_NO_OFFSET, "out of memory encoding the torrent");
        else if (out->len > METAINFO_MAX_FILE_SIZE)
            err = pt_fail(ctx, PT_ERR_LIMIT, PT_NO_OFFSET,
                          "%s: the torrent would be %zu bytes, over the %u clients accept; "
                          "use a larger piece length",
                          o->path, out->len, METAINFO_MAX_FILE_SIZE);
    }
    free(h.hashes);
    if (err != PT_OK)
        return err;

    /* Self-check: what we wrote must be a torrent our own reader accepts,
     * describing the same files and pieces. */
    struct metainfo m;
    struct pt_errctx pctx = {PT_NO_OFFSET, ""};
    err = metainfo_parse(out->data, out->len, &m, &pctx);
    if (err != PT_OK)
        return pt_fail(ctx, err == PT_ERR_BENCODE_TOO_MANY_VALUES ? PT_ERR_LIMIT : err,
                       PT_NO_OFFSET, "%s: the torrent made does not read back: %s", o->path,
                       pctx.msg[0] ? pctx.msg : pt_strerror(err));
    assert(m.piece_count == res->piece_count && m.total_length == fl->total);
    assert(m.file_count == fl->count && m.multi_file == multi);
    memcpy(res->info_hash, m.info_hash, SHA1_LEN);
    metainfo_release(&m);
    return PT_OK;
}

static enum pt_err create_run(const struct create_opts *o, struct pt_errctx *ctx,
                              struct create_result *res)
{
    struct flist fl = {0};
    struct buf out;
    char *root = NULL;
    struct stat st;
    enum pt_err err;
    buf_init(&out);
    memset(res, 0, sizeof *res);

    err = check_opts(o, ctx);
    if (err != PT_OK)
        goto out;
    /* PATH without its trailing slashes ("dir/" names "dir"); "/" stays. */
    root = strdup(o->path);
    if (!root) {
        err = pt_fail(ctx, PT_ERR_NOMEM, PT_NO_OFFSET, "out of memory");
        goto out;
    }
    for (size_t n = strlen(root); n > 1 && root[n - 1] == '/'; n--)
        root[n - 1] = '\0';
    /* stat, not lstat: PATH itself may be a symlink the user chose to name. */
    if (stat(root, &st) != 0) {
        int saved = errno;
        err = pt_fail(ctx, pt_err_from_errno(saved), PT_NO_OFFSET, "%s: %s", o->path,
                      strerror(saved));
        goto out;
    }
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
        err =
            pt_fail(ctx, PT_ERR_IO, PT_NO_OFFSET, "%s: not a regular file or a directory", o->path);
        goto out;
    }
    err = torrent_name(root, res->name, sizeof res->name, ctx);
    if (err == PT_OK)
        err = list_files(root, &st, o->out_path, &fl, ctx);
    if (err != PT_OK)
        goto out;
    res->file_count = fl.count;
    res->skipped = fl.skipped;
    res->out_skipped = fl.out_skipped;
    res->total = fl.total;
    if (fl.total == 0) {
        err = pt_fail(ctx, PT_ERR_NOT_FOUND, PT_NO_OFFSET,
                      "%s: nothing to share (no files, or only empty ones)", o->path);
        goto out;
    }
    res->piece_length = o->piece_length ? o->piece_length : create_choose_piece_length(fl.total);
    uint64_t pieces = (fl.total + res->piece_length - 1) / res->piece_length;
    if (pieces > CREATE_MAX_PIECES) {
        err = pt_fail(ctx, PT_ERR_LIMIT, PT_NO_OFFSET,
                      "%s: %llu pieces of %u bytes, more than %u; use a larger piece length",
                      o->path, (unsigned long long)pieces, res->piece_length, CREATE_MAX_PIECES);
        goto out;
    }
    res->piece_count = (uint32_t)pieces;
    err = make_torrent(o, &fl, S_ISDIR(st.st_mode), res, &out, ctx);
    if (err != PT_OK)
        goto out;
    res->output_side = true;
    err = write_atomically(o->out_path, out.data, out.len, ctx);
out:
    buf_release(&out);
    flist_release(&fl);
    free(root);
    return err;
}

enum pt_err create_torrent(const struct create_opts *o, struct pt_errctx *ctx)
{
    struct create_result res;
    return create_run(o, ctx, &res);
}

/* ---- the command ------------------------------------------------------------------ */

const char *const create_usage =
    "usage: ptorrent create -o OUT.torrent [OPTIONS] PATH\n"
    "\n"
    "Makes a .torrent for the file or directory PATH. A directory's files are\n"
    "taken recursively in byte order of their paths, hidden files included;\n"
    "symbolic links and special files are left out. Hashing uses every core.\n"
    "\n"
    "  -o, --output FILE        the .torrent to write; an existing FILE is left\n"
    "                           alone (exit 3) unless --force is given\n"
    "  -a, --announce URL       a tracker; repeat for more, each its own tier, the\n"
    "                           first one `announce` (none: a trackerless torrent)\n"
    "  -l, --piece-length N     N < 32: 2^N bytes (mktorrent style); otherwise bytes,\n"
    "                           with an optional K or M suffix (256K, 1M); a power\n"
    "                           of two from 16K to 16M. Default: the size that\n"
    "                           gives 1,000-2,000 pieces\n"
    "  -p, --private            set the private flag (BEP 27: trackers only)\n"
    "  -c, --comment TEXT       a comment\n"
    "      --no-date            leave out the creation date: the same input then\n"
    "                           gives a byte-identical torrent\n"
    "  -f, --force              replace OUT.torrent if it exists\n"
    "      --threads N          hashing threads (default: one per core)\n"
    "  -h, --help               show this help\n"
    "\n"
    "Exit status: 0 done, 1 bad usage, 2 PATH is missing, empty or unusable,\n"
    "3 OUT.torrent exists or cannot be written.\n";

static int create_usage_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* Prints "ptorrent: <message>" and the usage; returns exit code 1. */
static int create_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ptorrent: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%s", create_usage);
    return CLI_EXIT_USAGE;
}

/* -l: "N" (< 32) is 2^N; else bytes with an optional K or M suffix. */
static bool parse_piece_length(const char *s, uint32_t *out)
{
    if (!isdigit((unsigned char)s[0]))
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return false;
    if (*end == '\0') {
        if (v < 32)
            v = 1ull << v;
    } else if ((*end == 'K' || *end == 'k') && end[1] == '\0') {
        v = v > CREATE_MAX_PIECE ? 0 : v << 10;
    } else if ((*end == 'M' || *end == 'm') && end[1] == '\0') {
        v = v > CREATE_MAX_PIECE ? 0 : v << 20;
    } else {
        return false;
    }
    if (!piece_length_ok(v))
        return false;
    *out = (uint32_t)v;
    return true;
}

enum { OPT_NO_DATE = 256, OPT_THREADS };

int create_cli(int argc, char **argv)
{
    static const struct option opts[] = {{"output", required_argument, NULL, 'o'},
                                         {"announce", required_argument, NULL, 'a'},
                                         {"piece-length", required_argument, NULL, 'l'},
                                         {"private", no_argument, NULL, 'p'},
                                         {"comment", required_argument, NULL, 'c'},
                                         {"no-date", no_argument, NULL, OPT_NO_DATE},
                                         {"force", no_argument, NULL, 'f'},
                                         {"threads", required_argument, NULL, OPT_THREADS},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    struct create_opts o;
    memset(&o, 0, sizeof o);
    bool force = false;
    int c;
    while ((c = getopt_long(argc, argv, "o:a:l:pc:fh", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            o.out_path = optarg;
            break;
        case 'p':
            o.is_private = true;
            break;
        case 'c':
            o.comment = optarg;
            break;
        case 'f':
            force = true;
            break;
        case OPT_NO_DATE:
            o.no_date = true;
            break;
        case 'h':
            printf("%s", create_usage);
            return CLI_EXIT_OK;
        case 'a':
            if (o.tracker_count == CREATE_MAX_TRACKERS)
                return create_usage_error("too many -a options (at most %d)", CREATE_MAX_TRACKERS);
            if (optarg[0] == '\0')
                return create_usage_error("-a: empty tracker URL");
            o.trackers[o.tracker_count++] = optarg;
            break;
        case 'l':
            if (!parse_piece_length(optarg, &o.piece_length))
                return create_usage_error("-l: '%s' is not a power of two from 16K to 16M "
                                          "(or 14..24 for 2^N)",
                                          optarg);
            break;
        case OPT_THREADS: {
            char *end;
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end != '\0' || v < 1 || v > (long)CREATE_MAX_THREADS)
                return create_usage_error("--threads: '%s' is not in 1..%u", optarg,
                                          CREATE_MAX_THREADS);
            o.threads = (unsigned)v;
            break;
        }
        default:
            return create_usage_error("bad option");
        }
    }
    if (optind == argc)
        return create_usage_error("create needs a PATH to share");
    if (optind != argc - 1)
        return create_usage_error("unexpected argument '%s'", argv[optind + 1]);
    if (!o.out_path)
        return create_usage_error("create needs -o OUT.torrent");
    o.path = argv[optind];

    struct stat st;
    if (!force && lstat(o.out_path, &st) == 0) {
        fprintf(stderr, "ptorrent: %s: already exists (use --force to replace it)\n", o.out_path);
        return CLI_EXIT_FAILURE;
    }

    struct pt_errctx ctx = {PT_NO_OFFSET, ""};
    struct create_result res;
    enum pt_err err = create_run(&o, &ctx, &res);
    if (res.skipped > 0)
        fprintf(stderr, "ptorrent: note: left out %zu symbolic link%s or special file%s\n",
                res.skipped, res.skipped == 1 ? "" : "s", res.skipped == 1 ? "" : "s");
    if (res.out_skipped)
        fprintf(stderr, "ptorrent: note: left out %s itself, which is inside %s\n", o.out_path,
                o.path);
    if (err != PT_OK) {
        fprintf(stderr, "ptorrent: %s\n", ctx.msg[0] ? ctx.msg : pt_strerror(err));
        if (err == PT_ERR_USAGE)
            return CLI_EXIT_USAGE;
        return res.output_side || err == PT_ERR_NOMEM ? CLI_EXIT_FAILURE : CLI_EXIT_BAD_INPUT;
    }
    if (o.tracker_count == 0)
        fprintf(stderr, "ptorrent: warning: no tracker (-a): only clients told a peer's address "
                        "(or using DHT) can find this torrent\n");
    char hex[2 * SHA1_LEN + 1], total[UNITS_STRLEN], plen[UNITS_STRLEN];
    sha1_hex(res.info_hash, hex);
    printf("%s: %s, %zu file%s, %s in %u pieces of %s\n", o.out_path, res.name, res.file_count,
           res.file_count == 1 ? "" : "s", units_bytes(res.total, total), res.piece_count,
           units_bytes(res.piece_length, plen));
    printf("info hash: %s\n", hex);
    return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
}
