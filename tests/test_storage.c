/*
 * Tests for storage, through storage.h only: storage_map over one file, over
 * several, over zero-length files, out of range and out of room; then on a
 * real temporary directory: every directory and file created, pieces that
 * span files written and read back (with stdio and with storage_read), a
 * longer file cut to size, a piece spread over more files than one call
 * maps, and failures that name the path at fault. storage_write_pieces:
 * one pwritev per file segment of a run (counted by storage_write_calls),
 * runs split at gaps, the iovec limit, a failure part way, short writes.
 *
 * The metainfo is built by hand: storage only reads files[], file_count,
 * total_length, piece_length and piece_count.
 */
#include <CUnit/CUnit.h>
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "metainfo.h"
#include "storage.h"
#include "support.h"

/* Whether storage_write_cpu_seconds() can measure (see storage.h). */
#if defined(CLOCK_THREAD_CPUTIME_ID)
#define HAVE_THREAD_CLOCK 1
#else
#define HAVE_THREAD_CLOCK 0
#endif

#define MAX_FILES 128
#define MAX_PATH 64

/* ---- helpers ---- */

struct torrent {
    struct metainfo m;
    struct metainfo_file files[MAX_FILES];
    char paths[MAX_FILES][MAX_PATH];
};

/* Lays out n files back to back and derives total_length and piece_count. */
static void torrent_init(struct torrent *t, uint32_t piece_length, size_t n,
                         const char *const paths[], const uint64_t lengths[])
{
    CU_ASSERT_FATAL(n <= MAX_FILES);
    memset(t, 0, sizeof *t);
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        snprintf(t->paths[i], MAX_PATH, "%s", paths[i]);
        t->files[i].path = t->paths[i];
        t->files[i].length = lengths[i];
        t->files[i].offset = off;
        off += lengths[i];
    }
    t->m.name = t->paths[0];
    t->m.files = t->files;
    t->m.file_count = n;
    t->m.multi_file = n > 1;
    t->m.total_length = off;
    t->m.piece_length = piece_length;
    t->m.piece_count = (uint32_t)((off + piece_length - 1) / piece_length);
}

/* The byte at torrent offset `off` in these tests. */
static uint8_t pattern(uint64_t off)
{
    return (uint8_t)(off * 31u + 7u);
}

