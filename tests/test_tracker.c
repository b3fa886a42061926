/*
 * Tests for tracker.h: response parsing (offline, including every truncation
 * of a full response), announce URL building, and announces against a tiny
 * HTTP responder thread on 127.0.0.1 (ephemeral port) that answers one
 * request with a canned reply and records the request line. Every accept,
 * recv and send in the responder is bounded, so no test can hang.
 */
#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "log.h"
#include "tracker.h"

/* How long the responder waits for a connection or data: far longer than
 * any test needs, short enough that a broken test fails instead of hanging. */
#define RESPONDER_WAIT_MS 5000

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

/* Parses a copy of exactly `len` bytes, so AddressSanitizer catches any read
 * past the end. */
static enum pt_err parse_copy(const char *body, size_t len, struct tracker_response *r,
                              struct pt_errctx *err)
{
    uint8_t *copy = malloc(len ? len : 1);
    CU_ASSERT_FATAL(copy != NULL);
    memcpy(copy, body, len);
    enum pt_err rc = tracker_parse_response(copy, len, r, err);
    free(copy);
    return rc;
}

#define PARSE(lit, r, e) parse_copy((lit), sizeof(lit) - 1, (r), (e))

static const char *fmt_peer(const struct tracker_response *r, size_t i, char out[ADDR_STRLEN])
{
    return addr_format(&r->peers[i], out);
}

static void assert_empty(const struct tracker_response *r)
{
    CU_ASSERT_PTR_NULL(r->peers);
    CU_ASSERT_EQUAL(r->peer_count, 0);
    CU_ASSERT_PTR_NULL(r->failure);
    CU_ASSERT_PTR_NULL(r->warning);
    CU_ASSERT_PTR_NULL(r->tracker_id);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sample_request(struct tracker_request *req)
{
    memset(req, 0, sizeof *req);
    memset(req->info_hash, 'a', sizeof req->info_hash);
    req->info_hash[0] = 0x00;
    req->info_hash[1] = 0xff;
    req->info_hash[2] = '&';
    memcpy(req->peer_id, "-PT0001-123456789012", 20);
    req->port = 6881;
    req->uploaded = 0;
    req->downloaded = 0;
    req->left = 1048576;
    req->event = TRACKER_EVENT_STARTED;
    req->numwant = 50;
    req->key = 0x1234abcd;
}

/* ------------------------------------------------------------------------ */
/* A one-request HTTP responder                                              */
/* ------------------------------------------------------------------------ */

struct responder {
    int listen_fd;
    uint16_t port;
    char url[64];          /* http://127.0.0.1:PORT/announce */
    const char *reply;     /* bytes sent after the request head; NULL: never answer */
    size_t reply_len;
    size_t filler_len;     /* 'x' bytes sent after `reply` (oversized bodies) */
    int accept_ms;         /* how long to wait for the one connection */
    char request_line[2048];
    bool got_request;      /* read by the test only after the join */
    pthread_t thread;
};

static bool send_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static void *responder_thread_main(void *arg)
{
    struct responder *r = arg;
    struct pollfd pfd = {.fd = r->listen_fd, .events = POLLIN};
    struct timeval tv = {.tv_sec = RESPONDER_WAIT_MS / 1000, .tv_usec = 0};
    char head[8192];
    size_t used = 0;

    if (poll(&pfd, 1, r->accept_ms) <= 0)
        return NULL;
    int fd = accept(r->listen_fd, NULL, NULL);
    if (fd < 0)
        return NULL;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

    /* Read the request head (a GET has no body). */
    while (used < sizeof head - 1) {
        ssize_t n = recv(fd, head + used, sizeof head - 1 - used, 0);
        if (n <= 0)
            break;
        used += (size_t)n;
        head[used] = '\0';
        if (strstr(head, "\r\n\r\n"))
            break;
    }
    head[used] = '\0';
    if (used > 0) {
        size_t line = strcspn(head, "\r\n");
        if (line >= sizeof r->request_line)
            line = sizeof r->request_line - 1;
        memcpy(r->request_line, head, line);
        r->request_line[line] = '\0';
        r->got_request = true;
    }

    if (r->reply) {
        if (send_all(fd, r->reply, r->reply_len)) {
            static const char filler[4096] = {'x'};
            size_t left = r->filler_len;
            while (left > 0) {
                size_t n = left < sizeof filler ? left : sizeof filler;
                if (!send_all(fd, filler, n))
                    break;
                left -= n;
            }
        }
    } else {
        /* Never answer: wait until the client gives up and closes (recv
         * returns 0) or the receive timeout passes. */
        char sink[256];
        while (recv(fd, sink, sizeof sink, 0) > 0)
            continue;
    }
    close(fd);
    return NULL;
}

static int listen_socket(uint16_t *port_out, bool do_listen)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        (do_listen && listen(fd, 4) != 0) ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
        close(fd);
        return -1;
    }
    *port_out = ntohs(sa.sin_port);
    return fd;
}

/* Starts a responder answering one request with reply[0..reply_len) (or never,
 * if reply is NULL). */
