/*
 * tracker: HTTP(S) tracker announces (BEP 3, BEP 23 compact peers, BEP 7
 * `peers6`) and multitracker tiers (BEP 12).
 *
 * Two layers:
 *   - tracker_parse_response(): a pure codec over a response body; no I/O, no
 *     locks, tested offline;
 *   - tracker_announce() / struct tracker_list: one HTTP GET through libcurl
 *     with bounded timeouts (connect TRACKER_CONNECT_TIMEOUT_S, whole request
 *     TRACKER_REQUEST_TIMEOUT_S), and the tier logic on top.
 *
 * Threads: the session's main thread is the only caller. libcurl must have been
 * initialised once with curl_global_init() before any announce (main() does).
 * tracker_announce() can be interrupted through `stop` (polled at least once a
 * second) so a shutdown never waits for a slow tracker.
 */
#ifndef PT_TRACKER_H
#define PT_TRACKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "errors.h"

#define TRACKER_CONNECT_TIMEOUT_S 10
#define TRACKER_REQUEST_TIMEOUT_S 30
/* Largest response body we accept: 200 peers compact is 1.2 KB; a dict-form
 * list of thousands of peers stays far below this. */
#define TRACKER_MAX_BODY (4u << 20)
/* Most peers taken from one response. */
#define TRACKER_MAX_PEERS 4096u

enum tracker_event {
    TRACKER_EVENT_NONE,
    TRACKER_EVENT_STARTED,
    TRACKER_EVENT_COMPLETED,
    TRACKER_EVENT_STOPPED
};

struct tracker_request {
    uint8_t info_hash[20];
    uint8_t peer_id[20];
    uint16_t port;
    uint64_t uploaded, downloaded, left; /* bytes */
    enum tracker_event event;
    uint32_t numwant;
    uint32_t key;           /* random per session, sent as 8 hex digits */
    const char *tracker_id; /* from an earlier response, or NULL */
    uint32_t timeout_s;     /* whole request; 0 = TRACKER_REQUEST_TIMEOUT_S. The
                             * `stopped` announce at exit uses a short one. */
};

struct tracker_response {
    int64_t interval;     /* seconds; -1 if absent */
    int64_t min_interval; /* seconds; -1 if absent */
    int64_t complete;     /* seeders; -1 if absent */
    int64_t incomplete;   /* leechers; -1 if absent */
    char *failure;        /* `failure reason`, or NULL */
    char *warning;        /* `warning message`, or NULL */
    char *tracker_id;     /* `tracker id`, or NULL */
    struct peer_addr *peers;
    size_t peer_count;
};

/* Parses a bencoded announce response. Compact `peers` must be a multiple of
 * 6 bytes, `peers6` of 18; dictionary peers need `ip` (numeric) and `port`.
 * Peers with port 0 are skipped. A response with `failure reason` parses
 * successfully (PT_OK) with `failure` set: the caller decides what it means.
 * On error the response is left empty and `err` says what was wrong.
 * Ownership: the caller releases *out with tracker_response_release(). */
enum pt_err tracker_parse_response(const uint8_t *body, size_t len, struct tracker_response *out,
                                   struct pt_errctx *err);
void tracker_response_release(struct tracker_response *r);

/* Builds the full announce URL (url + '?' or '&' + escaped query) into a new
 * string (caller frees), or NULL on no memory. info_hash and peer_id are
 * escaped with curl_easy_escape. */
char *tracker_build_url(const char *announce_url, const struct tracker_request *req);

/* One announce to one URL (http:// or https://). PT_ERR_TRACKER_UNREACHABLE on
 * network errors, timeouts and non-200 statuses; PT_ERR_TRACKER_BAD_RESPONSE
 * for an unparseable body; PT_ERR_TRACKER_FAILURE when the tracker sent
 * `failure reason` (then out->failure holds it); PT_ERR_STOPPED if *stop
 * became true (`stop` may be NULL: never). Other schemes (udp://) give
 * PT_ERR_TRACKER_UNREACHABLE. *out is overwritten, not released: release an
 * earlier response first. */
enum pt_err tracker_announce(const char *url, const struct tracker_request *req,
                             const atomic_bool *stop, struct tracker_response *out,
                             struct pt_errctx *err);

/* BEP 12 tiers: tried in order; URLs within a tier shuffled once at creation;
 * a URL that answers moves to the front of its tier. */
struct tracker_list;

/* `tiers[i]` is an array of `tier_sizes[i]` URLs; all strings are copied.
 * Returns NULL on no memory. */
struct tracker_list *tracker_list_new(const char *const *const *tiers, const size_t *tier_sizes,
                                      size_t tier_count);
void tracker_list_free(struct tracker_list *tl); /* NULL is a no-op */
size_t tracker_list_url_count(const struct tracker_list *tl);

/* Announces to each URL in tier order until one gives a response (PT_OK) or
 * says `failure reason` (PT_ERR_TRACKER_FAILURE, returned at once). Otherwise
 * returns the last error. *used_url_out (if not NULL) points to the URL that
 * answered, valid until the list is freed. */
enum pt_err tracker_list_announce(struct tracker_list *tl, const struct tracker_request *req,
                                  const atomic_bool *stop, struct tracker_response *out,
                                  const char **used_url_out, struct pt_errctx *err);

/* Test seam: the order in which URLs would be tried now, written as pointers
 * into the list (valid until freed). Returns how many (at most max). */
size_t tracker_list_order(const struct tracker_list *tl, const char **out, size_t max);

#endif
