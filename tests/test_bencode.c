/*
 * Tests for the bencode decoder and writer, through bencode.h only.
 *
 * Every malformed input checks the specific error code and, where one byte is
 * clearly at fault, the error offset. The hostile cases STYLE.md asks for are
 * here: input cut at every offset, a 100,000-deep nesting bomb, too many
 * values, lengths past the end, and a fixed-seed mutation fuzz loop.
 */
#include <CUnit/CUnit.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bencode.h"
#include "buf.h"

/* Decodes `len` bytes, checks that a failed decode leaves the document empty,
 * releases it, and returns the code; *off_out gets the error offset. */
static enum pt_err decode_len(const char *s, size_t len, size_t *off_out)
{
    struct bencode_doc doc;
    size_t off = (size_t)-1;
    enum pt_err err = bencode_decode((const uint8_t *)s, len, &doc, &off);
    if (err != PT_OK) {
        CU_ASSERT_PTR_NULL(doc.nodes);
        CU_ASSERT_EQUAL(doc.count, 0);
    }
    bencode_release(&doc);
    if (off_out)
        *off_out = off;
    return err;
}

static enum pt_err decode_str(const char *s, size_t *off_out)
{
    return decode_len(s, strlen(s), off_out);
}

/* Asserts that `s` fails with `code` at byte offset `at`. */
#define EXPECT_ERR(s, code, at)                                                                    \
    do {                                                                                           \
        size_t off_;                                                                               \
        CU_ASSERT_EQUAL(decode_str((s), &off_), (code));                                           \
        CU_ASSERT_EQUAL(off_, (size_t)(at));                                                       \
    } while (0)

/* Decodes `s`, which must be one integer, and returns its value. */
static int64_t decode_int(const char *s, enum pt_err *err_out)
{
    struct bencode_doc doc;
    int64_t v = 0;
    *err_out = bencode_decode((const uint8_t *)s, strlen(s), &doc, NULL);
    if (*err_out == PT_OK) {
        const struct bencode_node *r = bencode_root(&doc);
        CU_ASSERT_EQUAL(r->type, BENCODE_INT);
        CU_ASSERT_EQUAL(r->start, 0);
        CU_ASSERT_EQUAL(r->end, strlen(s));
        v = r->ival;
    }
    bencode_release(&doc);
    return v;
}

static void test_bencode_accepts_valid_ints(void)
{
    enum pt_err err;
    CU_ASSERT_EQUAL(decode_int("i0e", &err), 0);
    CU_ASSERT_EQUAL(err, PT_OK);
    CU_ASSERT_EQUAL(decode_int("i-5e", &err), -5);
    CU_ASSERT_EQUAL(err, PT_OK);
    CU_ASSERT_EQUAL(decode_int("i42e", &err), 42);
    CU_ASSERT_EQUAL(err, PT_OK);
    CU_ASSERT_EQUAL(decode_int("i9223372036854775807e", &err), INT64_MAX);
    CU_ASSERT_EQUAL(err, PT_OK);
    CU_ASSERT_EQUAL(decode_int("i-9223372036854775808e", &err), INT64_MIN);
    CU_ASSERT_EQUAL(err, PT_OK);
}

static void test_bencode_rejects_int_overflow(void)
{
    EXPECT_ERR("i9223372036854775808e", PT_ERR_BENCODE_INT_OVERFLOW, 1);
    EXPECT_ERR("i-9223372036854775809e", PT_ERR_BENCODE_INT_OVERFLOW, 2);
    EXPECT_ERR("i18446744073709551616e", PT_ERR_BENCODE_INT_OVERFLOW, 1);
    EXPECT_ERR("i99999999999999999999999999999e", PT_ERR_BENCODE_INT_OVERFLOW, 1);
}

static void test_bencode_rejects_leading_zero(void)
{
    EXPECT_ERR("i03e", PT_ERR_BENCODE_LEADING_ZERO, 1);
    EXPECT_ERR("i00e", PT_ERR_BENCODE_LEADING_ZERO, 1);
    EXPECT_ERR("i-03e", PT_ERR_BENCODE_LEADING_ZERO, 2);
    EXPECT_ERR("03:abc", PT_ERR_BENCODE_LEADING_ZERO, 0);
    EXPECT_ERR("00:", PT_ERR_BENCODE_LEADING_ZERO, 0);
    EXPECT_ERR("li1e03:abce", PT_ERR_BENCODE_LEADING_ZERO, 4);
}

static void test_bencode_rejects_negative_zero(void)
{
    EXPECT_ERR("i-0e", PT_ERR_BENCODE_NEGATIVE_ZERO, 0);
    EXPECT_ERR("l1:xi-0ee", PT_ERR_BENCODE_NEGATIVE_ZERO, 4);
}

