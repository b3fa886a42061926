/*
 * Tests for the --stats-json report, through stats.h: the output of
 * stats_format is parsed by a small strict JSON parser below (so "valid
 * JSON" means something), then every documented field is checked by value;
 * peers never connected are left out, banned ones are kept, times that never
 * happened are null. stats_write leaves exactly the file (no temp file
 * behind), replaces an old one, and fails cleanly into a missing directory.
 *
 * The parser is strict RFC 8259: no trailing commas, no leading zeros, no
 * NaN/Infinity, no raw control bytes in strings, only the standard escapes,
 * one value then only whitespace. Numbers keep their source text so 64-bit
 * integers compare exactly. It is checked against bad input first.
 */
#include <CUnit/CUnit.h>
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "addr.h"
#include "buf.h"
#include "stats.h"
#include "swarm.h"

/* ---- a strict JSON parser ---- */

#define JSON_MAX_DEPTH 32 /* far deeper than the report; bounds the recursion */

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jv {
    enum jtype type;
    bool boolean;
    double num;
    char *text; /* J_NUM: the source text; J_STR: the decoded bytes (both NUL-ended) */
    size_t text_len;
    char *key;         /* set when this value is a member of an object */
    struct jv **items; /* J_ARR, J_OBJ: n children in source order */
    size_t n;
};

struct jparser {
    const char *s;
    size_t len, pos;
    int depth;
};

static void jv_free(struct jv *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n; i++)
        jv_free(v->items[i]);
    free(v->items);
    free(v->text);
    free(v->key);
    free(v);
}

static void skip_ws(struct jparser *p)
{
    while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
                               p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
        p->pos++;
}

static bool jv_push(struct jv *v, struct jv *child)
{
    struct jv **items = realloc(v->items, (v->n + 1) * sizeof *items);
    if (!items)
        return false;
    v->items = items;
    v->items[v->n++] = child;
    return true;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool read_hex4(struct jparser *p, uint32_t *out)
{
    if (p->len - p->pos < 4)
        return false;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_digit(p->s[p->pos++]);
        if (d < 0)
            return false;
        v = v << 4 | (uint32_t)d;
    }
    *out = v;
    return true;
}

