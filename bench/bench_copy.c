/* bench/bench_copy.c — the copy tier (copy.h) benchmark: markdown tables on stdout.
 *
 * 1. Speed on a large real tree (default /usr/lib/python3.11, one thread):
 *    copy index build from a synced retrieval index, its size in memory and on
 *    disk, load + sync, one-file update (an editor buffer re-indexed, then
 *    mc_copy_sync), and proposal latency p50/p95 at random cursors, editor
 *    style (the whole file is the document, text below the cursor allowed)
 *    and benchmark style (the text above the cursor only).
 * 2. Accuracy on ../shared/bench (line.jsonl, or MC_BENCH_TASKS, a comma-
 *    separated list): the top proposal of every task scored as mccom eval
 *    scores (RepoCoder's EM/ES, the task's n lines), per repository, the
 *    calibration repositories (biopython, breezy, dask, mne) and the other
 *    four apart; the precision of proposals shown at once (estimate >= τ_copy)
 *    and the reliability of the estimate.
 * 3. --calibrate: fit the precision model (copy.h, mc_copy_calib) on every
 *    candidate of every task's first line of the calibration repositories
 *    only (line, api and stmt files), print it as the C table of
 *    src/copy/calib.c and its reliability on both halves.
 *
 * Environment: MC_SHARED, MC_REPOS (as bench_retr), MC_BENCH_TREE,
 * MC_BENCH_TASKS. Flags: --calibrate, --no-speed, --no-accuracy.
 */
#include "bench_util.h"
#include "mccom/copy.h"
#include "mccom/eval.h"
#include "mccom/retr.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

static const char *const cal_repos[] = {"biopython", "breezy", "dask", "mne"};
static const char *const all_repos[] = {"biopython", "breezy", "dask",       "mne",
                                        "nltk",      "optuna", "sqlalchemy", "sphinx"};
#define TAU_COPY 0.5

