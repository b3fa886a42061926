#include "progress.h"

#include <stdio.h>
#include <unistd.h>

#include "log.h"
#include "units.h"

/* Runs on any thread before a log line: erase the status line so the log
 * line starts clean; the next update redraws it. Stateless, so no race. */
static void erase_status_line(void)
{
    fputs("\r\033[K", stderr);
}

void progress_init(struct progress *p, bool enabled, int64_t now_ms)
{
    p->enabled = enabled;
    p->tty = isatty(STDERR_FILENO);
    p->last_ms = now_ms;
    p->last_bytes = 0;
    p->rate = 0;
    p->line_drawn = false;
    if (enabled && p->tty)
        log_set_hook(erase_status_line);
}

void progress_clear(struct progress *p)
{
    if (p->line_drawn) {
        fputs("\r\033[K", stderr);
        p->line_drawn = false;
    }
}

void progress_update(struct progress *p, const struct progress_sample *s, int64_t now_ms,
                     bool force)
{
    int64_t interval = p->tty ? PROGRESS_TTY_INTERVAL_MS : PROGRESS_LOG_INTERVAL_MS;
    int64_t dt = now_ms - p->last_ms;
    if (!p->enabled || (!force && dt < interval) || dt <= 0)
        return;
    double inst = (double)(s->received - p->last_bytes) * 1000.0 / (double)dt;
    /* Smooth over about a second on a TTY so the figure is readable. */
    p->rate = p->rate == 0 ? inst : 0.7 * p->rate + 0.3 * inst;
    p->last_ms = now_ms;
    p->last_bytes = s->received;
    char done[UNITS_STRLEN], total[UNITS_STRLEN], rate[UNITS_STRLEN], eta[UNITS_STRLEN];
    int64_t left_s = p->rate > 1 ? (int64_t)((double)(s->total - s->done) / p->rate) : -1;
    double pct = s->total ? 100.0 * (double)s->done / (double)s->total : 100.0;
    fprintf(stderr, "%s%5.1f%%  %s / %s  %s/s  peers %u/%u  ETA %s%s", p->tty ? "\r\033[K" : "",
            pct, units_bytes(s->done, done), units_bytes(s->total, total),
            units_bytes((uint64_t)p->rate, rate), s->peers_connected, s->peers_known,
            units_duration(left_s, eta), p->tty ? "" : "\n");
    p->line_drawn = p->tty;
    fflush(stderr);
}
