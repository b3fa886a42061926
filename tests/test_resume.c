/*
 * Tests for resume, through resume.h only.
 *
 * Each test builds a real multi-file torrent in memory with the bencode
 * writer, parses it with metainfo_parse, and writes its data under a fresh
 * mkdtemp() directory. The main layout (pieces of 64 bytes):
 *
 *   t/a      100 bytes   pieces 0-1   (piece 1 spans a and b)
 *   t/empty    0 bytes
 *   t/b       60 bytes   piece 1-2
 *   t/c     2000 bytes   pieces 2-33
 *   t/d       37 bytes   pieces 33-34 (34 is the short last piece)
 *
 * 35 pieces give a 5-byte bitfield with 5 spare bits. Hostile resume files
 * are written with a hand-rolled encoder of the documented format, which a
 * control test checks produces exactly what resume_save writes.
 */
#include <CUnit/CUnit.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bencode.h"
#include "buf.h"
#include "metainfo.h"
#include "resume.h"
#include "sha1.h"
#include "support.h"

#define PIECE_LEN 64

#if defined(__APPLE__)
#define MTIME(st) ((st).st_mtimespec)
#define ATIME(st) ((st).st_atimespec)
#else
#define MTIME(st) ((st).st_mtim)
#define ATIME(st) ((st).st_atim)
#endif

struct file_spec {
    const char *name;
    uint64_t length;
};

static const struct file_spec MAIN_FILES[] = {
    {"a", 100}, {"empty", 0}, {"b", 60}, {"c", 2000}, {"d", 37},
};
#define MAIN_COUNT (sizeof MAIN_FILES / sizeof MAIN_FILES[0])
#define MAIN_PIECES 35u

struct fixture {
    char dir[64];
    struct metainfo m;
    uint8_t *data; /* total_length bytes: the torrent's content */
};

/* ---- helpers ---- */

static uint8_t pattern(uint64_t off)
{
    return (uint8_t)(off * 131u + (off >> 8) + 11u);
}

static void write_file(const char *path, const uint8_t *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    if (len)
        CU_ASSERT_EQUAL(fwrite(data, 1, len, f), len);
    CU_ASSERT_EQUAL(fclose(f), 0);
}

static void data_path(const struct fixture *f, size_t i, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", f->dir, f->m.files[i].path);
}

/* Writes file i's slice of the content to disk. */
static void write_data_file(const struct fixture *f, size_t i)
{
    char path[256];
    data_path(f, i, path, sizeof path);
    write_file(path, f->data + f->m.files[i].offset, f->m.files[i].length);
}

/* Builds the torrent t/<name>... with the given files, parses it, and writes
 * every file's data into a new temporary directory. */
static void fixture_init(struct fixture *f, const struct file_spec *files, size_t n,
                         uint32_t piece_len)
{
    memset(f, 0, sizeof *f);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += files[i].length;
    f->data = malloc(total);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f->data);
    for (uint64_t k = 0; k < total; k++)
        f->data[k] = pattern(k);
    uint32_t pieces = (uint32_t)((total + piece_len - 1) / piece_len);

    struct buf b;
    buf_init(&b);
    bencode_put_dict(&b);
    bencode_put_cstr(&b, "info");
    bencode_put_dict(&b);
    bencode_put_cstr(&b, "files");
    bencode_put_list(&b);
    for (size_t i = 0; i < n; i++) {
        bencode_put_dict(&b);
        bencode_put_cstr(&b, "length");
        bencode_put_int(&b, (int64_t)files[i].length);
        bencode_put_cstr(&b, "path");
        bencode_put_list(&b);
        bencode_put_cstr(&b, files[i].name);
        bencode_put_end(&b);
        bencode_put_end(&b);
    }
    bencode_put_end(&b);
    bencode_put_cstr(&b, "name");
    bencode_put_cstr(&b, "t");
    bencode_put_cstr(&b, "piece length");
    bencode_put_int(&b, piece_len);
    bencode_put_cstr(&b, "pieces");
    uint8_t *hashes = malloc((size_t)pieces * SHA1_LEN);
    CU_ASSERT_PTR_NOT_NULL_FATAL(hashes);
    for (uint32_t p = 0; p < pieces; p++) {
        uint64_t off = (uint64_t)p * piece_len;
        uint64_t len = total - off < piece_len ? total - off : piece_len;
        CU_ASSERT_FATAL(sha1(f->data + off, len, hashes + (size_t)p * SHA1_LEN));
    }
    bencode_put_str(&b, hashes, (size_t)pieces * SHA1_LEN);
    free(hashes);
    bencode_put_end(&b);
    bencode_put_end(&b);
    CU_ASSERT_FATAL(buf_ok(&b));
    struct pt_errctx ec = {PT_NO_OFFSET, ""};
    CU_ASSERT_EQUAL_FATAL(metainfo_parse(b.data, b.len, &f->m, &ec), PT_OK);
    buf_release(&b);
    CU_ASSERT_EQUAL_FATAL(f->m.piece_count, pieces);

    snprintf(f->dir, sizeof f->dir, "/tmp/pt_resume_XXXXXX");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(f->dir));
    char sub[128];
    snprintf(sub, sizeof sub, "%s/t", f->dir);
    CU_ASSERT_EQUAL_FATAL(mkdir(sub, 0755), 0);
    for (size_t i = 0; i < n; i++)
        write_data_file(f, i);
}

