/*
 * bencode: DESIGN
 *
 * The decoder walks the input once, left to right, with an explicit stack of
 * open containers instead of recursion, so hostile nesting costs at most
 * BENCODE_MAX_DEPTH small frames and never the C stack (Transmission moved to
 * the same design after a stack-smashing bug; we add the depth cap it lacks).
 *
 * Nodes are appended to one growing array in document order. A container's
 * `after` is filled in when its `e` is read, which lets readers skip whole
 * subtrees in O(1). Dictionary keys are compared with the previous key as they
 * arrive: equal is an error, smaller marks the dict unsorted, and only then do
 * we sort that dict's keys at its `e` to look for duplicates further apart.
 */
#include "bencode.h"

#include <stdlib.h>
#include <string.h>

struct frame {
    uint32_t node;        /* index of the container's node */
    bool is_dict;
    bool want_key;        /* dict: the next value is a key */
    bool unsorted;        /* dict: a key arrived out of order */
    uint32_t last_key;    /* dict: node index of the previous key, or UINT32_MAX */
};

struct parser {
    const uint8_t *buf;
    size_t len;
    size_t pos;
    struct bencode_node *nodes;
    size_t count, cap;
    struct frame stack[BENCODE_MAX_DEPTH];
    size_t depth;
    bool unsorted;
};

static enum pt_err fail_at(struct parser *ps, enum pt_err err, size_t off, size_t *err_off_out)
{
    if (err_off_out)
        *err_off_out = off;
    (void)ps;
    return err;
}

static enum pt_err new_node(struct parser *ps, enum bencode_type type, uint32_t *idx_out)
{
    if (ps->count >= BENCODE_MAX_VALUES)
        return PT_ERR_BENCODE_TOO_MANY_VALUES;
    if (ps->count == ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 16;
        if (cap > BENCODE_MAX_VALUES)
            cap = BENCODE_MAX_VALUES;
        struct bencode_node *n = realloc(ps->nodes, cap * sizeof *n);
        if (!n)
            return PT_ERR_NOMEM;
        ps->nodes = n;
        ps->cap = cap;
    }
    struct bencode_node *n = &ps->nodes[ps->count];
    memset(n, 0, sizeof *n);
    n->type = type;
    n->start = ps->pos;
    *idx_out = (uint32_t)ps->count++;
    return PT_OK;
}

/* "i<digits>e": no leading zeros, no "-0", must fit in int64_t. */
static enum pt_err parse_int(struct parser *ps, struct bencode_node *n, size_t *err_off)
{
    size_t p = ps->pos + 1; /* past 'i' */
    bool neg = false;
    if (p < ps->len && ps->buf[p] == '-') {
        neg = true;
        p++;
    }
    size_t digits_at = p;
    uint64_t mag = 0;
    /* Largest magnitude: 2^63 - 1, or 2^63 for a negative number. */
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    while (p < ps->len && ps->buf[p] >= '0' && ps->buf[p] <= '9') {
        unsigned d = (unsigned)(ps->buf[p] - '0');
        if (p > digits_at && ps->buf[digits_at] == '0')
            return fail_at(ps, PT_ERR_BENCODE_LEADING_ZERO, digits_at, err_off);
        if (mag > (limit - d) / 10)
            return fail_at(ps, PT_ERR_BENCODE_INT_OVERFLOW, digits_at, err_off);
        mag = mag * 10 + d;
        p++;
    }
    if (p >= ps->len)
        return fail_at(ps, PT_ERR_BENCODE_TRUNCATED, p, err_off);
    if (p == digits_at || ps->buf[p] != 'e')
        return fail_at(ps, PT_ERR_BENCODE_BAD_CHAR, p, err_off);
    if (neg && mag == 0)
        return fail_at(ps, PT_ERR_BENCODE_NEGATIVE_ZERO, ps->pos, err_off);
    n->ival = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    ps->pos = p + 1;
    return PT_OK;
}

