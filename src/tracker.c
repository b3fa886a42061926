/*
 * tracker: HTTP(S) announces and BEP 12 tiers.
 *
 * DESIGN
 *
 * Parsing. tracker_parse_response() decodes the whole body with
 * bencode_decode() (strict, bounded) and then reads the root dictionary. Keys
 * the session acts on are strict: `failure reason` must be a string,
 * `interval` and `min interval` non-negative integers, `peers` a compact
 * string (a multiple of 6 bytes) or a list, `peers6` a compact string (a
 * multiple of 18 bytes); anything else there makes the whole response bad.
 * Informational keys (`complete`, `incomplete`, `warning message`,
 * `tracker id`) are taken when they have the right type and ignored
 * otherwise. Individual peers that cannot be used (a port of 0, a host name
 * instead of a numeric address, a non-dictionary list item) are skipped, not
 * fatal: one odd entry should not cost us the other peers. At most
 * TRACKER_MAX_PEERS peers are kept; duplicates are left for the session.
 *
 * Announcing. tracker_announce() uses one libcurl easy handle per call, so no
 * connection or state survives between calls and nothing here is shared.
 * Bounds: connect and total timeouts, at most 5 redirects, http/https only
 * (also after a redirect), and a body cap (TRACKER_MAX_BODY, counted after
 * content decoding, so a compressed bomb is cut off too). CURLOPT_NOSIGNAL
 * keeps libcurl from using signals for timeouts, which is unsafe with
 * threads. The session's stop flag is polled from the progress callback,
 * which libcurl calls at least once a second even while waiting.
 *
 * Tiers. struct tracker_list holds copies of the URLs, shuffled once within
 * each tier. An announce walks the tiers in order; a URL that answers moves to
 * the front of its tier (BEP 12). A `failure reason` is an answer too, so it
 * ends the walk: asking the next tracker of the same swarm would not change
 * the verdict and would hide it.
 *
 * Text from a tracker (failure reason, warning) is shown to users through
 * err->msg and the log only after control characters are replaced, so a
 * hostile tracker cannot drive the user's terminal.
 *
 * Threads: the list has no lock; only the session's main thread uses it.
 */
#include "tracker.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bencode.h"
#include "buf.h"
#include "log.h"

/* Redirects followed per announce: enough for http->https and a load
 * balancer, few enough that a redirect loop ends quickly. */
#define TRACKER_MAX_REDIRECTS 5L

#define TRACKER_USER_AGENT "ptorrent/0.1"

/* Longest tracker-supplied text we copy into a log line or err->msg. */
#define TRACKER_SHOWN_TEXT 160

/* ------------------------------------------------------------------------ */
/* Parsing                                                                   */
/* ------------------------------------------------------------------------ */

static void response_init(struct tracker_response *r)
{
    memset(r, 0, sizeof *r);
    r->interval = -1;
    r->min_interval = -1;
    r->complete = -1;
    r->incomplete = -1;
}

void tracker_response_release(struct tracker_response *r)
{
    if (!r)
        return;
    free(r->failure);
    free(r->warning);
    free(r->tracker_id);
    free(r->peers);
    response_init(r);
}

/* Copies `in` into `out` (size `cap`), replacing control bytes with '?' and
 * cutting long text, so tracker-supplied strings are safe to print. */
