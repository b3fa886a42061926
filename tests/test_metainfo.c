/*
 * Tests for metainfo_parse and friends, through metainfo.h only.
 *
 * Torrents are built in memory: most cases splice a literal `info` body into
 * a fixed outer dictionary (see parse_info_body); the rest use the bencode
 * writer. The info hash is checked against SHA-1 over the exact bytes the
 * test wrote, never over a re-encoding.
 */
#include <CUnit/CUnit.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bencode.h"
#include "buf.h"
#include "metainfo.h"
#include "sha1.h"

/* Appends the key `pieces` and a string of n hashes; hash i is filled with
 * byte i + 1. */
static void put_pieces(struct buf *b, unsigned n)
{
    buf_printf(b, "6:pieces%u:", 20 * n);
    for (unsigned i = 0; i < n; i++)
        for (int j = 0; j < 20; j++)
            buf_append(b, &(uint8_t){(uint8_t)(i + 1)}, 1);
}

/*
 * Builds  d8:announce18:http://t.example/a4:info d<before>[6:pieces<hashes>]<after>e e
 * and parses it. nhashes < 0 leaves `pieces` out. *info_start/_end (if not
 * NULL) receive the span of the info dict in the built bytes.
 */
static enum pt_err parse_info_raw(const void *before, size_t before_len, int nhashes,
                                  const char *after, struct metainfo *m, struct pt_errctx *ec,
                                  struct buf *keep)
{
    struct buf b;
    buf_init(&b);
    buf_append_str(&b, "d8:announce18:http://t.example/a4:info");
    buf_append(&b, "d", 1);
    buf_append(&b, before, before_len);
    if (nhashes >= 0) {
        put_pieces(&b, (unsigned)nhashes);
    }
    buf_append_str(&b, after);
    buf_append_str(&b, "ee");
    CU_ASSERT_FATAL(buf_ok(&b));
    memset(ec, 0, sizeof *ec);
    enum pt_err err = metainfo_parse(b.data, b.len, m, ec);
    if (keep)
        *keep = b;
    else
        buf_release(&b);
    return err;
}

static enum pt_err parse_info_body(const char *before, int nhashes, const char *after,
                                   struct metainfo *m, struct pt_errctx *ec)
{
    return parse_info_raw(before, strlen(before), nhashes, after, m, ec, NULL);
}

/* Parses and expects failure with `code`, an emptied result, and (if `field`
 * is not NULL) a message naming the field. */
static void expect_fail(const char *before, int nhashes, const char *after, enum pt_err code,
                        const char *field)
{
    struct metainfo m;
    struct pt_errctx ec;
    enum pt_err err = parse_info_body(before, nhashes, after, &m, &ec);
    CU_ASSERT_EQUAL(err, code);
    if (err != code)
        fprintf(stderr, "\n  expected %s, got %s (%s) for info body '%s'\n", pt_strerror(code),
                pt_strerror(err), ec.msg, before);
    CU_ASSERT_PTR_NULL(m.name);
    CU_ASSERT_PTR_NULL(m.files);
    CU_ASSERT_EQUAL(m.file_count, 0);
    CU_ASSERT_PTR_NULL(m.piece_hashes);
    CU_ASSERT_PTR_NULL(m.info_bytes);
    if (field && !strstr(ec.msg, field)) {
        CU_FAIL("error message does not name the field");
        fprintf(stderr, "\n  message '%s' does not contain '%s'\n", ec.msg, field);
    }
    if (err == PT_OK)
        metainfo_release(&m);
}

/* A valid single-file body: 100 bytes in pieces of 64 -> 2 pieces. */
#define SINGLE "6:lengthi100e4:name5:hello12:piece lengthi64e"

