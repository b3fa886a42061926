/*
 * Tests for create, through create.h: create_choose_piece_length at its edges;
 * create_torrent on a temporary tree (nested directories, a zero-length file,
 * a hidden file, symlinks and a FIFO that must be left out) read back with
 * metainfo_parse and checked against SHA-1 computed here over the files'
 * bytes in the expected order; byte-identical output with no_date whatever
 * the thread count; a single-file torrent; trackers, comment and the private
 * flag; canonical key order; errors (missing path, empty directory, bad
 * options, an output directory that does not exist). The command itself
 * (create_cli) is run in-process for its exit codes, with its output sent
 * to /dev/null.
 */
#include <CUnit/CUnit.h>
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bencode.h"
#include "buf.h"
#include "cli.h"
#include "create.h"
#include "metainfo.h"
#include "sha1.h"
#include "support.h"

int test_create_register(void);

#define KIB 1024ull
#define MIB (1024ull * 1024ull)
#define GIB (1024ull * MIB)

/* ---- helpers ---- */

static void pathf(char *out, size_t cap, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* snprintf that fails the test on truncation (and keeps GCC's truncation
 * warning, which cannot know our paths are short, quiet). */
static void pathf(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    CU_ASSERT_FATAL(n >= 0 && (size_t)n < cap);
}

/* The byte at offset `i` of a test file with seed `seed` (a cheap LCG, so
 * pieces differ from each other). */
static uint8_t data_byte(unsigned seed, uint64_t i)
{
    uint64_t x = (i + 1) * 6364136223846793005ull + seed * 1442695040888963407ull;
    return (uint8_t)(x >> 56);
}

/* Writes `len` bytes of pattern `seed` to dir/rel (directories made as
 * needed; `dir` itself too, but not its parent). */
static void write_file(const char *dir, const char *rel, unsigned seed, size_t len)
{
    char path[4096];
    mkdir(dir, 0755); /* may exist already */
    pathf(path, sizeof path, "%s/%s", dir, rel);
    for (char *p = path + strlen(dir) + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0755);
            *p = '/';
        }
    }
    FILE *f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    for (size_t i = 0; i < len; i++)
        fputc(data_byte(seed, i), f);
    CU_ASSERT_EQUAL(fclose(f), 0);
}

struct tfile {
    const char *rel; /* path below the torrent's top directory */
    unsigned seed;
    size_t len;
};

/* The test tree, listed in the order the torrent must have: byte order of
 * the relative paths ('.' 0x2e sorts before '/' 0x2f, so "a.txt" comes before
 * "a/..."; uppercase before lowercase). */
static const struct tfile tree_files[] = {
    {".hidden", 1, 3},
    {"Zeta.bin", 2, 20000},
    {"a.txt", 3, 5},
    {"a/empty", 4, 0},
    {"a/x.bin", 5, 40000},
    {"b.bin", 6, 70001},
    {"c/d/e/deep.bin", 7, 100001},
    {"c/d/zero", 8, 0},
    {"z-last", 9, 16384},
};
#define TREE_COUNT (sizeof tree_files / sizeof tree_files[0])

/* Makes <tmp>/top with tree_files (created in an order unlike the sorted
 * one), plus symlinks to a file and to a directory and a FIFO, all of which
 * the torrent must leave out. Returns the path of top (caller frees). */
static char *make_tree(const char *tmp)
{
    char top[4096];
    pathf(top, sizeof top, "%s/top", tmp);
    CU_ASSERT_EQUAL_FATAL(mkdir(top, 0755), 0);
    for (size_t i = TREE_COUNT; i-- > 0;)
        write_file(top, tree_files[i].rel, tree_files[i].seed, tree_files[i].len);
    char p[4096];
    pathf(p, sizeof p, "%s/link-to-file", top);
    CU_ASSERT_EQUAL(symlink("b.bin", p), 0);
    pathf(p, sizeof p, "%s/a/link-to-dir", top);
    CU_ASSERT_EQUAL(symlink("../c", p), 0);
    pathf(p, sizeof p, "%s/c/fifo", top);
    CU_ASSERT_EQUAL(mkfifo(p, 0644), 0);
    char *s = strdup(top);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    return s;
}

/* All tree_files' bytes back to back, in torrent order. */
static uint8_t *tree_bytes(const struct tfile *files, size_t n, size_t *len_out)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += files[i].len;
    uint8_t *b = malloc(total ? total : 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    size_t at = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < files[i].len; k++)
            b[at++] = data_byte(files[i].seed, k);
    *len_out = total;
    return b;
}

static void opts_init(struct create_opts *o, const char *path, const char *out)
{
    memset(o, 0, sizeof *o);
    o->path = path;
    o->out_path = out;
}

