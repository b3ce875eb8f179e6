/* src/cli/cmd_retrieve.c — `mccom retrieve`: the top-k windows of a repository
 * for a cursor position (round 1), or for the cursor plus a draft completion
 * (round 2), printed as a list or as the assembled prompt block. */
#include "cli.h"
#include "mccom/file.h"
#include "mccom/retr.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void retrieve_usage(FILE *f) {
    fprintf(f,
            "usage: mccom retrieve --repo DIR --file PATH --line N [options]\n"
            "  Retrieve code windows of DIR similar to the lines above line N (0-based)\n"
            "  of PATH; windows of PATH at or after line N are never returned.\n"
            "  --index FILE     index file (default: in the user's cache, outside DIR;\n"
            "                   built if missing; see mccom index --help)\n"
            "  --draft TEXT     round 2: query with the last n/2 lines plus this draft\n"
            "  --n-lines N      query lines above the cursor (20)\n"
            "  --k N            windows to return (10)\n"
            "  --sim S          jaccard (default) or bm25\n"
            "  --prompt         print the assembled prompt block instead of the list\n"
            "  --budget N       prompt budget in tokens (1000)\n"
            "  --window N, --stride N   window shape (20, 10)\n"
            "  --quiet          no progress on stderr\n");
}

char *mc_cli_read_file(const char *path, size_t *len) {
    char *b = NULL;
    return mc_file_read_all(path, 0, &b, len, NULL) == 0 ? b : NULL;
}