static void responder_start(struct responder *r, const char *reply, size_t reply_len)
{
    memset(r, 0, sizeof *r);
    r->reply = reply;
    r->reply_len = reply_len;
    r->accept_ms = RESPONDER_WAIT_MS;
    r->listen_fd = listen_socket(&r->port, true);
    CU_ASSERT_FATAL(r->listen_fd >= 0);
    snprintf(r->url, sizeof r->url, "http://127.0.0.1:%u/announce", (unsigned)r->port);
}

static void responder_run(struct responder *r)
{
    CU_ASSERT_FATAL(pthread_create(&r->thread, NULL, responder_thread_main, r) == 0);
}

static void responder_finish(struct responder *r)
{
    pthread_join(r->thread, NULL);
    close(r->listen_fd);
}

/* A port on 127.0.0.1 that refuses connections: bound (so nobody else gets
 * it) but not listening. The caller closes *fd_out. */
static void dead_url(char url[64], int *fd_out)
{
    uint16_t port = 0;
    *fd_out = listen_socket(&port, false);
    CU_ASSERT_FATAL(*fd_out >= 0);
    snprintf(url, 64, "http://127.0.0.1:%u/announce", (unsigned)port);
}

/* "HTTP/1.1 200 OK" with `body` (binary safe). Caller frees. */
static char *http_ok(const char *body, size_t body_len, size_t *len_out)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     body_len);
    CU_ASSERT_FATAL(n > 0 && (size_t)n < sizeof head);
    char *out = malloc((size_t)n + body_len);
    CU_ASSERT_FATAL(out != NULL);
    memcpy(out, head, (size_t)n);
    memcpy(out + n, body, body_len);
    *len_out = (size_t)n + body_len;
    return out;
}

/* Two compact peers: 127.0.0.1:6881 and 10.0.0.2:80. */
static const char compact_body[] = "d8:intervali1800e5:peers12:"
                                   "\x7f\x00\x00\x01\x1a\xe1"
                                   "\x0a\x00\x00\x02\x00\x50"
                                   "e";

/* ------------------------------------------------------------------------ */
/* Parsing                                                                   */
/* ------------------------------------------------------------------------ */

static void test_tracker_parses_compact_peers(void)
{
    struct tracker_response r;
    char a[ADDR_STRLEN];
    CU_ASSERT_EQUAL_FATAL(PARSE(compact_body, &r, NULL), PT_OK);
    CU_ASSERT_EQUAL(r.interval, 1800);
    CU_ASSERT_EQUAL(r.min_interval, -1);
    CU_ASSERT_EQUAL(r.complete, -1);
    CU_ASSERT_EQUAL(r.incomplete, -1);
    CU_ASSERT_PTR_NULL(r.failure);
    CU_ASSERT_EQUAL_FATAL(r.peer_count, 2);
    CU_ASSERT_EQUAL(r.peers[0].family, AF_INET);
    CU_ASSERT_STRING_EQUAL(fmt_peer(&r, 0, a), "127.0.0.1:6881");
    CU_ASSERT_STRING_EQUAL(fmt_peer(&r, 1, a), "10.0.0.2:80");
    tracker_response_release(&r);
    CU_ASSERT_PTR_NULL(r.peers);
}

static void test_tracker_skips_compact_port_zero(void)
{
    struct tracker_response r;
    char a[ADDR_STRLEN];
    CU_ASSERT_EQUAL_FATAL(PARSE("d5:peers12:"
                                "\x01\x02\x03\x04\x00\x00"
                                "\x05\x06\x07\x08\x00\x01"
                                "e",
                                &r, NULL),
                          PT_OK);
    CU_ASSERT_EQUAL_FATAL(r.peer_count, 1);
    CU_ASSERT_STRING_EQUAL(fmt_peer(&r, 0, a), "5.6.7.8:1");
    tracker_response_release(&r);
}

static void test_tracker_rejects_compact_length_not_multiple_of_6(void)
{
    struct tracker_response r;
    struct pt_errctx e = {0};
    CU_ASSERT_EQUAL(PARSE("d5:peers7:\x7f\x00\x00\x01\x1a\xe1\x01"
                          "e",
                          &r, &e),
                    PT_ERR_TRACKER_BAD_RESPONSE);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "multiple of 6"));
    assert_empty(&r);
}

static void test_tracker_parses_peers6(void)
{
    struct tracker_response r;
    char a[ADDR_STRLEN];
    /* 2001:db8::1 port 6881, plus one compact IPv4 peer. */
    CU_ASSERT_EQUAL_FATAL(PARSE("d5:peers6:\x7f\x00\x00\x01\x1a\xe1"
                                "6:peers618:"
                                "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
                                "\x1a\xe1"
                                "e",
                                &r, NULL),
                          PT_OK);
    CU_ASSERT_EQUAL_FATAL(r.peer_count, 2);
    CU_ASSERT_STRING_EQUAL(fmt_peer(&r, 0, a), "127.0.0.1:6881");
    CU_ASSERT_EQUAL(r.peers[1].family, AF_INET6);
    CU_ASSERT_STRING_EQUAL(fmt_peer(&r, 1, a), "[2001:db8::1]:6881");
    tracker_response_release(&r);
}

