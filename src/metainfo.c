/*
 * metainfo: DESIGN
 *
 * Decode the whole file with the strict bencode decoder, then walk the tree
 * with small typed getters that record the key path and byte offset of the
 * first problem. Paths are validated here, once, so that storage can trust
 * metainfo_file.path to stay inside the output directory.
 */
#include "metainfo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bencode.h"
#include "buf.h"
#include "sha1.h"

/* What a walker needs: the document and where to report. */
struct walk {
    const struct bencode_doc *doc;
    struct pt_errctx *err;
};

static enum pt_err get_typed(struct walk *w, const struct bencode_node *dict, const char *key,
                             const char *where, enum bencode_type type, bool required,
                             const struct bencode_node **out)
{
    *out = bencode_dict_get(w->doc, dict, key);
    if (!*out) {
        if (required)
            return pt_fail(w->err, PT_ERR_META_MISSING, dict->start, "%s: missing key '%s'",
                           where, key);
        return PT_OK;
    }
    if ((*out)->type != type) {
        static const char *names[] = {"an integer", "a string", "a list", "a dictionary"};
        return pt_fail(w->err, PT_ERR_META_BAD_TYPE, (*out)->start, "%s.%s: expected %s", where,
                       key, names[type]);
    }
    return PT_OK;
}

static char *dup_optional_str(struct walk *w, const struct bencode_node *dict, const char *key)
{
    const struct bencode_node *n = bencode_dict_get(w->doc, dict, key);
    return (n && n->type == BENCODE_STR) ? bencode_strdup(n) : NULL;
}