static uint8_t *pattern_buf(uint64_t off, size_t len)
{
    uint8_t *p = malloc(len ? len : 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    for (size_t i = 0; i < len; i++)
        p[i] = pattern(off + i);
    return p;
}

static bool run_is(const struct storage_run *r, size_t file, uint64_t file_off, uint64_t len)
{
    return r->file == file && r->file_off == file_off && r->len == len;
}
static void join(char *out, size_t cap, const char *a, const char *b)
{
    int n = snprintf(out, cap, "%s/%s", a, b);
    CU_ASSERT_FATAL(n > 0 && (size_t)n < cap);
}

/* Size of a regular file, or -1 if it is missing or not a regular file. */
static long long file_size(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return -1;
    return (long long)st.st_size;
}

/* Reads a whole file with stdio into a malloc'd buffer; *len_out its size. */
static uint8_t *slurp(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    size_t cap = 4096, len = 0;
    uint8_t *p = malloc(cap);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    size_t n;
    while ((n = fread(p + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            cap *= 2;
            p = realloc(p, cap);
            CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        }
    }
    fclose(f);
    *len_out = len;
    return p;
}

/* Every file under out/ holds exactly its slice of the pattern. */
static void check_files_hold_pattern(const struct torrent *t, const char *out)
{
    for (size_t i = 0; i < t->m.file_count; i++) {
        char path[1024];
        join(path, sizeof path, out, t->files[i].path);
        size_t len;
        uint8_t *got = slurp(path, &len);
        CU_ASSERT_EQUAL(len, t->files[i].length);
        bool same = len == t->files[i].length;
        for (size_t k = 0; same && k < len; k++)
            same = got[k] == pattern(t->files[i].offset + k);
        CU_ASSERT_TRUE(same);
        if (!same)
            fprintf(stderr, "\n  storage: %s does not hold its bytes\n", path);
        free(got);
    }
}

static void write_all_pieces(struct storage *s, const struct torrent *t, const uint32_t *order)
{
    for (uint32_t k = 0; k < t->m.piece_count; k++) {
        uint32_t i = order ? order[k] : k;
        uint64_t off = (uint64_t)i * t->m.piece_length;
        uint32_t len = (uint32_t)(t->m.total_length - off < t->m.piece_length
                                      ? t->m.total_length - off
                                      : t->m.piece_length);
        uint8_t *data = pattern_buf(off, len);
        struct pt_errctx ctx = {PT_NO_OFFSET, ""};
        CU_ASSERT_EQUAL(storage_write_piece(s, i, data, len, &ctx), PT_OK);
        free(data);
    }
}

/* ---- storage_map ---- */

static void test_storage_map_single_file(void)
{
    static const char *const paths[] = {"one"};
    static const uint64_t lengths[] = {100};
    struct torrent t;
    torrent_init(&t, 32, 1, paths, lengths);
    struct storage_run r[4];

    CU_ASSERT_EQUAL(storage_map(&t.m, 0, 32, r, 4), 1);
    CU_ASSERT_TRUE(run_is(&r[0], 0, 0, 32));
    CU_ASSERT_EQUAL(storage_map(&t.m, 96, 4, r, 4), 1); /* the short last piece */
    CU_ASSERT_TRUE(run_is(&r[0], 0, 96, 4));
    CU_ASSERT_EQUAL(storage_map(&t.m, 0, 100, r, 4), 1);
    CU_ASSERT_TRUE(run_is(&r[0], 0, 0, 100));
    CU_ASSERT_EQUAL(storage_map(&t.m, 99, 1, r, 1), 1);
    CU_ASSERT_TRUE(run_is(&r[0], 0, 99, 1));
}

static void test_storage_map_piece_spanning_three_files(void)
{
    static const char *const paths[] = {"t/a", "t/b", "t/c"};
    static const uint64_t lengths[] = {10, 5, 20};
    struct torrent t;
    torrent_init(&t, 32, 3, paths, lengths);
    struct storage_run r[4];

    CU_ASSERT_EQUAL_FATAL(storage_map(&t.m, 0, 32, r, 4), 3);
    CU_ASSERT_TRUE(run_is(&r[0], 0, 0, 10));
    CU_ASSERT_TRUE(run_is(&r[1], 1, 0, 5));
    CU_ASSERT_TRUE(run_is(&r[2], 2, 0, 17));
    CU_ASSERT_EQUAL_FATAL(storage_map(&t.m, 32, 3, r, 4), 1);
    CU_ASSERT_TRUE(run_is(&r[0], 2, 17, 3));
    /* Starting in the middle of the first file and ending in the middle of the last. */
    CU_ASSERT_EQUAL_FATAL(storage_map(&t.m, 9, 8, r, 4), 3);
    CU_ASSERT_TRUE(run_is(&r[0], 0, 9, 1));
    CU_ASSERT_TRUE(run_is(&r[1], 1, 0, 5));
    CU_ASSERT_TRUE(run_is(&r[2], 2, 0, 2));
    /* Starting exactly on a file boundary. */
    CU_ASSERT_EQUAL_FATAL(storage_map(&t.m, 10, 5, r, 4), 1);
    CU_ASSERT_TRUE(run_is(&r[0], 1, 0, 5));
    CU_ASSERT_EQUAL_FATAL(storage_map(&t.m, 15, 20, r, 4), 1);
    CU_ASSERT_TRUE(run_is(&r[0], 2, 0, 20));
}

static void test_storage_map_skips_zero_length_files(void)
{
    static const char *const paths[] = {"t/z0", "t/a", "t/z1", "t/z2", "t/b", "t/z3"};
    static const uint64_t lengths[] = {0, 10, 0, 0, 6, 0};
    struct torrent t;
    torrent_init(&t, 16, 6, paths, lengths);
    struct storage_run r[8];

    CU_ASSERT_EQUAL_FATAL(storage_map(&t.m, 0, 16, r, 8), 2);
    CU_ASSERT_TRUE(run_is(&r[0], 1, 0, 10));
    CU_ASSERT_TRUE(run_is(&r[1], 4, 0, 6));
    /* Offset 10 is where a ends and z1, z2 and b all start. */
    CU_ASSERT_EQUAL_FATAL(storage_map(&t.m, 10, 6, r, 8), 1);
    CU_ASSERT_TRUE(run_is(&r[0], 4, 0, 6));
    CU_ASSERT_EQUAL_FATAL(storage_map(&t.m, 9, 2, r, 8), 2);
    CU_ASSERT_TRUE(run_is(&r[0], 1, 9, 1));
    CU_ASSERT_TRUE(run_is(&r[1], 4, 0, 1));
    CU_ASSERT_EQUAL_FATAL(storage_map(&t.m, 15, 1, r, 8), 1);
    CU_ASSERT_TRUE(run_is(&r[0], 4, 5, 1));
    /* Zero-length files do not use up runs. */
    CU_ASSERT_EQUAL(storage_map(&t.m, 0, 16, r, 2), 2);
}

static void test_storage_map_rejects_ranges_outside_torrent(void)
{
    static const char *const paths[] = {"t/a", "t/b"};
    static const uint64_t lengths[] = {10, 6};
    struct torrent t;
    torrent_init(&t, 16, 2, paths, lengths);
    struct storage_run r[4];

    CU_ASSERT_EQUAL(storage_map(&t.m, 16, 1, r, 4), 0);  /* starts at the end */
    CU_ASSERT_EQUAL(storage_map(&t.m, 100, 1, r, 4), 0); /* starts past it */
    CU_ASSERT_EQUAL(storage_map(&t.m, 15, 2, r, 4), 0);  /* ends one past it */
    CU_ASSERT_EQUAL(storage_map(&t.m, 0, 17, r, 4), 0);
    CU_ASSERT_EQUAL(storage_map(&t.m, 0, 0, r, 4), 0); /* empty */
    /* Sums that would wrap around. */
    CU_ASSERT_EQUAL(storage_map(&t.m, UINT64_MAX, 1, r, 4), 0);
    CU_ASSERT_EQUAL(storage_map(&t.m, 1, UINT64_MAX, r, 4), 0);
    CU_ASSERT_EQUAL(storage_map(&t.m, UINT64_MAX - 5, 10, r, 4), 0);

    /* A torrent of only empty files has no bytes to map. */
    static const char *const empty_paths[] = {"e/x", "e/y"};
    static const uint64_t empty_lengths[] = {0, 0};
    torrent_init(&t, 16, 2, empty_paths, empty_lengths);
    CU_ASSERT_EQUAL(storage_map(&t.m, 0, 1, r, 4), 0);
}

static void test_storage_map_fails_when_runs_do_not_fit(void)
{
    static const char *const paths[] = {"t/a", "t/b", "t/c"};
    static const uint64_t lengths[] = {10, 5, 20};
    struct torrent t;
    torrent_init(&t, 32, 3, paths, lengths);
    struct storage_run r[3];

    CU_ASSERT_EQUAL(storage_map(&t.m, 0, 32, r, 2), 0);
    CU_ASSERT_EQUAL(storage_map(&t.m, 0, 32, r, 1), 0);
    CU_ASSERT_EQUAL(storage_map(&t.m, 0, 32, r, 0), 0);
    CU_ASSERT_EQUAL(storage_map(&t.m, 0, 32, r, 3), 3);
    CU_ASSERT_EQUAL(storage_map(&t.m, 0, 10, r, 1), 1); /* fits in one */
}

/* ---- on disk ---- */

/* Files with directories at several depths and empty files at both ends and between. */
static const char *const disk_paths[] = {"t/z_first", "t/a", "t/sub/deeper/b", "t/empty",
                                         "t/sub/c", "t/z/last"};
static const uint64_t disk_lengths[] = {0, 10, 5, 0, 20, 0};
#define DISK_FILES 6

static void test_storage_open_creates_directories_and_every_file(void)
{
    struct torrent t;
    torrent_init(&t, 16, DISK_FILES, disk_paths, disk_lengths);
    char *tmp = make_tmpdir("storage");
    char out[512];
    join(out, sizeof out, tmp, "out"); /* does not exist yet */

    enum pt_err err = PT_ERR_IO;
    struct pt_errctx ctx = {PT_NO_OFFSET, ""};
    struct storage *s = storage_open(&t.m, out, &err, &ctx);
    CU_ASSERT_PTR_NOT_NULL(s);
    CU_ASSERT_EQUAL(err, PT_OK);
    for (size_t i = 0; i < DISK_FILES; i++) {
        char path[1024];
        join(path, sizeof path, out, disk_paths[i]);
        CU_ASSERT_TRUE(file_size(path) >= 0);
        if (file_size(path) < 0)
            fprintf(stderr, "\n  storage: %s was not created\n", path);
    }
    /* Zero-length files are there and empty. */
    char path[1024];
    join(path, sizeof path, out, "t/empty");
    CU_ASSERT_EQUAL(file_size(path), 0);
    storage_close(s);

    /* Opening again over what exists is fine. */
    s = storage_open(&t.m, out, &err, &ctx);
    CU_ASSERT_PTR_NOT_NULL(s);
    CU_ASSERT_EQUAL(err, PT_OK);
    storage_close(s);
    storage_close(NULL);

    remove_tree(tmp);
    free(tmp);
}

static void test_storage_pieces_spanning_files_land_on_disk(void)
{
    struct torrent t;
    torrent_init(&t, 16, DISK_FILES, disk_paths, disk_lengths);
    CU_ASSERT_EQUAL_FATAL(t.m.piece_count, 3); /* 16 + 16 + 3 bytes */
    char *tmp = make_tmpdir("storage");
    enum pt_err err;
    struct pt_errctx ctx = {PT_NO_OFFSET, ""};
    struct storage *s = storage_open(&t.m, tmp, &err, &ctx);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);

    /* Out of order: the last (short) piece first. */
    static const uint32_t order[] = {2, 0, 1};
    write_all_pieces(s, &t, order);
    CU_ASSERT_EQUAL(storage_sync(s, &ctx), PT_OK);
    check_files_hold_pattern(&t, tmp);

    /* storage_read gives the same bytes for any range, across file boundaries. */
    for (uint64_t off = 0; off < t.m.total_length; off++) {
        for (uint32_t len = 1; off + len <= t.m.total_length; len += 3) {
            uint8_t got[64];
            CU_ASSERT_EQUAL_FATAL(storage_read(s, off, got, len, &ctx), PT_OK);
            bool same = true;
            for (uint32_t k = 0; k < len; k++)
                same = same && got[k] == pattern(off + k);
            CU_ASSERT_TRUE(same);
        }
    }
    storage_close(s);
    remove_tree(tmp);
    free(tmp);
}

static void test_storage_read_before_write_is_not_found(void)
{
    struct torrent t;
    torrent_init(&t, 16, DISK_FILES, disk_paths, disk_lengths);
    char *tmp = make_tmpdir("storage");
    enum pt_err err;
    struct pt_errctx ctx = {PT_NO_OFFSET, ""};
    struct storage *s = storage_open(&t.m, tmp, &err, &ctx);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    uint8_t got[16];
    CU_ASSERT_EQUAL(storage_read(s, 0, got, 16, &ctx), PT_ERR_NOT_FOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(ctx.msg, "t/a"));
    storage_close(s);
    remove_tree(tmp);
    free(tmp);
}

static void test_storage_write_outside_torrent_fails(void)
{
    struct torrent t;
    torrent_init(&t, 16, DISK_FILES, disk_paths, disk_lengths);
    char *tmp = make_tmpdir("storage");
    enum pt_err err;
    struct pt_errctx ctx = {PT_NO_OFFSET, ""};
    struct storage *s = storage_open(&t.m, tmp, &err, &ctx);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    uint8_t data[16] = {0};
    CU_ASSERT_NOT_EQUAL(storage_write_piece(s, t.m.piece_count, data, 16, &ctx), PT_OK);
    CU_ASSERT_NOT_EQUAL(storage_write_piece(s, 1000, data, 16, &ctx), PT_OK);
    CU_ASSERT_NOT_EQUAL(storage_read(s, t.m.total_length, data, 1, &ctx), PT_OK);
    storage_close(s);
    remove_tree(tmp);
    free(tmp);
}

static void test_storage_open_truncates_longer_file(void)
{
    struct torrent t;
    torrent_init(&t, 16, DISK_FILES, disk_paths, disk_lengths);
    char *tmp = make_tmpdir("storage");
    char dir[1024], path[1024];
    join(dir, sizeof dir, tmp, "t");
    CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0755), 0);
    join(path, sizeof path, tmp, "t/a"); /* 10 bytes in the torrent */
    FILE *f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    for (int i = 0; i < 1000; i++)
        fputc('x', f);
    fclose(f);
    char shorter[1024];
    join(shorter, sizeof shorter, tmp, "t/sub/c"); /* created later: 20 bytes */
    join(dir, sizeof dir, tmp, "t/sub");
    CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0755), 0);
    f = fopen(shorter, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("keep", f);
    fclose(f);

    enum pt_err err;
    struct pt_errctx ctx = {PT_NO_OFFSET, ""};
    struct storage *s = storage_open(&t.m, tmp, &err, &ctx);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(file_size(path), 10);
    /* A shorter file (a partial download) keeps what it has. */
    size_t len;
    uint8_t *got = slurp(shorter, &len);
    CU_ASSERT_EQUAL(len, 4);
    CU_ASSERT(len == 4 && memcmp(got, "keep", 4) == 0);
    free(got);

    write_all_pieces(s, &t, NULL);
    check_files_hold_pattern(&t, tmp);
    storage_close(s);
    remove_tree(tmp);
    free(tmp);
}