/* Reads the whole file at `path` into `b`. */
static void slurp(const char *path, struct buf *b)
{
    buf_init(b);
    CU_ASSERT_EQUAL_FATAL(buf_read_file(b, path, 64u << 20), PT_OK);
}

/* Loads the torrent at `path`, failing the test if it does not parse or if
 * any dictionary in it has keys out of order. */
static void load(const char *path, struct metainfo *m)
{
    struct buf b;
    slurp(path, &b);
    struct bencode_doc doc;
    CU_ASSERT_EQUAL_FATAL(bencode_decode(b.data, b.len, &doc, NULL), PT_OK);
    CU_ASSERT_FALSE(doc.unsorted_keys);
    bencode_release(&doc);
    struct pt_errctx ec = {PT_NO_OFFSET, ""};
    enum pt_err e = metainfo_parse(b.data, b.len, m, &ec);
    if (e != PT_OK)
        fprintf(stderr, "\n  metainfo_parse(%s): %s\n", path, ec.msg);
    CU_ASSERT_EQUAL_FATAL(e, PT_OK);
    buf_release(&b);
}

/* Every piece hash of `m` equals SHA-1 over the same range of `data`. */
static void check_pieces(const struct metainfo *m, const uint8_t *data, size_t len)
{
    CU_ASSERT_EQUAL_FATAL(m->total_length, len);
    CU_ASSERT_EQUAL_FATAL(m->piece_count, (len + m->piece_length - 1) / m->piece_length);
    unsigned bad = 0;
    for (uint32_t p = 0; p < m->piece_count; p++) {
        size_t off = (size_t)p * m->piece_length;
        size_t n = len - off < m->piece_length ? len - off : m->piece_length;
        uint8_t h[SHA1_LEN];
        CU_ASSERT_FATAL(sha1(data + off, n, h));
        if (memcmp(h, m->piece_hashes + (size_t)p * SHA1_LEN, SHA1_LEN) != 0)
            bad++;
    }
    CU_ASSERT_EQUAL(bad, 0);
}

static bool files_equal(const char *a, const char *b)
{
    struct buf x, y;
    slurp(a, &x);
    slurp(b, &y);
    bool same = x.len == y.len && memcmp(x.data, y.data, x.len) == 0;
    buf_release(&x);
    buf_release(&y);
    return same;
}

/* True if the bytes of `b` contain the string `s`. */
static bool contains(const struct buf *b, const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i + n <= b->len; i++)
        if (memcmp(b->data + i, s, n) == 0)
            return true;
    return false;
}

/* ---- piece length ---- */

/* Pieces a total makes at the chosen length. */
static uint64_t pieces_for(uint64_t total)
{
    uint32_t l = create_choose_piece_length(total);
    return (total + l - 1) / l;
}

static void test_create_piece_length_edges(void)
{
    CU_ASSERT_EQUAL(create_choose_piece_length(0), CREATE_MIN_PIECE);
    CU_ASSERT_EQUAL(create_choose_piece_length(1), CREATE_MIN_PIECE);
    CU_ASSERT_EQUAL(create_choose_piece_length(16 * MIB), CREATE_MIN_PIECE); /* 1024 pieces */
    /* Up to 2,000 pieces of 16 KiB stay at 16 KiB; one byte more doubles. */
    CU_ASSERT_EQUAL(create_choose_piece_length(2000 * 16 * KIB), 16 * KIB);
    CU_ASSERT_EQUAL(create_choose_piece_length(2000 * 16 * KIB + 1), 32 * KIB);

    uint32_t g = create_choose_piece_length(GIB);
    CU_ASSERT(g == 512 * KIB || g == MIB);
    CU_ASSERT(pieces_for(GIB) >= 1000 && pieces_for(GIB) <= 2000);

    CU_ASSERT_EQUAL(create_choose_piece_length(100 * GIB), CREATE_MAX_PIECE); /* 6400 pieces */
    CU_ASSERT_EQUAL(create_choose_piece_length(UINT64_MAX), CREATE_MAX_PIECE);
}

/* Between the floor and the cap, every total gives 1,000-2,000 pieces, and
 * the result is always a power of two within the limits. */
