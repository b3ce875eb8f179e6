/* bench/bench_retr.c — retrieval benchmark (markdown tables on stdout).
 *
 * 1. Recall@k on the benchmark's line tasks (../shared/bench/line.jsonl):
 *    the share of tasks whose ground-truth line (stripped) is a stripped line
 *    of one of the top-k windows; round 1 = the last 20 lines of the prompt,
 *    round 2 = the last 10 lines + the ground truth as the draft (the upper
 *    bound a small model's draft approaches); Jaccard vs BM25, per repository.
 * 2. Index build time and size, load time, single-file update time and query
 *    latency (p50/p95, one thread) on a large real tree (default
 *    /usr/lib/python3.11).
 *
 * Environment: MC_REPOS (benchmark repositories; default /work/repos, then
 * build/repos; fetched with fetch-repos.sh into build/repos if missing),
 * MC_SHARED (default ../shared, then /work/shared), MC_BENCH_TREE (the large
 * tree), MC_BENCH_TASKS (task file; default line.jsonl), MC_BENCH_K (10).
 */
#include "mccom/retr.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static const char *find_shared(void) {
    static char buf[4096];
    const char *env = getenv("MC_SHARED");
    const char *cands[] = {env, "../shared", "../../shared", "/work/shared"};
    for (size_t i = 0; i < MC_ARRAY_LEN(cands); i++) {
        if (!cands[i] || !*cands[i])
            continue;
        snprintf(buf, sizeof buf, "%s/bench/line.jsonl", cands[i]);
        if (is_file(buf)) {
            snprintf(buf, sizeof buf, "%s", cands[i]);
            return buf;
        }
    }
    return NULL;
}

static const char *repo_names[] = {"mne", "dask", "nltk", "optuna", "biopython", "sqlalchemy",
                                   "sphinx", "breezy"};

static const char *find_repos(const char *shared) {
    static char buf[4096];
    const char *env = getenv("MC_REPOS");
    const char *cands[] = {env, "/work/repos", "build/repos"};
    for (size_t i = 0; i < MC_ARRAY_LEN(cands); i++) {
        if (!cands[i] || !*cands[i])
            continue;
        int ok = 1;
        for (size_t r = 0; r < MC_ARRAY_LEN(repo_names); r++) {
            snprintf(buf, sizeof buf, "%s/%s", cands[i], repo_names[r]);
            ok &= is_dir(buf);
        }
        if (ok) {
            snprintf(buf, sizeof buf, "%s", cands[i]);
            return buf;
        }
    }
    fprintf(stderr, "bench_retr: benchmark repositories not found; fetching them into build/repos "
                    "with %s/bench/fetch-repos.sh\n", shared);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "bash '%s/bench/fetch-repos.sh' build/repos >&2", shared);
    if (system(cmd) != 0) {
        fprintf(stderr, "bench_retr: fetch-repos.sh failed (try apt-get update first)\n");
        return NULL;
    }
    return "build/repos";
}

static int cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(double *v, int n, double p) {
    if (n == 0)
        return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_dbl);
    int i = (int)(p * (n - 1) + 0.5);
    return v[i];
}

/* Strip ASCII whitespace from both ends of s[0..n). */
static mc_str strip(const char *s, size_t n) {
    while (n && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n' || *s == '\f' || *s == '\v')) {
        s++;
        n--;
    }
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n' ||
                 s[n - 1] == '\f' || s[n - 1] == '\v'))
        n--;
    return (mc_str){s, n};
}

/* 1 if the stripped ground truth is a stripped line of the window. */
static int window_has(const mc_retr_index *ix, const mc_retr_hit *h, mc_str gt) {
    mc_str w;
    if (mc_retr_window_text(ix, h->file, h->start_line, h->n_lines, &w))
        return 0;
    for (size_t a = 0; a <= w.len;) {
        const char *nl = memchr(w.ptr + a, '\n', w.len - a);
        size_t e = nl ? (size_t)(nl - w.ptr) : w.len;
        mc_str l = strip(w.ptr + a, e - a);
        if (l.len == gt.len && !memcmp(l.ptr, gt.ptr, gt.len))
            return 1;
        if (!nl)
            break;
        a = e + 1;
    }
    return 0;
}