static void test_bencode_rejects_bad_int_chars(void)
{
    EXPECT_ERR("ie", PT_ERR_BENCODE_BAD_CHAR, 1);
    EXPECT_ERR("i-e", PT_ERR_BENCODE_BAD_CHAR, 2);
    EXPECT_ERR("i12xe", PT_ERR_BENCODE_BAD_CHAR, 3);
    EXPECT_ERR("i+1e", PT_ERR_BENCODE_BAD_CHAR, 1);
    EXPECT_ERR("i--1e", PT_ERR_BENCODE_BAD_CHAR, 2);
    EXPECT_ERR("i 1e", PT_ERR_BENCODE_BAD_CHAR, 1);
    EXPECT_ERR("i", PT_ERR_BENCODE_TRUNCATED, 1);
    EXPECT_ERR("i12", PT_ERR_BENCODE_TRUNCATED, 3);
    EXPECT_ERR("i-", PT_ERR_BENCODE_TRUNCATED, 2);
}

static void test_bencode_strings(void)
{
    struct bencode_doc doc;
    CU_ASSERT_EQUAL_FATAL(bencode_decode((const uint8_t *)"0:", 2, &doc, NULL), PT_OK);
    CU_ASSERT_EQUAL(bencode_root(&doc)->type, BENCODE_STR);
    CU_ASSERT_EQUAL(bencode_root(&doc)->slen, 0);
    CU_ASSERT(bencode_str_eq(bencode_root(&doc), ""));
    bencode_release(&doc);

    const char *abc = "3:abc";
    CU_ASSERT_EQUAL_FATAL(bencode_decode((const uint8_t *)abc, 5, &doc, NULL), PT_OK);
    const struct bencode_node *r = bencode_root(&doc);
    CU_ASSERT_EQUAL(r->slen, 3);
    CU_ASSERT_PTR_EQUAL(r->str, (const uint8_t *)abc + 2); /* a view, not a copy */
    CU_ASSERT_EQUAL(r->start, 0);
    CU_ASSERT_EQUAL(r->end, 5);
    bencode_release(&doc);

    /* Binary content, including NUL and 'e', is taken by length only. */
    static const char bin[] = "5:a\0e:d";
    CU_ASSERT_EQUAL_FATAL(bencode_decode((const uint8_t *)bin, 7, &doc, NULL), PT_OK);
    CU_ASSERT_EQUAL(bencode_root(&doc)->slen, 5);
    CU_ASSERT_EQUAL(memcmp(bencode_root(&doc)->str, "a\0e:d", 5), 0);
    bencode_release(&doc);
}

static void test_bencode_rejects_bad_string_lengths(void)
{
    EXPECT_ERR("4:abc", PT_ERR_BENCODE_STRING_LENGTH, 0);
    EXPECT_ERR("1:", PT_ERR_BENCODE_STRING_LENGTH, 0);
    EXPECT_ERR("l3:abc10:xe", PT_ERR_BENCODE_STRING_LENGTH, 6);
    EXPECT_ERR("99999999999999999999:x", PT_ERR_BENCODE_STRING_LENGTH, 0);
    EXPECT_ERR("18446744073709551616:x", PT_ERR_BENCODE_STRING_LENGTH, 0);
    EXPECT_ERR("18446744073709551615:x", PT_ERR_BENCODE_STRING_LENGTH, 0);
    /* Missing colon: the byte after the digits is at fault. */
    EXPECT_ERR("3abc", PT_ERR_BENCODE_BAD_CHAR, 1);
    EXPECT_ERR("3", PT_ERR_BENCODE_TRUNCATED, 1);
    EXPECT_ERR("-1:a", PT_ERR_BENCODE_BAD_CHAR, 0);
}

static void test_bencode_rejects_bad_bytes(void)
{
    EXPECT_ERR("", PT_ERR_BENCODE_TRUNCATED, 0);
    EXPECT_ERR("x", PT_ERR_BENCODE_BAD_CHAR, 0);
    EXPECT_ERR("e", PT_ERR_BENCODE_BAD_CHAR, 0);
    EXPECT_ERR("lxe", PT_ERR_BENCODE_BAD_CHAR, 1);
    EXPECT_ERR("l", PT_ERR_BENCODE_TRUNCATED, 1);
    EXPECT_ERR("li1e", PT_ERR_BENCODE_TRUNCATED, 4);
    EXPECT_ERR("d", PT_ERR_BENCODE_TRUNCATED, 1);
    EXPECT_ERR("d3:foo", PT_ERR_BENCODE_TRUNCATED, 6);
    /* A key without its value. */
    EXPECT_ERR("d3:fooe", PT_ERR_BENCODE_BAD_CHAR, 6);
}