static void test_metainfo_single_file(void)
{
    struct metainfo m;
    struct pt_errctx ec;
    struct buf raw;
    CU_ASSERT_EQUAL_FATAL(parse_info_raw(SINGLE, strlen(SINGLE), 2, "", &m, &ec, &raw), PT_OK);
    CU_ASSERT_STRING_EQUAL(m.name, "hello");
    CU_ASSERT_FALSE(m.multi_file);
    CU_ASSERT_EQUAL(m.total_length, 100);
    CU_ASSERT_EQUAL(m.piece_length, 64);
    CU_ASSERT_EQUAL(m.piece_count, 2);
    CU_ASSERT_EQUAL_FATAL(m.file_count, 1);
    CU_ASSERT_STRING_EQUAL(m.files[0].path, "hello");
    CU_ASSERT_EQUAL(m.files[0].length, 100);
    CU_ASSERT_EQUAL(m.files[0].offset, 0);
    CU_ASSERT_FALSE(m.is_private);
    CU_ASSERT_PTR_NULL(m.comment);
    CU_ASSERT_PTR_NULL(m.created_by);
    CU_ASSERT_EQUAL(m.creation_date, -1);

    /* The info hash is SHA-1 over the raw info bytes. */
    static const char head[] = "d8:announce18:http://t.example/a4:info";
    size_t start = sizeof head - 1, end = raw.len - 1;
    uint8_t want[SHA1_LEN];
    CU_ASSERT_FATAL(sha1(raw.data + start, end - start, want));
    CU_ASSERT_EQUAL(memcmp(m.info_hash, want, SHA1_LEN), 0);
    CU_ASSERT_EQUAL(m.info_len, end - start);
    CU_ASSERT(m.info_len == end - start && memcmp(m.info_bytes, raw.data + start, m.info_len) == 0);

    /* Piece hashes and strings are copies: clobber the input, they survive. */
    memset(raw.data, 0, raw.len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m.piece_hashes);
    for (int i = 0; i < 20; i++) {
        CU_ASSERT_EQUAL(m.piece_hashes[i], 1);
        CU_ASSERT_EQUAL(m.piece_hashes[20 + i], 2);
    }
    CU_ASSERT_STRING_EQUAL(m.name, "hello");
    CU_ASSERT_EQUAL(m.info_bytes[0], 'd');

    /* Piece sizes: the last one is short. */
    CU_ASSERT_EQUAL(metainfo_piece_size(&m, 0), 64);
    CU_ASSERT_EQUAL(metainfo_piece_size(&m, 1), 36);

    CU_ASSERT_EQUAL_FATAL(m.tier_count, 1);
    CU_ASSERT_EQUAL_FATAL(m.tiers[0].count, 1);
    CU_ASSERT_STRING_EQUAL(m.tiers[0].urls[0], "http://t.example/a");
    metainfo_release(&m);
    buf_release(&raw);
}

static void test_metainfo_piece_counts(void)
{
    struct metainfo m;
    struct pt_errctx ec;
    /* An exact multiple: the last piece is full. */
    CU_ASSERT_EQUAL_FATAL(
        parse_info_body("6:lengthi128e4:name1:x12:piece lengthi64e", 2, "", &m, &ec), PT_OK);
    CU_ASSERT_EQUAL(m.piece_count, 2);
    CU_ASSERT_EQUAL(metainfo_piece_size(&m, 1), 64);
    metainfo_release(&m);

    /* One byte, one piece of one byte. */
    CU_ASSERT_EQUAL_FATAL(
        parse_info_body("6:lengthi1e4:name1:x12:piece lengthi16384e", 1, "", &m, &ec), PT_OK);
    CU_ASSERT_EQUAL(m.piece_count, 1);
    CU_ASSERT_EQUAL(metainfo_piece_size(&m, 0), 1);
    metainfo_release(&m);

    /* One byte past a multiple. */
    CU_ASSERT_EQUAL_FATAL(
        parse_info_body("6:lengthi129e4:name1:x12:piece lengthi64e", 3, "", &m, &ec), PT_OK);
    CU_ASSERT_EQUAL(m.piece_count, 3);
    CU_ASSERT_EQUAL(metainfo_piece_size(&m, 2), 1);
    metainfo_release(&m);
}

/* Files "a/b" (3 bytes), "c" (0 bytes), "d" (5 bytes): 8 bytes in 2 pieces of 4. */
#define MULTI                                                                                      \
    "5:filesld6:lengthi3e4:pathl1:a1:beed6:lengthi0e4:pathl1:ceed6:lengthi5e4:pathl1:deee"         \
    "4:name4:root12:piece lengthi4e"