typedef struct task {
    char *repo, *rel, *prompt, *gt;
    int line_no;
} task;

static task *load_tasks(const char *path, int *n_out) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    task *t = NULL;
    int n = 0, cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while ((len = getline(&line, &lcap, f)) > 0) {
        json_error_t je;
        json_t *o = json_loadb(line, (size_t)len, 0, &je);
        if (!o)
            continue;
        json_t *md = json_object_get(o, "metadata");
        json_t *fp = json_object_get(md, "fpath_tuple");
        const char *prompt = json_string_value(json_object_get(o, "prompt"));
        const char *gt = json_string_value(json_object_get(md, "ground_truth"));
        if (!prompt || !gt || !json_is_array(fp) || json_array_size(fp) < 2) {
            json_decref(o);
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            t = realloc(t, (size_t)cap * sizeof *t);
        }
        char rel[4096] = "";
        size_t k = 0;
        for (size_t i = 1; i < json_array_size(fp); i++)
            k += (size_t)snprintf(rel + k, sizeof rel - k, "%s%s", i > 1 ? "/" : "",
                                  json_string_value(json_array_get(fp, i)));
        t[n].repo = strdup(json_string_value(json_array_get(fp, 0)));
        t[n].rel = strdup(rel);
        t[n].prompt = strdup(prompt);
        t[n].gt = strdup(gt);
        t[n].line_no = (int)json_integer_value(json_object_get(md, "line_no"));
        n++;
        json_decref(o);
    }
    free(line);
    fclose(f);
    *n_out = n;
    return t;
}

static void machine_header(void) {
    struct utsname u;
    uname(&u);
    char model[256] = "?";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char l[512];
        while (fgets(l, sizeof l, f))
            if (!strncmp(l, "model name", 10)) {
                char *c = strchr(l, ':');
                if (c) {
                    snprintf(model, sizeof model, "%s", c + 2);
                    model[strcspn(model, "\n")] = '\0';
                }
                break;
            }
        fclose(f);
    }
    printf("# retrieval benchmark\n\nmachine: %s, %ld CPUs online, %s %s; build: %s; tokenizer: "
           "split-v1 (no model); windows 20 lines, stride 10; one thread\n\n",
           model, sysconf(_SC_NPROCESSORS_ONLN), u.sysname, u.release,
#ifdef __OPTIMIZE__
           "optimized"
#else
           "-O0"
#endif
    );
}

#define N_COMBO 4 /* jaccard r1, jaccard r2, bm25 r1, bm25 r2 */

