/* src/eval/report.c — the markdown report and its gnuplot plots, computed from
 * the records alone (so a report can be redrawn without running a model).
 *
 * Sections: the paper's headline figures beside ours, results per split,
 * per repository, the cascade's paths, speculative decoding, the large model
 * inside the cascade against the large model alone on the same tasks, the
 * threshold calibration and sweep, and consistency checks that must hold in
 * any correct run. Plots are PNG files drawn by the gnuplot program (a
 * separate process fed a script on stdin); the report says so when gnuplot is
 * missing. Nothing here runs a model or decides a threshold. */
#include "mccom/eval.h"
#include "mccom/file.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* The paper's headline figures (MCCom, FSE 2026, abstract). */
#define PAPER_LATENCY "−47.9% (up to)"
#define PAPER_CALLS "−46.3%"
#define PAPER_LLM_EM "+8.9%"
#define PAPER_SLM "73.8%"

typedef struct ctx {
    mc_eval_recs *rs;
    const mc_eval_report_params *p;
    FILE *f;
    char **splits; /* distinct, in order of appearance */
    int n_splits;
    char **repos;  /* distinct, sorted */
    int n_repos;
    bool modes[MC_EVAL_N_MODES];
    const mc_eval_rec **buf; /* scratch of rs->n pointers */
} ctx;

/* Which records: one split (NULL: all) and held-out/calibration repos. */
enum { REPOS_ALL = 0, REPOS_CAL = 1, REPOS_HELD = 2 };

static bool is_cal(const ctx *c, const char *repo) {
    for (int i = 0; i < c->p->n_cal_repos; i++)
        if (!strcmp(c->p->cal_repos[i], repo))
            return true;
    return false;
}

static bool repo_in(const ctx *c, const char *repo, int which) {
    return which == REPOS_ALL || (which == REPOS_CAL) == is_cal(c, repo);
}

/* Records of `mode` in the selection, into c->buf. */
static int pick(ctx *c, int mode, const char *split, int which, const char *repo) {
    int n = 0;
    for (int i = 0; i < c->rs->n; i++) {
        const mc_eval_rec *r = &c->rs->r[i];
        if (r->mode != mode || (split && strcmp(r->split, split)) ||
            (repo && strcmp(r->repo, repo)) || !repo_in(c, r->repo, which))
            continue;
        c->buf[n++] = r;
    }
    return n;
}

static int agg_of(ctx *c, int mode, const char *split, int which, double rtt, mc_eval_agg *a) {
    int n = pick(c, mode, split, which, NULL);
    return mc_eval_aggregate(c->buf, n, rtt, c->p->reaction_ms, a);
}