static void test_create_piece_length_range(void)
{
    for (uint64_t t = 1; t < 1000 * GIB; t = t * 3 / 2 + 7) {
        uint32_t l = create_choose_piece_length(t);
        CU_ASSERT(l >= CREATE_MIN_PIECE && l <= CREATE_MAX_PIECE && (l & (l - 1)) == 0);
        uint64_t n = pieces_for(t);
        if (t > 2000 * (uint64_t)CREATE_MIN_PIECE && t <= 2000 * (uint64_t)CREATE_MAX_PIECE)
            CU_ASSERT(n >= 1000 && n <= 2000);
        if (t <= 2000 * (uint64_t)CREATE_MIN_PIECE)
            CU_ASSERT_EQUAL(l, CREATE_MIN_PIECE);
        if (t > 2000 * (uint64_t)CREATE_MAX_PIECE)
            CU_ASSERT_EQUAL(l, CREATE_MAX_PIECE);
    }
}

/* ---- create_torrent ---- */

static void test_create_tree_matches_independent_hashes(void)
{
    char *tmp = make_tmpdir("create");
    char *top = make_tree(tmp);
    char out[4096];
    pathf(out, sizeof out, "%s/tree.torrent", tmp);

    struct create_opts o;
    opts_init(&o, top, out);
    o.piece_length = 16 * 1024; /* small pieces: many span two or three files */
    o.threads = 3;
    o.trackers[0] = "http://127.0.0.1:9/announce";
    o.tracker_count = 1;
    struct pt_errctx ec = {PT_NO_OFFSET, ""};
    enum pt_err e = create_torrent(&o, &ec);
    if (e != PT_OK)
        fprintf(stderr, "\n  create_torrent: %s\n", ec.msg);
    CU_ASSERT_EQUAL_FATAL(e, PT_OK);

    struct metainfo m;
    load(out, &m);
    CU_ASSERT_STRING_EQUAL(m.name, "top");
    CU_ASSERT_TRUE(m.multi_file);
    CU_ASSERT_EQUAL(m.piece_length, 16 * 1024);
    CU_ASSERT_FALSE(m.is_private);
    CU_ASSERT_PTR_NULL(m.comment);
    CU_ASSERT_PTR_NOT_NULL(m.created_by);
    if (m.created_by)
        CU_ASSERT_STRING_EQUAL(m.created_by, "ptorrent " PT_VERSION);
    CU_ASSERT(m.creation_date > 0 && m.creation_date <= (int64_t)time(NULL));
    CU_ASSERT_EQUAL(m.tier_count, 1);
    if (m.tier_count == 1)
        CU_ASSERT_STRING_EQUAL(m.tiers[0].urls[0], "http://127.0.0.1:9/announce");

    /* Files: sorted, zero-length ones kept, links and the FIFO left out. */
    CU_ASSERT_EQUAL_FATAL(m.file_count, TREE_COUNT);
    for (size_t i = 0; i < TREE_COUNT; i++) {
        char want[256];
        pathf(want, sizeof want, "top/%s", tree_files[i].rel);
        CU_ASSERT_STRING_EQUAL(m.files[i].path, want);
        CU_ASSERT_EQUAL(m.files[i].length, tree_files[i].len);
    }
    size_t len;
    uint8_t *data = tree_bytes(tree_files, TREE_COUNT, &len);
    check_pieces(&m, data, len);
    free(data);
    metainfo_release(&m);
    free(top);
    remove_tree(tmp);
    free(tmp);
}

/* More pieces than threads and more threads than pieces, default length. */
static void test_create_default_piece_length_and_threads(void)
{
    char *tmp = make_tmpdir("create");
    char *top = make_tree(tmp);
    char out[4096];
    pathf(out, sizeof out, "%s/t.torrent", tmp);
    size_t len;
    uint8_t *data = tree_bytes(tree_files, TREE_COUNT, &len);
    static const unsigned threads[] = {0, 1, 2, 7, 64};
    for (size_t k = 0; k < sizeof threads / sizeof threads[0]; k++) {
        struct create_opts o;
        opts_init(&o, top, out);
        o.threads = threads[k];
        CU_ASSERT_EQUAL_FATAL(create_torrent(&o, NULL), PT_OK);
        struct metainfo m;
        load(out, &m);
        CU_ASSERT_EQUAL(m.piece_length, create_choose_piece_length(len));
        CU_ASSERT_EQUAL(m.tier_count, 0); /* trackerless */
        check_pieces(&m, data, len);
        metainfo_release(&m);
    }
    free(data);
    free(top);
    remove_tree(tmp);
    free(tmp);
}

/* no_date: the same input gives the same bytes, whatever the thread count;
 * a trailing slash on PATH changes nothing. */
