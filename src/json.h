/*
 * json: the few helpers needed to write JSON (info --json, --stats-json) into
 * a struct buf. Writing only; no parser. No locks.
 */
#ifndef PT_JSON_H
#define PT_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Appends `s` (len bytes, any content) as a JSON string literal: quotes,
 * backslashes and control bytes escaped; bytes >= 0x80 that are not valid
 * UTF-8 become U+FFFD so the output is always valid JSON. */
void json_put_str(struct buf *b, const char *s, size_t len);
/* Same for a C string, or `null` when s is NULL. */
void json_put_cstr(struct buf *b, const char *s);

#endif
