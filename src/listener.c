#include "listener.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net.h"

struct listener {
    int fd;
    uint16_t port;
};

/* One socket bound to `port` on every address: IPv6 dual-stack if possible. */
static int bind_any(uint16_t port, int *errno_out)
{
    int one = 1, zero = 0;
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd >= 0) {
        struct sockaddr_in6 a6;
        memset(&a6, 0, sizeof a6);
        a6.sin6_family = AF_INET6;
        a6.sin6_addr = in6addr_any;
        a6.sin6_port = htons(port);
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        /* OpenBSD refuses IPv4-mapped addresses: then fall back to IPv4 below. */
        if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) == 0 &&
            bind(fd, (struct sockaddr *)&a6, sizeof a6) == 0 && listen(fd, LISTENER_BACKLOG) == 0)
            return fd;
        *errno_out = errno;
        close(fd);
        if (*errno_out == EADDRINUSE)
            return -1;
    }
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        *errno_out = errno;
        return -1;
    }
    struct sockaddr_in a4;
    memset(&a4, 0, sizeof a4);
    a4.sin_family = AF_INET;
    a4.sin_addr.s_addr = htonl(INADDR_ANY);
    a4.sin_port = htons(port);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&a4, sizeof a4) == 0 && listen(fd, LISTENER_BACKLOG) == 0)
        return fd;
    *errno_out = errno;
    close(fd);
    return -1;
}

static uint16_t bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    struct peer_addr a;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0 ||
        !addr_from_sockaddr((struct sockaddr *)&ss, &a))
        return 0;
    return a.port;
}

struct listener *listener_open(uint16_t port, enum pt_err *err_out, struct pt_errctx *ctx)
{
    int fd = -1, saved = 0;
    unsigned tries = port == 0 ? 1 : LISTENER_PORT_TRIES;
    for (unsigned i = 0; i < tries && fd < 0 && port + i <= 65535; i++)
        fd = bind_any((uint16_t)(port + i), &saved);
    struct listener *l = fd >= 0 ? malloc(sizeof *l) : NULL;
    if (!l) {
        if (fd >= 0)
            close(fd);
        *err_out = pt_fail(ctx, fd >= 0 ? PT_ERR_NOMEM : pt_err_from_errno(saved), PT_NO_OFFSET,
                           "cannot listen on port %u%s: %s", (unsigned)port,
                           tries > 1 ? " or the next ones" : "", strerror(saved));
        return NULL;
    }
    l->fd = fd;
    l->port = bound_port(fd);
    *err_out = PT_OK;
    return l;
}

uint16_t listener_port(const struct listener *l)
{
    return l->port;
}

int listener_accept(struct listener *l, int wait_ms, int wake_fd, struct peer_addr *addr_out)
{
    struct pollfd p[2] = {{l->fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    if (poll(p, 2, wait_ms) <= 0 || !(p[0].revents & POLLIN))
        return -1;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd = accept(l->fd, (struct sockaddr *)&ss, &sl);
    if (fd < 0)
        return -1;
    if (!addr_from_sockaddr((struct sockaddr *)&ss, addr_out)) {
        close(fd);
        return -1;
    }
    net_tune(fd);
    return fd;
}

void listener_close(struct listener *l)
{
    if (!l)
        return;
    close(l->fd);
    free(l);
}