static void test_tracker_rejects_bad_peers6_length(void)
{
    struct tracker_response r;
    struct pt_errctx e = {0};
    CU_ASSERT_EQUAL(PARSE("d6:peers617:aaaaaaaaaaaaaaaaae", &r, &e), PT_ERR_TRACKER_BAD_RESPONSE);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "multiple of 18"));
    assert_empty(&r);
    CU_ASSERT_EQUAL(PARSE("d6:peers6li1eee", &r, &e), PT_ERR_TRACKER_BAD_RESPONSE);
    assert_empty(&r);
}

static void test_tracker_parses_dict_peers(void)
{
    struct tracker_response r;
    char a[ADDR_STRLEN];
    CU_ASSERT_EQUAL_FATAL(PARSE("d8:intervali60e5:peersl"
                                "d2:ip9:127.0.0.17:peer id20:-XX0000-0000000000004:porti6881ee"
                                "d2:ip3:::14:porti6882ee"
                                "d2:ip11:example.com4:porti80ee"  /* host name: skipped */
                                "d2:ip8:10.0.0.14:porti0ee"       /* port 0: skipped */
                                "d2:ip8:10.0.0.24:porti70000ee"   /* port too big: skipped */
                                "d2:ip8:10.0.0.34:port2:80e"      /* port not an int: skipped */
                                "d4:porti1ee"                     /* no ip: skipped */
                                "i42e"                            /* not a dict: skipped */
                                "d2:ip15:::ffff:10.9.8.74:porti99ee" /* v4-mapped: as IPv4 */
                                "ee",
                                &r, NULL),
                          PT_OK);
    CU_ASSERT_EQUAL_FATAL(r.peer_count, 3);
    CU_ASSERT_STRING_EQUAL(fmt_peer(&r, 0, a), "127.0.0.1:6881");
    CU_ASSERT_EQUAL(r.peers[1].family, AF_INET6);
    CU_ASSERT_STRING_EQUAL(fmt_peer(&r, 1, a), "[::1]:6882");
    CU_ASSERT_EQUAL(r.peers[2].family, AF_INET);
    CU_ASSERT_STRING_EQUAL(fmt_peer(&r, 2, a), "10.9.8.7:99");
    tracker_response_release(&r);
}

static void test_tracker_rejects_peers_of_wrong_type(void)
{
    struct tracker_response r;
    CU_ASSERT_EQUAL(PARSE("d5:peersi5ee", &r, NULL), PT_ERR_TRACKER_BAD_RESPONSE);
    assert_empty(&r);
}

static void test_tracker_failure_reason_parses_ok(void)
{
    struct tracker_response r;
    CU_ASSERT_EQUAL_FATAL(PARSE("d14:failure reason12:unregistered8:intervali5ee", &r, NULL), PT_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r.failure);
    CU_ASSERT_STRING_EQUAL(r.failure, "unregistered");
    CU_ASSERT_EQUAL(r.peer_count, 0);
    tracker_response_release(&r);
    CU_ASSERT_PTR_NULL(r.failure);
    CU_ASSERT_EQUAL(PARSE("d14:failure reasoni1ee", &r, NULL), PT_ERR_TRACKER_BAD_RESPONSE);
}

static void test_tracker_parses_warning_message(void)
{
    struct tracker_response r;
    CU_ASSERT_EQUAL_FATAL(PARSE("d8:intervali900e5:peers0:15:warning message9:slow downe", &r,
                                NULL),
                          PT_OK);
    CU_ASSERT_PTR_NULL(r.failure);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r.warning);
    CU_ASSERT_STRING_EQUAL(r.warning, "slow down");
    CU_ASSERT_EQUAL(r.interval, 900);
    CU_ASSERT_EQUAL(r.peer_count, 0);
    tracker_response_release(&r);
}

static void test_tracker_parses_intervals_and_counts(void)
{
    struct tracker_response r;
    CU_ASSERT_EQUAL_FATAL(PARSE("d8:completei5e10:incompletei3e8:intervali1800e"
                                "12:min intervali60e5:peers0:e",
                                &r, NULL),
                          PT_OK);
    CU_ASSERT_EQUAL(r.interval, 1800);
    CU_ASSERT_EQUAL(r.min_interval, 60);
    CU_ASSERT_EQUAL(r.complete, 5);
    CU_ASSERT_EQUAL(r.incomplete, 3);
    tracker_response_release(&r);
}

static void test_tracker_rejects_negative_interval(void)
{
    struct tracker_response r;
    struct pt_errctx e = {0};
    CU_ASSERT_EQUAL(PARSE("d8:intervali-5e5:peers0:e", &r, &e), PT_ERR_TRACKER_BAD_RESPONSE);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "interval"));
    assert_empty(&r);
    CU_ASSERT_EQUAL(r.interval, -1);
    CU_ASSERT_EQUAL(PARSE("d12:min intervali-1ee", &r, NULL), PT_ERR_TRACKER_BAD_RESPONSE);
    CU_ASSERT_EQUAL(PARSE("d8:interval2:60e", &r, NULL), PT_ERR_TRACKER_BAD_RESPONSE);
}

