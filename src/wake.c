/*
 * wake: the self-pipe of wake.h. pipe() and fcntl() rather than pipe2(),
 * which older BSDs and macOS lack.
 */
#include "wake.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

static bool set_flags(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0 &&
           fcntl(fd, F_SETFD, FD_CLOEXEC) == 0;
}

bool wake_open(struct wake *w)
{
    int fd[2];
    w->rd = w->wr = -1;
    if (pipe(fd) != 0)
        return false;
    if (!set_flags(fd[0]) || !set_flags(fd[1])) {
        close(fd[0]);
        close(fd[1]);
        return false;
    }
    w->rd = fd[0];
    w->wr = fd[1];
    return true;
}

void wake_close(struct wake *w)
{
    if (w->rd >= 0)
        close(w->rd);
    if (w->wr >= 0)
        close(w->wr);
    w->rd = w->wr = -1;
}

void wake_set(const struct wake *w)
{
    if (w->wr < 0)
        return;
    int saved = errno; /* a signal handler must leave errno as it found it */
    ssize_t n = write(w->wr, "w", 1);
    (void)n; /* EAGAIN: full, so readable already */
    errno = saved;
}

int wake_fd(const struct wake *w)
{
    return w->rd;
}

void wake_drain(const struct wake *w)
{
    char buf[64];
    if (w->rd < 0)
        return;
    while (read(w->rd, buf, sizeof buf) > 0) {
    }
}