static size_t put_utf8(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* A string literal at p->pos (on the opening quote) into a malloc'd,
 * NUL-ended copy of its decoded bytes. Raw bytes >= 0x80 are copied as they
 * are (the writer's UTF-8 is checked by test_util). */
static char *parse_string(struct jparser *p, size_t *len_out)
{
    if (p->pos >= p->len || p->s[p->pos] != '"')
        return NULL;
    p->pos++;
    /* Decoded text is never longer than the source. */
    char *out = malloc(p->len - p->pos + 1);
    if (!out)
        return NULL;
    size_t n = 0;
    while (p->pos < p->len) {
        unsigned char c = (unsigned char)p->s[p->pos++];
        if (c == '"') {
            out[n] = '\0';
            *len_out = n;
            return out;
        }
        if (c < 0x20)
            break; /* raw control byte */
        if (c != '\\') {
            out[n++] = (char)c;
            continue;
        }
        if (p->pos >= p->len)
            break;
        char e = p->s[p->pos++];
        const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
        const char *hit = strchr(from, e);
        if (e != '\0' && hit && e != 'u') {
            out[n++] = to[hit - from];
            continue;
        }
        if (e != 'u')
            break;
        uint32_t cp;
        if (!read_hex4(p, &cp))
            break;
        if (cp >= 0xdc00 && cp <= 0xdfff)
            break; /* a lone low surrogate */
        if (cp >= 0xd800 && cp <= 0xdbff) {
            uint32_t lo;
            if (p->len - p->pos < 2 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u')
                break;
            p->pos += 2;
            if (!read_hex4(p, &lo) || lo < 0xdc00 || lo > 0xdfff)
                break;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        }
        n += put_utf8(out + n, cp); /* at most 4 bytes for at least 6 of source */
    }
    free(out);
    return NULL;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool parse_number(struct jparser *p, struct jv *v)
{
    size_t start = p->pos;
    const char *s = p->s;
#define AT(c) (p->pos < p->len && s[p->pos] == (c))
#define DIGIT() (p->pos < p->len && s[p->pos] >= '0' && s[p->pos] <= '9')
    if (AT('-'))
        p->pos++;
    if (AT('0')) {
        p->pos++;
    } else if (DIGIT()) {
        while (DIGIT())
            p->pos++;
    } else {
        return false;
    }
    if (AT('.')) {
        p->pos++;
        if (!DIGIT())
            return false;
        while (DIGIT())
            p->pos++;
    }
    if (AT('e') || AT('E')) {
        p->pos++;
        if (AT('+') || AT('-'))
            p->pos++;
        if (!DIGIT())
            return false;
        while (DIGIT())
            p->pos++;
    }
#undef AT
#undef DIGIT
    v->text_len = p->pos - start;
    v->text = malloc(v->text_len + 1);
    if (!v->text)
        return false;
    memcpy(v->text, s + start, v->text_len);
    v->text[v->text_len] = '\0';
    v->num = strtod(v->text, NULL);
    v->type = J_NUM;
    return true;
}

static bool match_word(struct jparser *p, const char *w)
{
    size_t n = strlen(w);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, w, n) != 0)
        return false;
    p->pos += n;
    return true;
}

static struct jv *parse_value(struct jparser *p);

/* Members or elements after the opening bracket, up to the closing one. */
static bool parse_container(struct jparser *p, struct jv *v, bool object)
{
    char close = object ? '}' : ']';
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        return true;
    }
    for (;;) {
        char *key = NULL;
        if (object) {
            size_t klen;
            skip_ws(p);
            key = parse_string(p, &klen);
            if (!key)
                return false;
            for (size_t i = 0; i < v->n; i++) {
                if (strcmp(v->items[i]->key, key) == 0) {
                    free(key); /* duplicate key: legal JSON, but never right for us */
                    return false;
                }
            }
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') {
                free(key);
                return false;
            }
            p->pos++;
        }
        struct jv *child = parse_value(p);
        if (!child) {
            free(key);
            return false;
        }
        child->key = key;
        if (!jv_push(v, child)) {
            jv_free(child);
            return false;
        }
        skip_ws(p);
        if (p->pos >= p->len)
            return false;
        char c = p->s[p->pos++];
        if (c == close)
            return true;
        if (c != ',')
            return false;
    }
}

static struct jv *parse_value(struct jparser *p)
{
    if (++p->depth > JSON_MAX_DEPTH)
        return NULL;
    struct jv *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    skip_ws(p);
    bool ok = false;
    char c = p->pos < p->len ? p->s[p->pos] : '\0';
    if (c == '{' || c == '[') {
        v->type = c == '{' ? J_OBJ : J_ARR;
        ok = parse_container(p, v, c == '{');
    } else if (c == '"') {
        v->type = J_STR;
        v->text = parse_string(p, &v->text_len);
        ok = v->text != NULL;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        ok = parse_number(p, v);
    } else if (match_word(p, "true")) {
        v->type = J_BOOL;
        v->boolean = ok = true;
    } else if (match_word(p, "false")) {
        v->type = J_BOOL;
        ok = true;
    } else if (match_word(p, "null")) {
        v->type = J_NULL;
        ok = true;
    }
    p->depth--;
    if (!ok) {
        jv_free(v);
        return NULL;
    }
    return v;
}

/* The one value in s[0..len), or NULL if that is not exactly one JSON value
 * (surrounding whitespace allowed). */
static struct jv *json_parse(const char *s, size_t len)
{
    struct jparser p = {s, len, 0, 0};
    struct jv *v = parse_value(&p);
    skip_ws(&p);
    if (v && p.pos != len) {
        jv_free(v);
        return NULL;
    }
    return v;
}

static bool json_valid(const char *s)
{
    struct jv *v = json_parse(s, strlen(s));
    jv_free(v);
    return v != NULL;
}

static const struct jv *jv_get(const struct jv *obj, const char *key)
{
    if (!obj || obj->type != J_OBJ)
        return NULL;
    for (size_t i = 0; i < obj->n; i++)
        if (strcmp(obj->items[i]->key, key) == 0)
            return obj->items[i];
    return NULL;
}

/* ---- checks on parsed values ---- */