static void test_tracker_parses_tracker_id(void)
{
    struct tracker_response r;
    CU_ASSERT_EQUAL_FATAL(PARSE("d8:intervali60e5:peers0:10:tracker id5:abc12e", &r, NULL), PT_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r.tracker_id);
    CU_ASSERT_STRING_EQUAL(r.tracker_id, "abc12");
    tracker_response_release(&r);
}

static void test_tracker_missing_peers_gives_zero_peers(void)
{
    struct tracker_response r;
    CU_ASSERT_EQUAL_FATAL(PARSE("d8:intervali60ee", &r, NULL), PT_OK);
    CU_ASSERT_EQUAL(r.peer_count, 0);
    CU_ASSERT_PTR_NULL(r.peers);
    CU_ASSERT_EQUAL(r.interval, 60);
    tracker_response_release(&r);
}

static void test_tracker_rejects_root_not_dict(void)
{
    struct tracker_response r;
    struct pt_errctx e = {0};
    CU_ASSERT_EQUAL(PARSE("li1ee", &r, &e), PT_ERR_TRACKER_BAD_RESPONSE);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "not a dictionary"));
    assert_empty(&r);
    CU_ASSERT_EQUAL(PARSE("5:hello", &r, NULL), PT_ERR_TRACKER_BAD_RESPONSE);
    CU_ASSERT_EQUAL(PARSE("i42e", &r, NULL), PT_ERR_TRACKER_BAD_RESPONSE);
}

static void test_tracker_rejects_garbage(void)
{
    struct tracker_response r;
    struct pt_errctx e = {0};
    CU_ASSERT_EQUAL(PARSE("<html><body>502 Bad Gateway</body></html>", &r, &e),
                    PT_ERR_TRACKER_BAD_RESPONSE);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "bencode"));
    assert_empty(&r);
    CU_ASSERT_EQUAL(PARSE("", &r, NULL), PT_ERR_TRACKER_BAD_RESPONSE);
    CU_ASSERT_EQUAL(PARSE("d8:intervali60eeXYZ", &r, NULL), PT_ERR_TRACKER_BAD_RESPONSE);
    CU_ASSERT_EQUAL(PARSE("d5:peers999999:abce", &r, NULL), PT_ERR_TRACKER_BAD_RESPONSE);
}

/* A full response with every key, used for the hostile-input tests. */
static const char full_body[] = "d8:completei5e10:incompletei3e8:intervali1800e"
                                "12:min intervali60e5:peers12:"
                                "\x7f\x00\x00\x01\x1a\xe1"
                                "\x0a\x00\x00\x02\x00\x50"
                                "6:peers618:"
                                "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
                                "\x1a\xe1"
                                "10:tracker id3:xyz15:warning message4:hmm!e";

static void test_tracker_truncation_at_every_offset(void)
{
    struct tracker_response r;
    size_t len = sizeof full_body - 1;
    CU_ASSERT_EQUAL_FATAL(parse_copy(full_body, len, &r, NULL), PT_OK);
    CU_ASSERT_EQUAL(r.peer_count, 3);
    tracker_response_release(&r);

    /* Bencode is prefix-free: no strict prefix of a value is a value. */
    size_t ok = 0;
    for (size_t i = 0; i < len; i++) {
        struct pt_errctx e = {0};
        enum pt_err rc = parse_copy(full_body, i, &r, &e);
        if (rc == PT_OK)
            ok++;
        CU_ASSERT_EQUAL(rc, PT_ERR_TRACKER_BAD_RESPONSE);
        CU_ASSERT(e.msg[0] != '\0');
        assert_empty(&r);
        tracker_response_release(&r);
    }
    CU_ASSERT_EQUAL(ok, 0);
}

static void test_tracker_survives_corrupted_bytes(void)
{
    static const unsigned char swaps[] = {0x00, 0xff, 'd', 'e', 'l', 'i', '0', '9', ':', '-'};
    size_t len = sizeof full_body - 1;
    char *copy = malloc(len);
    CU_ASSERT_FATAL(copy != NULL);
    for (size_t i = 0; i < len; i++) {
        for (size_t s = 0; s < sizeof swaps; s++) {
            struct tracker_response r;
            memcpy(copy, full_body, len);
            copy[i] = (char)swaps[s];
            enum pt_err rc = parse_copy(copy, len, &r, NULL);
            CU_ASSERT(rc == PT_OK || rc == PT_ERR_TRACKER_BAD_RESPONSE);
            CU_ASSERT((r.peers != NULL) == (r.peer_count > 0));
            if (rc != PT_OK)
                assert_empty(&r);
            tracker_response_release(&r);
        }
    }
    free(copy);
}

