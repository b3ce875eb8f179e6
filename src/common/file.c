/* src/common/file.c — crash-safe replacement, whole-file reads, reads confined
 * to a root, the cache directory (include/mccom/file.h has the contracts).
 *
 * It never follows a symbolic link when it creates a file, never reuses a temp
 * name, and never reads outside a root it was given. It does not lock: two
 * writers of one target each install a complete version, the last one wins.
 */
#include "mccom/file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- crash-safe replacement ------------------------------------------------------- */

/* 64 random bits for a temp name: the kernel's, else the clock mixed with the
 * pid and a stack address (uniqueness, not secrecy, is what matters: O_EXCL
 * refuses a name that exists). */
static uint64_t temp_bits(void) {
    uint64_t x = 0;
    if (getrandom(&x, sizeof x, GRND_NONBLOCK) == (ssize_t)sizeof x)
        return x;
    x = (uint64_t)mc_time_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)&x;
    x ^= x >> 31;
    x *= 0x9E3779B97F4A7C15ull;
    return x ^ (x >> 29);
}

/* Split `path` into its directory ("." when none) and base name. */
static int split_path(const char *path, char **dir, const char **base) {
    const char *slash = strrchr(path, '/');
    *base = slash ? slash + 1 : path;
    size_t dl = slash ? (size_t)(slash - path) : 0;
    if (slash && dl == 0)
        dl = 1; /* "/name": the root directory */
    *dir = slash ? strndup(path, dl) : strdup(".");
    return *dir ? 0 : MC_ENOMEM;
}

void mc_file_tmp_abort(mc_file_tmp *t) {
    if (!t)
        return;
    if (t->f)
        fclose(t->f);
    if (t->tmp)
        unlink(t->tmp);
    free(t->tmp);
    free(t->path);
    t->f = NULL;
    t->tmp = NULL;
    t->path = NULL;
}

int mc_file_tmp_open(mc_file_tmp *t, const char *path, mode_t mode, mc_err *err) {
    memset(t, 0, sizeof *t);
    if (!path || !*path)
        return mc_err_set(err, MC_EINVAL, -1, "no file name to write");
    const char *base;
    char *dir;
    if (split_path(path, &dir, &base))
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    if (!*base) {
        free(dir);
        return mc_err_set(err, MC_EINVAL, -1, "%s: a directory, not a file name", path);
    }
    size_t cap = strlen(dir) + strlen(base) + 32;
    t->path = strdup(path);
    t->tmp = malloc(cap);
    if (!t->path || !t->tmp) {
        free(dir);
        mc_file_tmp_abort(t);
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    }
    int fd = -1, e = 0;
    for (int attempt = 0; attempt < 64; attempt++) {
        snprintf(t->tmp, cap, "%s/.%s.%016llx.tmp", dir, base, (unsigned long long)temp_bits());
        fd = open(t->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        if (fd >= 0 || errno != EEXIST)
            break;
    }
    e = errno;
    free(dir);
    if (fd < 0) {
        int rc = mc_err_set(err, MC_EIO, -1, "cannot create a temp file beside %s: %s", path,
                            strerror(e));
        free(t->tmp); /* nothing was created: nothing to unlink */
        t->tmp = NULL;
        mc_file_tmp_abort(t);
        return rc;
    }
    t->f = fdopen(fd, "wb");
    if (!t->f) {
        e = errno;
        close(fd);
        mc_file_tmp_abort(t);
        return mc_err_set(err, e == ENOMEM ? MC_ENOMEM : MC_EIO, -1, "%s: %s", path, strerror(e));
    }
    return 0;
}

int mc_file_sync_dir(const char *path, mc_err *err) {
    const char *base;
    char *dir;
    if (split_path(path, &dir, &base))
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;
    if (fd < 0) {
        rc = mc_err_set(err, MC_EIO, -1, "cannot open directory %s: %s", dir, strerror(errno));
    } else {
        /* EINVAL/EROFS: this filesystem cannot sync a directory; nothing to do */
        if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS)
            rc = mc_err_set(err, MC_EIO, -1, "cannot sync directory %s: %s", dir, strerror(errno));
        close(fd);
    }
    free(dir);
    return rc;
}

