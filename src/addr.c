#include "addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *addr_format(const struct peer_addr *a, char out[ADDR_STRLEN])
{
    char ip[INET6_ADDRSTRLEN] = "?";
    inet_ntop(a->family, a->ip, ip, sizeof ip);
    if (a->family == AF_INET6)
        snprintf(out, ADDR_STRLEN, "[%s]:%u", ip, (unsigned)a->port);
    else
        snprintf(out, ADDR_STRLEN, "%s:%u", ip, (unsigned)a->port);
    return out;
}

enum pt_err addr_parse(const char *text, struct peer_addr *out)
{
    char host[INET6_ADDRSTRLEN];
    const char *port_s;
    memset(out, 0, sizeof *out);
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':' || (size_t)(close - text - 1) >= sizeof host)
            return PT_ERR_USAGE;
        memcpy(host, text + 1, (size_t)(close - text - 1));
        host[close - text - 1] = '\0';
        port_s = close + 2;
        out->family = AF_INET6;
    } else {
        const char *colon = strrchr(text, ':');
        if (!colon || (size_t)(colon - text) >= sizeof host)
            return PT_ERR_USAGE;
        memcpy(host, text, (size_t)(colon - text));
        host[colon - text] = '\0';
        port_s = colon + 1;
        out->family = AF_INET;
    }
    if (inet_pton(out->family, host, out->ip) != 1)
        return PT_ERR_USAGE;
    char *end;
    long port = strtol(port_s, &end, 10);
    if (*port_s < '0' || *port_s > '9' || *end != '\0' || port < 1 || port > 65535)
        return PT_ERR_USAGE;
    out->port = (uint16_t)port;
    return PT_OK;
}

void addr_from_compact4(const uint8_t in[6], struct peer_addr *out)
{
    memset(out, 0, sizeof *out);
    out->family = AF_INET;
    memcpy(out->ip, in, 4);
    out->port = (uint16_t)(in[4] << 8 | in[5]);
}

void addr_from_compact6(const uint8_t in[18], struct peer_addr *out)
{
    memset(out, 0, sizeof *out);
    out->family = AF_INET6;
    memcpy(out->ip, in, 16);
    out->port = (uint16_t)(in[16] << 8 | in[17]);
}

socklen_t addr_to_sockaddr(const struct peer_addr *a, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (a->family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        memcpy(&s6->sin6_addr, a->ip, 16);
        s6->sin6_port = htons(a->port);
        return sizeof *s6;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    s4->sin_family = AF_INET;
    memcpy(&s4->sin_addr, a->ip, 4);
    s4->sin_port = htons(a->port);
    return sizeof *s4;
}

bool addr_from_sockaddr(const struct sockaddr *sa, struct peer_addr *out)
{
    memset(out, 0, sizeof *out);
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        out->family = AF_INET;
        memcpy(out->ip, &s4->sin_addr, 4);
        out->port = ntohs(s4->sin_port);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) { /* a dual-stack socket's IPv4 peer */
            out->family = AF_INET;
            memcpy(out->ip, s6->sin6_addr.s6_addr + 12, 4);
            out->port = ntohs(s6->sin6_port);
            return true;
        }
        out->family = AF_INET6;
        memcpy(out->ip, &s6->sin6_addr, 16);
        out->port = ntohs(s6->sin6_port);
        return true;
    }
    return false;
}

bool addr_equal(const struct peer_addr *a, const struct peer_addr *b)
{
    return a->family == b->family && a->port == b->port && memcmp(a->ip, b->ip, 16) == 0;
}