static void test_create_no_date_is_reproducible(void)
{
    char *tmp = make_tmpdir("create");
    char *top = make_tree(tmp);
    char out1[4096], out2[4096], slash[4096];
    pathf(out1, sizeof out1, "%s/1.torrent", tmp);
    pathf(out2, sizeof out2, "%s/2.torrent", tmp);
    pathf(slash, sizeof slash, "%s/", top);

    struct create_opts o;
    opts_init(&o, top, out1);
    o.no_date = true;
    o.piece_length = 16 * 1024;
    o.threads = 1;
    CU_ASSERT_EQUAL_FATAL(create_torrent(&o, NULL), PT_OK);
    opts_init(&o, slash, out2);
    o.no_date = true;
    o.piece_length = 16 * 1024;
    o.threads = 5;
    CU_ASSERT_EQUAL_FATAL(create_torrent(&o, NULL), PT_OK);
    CU_ASSERT_TRUE(files_equal(out1, out2));

    struct metainfo m;
    load(out1, &m);
    CU_ASSERT_EQUAL(m.creation_date, -1);
    CU_ASSERT_STRING_EQUAL(m.name, "top");
    metainfo_release(&m);
    free(top);
    remove_tree(tmp);
    free(tmp);
}

static void test_create_single_file(void)
{
    char *tmp = make_tmpdir("create");
    write_file(tmp, "one.bin", 42, 50001);
    char path[4096], out[4096];
    pathf(path, sizeof path, "%s/one.bin", tmp);
    pathf(out, sizeof out, "%s/one.torrent", tmp);

    struct create_opts o;
    opts_init(&o, path, out);
    o.piece_length = 32 * 1024;
    o.comment = "a comment";
    o.created_by = "test 1.0";
    CU_ASSERT_EQUAL_FATAL(create_torrent(&o, NULL), PT_OK);
    struct metainfo m;
    load(out, &m);
    CU_ASSERT_FALSE(m.multi_file);
    CU_ASSERT_STRING_EQUAL(m.name, "one.bin");
    CU_ASSERT_EQUAL(m.file_count, 1);
    CU_ASSERT_EQUAL(m.files[0].length, 50001);
    CU_ASSERT_EQUAL(m.piece_count, 2);
    CU_ASSERT_STRING_EQUAL(m.comment, "a comment");
    CU_ASSERT_STRING_EQUAL(m.created_by, "test 1.0");
    const struct tfile one = {"one.bin", 42, 50001};
    size_t len;
    uint8_t *data = tree_bytes(&one, 1, &len);
    check_pieces(&m, data, len);
    free(data);
    metainfo_release(&m);

    /* Replacing an existing output is the library's job; refusing is the CLI's. */
    o.piece_length = 16 * 1024;
    CU_ASSERT_EQUAL(create_torrent(&o, NULL), PT_OK);
    load(out, &m);
    CU_ASSERT_EQUAL(m.piece_count, 4);
    metainfo_release(&m);
    remove_tree(tmp);
    free(tmp);
}

/* PATH may be a symlink to a file (the user named it); the name is the link's. */
static void test_create_single_file_through_symlink(void)
{
    char *tmp = make_tmpdir("create");
    write_file(tmp, "real.bin", 7, 30000);
    char link[4096], out[4096];
    pathf(link, sizeof link, "%s/alias.bin", tmp);
    pathf(out, sizeof out, "%s/alias.torrent", tmp);
    CU_ASSERT_EQUAL_FATAL(symlink("real.bin", link), 0);
    struct create_opts o;
    opts_init(&o, link, out);
    CU_ASSERT_EQUAL_FATAL(create_torrent(&o, NULL), PT_OK);
    struct metainfo m;
    load(out, &m);
    CU_ASSERT_STRING_EQUAL(m.name, "alias.bin");
    CU_ASSERT_EQUAL(m.total_length, 30000);
    const struct tfile one = {"alias.bin", 7, 30000};
    size_t len;
    uint8_t *data = tree_bytes(&one, 1, &len);
    check_pieces(&m, data, len);
    free(data);
    metainfo_release(&m);
    remove_tree(tmp);
    free(tmp);
}

/* Making a torrent into the tree it describes, twice: the second run must not
 * list the first run's torrent, which it replaces. */
static void test_create_out_inside_tree(void)
{
    char *tmp = make_tmpdir("create");
    write_file(tmp, "d/f.bin", 3, 20000);
    char dir[4096], out[4096];
    pathf(dir, sizeof dir, "%s/d", tmp);
    pathf(out, sizeof out, "%s/d/d.torrent", tmp);
    struct create_opts o;
    opts_init(&o, dir, out);
    o.no_date = true;
    CU_ASSERT_EQUAL_FATAL(create_torrent(&o, NULL), PT_OK);
    struct buf first;
    slurp(out, &first);
    CU_ASSERT_EQUAL_FATAL(create_torrent(&o, NULL), PT_OK);
    struct buf second;
    slurp(out, &second);
    CU_ASSERT(first.len == second.len && memcmp(first.data, second.data, first.len) == 0);
    struct metainfo m;
    load(out, &m);
    CU_ASSERT_EQUAL(m.file_count, 1);
    CU_ASSERT_STRING_EQUAL(m.files[0].path, "d/f.bin");
    metainfo_release(&m);
    buf_release(&first);
    buf_release(&second);
    remove_tree(tmp);
    free(tmp);
}