static void test_bencode_lists_and_dicts(void)
{
    static const char s[] = "d1:ali1e3:twoli2edeee1:bdee";
    struct bencode_doc doc;
    CU_ASSERT_EQUAL_FATAL(bencode_decode((const uint8_t *)s, strlen(s), &doc, NULL), PT_OK);
    CU_ASSERT_FALSE(doc.unsorted_keys);
    const struct bencode_node *root = bencode_root(&doc);
    CU_ASSERT_EQUAL(root->type, BENCODE_DICT);
    CU_ASSERT_EQUAL(root->count, 2);
    CU_ASSERT_EQUAL(root->after, doc.count);

    const struct bencode_node *a = bencode_dict_get(&doc, root, "a");
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_EQUAL(a->type, BENCODE_LIST);
    CU_ASSERT_EQUAL(a->count, 3);
    const struct bencode_node *c = bencode_first(a);
    CU_ASSERT_EQUAL(c->type, BENCODE_INT);
    CU_ASSERT_EQUAL(c->ival, 1);
    c = bencode_next(&doc, c);
    CU_ASSERT(bencode_str_eq(c, "two"));
    c = bencode_next(&doc, c);
    CU_ASSERT_EQUAL(c->type, BENCODE_LIST);
    CU_ASSERT_EQUAL(c->count, 2);
    CU_ASSERT_EQUAL(bencode_first(c)->ival, 2);
    CU_ASSERT_EQUAL(bencode_next(&doc, bencode_first(c))->type, BENCODE_DICT);
    CU_ASSERT_EQUAL(bencode_next(&doc, bencode_first(c))->count, 0);

    const struct bencode_node *b = bencode_dict_get(&doc, root, "b");
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(b->type, BENCODE_DICT);
    CU_ASSERT_EQUAL(b->count, 0);
    CU_ASSERT_PTR_NULL(bencode_dict_get(&doc, root, "c"));
    CU_ASSERT_PTR_NULL(bencode_dict_get(&doc, root, ""));
    CU_ASSERT_PTR_NULL(bencode_dict_get(&doc, a, "a")); /* not a dict */
    CU_ASSERT_PTR_NULL(bencode_dict_get(&doc, NULL, "a"));
    bencode_release(&doc);

    /* Empty containers. */
    CU_ASSERT_EQUAL(decode_str("le", NULL), PT_OK);
    CU_ASSERT_EQUAL(decode_str("de", NULL), PT_OK);
    CU_ASSERT_EQUAL(decode_str("llleee", NULL), PT_OK);
}

static void test_bencode_node_spans(void)
{
    static const char s[] = "d4:infod6:lengthi5e4:name3:abce5:otherli1eee";
    static const char inner[] = "d6:lengthi5e4:name3:abce";
    struct bencode_doc doc;
    CU_ASSERT_EQUAL_FATAL(bencode_decode((const uint8_t *)s, strlen(s), &doc, NULL), PT_OK);
    const struct bencode_node *root = bencode_root(&doc);
    CU_ASSERT_EQUAL(root->start, 0);
    CU_ASSERT_EQUAL(root->end, strlen(s));

    const struct bencode_node *info = bencode_dict_get(&doc, root, "info");
    CU_ASSERT_PTR_NOT_NULL_FATAL(info);
    size_t at = (size_t)(strstr(s, inner) - s);
    CU_ASSERT_EQUAL(info->start, at);
    CU_ASSERT_EQUAL(info->end, at + strlen(inner));
    CU_ASSERT_EQUAL(memcmp(doc.input + info->start, inner, info->end - info->start), 0);

    const struct bencode_node *name = bencode_dict_get(&doc, info, "name");
    CU_ASSERT_PTR_NOT_NULL_FATAL(name);
    CU_ASSERT_EQUAL(name->start, (size_t)(strstr(s, "3:abc") - s));
    CU_ASSERT_EQUAL(name->end, name->start + 5);

    const struct bencode_node *len = bencode_dict_get(&doc, info, "length");
    CU_ASSERT_EQUAL(len->start, (size_t)(strstr(s, "i5e") - s));
    CU_ASSERT_EQUAL(len->end, len->start + 3);

    const struct bencode_node *other = bencode_dict_get(&doc, root, "other");
    CU_ASSERT_PTR_NOT_NULL_FATAL(other);
    CU_ASSERT_EQUAL(other->start, (size_t)(strstr(s, "li1ee") - s));
    CU_ASSERT_EQUAL(other->end, strlen(s) - 1);

    /* Every node's span lies inside its parent's; `after` skips the subtree. */
    for (size_t i = 0; i < doc.count; i++) {
        const struct bencode_node *n = &doc.nodes[i];
        CU_ASSERT(n->start < n->end && n->end <= strlen(s));
        CU_ASSERT(n->after > i && n->after <= doc.count);
        for (size_t j = i + 1; j < n->after; j++)
            CU_ASSERT(doc.nodes[j].start >= n->start && doc.nodes[j].end <= n->end);
    }
    bencode_release(&doc);
}

static void test_bencode_rejects_non_string_key(void)
{
    EXPECT_ERR("di1ei2ee", PT_ERR_BENCODE_KEY_NOT_STRING, 1);
    EXPECT_ERR("dlei1ee", PT_ERR_BENCODE_KEY_NOT_STRING, 1);
    EXPECT_ERR("ddei1ee", PT_ERR_BENCODE_KEY_NOT_STRING, 1);
    EXPECT_ERR("d1:ai1ei2ei3ee", PT_ERR_BENCODE_KEY_NOT_STRING, 7);
}