static void test_storage_open_under_regular_file_names_path(void)
{
    struct torrent t;
    torrent_init(&t, 16, DISK_FILES, disk_paths, disk_lengths);
    char *tmp = make_tmpdir("storage");
    char blocker[1024], out[1024];
    join(blocker, sizeof blocker, tmp, "blocker");
    FILE *f = fopen(blocker, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fclose(f);

    /* The output directory's parent is a regular file. */
    join(out, sizeof out, blocker, "out");
    enum pt_err err = PT_OK;
    struct pt_errctx ctx = {PT_NO_OFFSET, ""};
    struct storage *s = storage_open(&t.m, out, &err, &ctx);
    CU_ASSERT_PTR_NULL(s);
    CU_ASSERT_NOT_EQUAL(err, PT_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(ctx.msg, blocker));
    if (!strstr(ctx.msg, blocker))
        fprintf(stderr, "\n  storage: message '%s' does not name %s\n", ctx.msg, blocker);
    storage_close(s);

    /* The output directory itself is a regular file. */
    err = PT_OK;
    memset(ctx.msg, 0, sizeof ctx.msg);
    s = storage_open(&t.m, blocker, &err, &ctx);
    CU_ASSERT_PTR_NULL(s);
    CU_ASSERT_NOT_EQUAL(err, PT_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(ctx.msg, blocker));
    storage_close(s);

    /* A directory of the torrent is a regular file: t/sub. */
    char sub_dir[1024], sub[1024];
    join(out, sizeof out, tmp, "out2");
    CU_ASSERT_EQUAL_FATAL(mkdir(out, 0755), 0);
    join(sub_dir, sizeof sub_dir, out, "t");
    CU_ASSERT_EQUAL_FATAL(mkdir(sub_dir, 0755), 0);
    join(sub, sizeof sub, out, "t/sub");
    f = fopen(sub, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fclose(f);
    err = PT_OK;
    memset(ctx.msg, 0, sizeof ctx.msg);
    s = storage_open(&t.m, out, &err, &ctx);
    CU_ASSERT_PTR_NULL(s);
    CU_ASSERT_NOT_EQUAL(err, PT_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(ctx.msg, sub));
    if (!strstr(ctx.msg, sub))
        fprintf(stderr, "\n  storage: message '%s' does not name %s\n", ctx.msg, sub);
    storage_close(s);

    /* A file of the torrent is an existing directory. */
    join(out, sizeof out, tmp, "out3");
    char a_dir[1024];
    join(a_dir, sizeof a_dir, out, "t/a");
    CU_ASSERT_EQUAL_FATAL(mkdir(out, 0755), 0);
    join(sub_dir, sizeof sub_dir, out, "t");
    CU_ASSERT_EQUAL_FATAL(mkdir(sub_dir, 0755), 0);
    CU_ASSERT_EQUAL_FATAL(mkdir(a_dir, 0755), 0);
    err = PT_OK;
    memset(ctx.msg, 0, sizeof ctx.msg);
    s = storage_open(&t.m, out, &err, &ctx);
    CU_ASSERT_PTR_NULL(s);
    CU_ASSERT_NOT_EQUAL(err, PT_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(ctx.msg, a_dir));
    storage_close(s);

    remove_tree(tmp);
    free(tmp);
}

/* A piece over more files than one storage_map call may return (64 runs)
 * is written in several calls, and still lands byte for byte. */
static void test_storage_piece_over_many_small_files(void)
{
    enum { N = 120 };
    static char names[N][16];
    const char *paths[N];
    uint64_t lengths[N];
    for (size_t i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "m/f%03zu", i);
        paths[i] = names[i];
        lengths[i] = i % 5 == 0 ? 0 : 1 + i % 3; /* 1..3 bytes, every fifth empty */
    }
    struct torrent t;
    torrent_init(&t, 256, N, paths, lengths); /* everything in piece 0 */
    CU_ASSERT_EQUAL_FATAL(t.m.piece_count, 1);
    struct storage_run r[N];
    size_t runs = storage_map(&t.m, 0, t.m.total_length, r, N);
    CU_ASSERT_TRUE(runs > 64);

    char *tmp = make_tmpdir("storage");
    enum pt_err err;
    struct pt_errctx ctx = {PT_NO_OFFSET, ""};
    struct storage *s = storage_open(&t.m, tmp, &err, &ctx);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    write_all_pieces(s, &t, NULL);
    check_files_hold_pattern(&t, tmp);
    uint32_t total = (uint32_t)t.m.total_length;
    uint8_t *got = malloc(total);
    CU_ASSERT_PTR_NOT_NULL_FATAL(got);
    CU_ASSERT_EQUAL(storage_read(s, 0, got, total, &ctx), PT_OK);
    bool same = true;
    for (uint32_t k = 0; k < total; k++)
        same = same && got[k] == pattern(k);
    CU_ASSERT_TRUE(same);
    free(got);
    storage_close(s);
    remove_tree(tmp);
    free(tmp);
}

/* ---- storage_write_pieces: coalesced writes ---- */


/* Pieces indices[0..count) of t as storage_pieces over malloc'd pattern
 * buffers (free them with free_pieces). */
static void make_pieces(const struct torrent *t, const uint32_t *indices, size_t count,
                        struct storage_piece *out)
{
    for (size_t k = 0; k < count; k++) {
        uint64_t off = (uint64_t)indices[k] * t->m.piece_length;
        uint64_t left = t->m.total_length - off;
        uint32_t len = (uint32_t)(left < t->m.piece_length ? left : t->m.piece_length);
        out[k] = (struct storage_piece){indices[k], len, pattern_buf(off, len)};
    }
}

static void free_pieces(struct storage_piece *pieces, size_t count)
{
    for (size_t k = 0; k < count; k++)
        free((void *)pieces[k].data);
}

/* Torrent bytes [off, off+len) on disk equal the pattern (read back with storage_read). */
static bool range_holds_pattern(struct storage *s, uint64_t off, uint32_t len)
{
    uint8_t *got = malloc(len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(got);
    struct pt_errctx ctx = {PT_NO_OFFSET, ""};
    bool same = storage_read(s, off, got, len, &ctx) == PT_OK;
    for (uint32_t k = 0; same && k < len; k++)
        same = got[k] == pattern(off + k);
    free(got);
    return same;
}

/* 16-byte pieces over a (40 bytes), an empty file, b (30) and c (26): piece
 * 2 spans a and b, piece 4 spans b and c. 6 pieces, the last full. */
static const char *const run_paths[] = {"r/a", "r/empty", "r/b", "r/c"};
static const uint64_t run_lengths[] = {40, 0, 30, 26};
#define RUN_FILES 4

static void test_storage_write_pieces_one_call_per_file_segment(void)
{
    struct torrent t;
    torrent_init(&t, 16, RUN_FILES, run_paths, run_lengths);
    CU_ASSERT_EQUAL_FATAL(t.m.piece_count, 6);
    char *tmp = make_tmpdir("storage");
    enum pt_err err;
    struct pt_errctx ctx = {PT_NO_OFFSET, ""};
    struct storage *s = storage_open(&t.m, tmp, &err, &ctx);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(storage_write_calls(s), 0);
    /* No write yet: 0 s, or -1 where there is no per-thread CPU clock. */
    CU_ASSERT_EQUAL(storage_write_cpu_seconds(s), HAVE_THREAD_CLOCK ? 0.0 : -1.0);

    static const uint32_t all[] = {0, 1, 2, 3, 4, 5};
    struct storage_piece pieces[6];
    make_pieces(&t, all, 6, pieces);
    size_t written = 99;
    CU_ASSERT_EQUAL(storage_write_pieces(s, pieces, 6, &written, &ctx), PT_OK);
    CU_ASSERT_EQUAL(written, 6);
    /* Six pieces, three non-empty files: three pwritev calls. */
    CU_ASSERT_TRUE(write_calls_are(storage_write_calls(s), 3));
    double cpu = storage_write_cpu_seconds(s);
    CU_ASSERT_TRUE(HAVE_THREAD_CLOCK ? cpu >= 0 && cpu < 1 : cpu == -1);
    check_files_hold_pattern(&t, tmp);
    free_pieces(pieces, 6);
    storage_close(s);
    remove_tree(tmp);
    free(tmp);
}

/* Only neighbours in the array coalesce: 5 | 3 4 | 9 is three runs, still
 * byte for byte; sorted, 3 4 5 | 9 is two. */
static void test_storage_write_pieces_splits_runs_at_gaps(void)
{
    static const char *const paths[] = {"g/one"};
    static const uint64_t lengths[] = {10 * 16 + 5};
    struct torrent t;
    torrent_init(&t, 16, 1, paths, lengths);
    CU_ASSERT_EQUAL_FATAL(t.m.piece_count, 11);
    char *tmp = make_tmpdir("storage");
    enum pt_err err;
    struct pt_errctx ctx = {PT_NO_OFFSET, ""};
    struct storage *s = storage_open(&t.m, tmp, &err, &ctx);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);

    static const uint32_t unsorted[] = {5, 3, 4, 9};
    struct storage_piece pieces[4];
    make_pieces(&t, unsorted, 4, pieces);
    size_t written = 0;
    CU_ASSERT_EQUAL(storage_write_pieces(s, pieces, 4, &written, &ctx), PT_OK);
    CU_ASSERT_EQUAL(written, 4);
    CU_ASSERT_TRUE(write_calls_are(storage_write_calls(s), 3));
    free_pieces(pieces, 4);

    static const uint32_t sorted[] = {0, 1, 2, 6, 7, 8, 10};
    struct storage_piece rest[7];
    make_pieces(&t, sorted, 7, rest);
    CU_ASSERT_EQUAL(storage_write_pieces(s, rest, 7, &written, &ctx), PT_OK);
    CU_ASSERT_EQUAL(written, 7);
    CU_ASSERT_TRUE(write_calls_are(storage_write_calls(s), 3 + 3)); /* 0-2, 6-8, 10 (short, last) */
    free_pieces(rest, 7);
    check_files_hold_pattern(&t, tmp);

    /* A piece outside the torrent fails the batch before any byte moves. */
    uint8_t data[16] = {0};
    struct storage_piece bad[2] = {{0, 16, data}, {t.m.piece_count, 16, data}};
    uint64_t before = storage_write_calls(s);
    CU_ASSERT_EQUAL(storage_write_pieces(s, bad, 2, &written, &ctx), PT_ERR_LIMIT);
    CU_ASSERT_EQUAL(written, 0);
    CU_ASSERT_EQUAL(storage_write_calls(s), before);
    check_files_hold_pattern(&t, tmp);
    storage_close(s);
    remove_tree(tmp);
    free(tmp);
}

/* More pieces than iovecs one call may carry (64 here, fewer on systems with a
 * smaller IOV_MAX): several calls, each still many pieces. */
static void test_storage_write_pieces_respects_iov_limit(void)
{
    enum { PIECES = 150 };
    static const char *const paths[] = {"i/one"};
    static const uint64_t lengths[] = {PIECES * 16};
    struct torrent t;
    torrent_init(&t, 16, 1, paths, lengths);
    char *tmp = make_tmpdir("storage");
    enum pt_err err;
    struct pt_errctx ctx = {PT_NO_OFFSET, ""};
    struct storage *s = storage_open(&t.m, tmp, &err, &ctx);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    uint32_t idx[PIECES];
    for (uint32_t i = 0; i < PIECES; i++)
        idx[i] = i;
    struct storage_piece pieces[PIECES];
    make_pieces(&t, idx, PIECES, pieces);
    CU_ASSERT_EQUAL(storage_write_pieces(s, pieces, PIECES, NULL, &ctx), PT_OK);
    uint64_t calls = storage_write_calls(s);
    CU_ASSERT_TRUE(calls >= 3); /* 3 with 64 iovecs a call */
#if !defined(STORAGE_NO_PWRITEV)
    CU_ASSERT_TRUE(calls <= (PIECES + 15) / 16); /* 16 iovecs a call at worst */
#endif
    check_files_hold_pattern(&t, tmp);
    free_pieces(pieces, PIECES);
    storage_close(s);
    remove_tree(tmp);
    free(tmp);
}

/* A failure part way through a run: the pieces wholly before it count as
 * written, the message names the file, and nothing after it is written. */
static void test_storage_write_pieces_reports_pieces_before_failure(void)
{
    struct torrent t;
    torrent_init(&t, 16, RUN_FILES, run_paths, run_lengths);
    char *tmp = make_tmpdir("storage");
    enum pt_err err;
    struct pt_errctx ctx = {PT_NO_OFFSET, ""};
    struct storage *s = storage_open(&t.m, tmp, &err, &ctx);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    char path[1024];
    join(path, sizeof path, tmp, "r/b"); /* bytes 40..70: a directory now, open() fails */
    CU_ASSERT_EQUAL_FATAL(unlink(path), 0);
    CU_ASSERT_EQUAL_FATAL(mkdir(path, 0755), 0);

    static const uint32_t all[] = {0, 1, 2, 3, 4, 5};
    struct storage_piece pieces[6];
    make_pieces(&t, all, 6, pieces);
    size_t written = 99;
    CU_ASSERT_NOT_EQUAL(storage_write_pieces(s, pieces, 6, &written, &ctx), PT_OK);
    CU_ASSERT_EQUAL(written, 2); /* 0..32 are in r/a; piece 2 needs r/b */
    CU_ASSERT_PTR_NOT_NULL(strstr(ctx.msg, "r/b"));
    CU_ASSERT_TRUE(range_holds_pattern(s, 0, 40));
    join(path, sizeof path, tmp, "r/c");
    CU_ASSERT_EQUAL(file_size(path), 0);
    free_pieces(pieces, 6);
    storage_close(s);
    remove_tree(tmp);
    free(tmp);
}

/* A file-size limit makes pwritev stop short inside a piece: the rest is
 * retried from there (advancing the iovecs), and the EFBIG that follows is
 * reported like a full disk, with the pieces wholly written before it. */
static void test_storage_write_pieces_handles_short_writes(void)
{
    static const char *const paths[] = {"s/one"};
    static const uint64_t lengths[] = {16 * 256};
    struct torrent t;
    torrent_init(&t, 256, 1, paths, lengths);
    char *tmp = make_tmpdir("storage");
    enum pt_err err;
    struct pt_errctx ctx = {PT_NO_OFFSET, ""};
    struct storage *s = storage_open(&t.m, tmp, &err, &ctx);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    uint32_t idx[16];
    for (uint32_t i = 0; i < 16; i++)
        idx[i] = i;
    struct storage_piece pieces[16];
    make_pieces(&t, idx, 16, pieces);

    struct rlimit old;
    CU_ASSERT_EQUAL_FATAL(getrlimit(RLIMIT_FSIZE, &old), 0);
    struct rlimit small = {1000, old.rlim_max}; /* mid piece 3 */
    if (old.rlim_max != RLIM_INFINITY && old.rlim_max < 1000)
        small.rlim_cur = old.rlim_max;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN); /* else the process dies */
    CU_ASSERT_EQUAL_FATAL(setrlimit(RLIMIT_FSIZE, &small), 0);
    size_t written = 99;
    err = storage_write_pieces(s, pieces, 16, &written, &ctx);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, old_handler);

    CU_ASSERT_EQUAL(err, PT_ERR_DISK_FULL);
    CU_ASSERT_EQUAL(written, 3);
    CU_ASSERT_TRUE(write_calls_are(storage_write_calls(s), 2)); /* the short one, then EFBIG */
    CU_ASSERT_PTR_NOT_NULL(strstr(ctx.msg, "s/one"));
    CU_ASSERT_TRUE(range_holds_pattern(s, 0, 1000));

    /* With room again the same batch completes. */
    CU_ASSERT_EQUAL(storage_write_pieces(s, pieces, 16, &written, &ctx), PT_OK);
    CU_ASSERT_EQUAL(written, 16);
    check_files_hold_pattern(&t, tmp);
    free_pieces(pieces, 16);
    storage_close(s);
    remove_tree(tmp);
    free(tmp);
}