static void test_metainfo_multi_file(void)
{
    struct metainfo m;
    struct pt_errctx ec;
    CU_ASSERT_EQUAL_FATAL(parse_info_body(MULTI, 2, "", &m, &ec), PT_OK);
    CU_ASSERT_TRUE(m.multi_file);
    CU_ASSERT_STRING_EQUAL(m.name, "root");
    CU_ASSERT_EQUAL(m.total_length, 8);
    CU_ASSERT_EQUAL(m.piece_count, 2);
    CU_ASSERT_EQUAL_FATAL(m.file_count, 3);
    CU_ASSERT_STRING_EQUAL(m.files[0].path, "root/a/b");
    CU_ASSERT_EQUAL(m.files[0].length, 3);
    CU_ASSERT_EQUAL(m.files[0].offset, 0);
    CU_ASSERT_STRING_EQUAL(m.files[1].path, "root/c");
    CU_ASSERT_EQUAL(m.files[1].length, 0);
    CU_ASSERT_EQUAL(m.files[1].offset, 3);
    CU_ASSERT_STRING_EQUAL(m.files[2].path, "root/d");
    CU_ASSERT_EQUAL(m.files[2].length, 5);
    CU_ASSERT_EQUAL(m.files[2].offset, 3);
    CU_ASSERT_EQUAL(metainfo_piece_size(&m, 1), 4);
    metainfo_release(&m);
}

static void test_metainfo_trackers(void)
{
    struct metainfo m;
    struct pt_errctx ec;
    struct buf b;

    /* announce-list wins over announce; empty tiers and non-strings are skipped. */
    buf_init(&b);
    buf_append_str(&b, "d8:announce8:http://x13:announce-list"
                       "ll9:http://a1el9:http://b1i5e9:http://b2elel0:ee"
                       "4:infod" SINGLE);
    put_pieces(&b, 2);
    buf_append_str(&b, "ee");
    CU_ASSERT_EQUAL_FATAL(metainfo_parse(b.data, b.len, &m, &ec), PT_OK);
    CU_ASSERT_EQUAL_FATAL(m.tier_count, 2);
    CU_ASSERT_EQUAL_FATAL(m.tiers[0].count, 1);
    CU_ASSERT_STRING_EQUAL(m.tiers[0].urls[0], "http://a1");
    CU_ASSERT_EQUAL_FATAL(m.tiers[1].count, 2);
    CU_ASSERT_STRING_EQUAL(m.tiers[1].urls[0], "http://b1");
    CU_ASSERT_STRING_EQUAL(m.tiers[1].urls[1], "http://b2");
    metainfo_release(&m);
    buf_release(&b);

    /* Trackerless. */
    buf_init(&b);
    buf_append_str(&b, "d4:infod" SINGLE);
    put_pieces(&b, 2);
    buf_append_str(&b, "ee");
    CU_ASSERT_EQUAL_FATAL(metainfo_parse(b.data, b.len, &m, &ec), PT_OK);
    CU_ASSERT_EQUAL(m.tier_count, 0);
    metainfo_release(&m);
    buf_release(&b);

    /* An announce-list with only empty tiers falls back to announce. */
    buf_init(&b);
    buf_append_str(&b, "d8:announce8:http://x13:announce-listllelee4:infod" SINGLE);
    put_pieces(&b, 2);
    buf_append_str(&b, "ee");
    CU_ASSERT_EQUAL_FATAL(metainfo_parse(b.data, b.len, &m, &ec), PT_OK);
    CU_ASSERT_EQUAL_FATAL(m.tier_count, 1);
    CU_ASSERT_EQUAL_FATAL(m.tiers[0].count, 1);
    CU_ASSERT_STRING_EQUAL(m.tiers[0].urls[0], "http://x");
    metainfo_release(&m);
    buf_release(&b);
}