static void test_bencode_rejects_duplicate_keys(void)
{
    /* Adjacent: found as the key arrives; the offset is the second key. */
    EXPECT_ERR("d1:ai1e1:ai2ee", PT_ERR_BENCODE_DUPLICATE_KEY, 7);
    EXPECT_ERR("d0:i1e0:i2ee", PT_ERR_BENCODE_DUPLICATE_KEY, 6);
    /* Far apart in an unsorted dict (b, a, c, b): found when the dict closes. */
    EXPECT_ERR("d1:bi1e1:ai2e1:ci3e1:bi4ee", PT_ERR_BENCODE_DUPLICATE_KEY, 19);
    /* Nested, and in the middle of a longer document. */
    EXPECT_ERR("ld2:zzi0e1:xi0e1:yi0e2:zzi0eei5ee", PT_ERR_BENCODE_DUPLICATE_KEY, 21);
    /* Same prefix is not the same key. */
    CU_ASSERT_EQUAL(decode_str("d1:ai1e2:aai2ee", NULL), PT_OK);
    CU_ASSERT_EQUAL(decode_str("d2:aai1e1:ai2ee", NULL), PT_OK);
}

static bool unsorted(const char *s)
{
    struct bencode_doc doc;
    enum pt_err err = bencode_decode((const uint8_t *)s, strlen(s), &doc, NULL);
    CU_ASSERT_EQUAL(err, PT_OK);
    bool u = doc.unsorted_keys;
    bencode_release(&doc);
    return u;
}

static void test_bencode_reports_unsorted_keys(void)
{
    CU_ASSERT_FALSE(unsorted("d1:ai1e1:bi2ee"));
    CU_ASSERT_FALSE(unsorted("d1:ai1e2:aai2e1:bi3ee"));
    CU_ASSERT_FALSE(unsorted("d0:i0e1:\x01i0e1:\xffi0ee")); /* bytes compare unsigned */
    CU_ASSERT_FALSE(unsorted("li1el1:bed1:xi0eee"));
    CU_ASSERT_TRUE(unsorted("d1:bi1e1:ai2ee"));
    CU_ASSERT_TRUE(unsorted("d2:aai1e1:ai2ee"));
    CU_ASSERT_TRUE(unsorted("d1:\xffi0e1:\x01i0ee"));
    CU_ASSERT_TRUE(unsorted("ld1:bi1e1:ai2eee")); /* nested */
}

static void test_bencode_rejects_trailing_data(void)
{
    EXPECT_ERR("i1ex", PT_ERR_BENCODE_TRAILING_DATA, 3);
    EXPECT_ERR("i1ei2e", PT_ERR_BENCODE_TRAILING_DATA, 3);
    EXPECT_ERR("0:0:", PT_ERR_BENCODE_TRAILING_DATA, 2);
    EXPECT_ERR("dee", PT_ERR_BENCODE_TRAILING_DATA, 2);
    EXPECT_ERR("d1:ai1ee\n", PT_ERR_BENCODE_TRAILING_DATA, 8);
    /* A NUL byte after the value counts too. */
    size_t off;
    CU_ASSERT_EQUAL(decode_len("le\0", 3, &off), PT_ERR_BENCODE_TRAILING_DATA);
    CU_ASSERT_EQUAL(off, 2);
}

static void test_bencode_decode_prefix_reports_used(void)
{
    static const char s[] = "d8:msg_typei1e5:piecei0eeXYZ\0binary";
    struct bencode_doc doc;
    size_t used = 0;
    CU_ASSERT_EQUAL_FATAL(
        bencode_decode_prefix((const uint8_t *)s, sizeof s - 1, &doc, &used, NULL), PT_OK);
    CU_ASSERT_EQUAL(used, strlen("d8:msg_typei1e5:piecei0ee"));
    CU_ASSERT_EQUAL(bencode_root(&doc)->end, used);
    const struct bencode_node *p = bencode_dict_get(&doc, bencode_root(&doc), "piece");
    CU_ASSERT_PTR_NOT_NULL(p);
    bencode_release(&doc);

    /* Exactly one value: used == len. */
    CU_ASSERT_EQUAL(bencode_decode_prefix((const uint8_t *)"i7e", 3, &doc, &used, NULL), PT_OK);
    CU_ASSERT_EQUAL(used, 3);
    bencode_release(&doc);

    /* The value itself still has to be complete and valid. */
    size_t off;
    CU_ASSERT_EQUAL(bencode_decode_prefix((const uint8_t *)"d1:ai1e", 7, &doc, &used, &off),
                    PT_ERR_BENCODE_TRUNCATED);
    CU_ASSERT_EQUAL(off, 7);
    CU_ASSERT_EQUAL(bencode_decode_prefix((const uint8_t *)"i01eXX", 6, &doc, &used, &off),
                    PT_ERR_BENCODE_LEADING_ZERO);
    CU_ASSERT_EQUAL(off, 1);
}

