/*
 * errors: the one error vocabulary of ptorrent.
 *
 * Every function that can fail returns an `enum pt_err` (PT_OK on success) and
 * gives results through `_out` parameters. Modules never print; they return a
 * code plus, where it helps a user, a `struct pt_errctx` naming what was wrong
 * and where (a byte offset, a field, a file). Only the session and the CLI
 * decide what the user sees.
 *
 * Thread safety: everything here is pure or writes only to caller memory.
 */
#ifndef PT_ERRORS_H
#define PT_ERRORS_H

#include <stddef.h>

enum pt_err {
    PT_OK = 0,
    PT_ERR_NOMEM,
    PT_ERR_IO,            /* read/write failure not covered below */
    PT_ERR_NOT_FOUND,     /* a file that should exist does not */
    PT_ERR_IS_DIR,        /* a directory where a file should be */
    PT_ERR_PERMISSION,    /* EACCES, EPERM, EROFS */
    PT_ERR_DISK_FULL,     /* ENOSPC, EDQUOT, EFBIG */
    PT_ERR_USAGE,         /* bad command line */
    PT_ERR_LIMIT,         /* a size or count over one of our caps */

    /* bencode */
    PT_ERR_BENCODE_TRUNCATED,
    PT_ERR_BENCODE_BAD_CHAR,      /* a byte that cannot start or continue a value */
    PT_ERR_BENCODE_LEADING_ZERO,
    PT_ERR_BENCODE_NEGATIVE_ZERO,
    PT_ERR_BENCODE_INT_OVERFLOW,  /* does not fit in int64_t */
    PT_ERR_BENCODE_STRING_LENGTH, /* length prefix past the end or too large */
    PT_ERR_BENCODE_KEY_NOT_STRING,
    PT_ERR_BENCODE_DUPLICATE_KEY,
    PT_ERR_BENCODE_TRAILING_DATA,
    PT_ERR_BENCODE_TOO_DEEP,
    PT_ERR_BENCODE_TOO_MANY_VALUES,

    /* metainfo (.torrent) */
    PT_ERR_META_NOT_DICT,
    PT_ERR_META_MISSING,    /* a required key is absent */
    PT_ERR_META_BAD_TYPE,   /* a key holds the wrong bencode type */
    PT_ERR_META_BAD_VALUE,  /* right type, impossible value */
    PT_ERR_META_BAD_PIECES, /* `pieces` length not a multiple of 20 */
    PT_ERR_META_PIECE_COUNT,
    PT_ERR_META_BAD_PATH,   /* a path component that could escape the output dir */
    PT_ERR_META_SIZE_OVERFLOW,

    /* tracker */
    PT_ERR_TRACKER_UNREACHABLE, /* connect/HTTP error, timeout */
    PT_ERR_TRACKER_FAILURE,     /* the tracker said `failure reason` */
    PT_ERR_TRACKER_BAD_RESPONSE,

    /* peers and the network */
    PT_ERR_CONNECT,
    PT_ERR_TIMEOUT,
    PT_ERR_CLOSED,     /* the other side closed the connection */
    PT_ERR_HANDSHAKE,  /* wrong protocol string or info hash */
    PT_ERR_PROTOCOL,   /* a message that breaks BEP 3 */
    PT_ERR_HASH_MISMATCH,

    PT_ERR_STOPPED     /* the session is shutting down */
};

/* Context for errors a user must be able to act on. `offset` is a byte
 * offset into the input (or (size_t)-1 when none applies); `msg` names the
 * field, file or value at fault. Callers may pass NULL where they don't care. */
struct pt_errctx {
    size_t offset;
    char msg[256];
};

/* A short, constant description of `err`. Never NULL. */
const char *pt_strerror(enum pt_err err);

/* Maps a saved errno value from a failed system call to our vocabulary. */
enum pt_err pt_err_from_errno(int saved_errno);

/* Records `fmt` into ctx->msg (if ctx is not NULL) and returns `err`, so a
 * parser can write `return pt_fail(ctx, PT_ERR_X, off, "...", ...)`. */
enum pt_err pt_fail(struct pt_errctx *ctx, enum pt_err err, size_t offset, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

#define PT_NO_OFFSET ((size_t)-1)

#endif