/* obj[key] is a string equal to want. */
static bool has_str(const struct jv *obj, const char *key, const char *want)
{
    const struct jv *v = jv_get(obj, key);
    bool ok = v && v->type == J_STR && v->text_len == strlen(want) && strcmp(v->text, want) == 0;
    if (!ok)
        fprintf(stderr, "\n  stats: %s is not \"%s\"\n", key, want);
    return ok;
}

/* obj[key] is a non-negative integer (digits only) equal to want. */
static bool has_uint(const struct jv *obj, const char *key, uint64_t want)
{
    const struct jv *v = jv_get(obj, key);
    bool ok = v && v->type == J_NUM && strspn(v->text, "0123456789") == v->text_len;
    if (ok) {
        errno = 0;
        unsigned long long got = strtoull(v->text, NULL, 10);
        ok = errno == 0 && got == want;
    }
    if (!ok)
        fprintf(stderr, "\n  stats: %s is %s, want %llu\n", key, v && v->text ? v->text : "?",
                (unsigned long long)want);
    return ok;
}

/* obj[key] is a number within tol of want. */
static bool has_num(const struct jv *obj, const char *key, double want, double tol)
{
    const struct jv *v = jv_get(obj, key);
    bool ok = v && v->type == J_NUM && v->num - want <= tol && want - v->num <= tol;
    if (!ok)
        fprintf(stderr, "\n  stats: %s is %s, want %g\n", key, v && v->text ? v->text : "?", want);
    return ok;
}

static bool has_null(const struct jv *obj, const char *key)
{
    const struct jv *v = jv_get(obj, key);
    return v && v->type == J_NULL;
}

static bool has_bool(const struct jv *obj, const char *key, bool want)
{
    const struct jv *v = jv_get(obj, key);
    return v && v->type == J_BOOL && v->boolean == want;
}

/* Equal values; in objects, keys listed in `skip` (NULL-ended) are compared
 * for presence and type only. Numbers compare by their text. */
static bool jv_equal(const struct jv *a, const struct jv *b, const char *const *skip)
{
    if (a->type != b->type || a->n != b->n)
        return false;
    switch (a->type) {
    case J_NULL:
        return true;
    case J_BOOL:
        return a->boolean == b->boolean;
    case J_NUM:
    case J_STR:
        return a->text_len == b->text_len && memcmp(a->text, b->text, a->text_len) == 0;
    case J_ARR:
    case J_OBJ:
        for (size_t i = 0; i < a->n; i++) {
            const struct jv *x = a->items[i], *y = b->items[i];
            if (a->type == J_OBJ) {
                if (strcmp(x->key, y->key) != 0)
                    return false;
                bool skipped = false;
                for (const char *const *k = skip; k && *k; k++)
                    skipped = skipped || strcmp(*k, x->key) == 0;
                if (skipped) {
                    if (x->type != y->type)
                        return false;
                    continue;
                }
            }
            if (!jv_equal(x, y, NULL))
                return false;
        }
        return true;
    }
    return false;
}

/* ---- report fixtures ---- */

/* The keys README.md documents for --stats-json, and no others. */
static const char *const report_keys[] = {
    "command",
    "info_hash",
    "result",
    "total_size",
    "piece_count",
    "wall_seconds",
    "first_byte_seconds",
    "complete_seconds",
    "bytes_downloaded",
    "bytes_uploaded",
    "bytes_wasted",
    "pieces_failed",
    "peers_known",
    "peers_connected_max",
    "peers_used",
    "encrypted_handshakes",
    "cpu_user_seconds",
    "cpu_system_seconds",
    "cpu_store_seconds",
    "peak_rss_bytes",
    "peers",
};
#define REPORT_KEYS (sizeof report_keys / sizeof report_keys[0])

/* Differ from one call to the next: they come from getrusage. */
static const char *const rusage_keys[] = {"cpu_user_seconds", "cpu_system_seconds",
                                          "peak_rss_bytes", NULL};

static const char *const peer_keys[] = {
    "address", "downloaded", "uploaded", "average_download_rate", "hash_failures", "banned"};
#define PEER_KEYS (sizeof peer_keys / sizeof peer_keys[0])

#define HASH_HEX "0123456789abcdef0123456789abcdef01234567"

struct fixture {
    struct swarm_peer_stats peers[3];
    struct stats_report r;
};

/* A finished download: a peer that sent data (IPv4), a banned one that sent
 * only bad pieces (IPv6), and a candidate never connected, to be left out. */