static void test_tracker_caps_peer_count(void)
{
    size_t n = TRACKER_MAX_PEERS + 1;
    char head[32];
    int hl = snprintf(head, sizeof head, "d5:peers%zu:", n * 6);
    size_t len = (size_t)hl + n * 6 + 1;
    char *body = malloc(len);
    CU_ASSERT_FATAL(body != NULL);
    memcpy(body, head, (size_t)hl);
    memset(body + hl, 1, n * 6); /* 1.1.1.1:257, all the same: duplicates stay */
    body[len - 1] = 'e';
    struct tracker_response r;
    CU_ASSERT_EQUAL_FATAL(parse_copy(body, len, &r, NULL), PT_OK);
    CU_ASSERT_EQUAL(r.peer_count, TRACKER_MAX_PEERS);
    tracker_response_release(&r);
    free(body);
}

/* ------------------------------------------------------------------------ */
/* URL building                                                              */
/* ------------------------------------------------------------------------ */

static void test_tracker_url_escapes_binary_info_hash(void)
{
    struct tracker_request req;
    sample_request(&req);
    char *url = tracker_build_url("http://t.example/announce", &req);
    CU_ASSERT_PTR_NOT_NULL_FATAL(url);
    CU_ASSERT_PTR_NOT_NULL(strstr(url, "http://t.example/announce?info_hash="
                                       "%00%FF%26aaaaaaaaaaaaaaaaa&"));
    CU_ASSERT_PTR_NOT_NULL(strstr(url, "&peer_id=-PT0001-123456789012&"));
    CU_ASSERT_PTR_NOT_NULL(strstr(url, "&port=6881&"));
    CU_ASSERT_PTR_NOT_NULL(strstr(url, "&uploaded=0&downloaded=0&left=1048576&"));
    CU_ASSERT_PTR_NOT_NULL(strstr(url, "&compact=1"));
    CU_ASSERT_PTR_NOT_NULL(strstr(url, "&numwant=50"));
    CU_ASSERT_PTR_NOT_NULL(strstr(url, "&key=1234abcd"));
    CU_ASSERT_PTR_NULL(strstr(url, "trackerid"));
    free(url);
}

static void test_tracker_url_event_only_when_set(void)
{
    struct tracker_request req;
    sample_request(&req);
    req.event = TRACKER_EVENT_NONE;
    char *url = tracker_build_url("http://t.example/announce", &req);
    CU_ASSERT_PTR_NOT_NULL_FATAL(url);
    CU_ASSERT_PTR_NULL(strstr(url, "event="));
    free(url);

    req.event = TRACKER_EVENT_STARTED;
    url = tracker_build_url("http://t.example/announce", &req);
    CU_ASSERT_PTR_NOT_NULL_FATAL(url);
    CU_ASSERT_PTR_NOT_NULL(strstr(url, "&event=started"));
    free(url);

    req.event = TRACKER_EVENT_COMPLETED;
    url = tracker_build_url("http://t.example/announce", &req);
    CU_ASSERT_PTR_NOT_NULL_FATAL(url);
    CU_ASSERT_PTR_NOT_NULL(strstr(url, "&event=completed"));
    free(url);
}

static void test_tracker_url_appends_to_existing_query(void)
{
    struct tracker_request req;
    sample_request(&req);
    req.tracker_id = "a b&c";
    char *url = tracker_build_url("https://t.example/announce.php?passkey=abc", &req);
    CU_ASSERT_PTR_NOT_NULL_FATAL(url);
    CU_ASSERT_EQUAL(strncmp(url, "https://t.example/announce.php?passkey=abc&info_hash=",
                            strlen("https://t.example/announce.php?passkey=abc&info_hash=")),
                    0);
    CU_ASSERT_EQUAL(strchr(url, '?'), strrchr(url, '?')); /* only one '?' */
    CU_ASSERT_PTR_NOT_NULL(strstr(url, "&trackerid=a%20b%26c"));
    free(url);

    url = tracker_build_url("http://t.example/a?", &req);
    CU_ASSERT_PTR_NOT_NULL_FATAL(url);
    CU_ASSERT_EQUAL(strncmp(url, "http://t.example/a?info_hash=", 29), 0);
    free(url);
}

/* ------------------------------------------------------------------------ */
/* Tiers                                                                     */
/* ------------------------------------------------------------------------ */

