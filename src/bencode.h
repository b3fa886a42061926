/*
 * bencode: decoding and canonical encoding of BitTorrent's bencode (BEP 3).
 *
 * The decoder is iterative (an explicit stack, no recursion), bounds nesting at
 * BENCODE_MAX_DEPTH and the number of values at BENCODE_MAX_VALUES, and checks
 * every length against the bytes that remain. It is strict: leading zeros,
 * "-0", integers outside int64_t, non-string keys, duplicate keys and bytes
 * after the top-level value are errors. Keys out of order are accepted (many
 * real torrents have them) and reported through `bencode_doc.unsorted_keys`.
 *
 * The result is a flat array of nodes in document order: a container is
 * followed by its children, each child by its own subtree. Every node records
 * its exact byte span in the input, so the info hash can be taken over the raw
 * `info` bytes as they appear in the file, never over a re-encoding.
 *
 * Ownership: string nodes point into the caller's input buffer, which must
 * outlive the document. bencode_release() frees the node array only.
 * No I/O, no locks: any thread may use its own documents.
 */
#ifndef PT_BENCODE_H
#define PT_BENCODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "errors.h"

/* Deeper nesting than any real torrent or tracker reply needs; keeps the
 * explicit stack tiny and turns a nesting bomb into an error. */
#define BENCODE_MAX_DEPTH 100
/* About 48 MiB of nodes at most; a torrent with 100,000 files needs ~700,000. */
#define BENCODE_MAX_VALUES (1u << 20)

enum bencode_type { BENCODE_INT, BENCODE_STR, BENCODE_LIST, BENCODE_DICT };

struct bencode_node {
    enum bencode_type type;
    uint32_t count;     /* LIST: items; DICT: key/value pairs; else 0 */
    uint32_t after;     /* index of the first node after this subtree */
    size_t start, end;  /* byte span [start, end) in the input */
    int64_t ival;       /* INT only */
    const uint8_t *str; /* STR only: borrowed view into the input */
    size_t slen;
};

struct bencode_doc {
    struct bencode_node *nodes; /* nodes[0] is the root */
    size_t count;
    const uint8_t *input;
    size_t input_len;
    bool unsorted_keys; /* some dictionary had keys out of byte order */
};

/* Decodes exactly one value filling all of buf[0..len). On error returns the
 * code and sets *err_off_out (if not NULL) to the offending byte offset; the
 * document is left empty. */
enum pt_err bencode_decode(const uint8_t *buf, size_t len, struct bencode_doc *doc_out,
                           size_t *err_off_out);

/* Like bencode_decode but a value may be followed by other bytes: the length
 * of the value is stored in *used_out (BEP 9 metadata messages need this). */
enum pt_err bencode_decode_prefix(const uint8_t *buf, size_t len, struct bencode_doc *doc_out,
                                  size_t *used_out, size_t *err_off_out);

void bencode_release(struct bencode_doc *doc);

const struct bencode_node *bencode_root(const struct bencode_doc *doc);

/* Children: for a LIST, items; for a DICT, key, value, key, value... Use as
 *   const struct bencode_node *c = bencode_first(n);
 *   for (uint32_t i = 0; i < n->count; i++, c = bencode_next(doc, c)) ...
 * (for a dict, count pairs: the value is bencode_next(doc, key)). */
const struct bencode_node *bencode_first(const struct bencode_node *container);
const struct bencode_node *bencode_next(const struct bencode_doc *doc,
                                        const struct bencode_node *node);

/* The value under `key` in DICT `dict`, or NULL if absent or `dict` is not a dict. */
const struct bencode_node *bencode_dict_get(const struct bencode_doc *doc,
                                            const struct bencode_node *dict, const char *key);

/* True if `n` is a STR equal to the C string `s`. */
bool bencode_str_eq(const struct bencode_node *n, const char *s);

/* A NUL-terminated copy of STR node `n` (caller frees), or NULL on no memory. */
char *bencode_strdup(const struct bencode_node *n);

/* Canonical re-encoding of the subtree at `n` (dict keys sorted) into `out`. */
enum pt_err bencode_encode(const struct bencode_doc *doc, const struct bencode_node *n,
                           struct buf *out);

/* Writer primitives for building messages by hand. Dictionaries must be
 * written with keys in sorted order to be canonical; that is the caller's
 * contract (asserted in debug builds is not possible without state, so tests
 * decode the output and check `unsorted_keys`). */
void bencode_put_int(struct buf *out, int64_t v);
void bencode_put_str(struct buf *out, const void *s, size_t len);
void bencode_put_cstr(struct buf *out, const char *s);
void bencode_put_list(struct buf *out); /* "l" */
void bencode_put_dict(struct buf *out); /* "d" */
void bencode_put_end(struct buf *out);  /* "e" */

#endif