/* "l" * n + "e" * n */
static char *nested_lists(size_t n)
{
    char *s = malloc(2 * n + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    memset(s, 'l', n);
    memset(s + n, 'e', n);
    s[2 * n] = '\0';
    return s;
}

static void test_bencode_depth_limit(void)
{
    char *s = nested_lists(BENCODE_MAX_DEPTH);
    CU_ASSERT_EQUAL(decode_str(s, NULL), PT_OK);
    free(s);

    s = nested_lists(BENCODE_MAX_DEPTH + 1);
    EXPECT_ERR(s, PT_ERR_BENCODE_TOO_DEEP, BENCODE_MAX_DEPTH);
    free(s);

    /* Dicts count too: 99 lists, then a dict holding a list. */
    struct buf b;
    buf_init(&b);
    for (int i = 0; i < BENCODE_MAX_DEPTH - 1; i++)
        bencode_put_list(&b);
    bencode_put_dict(&b);
    bencode_put_cstr(&b, "k");
    bencode_put_list(&b);
    bencode_put_end(&b);
    bencode_put_end(&b);
    for (int i = 0; i < BENCODE_MAX_DEPTH - 1; i++)
        bencode_put_end(&b);
    CU_ASSERT_FATAL(buf_ok(&b));
    EXPECT_ERR((const char *)b.data, PT_ERR_BENCODE_TOO_DEEP, BENCODE_MAX_DEPTH + 3);
    buf_release(&b);
}

static void test_bencode_nesting_bomb_is_an_error(void)
{
    char *s = nested_lists(100000);
    EXPECT_ERR(s, PT_ERR_BENCODE_TOO_DEEP, BENCODE_MAX_DEPTH);
    /* Unterminated, as an attacker would send it. */
    size_t off;
    CU_ASSERT_EQUAL(decode_len(s, 100000, &off), PT_ERR_BENCODE_TOO_DEEP);
    CU_ASSERT_EQUAL(off, BENCODE_MAX_DEPTH);
    free(s);
}

/* "l" + n * "i0e" + "e": n + 1 values. */
static char *many_ints(size_t n, size_t *len_out)
{
    size_t len = 3 * n + 2;
    char *s = malloc(len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    s[0] = 'l';
    for (size_t i = 0; i < n; i++)
        memcpy(s + 1 + 3 * i, "i0e", 3);
    s[len - 1] = 'e';
    *len_out = len;
    return s;
}

static void test_bencode_too_many_values(void)
{
    size_t len, off;
    /* A list plus BENCODE_MAX_VALUES - 1 ints is exactly the cap. */
    char *s = many_ints(BENCODE_MAX_VALUES - 1, &len);
    struct bencode_doc doc;
    CU_ASSERT_EQUAL(bencode_decode((const uint8_t *)s, len, &doc, NULL), PT_OK);
    CU_ASSERT_EQUAL(doc.count, BENCODE_MAX_VALUES);
    bencode_release(&doc);
    free(s);

    /* BENCODE_MAX_VALUES + 1 ints: the int that is value number cap + 1 fails. */
    s = many_ints(BENCODE_MAX_VALUES + 1, &len);
    CU_ASSERT_EQUAL(decode_len(s, len, &off), PT_ERR_BENCODE_TOO_MANY_VALUES);
    CU_ASSERT_EQUAL(off, 1 + 3 * (size_t)(BENCODE_MAX_VALUES - 1));
    free(s);
}

/* A realistic multi-file torrent with tiers, binary piece hashes and an
 * int64 extreme, written in canonical (sorted) order. */
static void build_torrent(struct buf *b)
{
    uint8_t hashes[60];
    for (size_t i = 0; i < sizeof hashes; i++)
        hashes[i] = (uint8_t)(i * 37 + 101); /* includes 'e', 'd', ':' and NUL-ish bytes */
    hashes[5] = 0;
    bencode_put_dict(b);
    bencode_put_cstr(b, "announce");
    bencode_put_cstr(b, "http://tracker.example/announce");
    bencode_put_cstr(b, "announce-list");
    bencode_put_list(b);
    bencode_put_list(b);
    bencode_put_cstr(b, "http://a.example/ann");
    bencode_put_cstr(b, "udp://b.example:6969");
    bencode_put_end(b);
    bencode_put_list(b);
    bencode_put_cstr(b, "http://c.example/ann");
    bencode_put_end(b);
    bencode_put_end(b);
    bencode_put_cstr(b, "comment");
    bencode_put_cstr(b, "caf\xc3\xa9 test");
    bencode_put_cstr(b, "creation date");
    bencode_put_int(b, 1700000000);
    bencode_put_cstr(b, "info");
    bencode_put_dict(b);
    bencode_put_cstr(b, "files");
    bencode_put_list(b);
    bencode_put_dict(b);
    bencode_put_cstr(b, "length");
    bencode_put_int(b, 40000);
    bencode_put_cstr(b, "path");
    bencode_put_list(b);
    bencode_put_cstr(b, "dir");
    bencode_put_cstr(b, "a.bin");
    bencode_put_end(b);
    bencode_put_end(b);
    bencode_put_dict(b);
    bencode_put_cstr(b, "length");
    bencode_put_int(b, 0);
    bencode_put_cstr(b, "path");
    bencode_put_list(b);
    bencode_put_cstr(b, "empty");
    bencode_put_end(b);
    bencode_put_end(b);
    bencode_put_end(b);
    bencode_put_cstr(b, "name");
    bencode_put_cstr(b, "root");
    bencode_put_cstr(b, "piece length");
    bencode_put_int(b, 16384);
    bencode_put_cstr(b, "pieces");
    bencode_put_str(b, hashes, sizeof hashes);
    bencode_put_cstr(b, "x-extreme");
    bencode_put_int(b, INT64_MIN);
    bencode_put_end(b);
    bencode_put_end(b);
}

static void test_bencode_truncated_at_every_offset(void)
{
    struct buf b;
    buf_init(&b);
    build_torrent(&b);
    CU_ASSERT_FATAL(buf_ok(&b));
    struct bencode_doc doc;
    CU_ASSERT_EQUAL_FATAL(bencode_decode(b.data, b.len, &doc, NULL), PT_OK);
    bencode_release(&doc);

    for (size_t cut = 0; cut < b.len; cut++) {
        /* Copy so that ASan catches any read past the cut. */
        uint8_t *p = malloc(cut ? cut : 1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        memcpy(p, b.data, cut);
        size_t off = (size_t)-1, used;
        enum pt_err err = bencode_decode(p, cut, &doc, &off);
        CU_ASSERT_NOT_EQUAL(err, PT_OK);
        CU_ASSERT(off <= cut);
        if (err == PT_OK)
            bencode_release(&doc);
        err = bencode_decode_prefix(p, cut, &doc, &used, NULL);
        CU_ASSERT_NOT_EQUAL(err, PT_OK);
        if (err == PT_OK)
            bencode_release(&doc);
        free(p);
    }
    buf_release(&b);
}

static void test_bencode_encode_sorts_keys(void)
{
    static const char in[] = "d1:bli2ei1ee1:ad1:zi0e1:yi-1ee2:aa0:e";
    static const char want[] = "d1:ad1:yi-1e1:zi0ee2:aa0:1:bli2ei1eee";
    struct bencode_doc doc;
    CU_ASSERT_EQUAL_FATAL(bencode_decode((const uint8_t *)in, strlen(in), &doc, NULL), PT_OK);
    CU_ASSERT_TRUE(doc.unsorted_keys);
    struct buf out;
    buf_init(&out);
    CU_ASSERT_EQUAL(bencode_encode(&doc, bencode_root(&doc), &out), PT_OK);
    CU_ASSERT_EQUAL(out.len, strlen(want));
    CU_ASSERT(out.len == strlen(want) && memcmp(out.data, want, out.len) == 0);

    /* A subtree encodes on its own. */
    buf_release(&out);
    buf_init(&out);
    CU_ASSERT_EQUAL(bencode_encode(&doc, bencode_dict_get(&doc, bencode_root(&doc), "a"), &out),
                    PT_OK);
    CU_ASSERT(out.len == 15 && memcmp(out.data, "d1:yi-1e1:zi0ee", 15) == 0);
    buf_release(&out);
    bencode_release(&doc);

    /* Re-decoding the output gives a sorted document. */
    CU_ASSERT_FALSE(unsorted(want));
}

static void test_bencode_writer_round_trip(void)
{
    static const uint8_t bin[] = {0, 'e', ':', 0xff, 'd', 0};
    struct buf b;
    buf_init(&b);
    bencode_put_dict(&b);
    bencode_put_cstr(&b, "bin");
    bencode_put_str(&b, bin, sizeof bin);
    bencode_put_cstr(&b, "empty");
    bencode_put_str(&b, "", 0);
    bencode_put_cstr(&b, "ints");
    bencode_put_list(&b);
    bencode_put_int(&b, 0);
    bencode_put_int(&b, -1);
    bencode_put_int(&b, INT64_MAX);
    bencode_put_int(&b, INT64_MIN);
    bencode_put_end(&b);
    bencode_put_cstr(&b, "sub");
    bencode_put_dict(&b);
    bencode_put_cstr(&b, "k");
    bencode_put_list(&b);
    bencode_put_end(&b);
    bencode_put_end(&b);
    bencode_put_end(&b);
    CU_ASSERT_FATAL(buf_ok(&b));

    static const char want[] = "d3:bin6:\0e:\xff"
                               "d\0"
                               "5:empty0:4:intsli0ei-1ei9223372036854775807ei-"
                               "9223372036854775808ee3:subd1:kleee";
    CU_ASSERT_EQUAL(b.len, sizeof want - 1);
    CU_ASSERT(b.len == sizeof want - 1 && memcmp(b.data, want, b.len) == 0);

    struct bencode_doc doc;
    CU_ASSERT_EQUAL_FATAL(bencode_decode(b.data, b.len, &doc, NULL), PT_OK);
    CU_ASSERT_FALSE(doc.unsorted_keys);
    const struct bencode_node *root = bencode_root(&doc);
    const struct bencode_node *n = bencode_dict_get(&doc, root, "bin");
    CU_ASSERT(n && n->type == BENCODE_STR && n->slen == sizeof bin &&
              memcmp(n->str, bin, sizeof bin) == 0);
    n = bencode_dict_get(&doc, root, "empty");
    CU_ASSERT(n && n->type == BENCODE_STR && n->slen == 0);
    n = bencode_dict_get(&doc, root, "ints");
    CU_ASSERT_FATAL(n && n->type == BENCODE_LIST && n->count == 4);
    static const int64_t vals[] = {0, -1, INT64_MAX, INT64_MIN};
    const struct bencode_node *c = bencode_first(n);
    for (uint32_t i = 0; i < n->count; i++, c = bencode_next(&doc, c))
        CU_ASSERT(c->type == BENCODE_INT && c->ival == vals[i]);
    n = bencode_dict_get(&doc, root, "sub");
    CU_ASSERT(n && n->type == BENCODE_DICT && n->count == 1);

    /* Canonical input re-encodes to the same bytes. */
    struct buf out;
    buf_init(&out);
    CU_ASSERT_EQUAL(bencode_encode(&doc, root, &out), PT_OK);
    CU_ASSERT(out.len == b.len && memcmp(out.data, b.data, b.len) == 0);
    buf_release(&out);
    bencode_release(&doc);
    buf_release(&b);
}

static void test_bencode_str_eq_and_strdup(void)
{
    static const char s[] = "l3:abc5:a\0b\0ci3e0:e";
    struct bencode_doc doc;
    CU_ASSERT_EQUAL_FATAL(bencode_decode((const uint8_t *)s, sizeof s - 1, &doc, NULL), PT_OK);
    const struct bencode_node *abc = bencode_first(bencode_root(&doc));
    const struct bencode_node *nul = bencode_next(&doc, abc);
    const struct bencode_node *three = bencode_next(&doc, nul);
    const struct bencode_node *empty = bencode_next(&doc, three);

    CU_ASSERT_TRUE(bencode_str_eq(abc, "abc"));
    CU_ASSERT_FALSE(bencode_str_eq(abc, "ab"));
    CU_ASSERT_FALSE(bencode_str_eq(abc, "abcd"));
    CU_ASSERT_FALSE(bencode_str_eq(abc, "abd"));
    CU_ASSERT_FALSE(bencode_str_eq(nul, "a")); /* the embedded NUL doesn't end it */
    CU_ASSERT_FALSE(bencode_str_eq(three, "3"));
    CU_ASSERT_FALSE(bencode_str_eq(NULL, "abc"));
    CU_ASSERT_TRUE(bencode_str_eq(empty, ""));

    char *d = bencode_strdup(abc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_STRING_EQUAL(d, "abc");
    CU_ASSERT_PTR_NOT_EQUAL(d, (const char *)abc->str);
    free(d);
    d = bencode_strdup(nul);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_EQUAL(memcmp(d, "a\0b\0c\0", 6), 0);
    free(d);
    d = bencode_strdup(empty);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_STRING_EQUAL(d, "");
    free(d);
    bencode_release(&doc);
}

/* xorshift64: deterministic, so a failure reproduces. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* Bytes that keep mutants near the grammar, so some of them still decode. */
static uint8_t random_byte(uint64_t *rng)
{
    static const char alphabet[] = "0123456789ilde:-";
    uint64_t r = rng_next(rng);
    if (r % 4 == 0)
        return (uint8_t)(r >> 8);
    return (uint8_t)alphabet[(r >> 8) % (sizeof alphabet - 1)];
}

/* Checks what must hold of any successfully decoded document. */
static void check_decoded(const uint8_t *p, size_t len, const struct bencode_doc *doc)
{
    CU_ASSERT_FATAL(doc->count > 0);
    const struct bencode_node *root = bencode_root(doc);
    CU_ASSERT(root->start == 0 && root->end == len && root->after == doc->count);
    for (size_t i = 0; i < doc->count; i++) {
        const struct bencode_node *n = &doc->nodes[i];
        CU_ASSERT(n->start < n->end && n->end <= len);
        if (n->type == BENCODE_STR)
            CU_ASSERT(n->str >= p && n->str + n->slen == p + n->end);
    }
    struct buf out;
    buf_init(&out);
    CU_ASSERT_EQUAL_FATAL(bencode_encode(doc, root, &out), PT_OK);
    if (!doc->unsorted_keys) {
        /* The decoder is strict, so sorted input is already canonical. */
        CU_ASSERT(out.len == len && memcmp(out.data, p, len) == 0);
    }
    struct bencode_doc again;
    CU_ASSERT_EQUAL_FATAL(bencode_decode(out.data, out.len, &again, NULL), PT_OK);
    CU_ASSERT_FALSE(again.unsorted_keys);
    CU_ASSERT_EQUAL(again.count, doc->count);
    struct buf out2;
    buf_init(&out2);
    CU_ASSERT_EQUAL(bencode_encode(&again, bencode_root(&again), &out2), PT_OK);
    CU_ASSERT(out2.len == out.len && memcmp(out2.data, out.data, out.len) == 0);
    buf_release(&out2);
    bencode_release(&again);
    buf_release(&out);
}

static void test_bencode_mutation_fuzz(void)
{
    struct buf base;
    buf_init(&base);
    build_torrent(&base);
    CU_ASSERT_FATAL(buf_ok(&base));

    uint64_t rng = 0x9e3779b97f4a7c15u;
    size_t cap = base.len + 16;
    uint8_t *p = malloc(cap);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    unsigned ok = 0;
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = base.len;
        memcpy(p, base.data, len);
        int edits = 1 + (int)(rng_next(&rng) % 3);
        for (int e = 0; e < edits; e++) {
            uint64_t r = rng_next(&rng);
            size_t at = len ? (size_t)(r >> 16) % len : 0;
            switch (r % 3) {
            case 0: /* replace */
                if (len)
                    p[at] = random_byte(&rng);
                break;
            case 1: /* insert */
                if (len < cap) {
                    memmove(p + at + 1, p + at, len - at);
                    p[at] = random_byte(&rng);
                    len++;
                }
                break;
            default: /* delete */
                if (len) {
                    memmove(p + at, p + at + 1, len - at - 1);
                    len--;
                }
                break;
            }
        }
        /* An exact-size copy so that ASan sees any read past the end. */
        uint8_t *q = malloc(len ? len : 1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(q);
        memcpy(q, p, len);
        struct bencode_doc doc;
        size_t off = (size_t)-1;
        enum pt_err err = bencode_decode(q, len, &doc, &off);
        if (err == PT_OK) {
            ok++;
            check_decoded(q, len, &doc);
            bencode_release(&doc);
        } else {
            CU_ASSERT(err >= PT_ERR_BENCODE_TRUNCATED && err <= PT_ERR_BENCODE_TOO_MANY_VALUES);
            CU_ASSERT(off <= len);
        }
        free(q);
    }
    /* The loop must exercise both paths to mean anything. */
    CU_ASSERT(ok > 100);
    CU_ASSERT(ok < 20000);
    free(p);
    buf_release(&base);
}

int test_bencode_register(void); /* called by test_main.c */

int test_bencode_register(void)
{
    CU_pSuite s = CU_add_suite("bencode", NULL, NULL);
    if (!s)
        return 1;
    static const struct {
        const char *name;
        CU_TestFunc fn;
    } tests[] = {
        {"accepts valid ints", test_bencode_accepts_valid_ints},
        {"rejects int overflow", test_bencode_rejects_int_overflow},
        {"rejects leading zero", test_bencode_rejects_leading_zero},
        {"rejects negative zero", test_bencode_rejects_negative_zero},
        {"rejects bad int chars", test_bencode_rejects_bad_int_chars},
        {"strings", test_bencode_strings},
        {"rejects bad string lengths", test_bencode_rejects_bad_string_lengths},
        {"rejects bad bytes", test_bencode_rejects_bad_bytes},
        {"lists and dicts", test_bencode_lists_and_dicts},
        {"node spans", test_bencode_node_spans},
        {"rejects non-string key", test_bencode_rejects_non_string_key},
        {"rejects duplicate keys", test_bencode_rejects_duplicate_keys},
        {"reports unsorted keys", test_bencode_reports_unsorted_keys},
        {"rejects trailing data", test_bencode_rejects_trailing_data},
        {"decode_prefix reports used", test_bencode_decode_prefix_reports_used},
        {"depth limit", test_bencode_depth_limit},
        {"nesting bomb is an error", test_bencode_nesting_bomb_is_an_error},
        {"too many values", test_bencode_too_many_values},
        {"truncated at every offset", test_bencode_truncated_at_every_offset},
        {"encode sorts keys", test_bencode_encode_sorts_keys},
        {"writer round trip", test_bencode_writer_round_trip},
        {"str_eq and strdup", test_bencode_str_eq_and_strdup},
        {"mutation fuzz", test_bencode_mutation_fuzz},
    };
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
        if (!CU_add_test(s, tests[i].name, tests[i].fn))
            return 1;
    return 0;
}