static void test_metainfo_optional_fields(void)
{
    struct metainfo m;
    struct pt_errctx ec;
    struct buf b;
    buf_init(&b);
    bencode_put_dict(&b);
    bencode_put_cstr(&b, "comment");
    bencode_put_cstr(&b, "a comment");
    bencode_put_cstr(&b, "created by");
    bencode_put_cstr(&b, "ptorrent tests");
    bencode_put_cstr(&b, "creation date");
    bencode_put_int(&b, 1700000000);
    bencode_put_cstr(&b, "info");
    buf_append_str(&b, "d" SINGLE);
    put_pieces(&b, 2);
    buf_append_str(&b, "7:privatei1ee");
    bencode_put_end(&b);
    CU_ASSERT_FATAL(buf_ok(&b));
    CU_ASSERT_EQUAL_FATAL(metainfo_parse(b.data, b.len, &m, &ec), PT_OK);
    CU_ASSERT_STRING_EQUAL(m.comment, "a comment");
    CU_ASSERT_STRING_EQUAL(m.created_by, "ptorrent tests");
    CU_ASSERT_EQUAL(m.creation_date, 1700000000);
    CU_ASSERT_TRUE(m.is_private);
    metainfo_release(&m);
    buf_release(&b);

    CU_ASSERT_EQUAL_FATAL(parse_info_body(SINGLE, 2, "7:privatei0e", &m, &ec), PT_OK);
    CU_ASSERT_FALSE(m.is_private);
    CU_ASSERT_EQUAL(m.creation_date, -1);
    metainfo_release(&m);
}

/* Keys out of order are accepted, and the hash is still over the raw bytes. */
static void test_metainfo_unsorted_info_hashes_raw_bytes(void)
{
    static const char body[] = "4:name5:hello6:lengthi100e12:piece lengthi64e";
    struct metainfo m;
    struct pt_errctx ec;
    struct buf raw;
    CU_ASSERT_EQUAL_FATAL(parse_info_raw(body, strlen(body), 2, "", &m, &ec, &raw), PT_OK);
    static const char head[] = "d8:announce18:http://t.example/a4:info";
    size_t start = sizeof head - 1, end = raw.len - 1;
    uint8_t want[SHA1_LEN];
    CU_ASSERT_FATAL(sha1(raw.data + start, end - start, want));
    CU_ASSERT_EQUAL(memcmp(m.info_hash, want, SHA1_LEN), 0);
    metainfo_release(&m);
    buf_release(&raw);
}

static void test_metainfo_rejects_non_dict(void)
{
    static const char *const inputs[] = {"le", "i5e", "4:spam", "li1ee"};
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        struct metainfo m;
        struct pt_errctx ec;
        CU_ASSERT_EQUAL(metainfo_parse((const uint8_t *)inputs[i], strlen(inputs[i]), &m, &ec),
                        PT_ERR_META_NOT_DICT);
        CU_ASSERT_PTR_NULL(m.name);
    }
}

static void test_metainfo_rejects_missing_keys(void)
{
    struct metainfo m;
    struct pt_errctx ec;
    static const char no_info[] = "d8:announce8:http://xe";
    CU_ASSERT_EQUAL(metainfo_parse((const uint8_t *)no_info, strlen(no_info), &m, &ec),
                    PT_ERR_META_MISSING);
    CU_ASSERT_PTR_NOT_NULL(strstr(ec.msg, "info"));

    expect_fail("6:lengthi100e12:piece lengthi64e", 2, "", PT_ERR_META_MISSING, "name");
    expect_fail("6:lengthi100e4:name5:hello", 2, "", PT_ERR_META_MISSING, "piece length");
    expect_fail(SINGLE, -1, "", PT_ERR_META_MISSING, "pieces");
    expect_fail("4:name5:hello12:piece lengthi64e", 2, "", PT_ERR_META_MISSING, "length");
    expect_fail("5:filesld4:pathl1:aeee4:name1:x12:piece lengthi64e", 1, "", PT_ERR_META_MISSING,
                "info.files[0]");
    expect_fail("5:filesld6:lengthi5eee4:name1:x12:piece lengthi64e", 1, "", PT_ERR_META_MISSING,
                "path");
}