/* Advice never fails and never changes the data, even outside the torrent. */
static void test_storage_advise_willneed_is_harmless(void)
{
    struct torrent t;
    torrent_init(&t, 16, RUN_FILES, run_paths, run_lengths);
    char *tmp = make_tmpdir("storage");
    enum pt_err err;
    struct pt_errctx ctx = {PT_NO_OFFSET, ""};
    struct storage *s = storage_open(&t.m, tmp, &err, &ctx);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    write_all_pieces(s, &t, NULL);
    storage_advise_willneed(s, 0, t.m.total_length);
    storage_advise_willneed(s, 32, 16); /* spans r/a and r/b */
    storage_advise_willneed(s, t.m.total_length, 1);
    storage_advise_willneed(s, UINT64_MAX, 2);
    storage_advise_willneed(s, 0, 0);
    check_files_hold_pattern(&t, tmp);
    storage_close(s);
    remove_tree(tmp);
    free(tmp);
}

/* Called by tests/test_main.c (see suites.h there). */
int test_storage_register(void);

int test_storage_register(void)
{
    CU_pSuite s = CU_add_suite("storage", NULL, NULL);
    if (!s)
        return -1;
    struct {
        const char *name;
        CU_TestFunc fn;
    } tests[] = {
        {"map single file", test_storage_map_single_file},
        {"map piece spanning three files", test_storage_map_piece_spanning_three_files},
        {"map skips zero-length files", test_storage_map_skips_zero_length_files},
        {"map rejects ranges outside torrent", test_storage_map_rejects_ranges_outside_torrent},
        {"map fails when runs do not fit", test_storage_map_fails_when_runs_do_not_fit},
        {"open creates directories and every file",
         test_storage_open_creates_directories_and_every_file},
        {"pieces spanning files land on disk", test_storage_pieces_spanning_files_land_on_disk},
        {"read before write is not found", test_storage_read_before_write_is_not_found},
        {"write outside torrent fails", test_storage_write_outside_torrent_fails},
        {"open truncates longer file", test_storage_open_truncates_longer_file},
        {"open under regular file names path", test_storage_open_under_regular_file_names_path},
        {"piece over many small files", test_storage_piece_over_many_small_files},
        {"write pieces: one call per file segment",
         test_storage_write_pieces_one_call_per_file_segment},
        {"write pieces: splits runs at gaps", test_storage_write_pieces_splits_runs_at_gaps},
        {"write pieces: respects iov limit", test_storage_write_pieces_respects_iov_limit},
        {"write pieces: reports pieces before failure",
         test_storage_write_pieces_reports_pieces_before_failure},
        {"write pieces: handles short writes", test_storage_write_pieces_handles_short_writes},
        {"advise willneed is harmless", test_storage_advise_willneed_is_harmless},
    };
    for (size_t k = 0; k < sizeof tests / sizeof tests[0]; k++)
        if (!CU_add_test(s, tests[k].name, tests[k].fn))
            return -1;
    return 0;
}
