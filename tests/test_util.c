/*
 * Tests for the small helpers: json.h (string escaping), addr.h (text and
 * compact forms) and buf.h (growth, failure, reading files with a cap).
 */
#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "buf.h"
#include "json.h"

/* Asserts that json_put_str(in, len) writes exactly `want`. */
static void check_json(const char *in, size_t len, const char *want)
{
    struct buf b;
    buf_init(&b);
    json_put_str(&b, in, len);
    CU_ASSERT_FATAL(buf_ok(&b));
    CU_ASSERT_EQUAL(b.len, strlen(want));
    CU_ASSERT(b.len == strlen(want) && memcmp(b.data, want, b.len) == 0);
    if (b.len != strlen(want) || memcmp(b.data, want, b.len) != 0)
        fprintf(stderr, "\n  json: got '%.*s', want '%s'\n", (int)b.len, (const char *)b.data,
                want);
    buf_release(&b);
}

#define JSON(lit, want) check_json((lit), sizeof(lit) - 1, (want))

static void test_util_json_escapes(void)
{
    JSON("", "\"\"");
    JSON("plain text", "\"plain text\"");
    JSON("say \"hi\"", "\"say \\\"hi\\\"\"");
    JSON("a\\b", "\"a\\\\b\"");
    JSON("/", "\"/\"");
    JSON("\n\r\t", "\"\\u000a\\u000d\\u0009\"");
    JSON("\x01\x1f", "\"\\u0001\\u001f\"");
    JSON("a\0b", "\"a\\u0000b\"");
    JSON("\x7f", "\"\x7f\""); /* DEL needs no escape in JSON */
    JSON(" ~", "\" ~\"");
}