static bool add_unique(char ***v, int *n, const char *s) {
    for (int i = 0; i < *n; i++)
        if (!strcmp((*v)[i], s))
            return true;
    char **nv = realloc(*v, (size_t)(*n + 1) * sizeof *nv);
    if (!nv)
        return false;
    *v = nv;
    (*v)[*n] = strdup(s);
    if (!(*v)[*n])
        return false;
    (*n)++;
    return true;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static double pct(double x) { return 100.0 * x; }

/* Relative change of b against a, in percent ("n/a" when a is 0). */
static void rel(char *out, size_t cap, double a, double b) {
    if (a > 0)
        snprintf(out, cap, "%+.1f%%", 100.0 * (b - a) / a);
    else
        snprintf(out, cap, "n/a");
}

/* ---- plots --------------------------------------------------------------- */

/* Run a gnuplot script; 0 if gnuplot ran it without error. */
static int gnuplot(const char *script) {
    FILE *g = popen("gnuplot >/dev/null 2>&1", "w");
    if (!g)
        return -1;
    fputs(script, g);
    int st = pclose(g);
    return st == 0 ? 0 : -1;
}

typedef struct sbuf {
    char *s;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k < 0 || b->oom)
        return;
    if (b->n + (size_t)k + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 4096;
        while (nc < b->n + (size_t)k + 1)
            nc *= 2;
        char *ns = realloc(b->s, nc);
        if (!ns) {
            b->oom = true;
            return;
        }
        b->s = ns;
        b->cap = nc;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}

/* Draw with pngcairo, or the plain png terminal where cairo is missing. */
static bool draw(const char *out_png, const char *body) {
    static const char *const terms[] = {"pngcairo size 900,560 font 'sans,10'",
                                        "png size 900,560"};
    for (size_t t = 0; t < MC_ARRAY_LEN(terms); t++) {
        sbuf b = {0};
        sb_printf(&b, "set terminal %s\nset output '%s'\n%s\nset output\n", terms[t], out_png,
                  body);
        int rc = b.oom ? -1 : gnuplot(b.s);
        free(b.s);
        if (rc == 0)
            return true;
    }
    return false;
}

static bool plot_latency_em(ctx *c, const char *png) {
    sbuf b = {0};
    /* labels alternate above and below their points, so that neighbours do not collide */
    sb_printf(&b, "$all << EOD\n");
    int k = 0;
    for (int m = 0; m < MC_EVAL_N_MODES; m++) {
        mc_eval_agg a;
        if (!c->modes[m] || agg_of(c, m, NULL, REPOS_ALL, c->p->rtt_ms, &a) != 0 || a.n == 0)
            continue;
        sb_printf(&b, "%.3f %.3f \"%s\" %d\n", a.lat_mean, pct(a.em), mc_eval_mode_name(m), k++ % 2);
    }
    sb_printf(&b, "EOD\n");
    for (int s = 0; s < c->n_splits; s++) {
        sb_printf(&b, "$s%d << EOD\n", s);
        for (int m = 0; m < MC_EVAL_N_MODES; m++) {
            mc_eval_agg a;
            if (!c->modes[m] || agg_of(c, m, c->splits[s], REPOS_ALL, c->p->rtt_ms, &a) != 0 ||
                a.n == 0)
                continue;
            sb_printf(&b, "%.3f %.3f\n", a.lat_mean, pct(a.em));
        }
        sb_printf(&b, "EOD\n");
    }
    sb_printf(&b,
              "set title 'Latency vs exact match per mode (RTT %g ms per LLM call)'\n"
              "set xlabel 'mean latency until the final suggestion (ms)'\n"
              "set ylabel 'exact match (%%)'\nset grid\nset key outside right\n"
              "set offsets graph 0.05, graph 0.15, graph 0.1, graph 0.1\n"
              "set xrange [0:*]\nset yrange [0:*]\n"
              "plot $all using 1:2 with points pt 7 ps 1.6 title 'all tasks', "
              "$all using 1:($4 == 0 ? $2 : 1/0):3 with labels offset 0,1.2 font ',9' notitle, "
              "$all using 1:($4 == 1 ? $2 : 1/0):3 with labels offset 0,-1.2 font ',9' notitle",
              c->p->rtt_ms);
    for (int s = 0; s < c->n_splits; s++)
        sb_printf(&b, ", $s%d using 1:2 with points pt %d ps 1.1 title '%s'", s, 4 + 2 * s,
                  c->splits[s]);
    sb_printf(&b, "\n");
    bool ok = !b.oom && draw(png, b.s);
    free(b.s);
    return ok;
}

static bool plot_sweep(ctx *c, const mc_eval_sweep_pt *pt, int n, const char *png) {
    sbuf b = {0};
    sb_printf(&b, "$d << EOD\n");
    for (int i = 0; i < n; i++)
        sb_printf(&b, "%.3f %.3f %.3f %.3f %.3f\n", pt[i].tau, pct(pt[i].em), pct(pt[i].usage),
                  pt[i].lat_mean, pt[i].time_mean);
    sb_printf(&b,
              "EOD\nset title 'Threshold sweep (one cascade-no-routing run; RTT %g ms, reaction %g ms)'\n"
              "set xlabel 'tau (escalate at once below this confidence)'\n"
              "set ylabel '%%'\nset y2label 'ms'\nset ytics nomirror\nset y2tics\nset grid\n"
              "set yrange [0:100]\nset y2range [0:*]\nset xrange [0:1]\n"
              "set key outside bottom center horizontal\n"
              "set arrow from %.3f, graph 0 to %.3f, graph 1 nohead dt 2 lc rgb 'gray40'\n"
              "plot $d using 1:2 with linespoints pt 7 title 'exact match (%%)', "
              "$d using 1:3 with linespoints pt 5 title 'LLM usage (%%)', "
              "$d using 1:4 axes x1y2 with linespoints pt 9 title 'mean latency (ms)', "
              "$d using 1:5 axes x1y2 with lines dt 3 title 'latency + reaction (ms)'\n",
              c->p->rtt_ms, c->p->reaction_ms, c->p->tau, c->p->tau);
    bool ok = !b.oom && draw(png, b.s);
    free(b.s);
    return ok;
}

/* ---- sections ------------------------------------------------------------ */

static const char *which_name(int which) {
    return which == REPOS_HELD ? "held-out repositories" : which == REPOS_CAL ? "calibration repositories" : "all repositories";
}

/* Escalated tasks of a cascade mode, with the LLM's EM inside the cascade and
 * each LLM-only mode's EM on the same tasks. */
typedef struct llm_cmp {
    int n;
    double em_cascade, em_mode[3]; /* llm, llm+rag, llm+iter */
    int n_mode[3];
} llm_cmp;

static void compare_llm(ctx *c, int mode, int which, llm_cmp *out) {
    memset(out, 0, sizeof *out);
    int n = pick(c, mode, NULL, which, NULL);
    for (int i = 0; i < n; i++) {
        const mc_eval_rec *r = c->buf[i];
        if (r->path != MC_PATH_CONFIDENCE && r->path != MC_PATH_REJECTION)
            continue;
        out->n++;
        out->em_cascade += r->score.em;
        for (int k = 0; k < 3; k++) {
            const mc_eval_rec *o = mc_eval_recs_find(c->rs, r->split, r->task, MC_EVAL_LLM + k);
            if (o) {
                out->em_mode[k] += o->score.em;
                out->n_mode[k]++;
            }
        }
    }
}

static void headline(ctx *c, int which) {
    FILE *f = c->f;
    mc_eval_agg cas, rag, slm;
    bool have = c->modes[MC_EVAL_CASCADE] && c->modes[MC_EVAL_LLM_RAG];
    fprintf(f, "## Headline: the paper's claims beside ours\n\n");
    fprintf(f, "Ours on %s, %g ms network round trip per LLM call%s; the paper's from MCCom's "
               "abstract (121M SLM + 7B LLM, GPU server). The LLM-only baseline is `llm+rag` "
               "(the large model with the same one-round retrieval as the cascade's first step).\n\n",
            which_name(which), c->p->rtt_ms, c->p->rtt_ms == 0 ? " (engine time only)" : "");
    if (!have) {
        fprintf(f, "_Needs the modes `cascade` and `llm+rag`._\n\n");
        return;
    }
    agg_of(c, MC_EVAL_CASCADE, NULL, which, c->p->rtt_ms, &cas);
    agg_of(c, MC_EVAL_LLM_RAG, NULL, which, c->p->rtt_ms, &rag);
    agg_of(c, MC_EVAL_SLM, NULL, which, c->p->rtt_ms, &slm);
    char lat[32], lat_real[32], calls[32], llm_em[64], best[64];
    rel(lat, sizeof lat, rag.lat_mean, cas.lat_mean);
    mc_eval_agg cr, rr;
    agg_of(c, MC_EVAL_CASCADE, NULL, which, c->p->rtt_real_ms, &cr);
    agg_of(c, MC_EVAL_LLM_RAG, NULL, which, c->p->rtt_real_ms, &rr);
    rel(lat_real, sizeof lat_real, rr.lat_mean, cr.lat_mean);
    /* "up to": the best split */
    double best_v = 1e300;
    const char *best_s = NULL;
    for (int s = 0; s < c->n_splits; s++) {
        mc_eval_agg a, b;
        agg_of(c, MC_EVAL_CASCADE, c->splits[s], which, c->p->rtt_ms, &a);
        agg_of(c, MC_EVAL_LLM_RAG, c->splits[s], which, c->p->rtt_ms, &b);
        if (a.n && b.n && b.lat_mean > 0 && (a.lat_mean - b.lat_mean) / b.lat_mean < best_v) {
            best_v = (a.lat_mean - b.lat_mean) / b.lat_mean;
            best_s = c->splits[s];
        }
    }
    if (best_s)
        snprintf(best, sizeof best, "%+.1f%% (%s)", 100.0 * best_v, best_s);
    else
        snprintf(best, sizeof best, "n/a");
    rel(calls, sizeof calls, (double)rag.n_llm, (double)cas.n_llm);
    llm_cmp lc;
    compare_llm(c, MC_EVAL_CASCADE, which, &lc);
    if (lc.n > 0 && lc.n_mode[1] == lc.n) {
        double a = lc.em_mode[1] / lc.n, b = lc.em_cascade / lc.n;
        snprintf(llm_em, sizeof llm_em, "%+.1f points (%.1f%% → %.1f%%, %d tasks)", pct(b - a),
                 pct(a), pct(b), lc.n);
    } else {
        snprintf(llm_em, sizeof llm_em, "n/a (no escalations)");
    }
    fprintf(f, "| claim | paper | ours | ours, computed as |\n|---|---:|---:|---|\n");
    fprintf(f, "| latency vs the LLM alone | %s | %s overall, %s best split; %s at %g ms RTT | "
               "mean latency of `cascade` vs `llm+rag` |\n",
            PAPER_LATENCY, lat, best, lat_real, c->p->rtt_real_ms);
    fprintf(f, "| LLM calls | %s | %s | tasks that call the LLM: `cascade` %d vs `llm+rag` %d of %d |\n",
            PAPER_CALLS, calls, cas.n_llm, rag.n_llm, cas.n);
    fprintf(f, "| LLM exact match through the collaboration | %s | %s | EM of the LLM's answers in "
               "`cascade` vs `llm+rag` on the same escalated tasks |\n",
            PAPER_LLM_EM, llm_em);
    if (rag.em > 0)
        fprintf(f, "| SLM relative to the large model | %s | %.1f%% | EM of `slm` / EM of `llm+rag` "
                   "(%.1f%% / %.1f%%) |\n\n",
                PAPER_SLM, 100.0 * slm.em / rag.em, pct(slm.em), pct(rag.em));
    else
        fprintf(f, "| SLM relative to the large model | %s | n/a | EM of `llm+rag` is 0 |\n\n",
                PAPER_SLM);
}

static void table_modes(ctx *c, const char *split, int which) {
    FILE *f = c->f;
    fprintf(f, "| mode | tasks | EM | ES | ES (fuzz) | latency mean | p50 | p95 | mean @%g ms RTT | "
               "LLM tasks | LLM calls/task | LLM tokens/task (prompt + gen) | errors |\n"
               "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
            c->p->rtt_real_ms);
    for (int m = 0; m < MC_EVAL_N_MODES; m++) {
        mc_eval_agg a, ar;
        if (!c->modes[m] || agg_of(c, m, split, which, c->p->rtt_ms, &a) != 0 || a.n == 0)
            continue;
        agg_of(c, m, split, which, c->p->rtt_real_ms, &ar);
        fprintf(f, "| `%s` | %d | %.1f%% | %.1f%% | %.1f%% | %.1f ms | %.1f | %.1f | %.1f ms | "
                   "%.1f%% | %.2f | %.0f + %.1f | %d |\n",
                mc_eval_mode_name(m), a.n, pct(a.em), pct(a.es), pct(a.fuzz), a.lat_mean,
                a.lat_p50, a.lat_p95, ar.lat_mean, pct((double)a.n_llm / a.n), a.calls,
                a.prompt_tokens, a.gen_tokens, a.n_err);
    }
    fprintf(f, "\n");
}

static void section_repos(ctx *c) {
    FILE *f = c->f;
    fprintf(f, "## By repository\n\nEM %% (ES %% in parentheses), all splits together. "
               "*cal*: a calibration repository (τ was chosen on it).\n\n| repository |");
    for (int m = 0; m < MC_EVAL_N_MODES; m++)
        if (c->modes[m])
            fprintf(f, " `%s` |", mc_eval_mode_name(m));
    fprintf(f, "\n|---|");
    for (int m = 0; m < MC_EVAL_N_MODES; m++)
        if (c->modes[m])
            fprintf(f, "---:|");
    fprintf(f, "\n");
    for (int i = 0; i < c->n_repos; i++) {
        fprintf(f, "| %s%s |", c->repos[i], c->p->tau_calibrated && is_cal(c, c->repos[i]) ? " *cal*" : "");
        for (int m = 0; m < MC_EVAL_N_MODES; m++) {
            if (!c->modes[m])
                continue;
            int n = pick(c, m, NULL, REPOS_ALL, c->repos[i]);
            mc_eval_agg a;
            mc_eval_aggregate(c->buf, n, c->p->rtt_ms, c->p->reaction_ms, &a);
            if (n)
                fprintf(f, " %.1f (%.1f) |", pct(a.em), pct(a.es));
            else
                fprintf(f, " – |");
        }
        fprintf(f, "\n");
    }
    fprintf(f, "\n");
}

static void section_paths(ctx *c) {
    FILE *f = c->f;
    fprintf(f, "## Cascade paths\n\nHow the final suggestion came: *copy* the copy tier's line "
               "shown at once (no model ran) and accepted, *slm* accepted from the small "
               "model (its own line or a copy line it picked; no LLM call), *confidence* escalated "
               "at once (confidence < τ), *rejection* escalated after the simulated user rejected "
               "the local line. Latency is "
               "model + network time until the final suggestion was shown; the user's reaction "
               "(%g ms per rejection) is the last column, never inside latency.\n\n",
            c->p->reaction_ms);
    fprintf(f, "| mode | path | tasks | share | latency mean | p50 | p95 | LLM calls/task | "
               "EM | reaction/task |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int m = MC_EVAL_CASCADE; m < MC_EVAL_N_MODES; m++) {
        if (!c->modes[m])
            continue;
        int n_all = pick(c, m, NULL, REPOS_ALL, NULL);
        static const int paths[] = {MC_PATH_COPY, MC_PATH_SLM, MC_PATH_CONFIDENCE,
                                    MC_PATH_REJECTION};
        for (size_t pi = 0; pi < MC_ARRAY_LEN(paths); pi++) {
            const int path = paths[pi];
            if (path == MC_PATH_COPY && !mc_eval_mode_copy(m))
                continue;
            int n = 0;
            for (int i = 0; i < n_all; i++)
                if (c->buf[i]->path == path)
                    c->buf[n++] = c->buf[i];
            mc_eval_agg a;
            mc_eval_aggregate(c->buf, n, c->p->rtt_ms, c->p->reaction_ms, &a);
            fprintf(f, "| `%s` | %s | %d | %.1f%% | %.1f ms | %.1f | %.1f | %.2f | %.1f%% | %.0f ms |\n",
                    mc_eval_mode_name(m), mc_cascade_path_name(path), n,
                    n_all ? pct((double)n / n_all) : 0.0, a.lat_mean, a.lat_p50, a.lat_p95,
                    a.calls, pct(a.em), a.react_mean);
            n_all = pick(c, m, NULL, REPOS_ALL, NULL);
        }
    }
    fprintf(f, "\n");
}

static void section_spec(ctx *c) {
    FILE *f = c->f;
    fprintf(f, "## Speculative decoding\n\nPer escalation (tasks whose final suggestion came from "
               "the LLM). Stage 1 verifies the small model's line in one LLM call; each stage-2 "
               "round is one more call, so with a network round trip speculation costs RTT per "
               "round.\n\n");
    fprintf(f, "| mode | escalations | draft tokens offered | accepted | acceptance | stage-1 "
               "accepted | stage-2 rounds | LLM calls | escalation time (ms, RTT %g) |\n"
               "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
            c->p->rtt_ms);
    for (int m = MC_EVAL_CASCADE; m < MC_EVAL_N_MODES; m++) {
        if (!c->modes[m])
            continue;
        int n_all = pick(c, m, NULL, REPOS_ALL, NULL), n = 0;
        long off = 0, acc = 0, s1 = 0, rounds = 0, calls = 0;
        double ms = 0;
        for (int i = 0; i < n_all; i++) {
            const mc_eval_rec *r = c->buf[i];
            if (r->path != MC_PATH_CONFIDENCE && r->path != MC_PATH_REJECTION)
                continue;
            n++;
            off += r->draft_tokens;
            acc += r->draft_accepted;
            s1 += r->stage1_accepted;
            rounds += r->stage2_rounds;
            calls += r->calls;
            ms += (r->path == MC_PATH_REJECTION ? r->ms_second : r->ms_first) + c->p->rtt_ms * r->calls;
        }
        double k = n ? 1.0 / n : 0.0;
        fprintf(f, "| `%s` | %d | %.1f | %.1f | %.1f%% | %.1f | %.2f | %.2f | %.1f |\n",
                mc_eval_mode_name(m), n, off * k, acc * k, off ? 100.0 * acc / off : 0.0, s1 * k,
                rounds * k, calls * k, ms * k);
    }
    fprintf(f, "\n_Escalation time of the confidence path includes the small model's line (it "
               "runs first)._\n\n");
}

static void section_llm(ctx *c, int which) {
    FILE *f = c->f;
    fprintf(f, "## The large model inside the cascade vs alone\n\nOn the tasks each cascade mode "
               "escalated (%s): EM of the LLM's answers in the cascade, and EM of each LLM-only "
               "mode on the same tasks. Speculative decoding never changes the LLM's greedy "
               "answer; what differs is its prompt (retrieval round 2 queries with the small "
               "model's line).\n\n| mode | escalated tasks | in the cascade | `llm` | `llm+rag` "
               "| `llm+iter` |\n|---|---:|---:|---:|---:|---:|\n",
            which_name(which));
    for (int m = MC_EVAL_CASCADE; m < MC_EVAL_N_MODES; m++) {
        if (!c->modes[m])
            continue;
        llm_cmp lc;
        compare_llm(c, m, which, &lc);
        fprintf(f, "| `%s` | %d | %.1f%% |", mc_eval_mode_name(m), lc.n,
                lc.n ? pct(lc.em_cascade / lc.n) : 0.0);
        for (int k = 0; k < 3; k++) {
            if (lc.n_mode[k] == lc.n && lc.n > 0)
                fprintf(f, " %.1f%% |", pct(lc.em_mode[k] / lc.n));
            else
                fprintf(f, " – |");
        }
        fprintf(f, "\n");
    }
    fprintf(f, "\n");
}

static void section_sweep(ctx *c, int which, const char *plot_rel, const char *plot_abs) {
    FILE *f = c->f;
    fprintf(f, "## Threshold calibration and sweep\n\n");
    if (!c->modes[MC_EVAL_CASCADE_NO_ROUTING]) {
        fprintf(f, "_Needs the mode `cascade-no-routing` (the calibration run)._\n\n");
        return;
    }
    if (c->p->tau_calibrated) {
        fprintf(f, "τ = **%.2f**, chosen on the calibration repositories (", c->p->tau);
        for (int i = 0; i < c->p->n_cal_repos; i++)
            fprintf(f, "%s%s", i ? ", " : "", c->p->cal_repos[i]);
        fprintf(f, ") and reported on the others: of τ ∈ {0, 0.05, …, 1}, the one with the least "
                   "mean time the user waits (latency + %g ms reaction per rejection, RTT %g ms) "
                   "among those whose EM is within %.1f points of the best.\n\n",
                c->p->reaction_ms, c->p->rtt_ms, pct(c->p->em_drop));
    } else {
        fprintf(f, "τ = **%.2f** was given on the command line.\n\n", c->p->tau);
    }
    fprintf(f, "The sweep comes from one `cascade-no-routing` run, which also escalated (off the "
               "record) every line the user accepted: every task has both models' lines, so the "
               "cascade at any τ follows without running a model again (src/eval/summary.c). "
               "Sweep on %s:\n\n",
            which_name(which));
    int n = pick(c, MC_EVAL_CASCADE_NO_ROUTING, NULL, which, NULL);
    mc_eval_sweep_pt pt[MC_EVAL_N_TAU];
    fprintf(f, "| τ | LLM usage | EM | ES | latency mean | p95 | latency + reaction | "
               "copy / slm / confidence / rejection |\n|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for (int g = 0; g < MC_EVAL_N_TAU; g++) {
        mc_eval_sweep_at(c->buf, n, mc_eval_tau_grid[g], c->p->rtt_ms, c->p->reaction_ms, &pt[g]);
        bool here = fabs(mc_eval_tau_grid[g] - c->p->tau) < 1e-9;
        fprintf(f, "| %s%.2f%s | %.1f%% | %.1f%% | %.1f%% | %.1f ms | %.1f | %.1f ms | %d / %d / %d / %d |\n",
                here ? "**" : "", pt[g].tau, here ? "**" : "", pct(pt[g].usage), pct(pt[g].em),
                pct(pt[g].es), pt[g].lat_mean, pt[g].lat_p95, pt[g].time_mean,
                pt[g].n_path[MC_PATH_COPY], pt[g].n_path[MC_PATH_SLM],
                pt[g].n_path[MC_PATH_CONFIDENCE], pt[g].n_path[MC_PATH_REJECTION]);
    }
    if (plot_abs && plot_sweep(c, pt, MC_EVAL_N_TAU, plot_abs))
        fprintf(f, "\n![tau sweep](%s)\n\n", plot_rel);
    else
        fprintf(f, "\n_(plot not drawn: the gnuplot program is missing or failed)_\n\n");
}

/* ---- the copy tier ------------------------------------------------------- */

static void copy_rows(ctx *c, int which) {
    FILE *f = c->f;
    static const int modes[] = {MC_EVAL_COPY, MC_EVAL_SLM_COPY, MC_EVAL_SLM, MC_EVAL_CASCADE,
                                MC_EVAL_CASCADE_NO_COPY};
    for (size_t k = 0; k < MC_ARRAY_LEN(modes); k++) {
        int m = modes[k];
        mc_eval_agg a;
        if (!c->modes[m] || agg_of(c, m, NULL, which, c->p->rtt_ms, &a) != 0 || a.n == 0)
            continue;
        int n_prop = 0;
        for (int i = 0; i < a.n; i++)
            n_prop += c->buf[i]->copy != NULL;
        char pc[32] = "–"; /* the copy mode has only that path */
        if (m != MC_EVAL_COPY)
            snprintf(pc, sizeof pc, "%.1f%%", pct((double)a.n_path[MC_PATH_COPY] / a.n));
        fprintf(f, "| %s | `%s` | %d | %.1f%% | %.1f%% | %.1f%% | %.1f%% | %s | %.1f ms |\n",
                which_name(which), mc_eval_mode_name(m), a.n, pct(a.em),
                pct((double)n_prop / a.n), pct((double)a.n_copy / a.n),
                a.n_copy ? pct((double)a.n_copy_ok / a.n_copy) : 0.0, pc, a.lat_mean);
    }
}

static void section_copy(ctx *c, int held) {
    FILE *f = c->f;
    if (!c->modes[MC_EVAL_COPY] && !c->modes[MC_EVAL_SLM_COPY] && !c->modes[MC_EVAL_CASCADE_NO_COPY])
        return;
    fprintf(f, "## The copy tier\n\nTier 0 proposes the line that followed the last lines above "
               "the cursor elsewhere in the file or the repository (docs/copy.md); its precision "
               "estimate was calibrated on the calibration repositories only. *proposal*: the "
               "tier had a line; *copy shown*: the first suggestion shown was a copy line (at "
               "once, or picked by the small model); *precision*: the share of those that were "
               "right; *path copy*: shown at once without a model (estimate ≥ τ_copy) and "
               "accepted. All splits together.\n\n");
    fprintf(f, "| repositories | mode | tasks | EM | proposal | copy shown | precision | path copy "
               "| latency mean |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
    if (held != REPOS_ALL) {
        copy_rows(c, REPOS_CAL);
        copy_rows(c, REPOS_HELD);
    }
    copy_rows(c, REPOS_ALL);
    fprintf(f, "\n");
    if (c->modes[MC_EVAL_COPY]) {
        fprintf(f, "**τ_copy** (show at once, no model, when the top proposal's estimate is at "
                   "least τ_copy): the share of tasks shown at once and their precision, from the "
                   "`copy` run (its records hold every top proposal's estimate).\n\n"
                   "| τ_copy | calibration: shown | precision | mean estimate | held-out: shown | "
                   "precision | mean estimate |\n|---:|---:|---:|---:|---:|---:|---:|\n");
        static const double taus[] = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9};
        for (size_t k = 0; k < MC_ARRAY_LEN(taus); k++) {
            fprintf(f, "| %.1f |", taus[k]);
            for (int w = 0; w < 2; w++) {
                int n = pick(c, MC_EVAL_COPY, NULL, held == REPOS_ALL ? REPOS_ALL : w ? REPOS_HELD : REPOS_CAL, NULL);
                int shown = 0, ok = 0;
                double est = 0;
                for (int i = 0; i < n; i++)
                    if (c->buf[i]->copy_p >= taus[k]) {
                        shown++;
                        ok += c->buf[i]->score.em;
                        est += c->buf[i]->copy_p;
                    }
                fprintf(f, " %.1f%% | %.1f%% | %.1f%% |", n ? pct((double)shown / n) : 0.0,
                        shown ? pct((double)ok / shown) : 0.0, shown ? pct(est / shown) : 0.0);
            }
            fprintf(f, "\n");
        }
        fprintf(f, "\n");
    }
    if (c->modes[MC_EVAL_COPY] && c->modes[MC_EVAL_SLM]) {
        /* what a pick rule between the two could gain: tasks where one is right */
        int w = held == REPOS_ALL ? REPOS_ALL : REPOS_CAL;
        int n = pick(c, MC_EVAL_COPY, NULL, w, NULL), both = 0, only_copy = 0, only_slm = 0,
            none = 0, total = 0;
        for (int i = 0; i < n; i++) {
            const mc_eval_rec *r = c->buf[i];
            const mc_eval_rec *s = mc_eval_recs_find(c->rs, r->split, r->task, MC_EVAL_SLM);
            if (!r->copy || !s || s->error)
                continue;
            total++;
            both += r->score.em && s->score.em;
            only_copy += r->score.em && !s->score.em;
            only_slm += !r->score.em && s->score.em;
            none += !r->score.em && !s->score.em;
        }
        fprintf(f, "**Pick rule** (%s, tasks with a copy proposal: %d): copy and small model both "
                   "right %d, only the copy line %d, only the small model's line %d, neither %d. "
                   "The small model can only gain where its line alone is right; the pick rule "
                   "(`copy_w`, `copy_theta`, docs/copy.md) is set from this table.\n\n",
                which_name(w), total, both, only_copy, only_slm, none);
    }
}

/* ---- consistency --------------------------------------------------------- */

static void check_line(FILE *f, bool ok, const char *what, const char *detail) {
    fprintf(f, "| %s | %s | %s |\n", ok ? "✓" : "✗ **FAILED**", what, detail);
}

static void section_checks(ctx *c) {
    FILE *f = c->f;
    char d[256];
    fprintf(f, "## Consistency checks\n\nProperties every correct run has; a ✗ means a bug in "
               "the engine or the harness.\n\n| | check | detail |\n|---|---|---|\n");
    for (int m = MC_EVAL_CASCADE; m < MC_EVAL_N_MODES; m++) {
        if (!c->modes[m])
            continue;
        mc_eval_agg a;
        agg_of(c, m, NULL, REPOS_ALL, 0, &a);
        int failed = 0;
        for (int i = 0; i < c->rs->n; i++)
            failed += c->rs->r[i].mode == m && (c->rs->r[i].llm_failed || c->rs->r[i].error);
        int sum = a.n_path[MC_PATH_COPY] + a.n_path[MC_PATH_SLM] + a.n_path[MC_PATH_CONFIDENCE] +
                  a.n_path[MC_PATH_REJECTION] + a.n_path[MC_PATH_LLM];
        int acc = a.n_path[MC_PATH_COPY] + a.n_path[MC_PATH_SLM];
        snprintf(d, sizeof d, "%s: %d + %d + %d + %d = %d of %d", mc_eval_mode_name(m),
                 a.n_path[MC_PATH_COPY], a.n_path[MC_PATH_SLM], a.n_path[MC_PATH_CONFIDENCE],
                 a.n_path[MC_PATH_REJECTION], sum, a.n);
        check_line(f, sum == a.n && a.n_path[MC_PATH_LLM] == 0 &&
                          (mc_eval_mode_copy(m) || a.n_path[MC_PATH_COPY] == 0),
                   "per-path counts sum to the tasks", d);
        if (failed == 0) {
            snprintf(d, sizeof d, "%s: %d tasks call the LLM, %d accepted of %d", mc_eval_mode_name(m),
                     a.n_llm, acc, a.n);
            check_line(f, a.n_llm == a.n - acc, "LLM call rate = 1 − accepted share", d);
        }
        /* the cascade's small-model line is the slm mode's line */
        int same = 0, total = 0;
        for (int i = 0; i < c->rs->n && c->modes[MC_EVAL_SLM]; i++) {
            const mc_eval_rec *r = &c->rs->r[i];
            if (r->mode != m || r->error)
                continue;
            const mc_eval_rec *s = mc_eval_recs_find(c->rs, r->split, r->task, MC_EVAL_SLM);
            if (!s || s->error)
                continue;
            if (!r->slm && r->copy_p > 0)
                continue; /* a copy line shown at once: the SLM did not run */
            total++;
            same += r->slm && !strcmp(r->slm, s->pred);
        }
        if (total) {
            snprintf(d, sizeof d, "%s: %d of %d", mc_eval_mode_name(m), same, total);
            check_line(f, same == total, "the cascade's small-model line = `slm`'s prediction", d);
        }
    }
    /* pairs of modes that must predict the same */
    static const struct {
        int a, b;
        bool escalated_only;
        const char *what;
    } pairs[] = {
        {MC_EVAL_CASCADE, MC_EVAL_CASCADE_NO_SPEC, false,
         "speculative and plain LLM decoding predict the same (`cascade` = `cascade-no-spec`)"},
        {MC_EVAL_CASCADE_NO_ITER, MC_EVAL_LLM_RAG, true,
         "without retrieval round 2 the escalated LLM answer is `llm+rag`'s"},
    };
    for (size_t k = 0; k < MC_ARRAY_LEN(pairs); k++) {
        if (!c->modes[pairs[k].a] || !c->modes[pairs[k].b])
            continue;
        int same = 0, total = 0;
        for (int i = 0; i < c->rs->n; i++) {
            const mc_eval_rec *r = &c->rs->r[i];
            if (r->mode != pairs[k].a || r->error || r->llm_failed)
                continue;
            if (pairs[k].escalated_only && r->path != MC_PATH_CONFIDENCE && r->path != MC_PATH_REJECTION)
                continue;
            const mc_eval_rec *o = mc_eval_recs_find(c->rs, r->split, r->task, pairs[k].b);
            if (!o || o->error || o->llm_failed)
                continue;
            total++;
            same += !strcmp(r->pred, o->pred);
        }
        snprintf(d, sizeof d, "%d of %d tasks", same, total);
        check_line(f, same == total, pairs[k].what, d);
    }
    if (c->modes[MC_EVAL_CASCADE] && c->modes[MC_EVAL_CASCADE_NO_ROUTING]) {
        int same = 0, total = 0;
        for (int i = 0; i < c->rs->n; i++) {
            const mc_eval_rec *r = &c->rs->r[i];
            if (r->mode != MC_EVAL_CASCADE || r->error || r->llm_failed)
                continue;
            const mc_eval_rec *o =
                mc_eval_recs_find(c->rs, r->split, r->task, MC_EVAL_CASCADE_NO_ROUTING);
            mc_eval_outcome oc;
            if (!o || !mc_eval_outcome_at(o, r->tau, 0, &oc))
                continue;
            total++;
            same += oc.path == r->path && !strcmp(oc.pred, r->pred);
        }
        snprintf(d, sizeof d, "%d of %d tasks (path and prediction)", same, total);
        check_line(f, same == total, "the sweep at the run's τ reproduces `cascade`", d);
    }
    fprintf(f, "\n");
}

/* ---- the report ---------------------------------------------------------- */

static int mkdirs(const char *dir) {
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *s = tmp + 1; *s; s++) {
        if (*s == '/') {
            *s = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return -1;
            *s = '/';
        }
    }
    return mkdir(tmp, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

/* Path of `target` relative to the directory of `from` when target is inside
 * it; else target itself. */
static void rel_path(char *out, size_t cap, const char *from, const char *target) {
    const char *slash = strrchr(from, '/');
    size_t dl = slash ? (size_t)(slash - from) + 1 : 0;
    snprintf(out, cap, "%s", dl && !strncmp(from, target, dl) ? target + dl : target);
}

int mc_eval_report(mc_eval_recs *rs, const mc_eval_report_params *p, mc_err *err) {
    ctx c;
    memset(&c, 0, sizeof c);
    mc_file_tmp ft = {0};
    c.rs = rs;
    c.p = p;
    c.buf = malloc((size_t)(rs->n > 0 ? rs->n : 1) * sizeof *c.buf);
    int rc = c.buf ? 0 : MC_ENOMEM;
    for (int i = 0; i < rs->n && rc == 0; i++) {
        c.modes[rs->r[i].mode] = true;
        if (!add_unique(&c.splits, &c.n_splits, rs->r[i].split) ||
            !add_unique(&c.repos, &c.n_repos, rs->r[i].repo))
            rc = MC_ENOMEM;
    }
    if (rc != 0)
        goto out;
    if (c.n_repos > 1)
        qsort(c.repos, (size_t)c.n_repos, sizeof *c.repos, cmp_str);
    if (p->plot_dir && mkdirs(p->plot_dir) != 0) {
        rc = mc_err_set(err, MC_EIO, -1, "cannot create %s: %s", p->plot_dir, strerror(errno));
        goto out;
    }
    if ((rc = mc_file_tmp_open(&ft, p->md_path, 0644, err)) != 0)
        goto out;
    c.f = ft.f;
    const int held = p->tau_calibrated && p->n_cal_repos > 0 ? REPOS_HELD : REPOS_ALL;
    FILE *f = c.f;
    fprintf(f, "# mccom evaluation\n\n");
    if (p->note)
        fprintf(f, "> **Note.** %s\n\n", p->note);
    if (p->command)
        fprintf(f, "Made by:\n```\n%s\n```\n\n", p->command);
    if (p->setup)
        fprintf(f, "%s\n", p->setup);
    fprintf(f, "**Scores** are RepoCoder's (`compute_score.py`): stripped non-blank lines of the "
               "target against as many of the prediction; EM = equal, ES = 1 − Levenshtein / "
               "max length on the '\\n'-joined lines; ES (fuzz) = fuzzywuzzy's `fuzz.ratio` / 100 "
               "on the same strings. **Latency** = model + network time until the final "
               "suggestion is shown (%g ms round trip added per LLM call; the user's reaction, "
               "%g ms per rejection, is reported separately). **Modes**: `slm` small model alone "
               "(with retrieval); `llm` large model, in-file context; `llm+rag` one retrieval "
               "round; `llm+iter` RepoCoder's two rounds (two LLM calls); `copy` the copy tier "
               "alone (its top proposal, no model); `slm+copy` the copy tier, then the small model "
               "(no LLM); `cascade` MCCom with the copy tier (τ = %.2f); "
               "`cascade-no-routing`/`-no-spec`/`-no-iter`/`-no-copy` without confidence routing, "
               "speculative decoding, retrieval round 2, the copy tier.\n\n",
            p->rtt_ms, p->reaction_ms, p->tau);
    headline(&c, held);
    char png[1024], png_rel[1024];
    fprintf(f, "## Results by split\n\n");
    for (int s = 0; s < c.n_splits; s++) {
        fprintf(f, "### %s\n\n", c.splits[s]);
        table_modes(&c, c.splits[s], REPOS_ALL);
    }
    if (c.n_splits > 1) {
        fprintf(f, "### all splits\n\n");
        table_modes(&c, NULL, REPOS_ALL);
    }
    if (held != REPOS_ALL) {
        fprintf(f, "### held-out repositories only (τ was not chosen on them)\n\n");
        table_modes(&c, NULL, REPOS_HELD);
    }
    snprintf(png, sizeof png, "%s/latency-em.png", p->plot_dir ? p->plot_dir : ".");
    rel_path(png_rel, sizeof png_rel, p->md_path, png);
    if (p->plot_dir && plot_latency_em(&c, png))
        fprintf(f, "![latency vs exact match](%s)\n\n", png_rel);
    else
        fprintf(f, "_(plot not drawn: the gnuplot program is missing or failed)_\n\n");
    section_repos(&c);
    section_paths(&c);
    section_spec(&c);
    section_llm(&c, held);
    section_copy(&c, held);
    snprintf(png, sizeof png, "%s/tau-sweep.png", p->plot_dir ? p->plot_dir : ".");
    rel_path(png_rel, sizeof png_rel, p->md_path, png);
    section_sweep(&c, held, png_rel, p->plot_dir ? png : NULL);
    section_checks(&c);
    fprintf(f, "## What these numbers are not\n\n"
               "- The simulated user knows the answer: it accepts exactly the right lines, and "
               "its reaction time (%g ms per rejection) is a constant kept out of latency.\n"
               "- Confidence routing cannot lower model time here: the small model finishes its "
               "line before its confidence is known, and an escalation by confidence runs the "
               "same computation as one after a rejection. What routing saves is the user's "
               "reaction (the sweep's \"latency + reaction\").\n"
               "- With the large model in process, both models share this machine's cores; in "
               "deployment the large model runs on a server (`--rtt-ms` adds the network per "
               "call; `--remote` measures a real server).\n"
               "- Latency is wall time on the machine named above: compare modes within one run, "
               "not across machines or runs.\n"
               "- The copy tier never invents a line: it can only be right where the target line "
               "occurs, after the same line(s), earlier in its file or elsewhere in the "
               "repository.\n\n",
            p->reaction_ms);
    rc = mc_file_tmp_commit(&ft, err); /* a write error seen on f fails it */
    c.f = NULL;
out:
    if (c.f)
        mc_file_tmp_abort(&ft);
    for (int i = 0; i < c.n_splits; i++)
        free(c.splits[i]);
    for (int i = 0; i < c.n_repos; i++)
        free(c.repos[i]);
    free(c.splits);
    free(c.repos);
    free(c.buf);
    if (rc == MC_ENOMEM)
        mc_err_set(err, rc, -1, "out of memory");
    return rc;
}