/* A piece exactly as long as the data: one piece, no short last piece. */
static void test_create_exact_piece(void)
{
    char *tmp = make_tmpdir("create");
    write_file(tmp, "d/a", 1, 8192);
    write_file(tmp, "d/b", 2, 8192);
    char path[4096], out[4096];
    pathf(path, sizeof path, "%s/d", tmp);
    pathf(out, sizeof out, "%s/d.torrent", tmp);
    struct create_opts o;
    opts_init(&o, path, out);
    o.threads = 4;
    CU_ASSERT_EQUAL_FATAL(create_torrent(&o, NULL), PT_OK);
    struct metainfo m;
    load(out, &m);
    CU_ASSERT_EQUAL(m.piece_count, 1);
    CU_ASSERT_EQUAL(m.file_count, 2);
    static const struct tfile two[] = {{"a", 1, 8192}, {"b", 2, 8192}};
    size_t len;
    uint8_t *data = tree_bytes(two, 2, &len);
    check_pieces(&m, data, len);
    free(data);
    metainfo_release(&m);
    remove_tree(tmp);
    free(tmp);
}

static void test_create_private_and_tiers(void)
{
    char *tmp = make_tmpdir("create");
    write_file(tmp, "p.bin", 3, 1000);
    char path[4096], out[4096];
    pathf(path, sizeof path, "%s/p.bin", tmp);
    pathf(out, sizeof out, "%s/p.torrent", tmp);
    struct create_opts o;
    opts_init(&o, path, out);
    o.is_private = true;
    o.trackers[0] = "http://a.example/announce";
    o.trackers[1] = "udp://b.example:80";
    o.trackers[2] = "http://c.example/announce";
    o.tracker_count = 3;
    CU_ASSERT_EQUAL_FATAL(create_torrent(&o, NULL), PT_OK);
    struct metainfo m;
    load(out, &m);
    CU_ASSERT_TRUE(m.is_private);
    CU_ASSERT_EQUAL_FATAL(m.tier_count, 3);
    for (size_t t = 0; t < 3; t++) {
        CU_ASSERT_EQUAL(m.tiers[t].count, 1);
        CU_ASSERT_STRING_EQUAL(m.tiers[t].urls[0], o.trackers[t]);
    }
    metainfo_release(&m);

    /* `announce` is the first tracker; the private flag is inside `info`. */
    struct buf b;
    slurp(out, &b);
    static const char head[] = "d8:announce25:http://a.example/announce13:announce-listll25:";
    CU_ASSERT(b.len > sizeof head && memcmp(b.data, head, sizeof head - 1) == 0);
    static const char tail[] = "7:privatei1eee";
    CU_ASSERT(b.len > sizeof tail &&
              memcmp(b.data + b.len - (sizeof tail - 1), tail, sizeof tail - 1) == 0);
    buf_release(&b);

    /* Not private: no `private` key at all. */
    o.is_private = false;
    o.tracker_count = 1;
    CU_ASSERT_EQUAL_FATAL(create_torrent(&o, NULL), PT_OK);
    slurp(out, &b);
    CU_ASSERT_FALSE(contains(&b, "7:private"));
    CU_ASSERT_FALSE(contains(&b, "announce-list"));
    buf_release(&b);
    remove_tree(tmp);
    free(tmp);
}

/* Returns true if `dir` holds `keep` and nothing else. */
static bool dir_holds_only(const char *dir, const char *keep)
{
    DIR *d = opendir(dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    bool only = true, found = false;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (strcmp(de->d_name, keep) == 0)
            found = true;
        else
            only = false;
    }
    closedir(d);
    return only && found;
}