static void test_util_json_utf8(void)
{
    /* Valid sequences of 2, 3 and 4 bytes are kept as they are. */
    JSON("caf\xc3\xa9", "\"caf\xc3\xa9\"");
    JSON("\xe2\x82\xac", "\"\xe2\x82\xac\"");
    JSON("\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\"");
    JSON("\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\""); /* U+10FFFF */
    JSON("\xef\xbf\xbd", "\"\xef\xbf\xbd\"");         /* U+FFFD itself */

    /* Invalid bytes become U+FFFD, one per byte that cannot start a sequence. */
    JSON("\xff", "\"\\ufffd\"");
    JSON("a\x80z", "\"a\\ufffdz\"");
    JSON("\xc3", "\"\\ufffd\""); /* truncated at the end */
    JSON("\xc3"
         "A",
         "\"\\ufffdA\"");                                         /* bad continuation */
    JSON("\xe2\x82", "\"\\ufffd\\ufffd\"");                       /* truncated 3-byte */
    JSON("\xc0\x80", "\"\\ufffd\\ufffd\"");                       /* overlong NUL */
    JSON("\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\"");            /* overlong '/' */
    JSON("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"");            /* surrogate */
    JSON("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* > U+10FFFF */
    JSON("\xf5\x80\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
    JSON("\xc3\xa9\xff\xc3\xa9", "\"\xc3\xa9\\ufffd\xc3\xa9\"");
    /* A quote right after a broken lead byte is still escaped. */
    JSON("\xc3\"", "\"\\ufffd\\\"\"");
}

static void test_util_json_cstr(void)
{
    struct buf b;
    buf_init(&b);
    json_put_cstr(&b, NULL);
    buf_append_str(&b, ",");
    json_put_cstr(&b, "x\"y");
    CU_ASSERT_FATAL(buf_ok(&b));
    CU_ASSERT_STRING_EQUAL((const char *)b.data, "null,\"x\\\"y\"");
    buf_release(&b);
}

/* Parses `text`, expects success, and checks that formatting gives it back. */
static void check_addr_round_trip(const char *text, int family, uint16_t port)
{
    struct peer_addr a;
    CU_ASSERT_EQUAL_FATAL(addr_parse(text, &a), PT_OK);
    CU_ASSERT_EQUAL(a.family, family);
    CU_ASSERT_EQUAL(a.port, port);
    char out[ADDR_STRLEN];
    CU_ASSERT_PTR_EQUAL(addr_format(&a, out), out);
    CU_ASSERT_STRING_EQUAL(out, text);

    /* Through a sockaddr and back. */
    struct sockaddr_storage ss;
    socklen_t sl = addr_to_sockaddr(&a, &ss);
    CU_ASSERT_EQUAL(sl,
                    family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
    struct peer_addr back;
    CU_ASSERT_TRUE(addr_from_sockaddr((const struct sockaddr *)&ss, &back));
    CU_ASSERT_TRUE(addr_equal(&a, &back));
}

static void test_util_addr_round_trip(void)
{
    check_addr_round_trip("1.2.3.4:6881", AF_INET, 6881);
    check_addr_round_trip("127.0.0.1:1", AF_INET, 1);
    check_addr_round_trip("255.255.255.255:65535", AF_INET, 65535);
    check_addr_round_trip("[::1]:6881", AF_INET6, 6881);
    check_addr_round_trip("[2001:db8::1]:51413", AF_INET6, 51413);
    /* A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d: they come back
     * from a sockaddr as plain IPv4, so the swarm knows them by one name. */
    struct peer_addr mapped, v4;
    struct sockaddr_storage mss;
    CU_ASSERT_EQUAL_FATAL(addr_parse("[::ffff:1.2.3.4]:80", &mapped), PT_OK);
    addr_to_sockaddr(&mapped, &mss);
    CU_ASSERT_TRUE(addr_from_sockaddr((const struct sockaddr *)&mss, &v4));
    CU_ASSERT_EQUAL(v4.family, AF_INET);
    CU_ASSERT_EQUAL(v4.port, 80);
    CU_ASSERT_EQUAL(memcmp(v4.ip, (const uint8_t[]){1, 2, 3, 4}, 4), 0);
    check_addr_round_trip("[fe80::1:2:3:4]:65535", AF_INET6, 65535);

    struct peer_addr a;
    CU_ASSERT_EQUAL_FATAL(addr_parse("10.0.0.7:80", &a), PT_OK);
    static const uint8_t ip[4] = {10, 0, 0, 7};
    CU_ASSERT_EQUAL(memcmp(a.ip, ip, 4), 0);
    /* Leading zeros in the port are harmless digits. */
    CU_ASSERT_EQUAL(addr_parse("10.0.0.7:0080", &a), PT_OK);
    CU_ASSERT_EQUAL(a.port, 80);

    /* The longest text form fits in ADDR_STRLEN. */
    char out[ADDR_STRLEN];
    static const char longest[] = "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535";
    CU_ASSERT_EQUAL_FATAL(addr_parse(longest, &a), PT_OK);
    addr_format(&a, out);
    CU_ASSERT(strlen(out) < ADDR_STRLEN);
}

static void test_util_addr_rejects(void)
{
    static const char *const bad[] = {
        "",
        "1.2.3.4",
        "1.2.3.4:",
        "1.2.3.4:0",
        "1.2.3.4:70000",
        "1.2.3.4:65536",
        "1.2.3.4:-1",
        "1.2.3.4:80x",
        "1.2.3.4:+80", /* strtol would take these; a port is digits only */
        "1.2.3.4: 80",
        "1.2.3.4:\t80",
        "[::1]:+1",
        "1.2.3.4:99999999999999999999",
        "1.2.3:80",
        "256.1.1.1:80",
        "localhost:6881",
        "tracker.example.com:80",
        "::1:6881",
        "[::1]",
        "[::1]:",
        "[::1]6881",
        "[::1]:0",
        "[::1]:70000",
        "[1.2.3.4]:80",
        "[::1:80",
        "[localhost]:80",
        "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:80",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct peer_addr a;
        enum pt_err err = addr_parse(bad[i], &a);
        CU_ASSERT_EQUAL(err, PT_ERR_USAGE);
        if (err != PT_ERR_USAGE)
            fprintf(stderr, "\n  addr_parse accepted '%s'\n", bad[i]);
    }
}

static void test_util_addr_compact(void)
{
    static const uint8_t c4[6] = {192, 168, 1, 20, 0x1a, 0xe1};
    struct peer_addr a;
    addr_from_compact4(c4, &a);
    char out[ADDR_STRLEN];
    CU_ASSERT_EQUAL(a.family, AF_INET);
    CU_ASSERT_EQUAL(a.port, 6881);
    CU_ASSERT_STRING_EQUAL(addr_format(&a, out), "192.168.1.20:6881");

    static const uint8_t c4hi[6] = {1, 2, 3, 4, 0xff, 0xff};
    addr_from_compact4(c4hi, &a);
    CU_ASSERT_EQUAL(a.port, 65535);

    static const uint8_t c6[18] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,    0,
                                   0,    0,    0,    0,    0, 0, 1, 0xc8, 0xd5};
    addr_from_compact6(c6, &a);
    CU_ASSERT_EQUAL(a.family, AF_INET6);
    CU_ASSERT_EQUAL(a.port, 51413);
    CU_ASSERT_STRING_EQUAL(addr_format(&a, out), "[2001:db8::1]:51413");

    /* Equal to the parsed text form. */
    struct peer_addr p;
    CU_ASSERT_EQUAL_FATAL(addr_parse("[2001:db8::1]:51413", &p), PT_OK);
    CU_ASSERT_TRUE(addr_equal(&a, &p));
    p.port++;
    CU_ASSERT_FALSE(addr_equal(&a, &p));
}

static void test_util_buf_growth(void)
{
    struct buf b;
    buf_init(&b);
    CU_ASSERT_TRUE(buf_ok(&b));
    CU_ASSERT_EQUAL(b.len, 0);
    for (size_t i = 0; i < 100000; i++) {
        uint8_t c = (uint8_t)(i % 251);
        buf_append(&b, &c, 1);
    }
    CU_ASSERT_FATAL(buf_ok(&b));
    CU_ASSERT_EQUAL(b.len, 100000);
    CU_ASSERT(b.cap > b.len);
    int bad = 0;
    for (size_t i = 0; i < b.len; i++)
        bad += b.data[i] != (uint8_t)(i % 251);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(b.data[b.len], 0); /* kept terminated */

    buf_printf(&b, "%s-%d", "x", 42);
    CU_ASSERT_EQUAL(b.len, 100004);
    CU_ASSERT_STRING_EQUAL((const char *)b.data + 100000, "x-42");

    /* One large append. */
    static uint8_t big[300000];
    memset(big, 'z', sizeof big);
    buf_append(&b, big, sizeof big);
    CU_ASSERT_EQUAL(b.len, 400004);
    CU_ASSERT_EQUAL(b.data[400003], 'z');

    /* reserve + commit. */
    uint8_t *p = buf_reserve(&b, 10);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    memcpy(p, "0123456789", 10);
    buf_commit(&b, 4);
    CU_ASSERT_EQUAL(b.len, 400008);
    CU_ASSERT_STRING_EQUAL((const char *)b.data + 400004, "0123");

    /* take hands the storage over and leaves b empty. */
    size_t len = 0;
    uint8_t *owned = buf_take(&b, &len);
    CU_ASSERT_PTR_NOT_NULL(owned);
    CU_ASSERT_EQUAL(len, 400008);
    CU_ASSERT_PTR_NULL(b.data);
    CU_ASSERT_EQUAL(b.len, 0);
    free(owned);
    buf_release(&b);
}

static void test_util_buf_failure_is_sticky(void)
{
    struct buf b;
    buf_init(&b);
    buf_append_str(&b, "abc");
    CU_ASSERT_PTR_NULL(buf_reserve(&b, SIZE_MAX));
    CU_ASSERT_FALSE(buf_ok(&b));
    buf_append_str(&b, "def");
    buf_printf(&b, "%d", 1);
    CU_ASSERT_EQUAL(b.len, 3);
    CU_ASSERT_PTR_NULL(buf_reserve(&b, 1));
    size_t len = 99;
    CU_ASSERT_PTR_NULL(buf_take(&b, &len));
    CU_ASSERT_EQUAL(len, 0);
    CU_ASSERT_TRUE(buf_ok(&b)); /* take resets */
    buf_release(&b);
    buf_release(&b); /* release twice is safe */
}

/* Writes `len` bytes (byte i = i * 7) to a new temp file; its name into path. */
static void write_temp(char path[64], size_t len)
{
    strcpy(path, "/tmp/ptorrent-util-XXXXXX");
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    uint8_t *data = malloc(len ? len : 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    for (size_t i = 0; i < len; i++)
        data[i] = (uint8_t)(i * 7);
    CU_ASSERT_EQUAL_FATAL(write(fd, data, len), (ssize_t)len);
    close(fd);
    free(data);
}

static enum pt_err read_len(const char *path, size_t max, size_t *len_out)
{
    struct buf b;
    buf_init(&b);
    enum pt_err err = buf_read_file(&b, path, max);
    *len_out = b.len;
    if (err == PT_OK) {
        int bad = 0;
        for (size_t i = 0; i < b.len; i++)
            bad += b.data[i] != (uint8_t)(i * 7);
        CU_ASSERT_EQUAL(bad, 0);
    }
    buf_release(&b);
    return err;
}

static void test_util_buf_read_file(void)
{
    char path[64];
    size_t len;

    write_temp(path, 1000);
    CU_ASSERT_EQUAL(read_len(path, 1000, &len), PT_OK);
    CU_ASSERT_EQUAL(len, 1000);
    CU_ASSERT_EQUAL(read_len(path, 1 << 20, &len), PT_OK);
    CU_ASSERT_EQUAL(len, 1000);
    CU_ASSERT_EQUAL(read_len(path, 999, &len), PT_ERR_LIMIT);
    CU_ASSERT_EQUAL(read_len(path, 0, &len), PT_ERR_LIMIT);
    unlink(path);

    /* Larger than one read chunk, and exactly a multiple of 64 KiB. */
    write_temp(path, 200000);
    CU_ASSERT_EQUAL(read_len(path, 200000, &len), PT_OK);
    CU_ASSERT_EQUAL(len, 200000);
    CU_ASSERT_EQUAL(read_len(path, 199999, &len), PT_ERR_LIMIT);
    CU_ASSERT_EQUAL(read_len(path, 65536, &len), PT_ERR_LIMIT);
    unlink(path);
    write_temp(path, 131072);
    CU_ASSERT_EQUAL(read_len(path, 131072, &len), PT_OK);
    CU_ASSERT_EQUAL(len, 131072);
    CU_ASSERT_EQUAL(read_len(path, 131071, &len), PT_ERR_LIMIT);
    unlink(path);

    write_temp(path, 0);
    CU_ASSERT_EQUAL(read_len(path, 0, &len), PT_OK);
    CU_ASSERT_EQUAL(len, 0);
    unlink(path);

    CU_ASSERT_EQUAL(read_len("/nonexistent/ptorrent/file", 100, &len), PT_ERR_NOT_FOUND);
}

int test_util_register(void); /* called by test_main.c */

int test_util_register(void)
{
    CU_pSuite s = CU_add_suite("util", NULL, NULL);
    if (!s)
        return 1;
    static const struct {
        const char *name;
        CU_TestFunc fn;
    } tests[] = {
        {"json escapes", test_util_json_escapes},
        {"json utf8", test_util_json_utf8},
        {"json cstr", test_util_json_cstr},
        {"addr round trip", test_util_addr_round_trip},
        {"addr rejects", test_util_addr_rejects},
        {"addr compact", test_util_addr_compact},
        {"buf growth", test_util_buf_growth},
        {"buf failure is sticky", test_util_buf_failure_is_sticky},
        {"buf read_file", test_util_buf_read_file},
    };
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
        if (!CU_add_test(s, tests[i].name, tests[i].fn))
            return 1;
    return 0;
}
