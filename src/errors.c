/*
 * errors: names for every error code. The switch has no `default:` so that
 * -Wswitch flags any code added to the enum without a name here.
 */
#include "errors.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

const char *pt_strerror(enum pt_err err)
{
    switch (err) {
    case PT_OK: return "success";
    case PT_ERR_NOMEM: return "out of memory";
    case PT_ERR_IO: return "input/output error";
    case PT_ERR_NOT_FOUND: return "no such file or directory";
    case PT_ERR_IS_DIR: return "is a directory";
    case PT_ERR_PERMISSION: return "permission denied";
    case PT_ERR_DISK_FULL: return "no space left on device";
    case PT_ERR_USAGE: return "bad usage";
    case PT_ERR_LIMIT: return "size or count over limit";
    case PT_ERR_BENCODE_TRUNCATED: return "bencode: data ends in the middle of a value";
    case PT_ERR_BENCODE_BAD_CHAR: return "bencode: unexpected byte";
    case PT_ERR_BENCODE_LEADING_ZERO: return "bencode: number with a leading zero";
    case PT_ERR_BENCODE_NEGATIVE_ZERO: return "bencode: negative zero";
    case PT_ERR_BENCODE_INT_OVERFLOW: return "bencode: integer out of range";
    case PT_ERR_BENCODE_STRING_LENGTH: return "bencode: string length past the end of the data";
    case PT_ERR_BENCODE_KEY_NOT_STRING: return "bencode: dictionary key is not a string";
    case PT_ERR_BENCODE_DUPLICATE_KEY: return "bencode: duplicate dictionary key";
    case PT_ERR_BENCODE_TRAILING_DATA: return "bencode: trailing data after the value";
    case PT_ERR_BENCODE_TOO_DEEP: return "bencode: nesting too deep";
    case PT_ERR_BENCODE_TOO_MANY_VALUES: return "bencode: too many values";
    case PT_ERR_META_NOT_DICT: return "torrent: not a bencoded dictionary";
    case PT_ERR_META_MISSING: return "torrent: required key missing";
    case PT_ERR_META_BAD_TYPE: return "torrent: key has the wrong type";
    case PT_ERR_META_BAD_VALUE: return "torrent: invalid value";
    case PT_ERR_META_BAD_PIECES: return "torrent: `pieces` length is not a multiple of 20";
    case PT_ERR_META_PIECE_COUNT: return "torrent: piece count does not match the total size";
    case PT_ERR_META_BAD_PATH: return "torrent: unsafe file path";
    case PT_ERR_META_SIZE_OVERFLOW: return "torrent: total size overflows";
    case PT_ERR_TRACKER_UNREACHABLE: return "tracker unreachable";
    case PT_ERR_TRACKER_FAILURE: return "tracker refused the request";
    case PT_ERR_TRACKER_BAD_RESPONSE: return "tracker sent an invalid response";
    case PT_ERR_CONNECT: return "connection failed";
    case PT_ERR_TIMEOUT: return "timed out";
    case PT_ERR_CLOSED: return "connection closed by peer";
    case PT_ERR_HANDSHAKE: return "bad handshake";
    case PT_ERR_PROTOCOL: return "protocol violation";
    case PT_ERR_HASH_MISMATCH: return "piece failed its SHA-1 check";
    case PT_ERR_STOPPED: return "stopped";
    }
    return "unknown error";
}

enum pt_err pt_err_from_errno(int saved_errno)
{
    switch (saved_errno) {
    case ENOMEM: return PT_ERR_NOMEM;
    case ENOENT: case ENOTDIR: return PT_ERR_NOT_FOUND;
    case EISDIR: return PT_ERR_IS_DIR;
    case EACCES: case EPERM: case EROFS: return PT_ERR_PERMISSION;
    case ENOSPC: case EFBIG:
#ifdef EDQUOT
    case EDQUOT:
#endif
        return PT_ERR_DISK_FULL;
    case ETIMEDOUT: case EAGAIN:
#if defined(EWOULDBLOCK) && EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
        return PT_ERR_TIMEOUT;
    case ECONNREFUSED: case EHOSTUNREACH: case ENETUNREACH: return PT_ERR_CONNECT;
    case ECONNRESET: case EPIPE: return PT_ERR_CLOSED;
    default: return PT_ERR_IO;
    }
}

enum pt_err pt_fail(struct pt_errctx *ctx, enum pt_err err, size_t offset, const char *fmt, ...)
{
    if (ctx) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ctx->msg, sizeof ctx->msg, fmt, ap);
        va_end(ap);
        ctx->offset = offset;
    }
    return err;
}