static void test_create_errors(void)
{
    char *tmp = make_tmpdir("create");
    char path[4096], out[4096];
    pathf(out, sizeof out, "%s/x.torrent", tmp);
    struct create_opts o;
    struct pt_errctx ec = {PT_NO_OFFSET, ""};

    /* PATH missing: named in the message. */
    pathf(path, sizeof path, "%s/missing", tmp);
    opts_init(&o, path, out);
    CU_ASSERT_EQUAL(create_torrent(&o, &ec), PT_ERR_NOT_FOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(ec.msg, "missing"));

    /* An empty directory, then one with only empty files and a symlink. */
    pathf(path, sizeof path, "%s/empty", tmp);
    CU_ASSERT_EQUAL_FATAL(mkdir(path, 0755), 0);
    opts_init(&o, path, out);
    ec.msg[0] = '\0';
    CU_ASSERT_NOT_EQUAL(create_torrent(&o, &ec), PT_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(ec.msg, "nothing to share"));
    write_file(path, "sub/zero", 0, 0);
    char link[4096];
    pathf(link, sizeof link, "%s/link", path);
    CU_ASSERT_EQUAL(symlink("/etc/hostname", link), 0);
    ec.msg[0] = '\0';
    CU_ASSERT_NOT_EQUAL(create_torrent(&o, &ec), PT_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(ec.msg, "nothing to share"));

    /* An empty single file. */
    write_file(tmp, "zero.bin", 0, 0);
    pathf(path, sizeof path, "%s/zero.bin", tmp);
    opts_init(&o, path, out);
    ec.msg[0] = '\0';
    CU_ASSERT_NOT_EQUAL(create_torrent(&o, &ec), PT_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(ec.msg, "nothing to share"));

    /* Bad options. */
    write_file(tmp, "ok.bin", 5, 100);
    pathf(path, sizeof path, "%s/ok.bin", tmp);
    opts_init(&o, path, out);
    o.piece_length = 3 * 16384;
    CU_ASSERT_EQUAL(create_torrent(&o, NULL), PT_ERR_USAGE);
    o.piece_length = 8192;
    CU_ASSERT_EQUAL(create_torrent(&o, NULL), PT_ERR_USAGE);
    o.piece_length = 32u << 20;
    CU_ASSERT_EQUAL(create_torrent(&o, NULL), PT_ERR_USAGE);
    o.piece_length = 0;
    o.trackers[0] = "";
    o.tracker_count = 1;
    CU_ASSERT_EQUAL(create_torrent(&o, NULL), PT_ERR_USAGE);
    o.tracker_count = CREATE_MAX_TRACKERS + 1;
    CU_ASSERT_EQUAL(create_torrent(&o, NULL), PT_ERR_USAGE);

    /* The output's directory does not exist: an error, and nothing left behind. */
    char bad_out[4096];
    pathf(bad_out, sizeof bad_out, "%s/no/such/dir/x.torrent", tmp);
    opts_init(&o, path, bad_out);
    ec.msg[0] = '\0';
    CU_ASSERT_EQUAL(create_torrent(&o, &ec), PT_ERR_NOT_FOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(ec.msg, "x.torrent"));

    /* A file name with a backslash cannot go into a torrent. */
    char bs[4096];
    pathf(bs, sizeof bs, "%s/bs", tmp);
    write_file(bs, "a\\b", 1, 10);
    opts_init(&o, bs, out);
    CU_ASSERT_EQUAL(create_torrent(&o, NULL), PT_ERR_META_BAD_PATH);

    /* A FIFO as PATH. */
    pathf(path, sizeof path, "%s/fifo", tmp);
    CU_ASSERT_EQUAL(mkfifo(path, 0644), 0);
    opts_init(&o, path, out);
    CU_ASSERT_NOT_EQUAL(create_torrent(&o, NULL), PT_OK);

    /* No failure above wrote x.torrent or left a temporary file: only what
     * the test made is there. */
    CU_ASSERT_EQUAL(access(out, F_OK), -1);
    static const char *const made[] = {"missing", "empty", "zero.bin", "ok.bin", "bs", "fifo"};
    DIR *d = opendir(tmp);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        bool known = strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0;
        for (size_t i = 0; i < sizeof made / sizeof made[0]; i++)
            known = known || strcmp(de->d_name, made[i]) == 0;
        CU_ASSERT_TRUE(known);
        if (!known)
            fprintf(stderr, "\n  left behind: %s\n", de->d_name);
    }
    closedir(d);
    remove_tree(tmp);
    free(tmp);
}

/* The output is written through a temporary file that never stays behind. */
static void test_create_leaves_no_temporary(void)
{
    char *tmp = make_tmpdir("create");
    char src[4096], outdir[4096], out[4096];
    pathf(src, sizeof src, "%s/src", tmp);
    write_file(src, "f.bin", 9, 40000);
    pathf(outdir, sizeof outdir, "%s/out", tmp);
    CU_ASSERT_EQUAL_FATAL(mkdir(outdir, 0755), 0);
    pathf(out, sizeof out, "%s/f.torrent", outdir);
    struct create_opts o;
    opts_init(&o, src, out);
    CU_ASSERT_EQUAL_FATAL(create_torrent(&o, NULL), PT_OK);
    CU_ASSERT_EQUAL_FATAL(create_torrent(&o, NULL), PT_OK);
    CU_ASSERT_TRUE(dir_holds_only(outdir, "f.torrent"));
    remove_tree(tmp);
    free(tmp);
}