static void sanitize_text(const char *in, char *out, size_t cap)
{
    size_t i = 0;
    for (; in[i] != '\0' && i + 1 < cap; i++) {
        unsigned char c = (unsigned char)in[i];
        out[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    out[i] = '\0';
}

/* Strict: an absent key leaves *val_out alone; a present one must be a
 * non-negative integer. */
static enum pt_err get_strict_count(const struct bencode_doc *doc, const struct bencode_node *dict,
                                    const char *key, int64_t *val_out, struct pt_errctx *err)
{
    const struct bencode_node *n = bencode_dict_get(doc, dict, key);
    if (!n)
        return PT_OK;
    if (n->type != BENCODE_INT || n->ival < 0)
        return pt_fail(err, PT_ERR_TRACKER_BAD_RESPONSE, n->start,
                       "`%s` is not a non-negative integer", key);
    *val_out = n->ival;
    return PT_OK;
}

/* Lenient: taken only if it is a non-negative integer. */
static void get_lenient_count(const struct bencode_doc *doc, const struct bencode_node *dict,
                              const char *key, int64_t *val_out)
{
    const struct bencode_node *n = bencode_dict_get(doc, dict, key);
    if (n && n->type == BENCODE_INT && n->ival >= 0)
        *val_out = n->ival;
}

/* Lenient: a copy if it is a string, else *str_out stays NULL. Only running
 * out of memory is an error. */
static enum pt_err get_lenient_string(const struct bencode_doc *doc,
                                      const struct bencode_node *dict, const char *key,
                                      char **str_out, struct pt_errctx *err)
{
    const struct bencode_node *n = bencode_dict_get(doc, dict, key);
    if (!n || n->type != BENCODE_STR)
        return PT_OK;
    *str_out = bencode_strdup(n);
    if (!*str_out)
        return pt_fail(err, PT_ERR_NOMEM, PT_NO_OFFSET, "out of memory");
    return PT_OK;
}

/* One entry of a dictionary-form peer list: {ip: numeric string, port: int}.
 * Returns false for anything we cannot connect to without a name lookup. */
static bool peer_from_dict(const struct bencode_doc *doc, const struct bencode_node *entry,
                           struct peer_addr *out)
{
    char text[INET6_ADDRSTRLEN];
    const struct bencode_node *ip = bencode_dict_get(doc, entry, "ip");
    const struct bencode_node *port = bencode_dict_get(doc, entry, "port");

    memset(out, 0, sizeof *out);
    if (!ip || ip->type != BENCODE_STR || !port || port->type != BENCODE_INT)
        return false;
    if (port->ival < 1 || port->ival > 65535)
        return false;
    if (ip->slen == 0 || ip->slen >= sizeof text || memchr(ip->str, '\0', ip->slen))
        return false;
    memcpy(text, ip->str, ip->slen);
    text[ip->slen] = '\0';

    if (inet_pton(AF_INET, text, out->ip) == 1) {
        out->family = AF_INET;
    } else if (inet_pton(AF_INET6, text, out->ip) == 1) {
        static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        out->family = AF_INET6;
        if (memcmp(out->ip, v4_mapped, sizeof v4_mapped) == 0) {
            /* ::ffff:a.b.c.d is an IPv4 peer; store it as one so the
             * session's de-duplication sees it equal to its compact form. */
            memmove(out->ip, out->ip + 12, 4);
            memset(out->ip + 4, 0, 12);
            out->family = AF_INET;
        }
    } else {
        return false;
    }
    out->port = (uint16_t)port->ival;
    return true;
}

/* Fills out->peers from `peers` (compact string or list) and `peers6`. */
static enum pt_err parse_peers(const struct bencode_doc *doc, const struct bencode_node *root,
                               struct tracker_response *out, struct pt_errctx *err)
{
    const struct bencode_node *p4 = bencode_dict_get(doc, root, "peers");
    const struct bencode_node *p6 = bencode_dict_get(doc, root, "peers6");
    size_t room = 0;

    if (p4 && p4->type == BENCODE_STR) {
        if (p4->slen % 6 != 0)
            return pt_fail(err, PT_ERR_TRACKER_BAD_RESPONSE, p4->start,
                           "compact `peers` is %zu bytes, not a multiple of 6", p4->slen);
        room += p4->slen / 6;
    } else if (p4 && p4->type == BENCODE_LIST) {
        room += p4->count;
    } else if (p4) {
        return pt_fail(err, PT_ERR_TRACKER_BAD_RESPONSE, p4->start,
                       "`peers` is neither a string nor a list");
    }
    if (p6 && p6->type == BENCODE_STR) {
        if (p6->slen % 18 != 0)
            return pt_fail(err, PT_ERR_TRACKER_BAD_RESPONSE, p6->start,
                           "compact `peers6` is %zu bytes, not a multiple of 18", p6->slen);
        room += p6->slen / 18;
    } else if (p6) {
        return pt_fail(err, PT_ERR_TRACKER_BAD_RESPONSE, p6->start, "`peers6` is not a string");
    }
    if (room > TRACKER_MAX_PEERS)
        room = TRACKER_MAX_PEERS;
    if (room == 0)
        return PT_OK;

    out->peers = calloc(room, sizeof *out->peers);
    if (!out->peers)
        return pt_fail(err, PT_ERR_NOMEM, PT_NO_OFFSET, "out of memory");

    if (p4 && p4->type == BENCODE_STR) {
        for (size_t off = 0; off + 6 <= p4->slen && out->peer_count < room; off += 6) {
            struct peer_addr *a = &out->peers[out->peer_count];
            addr_from_compact4(p4->str + off, a);
            if (a->port != 0)
                out->peer_count++;
        }
    } else if (p4) {
        const struct bencode_node *c = bencode_first(p4);
        for (uint32_t i = 0; i < p4->count && out->peer_count < room;
             i++, c = bencode_next(doc, c)) {
            if (c->type == BENCODE_DICT && peer_from_dict(doc, c, &out->peers[out->peer_count]))
                out->peer_count++;
        }
    }
    if (p6) {
        for (size_t off = 0; off + 18 <= p6->slen && out->peer_count < room; off += 18) {
            struct peer_addr *a = &out->peers[out->peer_count];
            addr_from_compact6(p6->str + off, a);
            if (a->port != 0)
                out->peer_count++;
        }
    }
    if (out->peer_count == 0) {
        free(out->peers);
        out->peers = NULL;
    }
    return PT_OK;
}

enum pt_err tracker_parse_response(const uint8_t *body, size_t len, struct tracker_response *out,
                                   struct pt_errctx *err)
{
    struct bencode_doc doc = {0};
    const struct bencode_node *root;
    size_t err_off = 0;
    enum pt_err rc;

    response_init(out);
    if (len == 0) {
        rc = pt_fail(err, PT_ERR_TRACKER_BAD_RESPONSE, 0, "empty response");
        goto done;
    }
    rc = bencode_decode(body, len, &doc, &err_off);
    if (rc == PT_ERR_NOMEM) {
        rc = pt_fail(err, rc, PT_NO_OFFSET, "out of memory");
        goto done;
    }
    if (rc != PT_OK) {
        rc = pt_fail(err, PT_ERR_TRACKER_BAD_RESPONSE, err_off,
                     "response is not valid bencode (%s at byte %zu)", pt_strerror(rc), err_off);
        goto done;
    }
    root = bencode_root(&doc);
    if (!root || root->type != BENCODE_DICT) {
        rc = pt_fail(err, PT_ERR_TRACKER_BAD_RESPONSE, 0, "response is not a dictionary");
        goto done;
    }

    const struct bencode_node *failure = bencode_dict_get(&doc, root, "failure reason");
    if (failure) {
        /* Nothing else in a refusal matters to us. */
        if (failure->type != BENCODE_STR) {
            rc = pt_fail(err, PT_ERR_TRACKER_BAD_RESPONSE, failure->start,
                         "`failure reason` is not a string");
            goto done;
        }
        out->failure = bencode_strdup(failure);
        rc = out->failure ? PT_OK : pt_fail(err, PT_ERR_NOMEM, PT_NO_OFFSET, "out of memory");
        goto done;
    }

    rc = get_strict_count(&doc, root, "interval", &out->interval, err);
    if (rc != PT_OK)
        goto done;
    rc = get_strict_count(&doc, root, "min interval", &out->min_interval, err);
    if (rc != PT_OK)
        goto done;
    get_lenient_count(&doc, root, "complete", &out->complete);
    get_lenient_count(&doc, root, "incomplete", &out->incomplete);
    rc = get_lenient_string(&doc, root, "warning message", &out->warning, err);
    if (rc != PT_OK)
        goto done;
    rc = get_lenient_string(&doc, root, "tracker id", &out->tracker_id, err);
    if (rc != PT_OK)
        goto done;
    rc = parse_peers(&doc, root, out, err);

done:
    bencode_release(&doc);
    if (rc != PT_OK)
        tracker_response_release(out);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Announce URL                                                              */
/* ------------------------------------------------------------------------ */

/* The `event` parameter's value, or NULL for a regular announce. */
static const char *event_name(enum tracker_event ev)
{
    switch (ev) {
    case TRACKER_EVENT_NONE: return NULL;
    case TRACKER_EVENT_STARTED: return "started";
    case TRACKER_EVENT_COMPLETED: return "completed";
    case TRACKER_EVENT_STOPPED: return "stopped";
    }
    return NULL;
}

/* `h` is used only for curl_easy_escape(). A fragment ("#...") in the
 * announce URL stays after the query, where it belongs. */
static char *build_url(CURL *h, const char *announce_url, const struct tracker_request *req)
{
    char *info_hash = curl_easy_escape(h, (const char *)req->info_hash, sizeof req->info_hash);
    char *peer_id = curl_easy_escape(h, (const char *)req->peer_id, sizeof req->peer_id);
    char *tracker_id = req->tracker_id ? curl_easy_escape(h, req->tracker_id, 0) : NULL;
    const char *event = event_name(req->event);
    const char *fragment = strchr(announce_url, '#');
    size_t base_len = fragment ? (size_t)(fragment - announce_url) : strlen(announce_url);
    const char *sep = "?";
    char *url = NULL;
    struct buf b;

    buf_init(&b);
    if (!info_hash || !peer_id || (req->tracker_id && !tracker_id))
        goto done;
    if (memchr(announce_url, '?', base_len)) {
        char last = announce_url[base_len - 1];
        sep = (last == '?' || last == '&') ? "" : "&";
    }

    buf_append(&b, announce_url, base_len);
    buf_printf(&b,
               "%sinfo_hash=%s&peer_id=%s&port=%u&uploaded=%" PRIu64 "&downloaded=%" PRIu64
               "&left=%" PRIu64 "&compact=1&numwant=%" PRIu32 "&key=%08" PRIx32,
               sep, info_hash, peer_id, (unsigned)req->port, req->uploaded, req->downloaded,
               req->left, req->numwant, req->key);
    if (event)
        buf_printf(&b, "&event=%s", event);
    if (tracker_id)
        buf_printf(&b, "&trackerid=%s", tracker_id);
    if (fragment)
        buf_append_str(&b, fragment);
    url = (char *)buf_take(&b, NULL);

done:
    buf_release(&b);
    curl_free(info_hash);
    curl_free(peer_id);
    curl_free(tracker_id);
    return url;
}

char *tracker_build_url(const char *announce_url, const struct tracker_request *req)
{
#if LIBCURL_VERSION_NUM >= 0x075200
    /* Since 7.82.0 curl_easy_escape() needs no handle. */
    return build_url(NULL, announce_url, req);
#else
    CURL *h = curl_easy_init();
    if (!h)
        return NULL;
    char *url = build_url(h, announce_url, req);
    curl_easy_cleanup(h);
    return url;
#endif
}

/* ------------------------------------------------------------------------ */
/* One announce                                                              */
/* ------------------------------------------------------------------------ */

/* State shared with libcurl's callbacks during one curl_easy_perform(); it
 * lives on the announcing thread's stack and only that thread touches it. */
struct transfer {
    struct buf body;
    bool too_big; /* the body passed TRACKER_MAX_BODY: aborted */
    bool no_mem;
    const atomic_bool *stop; /* may be NULL */
};

static bool stop_requested(const atomic_bool *stop)
{
    return stop && atomic_load(stop);
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct transfer *t = userdata;
    size_t n = size * nmemb; /* libcurl guarantees size == 1 */

    if (n > TRACKER_MAX_BODY - t->body.len) {
        t->too_big = true;
        return 0; /* anything but n aborts the transfer */
    }
    buf_append(&t->body, data, n);
    if (!buf_ok(&t->body)) {
        t->no_mem = true;
        return 0;
    }
    return n;
}

static int xferinfo_cb(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    const struct transfer *t = userdata;
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return stop_requested(t->stop) ? 1 : 0;
}

static bool has_http_scheme(const char *url)
{
    return strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0;
}

/* Restricts the first request and every redirect to http and https. These
 * settings are part of the security of following redirects, so failure to
 * apply them is an error. */
static CURLcode limit_protocols(CURL *h)
{
#if LIBCURL_VERSION_NUM >= 0x075500
    CURLcode cc = curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    CURLcode cc = curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS,
                              (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    return cc;
}

enum pt_err tracker_announce(const char *url, const struct tracker_request *req,
                             const atomic_bool *stop, struct tracker_response *out,
                             struct pt_errctx *err)
{
    struct transfer t = {.stop = stop};
    char curl_msg[CURL_ERROR_SIZE] = "";
    char *full_url = NULL;
    CURL *h = NULL;
    CURLcode cc;
    long status = 0;
    enum pt_err rc;

    buf_init(&t.body);
    response_init(out);
    if (!has_http_scheme(url)) {
        rc = pt_fail(err, PT_ERR_TRACKER_UNREACHABLE, PT_NO_OFFSET,
                     "%s: only http:// and https:// trackers are supported", url);
        goto done;
    }
    if (stop_requested(stop)) {
        rc = pt_fail(err, PT_ERR_STOPPED, PT_NO_OFFSET, "%s: stopped", url);
        goto done;
    }
    h = curl_easy_init();
    if (h)
        full_url = build_url(h, url, req);
    if (!h || !full_url) {
        rc = pt_fail(err, PT_ERR_NOMEM, PT_NO_OFFSET, "%s: out of memory", url);
        goto done;
    }

    cc = curl_easy_setopt(h, CURLOPT_URL, full_url);
    if (cc == CURLE_OK)
        cc = limit_protocols(h);
    if (cc != CURLE_OK) {
        rc = pt_fail(err, PT_ERR_TRACKER_UNREACHABLE, PT_NO_OFFSET, "%s: libcurl setup: %s", url,
                     curl_easy_strerror(cc));
        goto done;
    }
    /* The rest can fail only for lack of memory or support; each then loses
     * a nicety, not safety, and curl_easy_perform() reports real trouble. */
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_msg);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    long total_s = req->timeout_s ? (long)req->timeout_s : (long)TRACKER_REQUEST_TIMEOUT_S;
    long connect_s = total_s < TRACKER_CONNECT_TIMEOUT_S ? total_s : TRACKER_CONNECT_TIMEOUT_S;
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, connect_s);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, total_s);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, TRACKER_MAX_REDIRECTS);
    curl_easy_setopt(h, CURLOPT_USERAGENT, TRACKER_USER_AGENT);
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &t);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);

    cc = curl_easy_perform(h);
    /* Only our progress callback aborts; a transfer that finished before the
     * flag was seen still counts. */
    if (cc == CURLE_ABORTED_BY_CALLBACK) {
        rc = pt_fail(err, PT_ERR_STOPPED, PT_NO_OFFSET, "%s: stopped", url);
        goto done;
    }
    if (t.no_mem) {
        rc = pt_fail(err, PT_ERR_NOMEM, PT_NO_OFFSET, "%s: out of memory", url);
        goto done;
    }
    if (t.too_big) {
        rc = pt_fail(err, PT_ERR_TRACKER_BAD_RESPONSE, PT_NO_OFFSET,
                     "%s: response larger than %u bytes", url, (unsigned)TRACKER_MAX_BODY);
        goto done;
    }
    if (cc != CURLE_OK) {
        rc = pt_fail(err, PT_ERR_TRACKER_UNREACHABLE, PT_NO_OFFSET, "%s: %s", url,
                     curl_msg[0] ? curl_msg : curl_easy_strerror(cc));
        goto done;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        rc = pt_fail(err, PT_ERR_TRACKER_UNREACHABLE, PT_NO_OFFSET, "%s: HTTP status %ld", url,
                     status);
        goto done;
    }

    struct pt_errctx perr = {.offset = PT_NO_OFFSET, .msg = ""};
    rc = tracker_parse_response(t.body.data, t.body.len, out, &perr);
    if (rc != PT_OK) {
        rc = pt_fail(err, rc, perr.offset, "%s: %s", url, perr.msg);
    } else if (out->failure) {
        char shown[TRACKER_SHOWN_TEXT];
        sanitize_text(out->failure, shown, sizeof shown);
        rc = pt_fail(err, PT_ERR_TRACKER_FAILURE, PT_NO_OFFSET, "%s: tracker says: %s", url,
                     shown);
    }

