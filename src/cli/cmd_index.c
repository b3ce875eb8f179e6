/* src/cli/cmd_index.c — `mccom index DIR`: build or update the persistent
 * retrieval index of a repository; with --watch, keep it up to date. */
#include "cli.h"
#include "mccom/copy.h"
#include "mccom/file.h"
#include "mccom/retr.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void index_usage(FILE *f) {
    fprintf(f,
            "usage: mccom index DIR [options]\n"
            "  Index the source files of DIR (line windows for retrieval); only files\n"
            "  changed since the last run are re-read.\n"
            "  --index FILE     index file (default: in the user's cache, outside DIR:\n"
            "                   $MCCOM_CACHE_DIR, $XDG_CACHE_HOME/mccom or ~/.cache/mccom)\n"
            "  --window N       lines per window (20)\n"
            "  --stride N       lines between window starts (10)\n"
            "  --include GLOB   index files matching GLOB (repeatable; default: common\n"
            "                   source extensions)\n"
            "  --no-gitignore   do not read .gitignore files\n"
            "  --no-copy        no copy index (the copy tier's, kept beside the index as\n"
            "                   FILE.copy)\n"
            "  --watch          stay running and re-index files as they change (inotify)\n"
            "  --quiet          print only errors\n");
}

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

int mc_cli_index_path(const char *root, const char *given, char *buf, size_t cap) {
    if (given) {
        if ((size_t)snprintf(buf, cap, "%s", given) >= cap) {
            fprintf(stderr, "mccom: --index %s: path too long\n", given);
            return MC_ERANGE;
        }
        return 0;
    }
    mc_err err;
    mc_err_clear(&err);
    char dir[4096];
    int rc = mc_file_cache_dir(root, dir, sizeof dir, &err);
    if (rc == 0 && (size_t)snprintf(buf, cap, "%s/retr.idx", dir) >= cap)
        rc = mc_err_set(&err, MC_ERANGE, -1, "the cache path %s is too long", dir);
    if (rc)
        mc_cli_error("index location", &err);
    return rc;
}

/* A file left out because it leads outside the root: said, never silent. */
static void report_outside(void *ud, const char *relpath) {
    const char *root = ud;
    fprintf(stderr, "index: skipped %s: a symbolic link that leads outside %s (not read)\n",
            relpath, root);
}

/* Shared with cmd_retrieve.c: open the index of `root`, loading `path` when
 * it exists (a bad file is reported and rebuilt), then sync. *changed is set
 * when the index differs from the file. */
int mc_cli_retr_open(mc_retr_index **out, const char *root, const char *path,
                     const mc_retr_params *pp, int quiet, int *changed) {
    mc_err err;
    mc_err_clear(&err);
    *changed = 0;
    mc_retr_params p = pp ? *pp : mc_retr_params_default();
    if (!quiet && !p.on_outside) {
        p.on_outside = report_outside;
        p.on_outside_ud = (void *)root;
    }
    int rc = mc_retr_new(out, root, &p, NULL, &err);
    if (rc) {
        mc_cli_error("index", &err);
        return rc;
    }
    rc = path ? mc_retr_load(*out, path, &err) : MC_ENOTFOUND;
    if (rc == MC_ENOTFOUND) {
        *changed = 1;
    } else if (rc) {
        if (!quiet)
            fprintf(stderr, "mccom: %s; rebuilding the index\n", err.msg);
        *changed = 1;
    }
    mc_retr_sync_stats st;
    double t0 = mc_time_s();
    rc = mc_retr_sync(*out, &st, &err);
    if (rc) {
        mc_cli_error("index", &err);
        mc_retr_free(*out);
        *out = NULL;
        return rc;
    }
    if (st.n_indexed || st.n_removed)
        *changed = 1;
    if (!quiet)
        fprintf(stderr,
                "index: %d files (%d re-indexed, %d unchanged, %d removed, %d skipped, %d outside "
                "the root) in %.3f s\n",
                st.n_seen, st.n_indexed, st.n_unchanged, st.n_removed, st.n_skipped, st.n_outside,
                mc_time_s() - t0);
    else if (st.n_outside)
        fprintf(stderr, "index: %d symbolic link%s leading outside %s skipped (not read)\n",
                st.n_outside, st.n_outside == 1 ? "" : "s", root);
    return 0;
}