static bool is_cal(const char *repo) {
    for (size_t i = 0; i < MC_ARRAY_LEN(cal_repos); i++)
        if (!strcmp(repo, cal_repos[i]))
            return true;
    return false;
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static const char *find_shared(void) {
    static char buf[4096];
    const char *env = getenv("MC_SHARED");
    const char *cands[] = {env, "../shared", "../../shared", "/work/shared"};
    for (size_t i = 0; i < MC_ARRAY_LEN(cands); i++) {
        if (!cands[i] || !*cands[i])
            continue;
        snprintf(buf, sizeof buf, "%s/bench/line.jsonl", cands[i]);
        if (access(buf, R_OK) == 0) {
            snprintf(buf, sizeof buf, "%s", cands[i]);
            return buf;
        }
    }
    return NULL;
}

static const char *find_repos(void) {
    static char buf[4096];
    const char *env = getenv("MC_REPOS");
    const char *cands[] = {env, "build/bench-repos", "/work/repos", "build/repos"};
    for (size_t i = 0; i < MC_ARRAY_LEN(cands); i++) {
        if (!cands[i] || !*cands[i])
            continue;
        int ok = 1;
        for (size_t r = 0; r < MC_ARRAY_LEN(all_repos); r++) {
            snprintf(buf, sizeof buf, "%s/%s", cands[i], all_repos[r]);
            ok &= is_dir(buf);
        }
        if (ok) {
            snprintf(buf, sizeof buf, "%s", cands[i]);
            return buf;
        }
    }
    return NULL;
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

static void die(const char *what, const mc_err *e) {
    fprintf(stderr, "bench_copy: %s: %s\n", what, e->msg);
    exit(1);
}

/* ---- 1. speed ---------------------------------------------------------------- */

static int speed_bench(const char *tree) {
    mc_err e;
    mc_retr_index *ix;
    if (mc_retr_new(&ix, tree, NULL, NULL, &e) || mc_retr_sync(ix, NULL, &e))
        die(tree, &e);
    double build[3];
    mc_copy_index *cx = NULL;
    for (int rep = 0; rep < 3; rep++) {
        mc_copy_free(cx);
        if (mc_copy_new(&cx, ix, &e))
            die("copy", &e);
        double t0 = mc_time_s();
        if (mc_copy_sync(cx, NULL, &e))
            die("copy sync", &e);
        build[rep] = mc_time_s() - t0;
    }
    mc_copy_stats st;
    mc_copy_get_stats(cx, &st);
    char path[] = "/tmp/mccom-bench-copy-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return 1;
    close(fd);
    double t0 = mc_time_s();
    if (mc_copy_save(cx, path, &e))
        die("save", &e);
    double t_save = mc_time_s() - t0;
    struct stat fs;
    stat(path, &fs);
    double load[3], resync = 0;
    for (int rep = 0; rep < 3; rep++) {
        mc_copy_index *ld;
        mc_copy_new(&ld, ix, &e);
        t0 = mc_time_s();
        if (mc_copy_load(ld, path, &e))
            die("load", &e);
        load[rep] = mc_time_s() - t0;
        t0 = mc_time_s();
        if (mc_copy_sync(ld, NULL, &e))
            die("sync after load", &e);
        resync = mc_time_s() - t0;
        mc_copy_free(ld);
    }
    unlink(path);

    /* the files, to edit and to query */
    int n_files = mc_retr_n_files(ix);
    char **rel = calloc((size_t)n_files, sizeof *rel);
    char **txt = calloc((size_t)n_files, sizeof *txt);
    size_t *len = calloc((size_t)n_files, sizeof *len);
    int big = 0;
    for (int i = 0; i < n_files; i++) {
        mc_retr_file rf;
        mc_retr_file_at(ix, i, &rf);
        rel[i] = strdup(rf.path);
        txt[i] = malloc(rf.len + 2);
        memcpy(txt[i], rf.text, rf.len);
        len[i] = rf.len;
        if (len[i] > len[big])
            big = i;
    }
    /* one-file update: an editor buffer with one line appended, then the sync */
    enum { N_UPD = 100, N_Q = 2000 };
    mc_bench_samples upd = {0}, upd_big = {0}, q_ed = {0}, q_bm = {0};
    for (int i = 0; i < N_UPD; i++) {
        for (int b = 0; b < 2; b++) {
            int f = b ? big : (int)(rnd() % (uint32_t)n_files);
            txt[f][len[f]] = '\n'; /* a different text each time: toggles a final blank line */
            size_t l = len[f] + (size_t)((i + 1) & 1);
            if (mc_retr_set_file(ix, rel[f], txt[f], l, &e))
                die("set_file", &e);
            t0 = mc_time_s();
            if (mc_copy_sync(cx, NULL, &e))
                die("sync", &e);
            mc_bench_push(b ? &upd_big : &upd, (mc_time_s() - t0) * 1e3);
        }
    }
    /* proposals at random line starts */
    mc_copy_params pe = mc_copy_params_default(), pb = pe;
    pe.use_below = true;
    int n_answered = 0;
    for (int i = 0; i < N_Q; i++) {
        int f = (int)(rnd() % (uint32_t)n_files);
        mc_retr_file rf;
        mc_retr_file_get(ix, rel[f], &rf);
        if (rf.n_lines < 2)
            continue;
        int line = 1 + (int)(rnd() % (uint32_t)(rf.n_lines - 1));
        mc_copy_query q = {rf.path, rf.text, rf.len, rf.line_off[line], line, 1};
        for (int mode = 0; mode < 2; mode++) {
            mc_copy_result r;
            if (mode == 1)
                q.len = rf.line_off[line]; /* benchmark style: the text above only */
            t0 = mc_time_s();
            if (mc_copy_propose(cx, &q, mode ? &pb : &pe, &r, &e))
                die("propose", &e);
            mc_bench_push(mode ? &q_bm : &q_ed, (mc_time_s() - t0) * 1e3);
            n_answered += mode == 0 && r.n > 0;
            mc_copy_result_fini(&r);
        }
    }
    qsort(build, 3, sizeof *build, mc_bench_cmp_d);
    qsort(load, 3, sizeof *load, mc_bench_cmp_d);
    printf("## Copy index on %s (one thread)\n\n", tree);
    printf("| what | value |\n|---|---:|\n");
    printf("| files / non-blank lines | %d / %lld |\n", st.n_files, (long long)st.n_lines);
    printf("| K1+K2 keys / postings | %d / %lld |\n", st.n_keys, (long long)st.n_postings);
    printf("| build from the synced retrieval index, median of 3 | %.3f s |\n", build[1]);
    printf("| copy index in memory (approx.) | %.1f MB |\n", st.mem_bytes / 1e6);
    printf("| copy index file | %.1f MB (save %.3f s) |\n", fs.st_size / 1e6, t_save);
    printf("| load file, median of 3 / then sync (nothing changed) | %.3f s / %.3f s |\n", load[1],
           resync);
    printf("| one-file update (editor buffer + sync), random file: p50 / p95 | %.3f / %.3f ms |\n",
           mc_bench_pct(&upd, 0.5), mc_bench_pct(&upd, 0.95));
    printf("| one-file update, largest file (%s, %zu bytes): p50 / p95 | %.3f / %.3f ms |\n",
           rel[big], len[big], mc_bench_pct(&upd_big, 0.5), mc_bench_pct(&upd_big, 0.95));
    printf("| proposal, editor (whole file, text below allowed), %d cursors: p50 / p95 / max | "
           "%.3f / %.3f / %.3f ms |\n",
           q_ed.n, mc_bench_pct(&q_ed, 0.5), mc_bench_pct(&q_ed, 0.95), mc_bench_pct(&q_ed, 1.0));
    printf("| proposal, benchmark style (text above only): p50 / p95 / max | %.3f / %.3f / %.3f "
           "ms |\n",
           mc_bench_pct(&q_bm, 0.5), mc_bench_pct(&q_bm, 0.95), mc_bench_pct(&q_bm, 1.0));
    printf("| cursors with a proposal (editor) | %.1f%% |\n\n", 100.0 * n_answered / MC_MAX(1, q_ed.n));
    for (int i = 0; i < n_files; i++) {
        free(rel[i]);
        free(txt[i]);
    }
    free(rel);
    free(txt);
    free(len);
    mc_bench_free(&upd);
    mc_bench_free(&upd_big);
    mc_bench_free(&q_ed);
    mc_bench_free(&q_bm);
    mc_copy_free(cx);
    mc_retr_free(ix);
    return 0;
}

/* ---- 2./3. accuracy and calibration ------------------------------------------------ */

typedef struct sample {
    mc_copy_features f;
    bool ok;
    bool cal;
    int task; /* running number of the task */
} sample;

typedef struct samples {
    sample *v;
    int n, cap;
} samples;

static int n_task_seen;

static void push_sample(samples *s, const mc_copy_cand *c, bool ok, bool cal) {
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4096;
        s->v = realloc(s->v, (size_t)s->cap * sizeof *s->v);
        if (!s->v)
            exit(1);
    }
    s->v[s->n++] = (sample){{c->context, c->source != MC_COPY_REPO, c->distance, c->count,
                             c->total, c->similarity},
                            ok, cal, n_task_seen};
}

typedef struct acc {
    int n, answered, em, shown, shown_ok;
    int em_typed; /* EM with the target's first TYPED bytes typed on the line */
    double es, est;
} acc;

enum { TYPED = 2 };

static void acc_add(acc *a, const acc *b) {
    a->n += b->n;
    a->answered += b->answered;
    a->em += b->em;
    a->shown += b->shown;
    a->shown_ok += b->shown_ok;
    a->em_typed += b->em_typed;
    a->es += b->es;
    a->est += b->est;
}

static void acc_row(const char *name, const acc *a) {
    printf("| %s | %d | %.1f%% | **%.1f%%** | %.1f%% | %.1f%% | %.1f%% | %.1f%% | %.1f%% | %.1f%% |\n",
           name, a->n, 100.0 * a->answered / MC_MAX(1, a->n), 100.0 * a->em / MC_MAX(1, a->n),
           100.0 * a->es / MC_MAX(1, a->n), 100.0 * a->em / MC_MAX(1, a->answered),
           100.0 * a->est / MC_MAX(1, a->answered), 100.0 * a->shown / MC_MAX(1, a->n),
           100.0 * a->shown_ok / MC_MAX(1, a->shown), 100.0 * a->em_typed / MC_MAX(1, a->n));
}

/* EM of a candidate's text against the task's target (first line only when first_line). */
static bool em_of(const mc_eval_task *t, const char *text, size_t n, bool first_line) {
    size_t tn = strlen(t->truth);
    if (first_line) {
        const char *nl = memchr(t->truth, '\n', tn);
        tn = nl ? (size_t)(nl - t->truth) : tn;
    }
    mc_eval_score sc;
    return mc_eval_score_text(t->truth, tn, text, n, &sc) == 0 && sc.em;
}

/* Every task of one split: per-repository accuracy (top proposal, the task's
 * n lines) and, when s is given, calibration samples (every candidate, first
 * line). */
static int run_split(const char *shared, const char *repos, const char *split, samples *s,
                     bool print) {
    char path[4096];
    snprintf(path, sizeof path, "%s/bench/%s.jsonl", shared, split);
    mc_eval_bench b;
    mc_err e;
    if (mc_eval_bench_load(path, &b, &e))
        die(path, &e);
    if (print) {
        printf("## Copy proposals on %s (%d tasks): the top candidate, no model\n\n", path, b.n);
        printf("EM/ES as `mccom eval` scores them (RepoCoder's, the task's lines); *answered*: a "
               "proposal exists; *precision*: EM among answered; *estimate*: the mean calibrated "
               "precision of the answered; *shown*: estimate ≥ τ_copy = %.2f (shown at once, no "
               "model) and the precision of those; *EM, %d typed*: the same with the target's "
               "first %d non-blank bytes typed on the line (the typed-prefix filter at work; the "
               "typed bytes count as part of the answer).\n\n",
               TAU_COPY, TYPED, TYPED);
        printf("| repository | tasks | answered | EM | ES | precision | estimate | shown | shown "
               "precision | EM, %d typed |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
               TYPED);
    }
    acc tot[2] = {{0}};
    mc_copy_params p = mc_copy_params_default();
    p.k = 16;
    for (size_t r = 0; r < MC_ARRAY_LEN(all_repos); r++) {
        const char *repo = all_repos[r];
        char root[4096];
        snprintf(root, sizeof root, "%s/%s", repos, repo);
        mc_retr_index *ix;
        mc_copy_index *cx;
        if (mc_retr_new(&ix, root, NULL, NULL, &e) || mc_retr_sync(ix, NULL, &e) ||
            mc_copy_new(&cx, ix, &e) || mc_copy_sync(cx, NULL, &e))
            die(root, &e);
        acc a = {0};
        for (int i = 0; i < b.n; i++) {
            const mc_eval_task *t = &b.tasks[i];
            if (strcmp(t->repo, repo))
                continue;
            char *doc = malloc(t->prompt_len + 2);
            memcpy(doc, t->prompt, t->prompt_len);
            doc[t->prompt_len] = '\n';
            mc_copy_query q = {t->path, doc, t->prompt_len + 1, t->prompt_len + 1, t->line,
                               t->n_lines};
            mc_copy_result res;
            if (mc_copy_propose(cx, &q, &p, &res, &e))
                die(t->id, &e);
            a.n++;
            if (res.n > 0) {
                mc_eval_score sc;
                mc_eval_score_text(t->truth, strlen(t->truth), res.c[0].text, res.c[0].len, &sc);
                a.answered++;
                a.em += sc.em;
                a.es += sc.es;
                a.est += res.c[0].precision;
                if (res.c[0].precision >= TAU_COPY) {
                    a.shown++;
                    a.shown_ok += sc.em;
                }
            }
            mc_copy_result_fini(&res);
            { /* the target's first TYPED non-blank bytes typed on the cursor's line */
                const char *tr = t->truth;
                size_t ind = 0;
                while (tr[ind] == ' ' || tr[ind] == '\t')
                    ind++;
                size_t ty = ind + TYPED <= strlen(tr) ? ind + TYPED : strlen(tr);
                char *d2 = malloc(t->prompt_len + 2 + ty);
                memcpy(d2, doc, t->prompt_len + 1);
                memcpy(d2 + t->prompt_len + 1, tr, ty);
                size_t n2 = t->prompt_len + 1 + ty;
                mc_copy_query q2 = {t->path, d2, n2, n2, t->line, t->n_lines};
                if (mc_copy_propose(cx, &q2, &p, &res, &e))
                    die(t->id, &e);
                if (res.n > 0) {
                    size_t ln = ty + res.c[0].len;
                    char *full = malloc(ln + 1);
                    memcpy(full, tr, ty);
                    memcpy(full + ty, res.c[0].text, res.c[0].len);
                    mc_eval_score sc;
                    mc_eval_score_text(t->truth, strlen(t->truth), full, ln, &sc);
                    a.em_typed += sc.em;
                    free(full);
                }
                mc_copy_result_fini(&res);
                free(d2);
            }
            if (s) { /* every candidate of the first line */
                q.n_lines = 1;
                if (mc_copy_propose(cx, &q, &p, &res, &e))
                    die(t->id, &e);
                for (int k = 0; k < res.n; k++)
                    push_sample(s, &res.c[k], em_of(t, res.c[k].text, res.c[k].len, true),
                                is_cal(repo));
                mc_copy_result_fini(&res);
                n_task_seen++;
            }
            free(doc);
        }
        if (print) {
            char name[64];
            snprintf(name, sizeof name, "%s%s", repo, is_cal(repo) ? " *cal*" : "");
            acc_row(name, &a);
        }
        acc_add(&tot[is_cal(repo) ? 0 : 1], &a);
        mc_copy_free(cx);
        mc_retr_free(ix);
    }
    if (print) {
        acc all = tot[0];
        acc_add(&all, &tot[1]);
        acc_row("**calibration (4)**", &tot[0]);
        acc_row("**held-out (4)**", &tot[1]);
        acc_row("**all**", &all);
        printf("\n");
    }
    mc_eval_bench_fini(&b);
    return 0;
}

/* Logistic regression by Newton's method with a small ridge (the features are
 * few and collinear at the edges, e.g. context 2 vs min(context,8)/8). */
static void fit(const samples *s, mc_copy_calib *cal) {
    enum { D = MC_COPY_N_COEF };
    double w[D] = {0};
    for (int it = 0; it < 50; it++) {
        double g[D] = {0}, H[D][D] = {{0}};
        for (int i = 0; i < s->n; i++) {
            if (!s->v[i].cal)
                continue;
            double x[D];
            mc_copy_feature_vector(&s->v[i].f, x);
            double z = 0;
            for (int d = 0; d < D; d++)
                z += w[d] * x[d];
            double pr = 1.0 / (1.0 + exp(-z)), y = s->v[i].ok;
            for (int d = 0; d < D; d++) {
                g[d] += (pr - y) * x[d];
                for (int d2 = 0; d2 < D; d2++)
                    H[d][d2] += pr * (1 - pr) * x[d] * x[d2];
            }
        }
        for (int d = 0; d < D; d++) {
            g[d] += 1e-2 * w[d];
            H[d][d] += 1e-2;
        }
        /* solve H·step = g (Gaussian elimination with partial pivoting) */
        double A[D][D + 1];
        for (int d = 0; d < D; d++) {
            memcpy(A[d], H[d], sizeof H[d]);
            A[d][D] = g[d];
        }
        for (int c = 0; c < D; c++) {
            int piv = c;
            for (int r = c + 1; r < D; r++)
                if (fabs(A[r][c]) > fabs(A[piv][c]))
                    piv = r;
            for (int k = 0; k <= D; k++) {
                double t = A[c][k];
                A[c][k] = A[piv][k];
                A[piv][k] = t;
            }
            for (int r = 0; r < D; r++) {
                if (r == c || A[c][c] == 0)
                    continue;
                double f = A[r][c] / A[c][c];
                for (int k = c; k <= D; k++)
                    A[r][k] -= f * A[c][k];
            }
        }
        double delta = 0;
        for (int d = 0; d < D; d++) {
            double st = A[d][d] != 0 ? A[d][D] / A[d][d] : 0;
            w[d] -= st;
            delta += fabs(st);
        }
        if (delta < 1e-9)
            break;
    }
    memcpy(cal->c, w, sizeof w);
}

static void reliability(const samples *s, const mc_copy_calib *cal) {
    static const double edges[] = {0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.01};
    enum { NB = MC_ARRAY_LEN(edges) - 1 };
    printf("| estimate | cal: candidates | cal: mean estimate | cal: right | held-out: candidates "
           "| held-out: mean estimate | held-out: right |\n|---|---:|---:|---:|---:|---:|---:|\n");
    for (int bi = 0; bi < NB; bi++) {
        int n[2] = {0}, ok[2] = {0};
        double est[2] = {0};
        for (int i = 0; i < s->n; i++) {
            double pr = mc_copy_precision(cal, &s->v[i].f);
            if (pr < edges[bi] || pr >= edges[bi + 1])
                continue;
            int h = s->v[i].cal ? 0 : 1;
            n[h]++;
            ok[h] += s->v[i].ok;
            est[h] += pr;
        }
        printf("| [%.2f, %.2f) | %d | %.1f%% | %.1f%% | %d | %.1f%% | %.1f%% |\n", edges[bi],
               MC_MIN(edges[bi + 1], 1.0), n[0], 100 * est[0] / MC_MAX(1, n[0]),
               100.0 * ok[0] / MC_MAX(1, n[0]), n[1], 100 * est[1] / MC_MAX(1, n[1]),
               100.0 * ok[1] / MC_MAX(1, n[1]));
    }
    printf("\n");
}

int main(int argc, char **argv) {
    bool calibrate = false, speed = true, accuracy = true;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--calibrate"))
            calibrate = true;
        else if (!strcmp(argv[i], "--no-speed"))
            speed = false;
        else if (!strcmp(argv[i], "--no-accuracy"))
            accuracy = false;
        else {
            fprintf(stderr, "usage: bench_copy [--calibrate] [--no-speed] [--no-accuracy]\n");
            return 2;
        }
    }
    struct utsname u;
    uname(&u);
    printf("# copy tier benchmark\n\nmachine: %ld CPUs online, %s %s; build: %s; no model\n\n",
           sysconf(_SC_NPROCESSORS_ONLN), u.sysname, u.release,
#ifdef __OPTIMIZE__
           "optimized"
#else
           "-O0"
#endif
    );
    if (speed && !calibrate) {
        const char *tree = getenv("MC_BENCH_TREE");
        if (speed_bench(tree && *tree ? tree : "/usr/lib/python3.11"))
            return 1;
    }
    if (!accuracy && !calibrate)
        return 0;
    const char *shared = find_shared(), *repos = shared ? find_repos() : NULL;
    if (!shared || !repos) {
        printf("(accuracy skipped: ../shared/bench or the benchmark repositories not found; set "
               "MC_SHARED, MC_REPOS)\n");
        return 0;
    }
    if (calibrate) {
        samples s = {0};
        const char *splits[] = {"line", "api", "stmt"};
        for (size_t i = 0; i < MC_ARRAY_LEN(splits); i++)
            run_split(shared, repos, splits[i], &s, false);
        mc_copy_calib cal;
        fit(&s, &cal);
        int nc = 0;
        for (int i = 0; i < s.n; i++)
            nc += s.v[i].cal;
        printf("## Calibration: %d candidates of the calibration repositories (%d held out)\n\n",
               nc, s.n - nc);
        printf("```c\nstatic const mc_copy_calib builtin = {{\n   ");
        for (int d = 0; d < MC_COPY_N_COEF; d++)
            printf(" %.4f,", cal.c[d]);
        printf("\n}};\n```\n\nReliability of the new fit:\n\n");
        reliability(&s, &cal);
        printf("Reliability of the built-in table:\n\n");
        reliability(&s, mc_copy_calib_default());
        const char *dump = getenv("MC_COPY_DUMP");
        FILE *df = dump && *dump ? fopen(dump, "w") : NULL;
        for (int i = 0; df && i < s.n; i++)
            fprintf(df, "%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%.4f\n", s.v[i].task, s.v[i].cal,
                    s.v[i].ok, s.v[i].f.context, s.v[i].f.in_file, s.v[i].f.distance, s.v[i].f.count,
                    s.v[i].f.total, (double)s.v[i].f.similarity);
        if (df)
            fclose(df);
        free(s.v);
        return 0;
    }
    const char *tf = getenv("MC_BENCH_TASKS");
    char list[1024];
    snprintf(list, sizeof list, "%s", tf && *tf ? tf : "line");
    for (char *save = NULL, *sp = strtok_r(list, ",", &save); sp; sp = strtok_r(NULL, ",", &save))
        run_split(shared, repos, sp, NULL, true);
    return 0;
}