static void fixture_init(struct fixture *f)
{
    memset(f, 0, sizeof *f);
    CU_ASSERT_EQUAL_FATAL(addr_parse("10.0.0.1:6881", &f->peers[0].addr), PT_OK);
    f->peers[0].downloaded = 1000000;
    f->peers[0].uploaded = 2000;
    f->peers[0].ever_connected = true;

    CU_ASSERT_EQUAL_FATAL(addr_parse("[2001:db8::1]:51413", &f->peers[1].addr), PT_OK);
    f->peers[1].uploaded = 16384;
    f->peers[1].banned = true;
    f->peers[1].ever_connected = true;
    f->peers[1].hash_failures = 3;

    CU_ASSERT_EQUAL_FATAL(addr_parse("192.0.2.9:1234", &f->peers[2].addr), PT_OK);

    f->r = (struct stats_report){
        .command = "download",
        .info_hash_hex = HASH_HEX,
        .total_size = 123456789012ULL, /* past 2^32 */
        .piece_count = 7,
        .result = "complete",
        .wall_seconds = 12.5,
        .first_byte_seconds = 0.25,
        .complete_seconds = 10.0,
        .downloaded = 5000000000ULL,
        .uploaded = 4294967296ULL,
        .wasted = 32768,
        .pieces_failed = 2,
        .encrypted_handshakes = 3,
        .store_cpu_seconds = 0.75,
        .peers_known = 3,
        .peers_max_connected = 2,
        .peers = f->peers,
        .peer_count = 3,
    };
}

