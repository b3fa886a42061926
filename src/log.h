/*
 * log: leveled, thread-safe logging to stderr.
 *
 * Each line is tagged with the calling thread's role ("main", "writer",
 * "peer 127.0.0.1:6881", ...), set once per thread with log_set_role(), so a
 * reader can follow one thread through an interleaved log. A line is written
 * with a single fputs under stdio's own stream lock, so lines never mix.
 *
 * Any thread may call any function here. log_set_level() is meant for startup.
 */
#ifndef PT_LOG_H
#define PT_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Messages above `level` are dropped. Default: LOG_WARN. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* Names the calling thread in every line it logs. `role` is copied. */
void log_set_role(const char *role);

/* Called with each line's text before it is written, e.g. so the progress
 * line on a TTY can erase itself first. NULL disables. Must be thread-safe. */
void log_set_hook(void (*before_line)(void));

void log_msg(enum log_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
