/* mccom/file.h — files on the ground floor: crash-safe replacement, whole-file
 * reads, reads confined to a directory tree (the workspace boundary), and the
 * per-user cache directory. Every module that writes or reads a file on behalf
 * of a repository goes through here; none opens its own temp files.
 *
 * ---- crash-safe replacement (mc_file_tmp_*, mc_file_replace) ----------------
 * Writing PATH:
 *   1. a temp file is created in PATH's directory with a unique name
 *      ".BASE.XXXXXXXXXXXXXXXX.tmp" (16 random hex digits) by
 *      open(O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode): it is
 *      always a new file, never a planted file or symbolic link (a name that
 *      exists is skipped and another drawn);
 *   2. the data is written, fsync'd and the file closed;
 *   3. rename(temp, PATH) replaces PATH atomically (a symbolic link at PATH is
 *      replaced, never written through);
 *   4. PATH's directory is fsync'd, so that the rename itself survives a crash.
 * A crash (kill -9, power loss) at any point leaves PATH with its old content
 * or its new content, never a mix or a truncated file; at worst a stray temp
 * file, recognisable by its name. Two processes writing the same PATH never
 * share a temp file: each rename installs one complete version (the last
 * one wins). The file gets `mode` (e.g. 0600 for caches, 0644 for models)
 * minus the umask, from its creation on: there is no moment when it is more
 * readable than that.
 *
 * ---- the workspace boundary (mc_file_open_in, mc_file_read_in) --------------
 * A repository is untrusted: a file in it may be a symbolic link to
 * ~/.ssh/id_rsa. A read "in" a root resolves the path (realpath), refuses it
 * with MC_EACCES unless the result lies inside the root's real path, then opens
 * it component by component from the root with O_NOFOLLOW, so that a link
 * swapped in after the check is refused too (no time-of-check/time-of-use
 * window). Symbolic links whose target stays inside the root are followed.
 * Only regular files are opened (never a FIFO or a device).
 */
#ifndef MCCOM_FILE_H
#define MCCOM_FILE_H

#include "mccom/common.h"

#include <stdio.h>
#include <sys/types.h>

/* A file being written in place of another (caller-owned; see above). */
typedef struct mc_file_tmp {
    FILE *f;    /* buffered stream over the temp file (write-only, seekable); NULL when closed */
    char *path; /* the target, owned */
    char *tmp;  /* the temp file's path, owned */
} mc_file_tmp;

/* Create the temp file for `path` (steps 1 above). On success t->f is ready for
 * writing; finish with mc_file_tmp_commit or mc_file_tmp_abort. Errors: MC_EIO
 * (the directory is missing or not writable; message names the path),
 * MC_ENOMEM. On failure t is closed (abort is a no-op on it). */
int mc_file_tmp_open(mc_file_tmp *t, const char *path, mode_t mode, mc_err *err);

/* Flush, fsync, close, rename over the target, fsync its directory. Returns 0
 * or MC_EIO (a write error seen on the stream, a full disk, a failed rename):
 * then the target is untouched and the temp file removed. t is closed either
 * way. */
int mc_file_tmp_commit(mc_file_tmp *t, mc_err *err);

/* Close and remove the temp file; the target is untouched. No-op on a closed t. */
void mc_file_tmp_abort(mc_file_tmp *t);

/* Replace `path` with data[0..len) by the protocol above. 0, MC_EIO or MC_ENOMEM. */
int mc_file_replace(const char *path, const void *data, size_t len, mode_t mode, mc_err *err);

/* fsync the directory that holds `path` (after a rename or an unlink done by
 * hand). 0 or MC_EIO; filesystems that cannot sync a directory count as done. */
int mc_file_sync_dir(const char *path, mc_err *err);

/* ---- reading ---------------------------------------------------------------- */

/* Read a whole regular file into a malloc'd, NUL-terminated buffer (*out;
 * *len bytes before the NUL; caller frees). A file larger than max_bytes
 * (0: no limit) is MC_ERANGE without being read. Errors: MC_ENOTFOUND,
 * MC_EIO (unreadable, not a regular file), MC_ERANGE, MC_ENOMEM; *out is NULL
 * then. A file that grows while read is read to its end. */
int mc_file_read_all(const char *path, size_t max_bytes, char **out, size_t *len, mc_err *err);

/* The real path of the directory `root` (realpath, no trailing '/'), malloc'd,
 * for the functions below. NULL (err set: MC_ENOTFOUND, MC_EIO) if it is not a
 * directory. */
char *mc_file_root_real(const char *root, mc_err *err);

/* Open `path` for reading if, symbolic links resolved, it is a regular file
 * inside `root_real` (from mc_file_root_real). `path` is absolute or relative
 * to the current directory (callers pass ROOT/REL). *fd gets an O_RDONLY |
 * O_CLOEXEC descriptor (caller closes). Errors: MC_ENOTFOUND (no such file),
 * MC_EACCES (it lies outside the root, or the tree changed under the open: a
 * link appeared), MC_EIO (not a regular file, unreadable). */
int mc_file_open_in(const char *root_real, const char *path, int *fd, mc_err *err);

/* mc_file_open_in, then read it all as mc_file_read_all. */
int mc_file_read_in(const char *root_real, const char *path, size_t max_bytes, char **out,
                    size_t *len, mc_err *err);

/* 1 if `path` (absolute or relative, it need not exist) resolves inside
 * root_real: every directory on the way and, when it exists, the file itself
 * after resolving links. 0 if it leaves the root; a negative code when it
 * cannot be told (MC_EIO). */
int mc_file_inside(const char *root_real, const char *path);

/* ---- the cache directory ------------------------------------------------------ */

/* The directory where mccom keeps what it derives from the workspace `root`
 * (its retrieval index): BASE/<16 hex digits of a 64-bit hash of root's real
 * path>, where BASE is $MCCOM_CACHE_DIR if set, else $XDG_CACHE_HOME/mccom
 * (an absolute $XDG_CACHE_HOME only, as the XDG spec says), else
 * $HOME/.cache/mccom. BASE and the directory are created with mode 0700 when
 * missing; the directory must be a real directory (not a symbolic link) owned
 * by this user, else MC_EACCES. The path goes into out[0..cap). Never inside
 * the workspace unless BASE is put there. Errors: MC_ENOTFOUND (root missing,
 * no HOME), MC_EIO, MC_EACCES, MC_ERANGE (cap too small). */
int mc_file_cache_dir(const char *root, char *out, size_t cap, mc_err *err);

#endif
