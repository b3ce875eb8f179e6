/* src/retr/watch.c — watch mode: inotify on every directory of the root;
 * changed files are re-indexed one by one (mc_retr_update_file). A change to
 * a .gitignore, a new or moved directory, or an event-queue overflow triggers
 * a full sync (still incremental: unchanged files are not re-read).
 * It does not save the index (the caller decides when). */
#include "retr_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <dirent.h>

struct mc_retr_watch {
    mc_retr_index *ix;
    int fd;
    char **dirs; /* wd -> root-relative dir ("" = root); NULL if unused */
    int n_dirs;
};

/* IN_ONLYDIR | IN_DONT_FOLLOW: a directory replaced by a symbolic link between
 * the lstat and the watch is not watched through the link (the workspace
 * boundary; the re-index of a changed file goes through mc_retr_update_file,
 * which refuses paths that leave the root). */
#define WATCH_MASK                                                                          \
    (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE | IN_DELETE_SELF | \
     IN_ONLYDIR | IN_DONT_FOLLOW)

static int add_watch(mc_retr_watch *w, const char *rel) {
    char full[PATH_MAX];
    if ((size_t)snprintf(full, sizeof full, "%s%s%s", w->ix->root, *rel ? "/" : "", rel) >= sizeof full)
        return 0;
    int wd = inotify_add_watch(w->fd, full, WATCH_MASK);
    if (wd < 0)
        return errno == ENOSPC ? MC_EFULL : 0;
    if (wd >= w->n_dirs) {
        int n = MC_MAX(wd + 1, w->n_dirs * 2);
        char **nd = realloc(w->dirs, (size_t)n * sizeof *nd);
        if (!nd)
            return MC_ENOMEM;
        for (int i = w->n_dirs; i < n; i++)
            nd[i] = NULL;
        w->dirs = nd;
        w->n_dirs = n;
    }
    free(w->dirs[wd]);
    w->dirs[wd] = strdup(rel);
    if (!w->dirs[wd])
        return MC_ENOMEM;
    /* subdirectories (skipping the same ones the walk skips) */
    DIR *d = opendir(full);
    if (!d)
        return 0;
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char sub[PATH_MAX], subfull[PATH_MAX];
        if ((size_t)snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", de->d_name) >= sizeof sub ||
            (size_t)snprintf(subfull, sizeof subfull, "%s/%s", w->ix->root, sub) >= sizeof subfull)
            continue;
        struct stat st;
        if (lstat(subfull, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        if (!strcmp(de->d_name, "node_modules") || !strcmp(de->d_name, "__pycache__"))
            continue;
        rc = add_watch(w, sub);
    }
    closedir(d);
    return rc;
}

int mc_retr_watch_open(mc_retr_watch **out, mc_retr_index *ix, mc_err *err) {
    *out = NULL;
    mc_retr_watch *w = calloc(1, sizeof *w);
    if (!w)
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    w->ix = ix;
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd < 0) {
        free(w);
        return mc_err_set(err, MC_EIO, -1, "inotify: %s", strerror(errno));
    }
    int rc = add_watch(w, "");
    if (rc) {
        mc_retr_watch_close(w);
        return mc_err_set(err, rc, -1,
                          rc == MC_EFULL ? "inotify: out of watches (raise "
                                           "fs.inotify.max_user_watches)"
                                         : "out of memory");
    }
    *out = w;
    return 0;
}

void mc_retr_watch_close(mc_retr_watch *w) {
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    for (int i = 0; i < w->n_dirs; i++)
        free(w->dirs[i]);
    free(w->dirs);
    free(w);
}

int mc_retr_watch_fd(const mc_retr_watch *w) { return w->fd; }

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int mc_retr_watch_poll(mc_retr_watch *w, int timeout_ms, mc_err *err) {
    struct pollfd pfd = {w->fd, POLLIN, 0};
    int pr = poll(&pfd, 1, timeout_ms);
    if (pr < 0 && errno != EINTR)
        return mc_err_set(err, MC_EIO, -1, "poll: %s", strerror(errno));
    if (pr <= 0)
        return 0;
    char **changed = NULL;
    int n = 0, cap = 0, full_sync = 0, rc = 0;
    char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t len = read(w->fd, buf, sizeof buf);
        if (len < 0 && errno == EINTR)
            continue;
        if (len <= 0)
            break;
        for (char *p = buf; p < buf + len;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            p += sizeof *ev + ev->len;
            if (ev->mask & IN_Q_OVERFLOW) {
                full_sync = 1;
                continue;
            }
            if (ev->wd < 0 || ev->wd >= w->n_dirs || !w->dirs[ev->wd])
                continue;
            if (ev->mask & (IN_IGNORED | IN_DELETE_SELF)) {
                free(w->dirs[ev->wd]);
                w->dirs[ev->wd] = NULL;
                continue;
            }
            if (!ev->len)
                continue;
            const char *dir = w->dirs[ev->wd];
            char rel[PATH_MAX];
            if ((size_t)snprintf(rel, sizeof rel, "%s%s%s", dir, *dir ? "/" : "", ev->name) >= sizeof rel)
                continue;
            if (ev->mask & IN_ISDIR) {
                if (ev->mask & (IN_CREATE | IN_MOVED_TO)) {
                    if (ev->name[0] != '.' && add_watch(w, rel) == MC_ENOMEM) {
                        rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
                        goto out;
                    }
                }
                full_sync = 1; /* files appeared or vanished with it */
                continue;
            }
            if (!strcmp(ev->name, ".gitignore")) {
                full_sync = 1;
                continue;
            }
            if (ev->mask & IN_CREATE)
                continue; /* the IN_CLOSE_WRITE that follows carries the content */
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                char **nc = realloc(changed, (size_t)cap * sizeof *nc);
                if (!nc) {
                    rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
                    goto out;
                }
                changed = nc;
            }
            changed[n] = strdup(rel);
            if (!changed[n]) {
                rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
                goto out;
            }
            n++;
        }
    }
    if (full_sync) {
        mc_retr_sync_stats st;
        rc = mc_retr_sync(w->ix, &st, err);
        if (rc == 0)
            rc = st.n_indexed + st.n_removed;
        goto out;
    }
    if (n > 1) /* qsort must not get a NULL array, even empty */
        qsort(changed, (size_t)n, sizeof *changed, cmp_str);
    int n_changed = 0;
    for (int i = 0; i < n; i++) {
        if (i > 0 && !strcmp(changed[i], changed[i - 1]))
            continue;
        int r = mc_retr_update_file(w->ix, changed[i], err);
        if (r == MC_EACCES) { /* a link out of the root: reported (on_outside), not indexed; */
            n_changed++;      /* it may have been indexed before: the index changed */
            continue;
        }
        if (r == MC_ENOMEM) {
            rc = r;
            goto out;
        }
        if (r > 0)
            n_changed++;
    }
    rc = n_changed;
out:
    for (int i = 0; i < n; i++)
        free(changed[i]);
    free(changed);
    return rc;
}