int mc_file_tmp_commit(mc_file_tmp *t, mc_err *err) {
    if (!t || !t->f)
        return mc_err_set(err, MC_EINVAL, -1, "no file being written");
    int bad = ferror(t->f) != 0;
    int e = bad ? EIO : 0;
    if (!bad && fflush(t->f) != 0) {
        bad = 1;
        e = errno;
    }
    if (!bad && fsync(fileno(t->f)) != 0) {
        bad = 1;
        e = errno;
    }
    if (fclose(t->f) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    t->f = NULL;
    int rc = 0;
    if (bad) {
        rc = mc_err_set(err, MC_EIO, -1, "writing %s failed: %s", t->path, strerror(e));
    } else if (rename(t->tmp, t->path) != 0) {
        rc = mc_err_set(err, MC_EIO, -1, "cannot replace %s: %s", t->path, strerror(errno));
    } else {
        free(t->tmp); /* renamed: nothing left to remove */
        t->tmp = NULL;
        rc = mc_file_sync_dir(t->path, err);
    }
    mc_file_tmp_abort(t);
    return rc;
}

int mc_file_replace(const char *path, const void *data, size_t len, mode_t mode, mc_err *err) {
    mc_file_tmp t;
    int rc = mc_file_tmp_open(&t, path, mode, err);
    if (rc)
        return rc;
    if (len > 0 && fwrite(data, 1, len, t.f) != len) {
        int e = errno;
        mc_file_tmp_abort(&t);
        return mc_err_set(err, MC_EIO, -1, "writing %s failed: %s", path, strerror(e));
    }
    return mc_file_tmp_commit(&t, err);
}

/* ---- reading ---------------------------------------------------------------------------- */

/* Read an open regular file to its end (closes fd). */
static int read_fd(int fd, const char *path, size_t max_bytes, char **out, size_t *len,
                   mc_err *err) {
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return mc_err_set(err, MC_EIO, -1, "%s: not a regular file", path);
    }
    if (max_bytes && (uint64_t)st.st_size > (uint64_t)max_bytes) {
        close(fd);
        return mc_err_set(err, MC_ERANGE, -1, "%s: %lld bytes, more than the limit of %zu", path,
                          (long long)st.st_size, max_bytes);
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        close(fd);
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory reading %s", path);
    }
    for (;;) {
        if (n + 1 == cap) { /* the file grew while we read it */
            if (max_bytes && n >= max_bytes) {
                free(buf);
                close(fd);
                return mc_err_set(err, MC_ERANGE, -1, "%s: grew past the limit of %zu bytes",
                                  path, max_bytes);
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                close(fd);
                return mc_err_set(err, MC_ENOMEM, -1, "out of memory reading %s", path);
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return mc_err_set(err, MC_EIO, -1, "%s: %s", path, strerror(e));
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

int mc_file_read_all(const char *path, size_t max_bytes, char **out, size_t *len, mc_err *err) {
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return mc_err_set(err, errno == ENOENT || errno == ENOTDIR ? MC_ENOTFOUND : MC_EIO, -1,
                          "%s: %s", path, strerror(errno));
    /* O_NONBLOCK only kept a FIFO from blocking the open; regular files ignore it */
    return read_fd(fd, path, max_bytes, out, len, err);
}

char *mc_file_root_real(const char *root, mc_err *err) {
    char *r = root ? realpath(root, NULL) : NULL;
    if (!r) {
        mc_err_set(err, errno == ENOENT || errno == ENOTDIR ? MC_ENOTFOUND : MC_EIO, -1,
                   "%s: %s", root ? root : "(null)", strerror(errno));
        return NULL;
    }
    struct stat st;
    if (stat(r, &st) != 0 || !S_ISDIR(st.st_mode)) {
        mc_err_set(err, MC_ENOTFOUND, -1, "%s: not a directory", root);
        free(r);
        return NULL;
    }
    return r;
}

/* The part of `resolved` below root_real ("" for the root itself), or NULL
 * when it is not inside. */
static const char *below(const char *root_real, const char *resolved) {
    size_t n = strlen(root_real);
    if (n == 1 && root_real[0] == '/') /* the root is "/": everything is inside */
        return resolved + 1;
    if (strncmp(resolved, root_real, n) != 0)
        return NULL;
    if (resolved[n] == '\0')
        return resolved + n;
    return resolved[n] == '/' ? resolved + n + 1 : NULL;
}

int mc_file_open_in(const char *root_real, const char *path, int *fd, mc_err *err) {
    *fd = -1;
    char *res = realpath(path, NULL);
    if (!res)
        return mc_err_set(err, errno == ENOENT || errno == ENOTDIR ? MC_ENOTFOUND : MC_EIO, -1,
                          "%s: %s", path, strerror(errno));
    const char *rel = below(root_real, res);
    if (!rel || !*rel) {
        int rc = mc_err_set(err, MC_EACCES, -1, "%s: leads outside %s (a symbolic link); not read",
                            path, root_real);
        free(res);
        return rc;
    }
    /* Walk the resolved path from the root without following anything: a
     * link swapped in since realpath looked is refused (ELOOP/ENOTDIR). */
    int dfd = open(root_real, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;
    if (dfd < 0) {
        rc = mc_err_set(err, MC_EIO, -1, "%s: %s", root_real, strerror(errno));
        free(res);
        return rc;
    }
    char *work = strdup(rel);
    if (!work) {
        close(dfd);
        free(res);
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    }
    char *comp = work;
    for (;;) {
        char *slash = strchr(comp, '/');
        if (!slash)
            break;
        *slash = '\0';
        int nfd = openat(dfd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int e = errno;
        close(dfd);
        dfd = nfd;
        if (dfd < 0) {
            rc = mc_err_set(err, e == ENOENT ? MC_ENOTFOUND : e == ELOOP || e == ENOTDIR ? MC_EACCES : MC_EIO,
                            -1, "%s: %s", path, e == ELOOP || e == ENOTDIR
                                                    ? "a directory on the way became a symbolic link; not read"
                                                    : strerror(e));
            break;
        }
        comp = slash + 1;
    }
    if (rc == 0) {
        struct stat st;
        if (fstatat(dfd, comp, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            rc = mc_err_set(err, errno == ENOENT ? MC_ENOTFOUND : MC_EIO, -1, "%s: %s", path,
                            strerror(errno));
        } else if (S_ISLNK(st.st_mode)) {
            rc = mc_err_set(err, MC_EACCES, -1, "%s: became a symbolic link; not read", path);
        } else if (!S_ISREG(st.st_mode)) {
            rc = mc_err_set(err, MC_EIO, -1, "%s: not a regular file", path);
        } else {
            *fd = openat(dfd, comp, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
            if (*fd < 0)
                rc = mc_err_set(err, errno == ELOOP ? MC_EACCES : errno == ENOENT ? MC_ENOTFOUND : MC_EIO,
                                -1, "%s: %s", path, strerror(errno));
        }
        close(dfd);
    }
    free(work);
    free(res);
    return rc;
}

int mc_file_read_in(const char *root_real, const char *path, size_t max_bytes, char **out,
                    size_t *len, mc_err *err) {
    *out = NULL;
    *len = 0;
    int fd;
    int rc = mc_file_open_in(root_real, path, &fd, err);
    if (rc)
        return rc;
    return read_fd(fd, path, max_bytes, out, len, err);
}

int mc_file_inside(const char *root_real, const char *path) {
    char *res = realpath(path, NULL);
    if (res) {
        int in = below(root_real, res) != NULL;
        free(res);
        return in;
    }
    if (errno != ENOENT)
        return errno == ENOTDIR ? 0 : MC_EIO;
    /* it does not exist (yet): its directory decides */
    const char *base;
    char *dir;
    if (split_path(path, &dir, &base))
        return MC_ENOMEM;
    int in = mc_file_inside(root_real, dir);
    free(dir);
    return in;
}

/* ---- the cache directory ---------------------------------------------------------------- */

static int mkdir_p(char *path, mode_t mode) {
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int r = mkdir(path, mode);
        *p = '/';
        if (r != 0 && errno != EEXIST)
            return -1;
    }
    return mkdir(path, mode) != 0 && errno != EEXIST ? -1 : 0;
}

int mc_file_cache_dir(const char *root, char *out, size_t cap, mc_err *err) {
    char base[PATH_MAX];
    const char *env = getenv("MCCOM_CACHE_DIR");
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    int k;
    if (env && *env)
        k = snprintf(base, sizeof base, "%s", env);
    else if (xdg && xdg[0] == '/')
        k = snprintf(base, sizeof base, "%s/mccom", xdg);
    else if (home && home[0] == '/')
        k = snprintf(base, sizeof base, "%s/.cache/mccom", home);
    else
        return mc_err_set(err, MC_ENOTFOUND, -1,
                          "no cache directory: set MCCOM_CACHE_DIR, XDG_CACHE_HOME or HOME "
                          "(or give the index file with --index)");
    if (k < 0 || (size_t)k >= sizeof base)
        return mc_err_set(err, MC_ERANGE, -1, "the cache directory's path is too long");
    char *real = mc_file_root_real(root, err);
    if (!real)
        return err ? err->code : MC_ENOTFOUND;
    /* FNV-1a 64 of the root's real path: one directory per workspace, however
     * it is spelled; a collision only costs a rebuild (the index records its root) */
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)real; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ull;
    }
    free(real);
    k = snprintf(out, cap, "%s/%016llx", base, (unsigned long long)h);
    if (k < 0 || (size_t)k >= cap)
        return mc_err_set(err, MC_ERANGE, -1, "the cache directory's path is too long");
    if (mkdir_p(out, 0700) != 0)
        return mc_err_set(err, MC_EIO, -1, "cannot create the cache directory %s: %s", out,
                          strerror(errno));
    struct stat st;
    if (lstat(out, &st) != 0)
        return mc_err_set(err, MC_EIO, -1, "%s: %s", out, strerror(errno));
    if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid())
        return mc_err_set(err, MC_EACCES, -1,
                          "the cache directory %s is not a directory of this user; not used", out);
    if (st.st_mode & 077) {
        /* made by someone else's umask or by hand: ours only */
        if (chmod(out, 0700) != 0)
            return mc_err_set(err, MC_EACCES, -1, "cannot make %s private: %s", out,
                              strerror(errno));
    }
    return 0;
}
