/*
 * listener: the socket other peers connect to (`--port`).
 *
 * Opens a dual-stack IPv6 socket accepting IPv4 too where the OS allows it,
 * else plain IPv4, on all addresses. Port taken: the next ones are tried (up
 * to LISTENER_PORT_TRIES), as transmission and aria2c do; port 0: any free
 * port. Main thread only.
 */
#ifndef PT_LISTENER_H
#define PT_LISTENER_H

#include <stdint.h>

#include "addr.h"
#include "errors.h"

#define LISTENER_PORT_TRIES 10
#define LISTENER_BACKLOG 64

struct listener;

/* NULL on failure with *err_out and ctx->msg. The port really bound is
 * listener_port(). */
struct listener *listener_open(uint16_t port, enum pt_err *err_out, struct pt_errctx *ctx);
uint16_t listener_port(const struct listener *l);

/* Waits up to wait_ms for a connection, less if wake_fd (polled too unless
 * -1) becomes readable first. Returns the accepted socket (blocking, tuned
 * with net_tune) and its address, or -1 if none came. */
int listener_accept(struct listener *l, int wait_ms, int wake_fd, struct peer_addr *addr_out);

void listener_close(struct listener *l); /* NULL is a no-op */

#endif
