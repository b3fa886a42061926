#include "stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>

#include "json.h"

static double tv_seconds(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* Peak RSS in bytes: ru_maxrss is KiB on Linux and the BSDs, bytes on macOS. */
static uint64_t peak_rss_bytes(const struct rusage *ru)
{
#ifdef __APPLE__
    return (uint64_t)ru->ru_maxrss;
#else
    return (uint64_t)ru->ru_maxrss * 1024;
#endif
}

static void format_peers(const struct stats_report *r, struct buf *out)
{
    buf_append_str(out, "\"peers\":[");
    bool first = true;
    for (size_t i = 0; i < r->peer_count; i++) {
        const struct swarm_peer_stats *p = &r->peers[i];
        if (!p->ever_connected && !p->banned)
            continue;
        char a[ADDR_STRLEN];
        buf_append_str(out, first ? "{\"address\":" : ",{\"address\":");
        first = false;
        json_put_cstr(out, addr_format(&p->addr, a));
        double rate = r->wall_seconds > 0 ? (double)p->downloaded / r->wall_seconds : 0;
        buf_printf(out,
                   ",\"downloaded\":%llu,\"uploaded\":%llu,\"average_download_rate\":%.0f,"
                   "\"hash_failures\":%u,\"banned\":%s}",
                   (unsigned long long)p->downloaded, (unsigned long long)p->uploaded, rate,
                   p->hash_failures, p->banned ? "true" : "false");
    }
    buf_append_str(out, "]");
}

void stats_format(const struct stats_report *r, struct buf *out)
{
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    getrusage(RUSAGE_SELF, &ru);
    size_t used = 0;
    for (size_t i = 0; i < r->peer_count; i++)
        used += r->peers[i].downloaded > 0;
    buf_append_str(out, "{\"command\":");
    json_put_cstr(out, r->command);
    buf_append_str(out, ",\"info_hash\":");
    json_put_cstr(out, r->info_hash_hex);
    buf_append_str(out, ",\"result\":");
    json_put_cstr(out, r->result);
    buf_printf(out, ",\"total_size\":%llu,\"piece_count\":%u", (unsigned long long)r->total_size,
               r->piece_count);
    buf_printf(out, ",\"wall_seconds\":%.3f", r->wall_seconds);
    if (r->first_byte_seconds >= 0)
        buf_printf(out, ",\"first_byte_seconds\":%.3f", r->first_byte_seconds);
    else
        buf_append_str(out, ",\"first_byte_seconds\":null");
    if (r->complete_seconds >= 0)
        buf_printf(out, ",\"complete_seconds\":%.3f", r->complete_seconds);
    else
        buf_append_str(out, ",\"complete_seconds\":null");
    buf_printf(out, ",\"bytes_downloaded\":%llu,\"bytes_uploaded\":%llu,\"bytes_wasted\":%llu",
               (unsigned long long)r->downloaded, (unsigned long long)r->uploaded,
               (unsigned long long)r->wasted);
    buf_printf(out, ",\"pieces_failed\":%u,\"peers_known\":%zu,\"peers_connected_max\":%zu",
               r->pieces_failed, r->peers_known, r->peers_max_connected);
    buf_printf(out, ",\"peers_used\":%zu,\"encrypted_handshakes\":%u", used,
               r->encrypted_handshakes);
    buf_printf(out, ",\"cpu_user_seconds\":%.3f,\"cpu_system_seconds\":%.3f",
               tv_seconds(ru.ru_utime), tv_seconds(ru.ru_stime));
    if (r->store_cpu_seconds >= 0)
        buf_printf(out, ",\"cpu_store_seconds\":%.3f", r->store_cpu_seconds);
    else
        buf_append_str(out, ",\"cpu_store_seconds\":null");
    buf_printf(out, ",\"peak_rss_bytes\":%llu,", (unsigned long long)peak_rss_bytes(&ru));
    format_peers(r, out);
    buf_append_str(out, "}\n");
}

enum pt_err stats_write(const struct stats_report *r, const char *path)
{
    struct buf b;
    buf_init(&b);
    stats_format(r, &b);
    size_t n = strlen(path) + 8;
    char *tmp = malloc(n);
    enum pt_err err = (buf_ok(&b) && tmp) ? PT_OK : PT_ERR_NOMEM;
    FILE *f = NULL;
    if (err == PT_OK) {
        snprintf(tmp, n, "%s.tmp", path);
        f = fopen(tmp, "w");
        if (!f)
            err = PT_ERR_IO;
    }
    if (f) {
        bool ok = fwrite(b.data, 1, b.len, f) == b.len;
        ok = (fclose(f) == 0) && ok;
        if (!ok || rename(tmp, path) != 0) {
            err = PT_ERR_IO;
            remove(tmp); /* never leave a half-written temp file behind */
        }
    }
    free(tmp);
    buf_release(&b);
    return err;
}