static void test_metainfo_rejects_wrong_types(void)
{
    struct metainfo m;
    struct pt_errctx ec;
    static const char info_list[] = "d4:infolee";
    CU_ASSERT_EQUAL(metainfo_parse((const uint8_t *)info_list, strlen(info_list), &m, &ec),
                    PT_ERR_META_BAD_TYPE);
    CU_ASSERT_PTR_NOT_NULL(strstr(ec.msg, "info"));

    expect_fail("6:lengthi100e4:namei5e12:piece lengthi64e", 2, "", PT_ERR_META_BAD_TYPE,
                "info.name");
    expect_fail("6:length3:1004:name1:x12:piece lengthi64e", 2, "", PT_ERR_META_BAD_TYPE, "length");
    expect_fail("6:lengthi100e4:name5:hello12:piece length2:64", 2, "", PT_ERR_META_BAD_TYPE,
                "piece length");
    expect_fail(SINGLE "6:piecesi0e", -1, "", PT_ERR_META_BAD_TYPE, "pieces");
    expect_fail("5:filesd1:ai1ee4:name1:x12:piece lengthi64e", 1, "", PT_ERR_META_BAD_TYPE,
                "files");
    expect_fail("5:filesli5ee4:name1:x12:piece lengthi64e", 1, "", PT_ERR_META_BAD_TYPE,
                "info.files[0]");
    expect_fail("5:filesld6:lengthi5e4:path1:aee4:name1:x12:piece lengthi64e", 1, "",
                PT_ERR_META_BAD_TYPE, "info.files[0].path");
    expect_fail("5:filesld6:lengthi5e4:pathl1:ai7eeee4:name1:x12:piece lengthi64e", 1, "",
                PT_ERR_META_BAD_TYPE, "info.files[0].path");
    expect_fail(SINGLE, 2, "7:private1:1", PT_ERR_META_BAD_TYPE, "private");
}

static void test_metainfo_rejects_bad_pieces(void)
{
    /* 30 bytes: not a multiple of 20. */
    expect_fail(SINGLE "6:pieces30:012345678901234567890123456789", -1, "", PT_ERR_META_BAD_PIECES,
                "pieces");
    expect_fail(SINGLE "6:pieces1:x", -1, "", PT_ERR_META_BAD_PIECES, "pieces");
    /* One hash too many, one too few, none. */
    expect_fail(SINGLE, 3, "", PT_ERR_META_PIECE_COUNT, "pieces");
    expect_fail(SINGLE, 1, "", PT_ERR_META_PIECE_COUNT, "pieces");
    expect_fail(SINGLE, 0, "", PT_ERR_META_PIECE_COUNT, "pieces");
    expect_fail(MULTI, 3, "", PT_ERR_META_PIECE_COUNT, "pieces");
    expect_fail(MULTI, 1, "", PT_ERR_META_PIECE_COUNT, "pieces");
    /* A single INT64_MAX-byte file would need more than 2^32 pieces. */
    expect_fail("6:lengthi9223372036854775807e4:name1:x12:piece lengthi268435456e", 1, "",
                PT_ERR_META_PIECE_COUNT, "pieces");
}

static void test_metainfo_rejects_bad_values(void)
{
    expect_fail("5:filesld6:lengthi1e4:pathl1:aeee6:lengthi1e4:name1:x12:piece lengthi64e", 1, "",
                PT_ERR_META_BAD_VALUE, "length");
    expect_fail("6:lengthi-1e4:name1:x12:piece lengthi64e", 1, "", PT_ERR_META_BAD_VALUE, "length");
    expect_fail("5:filesld6:lengthi-5e4:pathl1:aeee4:name1:x12:piece lengthi64e", 1, "",
                PT_ERR_META_BAD_VALUE, "info.files[0].length");
    expect_fail("6:lengthi100e4:name1:x12:piece lengthi0e", 0, "", PT_ERR_META_BAD_VALUE,
                "piece length");
    expect_fail("6:lengthi100e4:name1:x12:piece lengthi-64e", 0, "", PT_ERR_META_BAD_VALUE,
                "piece length");
    expect_fail("6:lengthi100e4:name1:x12:piece lengthi268435457e", 1, "", PT_ERR_META_BAD_VALUE,
                "piece length");
    expect_fail("5:filesle4:name1:x12:piece lengthi64e", 0, "", PT_ERR_META_BAD_VALUE, "files");
    expect_fail("6:lengthi0e4:name1:x12:piece lengthi64e", 0, "", PT_ERR_META_BAD_VALUE, NULL);
    expect_fail("5:filesld6:lengthi0e4:pathl1:aeed6:lengthi0e4:pathl1:beee4:name1:x"
                "12:piece lengthi64e",
                0, "", PT_ERR_META_BAD_VALUE, NULL);
}

