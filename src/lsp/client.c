/* src/lsp/client.c — the other end of the pipe: start a language server as a
 * child process and exchange framed messages with it. Used by the tests and
 * the benchmark to drive the real `mccom lsp` binary; it knows nothing about
 * the methods. */
#include "lsp_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct mc_lsp_client {
    pid_t pid;
    int to, from;        /* the child's stdin (write end), stdout (read end) */
    mc_lsp_framer *fr;
    bool reaped;
    int status;
};

int mc_lsp_client_spawn(char *const argv[], const char *stderr_path, mc_lsp_client **out,
                        mc_err *err) {
    *out = NULL;
    int in[2], outp[2];
    if (pipe2(in, O_CLOEXEC) != 0)
        return mc_err_set(err, MC_EIO, -1, "pipe: %s", strerror(errno));
    if (pipe2(outp, O_CLOEXEC) != 0) {
        close(in[0]);
        close(in[1]);
        return mc_err_set(err, MC_EIO, -1, "pipe: %s", strerror(errno));
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(in[0]);
        close(in[1]);
        close(outp[0]);
        close(outp[1]);
        return mc_err_set(err, MC_EIO, -1, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(outp[1], 1);
        if (stderr_path) {
            int fd = open(stderr_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (fd >= 0)
                dup2(fd, 2);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    close(in[0]);
    close(outp[1]);
    mc_lsp_client *c = calloc(1, sizeof *c);
    if (!c || !(c->fr = mc_lsp_framer_new(0))) {
        free(c);
        close(in[1]);
        close(outp[0]);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    }
    c->pid = pid;
    c->to = in[1];
    c->from = outp[0];
    signal(SIGPIPE, SIG_IGN);
    *out = c;
    return 0;
}

int mc_lsp_client_send_raw(mc_lsp_client *c, const void *data, size_t n) {
    const char *p = data;
    while (n > 0) {
        if (c->to < 0)
            return MC_EIO;
        ssize_t w = write(c->to, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return MC_EIO;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int mc_lsp_client_send(mc_lsp_client *c, const char *body) {
    char *f;
    size_t n;
    if (mc_lsp_frame(body, strlen(body), &f, &n) != 0)
        return MC_ENOMEM;
    int rc = mc_lsp_client_send_raw(c, f, n);
    free(f);
    return rc;
}

int mc_lsp_client_recv(mc_lsp_client *c, int timeout_ms, char **body, size_t *len) {
    *body = NULL;
    *len = 0;
    double until = timeout_ms >= 0 ? mc_time_s() + timeout_ms * 1e-3 : 0;
    for (;;) {
        const char *b;
        size_t n;
        mc_err err;
        int rc = mc_lsp_framer_next(c->fr, &b, &n, &err);
        if (rc < 0)
            return MC_EFORMAT;
        if (rc == 1) {
            *body = malloc(n + 1);
            if (!*body)
                return MC_ENOMEM;
            memcpy(*body, b, n);
            (*body)[n] = '\0';
            *len = n;
            return 1;
        }
        int wait = -1;
        if (timeout_ms >= 0) {
            double left = until - mc_time_s();
            if (left <= 0)
                return 0;
            wait = (int)(left * 1e3) + 1;
        }
        struct pollfd pf = {c->from, POLLIN, 0};
        int pr = poll(&pf, 1, wait);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr == 0)
            return 0;
        if (pr < 0)
            return MC_EIO;
        char buf[65536];
        ssize_t r = read(c->from, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return MC_EIO;
        if (mc_lsp_framer_feed(c->fr, buf, (size_t)r) != 0)
            return MC_ENOMEM;
    }
}

void mc_lsp_client_close_input(mc_lsp_client *c) {
    if (c->to >= 0)
        close(c->to);
    c->to = -1;
}

int mc_lsp_client_wait(mc_lsp_client *c, int timeout_ms, int *status) {
    double until = mc_time_s() + (timeout_ms > 0 ? timeout_ms : 0) * 1e-3;
    for (;;) {
        if (c->reaped) {
            *status = c->status;
            return 1;
        }
        int st;
        pid_t r = waitpid(c->pid, &st, WNOHANG);
        if (r == c->pid) {
            c->reaped = true;
            c->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            continue;
        }
        if (r < 0 || mc_time_s() >= until)
            return 0;
        usleep(2000);
    }
}

void mc_lsp_client_free(mc_lsp_client *c) {
    if (!c)
        return;
    mc_lsp_client_close_input(c);
    int st;
    if (!c->reaped && mc_lsp_client_wait(c, 2000, &st) == 0) {
        kill(c->pid, SIGKILL);
        waitpid(c->pid, NULL, 0);
    }
    close(c->from);
    mc_lsp_framer_free(c->fr);
    free(c);
}