/* stats_format into a fresh buffer, parsed; fails the test if it is not JSON. */
static struct jv *format_and_parse(const struct stats_report *r)
{
    struct buf b;
    buf_init(&b);
    stats_format(r, &b);
    CU_ASSERT_FATAL(buf_ok(&b));
    CU_ASSERT_FATAL(b.len > 0);
    CU_ASSERT_EQUAL(b.data[b.len - 1], '\n'); /* one line, ended */
    CU_ASSERT_PTR_NULL(memchr(b.data, '\n', b.len - 1));
    struct jv *v = json_parse((const char *)b.data, b.len);
    if (!v)
        fprintf(stderr, "\n  stats: not valid JSON: %.*s\n", (int)b.len, (const char *)b.data);
    buf_release(&b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    CU_ASSERT_EQUAL_FATAL(v->type, J_OBJ);
    return v;
}

/* Every documented key, once, and nothing else. */
static void check_report_keys(const struct jv *root)
{
    for (size_t k = 0; k < REPORT_KEYS; k++) {
        CU_ASSERT_PTR_NOT_NULL(jv_get(root, report_keys[k]));
        if (!jv_get(root, report_keys[k]))
            fprintf(stderr, "\n  stats: no \"%s\"\n", report_keys[k]);
    }
    CU_ASSERT_EQUAL(root->n, REPORT_KEYS);
}

/* The getrusage figures: CPU seconds are non-negative, RSS is positive. */
static void check_rusage(const struct jv *root)
{
    const struct jv *u = jv_get(root, "cpu_user_seconds");
    const struct jv *s = jv_get(root, "cpu_system_seconds");
    CU_ASSERT(u && u->type == J_NUM && u->num >= 0);
    CU_ASSERT(s && s->type == J_NUM && s->num >= 0);
    const struct jv *rss = jv_get(root, "peak_rss_bytes");
    CU_ASSERT(rss && rss->type == J_NUM && strspn(rss->text, "0123456789") == rss->text_len &&
              rss->num > 0);
}

/* ---- temporary directories ---- */

static char *make_tmpdir(void)
{
    char tmpl[] = "/tmp/pt_stats_XXXXXX";
    char *d = mkdtemp(tmpl);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    char *copy = strdup(d);
    CU_ASSERT_PTR_NOT_NULL_FATAL(copy);
    return copy;
}

/* Names in dir other than . and .. (flat: these tests make no subdirectories). */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static void remove_flat_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char path[1024];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* ---- tests: the parser itself ---- */

static void test_stats_json_checker_rejects_bad_json(void)
{
    static const char *const good[] = {
        "{}",
        "[]",
        " {\"a\" : [1, -2.5e+3, 0, 0.5, true, false, null, \"x\"]} \n",
        "\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\ud83d\\ude00\"",
        "-0",
        "1E9",
    };
    static const char *const bad[] = {
        "",
        "{",
        "{\"a\":1,}",
        "[1,]",
        "[1 2]",
        "{a:1}",
        "{'a':1}",
        "{\"a\" 1}",
        "{\"a\":1}}",
        "{\"a\":1} x",
        "01",
        "1.",
        ".5",
        "+1",
        "1e",
        "-",
        "nan",
        "NaN",
        "Infinity",
        "-inf",
        "tru",
        "nul",
        "\"abc",
        "\"\\x\"",
        "\"\\u12\"",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"a\tb\"",
        "\"a\nb\"",
        "{\"a\":1,\"a\":2}",
        /* Valid JSON, but past JSON_MAX_DEPTH: refused rather than recursed into. */
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        CU_ASSERT_TRUE(json_valid(good[i]));
        if (!json_valid(good[i]))
            fprintf(stderr, "\n  json checker rejects good '%s'\n", good[i]);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CU_ASSERT_FALSE(json_valid(bad[i]));
        if (json_valid(bad[i]))
            fprintf(stderr, "\n  json checker accepts bad '%s'\n", bad[i]);
    }
    /* A NUL inside a string is a raw control byte too. */
    CU_ASSERT_PTR_NULL(json_parse("\"a\0b\"", 5));

    struct jv *v = json_parse("\"\\u00e9\\ud83d\\ude00\\n\"", 22);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    CU_ASSERT_EQUAL(v->text_len, 2 + 4 + 1);
    CU_ASSERT(memcmp(v->text, "\xc3\xa9\xf0\x9f\x98\x80\n", 7) == 0);
    jv_free(v);
}

/* ---- tests: stats_format ---- */

static void test_stats_format_reports_every_field(void)
{
    struct fixture f;
    fixture_init(&f);
    struct jv *root = format_and_parse(&f.r);
    check_report_keys(root);

    CU_ASSERT(has_str(root, "command", "download"));
    CU_ASSERT(has_str(root, "info_hash", HASH_HEX));
    CU_ASSERT(has_str(root, "result", "complete"));
    CU_ASSERT(has_uint(root, "total_size", 123456789012ULL));
    CU_ASSERT(has_uint(root, "piece_count", 7));
    CU_ASSERT(has_num(root, "wall_seconds", 12.5, 0.0005));
    CU_ASSERT(has_num(root, "first_byte_seconds", 0.25, 0.0005));
    CU_ASSERT(has_num(root, "complete_seconds", 10.0, 0.0005));
    CU_ASSERT(has_uint(root, "bytes_downloaded", 5000000000ULL));
    CU_ASSERT(has_uint(root, "bytes_uploaded", 4294967296ULL));
    CU_ASSERT(has_uint(root, "bytes_wasted", 32768));
    CU_ASSERT(has_uint(root, "pieces_failed", 2));
    CU_ASSERT(has_uint(root, "peers_known", 3));
    CU_ASSERT(has_uint(root, "peers_connected_max", 2));
    CU_ASSERT(has_uint(root, "peers_used", 1)); /* only the first peer sent data */
    CU_ASSERT(has_uint(root, "encrypted_handshakes", 3));
    CU_ASSERT(has_num(root, "cpu_store_seconds", 0.75, 0.0005));
    check_rusage(root);
    jv_free(root);
}

static void test_stats_format_lists_peers_talked_to(void)
{
    struct fixture f;
    fixture_init(&f);
    struct jv *root = format_and_parse(&f.r);
    const struct jv *peers = jv_get(root, "peers");
    CU_ASSERT_PTR_NOT_NULL_FATAL(peers);
    CU_ASSERT_EQUAL_FATAL(peers->type, J_ARR);
    CU_ASSERT_EQUAL_FATAL(peers->n, 2); /* the never-connected candidate is left out */

    for (size_t i = 0; i < peers->n; i++) {
        const struct jv *p = peers->items[i];
        CU_ASSERT_EQUAL_FATAL(p->type, J_OBJ);
        CU_ASSERT_EQUAL(p->n, PEER_KEYS);
        for (size_t k = 0; k < PEER_KEYS; k++)
            CU_ASSERT_PTR_NOT_NULL(jv_get(p, peer_keys[k]));
    }

    const struct jv *a = peers->items[0];
    CU_ASSERT(has_str(a, "address", "10.0.0.1:6881"));
    CU_ASSERT(has_uint(a, "downloaded", 1000000));
    CU_ASSERT(has_uint(a, "uploaded", 2000));
    CU_ASSERT(has_num(a, "average_download_rate", 1000000 / 12.5, 0.5)); /* bytes/s over the run */
    CU_ASSERT(has_uint(a, "hash_failures", 0));
    CU_ASSERT(has_bool(a, "banned", false));

    const struct jv *b = peers->items[1];
    CU_ASSERT(has_str(b, "address", "[2001:db8::1]:51413"));
    CU_ASSERT(has_uint(b, "downloaded", 0));
    CU_ASSERT(has_uint(b, "uploaded", 16384));
    CU_ASSERT(has_num(b, "average_download_rate", 0, 0));
    CU_ASSERT(has_uint(b, "hash_failures", 3));
    CU_ASSERT(has_bool(b, "banned", true));

    for (size_t i = 0; i < peers->n; i++) {
        const struct jv *addr = jv_get(peers->items[i], "address");
        CU_ASSERT(addr && addr->type == J_STR && strcmp(addr->text, "192.0.2.9:1234") != 0);
    }
    jv_free(root);
}

static void test_stats_format_nulls_for_what_never_happened(void)
{
    struct fixture f;
    fixture_init(&f);
    f.r.result = "interrupted";
    f.r.wall_seconds = 0;            /* no division by zero for the rates */
    f.r.first_byte_seconds = -0.001; /* how the session says "none" (-1 ms) */
    f.r.complete_seconds = -1;
    f.r.store_cpu_seconds = -1; /* no per-thread CPU clock */
    f.r.downloaded = 0;
    f.r.peers = NULL;
    f.r.peer_count = 0;
    struct jv *root = format_and_parse(&f.r);
    check_report_keys(root);
    CU_ASSERT(has_str(root, "result", "interrupted"));
    CU_ASSERT(has_num(root, "wall_seconds", 0, 0));
    CU_ASSERT(has_null(root, "first_byte_seconds"));
    CU_ASSERT(has_null(root, "complete_seconds"));
    CU_ASSERT(has_null(root, "cpu_store_seconds"));
    CU_ASSERT(has_uint(root, "peers_used", 0));
    const struct jv *peers = jv_get(root, "peers");
    CU_ASSERT(peers && peers->type == J_ARR && peers->n == 0);
    check_rusage(root);
    jv_free(root);

    /* Only never-connected candidates, and a run of zero seconds: still []. */
    fixture_init(&f);
    f.r.wall_seconds = 0;
    f.r.peers = &f.peers[2];
    f.r.peer_count = 1;
    root = format_and_parse(&f.r);
    peers = jv_get(root, "peers");
    CU_ASSERT(peers && peers->type == J_ARR && peers->n == 0);
    jv_free(root);

    /* A banned peer with no data and a zero-second run: rate 0, not NaN. */
    fixture_init(&f);
    f.r.wall_seconds = 0;
    f.r.peers = &f.peers[1];
    f.r.peer_count = 1;
    root = format_and_parse(&f.r);
    peers = jv_get(root, "peers");
    CU_ASSERT_FATAL(peers && peers->type == J_ARR && peers->n == 1);
    CU_ASSERT(has_num(peers->items[0], "average_download_rate", 0, 0));
    jv_free(root);
}

static void test_stats_format_escapes_strings(void)
{
    struct fixture f;
    fixture_init(&f);
    static const char odd[] = "say \"hi\"\\ \x01\t\xc3\xa9";
    f.r.info_hash_hex = odd;
    f.r.command = NULL; /* json_put_cstr writes null */
    struct jv *root = format_and_parse(&f.r);
    CU_ASSERT(has_str(root, "info_hash", odd));
    CU_ASSERT(has_null(root, "command"));
    jv_free(root);
}

/* stats_format appends; every cut of its output short of the closing brace is
 * rejected (so the checker is not fooled by a truncated report either). */
static void test_stats_format_appends_one_complete_object(void)
{
    struct fixture f;
    fixture_init(&f);
    struct buf b;
    buf_init(&b);
    buf_append_str(&b, "prefix");
    stats_format(&f.r, &b);
    CU_ASSERT_FATAL(buf_ok(&b));
    CU_ASSERT_FATAL(b.len > 6);
    CU_ASSERT(memcmp(b.data, "prefix", 6) == 0);
    const char *json = (const char *)b.data + 6;
    size_t len = b.len - 6;
    struct jv *whole = json_parse(json, len);
    CU_ASSERT_PTR_NOT_NULL(whole);
    jv_free(whole);

    size_t close = len;
    while (close > 0 && json[close - 1] != '}')
        close--;
    CU_ASSERT_FATAL(close > 0);
    int accepted = 0;
    for (size_t cut = 0; cut < close; cut++) {
        struct jv *v = json_parse(json, cut);
        accepted += v != NULL;
        jv_free(v);
    }
    CU_ASSERT_EQUAL(accepted, 0);
    buf_release(&b);
}

/* ---- tests: stats_write ---- */

static void test_stats_write_leaves_only_the_file(void)
{
    struct fixture f;
    fixture_init(&f);
    char *dir = make_tmpdir();
    char path[1024], tmp[1040];
    snprintf(path, sizeof path, "%s/stats.json", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);

    /* An old file at the path is replaced. */
    FILE *old = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(old);
    fputs("old contents, not JSON, and longer than nothing at all", old);
    fclose(old);

    CU_ASSERT_EQUAL(stats_write(&f.r, path), PT_OK);
    struct stat st;
    CU_ASSERT_EQUAL(stat(tmp, &st), -1); /* no temp file left behind */
    CU_ASSERT_EQUAL(count_entries(dir), 1);

    struct buf file;
    buf_init(&file);
    CU_ASSERT_EQUAL_FATAL(buf_read_file(&file, path, 1 << 20), PT_OK);
    struct jv *written = json_parse((const char *)file.data, file.len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(written);
    CU_ASSERT_EQUAL(file.data[file.len - 1], '\n');

    /* Same content as stats_format, but for what getrusage says now. */
    struct jv *formatted = format_and_parse(&f.r);
    CU_ASSERT_TRUE(jv_equal(written, formatted, rusage_keys));
    check_report_keys(written);
    check_rusage(written);
    CU_ASSERT(has_str(written, "info_hash", HASH_HEX));
    CU_ASSERT(has_uint(written, "bytes_downloaded", 5000000000ULL));
    const struct jv *peers = jv_get(written, "peers");
    CU_ASSERT(peers && peers->type == J_ARR && peers->n == 2);

    jv_free(formatted);
    jv_free(written);
    buf_release(&file);
    remove_flat_dir(dir);
    free(dir);
}

static void test_stats_write_into_missing_directory_fails(void)
{
    struct fixture f;
    fixture_init(&f);
    char *dir = make_tmpdir();
    char path[1024];
    snprintf(path, sizeof path, "%s/missing/stats.json", dir);
    CU_ASSERT_NOT_EQUAL(stats_write(&f.r, path), PT_OK);
    CU_ASSERT_EQUAL(count_entries(dir), 0); /* nothing created, nothing left */
    remove_flat_dir(dir);
    free(dir);
}

/* Called by tests/test_main.c (see suites.h there). */
int test_stats_register(void);

int test_stats_register(void)
{
    CU_pSuite s = CU_add_suite("stats", NULL, NULL);
    if (!s)
        return -1;
    struct {
        const char *name;
        CU_TestFunc fn;
    } tests[] = {
        {"json checker rejects bad json", test_stats_json_checker_rejects_bad_json},
        {"format reports every field", test_stats_format_reports_every_field},
        {"format lists peers talked to", test_stats_format_lists_peers_talked_to},
        {"format nulls for what never happened", test_stats_format_nulls_for_what_never_happened},
        {"format escapes strings", test_stats_format_escapes_strings},
        {"format appends one complete object", test_stats_format_appends_one_complete_object},
        {"write leaves only the file", test_stats_write_leaves_only_the_file},
        {"write into missing directory fails", test_stats_write_into_missing_directory_fails},
    };
    for (size_t k = 0; k < sizeof tests / sizeof tests[0]; k++)
        if (!CU_add_test(s, tests[k].name, tests[k].fn))
            return -1;
    return 0;
}