static int recall_bench(const char *shared, const char *repos, int K) {
    char path[4096];
    const char *tf = getenv("MC_BENCH_TASKS");
    snprintf(path, sizeof path, "%s/bench/%s", shared, tf && *tf ? tf : "line.jsonl");
    int n_tasks;
    task *tasks = load_tasks(path, &n_tasks);
    if (!tasks) {
        fprintf(stderr, "bench_retr: cannot read %s\n", path);
        return 1;
    }
    printf("## Retrieval recall@%d on %s (%d tasks)\n\n", K, path, n_tasks);
    printf("Share of tasks whose ground-truth line (stripped) is a line of one of the top-%d "
           "windows. R1: query = last 20 lines above the cursor; R2: last 10 lines + the ground "
           "truth as the draft (upper bound). Leakage filter on (windows of the task's file that "
           "overlap or follow the target line are never returned).\n\n", K);
    printf("| repo | tasks | files | windows | index s | Jaccard R1 | Jaccard R2 | BM25 R1 | BM25 R2 | query p50 ms | query p95 ms |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    int tot_n = 0, tot_hit[N_COMBO] = {0};
    double *lat = malloc((size_t)n_tasks * N_COMBO * sizeof *lat);
    double *all_lat = malloc((size_t)n_tasks * N_COMBO * sizeof *all_lat);
    int n_all_lat = 0;
    mc_retr_hit *hits = malloc((size_t)K * sizeof *hits);
    for (size_t r = 0; r < MC_ARRAY_LEN(repo_names); r++) {
        char root[4096];
        snprintf(root, sizeof root, "%s/%s", repos, repo_names[r]);
        mc_retr_index *ix;
        mc_err e;
        if (mc_retr_new(&ix, root, NULL, NULL, &e)) {
            fprintf(stderr, "bench_retr: %s\n", e.msg);
            return 1;
        }
        double t0 = mc_time_s();
        if (mc_retr_sync(ix, NULL, &e)) {
            fprintf(stderr, "bench_retr: %s\n", e.msg);
            return 1;
        }
        double t_index = mc_time_s() - t0;
        mc_retr_stats st;
        mc_retr_get_stats(ix, &st);
        int n = 0, hit[N_COMBO] = {0}, n_lat = 0;
        for (int i = 0; i < n_tasks; i++) {
            task *t = &tasks[i];
            if (strcmp(t->repo, repo_names[r]))
                continue;
            n++;
            mc_str gt = strip(t->gt, strlen(t->gt));
            for (int c = 0; c < N_COMBO; c++) {
                int round2 = c & 1;
                char *q;
                size_t ql;
                if (mc_retr_query_text(t->prompt, strlen(t->prompt), 20, round2 ? t->gt : NULL,
                                       round2 ? strlen(t->gt) : 0, &q, &ql))
                    return 1;
                mc_retr_query qq = mc_retr_query_default();
                qq.text = q;
                qq.len = ql;
                qq.file = t->rel;
                qq.cursor_line = t->line_no;
                qq.k = K;
                qq.sim = c < 2 ? MC_RETR_JACCARD : MC_RETR_BM25;
                double q0 = mc_time_s();
                int nh = mc_retr_search(ix, &qq, hits, K, &e);
                double dq = (mc_time_s() - q0) * 1e3;
                lat[n_lat++] = dq;
                all_lat[n_all_lat++] = dq;
                free(q);
                if (nh < 0) {
                    fprintf(stderr, "bench_retr: search: %s\n", e.msg);
                    return 1;
                }
                for (int h = 0; h < nh; h++) {
                    /* the leakage filter is the index's job; check it held */
                    if (!strcmp(hits[h].file, t->rel) &&
                        hits[h].start_line + hits[h].n_lines > t->line_no) {
                        fprintf(stderr, "bench_retr: LEAK in task of %s line %d\n", t->rel,
                                t->line_no);
                        return 1;
                    }
                    if (window_has(ix, &hits[h], gt)) {
                        hit[c]++;
                        break;
                    }
                }
            }
        }
        printf("| %s | %d | %d | %d | %.2f |", repo_names[r], n, st.n_files, st.n_windows, t_index);
        for (int c = 0; c < N_COMBO; c++) {
            printf(" %.1f%% |", n ? 100.0 * hit[c] / n : 0.0);
            tot_hit[c] += hit[c];
        }
        double p50 = pct(lat, n_lat, 0.5), p95 = pct(lat, n_lat, 0.95);
        printf(" %.3f | %.3f |\n", p50, p95);
        fflush(stdout);
        tot_n += n;
        mc_retr_free(ix);
    }
    printf("| **all** | %d | | | |", tot_n);
    for (int c = 0; c < N_COMBO; c++)
        printf(" **%.1f%%** |", tot_n ? 100.0 * tot_hit[c] / tot_n : 0.0);
    double p50 = pct(all_lat, n_all_lat, 0.5), p95 = pct(all_lat, n_all_lat, 0.95);
    printf(" %.3f | %.3f |\n\n", p50, p95);
    free(lat);
    free(all_lat);
    free(hits);
    for (int i = 0; i < n_tasks; i++) {
        free(tasks[i].repo);
        free(tasks[i].rel);
        free(tasks[i].prompt);
        free(tasks[i].gt);
    }
    free(tasks);
    return 0;
}

/* ---- performance on a large tree ---- */

typedef struct pfile {
    char *rel;
    char *text;
    size_t len;
    int n_lines;
} pfile;

static int collect(const mc_retr_index *ix, const char *root, pfile **out, int *n_out) {
    /* the indexed files, via a search-free route: re-walk with find(1)-like listing is not
     * exposed, so sample paths from windows of frequent terms */
    (void)ix;
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "cd '%s' && find . -name '*.py' -size -1000k -type f | LC_ALL=C sort", root);
    FILE *p = popen(cmd, "r");
    if (!p)
        return 1;
    pfile *f = NULL;
    int n = 0, cap = 0;
    char line[4096];
    while (fgets(line, sizeof line, p)) {
        line[strcspn(line, "\n")] = '\0';
        const char *rel = line[0] == '.' && line[1] == '/' ? line + 2 : line;
        mc_str w;
        if (mc_retr_window_text(ix, rel, 0, 0, &w) != 0)
            continue; /* not indexed (ignored, generated, hidden) */
        char full[8192];
        snprintf(full, sizeof full, "%s/%s", root, rel);
        FILE *ff = fopen(full, "rb");
        if (!ff)
            continue;
        fseek(ff, 0, SEEK_END);
        long sz = ftell(ff);
        fseek(ff, 0, SEEK_SET);
        char *text = malloc((size_t)sz + 1);
        size_t got = fread(text, 1, (size_t)sz, ff);
        fclose(ff);
        text[got] = '\0';
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            f = realloc(f, (size_t)cap * sizeof *f);
        }
        int nl = 0;
        for (size_t i = 0; i < got; i++)
            nl += text[i] == '\n';
        f[n++] = (pfile){strdup(rel), text, got, nl};
    }
    pclose(p);
    *out = f;
    *n_out = n;
    return 0;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static int perf_bench(const char *tree) {
    printf("## Index and query performance on %s\n\n", tree);
    if (!is_dir(tree)) {
        printf("(skipped: %s is not a directory)\n\n", tree);
        return 0;
    }
    mc_err e;
    double build[3];
    mc_retr_index *ix = NULL;
    for (int rep = 0; rep < 3; rep++) {
        mc_retr_free(ix);
        if (mc_retr_new(&ix, tree, NULL, NULL, &e))
            return 1;
        double t0 = mc_time_s();
        if (mc_retr_sync(ix, NULL, &e)) {
            fprintf(stderr, "bench_retr: %s\n", e.msg);
            return 1;
        }
        build[rep] = mc_time_s() - t0;
    }
    mc_retr_stats st;
    mc_retr_get_stats(ix, &st);
    char idx[] = "/tmp/mccom-bench-retr-XXXXXX";
    int fd = mkstemp(idx);
    if (fd < 0)
        return 1;
    close(fd);
    double t0 = mc_time_s();
    if (mc_retr_save(ix, idx, &e)) {
        fprintf(stderr, "bench_retr: %s\n", e.msg);
        return 1;
    }
    double t_save = mc_time_s() - t0;
    struct stat fs;
    stat(idx, &fs);
    double load[3];
    mc_retr_index *ld;
    mc_retr_new(&ld, tree, NULL, NULL, &e);
    for (int rep = 0; rep < 3; rep++) {
        t0 = mc_time_s();
        if (mc_retr_load(ld, idx, &e)) {
            fprintf(stderr, "bench_retr: %s\n", e.msg);
            return 1;
        }
        load[rep] = mc_time_s() - t0;
    }
    t0 = mc_time_s();
    mc_retr_sync_stats ss;
    mc_retr_sync(ld, &ss, &e);
    double t_resync = mc_time_s() - t0;
    mc_retr_free(ld);
    unlink(idx);

    pfile *files;
    int n_files;
    if (collect(ix, tree, &files, &n_files) || n_files == 0)
        return 1;
    /* single-file update: an editor's keystroke re-indexes the file being edited */
    enum { N_UPD = 200, N_Q = 1000 };
    double upd[N_UPD], upd_big[N_UPD];
    int big = 0;
    for (int i = 1; i < n_files; i++)
        if (files[i].len > files[big].len)
            big = i;
    for (int i = 0; i < N_UPD; i++) {
        pfile *f = &files[rnd() % (uint32_t)n_files];
        t0 = mc_time_s();
        if (mc_retr_set_file(ix, f->rel, f->text, f->len, &e))
            return 1;
        upd[i] = (mc_time_s() - t0) * 1e3;
        t0 = mc_time_s();
        if (mc_retr_set_file(ix, files[big].rel, files[big].text, files[big].len, &e))
            return 1;
        upd_big[i] = (mc_time_s() - t0) * 1e3;
    }
    /* queries: random cursor positions, round 1 (20 lines) and round 2 (10 + a 1-line draft) */
    static double lat[2][2][N_Q];
    mc_retr_hit hits[10];
    for (int i = 0; i < N_Q; i++) {
        pfile *f = &files[rnd() % (uint32_t)n_files];
        int line = f->n_lines > 1 ? 1 + (int)(rnd() % (uint32_t)(f->n_lines - 1)) : 0;
        size_t end = 0;
        for (int l = 0; l < line && end < f->len; l++) {
            const char *nl = memchr(f->text + end, '\n', f->len - end);
            end = nl ? (size_t)(nl - f->text) + 1 : f->len;
        }
        size_t dend = end;
        while (dend < f->len && f->text[dend] != '\n')
            dend++;
        for (int r2 = 0; r2 < 2; r2++) {
            char *q;
            size_t ql;
            mc_retr_query_text(f->text, end, 20, r2 ? f->text + end : NULL, r2 ? dend - end : 0, &q,
                               &ql);
            for (int s = 0; s < 2; s++) {
                mc_retr_query qq = mc_retr_query_default();
                qq.text = q;
                qq.len = ql;
                qq.file = f->rel;
                qq.cursor_line = line;
                qq.sim = s ? MC_RETR_BM25 : MC_RETR_JACCARD;
                t0 = mc_time_s();
                if (mc_retr_search(ix, &qq, hits, 10, &e) < 0)
                    return 1;
                lat[r2][s][i] = (mc_time_s() - t0) * 1e3;
            }
            free(q);
        }
    }
    qsort(build, 3, sizeof *build, cmp_dbl);
    qsort(load, 3, sizeof *load, cmp_dbl);
    printf("| what | value |\n|---|---:|\n");
    printf("| files / lines / windows | %d / %lld / %d |\n", st.n_files, (long long)st.n_lines,
           st.n_windows);
    printf("| distinct terms / postings | %d / %lld |\n", st.n_terms, (long long)st.n_postings);
    printf("| full build (walk, read, tokenize, index), median of 3 | %.3f s |\n", build[1]);
    printf("| index in memory (approx.) | %.1f MB |\n", st.mem_bytes / 1e6);
    printf("| index file (text + tokens) | %.1f MB (save %.3f s) |\n", fs.st_size / 1e6, t_save);
    printf("| load index file, median of 3 | %.3f s |\n", load[1]);
    printf("| sync after load, nothing changed (%d files stat'ed) | %.3f s |\n", ss.n_seen, t_resync);
    printf("| single-file update, random file: p50 / p95 | %.3f / %.3f ms |\n", pct(upd, N_UPD, 0.5),
           pct(upd, N_UPD, 0.95));
    printf("| single-file update, largest file (%s, %zu bytes): p50 / p95 | %.3f / %.3f ms |\n",
           files[big].rel, files[big].len, pct(upd_big, N_UPD, 0.5), pct(upd_big, N_UPD, 0.95));
    static const char *names[2][2] = {{"Jaccard, round 1", "BM25, round 1"},
                                      {"Jaccard, round 2", "BM25, round 2"}};
    for (int r2 = 0; r2 < 2; r2++)
        for (int s = 0; s < 2; s++)
            printf("| query top-10, %s (%d random cursors): p50 / p95 | %.3f / %.3f ms |\n",
                   names[r2][s], N_Q, pct(lat[r2][s], N_Q, 0.5), pct(lat[r2][s], N_Q, 0.95));
    printf("\n");
    for (int i = 0; i < n_files; i++) {
        free(files[i].rel);
        free(files[i].text);
    }
    free(files);
    mc_retr_free(ix);
    return 0;
}

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    int K = getenv("MC_BENCH_K") ? atoi(getenv("MC_BENCH_K")) : 10;
    if (K < 1)
        K = 10;
    machine_header();
    const char *tree = getenv("MC_BENCH_TREE");
    int rc = perf_bench(tree && *tree ? tree : "/usr/lib/python3.11");
    if (rc)
        return rc;
    const char *shared = find_shared();
    if (!shared) {
        printf("(recall skipped: ../shared/bench/line.jsonl not found; set MC_SHARED)\n");
        return 0;
    }
    const char *repos = find_repos(shared);
    if (!repos)
        return 1;
    return recall_bench(shared, repos, K);
}