/* "<len>:<bytes>": the length may not have a leading zero or run past the end. */
static enum pt_err parse_str(struct parser *ps, struct bencode_node *n, size_t *err_off)
{
    size_t p = ps->pos;
    size_t slen = 0;
    while (p < ps->len && ps->buf[p] >= '0' && ps->buf[p] <= '9') {
        if (p > ps->pos && ps->buf[ps->pos] == '0')
            return fail_at(ps, PT_ERR_BENCODE_LEADING_ZERO, ps->pos, err_off);
        if (slen > (ps->len - (unsigned)(ps->buf[p] - '0')) / 10)
            return fail_at(ps, PT_ERR_BENCODE_STRING_LENGTH, ps->pos, err_off);
        slen = slen * 10 + (size_t)(ps->buf[p] - '0');
        p++;
    }
    if (p >= ps->len)
        return fail_at(ps, PT_ERR_BENCODE_TRUNCATED, p, err_off);
    if (ps->buf[p] != ':')
        return fail_at(ps, PT_ERR_BENCODE_BAD_CHAR, p, err_off);
    p++;
    if (slen > ps->len - p)
        return fail_at(ps, PT_ERR_BENCODE_STRING_LENGTH, ps->pos, err_off);
    n->str = ps->buf + p;
    n->slen = slen;
    ps->pos = p + slen;
    return PT_OK;
}

static int key_cmp(const struct bencode_node *a, const struct bencode_node *b)
{
    size_t m = a->slen < b->slen ? a->slen : b->slen;
    int c = m ? memcmp(a->str, b->str, m) : 0;
    if (c)
        return c;
    return (a->slen > b->slen) - (a->slen < b->slen);
}

/* Called for each key as it arrives in a dict. */
static enum pt_err check_key_order(struct parser *ps, struct frame *f, uint32_t key,
                                   size_t *err_off)
{
    if (f->last_key != UINT32_MAX) {
        int c = key_cmp(&ps->nodes[f->last_key], &ps->nodes[key]);
        if (c == 0)
            return fail_at(ps, PT_ERR_BENCODE_DUPLICATE_KEY, ps->nodes[key].start, err_off);
        if (c > 0)
            f->unsorted = ps->unsorted = true;
    }
    f->last_key = key;
    return PT_OK;
}

/* Sorts key node indices by key bytes. A merge sort, because qsort() has no
 * context argument in C11 and an insertion sort would let a hostile dict of a
 * million reversed keys cost 10^12 comparisons. */
static void sort_keys(const struct bencode_node *nodes, uint32_t *keys, uint32_t *tmp, size_t n)
{
    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n;
            size_t hi = lo + 2 * width < n ? lo + 2 * width : n;
            size_t i = lo, j = mid, o = lo;
            while (i < mid && j < hi)
                tmp[o++] = key_cmp(&nodes[keys[i]], &nodes[keys[j]]) <= 0 ? keys[i++] : keys[j++];
            while (i < mid)
                tmp[o++] = keys[i++];
            while (j < hi)
                tmp[o++] = keys[j++];
        }
        memcpy(keys, tmp, n * sizeof *keys);
    }
}

/* An unsorted dict may hide a duplicate far from its twin: sort the keys. */
static enum pt_err find_duplicate_keys(struct parser *ps, uint32_t dict, size_t *err_off)
{
    const struct bencode_node *d = &ps->nodes[dict];
    uint32_t *keys = malloc(2 * (size_t)d->count * sizeof *keys);
    if (!keys)
        return PT_ERR_NOMEM;
    uint32_t k = dict + 1;
    for (uint32_t i = 0; i < d->count; i++) {
        keys[i] = k;
        k = ps->nodes[ps->nodes[k].after].after; /* skip the key, then its value */
    }
    sort_keys(ps->nodes, keys, keys + d->count, d->count);
    enum pt_err err = PT_OK;
    for (uint32_t i = 1; i < d->count; i++) {
        if (key_cmp(&ps->nodes[keys[i - 1]], &ps->nodes[keys[i]]) == 0) {
            uint32_t later = keys[i] > keys[i - 1] ? keys[i] : keys[i - 1];
            err = fail_at(ps, PT_ERR_BENCODE_DUPLICATE_KEY, ps->nodes[later].start, err_off);
            break;
        }
    }
    free(keys);
    return err;
}

/* A value (not a key) just ended: count it in its container. */
static void value_done(struct parser *ps)
{
    if (ps->depth == 0)
        return;
    struct frame *f = &ps->stack[ps->depth - 1];
    ps->nodes[f->node].count++;
    if (f->is_dict)
        f->want_key = true;
}

static enum pt_err close_container(struct parser *ps, size_t *err_off)
{
    struct frame *f = &ps->stack[ps->depth - 1];
    if (f->is_dict && !f->want_key)
        return fail_at(ps, PT_ERR_BENCODE_BAD_CHAR, ps->pos, err_off); /* key without value */
    struct bencode_node *n = &ps->nodes[f->node];
    n->end = ps->pos + 1;
    n->after = (uint32_t)ps->count;
    if (f->unsorted) {
        enum pt_err err = find_duplicate_keys(ps, f->node, err_off);
        if (err != PT_OK)
            return err;
    }
    ps->pos++;
    ps->depth--;
    value_done(ps);
    return PT_OK;
}