static void fixture_main(struct fixture *f)
{
    fixture_init(f, MAIN_FILES, MAIN_COUNT, PIECE_LEN);
    CU_ASSERT_EQUAL_FATAL(f->m.piece_count, MAIN_PIECES);
}
static void fixture_release(struct fixture *f)
{
    remove_tree(f->dir);
    metainfo_release(&f->m);
    free(f->data);
}

static size_t bf_len(const struct metainfo *m)
{
    return ((size_t)m->piece_count + 7) / 8;
}

static bool bit(const uint8_t *bf, uint32_t i)
{
    return (bf[i >> 3] >> (7 - (i & 7))) & 1;
}

static void set_bit(uint8_t *bf, uint32_t i)
{
    bf[i >> 3] |= (uint8_t)(0x80u >> (i & 7));
}

/* A bitfield with every piece set except those listed (spare bits zero). */
static uint8_t *all_but(const struct metainfo *m, const uint32_t *clear, size_t n)
{
    uint8_t *bf = calloc(bf_len(m), 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bf);
    for (uint32_t i = 0; i < m->piece_count; i++) {
        bool skip = false;
        for (size_t k = 0; k < n; k++)
            skip = skip || clear[k] == i;
        if (!skip)
            set_bit(bf, i);
    }
    return bf;
}