/* "." as PATH takes the name of the current directory. */
static void test_create_dot_takes_real_name(void)
{
    char *tmp = make_tmpdir("create");
    write_file(tmp, "here/f.bin", 1, 1234);
    char here[4096], out[4096], cwd[4096];
    pathf(here, sizeof here, "%s/here", tmp);
    pathf(out, sizeof out, "%s/here.torrent", tmp);
    CU_ASSERT_PTR_NOT_NULL_FATAL(getcwd(cwd, sizeof cwd));
    CU_ASSERT_EQUAL_FATAL(chdir(here), 0);
    struct create_opts o;
    opts_init(&o, ".", out);
    enum pt_err e = create_torrent(&o, NULL);
    CU_ASSERT_EQUAL(chdir(cwd), 0);
    CU_ASSERT_EQUAL_FATAL(e, PT_OK);
    struct metainfo m;
    load(out, &m);
    CU_ASSERT_STRING_EQUAL(m.name, "here");
    CU_ASSERT_STRING_EQUAL(m.files[0].path, "here/f.bin");
    metainfo_release(&m);
    remove_tree(tmp);
    free(tmp);
}

/* ---- create_cli ---- */

/* Runs create_cli on a copy of the NULL-terminated `args` with stdout and
 * stderr sent to /dev/null; returns its exit code. */