static enum pt_err open_container(struct parser *ps, uint32_t idx, bool is_dict, size_t *err_off)
{
    if (ps->depth >= BENCODE_MAX_DEPTH)
        return fail_at(ps, PT_ERR_BENCODE_TOO_DEEP, ps->pos, err_off);
    struct frame *f = &ps->stack[ps->depth++];
    f->node = idx;
    f->is_dict = is_dict;
    f->want_key = is_dict;
    f->unsorted = false;
    f->last_key = UINT32_MAX;
    ps->pos++;
    return PT_OK;
}

/* Parses one scalar or opens one container at ps->pos. */
static enum pt_err parse_one(struct parser *ps, size_t *err_off)
{
    uint8_t c = ps->buf[ps->pos];
    struct frame *top = ps->depth ? &ps->stack[ps->depth - 1] : NULL;
    bool is_key = top && top->is_dict && top->want_key;
    if (is_key && !(c >= '0' && c <= '9'))
        return fail_at(ps, PT_ERR_BENCODE_KEY_NOT_STRING, ps->pos, err_off);
    enum bencode_type type;
    if (c == 'i')
        type = BENCODE_INT;
    else if (c >= '0' && c <= '9')
        type = BENCODE_STR;
    else if (c == 'l')
        type = BENCODE_LIST;
    else if (c == 'd')
        type = BENCODE_DICT;
    else
        return fail_at(ps, PT_ERR_BENCODE_BAD_CHAR, ps->pos, err_off);

    uint32_t idx;
    enum pt_err err = new_node(ps, type, &idx);
    if (err != PT_OK)
        return fail_at(ps, err, ps->pos, err_off);
    struct bencode_node *n = &ps->nodes[idx];
    switch (type) {
    case BENCODE_LIST:
    case BENCODE_DICT:
        return open_container(ps, idx, type == BENCODE_DICT, err_off);
    case BENCODE_INT:
        err = parse_int(ps, n, err_off);
        break;
    case BENCODE_STR:
        err = parse_str(ps, n, err_off);
        break;
    }
    if (err != PT_OK)
        return err;
    n->end = ps->pos;
    n->after = idx + 1;
    if (is_key) {
        top->want_key = false;
        return check_key_order(ps, top, idx, err_off);
    }
    value_done(ps);
    return PT_OK;
}

static enum pt_err parse_value(struct parser *ps, size_t *err_off)
{
    do {
        if (ps->pos >= ps->len)
            return fail_at(ps, PT_ERR_BENCODE_TRUNCATED, ps->pos, err_off);
        enum pt_err err;
        if (ps->depth > 0 && ps->buf[ps->pos] == 'e')
            err = close_container(ps, err_off);
        else
            err = parse_one(ps, err_off);
        if (err != PT_OK)
            return err;
    } while (ps->depth > 0);
    return PT_OK;
}

enum pt_err bencode_decode_prefix(const uint8_t *buf, size_t len, struct bencode_doc *doc_out,
                                  size_t *used_out, size_t *err_off_out)
{
    memset(doc_out, 0, sizeof *doc_out);
    struct parser *ps = calloc(1, sizeof *ps);
    if (!ps)
        return PT_ERR_NOMEM;
    ps->buf = buf;
    ps->len = len;
    enum pt_err err = parse_value(ps, err_off_out);
    if (err != PT_OK) {
        free(ps->nodes);
        free(ps);
        return err;
    }
    doc_out->nodes = ps->nodes;
    doc_out->count = ps->count;
    doc_out->input = buf;
    doc_out->input_len = len;
    doc_out->unsorted_keys = ps->unsorted;
    if (used_out)
        *used_out = ps->pos;
    free(ps);
    return PT_OK;
}

enum pt_err bencode_decode(const uint8_t *buf, size_t len, struct bencode_doc *doc_out,
                           size_t *err_off_out)
{
    size_t used;
    enum pt_err err = bencode_decode_prefix(buf, len, doc_out, &used, err_off_out);
    if (err != PT_OK)
        return err;
    if (used != len) {
        bencode_release(doc_out);
        if (err_off_out)
            *err_off_out = used;
        return PT_ERR_BENCODE_TRAILING_DATA;
    }
    return PT_OK;
}

void bencode_release(struct bencode_doc *doc)
{
    free(doc->nodes);
    memset(doc, 0, sizeof *doc);
}