done:
    curl_easy_cleanup(h); /* NULL is a no-op */
    free(full_url);
    buf_release(&t.body);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Tiers (BEP 12)                                                            */
/* ------------------------------------------------------------------------ */

struct tracker_tier {
    char **urls; /* owned copies, in the order they are tried */
    size_t count;
};

/* Locking: none. Only the session's main thread uses a list. */
struct tracker_list {
    struct tracker_tier *tiers;
    size_t tier_count;
    size_t url_count; /* sum of the tiers' counts */
};

/* A random index below n (n > 0) for the one-time shuffle. Not for secrets:
 * it only spreads clients over a tier's trackers. */
#if defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || defined(__NetBSD__) ||   \
    defined(__DragonFly__)
struct shuffle_rng {
    int unused;
};

static void shuffle_rng_init(struct shuffle_rng *r)
{
    r->unused = 0;
}

static size_t shuffle_below(struct shuffle_rng *r, size_t n)
{
    (void)r;
    return (size_t)arc4random_uniform((uint32_t)n);
}
#else
struct shuffle_rng {
    uint64_t state; /* xorshift64*, never 0 */
};

static void shuffle_rng_init(struct shuffle_rng *r)
{
    struct timespec ts = {0, 0};
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    x ^= (uint64_t)getpid() << 32;
    x ^= (uint64_t)(uintptr_t)r; /* ASLR adds a few bits */
    /* splitmix64 finaliser: spreads similar seeds (same second, close pids). */
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    x ^= x >> 31;
    r->state = x ? x : 0x9e3779b97f4a7c15u;
}