int mc_cmd_index(int argc, char **argv) {
    const char *root = NULL, *index = NULL;
    mc_retr_params p = mc_retr_params_default();
    const char **inc = calloc((size_t)argc + 1, sizeof *inc);
    int n_inc = 0, watch = 0, quiet = 0, copy = 1;
    if (!inc)
        return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            index_usage(stdout);
            free(inc);
            return 0;
        } else if (!strcmp(a, "--index") && v) {
            index = v;
            i++;
        } else if (!strcmp(a, "--window") && v) {
            p.window_lines = atoi(v);
            i++;
        } else if (!strcmp(a, "--stride") && v) {
            p.stride = atoi(v);
            i++;
        } else if (!strcmp(a, "--include") && v) {
            inc[n_inc++] = v;
            i++;
        } else if (!strcmp(a, "--no-gitignore")) {
            p.respect_gitignore = 0;
        } else if (!strcmp(a, "--no-copy")) {
            copy = 0;
        } else if (!strcmp(a, "--watch")) {
            watch = 1;
        } else if (!strcmp(a, "--quiet")) {
            quiet = 1;
        } else if (a[0] != '-' && !root) {
            root = a;
        } else {
            fprintf(stderr, "mccom index: unknown or incomplete option '%s'\n", a);
            index_usage(stderr);
            free(inc);
            return 2;
        }
    }
    if (!root) {
        index_usage(stderr);
        free(inc);
        return 2;
    }
    if (n_inc) {
        p.include = inc;
        p.n_include = n_inc;
    }
    char defpath[4096];
    if (mc_cli_index_path(root, index, defpath, sizeof defpath)) {
        free(inc);
        return 1;
    }
    index = defpath;
    double t0 = mc_time_s();
    mc_retr_index *ix;
    int changed;
    if (mc_cli_retr_open(&ix, root, index, &p, quiet, &changed)) {
        free(inc);
        return 1;
    }
    mc_err err;
    int status = 0;
    if (changed && mc_retr_save(ix, index, &err)) {
        mc_cli_error("index", &err);
        status = 1;
    }
    mc_copy_index *cx = NULL;
    if (copy && status == 0 && mc_cli_copy_open(&cx, ix, index, quiet, 1) != 0)
        status = 1;
    if (!quiet && status == 0) {
        mc_retr_stats st;
        mc_retr_get_stats(ix, &st);
        struct stat fs;
        long long fsize = stat(index, &fs) == 0 ? (long long)fs.st_size : -1;
        printf("%s: %d files, %lld lines, %d windows, %d terms, %lld postings; index %s (%.1f MB), "
               "%.3f s\n",
               root, st.n_files, (long long)st.n_lines, st.n_windows, st.n_terms,
               (long long)st.n_postings, index, fsize / 1e6, mc_time_s() - t0);
        if (cx) {
            mc_copy_stats cs;
            mc_copy_get_stats(cx, &cs);
            char cpath[4096];
            mc_copy_path_for(index, cpath, sizeof cpath);
            long long csize = stat(cpath, &fs) == 0 ? (long long)fs.st_size : -1;
            printf("copy index: %lld non-blank lines, %d keys, %lld postings; %s (%.1f MB)\n",
                   (long long)cs.n_lines, cs.n_keys, (long long)cs.n_postings, cpath, csize / 1e6);
        }
    }
    if (watch && status == 0) {
        mc_retr_watch *w;
        if (mc_retr_watch_open(&w, ix, &err)) {
            mc_cli_error("index --watch", &err);
            mc_retr_free(ix);
            free(inc);
            return 1;
        }
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        if (!quiet)
            fprintf(stderr, "index: watching %s (Ctrl-C to stop)\n", root);
        while (!g_stop) {
            double t1 = mc_time_s();
            int n = mc_retr_watch_poll(w, 500, &err);
            if (n < 0) {
                mc_cli_error("index --watch", &err);
                status = 1;
                break;
            }
            if (n == 0)
                continue;
            if (mc_retr_save(ix, index, &err)) {
                mc_cli_error("index --watch", &err);
                status = 1;
                break;
            }
            char cpath[4096];
            if (cx && (mc_copy_sync(cx, NULL, &err) || mc_copy_path_for(index, cpath, sizeof cpath) ||
                       mc_copy_save(cx, cpath, &err))) {
                mc_cli_error("index --watch: copy index", &err);
                status = 1;
                break;
            }
            if (!quiet) {
                printf("re-indexed %d file%s in %.1f ms\n", n, n == 1 ? "" : "s",
                       (mc_time_s() - t1) * 1e3);
                fflush(stdout);
            }
        }
        mc_retr_watch_close(w);
    }
    mc_copy_free(cx);
    mc_retr_free(ix);
    free(inc);
    return status;
}