const struct bencode_node *bencode_root(const struct bencode_doc *doc)
{
    return doc->count ? &doc->nodes[0] : NULL;
}

const struct bencode_node *bencode_first(const struct bencode_node *container)
{
    return container + 1;
}

const struct bencode_node *bencode_next(const struct bencode_doc *doc,
                                        const struct bencode_node *node)
{
    return &doc->nodes[node->after];
}

bool bencode_str_eq(const struct bencode_node *n, const char *s)
{
    size_t len = strlen(s);
    return n && n->type == BENCODE_STR && n->slen == len && memcmp(n->str, s, len) == 0;
}

const struct bencode_node *bencode_dict_get(const struct bencode_doc *doc,
                                            const struct bencode_node *dict, const char *key)
{
    if (!dict || dict->type != BENCODE_DICT)
        return NULL;
    const struct bencode_node *k = bencode_first(dict);
    for (uint32_t i = 0; i < dict->count; i++) {
        const struct bencode_node *v = bencode_next(doc, k);
        if (bencode_str_eq(k, key))
            return v;
        k = bencode_next(doc, v);
    }
    return NULL;
}

char *bencode_strdup(const struct bencode_node *n)
{
    char *s = malloc(n->slen + 1);
    if (!s)
        return NULL;
    memcpy(s, n->str, n->slen);
    s[n->slen] = '\0';
    return s;
}

void bencode_put_int(struct buf *out, int64_t v)
{
    buf_printf(out, "i%llde", (long long)v);
}

void bencode_put_str(struct buf *out, const void *s, size_t len)
{
    buf_printf(out, "%zu:", len);
    buf_append(out, s, len);
}

void bencode_put_cstr(struct buf *out, const char *s)
{
    bencode_put_str(out, s, strlen(s));
}

void bencode_put_list(struct buf *out)
{
    buf_append(out, "l", 1);
}

void bencode_put_dict(struct buf *out)
{
    buf_append(out, "d", 1);
}

void bencode_put_end(struct buf *out)
{
    buf_append(out, "e", 1);
}

static enum pt_err encode_node(const struct bencode_doc *doc, const struct bencode_node *n,
                               struct buf *out);

/* Writes a dict with its keys in byte order, whatever order they came in. */
static enum pt_err encode_dict(const struct bencode_doc *doc, const struct bencode_node *n,
                               struct buf *out)
{
    uint32_t *keys = malloc(2 * (size_t)n->count * sizeof *keys + 1);
    if (!keys)
        return PT_ERR_NOMEM;
    const struct bencode_node *k = bencode_first(n);
    for (uint32_t i = 0; i < n->count; i++) {
        keys[i] = (uint32_t)(k - doc->nodes);
        k = bencode_next(doc, bencode_next(doc, k));
    }
    sort_keys(doc->nodes, keys, keys + n->count, n->count);
    enum pt_err err = PT_OK;
    bencode_put_dict(out);
    for (uint32_t i = 0; i < n->count && err == PT_OK; i++) {
        const struct bencode_node *key = &doc->nodes[keys[i]];
        bencode_put_str(out, key->str, key->slen);
        err = encode_node(doc, bencode_next(doc, key), out);
    }
    bencode_put_end(out);
    free(keys);
    return err;
}

/* Recursion is safe here: a decoded document is at most BENCODE_MAX_DEPTH deep. */
static enum pt_err encode_node(const struct bencode_doc *doc, const struct bencode_node *n,
                               struct buf *out)
{
    switch (n->type) {
    case BENCODE_INT:
        bencode_put_int(out, n->ival);
        return PT_OK;
    case BENCODE_STR:
        bencode_put_str(out, n->str, n->slen);
        return PT_OK;
    case BENCODE_LIST: {
        bencode_put_list(out);
        const struct bencode_node *c = bencode_first(n);
        for (uint32_t i = 0; i < n->count; i++, c = bencode_next(doc, c)) {
            enum pt_err err = encode_node(doc, c, out);
            if (err != PT_OK)
                return err;
        }
        bencode_put_end(out);
        return PT_OK;
    }
    case BENCODE_DICT:
        return encode_dict(doc, n, out);
    }
    return PT_ERR_BENCODE_BAD_CHAR;
}

enum pt_err bencode_encode(const struct bencode_doc *doc, const struct bencode_node *n,
                           struct buf *out)
{
    enum pt_err err = encode_node(doc, n, out);
    if (err == PT_OK && !buf_ok(out))
        err = PT_ERR_NOMEM;
    return err;
}