static void test_tracker_list_shuffles_within_tier(void)
{
    const char *t0[] = {"http://a/announce", "http://b/announce", "http://c/announce"};
    const char *const *tiers[] = {t0};
    size_t sizes[] = {3};
    bool first_seen[3] = {false, false, false};

    for (int round = 0; round < 200; round++) {
        struct tracker_list *tl = tracker_list_new(tiers, sizes, 1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(tl);
        CU_ASSERT_EQUAL(tracker_list_url_count(tl), 3);
        const char *order[4] = {NULL, NULL, NULL, NULL};
        CU_ASSERT_EQUAL_FATAL(tracker_list_order(tl, order, 4), 3);
        int hits[3] = {0, 0, 0};
        for (int i = 0; i < 3; i++) {
            for (int k = 0; k < 3; k++) {
                if (strcmp(order[i], t0[k]) == 0) {
                    hits[k]++;
                    if (i == 0)
                        first_seen[k] = true;
                }
            }
            CU_ASSERT(order[i] != t0[0] && order[i] != t0[1] && order[i] != t0[2]); /* copies */
        }
        CU_ASSERT(hits[0] == 1 && hits[1] == 1 && hits[2] == 1); /* a permutation */
        CU_ASSERT_EQUAL(tracker_list_order(tl, order, 2), 2);   /* honours max */
        tracker_list_free(tl);
    }
    /* 200 independent shuffles: each URL comes first at least once unless
     * the shuffle is broken (chance (2/3)^200). */
    CU_ASSERT(first_seen[0] && first_seen[1] && first_seen[2]);
    tracker_list_free(NULL);
}

static void test_tracker_list_empty(void)
{
    struct tracker_list *tl = tracker_list_new(NULL, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(tl);
    CU_ASSERT_EQUAL(tracker_list_url_count(tl), 0);
    struct tracker_request req;
    struct tracker_response r;
    struct pt_errctx e = {0};
    const char *used = "x";
    sample_request(&req);
    CU_ASSERT_EQUAL(tracker_list_announce(tl, &req, NULL, &r, &used, &e),
                    PT_ERR_TRACKER_UNREACHABLE);
    CU_ASSERT_PTR_NULL(used);
    assert_empty(&r);
    tracker_list_free(tl);
}

static void test_tracker_list_moves_answering_url_to_front(void)
{
    size_t body_len = sizeof compact_body - 1, reply_len;
    char *reply = http_ok(compact_body, body_len, &reply_len);
    struct responder live;
    char dead_a[64], dead_b[64], dead_c[64];
    int fa, fb, fc;
    responder_start(&live, reply, reply_len);
    dead_url(dead_a, &fa);
    dead_url(dead_b, &fb);
    dead_url(dead_c, &fc);

    const char *t0[] = {dead_a};
    const char *t1[] = {dead_b, live.url, dead_c};
    const char *const *tiers[] = {t0, t1};
    size_t sizes[] = {1, 3};
    struct tracker_list *tl = tracker_list_new(tiers, sizes, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(tl);
    CU_ASSERT_EQUAL(tracker_list_url_count(tl), 4);

    struct tracker_request req;
    struct tracker_response r;
    struct pt_errctx e = {0};
    const char *used = NULL;
    atomic_bool stop = false;
    sample_request(&req);
    responder_run(&live);
    enum pt_err rc = tracker_list_announce(tl, &req, &stop, &r, &used, &e);
    responder_finish(&live);

    CU_ASSERT_EQUAL(rc, PT_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(used);
    CU_ASSERT_STRING_EQUAL(used, live.url);
    CU_ASSERT_EQUAL(r.interval, 1800);
    CU_ASSERT_EQUAL(r.peer_count, 2);
    tracker_response_release(&r);

    const char *order[4] = {NULL, NULL, NULL, NULL};
    CU_ASSERT_EQUAL_FATAL(tracker_list_order(tl, order, 4), 4);
    CU_ASSERT_STRING_EQUAL(order[0], dead_a); /* tier 0 is still tier 0 */
    CU_ASSERT_STRING_EQUAL(order[1], live.url);
    CU_ASSERT_PTR_EQUAL(order[1], used);

    /* What the tracker saw. */
    CU_ASSERT_TRUE(live.got_request);
    CU_ASSERT_EQUAL(strncmp(live.request_line, "GET /announce?", 14), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(live.request_line, "info_hash=%00%FF%26aaaa"));
    CU_ASSERT_PTR_NOT_NULL(strstr(live.request_line, "compact=1"));
    CU_ASSERT_PTR_NOT_NULL(strstr(live.request_line, "port=6881"));
    CU_ASSERT_PTR_NOT_NULL(strstr(live.request_line, "left=1048576"));
    CU_ASSERT_PTR_NOT_NULL(strstr(live.request_line, "event=started"));
    CU_ASSERT_PTR_NOT_NULL(strstr(live.request_line, " HTTP/1.1"));

    tracker_list_free(tl);
    close(fa);
    close(fb);
    close(fc);
    free(reply);
}

static void test_tracker_list_failure_stops_walk(void)
{
    static const char fail_body[] = "d14:failure reason6:bannede";
    size_t reply_len;
    char *reply = http_ok(fail_body, sizeof fail_body - 1, &reply_len);
    struct responder refuser, other;
    responder_start(&refuser, reply, reply_len);
    responder_start(&other, reply, reply_len);
    other.accept_ms = 300; /* expected never to be asked */

    const char *t0[] = {refuser.url};
    const char *t1[] = {other.url};
    const char *const *tiers[] = {t0, t1};
    size_t sizes[] = {1, 1};
    struct tracker_list *tl = tracker_list_new(tiers, sizes, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(tl);

    struct tracker_request req;
    struct tracker_response r;
    struct pt_errctx e = {0};
    const char *used = NULL;
    sample_request(&req);
    responder_run(&refuser);
    responder_run(&other);
    enum pt_err rc = tracker_list_announce(tl, &req, NULL, &r, &used, &e);
    responder_finish(&refuser);
    responder_finish(&other);

    CU_ASSERT_EQUAL(rc, PT_ERR_TRACKER_FAILURE);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r.failure);
    CU_ASSERT_STRING_EQUAL(r.failure, "banned");
    CU_ASSERT_PTR_NOT_NULL(used);
    if (used)
        CU_ASSERT_STRING_EQUAL(used, refuser.url);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "banned"));
    CU_ASSERT_TRUE(refuser.got_request);
    CU_ASSERT_FALSE(other.got_request);
    tracker_response_release(&r);
    tracker_list_free(tl);
    free(reply);
}

/* ------------------------------------------------------------------------ */
/* Single announces                                                          */
/* ------------------------------------------------------------------------ */

static void test_tracker_announce_refused_is_unreachable(void)
{
    char url[64];
    int fd;
    struct tracker_request req;
    struct tracker_response r;
    struct pt_errctx e = {0};
    dead_url(url, &fd);
    sample_request(&req);
    double t0 = now_s();
    CU_ASSERT_EQUAL(tracker_announce(url, &req, NULL, &r, &e), PT_ERR_TRACKER_UNREACHABLE);
    CU_ASSERT(now_s() - t0 < 5.0);
    CU_ASSERT_EQUAL(strncmp(e.msg, url, strlen(url)), 0); /* names the tracker */
    CU_ASSERT(strlen(e.msg) > strlen(url) + 2);           /* and says why */
    assert_empty(&r);
    close(fd);
}

static void test_tracker_announce_rejects_other_schemes(void)
{
    struct tracker_request req;
    struct tracker_response r;
    struct pt_errctx e = {0};
    sample_request(&req);
    CU_ASSERT_EQUAL(tracker_announce("udp://127.0.0.1:1/announce", &req, NULL, &r, &e),
                    PT_ERR_TRACKER_UNREACHABLE);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "udp://127.0.0.1:1/announce"));
    CU_ASSERT_EQUAL(tracker_announce("file:///etc/passwd", &req, NULL, &r, &e),
                    PT_ERR_TRACKER_UNREACHABLE);
    assert_empty(&r);
}

