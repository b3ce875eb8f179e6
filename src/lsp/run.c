/* src/lsp/run.c — serve on two file descriptors (stdin/stdout for `mccom
 * lsp`): read whatever arrives, feed it to the server, tick it for progress.
 * SIGPIPE is ignored so that a client that goes away ends the loop through a
 * failed write (and the end of input), not a signal. */
#include "lsp_internal.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct fd_out {
    int fd;
} fd_out;

static int write_fd(void *ud, const char *data, size_t n) {
    const fd_out *o = ud;
    while (n > 0) {
        ssize_t w = write(o->fd, data, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        data += w;
        n -= (size_t)w;
    }
    return 0;
}

int mc_lsp_run(const mc_lsp_params *p, int in_fd, int out_fd, mc_err *err) {
    signal(SIGPIPE, SIG_IGN);
    fd_out out = {out_fd};
    mc_lsp_server *s;
    int rc = mc_lsp_server_new(p, write_fd, &out, &s, err);
    if (rc != 0)
        return 1;
    enum { BUF = 1 << 16 };
    char *buf = malloc(BUF);
    bool eof = buf == NULL;
    if (!buf)
        mc__lsp_log(s, 0, "out of memory");
    while (!eof) {
        struct pollfd fds[2] = {{in_fd, POLLIN, 0}, {mc_lsp_server_wake_fd(s), POLLIN, 0}};
        int n = poll(fds, 2, mc_lsp_server_tick_ms(s));
        if (n < 0 && errno != EINTR) {
            mc__lsp_log(s, 0, "poll: %s", strerror(errno));
            break;
        }
        if (n > 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t r = read(in_fd, buf, BUF);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                if (r < 0)
                    mc__lsp_log(s, 0, "read: %s", strerror(errno));
                mc__lsp_log(s, 1, "end of input%s", s->shutdown ? "" : " without shutdown");
                eof = true;
            } else if (mc_lsp_server_feed(s, buf, (size_t)r) == 1) {
                break;
            }
        }
        mc_lsp_server_tick(s);
    }
    free(buf);
    int status = mc_lsp_server_exit_code(s);
    mc_lsp_server_free(s);
    return status;
}