static void test_metainfo_rejects_size_overflow(void)
{
    expect_fail("5:filesld6:lengthi9223372036854775807e4:pathl1:aeed"
                "6:lengthi9223372036854775807e4:pathl1:beee4:name1:x12:piece lengthi64e",
                1, "", PT_ERR_META_SIZE_OVERFLOW, NULL);
    expect_fail("5:filesld6:lengthi9223372036854775807e4:pathl1:aeed"
                "6:lengthi1e4:pathl1:beee4:name1:x12:piece lengthi64e",
                1, "", PT_ERR_META_SIZE_OVERFLOW, NULL);
}

/* A two-file torrent whose second file has path list `path_list` (bencoded,
 * `len` bytes, may hold NUL). */
static enum pt_err parse_second_path(const char *path_list, size_t len, struct pt_errctx *ec)
{
    struct buf body;
    buf_init(&body);
    buf_append_str(&body, "5:filesld6:lengthi1e4:pathl2:okeed6:lengthi1e4:path");
    buf_append(&body, path_list, len);
    buf_append_str(&body, "ee4:name4:root12:piece lengthi64e");
    CU_ASSERT_FATAL(buf_ok(&body));
    struct metainfo m;
    enum pt_err err = parse_info_raw(body.data, body.len, 1, "", &m, ec, NULL);
    if (err == PT_OK)
        metainfo_release(&m);
    else
        CU_ASSERT_PTR_NULL(m.files);
    buf_release(&body);
    return err;
}

static void test_metainfo_rejects_path_traversal(void)
{
    static const struct {
        const char *list;
        size_t len;
    } bad[] = {
#define L(s) {s, sizeof s - 1}
        L("l2:..e"),  L("l1:a2:..1:be"), L("l1:.e"),     L("l0:e"),     L("l1:a0:e"),
        L("l3:a/be"), L("l4:/etce"),     L("l3:a\\be"),  L("l3:a\0be"), L("l1:\0e"),
        L("l2:C:e"),  L("l7:C:\\evile"), L("l2:c:1:xe"), L("le"),
#undef L
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct pt_errctx ec;
        enum pt_err err = parse_second_path(bad[i].list, bad[i].len, &ec);
        CU_ASSERT_EQUAL(err, PT_ERR_META_BAD_PATH);
        if (err != PT_ERR_META_BAD_PATH)
            fprintf(stderr, "\n  path case %zu: got %s\n", i, pt_strerror(err));
        CU_ASSERT_PTR_NOT_NULL(strstr(ec.msg, "info.files[1].path"));
    }

    /* Names that look odd but are safe. */
    static const char *const good[] = {"l3:...e", "l4:.abce", "l3:a..e", "l1:a1:b1:ce"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct pt_errctx ec;
        CU_ASSERT_EQUAL(parse_second_path(good[i], strlen(good[i]), &ec), PT_OK);
    }

    /* The torrent name is a path component too. */
    expect_fail("6:lengthi100e4:name2:..12:piece lengthi64e", 2, "", PT_ERR_META_BAD_PATH,
                "info.name");
    expect_fail("6:lengthi100e4:name1:.12:piece lengthi64e", 2, "", PT_ERR_META_BAD_PATH,
                "info.name");
    expect_fail("6:lengthi100e4:name0:12:piece lengthi64e", 2, "", PT_ERR_META_BAD_PATH,
                "info.name");
    expect_fail("6:lengthi100e4:name5:a/b/c12:piece lengthi64e", 2, "", PT_ERR_META_BAD_PATH,
                "info.name");
    expect_fail("6:lengthi100e4:name4:/etc12:piece lengthi64e", 2, "", PT_ERR_META_BAD_PATH,
                "info.name");
    expect_fail("6:lengthi100e4:name3:a\\b12:piece lengthi64e", 2, "", PT_ERR_META_BAD_PATH,
                "info.name");

    struct metainfo m;
    struct pt_errctx ec;
    static const char nul_name[] = "6:lengthi100e4:name3:a\0b12:piece lengthi64e";
    CU_ASSERT_EQUAL(parse_info_raw(nul_name, sizeof nul_name - 1, 2, "", &m, &ec, NULL),
                    PT_ERR_META_BAD_PATH);

    /* Deeper than METAINFO_MAX_PATH_DEPTH components. */
    struct buf deep;
    buf_init(&deep);
    bencode_put_list(&deep);
    for (int i = 0; i <= METAINFO_MAX_PATH_DEPTH; i++)
        bencode_put_cstr(&deep, "d");
    bencode_put_end(&deep);
    CU_ASSERT_FATAL(buf_ok(&deep));
    CU_ASSERT_EQUAL(parse_second_path((const char *)deep.data, deep.len, &ec),
                    PT_ERR_META_BAD_PATH);
    buf_release(&deep);
}