static size_t shuffle_below(struct shuffle_rng *r, size_t n)
{
    r->state ^= r->state >> 12;
    r->state ^= r->state << 25;
    r->state ^= r->state >> 27;
    /* The modulo bias is negligible for a handful of URLs. */
    return (size_t)((r->state * 0x2545f4914f6cdd1du) >> 32) % n;
}
#endif

struct tracker_list *tracker_list_new(const char *const *const *tiers, const size_t *tier_sizes,
                                      size_t tier_count)
{
    struct shuffle_rng rng;
    struct tracker_list *tl = calloc(1, sizeof *tl);
    if (!tl)
        return NULL;
    if (tier_count > 0) {
        tl->tiers = calloc(tier_count, sizeof *tl->tiers);
        if (!tl->tiers)
            goto fail;
    }
    tl->tier_count = tier_count;
    for (size_t i = 0; i < tier_count; i++) {
        struct tracker_tier *tier = &tl->tiers[i];
        if (tier_sizes[i] == 0)
            continue;
        tier->urls = calloc(tier_sizes[i], sizeof *tier->urls);
        if (!tier->urls)
            goto fail;
        for (size_t j = 0; j < tier_sizes[i]; j++) {
            tier->urls[j] = strdup(tiers[i][j]);
            if (!tier->urls[j])
                goto fail;
            tier->count++; /* counted as copied, so _free releases exactly these */
            tl->url_count++;
        }
    }

    shuffle_rng_init(&rng);
    for (size_t i = 0; i < tl->tier_count; i++) {
        struct tracker_tier *tier = &tl->tiers[i];
        for (size_t j = tier->count; j > 1; j--) { /* Fisher-Yates */
            size_t k = shuffle_below(&rng, j);
            char *tmp = tier->urls[j - 1];
            tier->urls[j - 1] = tier->urls[k];
            tier->urls[k] = tmp;
        }
    }
    return tl;

fail:
    tracker_list_free(tl);
    return NULL;
}