static void test_tracker_announce_http_500_is_unreachable(void)
{
    static const char reply[] = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n"
                                "Connection: close\r\n\r\n";
    struct responder srv;
    struct tracker_request req;
    struct tracker_response r;
    struct pt_errctx e = {0};
    responder_start(&srv, reply, sizeof reply - 1);
    sample_request(&req);
    responder_run(&srv);
    enum pt_err rc = tracker_announce(srv.url, &req, NULL, &r, &e);
    responder_finish(&srv);
    CU_ASSERT_EQUAL(rc, PT_ERR_TRACKER_UNREACHABLE);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "500"));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, srv.url));
    assert_empty(&r);
}

static void test_tracker_announce_failure_reason(void)
{
    /* The failure text carries an escape sequence that must not reach the
     * user's terminal through err->msg. */
    static const char body[] = "d14:failure reason11:go\x1b[31maway"
                               "e";
    size_t reply_len;
    char *reply = http_ok(body, sizeof body - 1, &reply_len);
    struct responder srv;
    struct tracker_request req;
    struct tracker_response r;
    struct pt_errctx e = {0};
    responder_start(&srv, reply, reply_len);
    sample_request(&req);
    responder_run(&srv);
    enum pt_err rc = tracker_announce(srv.url, &req, NULL, &r, &e);
    responder_finish(&srv);
    CU_ASSERT_EQUAL(rc, PT_ERR_TRACKER_FAILURE);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r.failure);
    CU_ASSERT_STRING_EQUAL(r.failure, "go\x1b[31maway");
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "go?[31maway"));
    CU_ASSERT_PTR_NULL(strchr(e.msg, '\x1b'));
    tracker_response_release(&r);
    free(reply);
}

static void test_tracker_announce_bad_body(void)
{
    static const char body[] = "d5:peers5:abcdee";
    size_t reply_len;
    char *reply = http_ok(body, sizeof body - 1, &reply_len);
    struct responder srv;
    struct tracker_request req;
    struct tracker_response r;
    struct pt_errctx e = {0};
    responder_start(&srv, reply, reply_len);
    sample_request(&req);
    responder_run(&srv);
    enum pt_err rc = tracker_announce(srv.url, &req, NULL, &r, &e);
    responder_finish(&srv);
    CU_ASSERT_EQUAL(rc, PT_ERR_TRACKER_BAD_RESPONSE);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, srv.url));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "multiple of 6"));
    assert_empty(&r);
    free(reply);
}

static void test_tracker_announce_caps_body(void)
{
    char head[160];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 200 OK\r\nContent-Length: %u\r\nConnection: close\r\n\r\n",
                     (unsigned)TRACKER_MAX_BODY + 4096u);
    struct responder srv;
    struct tracker_request req;
    struct tracker_response r;
    struct pt_errctx e = {0};
    responder_start(&srv, head, (size_t)n);
    srv.filler_len = TRACKER_MAX_BODY + 4096u;
    sample_request(&req);
    responder_run(&srv);
    enum pt_err rc = tracker_announce(srv.url, &req, NULL, &r, &e);
    responder_finish(&srv);
    CU_ASSERT_EQUAL(rc, PT_ERR_TRACKER_BAD_RESPONSE);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "larger than"));
    assert_empty(&r);
}