int mc_cmd_retrieve(int argc, char **argv) {
    const char *root = NULL, *index = NULL, *file = NULL, *draft = NULL;
    int line = -1, n_lines = 20, k = 10, prompt = 0, budget = 1000, quiet = 0;
    mc_retr_sim sim = MC_RETR_JACCARD;
    mc_retr_params p = mc_retr_params_default();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            retrieve_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--prompt")) {
            prompt = 1;
            continue;
        }
        if (!strcmp(a, "--quiet")) {
            quiet = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "mccom retrieve: unknown or incomplete option '%s'\n", a);
            retrieve_usage(stderr);
            return 2;
        }
        i++;
        if (!strcmp(a, "--repo"))
            root = v;
        else if (!strcmp(a, "--index"))
            index = v;
        else if (!strcmp(a, "--file"))
            file = v;
        else if (!strcmp(a, "--line"))
            line = atoi(v);
        else if (!strcmp(a, "--draft"))
            draft = v;
        else if (!strcmp(a, "--n-lines"))
            n_lines = atoi(v);
        else if (!strcmp(a, "--k"))
            k = atoi(v);
        else if (!strcmp(a, "--budget"))
            budget = atoi(v);
        else if (!strcmp(a, "--window"))
            p.window_lines = atoi(v);
        else if (!strcmp(a, "--stride"))
            p.stride = atoi(v);
        else if (!strcmp(a, "--sim")) {
            if (mc_retr_sim_parse(v, &sim)) {
                fprintf(stderr, "mccom retrieve: --sim must be jaccard or bm25, not '%s'\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "mccom retrieve: unknown option '%s'\n", a);
            retrieve_usage(stderr);
            return 2;
        }
    }
    if (!root || !file || line < 0 || k < 1 || n_lines < 1) {
        retrieve_usage(stderr);
        return 2;
    }
    /* the file: as given (relative to the working directory), else relative to the repository */
    char fpath[PATH_MAX];
    struct stat st;
    if (file[0] == '/' || stat(file, &st) == 0)
        snprintf(fpath, sizeof fpath, "%s", file);
    else
        snprintf(fpath, sizeof fpath, "%s/%s", root, file);
    size_t flen;
    char *text = mc_cli_read_file(fpath, &flen);
    if (!text) {
        fprintf(stderr, "mccom retrieve: cannot read %s\n", fpath);
        return 1;
    }
    /* its path relative to the repository, for the leakage filter */
    char rroot[PATH_MAX], rfile[PATH_MAX];
    const char *rel = NULL;
    if (realpath(root, rroot) && realpath(fpath, rfile)) {
        size_t n = strlen(rroot);
        if (!strncmp(rfile, rroot, n) && rfile[n] == '/')
            rel = rfile + n + 1;
    }
    if (!rel && !quiet)
        fprintf(stderr, "mccom retrieve: %s is not inside %s; no leakage filter\n", fpath, root);

    char defpath[4096];
    /* without a usable cache the index is built in memory and not kept */
    index = mc_cli_index_path(root, index, defpath, sizeof defpath) == 0 ? defpath : NULL;
    mc_retr_index *ix;
    int changed;
    if (mc_cli_retr_open(&ix, root, index, &p, quiet, &changed)) {
        free(text);
        return 1;
    }
    mc_err err;
    if (changed && index && mc_retr_save(ix, index, &err) && !quiet)
        fprintf(stderr, "mccom retrieve: could not save the index: %s\n", err.msg);

    /* the text above the cursor line */
    size_t end = 0;
    for (int l = 0; l < line && end < flen; l++) {
        const char *nl = memchr(text + end, '\n', flen - end);
        end = nl ? (size_t)(nl - text) + 1 : flen;
    }
    char *qtext;
    size_t qlen;
    int status = 0;
    if (mc_retr_query_text(text, end, n_lines, draft, draft ? strlen(draft) : 0, &qtext, &qlen)) {
        fprintf(stderr, "mccom retrieve: out of memory\n");
        mc_retr_free(ix);
        free(text);
        return 1;
    }
    mc_retr_query q = mc_retr_query_default();
    q.text = qtext;
    q.len = qlen;
    q.file = rel;
    q.cursor_line = line;
    q.k = k;
    q.sim = sim;
    mc_retr_hit *hits = calloc((size_t)k, sizeof *hits);
    double t0 = mc_time_s();
    int n = hits ? mc_retr_search(ix, &q, hits, k, &err) : MC_ENOMEM;
    double dt = mc_time_s() - t0;
    if (n < 0) {
        mc_cli_error("retrieve", &err);
        status = 1;
    } else if (prompt) {
        mc_retr_prompt_params pp = mc_retr_prompt_params_default();
        pp.budget_tokens = budget;
        pp.target_path = fpath;
        char *out;
        size_t olen;
        int used, toks;
        if (mc_retr_prompt(ix, hits, n, &pp, &out, &olen, &used, &toks, &err)) {
            mc_cli_error("retrieve", &err);
            status = 1;
        } else {
            fwrite(out, 1, olen, stdout);
            if (!quiet)
                fprintf(stderr, "retrieve: %d of %d windows, %d tokens (budget %d)\n", used, n,
                        toks, budget);
            free(out);
        }
    } else {
        if (!quiet)
            fprintf(stderr, "retrieve: %d windows in %.3f ms (%s)\n", n, dt * 1e3,
                    sim == MC_RETR_BM25 ? "bm25" : "jaccard");
        for (int i = 0; i < n; i++) {
            printf("%d. %s:%d-%d score %.4f\n", i + 1, hits[i].file, hits[i].start_line + 1,
                   hits[i].start_line + hits[i].n_lines, hits[i].score);
            mc_str w;
            if (mc_retr_window_text(ix, hits[i].file, hits[i].start_line, hits[i].n_lines, &w) == 0) {
                for (size_t a = 0; a <= w.len;) {
                    const char *nl = memchr(w.ptr + a, '\n', w.len - a);
                    size_t e = nl ? (size_t)(nl - w.ptr) : w.len;
                    printf("    %.*s\n", (int)(e - a), w.ptr + a);
                    a = e + 1;
                    if (!nl)
                        break;
                }
            }
        }
    }
    free(hits);
    free(qtext);
    mc_retr_free(ix);
    free(text);
    return status;
}
