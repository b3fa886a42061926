/*
 * log: the level is an atomic so any thread may read it without a lock; the
 * role is thread-local so it needs none. Each line is formatted into a local
 * buffer first and written with one fputs, which stdio locks internally.
 */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

static atomic_int g_level = LOG_WARN;
static _Atomic(void (*)(void)) g_hook;
static _Thread_local char t_role[48] = "main";

void log_set_level(enum log_level level)
{
    atomic_store(&g_level, (int)level);
}

enum log_level log_get_level(void)
{
    return (enum log_level)atomic_load(&g_level);
}

void log_set_role(const char *role)
{
    snprintf(t_role, sizeof t_role, "%s", role);
}

void log_set_hook(void (*before_line)(void))
{
    atomic_store(&g_hook, before_line);
}

static const char *level_name(enum log_level level)
{
    switch (level) {
    case LOG_ERROR: return "error";
    case LOG_WARN: return "warn";
    case LOG_INFO: return "info";
    case LOG_DEBUG: return "debug";
    }
    return "?";
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if ((int)level > atomic_load(&g_level))
        return;
    char line[1024];
    int n = snprintf(line, sizeof line, "[%s] %s: ", t_role, level_name(level));
    if (n < 0 || (size_t)n >= sizeof line)
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = strlen(line);
    line[len] = '\n';
    line[len + 1] = '\0';
    void (*hook)(void) = atomic_load(&g_hook);
    if (hook)
        hook();
    fputs(line, stderr);
}