static void test_metainfo_component_ok(void)
{
    CU_ASSERT_TRUE(metainfo_component_ok((const uint8_t *)"file.txt", 8));
    CU_ASSERT_TRUE(metainfo_component_ok((const uint8_t *)"...", 3));
    CU_ASSERT_FALSE(metainfo_component_ok((const uint8_t *)"", 0));
    CU_ASSERT_FALSE(metainfo_component_ok((const uint8_t *)".", 1));
    CU_ASSERT_FALSE(metainfo_component_ok((const uint8_t *)"..", 2));
    CU_ASSERT_FALSE(metainfo_component_ok((const uint8_t *)"a/b", 3));
    CU_ASSERT_FALSE(metainfo_component_ok((const uint8_t *)"a\\b", 3));
    CU_ASSERT_FALSE(metainfo_component_ok((const uint8_t *)"a\0b", 3));
    CU_ASSERT_FALSE(metainfo_component_ok((const uint8_t *)"C:", 2));
    CU_ASSERT_FALSE(metainfo_component_ok((const uint8_t *)"C:x", 3));
}

static void test_metainfo_passes_bencode_errors_through(void)
{
    struct buf b;
    buf_init(&b);
    buf_append_str(&b, "d8:announce18:http://t.example/a4:infod" SINGLE);
    put_pieces(&b, 2);
    buf_append_str(&b, "ee");
    CU_ASSERT_FATAL(buf_ok(&b));

    struct metainfo m;
    struct pt_errctx ec;
    /* Missing the final 'e'. */
    CU_ASSERT_EQUAL(metainfo_parse(b.data, b.len - 1, &m, &ec), PT_ERR_BENCODE_TRUNCATED);
    CU_ASSERT_EQUAL(ec.offset, b.len - 1);
    CU_ASSERT_PTR_NULL(m.name);

    /* Cut at every offset: never OK. */
    for (size_t cut = 0; cut < b.len; cut++) {
        uint8_t *p = malloc(cut ? cut : 1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        memcpy(p, b.data, cut);
        enum pt_err err = metainfo_parse(p, cut, &m, NULL);
        CU_ASSERT(err >= PT_ERR_BENCODE_TRUNCATED && err <= PT_ERR_BENCODE_TOO_MANY_VALUES);
        if (err == PT_OK)
            metainfo_release(&m);
        free(p);
    }

    /* Trailing bytes after the torrent. */
    buf_append_str(&b, "\n");
    CU_ASSERT_EQUAL(metainfo_parse(b.data, b.len, &m, &ec), PT_ERR_BENCODE_TRAILING_DATA);
    CU_ASSERT_EQUAL(ec.offset, b.len - 1);
    buf_release(&b);

    static const char dup[] = "d4:infode4:infodee";
    CU_ASSERT_EQUAL(metainfo_parse((const uint8_t *)dup, strlen(dup), &m, &ec),
                    PT_ERR_BENCODE_DUPLICATE_KEY);
    CU_ASSERT_EQUAL(metainfo_parse((const uint8_t *)"", 0, &m, &ec), PT_ERR_BENCODE_TRUNCATED);
}

static void test_metainfo_load(void)
{
    struct metainfo m;
    struct pt_errctx ec;
    CU_ASSERT_EQUAL(metainfo_load("/nonexistent/dir/file.torrent", &m, &ec), PT_ERR_NOT_FOUND);
    CU_ASSERT_PTR_NULL(m.name);
    CU_ASSERT_EQUAL(metainfo_load("no-such-file.torrent", &m, NULL), PT_ERR_NOT_FOUND);

    /* A real file round trip. */
    char path[] = "/tmp/ptorrent-test-XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    struct buf b;
    buf_init(&b);
    buf_append_str(&b, "d4:infod" MULTI);
    put_pieces(&b, 2);
    buf_append_str(&b, "ee");
    CU_ASSERT_FATAL(buf_ok(&b));
    CU_ASSERT_EQUAL_FATAL(write(fd, b.data, b.len), (ssize_t)b.len);
    close(fd);
    CU_ASSERT_EQUAL(metainfo_load(path, &m, &ec), PT_OK);
    CU_ASSERT(m.name && strcmp(m.name, "root") == 0);
    CU_ASSERT_EQUAL(m.file_count, 3);
    metainfo_release(&m);

    /* An empty file is a truncated torrent. */
    fd = open(path, O_WRONLY | O_TRUNC);
    CU_ASSERT(fd >= 0);
    if (fd >= 0)
        close(fd);
    CU_ASSERT_EQUAL(metainfo_load(path, &m, &ec), PT_ERR_BENCODE_TRUNCATED);
    unlink(path);
    buf_release(&b);
}

static void test_metainfo_release_is_safe(void)
{
    struct metainfo m;
    memset(&m, 0, sizeof m);
    metainfo_release(&m);
    CU_ASSERT_PTR_NULL(m.name);
    metainfo_release(&m); /* twice */
    CU_ASSERT_PTR_NULL(m.files);

    /* After a failed parse the struct is empty and may be released again. */
    struct pt_errctx ec;
    CU_ASSERT_NOT_EQUAL(parse_info_body(SINGLE, 3, "", &m, &ec), PT_OK);
    metainfo_release(&m);
    /* And a failed parse may pass a NULL context. */
    CU_ASSERT_EQUAL(metainfo_parse((const uint8_t *)"le", 2, &m, NULL), PT_ERR_META_NOT_DICT);
    metainfo_release(&m);
}

int test_metainfo_register(void); /* called by test_main.c */

int test_metainfo_register(void)
{
    CU_pSuite s = CU_add_suite("metainfo", NULL, NULL);
    if (!s)
        return 1;
    static const struct {
        const char *name;
        CU_TestFunc fn;
    } tests[] = {
        {"single file", test_metainfo_single_file},
        {"piece counts", test_metainfo_piece_counts},
        {"multi file", test_metainfo_multi_file},
        {"trackers", test_metainfo_trackers},
        {"optional fields", test_metainfo_optional_fields},
        {"unsorted info hashes raw bytes", test_metainfo_unsorted_info_hashes_raw_bytes},
        {"rejects non-dict", test_metainfo_rejects_non_dict},
        {"rejects missing keys", test_metainfo_rejects_missing_keys},
        {"rejects wrong types", test_metainfo_rejects_wrong_types},
        {"rejects bad pieces", test_metainfo_rejects_bad_pieces},
        {"rejects bad values", test_metainfo_rejects_bad_values},
        {"rejects size overflow", test_metainfo_rejects_size_overflow},
        {"rejects path traversal", test_metainfo_rejects_path_traversal},
        {"component_ok", test_metainfo_component_ok},
        {"passes bencode errors through", test_metainfo_passes_bencode_errors_through},
        {"load", test_metainfo_load},
        {"release is safe", test_metainfo_release_is_safe},
    };
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
        if (!CU_add_test(s, tests[i].name, tests[i].fn))
            return 1;
    return 0;
}
