/*
 * addr: a peer's network address (IPv4 or IPv6 plus port) as plain data, with
 * conversions to and from text and sockaddr. No I/O, no locks.
 */
#ifndef PT_ADDR_H
#define PT_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "errors.h"

struct peer_addr {
    int family;     /* AF_INET or AF_INET6 */
    uint8_t ip[16]; /* network byte order; IPv4 uses the first 4 bytes */
    uint16_t port;  /* host byte order */
};

/* Longest text form: "[" + 45-char IPv6 + "]:" + 5 digits + NUL. */
#define ADDR_STRLEN 56

/* "1.2.3.4:6881" or "[::1]:6881" into out (ADDR_STRLEN bytes). Returns out. */
char *addr_format(const struct peer_addr *a, char out[ADDR_STRLEN]);

/* Parses a numeric "HOST:PORT" / "[V6]:PORT" (no name lookup). */
enum pt_err addr_parse(const char *text, struct peer_addr *out);

/* From 6-byte compact IPv4 (BEP 23) or 18-byte compact IPv6 (BEP 7) form. */
void addr_from_compact4(const uint8_t in[6], struct peer_addr *out);
void addr_from_compact6(const uint8_t in[18], struct peer_addr *out);

/* To a sockaddr for connect(); returns its length. */
socklen_t addr_to_sockaddr(const struct peer_addr *a, struct sockaddr_storage *ss);
/* From a sockaddr (accept()); false if the family is not IPv4/IPv6. */
bool addr_from_sockaddr(const struct sockaddr *sa, struct peer_addr *out);

bool addr_equal(const struct peer_addr *a, const struct peer_addr *b);

#endif
