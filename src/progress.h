/*
 * progress: what the user sees while a download runs. On a terminal, one
 * status line on stderr redrawn in place; otherwise a plain log line every
 * PROGRESS_LOG_INTERVAL_MS. Main thread only.
 */
#ifndef PT_PROGRESS_H
#define PT_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

#define PROGRESS_TTY_INTERVAL_MS 250
#define PROGRESS_LOG_INTERVAL_MS 5000

struct progress {
    bool enabled;
    bool tty;
    int64_t last_ms;
    uint64_t last_bytes;   /* for the rate: bytes at last_ms */
    double rate;           /* bytes per second, smoothed */
    bool line_drawn;       /* a status line is on screen and must be erased */
};

struct progress_sample {
    uint64_t done, total;  /* verified bytes */
    uint64_t received;     /* bytes received (for the rate) */
    unsigned peers_connected, peers_known;
};

void progress_init(struct progress *p, bool enabled, int64_t now_ms);
/* Redraws if its interval has passed (or force). */
void progress_update(struct progress *p, const struct progress_sample *s, int64_t now_ms,
                     bool force);
/* Erases the status line so other output starts on a clean line. */
void progress_clear(struct progress *p);

#endif