bool metainfo_component_ok(const uint8_t *s, size_t len)
{
    if (len == 0 || (len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '/' || s[i] == '\\' || s[i] == '\0')
            return false;
    /* A drive prefix like "C:" would make an absolute path on Windows peers'
     * minds and in ours it is just odd; reject it with the rest. */
    if (len >= 2 && s[1] == ':')
        return false;
    return true;
}

static enum pt_err check_component(struct walk *w, const struct bencode_node *n,
                                   const char *where)
{
    if (metainfo_component_ok(n->str, n->slen))
        return PT_OK;
    char shown[64];
    size_t k = 0;
    for (size_t i = 0; i < n->slen && k + 4 < sizeof shown; i++)
        shown[k++] = (n->str[i] >= 0x20 && n->str[i] < 0x7f) ? (char)n->str[i] : '?';
    shown[k] = '\0';
    return pt_fail(w->err, PT_ERR_META_BAD_PATH, n->start,
                   "%s: unsafe path component '%s' (empty, '.', '..', or contains '/', '\\' or NUL)",
                   where, shown);
}

/* Joins `name` and the components of `path_list` with '/' after checking each. */
static enum pt_err build_path(struct walk *w, const char *name, const struct bencode_node *path_list,
                              const char *where, char **out)
{
    if (path_list->count == 0)
        return pt_fail(w->err, PT_ERR_META_BAD_PATH, path_list->start, "%s: empty path", where);
    if (path_list->count > METAINFO_MAX_PATH_DEPTH)
        return pt_fail(w->err, PT_ERR_META_BAD_PATH, path_list->start, "%s: path too deep", where);
    struct buf b;
    buf_init(&b);
    buf_append_str(&b, name);
    const struct bencode_node *c = bencode_first(path_list);
    for (uint32_t i = 0; i < path_list->count; i++, c = bencode_next(w->doc, c)) {
        if (c->type != BENCODE_STR) {
            buf_release(&b);
            return pt_fail(w->err, PT_ERR_META_BAD_TYPE, c->start, "%s[%u]: expected a string",
                           where, i);
        }
        enum pt_err e = check_component(w, c, where);
        if (e != PT_OK) {
            buf_release(&b);
            return e;
        }
        buf_append(&b, "/", 1);
        buf_append(&b, c->str, c->slen);
    }
    *out = (char *)buf_take(&b, NULL);
    return *out ? PT_OK : PT_ERR_NOMEM;
}

static enum pt_err parse_length(struct walk *w, const struct bencode_node *dict, const char *where,
                                uint64_t *out)
{
    const struct bencode_node *n;
    enum pt_err e = get_typed(w, dict, "length", where, BENCODE_INT, true, &n);
    if (e != PT_OK)
        return e;
    if (n->ival < 0)
        return pt_fail(w->err, PT_ERR_META_BAD_VALUE, n->start, "%s.length: negative (%lld)",
                       where, (long long)n->ival);
    *out = (uint64_t)n->ival;
    return PT_OK;
}

static enum pt_err add_total(struct walk *w, struct metainfo *m, uint64_t len, size_t off)
{
    if (len > UINT64_MAX - m->total_length || m->total_length + len > (uint64_t)INT64_MAX)
        return pt_fail(w->err, PT_ERR_META_SIZE_OVERFLOW, off, "info: total size overflows");
    m->total_length += len;
    return PT_OK;
}

static enum pt_err parse_single_file(struct walk *w, const struct bencode_node *info,
                                     struct metainfo *m)
{
    m->files = calloc(1, sizeof *m->files);
    if (!m->files)
        return PT_ERR_NOMEM;
    m->file_count = 1;
    enum pt_err e = parse_length(w, info, "info", &m->files[0].length);
    if (e != PT_OK)
        return e;
    m->files[0].path = strdup(m->name);
    if (!m->files[0].path)
        return PT_ERR_NOMEM;
    return add_total(w, m, m->files[0].length, info->start);
}

static enum pt_err parse_files(struct walk *w, const struct bencode_node *list, struct metainfo *m)
{
    if (list->count == 0)
        return pt_fail(w->err, PT_ERR_META_BAD_VALUE, list->start, "info.files: empty list");
    m->files = calloc(list->count, sizeof *m->files);
    if (!m->files)
        return PT_ERR_NOMEM;
    m->multi_file = true;
    const struct bencode_node *f = bencode_first(list);
    for (uint32_t i = 0; i < list->count; i++, f = bencode_next(w->doc, f)) {
        char where[48];
        snprintf(where, sizeof where, "info.files[%u]", i);
        if (f->type != BENCODE_DICT)
            return pt_fail(w->err, PT_ERR_META_BAD_TYPE, f->start, "%s: expected a dictionary",
                           where);
        struct metainfo_file *mf = &m->files[m->file_count++];
        const struct bencode_node *path;
        enum pt_err e = parse_length(w, f, where, &mf->length);
        if (e == PT_OK)
            e = get_typed(w, f, "path", where, BENCODE_LIST, true, &path);
        if (e == PT_OK) {
            char pwhere[64];
            snprintf(pwhere, sizeof pwhere, "%s.path", where);
            e = build_path(w, m->name, path, pwhere, &mf->path);
        }
        if (e == PT_OK) {
            mf->offset = m->total_length;
            e = add_total(w, m, mf->length, f->start);
        }
        if (e != PT_OK)
            return e;
    }
    return PT_OK;
}

static enum pt_err parse_pieces(struct walk *w, const struct bencode_node *info, struct metainfo *m)
{
    const struct bencode_node *plen, *pieces;
    enum pt_err e = get_typed(w, info, "piece length", "info", BENCODE_INT, true, &plen);
    if (e == PT_OK)
        e = get_typed(w, info, "pieces", "info", BENCODE_STR, true, &pieces);
    if (e != PT_OK)
        return e;
    if (plen->ival <= 0 || plen->ival > (int64_t)METAINFO_MAX_PIECE_LENGTH)
        return pt_fail(w->err, PT_ERR_META_BAD_VALUE, plen->start,
                       "info.piece length: %lld is out of range (1..%u)", (long long)plen->ival,
                       METAINFO_MAX_PIECE_LENGTH);
    m->piece_length = (uint32_t)plen->ival;
    if (pieces->slen % 20 != 0)
        return pt_fail(w->err, PT_ERR_META_BAD_PIECES, pieces->start,
                       "info.pieces: length %zu is not a multiple of 20", pieces->slen);
    uint64_t expect = (m->total_length + m->piece_length - 1) / m->piece_length;
    if (expect != pieces->slen / 20 || expect > UINT32_MAX)
        return pt_fail(w->err, PT_ERR_META_PIECE_COUNT, pieces->start,
                       "info.pieces: %zu hashes, but %llu bytes in pieces of %u need %llu",
                       pieces->slen / 20, (unsigned long long)m->total_length, m->piece_length,
                       (unsigned long long)expect);
    m->piece_count = (uint32_t)expect;
    m->piece_hashes = malloc(pieces->slen);
    if (!m->piece_hashes)
        return PT_ERR_NOMEM;
    memcpy(m->piece_hashes, pieces->str, pieces->slen);
    return PT_OK;
}

static enum pt_err parse_info(struct walk *w, const struct bencode_node *info, struct metainfo *m)
{
    const struct bencode_node *name, *files, *priv;
    enum pt_err e = get_typed(w, info, "name", "info", BENCODE_STR, true, &name);
    if (e == PT_OK)
        e = check_component(w, name, "info.name");
    if (e != PT_OK)
        return e;
    m->name = bencode_strdup(name);
    if (!m->name)
        return PT_ERR_NOMEM;
    e = get_typed(w, info, "files", "info", BENCODE_LIST, false, &files);
    if (e != PT_OK)
        return e;
    bool has_length = bencode_dict_get(w->doc, info, "length") != NULL;
    if (files && has_length)
        return pt_fail(w->err, PT_ERR_META_BAD_VALUE, info->start,
                       "info: has both 'length' and 'files'");
    e = files ? parse_files(w, files, m) : parse_single_file(w, info, m);
    if (e != PT_OK)
        return e;
    if (m->total_length == 0)
        return pt_fail(w->err, PT_ERR_META_BAD_VALUE, info->start, "info: the torrent holds no data");
    e = parse_pieces(w, info, m);
    if (e != PT_OK)
        return e;
    e = get_typed(w, info, "private", "info", BENCODE_INT, false, &priv);
    m->is_private = priv && priv->ival == 1;
    return e;
}

/* `announce-list` is messy in the wild: skip what isn't a string, drop empty tiers. */
static enum pt_err add_tier(struct metainfo *m, struct walk *w, const struct bencode_node *tier)
{
    struct metainfo_tier *t = &m->tiers[m->tier_count];
    t->urls = calloc(tier->type == BENCODE_LIST ? tier->count + 1 : 2, sizeof *t->urls);
    if (!t->urls)
        return PT_ERR_NOMEM;
    if (tier->type == BENCODE_STR) {
        t->urls[t->count++] = bencode_strdup(tier);
    } else {
        const struct bencode_node *u = bencode_first(tier);
        for (uint32_t i = 0; i < tier->count; i++, u = bencode_next(w->doc, u))
            if (u->type == BENCODE_STR && u->slen > 0)
                t->urls[t->count++] = bencode_strdup(u);
    }
    if (t->count == 0) {
        free(t->urls);
        t->urls = NULL;
        return PT_OK;
    }
    m->tier_count++; /* counted first so that metainfo_release frees it on error */
    for (size_t i = 0; i < t->count; i++)
        if (!t->urls[i])
            return PT_ERR_NOMEM;
    return PT_OK;
}

static enum pt_err parse_trackers(struct walk *w, const struct bencode_node *root, struct metainfo *m)
{
    const struct bencode_node *list = bencode_dict_get(w->doc, root, "announce-list");
    const struct bencode_node *one = bencode_dict_get(w->doc, root, "announce");
    if (list && list->type == BENCODE_LIST && list->count > 0) {
        m->tiers = calloc(list->count, sizeof *m->tiers);
        if (!m->tiers)
            return PT_ERR_NOMEM;
        const struct bencode_node *t = bencode_first(list);
        for (uint32_t i = 0; i < list->count; i++, t = bencode_next(w->doc, t)) {
            if (t->type != BENCODE_LIST)
                continue;
            enum pt_err e = add_tier(m, w, t);
            if (e != PT_OK)
                return e;
        }
    }
    if (m->tier_count == 0 && one && one->type == BENCODE_STR && one->slen > 0) {
        free(m->tiers);
        m->tiers = calloc(1, sizeof *m->tiers);
        if (!m->tiers)
            return PT_ERR_NOMEM;
        return add_tier(m, w, one);
    }
    return PT_OK;
}

static enum pt_err parse_root(struct walk *w, const struct bencode_node *root, struct metainfo *m)
{
    if (root->type != BENCODE_DICT)
        return pt_fail(w->err, PT_ERR_META_NOT_DICT, 0, "top level is not a dictionary");
    const struct bencode_node *info, *date;
    enum pt_err e = get_typed(w, root, "info", "torrent", BENCODE_DICT, true, &info);
    if (e == PT_OK)
        e = parse_info(w, info, m);
    if (e == PT_OK)
        e = parse_trackers(w, root, m);
    if (e != PT_OK)
        return e;
    m->info_len = info->end - info->start;
    m->info_bytes = malloc(m->info_len);
    if (!m->info_bytes)
        return PT_ERR_NOMEM;
    memcpy(m->info_bytes, w->doc->input + info->start, m->info_len);
    if (!sha1(m->info_bytes, m->info_len, m->info_hash))
        return PT_ERR_NOMEM;
    m->comment = dup_optional_str(w, root, "comment");
    m->created_by = dup_optional_str(w, root, "created by");
    date = bencode_dict_get(w->doc, root, "creation date");
    m->creation_date = (date && date->type == BENCODE_INT) ? date->ival : -1;
    return PT_OK;
}

enum pt_err metainfo_parse(const uint8_t *data, size_t len, struct metainfo *out,
                           struct pt_errctx *err)
{
    memset(out, 0, sizeof *out);
    out->creation_date = -1;
    struct bencode_doc doc;
    size_t off = 0;
    enum pt_err e = bencode_decode(data, len, &doc, &off);
    if (e != PT_OK)
        return pt_fail(err, e, off, "%s", pt_strerror(e));
    struct walk w = {&doc, err};
    e = parse_root(&w, bencode_root(&doc), out);
    bencode_release(&doc);
    if (e != PT_OK) {
        if (e == PT_ERR_NOMEM)
            pt_fail(err, e, PT_NO_OFFSET, "out of memory");
        metainfo_release(out);
    }
    return e;
}

enum pt_err metainfo_load(const char *path, struct metainfo *out, struct pt_errctx *err)
{
    memset(out, 0, sizeof *out);
    out->creation_date = -1;
    struct buf b;
    buf_init(&b);
    enum pt_err e = buf_read_file(&b, path, METAINFO_MAX_FILE_SIZE);
    if (e == PT_OK)
        e = metainfo_parse(b.data ? b.data : (const uint8_t *)"", b.len, out, err);
    else if (e == PT_ERR_LIMIT)
        pt_fail(err, e, PT_NO_OFFSET, "file larger than %u bytes", METAINFO_MAX_FILE_SIZE);
    else
        pt_fail(err, e, PT_NO_OFFSET, "%s", pt_strerror(e));
    buf_release(&b);
    return e;
}

void metainfo_release(struct metainfo *m)
{
    for (size_t i = 0; i < m->file_count; i++)
        free(m->files[i].path);
    for (size_t t = 0; t < m->tier_count; t++) {
        for (size_t i = 0; i < m->tiers[t].count; i++)
            free(m->tiers[t].urls[i]);
        free(m->tiers[t].urls);
    }
    free(m->files);
    free(m->tiers);
    free(m->name);
    free(m->piece_hashes);
    free(m->comment);
    free(m->created_by);
    free(m->info_bytes);
    memset(m, 0, sizeof *m);
    m->creation_date = -1;
}

uint32_t metainfo_piece_size(const struct metainfo *m, uint32_t index)
{
    if (index + 1 < m->piece_count)
        return m->piece_length;
    return (uint32_t)(m->total_length - (uint64_t)index * m->piece_length);
}