void tracker_list_free(struct tracker_list *tl)
{
    if (!tl)
        return;
    for (size_t i = 0; i < tl->tier_count && tl->tiers; i++) {
        for (size_t j = 0; j < tl->tiers[i].count; j++)
            free(tl->tiers[i].urls[j]);
        free(tl->tiers[i].urls);
    }
    free(tl->tiers);
    free(tl);
}

size_t tracker_list_url_count(const struct tracker_list *tl)
{
    return tl->url_count;
}

/* BEP 12: the URL at `index` answered, so it is tried first from now on; the
 * others keep their relative order. */
static void tier_move_to_front(struct tracker_tier *tier, size_t index)
{
    char *url = tier->urls[index];
    memmove(&tier->urls[1], &tier->urls[0], index * sizeof *tier->urls);
    tier->urls[0] = url;
}

enum pt_err tracker_list_announce(struct tracker_list *tl, const struct tracker_request *req,
                                  const atomic_bool *stop, struct tracker_response *out,
                                  const char **used_url_out, struct pt_errctx *err)
{
    struct pt_errctx last = {.offset = PT_NO_OFFSET, .msg = "no tracker URLs"};
    enum pt_err rc = PT_ERR_TRACKER_UNREACHABLE;

    response_init(out);
    if (used_url_out)
        *used_url_out = NULL;

    for (size_t i = 0; i < tl->tier_count; i++) {
        struct tracker_tier *tier = &tl->tiers[i];
        for (size_t j = 0; j < tier->count; j++) {
            const char *url = tier->urls[j];
            rc = tracker_announce(url, req, stop, out, &last);
            if (rc == PT_OK) {
                if (out->warning) {
                    char shown[TRACKER_SHOWN_TEXT];
                    sanitize_text(out->warning, shown, sizeof shown);
                    log_warn("tracker %s warns: %s", url, shown);
                }
                log_debug("tracker %s: %zu peers, interval %" PRId64 " s", url, out->peer_count,
                          out->interval);
                tier_move_to_front(tier, j);
                if (used_url_out)
                    *used_url_out = url; /* the string did not move, only its slot */
                return PT_OK;
            }
            if (rc == PT_ERR_TRACKER_FAILURE) {
                log_warn("tracker %s", last.msg);
                if (used_url_out)
                    *used_url_out = url;
                goto done;
            }
            if (rc == PT_ERR_STOPPED)
                goto done;
            log_warn("tracker %s", last.msg);
            tracker_response_release(out);
        }
    }

done:
    if (err)
        *err = last;
    return rc;
}

size_t tracker_list_order(const struct tracker_list *tl, const char **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < tl->tier_count; i++) {
        for (size_t j = 0; j < tl->tiers[i].count && n < max; j++)
            out[n++] = tl->tiers[i].urls[j];
    }
    return n;
}