/* The bitfield equals all_but(clear); names the first wrong piece if not. */
static void expect_all_but(const struct metainfo *m, const uint8_t *got, const uint32_t *clear,
                           size_t n)
{
    uint8_t *want = all_but(m, clear, n);
    bool same = memcmp(got, want, bf_len(m)) == 0;
    CU_ASSERT_TRUE(same);
    for (uint32_t i = 0; !same && i < bf_len(m) * 8; i++) {
        if (bit(got, i) != bit(want, i)) {
            fprintf(stderr, "\n  resume: bit %u is %d, expected %d\n", i, bit(got, i),
                    bit(want, i));
            break;
        }
    }
    free(want);
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static bool state_is_zero(const struct resume_state *st)
{
    return st->bitfield == NULL && st->uploaded == 0 && st->downloaded == 0;
}

static void save_ok(const struct fixture *f, const uint8_t *bitfield, uint64_t up, uint64_t down)
{
    struct resume_state st = {(uint8_t *)bitfield, up, down};
    struct pt_errctx ec = {PT_NO_OFFSET, ""};
    enum pt_err err = resume_save(&f->m, f->dir, &st, &ec);
    CU_ASSERT_EQUAL_FATAL(err, PT_OK);
}

/* Loads and expects failure with a zeroed state and a message containing
 * `needle` (if not NULL). Returns the code. */
static enum pt_err expect_load_fails(const struct fixture *f, const char *needle)
{
    struct resume_state st = {(uint8_t *)"junk", 7, 9};
    struct pt_errctx ec = {PT_NO_OFFSET, ""};
    enum pt_err err = resume_load(&f->m, f->dir, &st, &ec);
    CU_ASSERT_NOT_EQUAL(err, PT_OK);
    CU_ASSERT_TRUE(state_is_zero(&st));
    CU_ASSERT_TRUE(ec.msg[0] != '\0');
    if (err == PT_OK)
        free(st.bitfield);
    if (needle && !strstr(ec.msg, needle)) {
        CU_FAIL("message does not say why");
        fprintf(stderr, "\n  resume: message '%s' lacks '%s'\n", ec.msg, needle);
    }
    return err;
}

static void expect_load_ok(const struct fixture *f, const uint8_t *bitfield, uint64_t up,
                           uint64_t down)
{
    struct resume_state st;
    struct pt_errctx ec = {PT_NO_OFFSET, ""};
    enum pt_err err = resume_load(&f->m, f->dir, &st, &ec);
    CU_ASSERT_EQUAL(err, PT_OK);
    if (err != PT_OK) {
        fprintf(stderr, "\n  resume: load failed: %s (%s)\n", pt_strerror(err), ec.msg);
        return;
    }
    CU_ASSERT_PTR_NOT_NULL_FATAL(st.bitfield);
    CU_ASSERT_EQUAL(memcmp(st.bitfield, bitfield, bf_len(&f->m)), 0);
    CU_ASSERT_EQUAL(st.uploaded, up);
    CU_ASSERT_EQUAL(st.downloaded, down);
    free(st.bitfield);
}

static void write_resume(const struct fixture *f, const uint8_t *data, size_t len)
{
    char *path = resume_path(&f->m, f->dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(path);
    char sub[128];
    snprintf(sub, sizeof sub, "%s/%s", f->dir, RESUME_DIR);
    mkdir(sub, 0755);
    write_file(path, data, len);
    free(path);
}

/* What the hand-rolled encoder should get wrong on purpose. */
struct tweak {
    int64_t version;          /* RESUME_VERSION normally */
    bool flip_hash;           /* one bit of the info hash */
    const uint8_t *bitfield;  /* NULL: all pieces set */
    long bitfield_delta;      /* bytes added to (or cut from) the bitfield's length */
    long files_delta;         /* file entries added (duplicating the last) or dropped */
    int64_t uploaded;
    bool drop_uploaded;       /* leave the key out */
    bool unsorted;            /* write `version` first */
    bool mtime_plus_one;      /* of the first file */
};

static struct tweak no_tweak(void)
{
    return (struct tweak){.version = RESUME_VERSION, .uploaded = 5};
}

static void put_version(struct buf *b, const struct tweak *t)
{
    bencode_put_cstr(b, "version");
    bencode_put_int(b, t->version);
}

/* Encodes the format documented in resume.h, stamping files with stat(). */
static void build_resume(const struct fixture *f, const struct tweak *t, struct buf *b)
{
    const struct metainfo *m = &f->m;
    buf_init(b);
    bencode_put_dict(b);
    if (t->unsorted)
        put_version(b, t);
    bencode_put_cstr(b, "downloaded");
    bencode_put_int(b, 6);
    bencode_put_cstr(b, "files");
    bencode_put_list(b);
    long nfiles = (long)m->file_count + t->files_delta;
    for (long i = 0; i < nfiles; i++) {
        size_t k = (size_t)i < m->file_count ? (size_t)i : m->file_count - 1;
        char path[256];
        data_path(f, k, path, sizeof path);
        struct stat st;
        int64_t len = -1, sec = 0, ns = 0;
        if (stat(path, &st) == 0) {
            len = (int64_t)st.st_size;
            sec = (int64_t)MTIME(st).tv_sec;
            ns = (int64_t)MTIME(st).tv_nsec;
        }
        if (i == 0 && t->mtime_plus_one)
            sec++;
        bencode_put_dict(b);
        bencode_put_cstr(b, "length");
        bencode_put_int(b, len);
        bencode_put_cstr(b, "mtime");
        bencode_put_int(b, sec);
        bencode_put_cstr(b, "mtime-ns");
        bencode_put_int(b, ns);
        bencode_put_end(b);
    }
    bencode_put_end(b);
    bencode_put_cstr(b, "info-hash");
    uint8_t hash[SHA1_LEN];
    memcpy(hash, m->info_hash, SHA1_LEN);
    if (t->flip_hash)
        hash[7] ^= 0x10;
    bencode_put_str(b, hash, SHA1_LEN);
    bencode_put_cstr(b, "pieces");
    size_t len = (size_t)((long)bf_len(m) + t->bitfield_delta);
    uint8_t *bf = t->bitfield ? NULL : all_but(m, NULL, 0);
    uint8_t *padded = calloc(len + 1, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(padded);
    memcpy(padded, t->bitfield ? t->bitfield : bf, len < bf_len(m) ? len : bf_len(m));
    bencode_put_str(b, padded, len);
    free(padded);
    free(bf);
    if (!t->drop_uploaded) {
        bencode_put_cstr(b, "uploaded");
        bencode_put_int(b, t->uploaded);
    }
    if (!t->unsorted)
        put_version(b, t);
    bencode_put_end(b);
    CU_ASSERT_FATAL(buf_ok(b));
}

static void write_tweaked(const struct fixture *f, const struct tweak *t)
{
    struct buf b;
    build_resume(f, t, &b);
    write_resume(f, b.data, b.len);
    buf_release(&b);
}

/* ---- path, save and load ---- */

static void test_resume_path_is_under_dot_ptorrent(void)
{
    struct fixture f;
    fixture_main(&f);
    char *path = resume_path(&f.m, "/some/dir");
    CU_ASSERT_PTR_NOT_NULL_FATAL(path);
    char hex[2 * SHA1_LEN + 1], want[128];
    sha1_hex(f.m.info_hash, hex);
    snprintf(want, sizeof want, "/some/dir/.ptorrent/%s.resume", hex);
    CU_ASSERT_STRING_EQUAL(path, want);
    free(path);
    fixture_release(&f);
}

static void test_resume_save_load_round_trip(void)
{
    struct fixture f;
    fixture_main(&f);
    static const uint32_t clear[] = {2, 3, 9, 20, 33};
    uint8_t *bf = all_but(&f.m, clear, 5);
    save_ok(&f, bf, 123456789012ull, 42);
    expect_load_ok(&f, bf, 123456789012ull, 42);

    char *path = resume_path(&f.m, f.dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(path);
    CU_ASSERT_TRUE(exists(path));
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CU_ASSERT_FALSE(exists(tmp)); /* renamed over, nothing left behind */

    /* Saving again replaces the state. */
    memset(bf, 0, bf_len(&f.m));
    set_bit(bf, 34);
    save_ok(&f, bf, 0, (uint64_t)INT64_MAX);
    expect_load_ok(&f, bf, 0, (uint64_t)INT64_MAX);
    CU_ASSERT_FALSE(exists(tmp));

    free(path);
    free(bf);
    fixture_release(&f);
}

static void test_resume_save_writes_documented_format(void)
{
    struct fixture f;
    fixture_main(&f);
    uint8_t *bf = all_but(&f.m, NULL, 0);
    save_ok(&f, bf, 5, 6);
    char *path = resume_path(&f.m, f.dir);
    struct buf saved;
    buf_init(&saved);
    CU_ASSERT_EQUAL_FATAL(buf_read_file(&saved, path, 1 << 20), PT_OK);
    struct tweak t = no_tweak();
    struct buf want;
    build_resume(&f, &t, &want);
    CU_ASSERT_EQUAL(saved.len, want.len);
    CU_ASSERT_TRUE(saved.len == want.len && memcmp(saved.data, want.data, want.len) == 0);
    /* The hand-rolled encoder's output loads too, so the tweaked cases below
     * fail for their tweak alone. */
    write_resume(&f, want.data, want.len);
    expect_load_ok(&f, bf, 5, 6);
    buf_release(&saved);
    buf_release(&want);
    free(path);
    free(bf);
    fixture_release(&f);
}

static void test_resume_save_names_path_on_failure(void)
{
    struct fixture f;
    fixture_main(&f);
    /* A regular file where the .ptorrent directory should be. */
    char sub[128];
    snprintf(sub, sizeof sub, "%s/%s", f.dir, RESUME_DIR);
    write_file(sub, (const uint8_t *)"x", 1);
    uint8_t *bf = all_but(&f.m, NULL, 0);
    struct resume_state st = {bf, 0, 0};
    struct pt_errctx ec = {PT_NO_OFFSET, ""};
    CU_ASSERT_NOT_EQUAL(resume_save(&f.m, f.dir, &st, &ec), PT_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(ec.msg, RESUME_DIR));
    free(bf);
    fixture_release(&f);
}

static void test_resume_load_without_file_is_not_found(void)
{
    struct fixture f;
    fixture_main(&f);
    CU_ASSERT_EQUAL(expect_load_fails(&f, "no resume file"), PT_ERR_NOT_FOUND);
    fixture_release(&f);
}

static void test_resume_load_rejects_every_truncation(void)
{
    struct fixture f;
    fixture_main(&f);
    uint8_t *bf = all_but(&f.m, NULL, 0);
    save_ok(&f, bf, 1, 2);
    char *path = resume_path(&f.m, f.dir);
    struct buf whole;
    buf_init(&whole);
    CU_ASSERT_EQUAL_FATAL(buf_read_file(&whole, path, 1 << 20), PT_OK);
    for (size_t cut = 0; cut < whole.len; cut++) {
        write_resume(&f, whole.data, cut);
        enum pt_err err = expect_load_fails(&f, NULL);
        if (err == PT_OK) {
            fprintf(stderr, "\n  resume: prefix of %zu bytes loaded\n", cut);
            break;
        }
    }
    buf_release(&whole);
    free(path);
    free(bf);
    fixture_release(&f);
}

static void test_resume_load_rejects_garbage(void)
{
    struct fixture f;
    fixture_main(&f);
    static const char *const junk[] = {
        "hello", "i1e", "le", "de", "d3:fooi1ee", "4:spam", "d7:versioni1ee",
        "d7:versioni1e7:versioni1ee", /* duplicate key */
    };
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        write_resume(&f, (const uint8_t *)junk[i], strlen(junk[i]));
        expect_load_fails(&f, NULL);
    }
    uint8_t noise[1000];
    for (size_t i = 0; i < sizeof noise; i++)
        noise[i] = pattern(i * 7);
    write_resume(&f, noise, sizeof noise);
    expect_load_fails(&f, NULL);

    /* A valid file followed by a stray byte. */
    struct tweak t = no_tweak();
    struct buf b;
    build_resume(&f, &t, &b);
    buf_append(&b, "x", 1);
    write_resume(&f, b.data, b.len);
    CU_ASSERT_EQUAL(expect_load_fails(&f, NULL), PT_ERR_BENCODE_TRAILING_DATA);
    buf_release(&b);
    fixture_release(&f);
}

static void test_resume_load_rejects_wrong_info_hash(void)
{
    struct fixture f;
    fixture_main(&f);
    struct tweak t = no_tweak();
    t.flip_hash = true;
    write_tweaked(&f, &t);
    CU_ASSERT_EQUAL(expect_load_fails(&f, "info hash"), PT_ERR_META_BAD_VALUE);
    fixture_release(&f);
}

static void test_resume_load_rejects_bitfield_of_wrong_length(void)
{
    struct fixture f;
    fixture_main(&f);
    static const long deltas[] = {-1, 1, -(long)(MAIN_PIECES + 7) / 8};
    for (size_t i = 0; i < sizeof deltas / sizeof deltas[0]; i++) {
        struct tweak t = no_tweak();
        t.bitfield_delta = deltas[i];
        write_tweaked(&f, &t);
        CU_ASSERT_EQUAL(expect_load_fails(&f, "pieces"), PT_ERR_META_BAD_VALUE);
    }
    fixture_release(&f);
}

static void test_resume_load_rejects_spare_bits(void)
{
    struct fixture f;
    fixture_main(&f);
    for (uint32_t spare = MAIN_PIECES; spare < 40; spare++) {
        uint8_t *bf = all_but(&f.m, NULL, 0);
        set_bit(bf, spare);
        struct tweak t = no_tweak();
        t.bitfield = bf;
        write_tweaked(&f, &t);
        CU_ASSERT_EQUAL(expect_load_fails(&f, "spare"), PT_ERR_META_BAD_VALUE);
        free(bf);
    }
    fixture_release(&f);
}

static void test_resume_load_rejects_other_versions(void)
{
    struct fixture f;
    fixture_main(&f);
    static const int64_t versions[] = {0, 2, -1, 1000};
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
        struct tweak t = no_tweak();
        t.version = versions[i];
        write_tweaked(&f, &t);
        CU_ASSERT_EQUAL(expect_load_fails(&f, "version"), PT_ERR_META_BAD_VALUE);
    }
    fixture_release(&f);
}

static void test_resume_load_rejects_malformed_fields(void)
{
    struct fixture f;
    fixture_main(&f);
    struct tweak t = no_tweak();
    t.files_delta = -1;
    write_tweaked(&f, &t);
    expect_load_fails(&f, "files");
    t = no_tweak();
    t.files_delta = 1;
    write_tweaked(&f, &t);
    expect_load_fails(&f, "files");
    t = no_tweak();
    t.drop_uploaded = true;
    write_tweaked(&f, &t);
    expect_load_fails(&f, "uploaded");
    t = no_tweak();
    t.uploaded = -5;
    write_tweaked(&f, &t);
    expect_load_fails(&f, "negative");
    t = no_tweak();
    t.unsorted = true;
    write_tweaked(&f, &t);
    expect_load_fails(&f, "order");
    fixture_release(&f);
}

static void test_resume_load_rejects_changed_mtime(void)
{
    struct fixture f;
    fixture_main(&f);
    uint8_t *bf = all_but(&f.m, NULL, 0);
    save_ok(&f, bf, 0, 0);
    expect_load_ok(&f, bf, 0, 0);

    char path[256];
    data_path(&f, 3, path, sizeof path); /* t/c */
    struct stat st;
    CU_ASSERT_EQUAL_FATAL(stat(path, &st), 0);
    struct timespec times[2] = {ATIME(st), MTIME(st)};
    times[1].tv_sec -= 100;
    CU_ASSERT_EQUAL_FATAL(utimensat(AT_FDCWD, path, times, 0), 0);
    expect_load_fails(&f, "mtime of");

    /* The same through a recorded mtime that differs from the disk's. */
    struct tweak t = no_tweak();
    t.mtime_plus_one = true;
    write_tweaked(&f, &t);
    CU_ASSERT_EQUAL(expect_load_fails(&f, "stale"), PT_ERR_META_BAD_VALUE);
    free(bf);
    fixture_release(&f);
}

static void test_resume_load_rejects_changed_size(void)
{
    struct fixture f;
    fixture_main(&f);
    uint8_t *bf = all_but(&f.m, NULL, 0);
    save_ok(&f, bf, 0, 0);

    /* Grow t/b by a byte and put its times back: only the size differs. */
    char path[256];
    data_path(&f, 2, path, sizeof path);
    struct stat st;
    CU_ASSERT_EQUAL_FATAL(stat(path, &st), 0);
    FILE *fp = fopen(path, "ab");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    fputc('z', fp);
    fclose(fp);
    struct timespec times[2] = {ATIME(st), MTIME(st)};
    CU_ASSERT_EQUAL_FATAL(utimensat(AT_FDCWD, path, times, 0), 0);
    expect_load_fails(&f, "size of");
    free(bf);
    fixture_release(&f);
}

static void test_resume_load_checks_missing_files(void)
{
    struct fixture f;
    fixture_main(&f);
    char d[256];
    data_path(&f, 4, d, sizeof d); /* t/d: pieces 33 and 34 */
    CU_ASSERT_EQUAL_FATAL(unlink(d), 0);

    /* Missing at save and still missing, its pieces not marked: fine. */
    static const uint32_t clear[] = {33, 34};
    uint8_t *bf = all_but(&f.m, clear, 2);
    save_ok(&f, bf, 1, 1);
    expect_load_ok(&f, bf, 1, 1);

    /* Marking a piece whose bytes are not on disk is refused. */
    uint8_t *all = all_but(&f.m, NULL, 0);
    save_ok(&f, all, 1, 1);
    expect_load_fails(&f, "missing");
    uint8_t *only33 = all_but(&f.m, clear + 1, 1);
    save_ok(&f, only33, 1, 1);
    expect_load_fails(&f, "piece 33");

    /* The file appears after the save. */
    save_ok(&f, bf, 1, 1);
    write_data_file(&f, 4);
    expect_load_fails(&f, "appeared");

    /* The file disappears after the save. */
    save_ok(&f, all, 1, 1);
    expect_load_ok(&f, all, 1, 1);
    CU_ASSERT_EQUAL_FATAL(unlink(d), 0);
    expect_load_fails(&f, "missing");

    free(only33);
    free(all);
    free(bf);
    fixture_release(&f);
}

static void test_resume_load_rejects_marked_piece_of_short_file(void)
{
    struct fixture f;
    fixture_main(&f);
    char d[256];
    data_path(&f, 4, d, sizeof d);
    CU_ASSERT_EQUAL_FATAL(truncate(d, 20), 0); /* piece 33 needs 16 bytes of d, 34 all 37 */
    uint8_t *bf = all_but(&f.m, (const uint32_t[]){34}, 1);
    save_ok(&f, bf, 0, 0);
    expect_load_ok(&f, bf, 0, 0);
    free(bf);
    bf = all_but(&f.m, NULL, 0);
    save_ok(&f, bf, 0, 0);
    expect_load_fails(&f, "short");
    free(bf);
    fixture_release(&f);
}

/* ---- recheck ---- */

struct progress_log {
    unsigned calls;
    uint32_t last_checked, last_total;
    bool went_back; /* checked decreased between calls */
};

static void record_progress(void *arg, uint32_t checked, uint32_t total)
{
    struct progress_log *p = arg;
    if (p->calls && checked < p->last_checked)
        p->went_back = true;
    p->calls++;
    p->last_checked = checked;
    p->last_total = total;
}

static void recheck_expect(const struct fixture *f, unsigned threads, const uint32_t *clear,
                           size_t n)
{
    uint8_t *have = malloc(bf_len(&f->m));
    CU_ASSERT_PTR_NOT_NULL_FATAL(have);
    memset(have, 0xff, bf_len(&f->m)); /* every bit must be written, spare bits cleared */
    struct progress_log log = {0};
    enum pt_err err = resume_recheck(&f->m, f->dir, threads, have, record_progress, &log, NULL);
    CU_ASSERT_EQUAL(err, PT_OK);
    expect_all_but(&f->m, have, clear, n);
    CU_ASSERT_TRUE(log.calls >= 1);
    CU_ASSERT_EQUAL(log.last_checked, f->m.piece_count);
    CU_ASSERT_EQUAL(log.last_total, f->m.piece_count);
    CU_ASSERT_FALSE(log.went_back);
    free(have);
}

static void flip_byte(const struct fixture *f, size_t file, off_t at)
{
    char path[256];
    data_path(f, file, path, sizeof path);
    int fd = open(path, O_RDWR);
    CU_ASSERT_FATAL(fd >= 0);
    uint8_t c;
    CU_ASSERT_EQUAL_FATAL(pread(fd, &c, 1, at), 1);
    c ^= 0x01;
    CU_ASSERT_EQUAL_FATAL(pwrite(fd, &c, 1, at), 1);
    close(fd);
}

static void test_resume_recheck_all_good(void)
{
    struct fixture f;
    fixture_main(&f);
    static const unsigned threads[] = {1, 2, 4, 0, 100};
    for (size_t i = 0; i < sizeof threads / sizeof threads[0]; i++)
        recheck_expect(&f, threads[i], NULL, 0);
    /* Nothing was created. */
    char sub[128];
    snprintf(sub, sizeof sub, "%s/%s", f.dir, RESUME_DIR);
    CU_ASSERT_FALSE(exists(sub));
    fixture_release(&f);
}

static void test_resume_recheck_finds_flipped_byte(void)
{
    struct fixture f;
    fixture_main(&f);
    /* t/b byte 10 is torrent byte 110: piece 1, which spans t/a and t/b. */
    flip_byte(&f, 2, 10);
    static const uint32_t one[] = {1};
    recheck_expect(&f, 1, one, 1);
    recheck_expect(&f, 4, one, 1);
    /* And t/c byte 1000 is torrent byte 1160: piece 18. */
    flip_byte(&f, 3, 1000);
    static const uint32_t two[] = {1, 18};
    recheck_expect(&f, 1, two, 2);
    recheck_expect(&f, 4, two, 2);
    recheck_expect(&f, 0, two, 2);
    fixture_release(&f);
}

static void test_resume_recheck_skips_missing_and_short_files(void)
{
    struct fixture f;
    fixture_main(&f);
    static const uint32_t last_two[] = {33, 34};
    char d[256];
    data_path(&f, 4, d, sizeof d);
    CU_ASSERT_EQUAL_FATAL(truncate(d, 10), 0);
    recheck_expect(&f, 1, last_two, 2);
    recheck_expect(&f, 4, last_two, 2);
    CU_ASSERT_EQUAL_FATAL(truncate(d, 20), 0); /* piece 33 whole, 34 still short */
    /* The truncate zero-filled d[10..20): piece 33 is whole but wrong. */
    recheck_expect(&f, 4, last_two, 2);
    write_data_file(&f, 4);
    CU_ASSERT_EQUAL_FATAL(truncate(d, 20), 0);
    recheck_expect(&f, 4, last_two + 1, 1);

    CU_ASSERT_EQUAL_FATAL(unlink(d), 0);
    recheck_expect(&f, 1, last_two, 2);
    recheck_expect(&f, 4, last_two, 2);
    CU_ASSERT_FALSE(exists(d)); /* recheck never creates a file */

    /* A missing zero-length file costs nothing; a longer file is fine. */
    char e[256];
    data_path(&f, 1, e, sizeof e);
    CU_ASSERT_EQUAL_FATAL(unlink(e), 0);
    char c[256];
    data_path(&f, 3, c, sizeof c);
    CU_ASSERT_EQUAL_FATAL(truncate(c, 5000), 0);
    recheck_expect(&f, 3, last_two, 2);

    /* Everything missing. */
    for (size_t i = 0; i < f.m.file_count; i++) {
        char p[256];
        data_path(&f, i, p, sizeof p);
        unlink(p);
    }
    uint32_t all[MAIN_PIECES];
    for (uint32_t i = 0; i < MAIN_PIECES; i++)
        all[i] = i;
    recheck_expect(&f, 4, all, MAIN_PIECES);
    fixture_release(&f);
}

static void test_resume_recheck_stop_before_start(void)
{
    struct fixture f;
    fixture_main(&f);
    atomic_bool stop = true;
    uint8_t have[8];
    memset(have, 0xff, sizeof have);
    struct progress_log log = {0};
    CU_ASSERT_EQUAL(resume_recheck(&f.m, f.dir, 4, have, record_progress, &log, &stop),
                    PT_ERR_STOPPED);
    for (size_t i = 0; i < bf_len(&f.m); i++)
        CU_ASSERT_EQUAL(have[i], 0);
    /* A stop flag that stays false changes nothing; NULL progress is allowed. */
    atomic_store(&stop, false);
    CU_ASSERT_EQUAL(resume_recheck(&f.m, f.dir, 4, have, NULL, NULL, &stop), PT_OK);
    expect_all_but(&f.m, have, NULL, 0);
    fixture_release(&f);
}

/* Stops from the progress callback: whatever was checked by then is kept,
 * and every bit that is set is a good piece. */
struct stopper {
    atomic_bool *stop;
};

static void stop_now(void *arg, uint32_t checked, uint32_t total)
{
    (void)checked;
    (void)total;
    atomic_store(((struct stopper *)arg)->stop, true);
}

static void test_resume_recheck_many_pieces_many_threads(void)
{
    /* 1000 pieces of 64 bytes in one file, bad pieces at byte boundaries. */
    static const struct file_spec one[] = {{"big", 64000}};
    struct fixture f;
    fixture_init(&f, one, 1, PIECE_LEN);
    static const uint32_t bad[] = {0, 7, 8, 9, 15, 16, 500, 998, 999};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        flip_byte(&f, 0, (off_t)bad[i] * PIECE_LEN + 33);
    static const unsigned threads[] = {1, 3, 8, 16};
    for (size_t i = 0; i < sizeof threads / sizeof threads[0]; i++)
        recheck_expect(&f, threads[i], bad, sizeof bad / sizeof bad[0]);

    atomic_bool stop = false;
    struct stopper s = {&stop};
    uint8_t have[125];
    enum pt_err err = resume_recheck(&f.m, f.dir, 8, have, stop_now, &s, &stop);
    CU_ASSERT_TRUE(err == PT_OK || err == PT_ERR_STOPPED);
    uint8_t *good = all_but(&f.m, bad, sizeof bad / sizeof bad[0]);
    for (size_t i = 0; i < sizeof have; i++)
        CU_ASSERT_EQUAL(have[i] & ~good[i], 0);
    free(good);
    fixture_release(&f);
}

static void test_resume_recheck_piece_over_many_files(void)
{
    /* 40 one-byte files then a longer one: piece 0 spans 41 files, more than
     * one storage_map call holds. */
    static char names[40][16];
    struct file_spec files[41];
    for (int i = 0; i < 40; i++) {
        snprintf(names[i], sizeof names[i], "f%02d", i);
        files[i] = (struct file_spec){names[i], 1};
    }
    files[40] = (struct file_spec){"tail", 200};
    struct fixture f;
    fixture_init(&f, files, 41, PIECE_LEN);
    recheck_expect(&f, 1, NULL, 0);
    recheck_expect(&f, 4, NULL, 0);
    flip_byte(&f, 37, 0);
    static const uint32_t first[] = {0};
    recheck_expect(&f, 2, first, 1);
    fixture_release(&f);
}

static void test_resume_recheck_then_save_and_load(void)
{
    struct fixture f;
    fixture_main(&f);
    flip_byte(&f, 0, 3);
    uint8_t have[5];
    CU_ASSERT_EQUAL_FATAL(resume_recheck(&f.m, f.dir, 2, have, NULL, NULL, NULL), PT_OK);
    save_ok(&f, have, 10, 20);
    expect_load_ok(&f, have, 10, 20);
    CU_ASSERT_FALSE(bit(have, 0));
    CU_ASSERT_TRUE(bit(have, 1));
    fixture_release(&f);
}

/* Called by tests/test_main.c (see suites.h there). */
int test_resume_register(void);

int test_resume_register(void)
{
    CU_pSuite s = CU_add_suite("resume", NULL, NULL);
    if (!s)
        return -1;
    struct {
        const char *name;
        CU_TestFunc fn;
    } tests[] = {
        {"path is under .ptorrent", test_resume_path_is_under_dot_ptorrent},
        {"save/load round trip, no temp file left", test_resume_save_load_round_trip},
        {"save writes the documented format", test_resume_save_writes_documented_format},
        {"save names the path on failure", test_resume_save_names_path_on_failure},
        {"load without file is not found", test_resume_load_without_file_is_not_found},
        {"load rejects every truncation", test_resume_load_rejects_every_truncation},
        {"load rejects garbage", test_resume_load_rejects_garbage},
        {"load rejects wrong info hash", test_resume_load_rejects_wrong_info_hash},
        {"load rejects bitfield of wrong length",
         test_resume_load_rejects_bitfield_of_wrong_length},
        {"load rejects spare bits", test_resume_load_rejects_spare_bits},
        {"load rejects other versions", test_resume_load_rejects_other_versions},
        {"load rejects malformed fields", test_resume_load_rejects_malformed_fields},
        {"load rejects changed mtime", test_resume_load_rejects_changed_mtime},
        {"load rejects changed size", test_resume_load_rejects_changed_size},
        {"load checks missing files", test_resume_load_checks_missing_files},
        {"load rejects marked piece of short file",
         test_resume_load_rejects_marked_piece_of_short_file},
        {"recheck all good on any thread count", test_resume_recheck_all_good},
        {"recheck finds a flipped byte", test_resume_recheck_finds_flipped_byte},
        {"recheck skips missing and short files",
         test_resume_recheck_skips_missing_and_short_files},
        {"recheck stop before start", test_resume_recheck_stop_before_start},
        {"recheck many pieces, many threads", test_resume_recheck_many_pieces_many_threads},
        {"recheck piece over many files", test_resume_recheck_piece_over_many_files},
        {"recheck then save and load", test_resume_recheck_then_save_and_load},
    };
    for (size_t k = 0; k < sizeof tests / sizeof tests[0]; k++)
        if (!CU_add_test(s, tests[k].name, tests[k].fn))
            return -1;
    return 0;
}