struct stopper {
    atomic_bool *stop;
    int delay_ms;
};

static void *stopper_thread_main(void *arg)
{
    struct stopper *s = arg;
    struct timespec ts = {.tv_sec = s->delay_ms / 1000, .tv_nsec = (s->delay_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    atomic_store(s->stop, true);
    return NULL;
}

static void test_tracker_announce_stops_quickly(void)
{
    struct responder srv;
    struct tracker_request req;
    struct tracker_response r;
    struct pt_errctx e = {0};
    atomic_bool stop = true;
    sample_request(&req);

    /* Already stopped: no request at all. */
    CU_ASSERT_EQUAL(tracker_announce("http://127.0.0.1:1/announce", &req, &stop, &r, &e),
                    PT_ERR_STOPPED);

    /* Stopped while a silent tracker keeps us waiting. */
    atomic_store(&stop, false);
    responder_start(&srv, NULL, 0);
    struct stopper s = {.stop = &stop, .delay_ms = 300};
    pthread_t th;
    responder_run(&srv);
    CU_ASSERT_FATAL(pthread_create(&th, NULL, stopper_thread_main, &s) == 0);
    double t0 = now_s();
    enum pt_err rc = tracker_announce(srv.url, &req, &stop, &r, &e);
    double took = now_s() - t0;
    pthread_join(th, NULL);
    responder_finish(&srv);
    CU_ASSERT_EQUAL(rc, PT_ERR_STOPPED);
    CU_ASSERT(took < 2.5);
    CU_ASSERT_TRUE(srv.got_request);
    assert_empty(&r);
}

/* ------------------------------------------------------------------------ */

/* Failing trackers are logged as warnings; the tests expect failures, so
 * the suite quiets them and restores the level afterwards. */
static enum log_level saved_log_level;

static int suite_init(void)
{
    saved_log_level = log_get_level();
    log_set_level(LOG_ERROR);
    /* The responder is plain HTTP on loopback; a proxy from the environment
     * must not intercept it. No threads of ours exist yet. */
    setenv("no_proxy", "127.0.0.1,localhost", 1);
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : 1;
}

static int suite_cleanup(void)
{
    curl_global_cleanup();
    log_set_level(saved_log_level);
    return 0;
}

int test_tracker_register(void); /* called by test_main.c */

int test_tracker_register(void)
{
    static const struct {
        const char *name;
        CU_TestFunc fn;
    } tests[] = {
        {"parses compact peers", test_tracker_parses_compact_peers},
        {"skips compact port 0", test_tracker_skips_compact_port_zero},
        {"rejects compact length not multiple of 6",
         test_tracker_rejects_compact_length_not_multiple_of_6},
        {"parses peers6", test_tracker_parses_peers6},
        {"rejects bad peers6 length", test_tracker_rejects_bad_peers6_length},
        {"parses dict peers", test_tracker_parses_dict_peers},
        {"rejects peers of wrong type", test_tracker_rejects_peers_of_wrong_type},
        {"failure reason parses ok", test_tracker_failure_reason_parses_ok},
        {"parses warning message", test_tracker_parses_warning_message},
        {"parses intervals and counts", test_tracker_parses_intervals_and_counts},
        {"rejects negative interval", test_tracker_rejects_negative_interval},
        {"parses tracker id", test_tracker_parses_tracker_id},
        {"missing peers gives zero peers", test_tracker_missing_peers_gives_zero_peers},
        {"rejects root not dict", test_tracker_rejects_root_not_dict},
        {"rejects garbage", test_tracker_rejects_garbage},
        {"truncation at every offset", test_tracker_truncation_at_every_offset},
        {"survives corrupted bytes", test_tracker_survives_corrupted_bytes},
        {"caps peer count", test_tracker_caps_peer_count},
        {"url escapes binary info_hash", test_tracker_url_escapes_binary_info_hash},
        {"url event only when set", test_tracker_url_event_only_when_set},
        {"url appends to existing query", test_tracker_url_appends_to_existing_query},
        {"list shuffles within tier", test_tracker_list_shuffles_within_tier},
        {"list empty", test_tracker_list_empty},
        {"list moves answering url to front", test_tracker_list_moves_answering_url_to_front},
        {"list failure stops walk", test_tracker_list_failure_stops_walk},
        {"announce refused is unreachable", test_tracker_announce_refused_is_unreachable},
        {"announce rejects other schemes", test_tracker_announce_rejects_other_schemes},
        {"announce http 500 is unreachable", test_tracker_announce_http_500_is_unreachable},
        {"announce failure reason", test_tracker_announce_failure_reason},
        {"announce bad body", test_tracker_announce_bad_body},
        {"announce caps body", test_tracker_announce_caps_body},
        {"announce stops quickly", test_tracker_announce_stops_quickly},
    };
    CU_pSuite suite = CU_add_suite("tracker", suite_init, suite_cleanup);
    if (!suite)
        return 1;
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        if (!CU_add_test(suite, tests[i].name, tests[i].fn))
            return 1;
    }
    return 0;
}
