#include "json.h"

#include <string.h>

/* Length of the valid UTF-8 sequence at s (at most len bytes), or 0. */
static size_t utf8_len(const unsigned char *s, size_t len)
{
    size_t n;
    uint32_t min;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        n = 2;
        min = 0x80;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        n = 3;
        min = 0x800;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        n = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n > len)
        return 0;
    uint32_t cp = s[0] & (0x7f >> n);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

void json_put_str(struct buf *b, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    buf_append(b, "\"", 1);
    for (size_t i = 0; i < len;) {
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            buf_append(b, "\\", 1);
            buf_append(b, &s[i++], 1);
        } else if (c < 0x20) {
            buf_printf(b, "\\u%04x", c);
            i++;
        } else if (c < 0x80) {
            buf_append(b, &s[i++], 1);
        } else {
            size_t n = utf8_len(s + i, len - i);
            if (n) {
                buf_append(b, s + i, n);
                i += n;
            } else {
                buf_append_str(b, "\\ufffd");
                i++;
            }
        }
    }
    buf_append(b, "\"", 1);
}

void json_put_cstr(struct buf *b, const char *s)
{
    if (s)
        json_put_str(b, s, strlen(s));
    else
        buf_append_str(b, "null");
}
