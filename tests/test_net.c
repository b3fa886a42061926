/*
 * Tests for the socket layer, through net.h only, over socketpair(AF_UNIX)
 * and loopback TCP: exact reads across many small writes, the read budget,
 * EOF, the stop flag, 4 MiB through net_write_all, a writer whose peer never
 * reads or has gone, and connect: refused, accepted, timed out and stopped.
 * Every test is bounded: the slowest waits about two I/O slices.
 */
#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net.h"
#include "support.h"
#include "wake.h"

#define BIG_LEN (4u << 20)

/* ---- helpers ---- */

static uint8_t pattern(size_t i)
{
    return (uint8_t)(i * 7u + (i >> 10) + 3u);
}

/* A connected AF_UNIX stream pair with the slice timeouts set on both ends. */
static void tuned_pair(int fds[2])
{
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    net_tune(fds[0]);
    net_tune(fds[1]);
}

/* A TCP socket bound to 127.0.0.1 on a free port; *addr_out names it. */
static int bound_loopback(struct peer_addr *addr_out)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(fd >= 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = 0;
    CU_ASSERT_EQUAL_FATAL(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    socklen_t sl = sizeof sin;
    CU_ASSERT_EQUAL_FATAL(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
    memset(addr_out, 0, sizeof *addr_out);
    addr_out->family = AF_INET;
    memcpy(addr_out->ip, &sin.sin_addr, 4);
    addr_out->port = ntohs(sin.sin_port);
    return fd;
}

/* A connected TCP pair over 127.0.0.1, tuned as ptorrent tunes its peers'
 * sockets: the receive low-water mark is honoured by TCP, not AF_UNIX. */
static void tcp_pair(int fds[2])
{
    struct peer_addr a;
    int lfd = bound_loopback(&a);
    CU_ASSERT_EQUAL_FATAL(listen(lfd, 1), 0);
    enum pt_err err = PT_OK;
    fds[1] = net_connect(&a, 2000, NULL, &err);
    CU_ASSERT_FATAL(fds[1] >= 0);
    fds[0] = accept(lfd, NULL, NULL);
    CU_ASSERT_FATAL(fds[0] >= 0);
    net_tune(fds[0]);
    close(lfd);
}

/* Writes `len` bytes of the pattern in `chunk`-byte pieces with pauses. */
struct slow_writer {
    pthread_t thread;
    int fd;
    size_t len, chunk;
    long pause_ms;
    bool close_after;
};

static void *slow_writer_thread_main(void *arg)
{
    struct slow_writer *w = arg;
    for (size_t off = 0; off < w->len; off += w->chunk) {
        uint8_t buf[256];
        size_t n = w->len - off < w->chunk ? w->len - off : w->chunk;
        for (size_t k = 0; k < n; k++)
            buf[k] = pattern(off + k);
        if (write(w->fd, buf, n) != (ssize_t)n)
            break;
        sleep_ms(w->pause_ms);
    }
    if (w->close_after)
        close(w->fd);
    return NULL;
}

/* ---- net_read_exact ---- */

static void test_net_read_exact_across_small_writes(void)
{
    int fds[2];
    tuned_pair(fds);
    struct slow_writer w = {.fd = fds[1], .len = 200, .chunk = 7, .pause_ms = 2};
    CU_ASSERT_EQUAL_FATAL(pthread_create(&w.thread, NULL, slow_writer_thread_main, &w), 0);

    struct net_reader *r = malloc(sizeof *r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    net_reader_init(r, fds[0]);
    uint8_t got[200];
    /* Messages of several sizes that straddle the writer's chunks. */
    static const size_t parts[] = {1, 4, 13, 100, 82};
    size_t off = 0;
    for (size_t k = 0; k < sizeof parts / sizeof parts[0]; k++) {
        CU_ASSERT_EQUAL(net_read_exact(r, got + off, parts[k], 2000, NULL), PT_OK);
        off += parts[k];
    }
    CU_ASSERT_EQUAL(off, sizeof got);
    bool same = true;
    for (size_t i = 0; i < sizeof got; i++)
        same = same && got[i] == pattern(i);
    CU_ASSERT_TRUE(same);
    CU_ASSERT_EQUAL(net_reader_buffered(r), 0);
    pthread_join(w.thread, NULL);
    free(r);
    close(fds[0]);
    close(fds[1]);
}

/* A socket pair whose reading end already holds `total` pattern bytes
 * (`all`), a reader on it, and a buffer of the same size to read into. */
struct preloaded {
    int fds[2];
    uint8_t *all, *got;
    struct net_reader *r;
};

static void preload(struct preloaded *p, size_t total)
{
    tuned_pair(p->fds);
    p->all = malloc(total);
    p->got = malloc(total);
    p->r = malloc(sizeof *p->r);
    CU_ASSERT_FATAL(p->all && p->got && p->r);
    for (size_t i = 0; i < total; i++)
        p->all[i] = pattern(i);
    CU_ASSERT_EQUAL_FATAL(write(p->fds[1], p->all, total), (ssize_t)total);
    net_reader_init(p->r, p->fds[0]);
}

static void preload_free(struct preloaded *p)
{
    free(p->all);
    free(p->got);
    free(p->r);
    close(p->fds[0]);
    close(p->fds[1]);
}

/* One deadline for all the bytes: a writer trickling a byte every 40 ms (each
 * pause far inside a budget per pause) is cut off at the deadline; bytes that
 * come in time arrive whole and in order. */
static void test_net_read_exact_by_ends_at_the_deadline(void)
{
    int fds[2];
    tuned_pair(fds);
    struct slow_writer w = {.fd = fds[1], .len = 25, .chunk = 1, .pause_ms = 40};
    CU_ASSERT_EQUAL_FATAL(pthread_create(&w.thread, NULL, slow_writer_thread_main, &w), 0);
    struct net_reader *r = malloc(sizeof *r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    net_reader_init(r, fds[0]);
    uint8_t got[25];
    int64_t t0 = net_now_ms();
    CU_ASSERT_EQUAL(net_read_exact_by(r, got, 5, t0 + 2000, NULL), PT_OK);
    bool same = true;
    for (size_t i = 0; i < 5; i++)
        same = same && got[i] == pattern(i);
    CU_ASSERT_TRUE(same);
    t0 = net_now_ms();
    /* 20 more bytes take 800 ms: a budget per pause would wait for them all. */
    CU_ASSERT_EQUAL(net_read_exact_by(r, got, 20, t0 + 300, NULL), PT_ERR_TIMEOUT);
    int64_t took = net_now_ms() - t0;
    CU_ASSERT_TRUE(took >= 250);
    CU_ASSERT_TRUE(took < 700);
    pthread_join(w.thread, NULL); /* it writes its last bytes into the socket buffer */
    free(r);
    close(fds[0]);
    close(fds[1]);
}

/* A large read goes straight to its destination and takes only a header's
 * worth (NET_LOOKAHEAD) beyond it into the buffer, so the next payload is
 * read directly too: no block passes through the buffer. */
static void test_net_read_exact_large_reads_bypass_buffer(void)
{
    enum { PAY = 16384, TOTAL = 2 * (NET_LOOKAHEAD + PAY) + 5 };
    struct preloaded p;
    preload(&p, TOTAL);
    struct net_reader *r = p.r;
    uint8_t *got = p.got;
    size_t off = 0;
    CU_ASSERT_EQUAL(net_read_exact(r, got, PAY, 2000, NULL), PT_OK);
    off += PAY;
    CU_ASSERT_EQUAL(net_reader_buffered(r), NET_LOOKAHEAD); /* the next header, no more */
    CU_ASSERT_EQUAL(net_read_exact(r, got + off, NET_LOOKAHEAD, 2000, NULL), PT_OK);
    off += NET_LOOKAHEAD;
    CU_ASSERT_EQUAL(net_reader_buffered(r), 0);
    CU_ASSERT_EQUAL(net_read_exact(r, got + off, PAY, 2000, NULL), PT_OK);
    off += PAY;
    CU_ASSERT_EQUAL(net_reader_buffered(r), NET_LOOKAHEAD);
    CU_ASSERT_EQUAL(net_read_exact(r, got + off, NET_LOOKAHEAD + 5, 2000, NULL), PT_OK);
    off += NET_LOOKAHEAD + 5;
    CU_ASSERT_EQUAL(off, TOTAL);
    CU_ASSERT_EQUAL(memcmp(got, p.all, TOTAL), 0);
    preload_free(&p);
}

/* A direct read that the socket serves in many small parts. */
static void test_net_read_exact_large_read_across_small_writes(void)
{
    enum { LEN = 5000, TAIL = 3 };
    int fds[2];
    tuned_pair(fds);
    struct slow_writer w = {.fd = fds[1], .len = LEN + TAIL, .chunk = 200, .pause_ms = 1};
    CU_ASSERT_EQUAL_FATAL(pthread_create(&w.thread, NULL, slow_writer_thread_main, &w), 0);
    struct net_reader *r = malloc(sizeof *r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    net_reader_init(r, fds[0]);
    uint8_t got[LEN + TAIL];
    CU_ASSERT_EQUAL(net_read_exact(r, got, LEN, 2000, NULL), PT_OK);
    CU_ASSERT_EQUAL(net_read_exact(r, got + LEN, TAIL, 2000, NULL), PT_OK);
    bool same = true;
    for (size_t i = 0; i < sizeof got; i++)
        same = same && got[i] == pattern(i);
    CU_ASSERT_TRUE(same);
    pthread_join(w.thread, NULL);
    free(r);
    close(fds[0]);
    close(fds[1]);
}

static void test_net_read_exact_times_out_within_budget(void)
{
    int fds[2];
    tuned_pair(fds);
    struct net_reader *r = malloc(sizeof *r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    net_reader_init(r, fds[0]);
    uint8_t b;
    int64_t t0 = now_ms();
    CU_ASSERT_EQUAL(net_read_exact(r, &b, 1, 1000, NULL), PT_ERR_TIMEOUT);
    int64_t took = now_ms() - t0;
    CU_ASSERT_TRUE(took >= 900);
    CU_ASSERT_TRUE(took <= 2000);
    if (took < 900 || took > 2000)
        fprintf(stderr, "\n  net: a 1000 ms budget took %lld ms\n", (long long)took);
    free(r);
    close(fds[0]);
    close(fds[1]);
}

static void test_net_read_exact_reports_close(void)
{
    int fds[2];
    tuned_pair(fds);
    struct net_reader *r = malloc(sizeof *r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    net_reader_init(r, fds[0]);
    /* Three bytes, then the peer goes: the first read succeeds, the second
     * needs more than there will ever be. */
    CU_ASSERT_EQUAL_FATAL(write(fds[1], "abc", 3), 3);
    close(fds[1]);
    uint8_t got[8];
    CU_ASSERT_EQUAL(net_read_exact(r, got, 2, 1000, NULL), PT_OK);
    CU_ASSERT_EQUAL(memcmp(got, "ab", 2), 0);
    int64_t t0 = now_ms();
    CU_ASSERT_EQUAL(net_read_exact(r, got, 4, 1000, NULL), PT_ERR_CLOSED);
    CU_ASSERT_TRUE(now_ms() - t0 < 500); /* EOF is seen at once, not after the budget */
    free(r);
    close(fds[0]);
}

static void test_net_read_exact_honours_stop_flag(void)
{
    int fds[2];
    tuned_pair(fds);
    struct net_reader *r = malloc(sizeof *r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    net_reader_init(r, fds[0]);
    atomic_bool stop;
    atomic_init(&stop, true);
    uint8_t got[4];
    int64_t t0 = now_ms();
    CU_ASSERT_EQUAL(net_read_exact(r, got, 4, 10000, &stop), PT_ERR_STOPPED);
    CU_ASSERT_TRUE(now_ms() - t0 < 200);

    /* Bytes already buffered are still handed out; the flag stops the wait for more. */
    atomic_store(&stop, false);
    CU_ASSERT_EQUAL_FATAL(write(fds[1], "wxyz", 4), 4);
    CU_ASSERT_EQUAL(net_reader_wait(r, 1000, 1), PT_OK);
    atomic_store(&stop, true);
    CU_ASSERT_EQUAL(net_read_exact(r, got, 4, 10000, &stop), PT_OK);
    CU_ASSERT_EQUAL(memcmp(got, "wxyz", 4), 0);
    free(r);
    close(fds[0]);
    close(fds[1]);
}

struct stopper {
    pthread_t thread;
    atomic_bool *stop;
    long after_ms;
};

static void *stopper_thread_main(void *arg)
{
    struct stopper *s = arg;
    sleep_ms(s->after_ms);
    atomic_store(s->stop, true);
    return NULL;
}

static void test_net_read_exact_notices_stop_while_waiting(void)
{
    int fds[2];
    tuned_pair(fds);
    struct net_reader *r = malloc(sizeof *r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    net_reader_init(r, fds[0]);
    atomic_bool stop;
    atomic_init(&stop, false);
    struct stopper st = {.stop = &stop, .after_ms = 100};
    CU_ASSERT_EQUAL_FATAL(pthread_create(&st.thread, NULL, stopper_thread_main, &st), 0);
    uint8_t got[4];
    int64_t t0 = now_ms();
    CU_ASSERT_EQUAL(net_read_exact(r, got, 4, 10000, &stop), PT_ERR_STOPPED);
    /* Within one slice of the flag being set. */
    CU_ASSERT_TRUE(now_ms() - t0 < 100 + NET_IO_SLICE_MS + 500);
    pthread_join(st.thread, NULL);
    free(r);
    close(fds[0]);
    close(fds[1]);
}

/* ---- net_write_all ---- */

struct big_reader {
    pthread_t thread;
    int fd;
    enum pt_err err;
    bool same;
};

static void *big_reader_thread_main(void *arg)
{
    struct big_reader *b = arg;
    struct net_reader *r = malloc(sizeof *r);
    uint8_t *got = malloc(BIG_LEN);
    b->err = PT_ERR_NOMEM;
    b->same = false;
    if (r && got) {
        net_reader_init(r, b->fd);
        /* An odd first read, then the rest in 64 KiB + 1 steps. */
        size_t off = 0, step = 1000;
        b->err = PT_OK;
        while (off < BIG_LEN && b->err == PT_OK) {
            size_t n = BIG_LEN - off < step ? BIG_LEN - off : step;
            b->err = net_read_exact(r, got + off, n, 2000, NULL);
            off += n;
            step = 64 * 1024 + 1;
        }
        b->same = true;
        for (size_t i = 0; i < BIG_LEN && b->same; i++)
            b->same = got[i] == pattern(i);
    }
    free(got);
    free(r);
    return NULL;
}

static void test_net_write_all_four_mib_arrives_intact(void)
{
    int fds[2];
    tuned_pair(fds);
    uint8_t *data = malloc(BIG_LEN);
    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    for (size_t i = 0; i < BIG_LEN; i++)
        data[i] = pattern(i);
    struct big_reader b = {.fd = fds[0]};
    CU_ASSERT_EQUAL_FATAL(pthread_create(&b.thread, NULL, big_reader_thread_main, &b), 0);
    CU_ASSERT_EQUAL(net_write_all(fds[1], data, BIG_LEN, 2000, NULL), PT_OK);
    pthread_join(b.thread, NULL);
    CU_ASSERT_EQUAL(b.err, PT_OK);
    CU_ASSERT_TRUE(b.same);
    free(data);
    close(fds[0]);
    close(fds[1]);
}

static void test_net_write_all_times_out_when_peer_never_reads(void)
{
    int fds[2];
    tuned_pair(fds);
    /* Far more than both socket buffers hold. */
    size_t len = 16u << 20;
    uint8_t *data = calloc(1, len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    int64_t t0 = now_ms();
    CU_ASSERT_EQUAL(net_write_all(fds[1], data, len, 1000, NULL), PT_ERR_TIMEOUT);
    int64_t took = now_ms() - t0;
    CU_ASSERT_TRUE(took >= 900 && took <= 2500);
    if (took < 900 || took > 2500)
        fprintf(stderr, "\n  net: a 1000 ms write budget took %lld ms\n", (long long)took);
    free(data);
    close(fds[0]);
    close(fds[1]);
}

static void test_net_write_all_to_closed_peer_fails(void)
{
    int fds[2];
    tuned_pair(fds);
    close(fds[0]);
    uint8_t data[1024] = {0};
    /* No SIGPIPE: MSG_NOSIGNAL or SO_NOSIGPIPE. */
    CU_ASSERT_EQUAL(net_write_all(fds[1], data, sizeof data, 1000, NULL), PT_ERR_CLOSED);
    close(fds[1]);
}

static void test_net_write_all_honours_stop_flag(void)
{
    int fds[2];
    tuned_pair(fds);
    atomic_bool stop;
    atomic_init(&stop, true);
    CU_ASSERT_EQUAL(net_write_all(fds[1], "x", 1, 1000, &stop), PT_ERR_STOPPED);
    atomic_store(&stop, false);
    CU_ASSERT_EQUAL(net_write_all(fds[1], "x", 1, 1000, &stop), PT_OK);
    CU_ASSERT_EQUAL(net_write_all(fds[1], "", 0, 1000, &stop), PT_OK);
    close(fds[0]);
    close(fds[1]);
}

/* ---- net_reader_wait ---- */

static void test_net_reader_wait_sees_data_timeout_and_close(void)
{
    int fds[2];
    tuned_pair(fds);
    struct net_reader *r = malloc(sizeof *r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    net_reader_init(r, fds[0]);

    int64_t t0 = now_ms();
    CU_ASSERT_EQUAL(net_reader_wait(r, 100, 1), PT_ERR_TIMEOUT);
    int64_t took = now_ms() - t0;
    CU_ASSERT_TRUE(took >= 90 && took < 1000);
    CU_ASSERT_EQUAL(net_reader_wait(r, 0, 1), PT_ERR_TIMEOUT);

    CU_ASSERT_EQUAL_FATAL(write(fds[1], "hi", 2), 2);
    CU_ASSERT_EQUAL(net_reader_wait(r, 1000, 1), PT_OK);
    CU_ASSERT_EQUAL(net_reader_buffered(r), 2);
    /* Buffered bytes count as data without touching the socket. */
    CU_ASSERT_EQUAL(net_reader_wait(r, 0, 1), PT_OK);
    uint8_t got[2];
    CU_ASSERT_EQUAL(net_read_exact(r, got, 2, 1000, NULL), PT_OK);
    CU_ASSERT_EQUAL(memcmp(got, "hi", 2), 0);
    CU_ASSERT_EQUAL(net_reader_buffered(r), 0);

    close(fds[1]);
    CU_ASSERT_EQUAL(net_reader_wait(r, 1000, 1), PT_ERR_CLOSED);
    free(r);
    close(fds[0]);
}

struct late_wake {
    const struct wake *w;
    int after_ms;
};

static void *late_wake_main(void *arg)
{
    struct late_wake *l = arg;
    sleep_ms(l->after_ms);
    wake_set(l->w);
    return NULL;
}

/* A stop latch ends a 5 s wait (here for a batch of 4096 bytes, the
 * SO_RCVLOWAT path) as soon as another thread sets it, and from then on
 * every wait, even with data buffered in the socket. */
static void test_net_reader_wait_stops_on_the_stop_fd(void)
{
    int fds[2];
    tuned_pair(fds);
    struct wake w;
    CU_ASSERT_TRUE_FATAL(wake_open(&w));
    struct net_reader *r = malloc(sizeof *r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    net_reader_init(r, fds[0]);
    net_reader_stop_on(r, wake_fd(&w));
    CU_ASSERT_EQUAL(net_reader_wait(r, 0, 1), PT_ERR_TIMEOUT); /* not set yet */

    struct late_wake l = {&w, 50};
    pthread_t t;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, late_wake_main, &l), 0);
    int64_t t0 = now_ms();
    CU_ASSERT_EQUAL(net_reader_wait(r, 5000, 4096), PT_ERR_STOPPED);
    int64_t took = now_ms() - t0;
    pthread_join(t, NULL);
    CU_ASSERT_TRUE(took >= 40 && took < 1000);

    CU_ASSERT_EQUAL_FATAL(write(fds[1], "hi", 2), 2);
    CU_ASSERT_EQUAL(net_reader_wait(r, 1000, 1), PT_ERR_STOPPED);
    net_reader_stop_on(r, -1); /* as linger_close does: data again */
    CU_ASSERT_EQUAL(net_reader_wait(r, 1000, 1), PT_OK);
    CU_ASSERT_EQUAL(net_reader_buffered(r), 2);
    free(r);
    wake_close(&w);
    close(fds[0]);
    close(fds[1]);
}

/* The wait takes no more than a message header off the socket, so the
 * block after it is read straight into its destination, not copied. */
static void test_net_reader_wait_takes_only_a_header(void)
{
    enum { PAY = 16384, TOTAL = NET_LOOKAHEAD + PAY };
    struct preloaded p;
    preload(&p, TOTAL);
    CU_ASSERT_EQUAL(net_reader_wait(p.r, 1000, 1), PT_OK);
    CU_ASSERT_EQUAL(net_reader_buffered(p.r), NET_LOOKAHEAD);
    CU_ASSERT_EQUAL(net_read_exact(p.r, p.got, NET_LOOKAHEAD, 1000, NULL), PT_OK);
    CU_ASSERT_EQUAL(net_read_exact(p.r, p.got + NET_LOOKAHEAD, PAY, 1000, NULL), PT_OK);
    CU_ASSERT_EQUAL(net_reader_buffered(p.r), 0);
    CU_ASSERT_EQUAL(memcmp(p.got, p.all, TOTAL), 0);
    preload_free(&p);
}

static int rcvlowat(int fd)
{
    int mark = -1;
    socklen_t len = sizeof mark;
    CU_ASSERT_EQUAL(getsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &mark, &len), 0);
    return mark;
}

/* A wait for a batch sleeps until min_bytes are in or the time is up, takes
 * what came either way, and leaves the socket's low-water mark at 1, so that
 * the blocking reads after it do not wait for a batch too. */
static void test_net_reader_wait_for_a_batch(void)
{
    int fds[2];
    tcp_pair(fds);
    struct net_reader *r = malloc(sizeof *r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    net_reader_init(r, fds[0]);

    /* Fewer bytes than asked for: the whole wait, then they are taken. */
    CU_ASSERT_EQUAL_FATAL(write(fds[1], "0123456789", 10), 10);
    int64_t t0 = now_ms();
    CU_ASSERT_EQUAL(net_reader_wait(r, 300, 4096), PT_OK);
    int64_t took = now_ms() - t0;
    CU_ASSERT_TRUE(took >= 250 && took < 3000);
    CU_ASSERT_EQUAL(net_reader_buffered(r), 10);
    CU_ASSERT_EQUAL(rcvlowat(fds[0]), 1);
    uint8_t got[10];
    CU_ASSERT_EQUAL(net_read_exact(r, got, 10, 1000, NULL), PT_OK);
    CU_ASSERT_EQUAL(memcmp(got, "0123456789", 10), 0);

    /* Enough bytes: it wakes once they are in (the 16th of 32 chunks, sent
     * 20 ms apart), not at the first one and not at the end of the wait. */
    struct slow_writer w = {.fd = fds[1], .len = 8192, .chunk = 256, .pause_ms = 20};
    CU_ASSERT_EQUAL_FATAL(pthread_create(&w.thread, NULL, slow_writer_thread_main, &w), 0);
    t0 = now_ms();
    CU_ASSERT_EQUAL(net_reader_wait(r, 10000, 4096), PT_OK);
    took = now_ms() - t0;
    CU_ASSERT_TRUE(took >= 100 && took < 5000);
    CU_ASSERT_EQUAL(rcvlowat(fds[0]), 1);
    pthread_join(w.thread, NULL);
    uint8_t all[8192];
    CU_ASSERT_EQUAL(net_read_exact(r, all, sizeof all, 1000, NULL), PT_OK);
    bool same = true;
    for (size_t i = 0; i < sizeof all; i++)
        same = same && all[i] == pattern(i);
    CU_ASSERT_TRUE(same);

    /* A close ends the wait at once, with nothing to take. */
    close(fds[1]);
    t0 = now_ms();
    CU_ASSERT_EQUAL(net_reader_wait(r, 5000, 4096), PT_ERR_CLOSED);
    CU_ASSERT_TRUE(now_ms() - t0 < 2000);
    free(r);
    close(fds[0]);
}

/* ---- net_read_scatter, net_reader_unread ---- */

/* A scatter read waits only for its first `need` bytes, takes what else is
 * already there into the later segments in order, and a header's worth
 * beyond them into the buffer. */
static void test_net_read_scatter_fills_segments_in_order(void)
{
    enum { A = 5000, H = 13, B = 3000, TOTAL = A + H + B + NET_LOOKAHEAD + 7 };
    struct preloaded p;
    preload(&p, TOTAL);
    uint8_t a[A], h[H], b[B];
    struct iovec iov[3] = {{a, A}, {h, H}, {b, B}};
    size_t got = 0;
    CU_ASSERT_EQUAL(net_read_scatter(p.r, iov, 3, &got, A, 1000, NULL), PT_OK);
    CU_ASSERT_EQUAL(got, A + H + B);
    CU_ASSERT_EQUAL(memcmp(a, p.all, A), 0);
    CU_ASSERT_EQUAL(memcmp(h, p.all + A, H), 0);
    CU_ASSERT_EQUAL(memcmp(b, p.all + A + H, B), 0);
    CU_ASSERT_EQUAL(net_reader_buffered(p.r), NET_LOOKAHEAD);
    CU_ASSERT_EQUAL(net_read_exact(p.r, p.got, NET_LOOKAHEAD + 7, 1000, NULL), PT_OK);
    CU_ASSERT_EQUAL(memcmp(p.got, p.all + A + H + B, NET_LOOKAHEAD + 7), 0);
    preload_free(&p);
}

/* Only `need` bytes are waited for: with less in the socket than the
 * segments hold, the read returns what came, without waiting out a timeout. */
static void test_net_read_scatter_does_not_wait_past_need(void)
{
    enum { A = 4000, TOTAL = A + 100 };
    struct preloaded p;
    preload(&p, TOTAL);
    uint8_t a[A], rest[1000];
    struct iovec iov[2] = {{a, A}, {rest, sizeof rest}};
    size_t got = 0;
    int64_t t0 = now_ms();
    CU_ASSERT_EQUAL(net_read_scatter(p.r, iov, 2, &got, A, 5000, NULL), PT_OK);
    CU_ASSERT(now_ms() - t0 < 400);
    CU_ASSERT_EQUAL(got, TOTAL);
    CU_ASSERT_EQUAL(memcmp(rest, p.all + A, 100), 0);
    CU_ASSERT_EQUAL(net_reader_buffered(p.r), 0);
    preload_free(&p);
}

/* The first `need` bytes arriving slowly are still all read; the budget is
 * per silence, as for net_read_exact; a close before them is reported. */
static void test_net_read_scatter_across_small_writes_then_close(void)
{
    enum { A = 600 };
    int fds[2];
    tuned_pair(fds);
    struct slow_writer w = {.fd = fds[1], .len = A, .chunk = 100, .pause_ms = 20,
                            .close_after = true};
    CU_ASSERT_EQUAL_FATAL(pthread_create(&w.thread, NULL, slow_writer_thread_main, &w), 0);
    struct net_reader *r = malloc(sizeof *r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    net_reader_init(r, fds[0]);
    uint8_t a[A], more[64];
    struct iovec iov[2] = {{a, A}, {more, sizeof more}};
    size_t got = 0;
    /* The first 250 bytes are in already (a second call goes on from there). */
    CU_ASSERT_EQUAL(net_read_scatter(r, iov, 2, &got, 250, 2000, NULL), PT_OK);
    CU_ASSERT(got >= 250);
    CU_ASSERT_EQUAL(net_read_scatter(r, iov, 2, &got, A, 2000, NULL), PT_OK);
    CU_ASSERT(got >= A);
    for (size_t i = 0; i < A; i++)
        CU_ASSERT_EQUAL_FATAL(a[i], pattern(i));
    pthread_join(w.thread, NULL);
    got = 0;
    CU_ASSERT_EQUAL(net_read_scatter(r, iov, 2, &got, A, 2000, NULL), PT_ERR_CLOSED);
    CU_ASSERT_EQUAL(got, 0);
    free(r);
    close(fds[0]);
}

/* Bytes put back come out again before what was buffered, in order, from
 * any span of the segments; what does not fit is refused untouched. */
static void test_net_reader_unread_puts_bytes_back_in_order(void)
{
    enum { A = 100, H = 13, B = 2000, TOTAL = A + H + B + NET_LOOKAHEAD };
    struct preloaded p;
    preload(&p, TOTAL);
    uint8_t a[A], h[H], b[B];
    struct iovec iov[3] = {{a, A}, {h, H}, {b, B}};
    size_t got = 0;
    CU_ASSERT_EQUAL_FATAL(net_read_scatter(p.r, iov, 3, &got, A, 1000, NULL), PT_OK);
    CU_ASSERT_EQUAL_FATAL(got, A + H + B);
    CU_ASSERT_EQUAL(net_reader_buffered(p.r), NET_LOOKAHEAD);
    /* From the middle of the header to the end: the header's tail, the
     * block, then the lookahead bytes already buffered. */
    CU_ASSERT_TRUE(net_reader_unread(p.r, iov, 3, A + 4, got));
    size_t back = got - (A + 4) + NET_LOOKAHEAD;
    CU_ASSERT_EQUAL(net_reader_buffered(p.r), back);
    CU_ASSERT_EQUAL(net_read_exact(p.r, p.got, back, 1000, NULL), PT_OK);
    CU_ASSERT_EQUAL(memcmp(p.got, p.all + A + 4, back), 0);
    /* More than the buffer holds: refused, nothing changed. */
    uint8_t *big = malloc(NET_READER_CAP + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    struct iovec one = {big, NET_READER_CAP + 1};
    CU_ASSERT_FALSE(net_reader_unread(p.r, &one, 1, 0, NET_READER_CAP + 1));
    CU_ASSERT_FALSE(net_reader_unread(p.r, &one, 1, 10, 5));
    CU_ASSERT_EQUAL(net_reader_buffered(p.r), 0);
    free(big);
    preload_free(&p);
}

/* ---- net_connect ---- */

static void test_net_connect_refused_fails_fast(void)
{
    /* Bound but not listening: the port stays ours and refuses connections. */
    struct peer_addr a;
    int bound = bound_loopback(&a);
    enum pt_err err = PT_OK;
    int64_t t0 = now_ms();
    int fd = net_connect(&a, 2000, NULL, &err);
    CU_ASSERT_EQUAL(fd, -1);
    CU_ASSERT_EQUAL(err, PT_ERR_CONNECT);
    CU_ASSERT_TRUE(now_ms() - t0 < 500);
    if (fd >= 0)
        close(fd);
    close(bound);
}

static void test_net_connect_to_listener_succeeds(void)
{
    struct peer_addr a;
    int lfd = bound_loopback(&a);
    CU_ASSERT_EQUAL_FATAL(listen(lfd, 4), 0);
    enum pt_err err = PT_ERR_IO;
    atomic_bool stop;
    atomic_init(&stop, false);
    int fd = net_connect(&a, 2000, &stop, &err);
    CU_ASSERT_FATAL(fd >= 0);
    int afd = accept(lfd, NULL, NULL);
    CU_ASSERT_FATAL(afd >= 0);
    net_tune(afd);
    /* Left in blocking mode, with the slice timeouts. */
    CU_ASSERT_EQUAL(fcntl(fd, F_GETFL, 0) & O_NONBLOCK, 0);

    CU_ASSERT_EQUAL(net_write_all(fd, "ping", 4, 1000, &stop), PT_OK);
    struct net_reader *r = malloc(sizeof *r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    net_reader_init(r, afd);
    uint8_t got[4];
    CU_ASSERT_EQUAL(net_read_exact(r, got, 4, 1000, &stop), PT_OK);
    CU_ASSERT_EQUAL(memcmp(got, "ping", 4), 0);
    CU_ASSERT_EQUAL(net_write_all(afd, "pong", 4, 1000, &stop), PT_OK);
    net_reader_init(r, fd);
    CU_ASSERT_EQUAL(net_read_exact(r, got, 4, 1000, &stop), PT_OK);
    CU_ASSERT_EQUAL(memcmp(got, "pong", 4), 0);
    free(r);
    close(afd);
    close(fd);
    close(lfd);
}

/* A listener with a full accept queue drops new SYNs, so a connect to it
 * stays pending: fill the queue with connections nobody accepts, then return
 * the address. The fillers go to fillers[] (-1 where unused). */
#define MAX_FILLERS 16
static int full_listener(struct peer_addr *a, int fillers[MAX_FILLERS], int *n_out)
{
    int lfd = bound_loopback(a);
    CU_ASSERT_EQUAL_FATAL(listen(lfd, 0), 0);
    int n = 0;
    for (; n < MAX_FILLERS; n++) {
        enum pt_err err = PT_OK;
        fillers[n] = net_connect(a, 200, NULL, &err);
        if (fillers[n] < 0)
            break;
    }
    *n_out = n;
    return lfd;
}

static void test_net_connect_times_out_on_full_listener(void)
{
    struct peer_addr a;
    int fillers[MAX_FILLERS], n = 0;
    int lfd = full_listener(&a, fillers, &n);
    CU_ASSERT_FATAL(n < MAX_FILLERS); /* the queue did fill */

    /* The timeout holds to the millisecond, not rounded up to whole I/O slices. */
    enum pt_err err = PT_OK;
    int64_t t0 = now_ms();
    int fd = net_connect(&a, 600, NULL, &err);
    int64_t took = now_ms() - t0;
    CU_ASSERT_EQUAL(fd, -1);
    CU_ASSERT_EQUAL(err, PT_ERR_TIMEOUT);
    CU_ASSERT_TRUE(took >= 550 && took < 950);
    if (took < 550 || took >= 950)
        fprintf(stderr, "\n  net: a 600 ms connect timeout took %lld ms\n", (long long)took);
    if (fd >= 0)
        close(fd);

    /* A stop flag already set ends the wait at once... */
    atomic_bool stop;
    atomic_init(&stop, true);
    t0 = now_ms();
    fd = net_connect(&a, 10000, &stop, &err);
    CU_ASSERT_EQUAL(fd, -1);
    CU_ASSERT_EQUAL(err, PT_ERR_STOPPED);
    CU_ASSERT_TRUE(now_ms() - t0 < 200);
    if (fd >= 0)
        close(fd);

    /* ...and one set while waiting within about a slice. */
    atomic_store(&stop, false);
    struct stopper st = {.stop = &stop, .after_ms = 100};
    CU_ASSERT_EQUAL_FATAL(pthread_create(&st.thread, NULL, stopper_thread_main, &st), 0);
    t0 = now_ms();
    fd = net_connect(&a, 10000, &stop, &err);
    took = now_ms() - t0;
    pthread_join(st.thread, NULL);
    CU_ASSERT_EQUAL(fd, -1);
    CU_ASSERT_EQUAL(err, PT_ERR_STOPPED);
    CU_ASSERT_TRUE(took < 100 + NET_IO_SLICE_MS + 500);
    if (fd >= 0)
        close(fd);

    for (int i = 0; i < n; i++)
        close(fillers[i]);
    close(lfd);
}

/* Called by tests/test_main.c (see suites.h there). */
int test_net_register(void);

int test_net_register(void)
{
    CU_pSuite s = CU_add_suite("net", NULL, NULL);
    if (!s)
        return -1;
    struct {
        const char *name;
        CU_TestFunc fn;
    } tests[] = {
        {"read exact across small writes", test_net_read_exact_across_small_writes},
        {"read_exact_by: ends at the deadline", test_net_read_exact_by_ends_at_the_deadline},
        {"read exact: large reads bypass the buffer",
         test_net_read_exact_large_reads_bypass_buffer},
        {"read exact: large read across small writes",
         test_net_read_exact_large_read_across_small_writes},
        {"read exact times out within budget", test_net_read_exact_times_out_within_budget},
        {"read exact reports close", test_net_read_exact_reports_close},
        {"read exact honours stop flag", test_net_read_exact_honours_stop_flag},
        {"read exact notices stop while waiting", test_net_read_exact_notices_stop_while_waiting},
        {"write all four MiB arrives intact", test_net_write_all_four_mib_arrives_intact},
        {"write all times out when peer never reads",
         test_net_write_all_times_out_when_peer_never_reads},
        {"write all to closed peer fails", test_net_write_all_to_closed_peer_fails},
        {"write all honours stop flag", test_net_write_all_honours_stop_flag},
        {"reader wait sees data, timeout and close",
         test_net_reader_wait_sees_data_timeout_and_close},
        {"reader wait takes only a header", test_net_reader_wait_takes_only_a_header},
        {"reader wait for a batch", test_net_reader_wait_for_a_batch},
        {"reader wait stops on the stop fd", test_net_reader_wait_stops_on_the_stop_fd},
        {"scatter read fills segments in order", test_net_read_scatter_fills_segments_in_order},
        {"scatter read does not wait past need", test_net_read_scatter_does_not_wait_past_need},
        {"scatter read across small writes, then close",
         test_net_read_scatter_across_small_writes_then_close},
        {"unread puts bytes back in order", test_net_reader_unread_puts_bytes_back_in_order},
        {"connect refused fails fast", test_net_connect_refused_fails_fast},
        {"connect to listener succeeds", test_net_connect_to_listener_succeeds},
        {"connect times out on full listener", test_net_connect_times_out_on_full_listener},
    };
    for (size_t k = 0; k < sizeof tests / sizeof tests[0]; k++)
        if (!CU_add_test(s, tests[k].name, tests[k].fn))
            return -1;
    return 0;
}