static int run_cli(const char *const *args)
{
    char *argv[32];
    int argc = 0;
    for (; args[argc]; argc++) {
        CU_ASSERT_FATAL(argc < 31);
        argv[argc] = strdup(args[argc]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(argv[argc]);
    }
    argv[argc] = NULL;
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(1), saved_err = dup(2);
    int null = open("/dev/null", O_WRONLY);
    CU_ASSERT_FATAL(saved_out >= 0 && saved_err >= 0 && null >= 0);
    dup2(null, 1);
    dup2(null, 2);
    close(null);
#if defined(__GLIBC__)
    optind = 0; /* glibc: start getopt over */
#else
    optind = 1;
#if defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || defined(__NetBSD__)
    optreset = 1;
#endif
#endif
    int rc = create_cli(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    for (int i = 0; i < argc; i++)
        free(argv[i]);
    return rc;
}

#define CLI(...) run_cli((const char *const[]){__VA_ARGS__, NULL})

static void test_create_cli_exit_codes(void)
{
    char *tmp = make_tmpdir("create");
    write_file(tmp, "f.bin", 1, 100000);
    char path[4096], out[4096], missing[4096], empty[4096];
    pathf(path, sizeof path, "%s/f.bin", tmp);
    pathf(out, sizeof out, "%s/f.torrent", tmp);
    pathf(missing, sizeof missing, "%s/nope", tmp);
    pathf(empty, sizeof empty, "%s/empty", tmp);
    CU_ASSERT_EQUAL_FATAL(mkdir(empty, 0755), 0);

    CU_ASSERT_EQUAL(CLI("create", "--help"), CLI_EXIT_OK);
    CU_ASSERT_EQUAL(CLI("create"), CLI_EXIT_USAGE);
    CU_ASSERT_EQUAL(CLI("create", path), CLI_EXIT_USAGE);      /* no -o */
    CU_ASSERT_EQUAL(CLI("create", "-o", out), CLI_EXIT_USAGE); /* no PATH */
    CU_ASSERT_EQUAL(CLI("create", "-o", out, path, path), CLI_EXIT_USAGE);
    CU_ASSERT_EQUAL(CLI("create", "--bogus", "-o", out, path), CLI_EXIT_USAGE);
    CU_ASSERT_EQUAL(CLI("create", "-a", "", "-o", out, path), CLI_EXIT_USAGE);
    CU_ASSERT_EQUAL(CLI("create", "--threads", "0", "-o", out, path), CLI_EXIT_USAGE);
    /* -l: 2^N for N < 32, bytes, K and M; powers of two from 16K to 16M only. */
    static const char *const bad_l[] = {"13",
                                        "25",
                                        "0",
                                        "31",
                                        "8K",
                                        "32M",
                                        "100000",
                                        "3M",
                                        "abc",
                                        "16KB",
                                        "-14",
                                        "+14",
                                        " 14",
                                        "",
                                        "16G",
                                        "99999999999999999999",
                                        "18446744073709551616K"};
    for (size_t i = 0; i < sizeof bad_l / sizeof bad_l[0]; i++) {
        int rc = CLI("create", "-l", bad_l[i], "-o", out, path);
        CU_ASSERT_EQUAL(rc, CLI_EXIT_USAGE);
        if (rc != CLI_EXIT_USAGE)
            fprintf(stderr, "\n  -l '%s' gave exit %d\n", bad_l[i], rc);
    }
    CU_ASSERT_EQUAL(access(out, F_OK), -1); /* nothing written so far */

    static const struct {
        const char *arg;
        uint32_t bytes;
    } good_l[] = {{"14", 16384},    {"24", 16u << 20}, {"262144", 262144}, {"256K", 262144},
                  {"256k", 262144}, {"1M", 1u << 20},  {"16M", 16u << 20}, {"16K", 16384}};
    for (size_t i = 0; i < sizeof good_l / sizeof good_l[0]; i++) {
        int rc = CLI("create", "-f", "--no-date", "-l", good_l[i].arg, "-o", out, path);
        CU_ASSERT_EQUAL(rc, CLI_EXIT_OK);
        struct metainfo m;
        load(out, &m);
        CU_ASSERT_EQUAL(m.piece_length, good_l[i].bytes);
        CU_ASSERT_EQUAL(m.creation_date, -1);
        metainfo_release(&m);
    }

    /* An existing OUT is refused (exit 3) and left alone unless --force. */
    struct buf before;
    slurp(out, &before);
    CU_ASSERT_EQUAL(CLI("create", "-l", "15", "-o", out, path), CLI_EXIT_FAILURE);
    struct buf after;
    slurp(out, &after);
    CU_ASSERT(before.len == after.len && memcmp(before.data, after.data, before.len) == 0);
    buf_release(&before);
    buf_release(&after);
    CU_ASSERT_EQUAL(CLI("create", "--force", "-l", "15", "-o", out, path), CLI_EXIT_OK);

    /* Options after PATH, several trackers, private, comment. */
    CU_ASSERT_EQUAL(CLI("create", "-f", path, "-o", out, "-a", "http://x/a", "--announce",
                        "http://y/a", "--private", "-c", "hi", "--threads", "2"),
                    CLI_EXIT_OK);
    struct metainfo m;
    load(out, &m);
    CU_ASSERT_EQUAL(m.tier_count, 2);
    CU_ASSERT_TRUE(m.is_private);
    CU_ASSERT_STRING_EQUAL(m.comment, "hi");
    CU_ASSERT(m.creation_date > 0);
    metainfo_release(&m);

    /* Bad input: exit 2; an unwritable OUT: exit 3. */
    char out2[4096], bad_out[4096];
    pathf(out2, sizeof out2, "%s/g.torrent", tmp);
    pathf(bad_out, sizeof bad_out, "%s/no/dir/g.torrent", tmp);
    CU_ASSERT_EQUAL(CLI("create", "-o", out2, missing), CLI_EXIT_BAD_INPUT);
    CU_ASSERT_EQUAL(CLI("create", "-o", out2, empty), CLI_EXIT_BAD_INPUT);
    CU_ASSERT_EQUAL(access(out2, F_OK), -1);
    CU_ASSERT_EQUAL(CLI("create", "-o", bad_out, path), CLI_EXIT_FAILURE);
    remove_tree(tmp);
    free(tmp);
}

int test_create_register(void)
{
    CU_pSuite s = CU_add_suite("create", NULL, NULL);
    if (!s)
        return 1;
    int bad = 0;
    bad |= !CU_add_test(s, "piece_length_edges", test_create_piece_length_edges);
    bad |= !CU_add_test(s, "piece_length_range", test_create_piece_length_range);
    bad |= !CU_add_test(s, "tree_matches_independent_hashes",
                        test_create_tree_matches_independent_hashes);
    bad |= !CU_add_test(s, "default_piece_length_and_threads",
                        test_create_default_piece_length_and_threads);
    bad |= !CU_add_test(s, "no_date_is_reproducible", test_create_no_date_is_reproducible);
    bad |= !CU_add_test(s, "single_file", test_create_single_file);
    bad |= !CU_add_test(s, "single_file_through_symlink", test_create_single_file_through_symlink);
    bad |= !CU_add_test(s, "out_inside_tree", test_create_out_inside_tree);
    bad |= !CU_add_test(s, "exact_piece", test_create_exact_piece);
    bad |= !CU_add_test(s, "private_and_tiers", test_create_private_and_tiers);
    bad |= !CU_add_test(s, "errors", test_create_errors);
    bad |= !CU_add_test(s, "leaves_no_temporary", test_create_leaves_no_temporary);
    bad |= !CU_add_test(s, "dot_takes_real_name", test_create_dot_takes_real_name);
    bad |= !CU_add_test(s, "cli_exit_codes", test_create_cli_exit_codes);
    return bad;
}
