/* src/cli/cmd_eval.c — `mccom eval`: run benchmark tasks through every mode,
 * append one record per task and mode to OUT/records.jsonl (resumable), and
 * write the markdown report with its plots.
 *
 * Order of work: with --tau auto, the calibration run (cascade-no-routing) on
 * the calibration repositories comes first and fixes τ; then every remaining
 * (repository, mode, task), one repository index at a time. Each task is
 * checked against its repository first: the target's first line must be at
 * line_no of path in the index, else the trees are not the benchmark's (and
 * retrieval's leakage filter could not work). This file does not score or
 * aggregate: src/eval does. */
#include "cli.h"
#include "mccom/eval.h"
#include "mccom/file.h"
#include "mccom/model.h"
#include "mccom/remote.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: mccom eval --bench FILE.jsonl [--bench ...] --slm SLM.gguf [--llm LLM.gguf | --remote URL]\n"
            "                  [options]\n\n"
            "Runs RepoEval-format completion tasks through the small model, the large model and\n"
            "the cascade, scores them as RepoCoder does, and writes a markdown report.\n\n"
            "  --bench FILE        benchmark in RepoEval's JSON Lines format (repeatable; the\n"
            "                      file's name is the split's name)\n"
            "  --repos DIR         the repositories (fetch-repos.sh DIR; default build/bench-repos)\n"
            "  --slm FILE          the small model (GGUF)\n"
            "  --llm FILE          the large model, in process (GGUF, same vocabulary)\n"
            "  --remote URL        the large model behind an HTTP server (mccom serve, vLLM, ...)\n"
            "  --remote-log FILE   log what every large-model call sent (JSON lines)\n"
            "  --vocab FILE        take the tokenizer from this GGUF (default: the small model's)\n"
            "  --modes LIST        comma-separated; default all: slm,llm,llm+rag,llm+iter,copy,\n"
            "                      slm+copy,cascade,cascade-no-routing,cascade-no-spec,\n"
            "                      cascade-no-iter,cascade-no-copy\n"
            "  --no-copy           no copy tier anywhere (drops the modes copy, slm+copy and\n"
            "                      cascade-no-copy from the default list)\n"
            "  --tau-copy X        show a copy proposal at once when its precision is >= X\n"
            "                      (default 0.5; above 1: never)\n"
            "  --copy-w X          pick rule: weight of the small model's preference (default 0)\n"
            "  --copy-theta X      pick rule: a copy candidate replaces the small model's line\n"
            "                      when its score is >= X (default -1e9: always)\n"
            "  --tau X|auto        routing threshold (default auto: chosen on the calibration\n"
            "                      repositories from the cascade-no-routing run)\n"
            "  --cal-repos LIST    calibration repositories (default: first half by name)\n"
            "  --em-drop X         calibration: EM allowed below the best (default 0.01)\n"
            "  --rtt-ms X          network round trip added per LLM call (default 0)\n"
            "  --rtt-report-ms X   a second, realistic round trip shown in the report (default 50)\n"
            "  --reaction-ms X     the simulated user's reaction before a rejection; reported\n"
            "                      separately, never inside latency (default 0)\n"
            "  --per-repo N        the first N tasks of each repository in each file\n"
            "  --limit N           then the first N tasks of each file\n"
            "  --full              every task (the default when neither is given)\n"
            "  --out DIR           records and state (default build/eval); a run resumes there\n"
            "  --report FILE.md    the report (default OUT/eval.md; plots in FILE/ without .md)\n"
            "  --report-only       redraw the report from OUT's records, run nothing\n"
            "  --note TEXT         a remark printed under the report's title\n"
            "  --ctx N             context size of both models (default: the model's)\n"
            "  --prompt-tokens N   prompt budget of both models (default: context - 48)\n"
            "  --retr-tokens N     of which retrieved code at most (default 1000)\n"
            "  -t, --threads N     threads per model (default: all cores)\n"
            "  -q, --quiet         no progress bar\n");
}

typedef struct opts {
    const char *bench[16];
    int n_bench;
    const char *repos, *slm, *llm, *remote, *remote_log, *vocab, *out, *report;
    const char *modes, *tau, *cal_repos, *note;
    double em_drop, rtt, rtt_report, reaction, tau_copy, copy_w, copy_theta;
    int per_repo, limit, full, report_only, quiet, no_copy;
    int ctx, prompt_tokens, retr_tokens, threads;
} opts;

static int parse_num(const char *flag, const char *v, double lo, double hi, double *out) {
    char *end = NULL;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo && x <= hi)) {
        fprintf(stderr, "mccom eval: %s expects a number in [%g, %g], got '%s'\n", flag, lo, hi, v);
        return 2;
    }
    *out = x;
    return 0;
}

static int parse_int(const char *flag, const char *v, int lo, int hi, int *out) {
    double x;
    int rc = parse_num(flag, v, lo, hi, &x);
    if (rc == 0 && x != (int)x) {
        fprintf(stderr, "mccom eval: %s expects an integer, got '%s'\n", flag, v);
        return 2;
    }
    *out = (int)x;
    return rc;
}

static int parse_opts(int argc, char **argv, opts *o) {
    memset(o, 0, sizeof *o);
    o->repos = "build/bench-repos";
    o->out = "build/eval";
    o->tau = "auto";
    o->em_drop = 0.01;
    o->rtt_report = 50;
    o->tau_copy = mc_cascade_params_default().tau_copy;
    o->copy_w = mc_cascade_params_default().copy_w;
    o->copy_theta = mc_cascade_params_default().copy_theta;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 1;
        }
        if (!strcmp(a, "--full") || !strcmp(a, "--report-only") || !strcmp(a, "-q") ||
            !strcmp(a, "--quiet") || !strcmp(a, "--no-copy")) {
            if (!strcmp(a, "--full"))
                o->full = 1;
            else if (!strcmp(a, "--no-copy"))
                o->no_copy = 1;
            else if (!strcmp(a, "--report-only"))
                o->report_only = 1;
            else
                o->quiet = 1;
            continue;
        }
        const char *v = i + 1 < argc ? argv[++i] : NULL;
        if (!v) {
            fprintf(stderr, "mccom eval: unknown option or missing value: %s\n", a);
            return 2;
        }
        int rc = 0;
        if (!strcmp(a, "--bench")) {
            if (o->n_bench == (int)MC_ARRAY_LEN(o->bench)) {
                fprintf(stderr, "mccom eval: at most %d --bench files\n", (int)MC_ARRAY_LEN(o->bench));
                return 2;
            }
            o->bench[o->n_bench++] = v;
        } else if (!strcmp(a, "--repos"))
            o->repos = v;
        else if (!strcmp(a, "--slm"))
            o->slm = v;
        else if (!strcmp(a, "--llm"))
            o->llm = v;
        else if (!strcmp(a, "--remote"))
            o->remote = strcmp(v, "none") ? v : NULL;
        else if (!strcmp(a, "--remote-log"))
            o->remote_log = v;
        else if (!strcmp(a, "--vocab"))
            o->vocab = v;
        else if (!strcmp(a, "--out"))
            o->out = v;
        else if (!strcmp(a, "--report"))
            o->report = v;
        else if (!strcmp(a, "--note"))
            o->note = v;
        else if (!strcmp(a, "--modes"))
            o->modes = v;
        else if (!strcmp(a, "--tau"))
            o->tau = v;
        else if (!strcmp(a, "--cal-repos"))
            o->cal_repos = v;
        else if (!strcmp(a, "--em-drop"))
            rc = parse_num(a, v, 0, 1, &o->em_drop);
        else if (!strcmp(a, "--rtt-ms"))
            rc = parse_num(a, v, 0, 1e6, &o->rtt);
        else if (!strcmp(a, "--rtt-report-ms"))
            rc = parse_num(a, v, 0, 1e6, &o->rtt_report);
        else if (!strcmp(a, "--reaction-ms"))
            rc = parse_num(a, v, 0, 1e6, &o->reaction);
        else if (!strcmp(a, "--tau-copy"))
            rc = parse_num(a, v, 0, 2, &o->tau_copy);
        else if (!strcmp(a, "--copy-w"))
            rc = parse_num(a, v, 0, 100, &o->copy_w);
        else if (!strcmp(a, "--copy-theta"))
            rc = parse_num(a, v, -1e9, 1e9, &o->copy_theta);
        else if (!strcmp(a, "--per-repo"))
            rc = parse_int(a, v, 1, 1 << 30, &o->per_repo);
        else if (!strcmp(a, "--limit"))
            rc = parse_int(a, v, 1, 1 << 30, &o->limit);
        else if (!strcmp(a, "--ctx"))
            rc = parse_int(a, v, 64, 1 << 20, &o->ctx);
        else if (!strcmp(a, "--prompt-tokens"))
            rc = parse_int(a, v, 16, 1 << 20, &o->prompt_tokens);
        else if (!strcmp(a, "--retr-tokens"))
            rc = parse_int(a, v, 0, 1 << 20, &o->retr_tokens);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads"))
            rc = parse_int(a, v, 0, 1024, &o->threads);
        else {
            fprintf(stderr, "mccom eval: unknown option '%s'\n", a);
            return 2;
        }
        if (rc)
            return rc;
    }
    if (o->full && (o->per_repo || o->limit)) {
        fprintf(stderr, "mccom eval: --full excludes --per-repo and --limit\n");
        return 2;
    }
    if (o->llm && o->remote) {
        fprintf(stderr, "mccom eval: give --llm or --remote, not both\n");
        return 2;
    }
    if (o->n_bench == 0 || (!o->report_only && !o->slm)) {
        usage(stderr);
        return 2;
    }
    return 0;
}

/* ---- small helpers --------------------------------------------------------- */

static int split_list(const char *s, char ***out, int *n) {
    *out = NULL;
    *n = 0;
    char *copy = strdup(s ? s : "");
    if (!copy)
        return MC_ENOMEM;
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char **nv = realloc(*out, (size_t)(*n + 1) * sizeof *nv);
        if (!nv || !(nv[*n] = strdup(tok))) {
            free(nv ? nv : *out);
            free(copy);
            return MC_ENOMEM;
        }
        *out = nv;
        (*n)++;
    }
    free(copy);
    return 0;
}

static void free_list(char **v, int n) {
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool in_list(char *const *v, int n, const char *s) {
    for (int i = 0; i < n; i++)
        if (!strcmp(v[i], s))
            return true;
    return false;
}

/* The command line, shell-quoted where needed. */
static char *command_line(int argc, char **argv) {
    size_t cap = 64;
    for (int i = 0; i < argc; i++)
        cap += strlen(argv[i]) * 4 + 3;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    size_t k = (size_t)snprintf(s, cap, "mccom");
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        bool plain = *a != '\0';
        for (const char *c = a; *c; c++)
            plain = plain && (strchr("/._-+,=:@%", *c) || (*c >= '0' && *c <= '9') ||
                              (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z'));
        s[k++] = ' ';
        if (plain) {
            k += (size_t)snprintf(s + k, cap - k, "%s", a);
            continue;
        }
        s[k++] = '\'';
        for (const char *c = a; *c; c++) {
            if (*c == '\'') {
                memcpy(s + k, "'\\''", 4);
                k += 4;
            } else {
                s[k++] = *c;
            }
        }
        s[k++] = '\'';
        s[k] = '\0';
    }
    return s;
}

/* "file (N MB, mtime)" identity of a model, for the run's fingerprint. */
static json_t *file_id(const char *path) {
    struct stat st;
    if (!path)
        return json_null();
    if (stat(path, &st) != 0)
        return json_string(path);
    return json_pack("{s:s, s:I, s:I}", "path", path, "bytes", (json_int_t)st.st_size, "mtime",
                     (json_int_t)st.st_mtime);
}

/* ---- the run's state: OUT/run.json ---------------------------------------- */

/* Settings that the records depend on; a resumed run must have the same. */
static json_t *fingerprint(const opts *o) {
    json_t *b = json_array();
    for (int i = 0; i < o->n_bench; i++)
        json_array_append_new(b, json_string(o->bench[i]));
    return json_pack("{s:o, s:o, s:o, s:s?, s:o, s:s, s:s?, s:i, s:i, s:i, s:b, s:f, s:f, s:f}",
                     "bench", b, "slm", file_id(o->slm), "llm", file_id(o->llm), "remote",
                     o->remote, "vocab", file_id(o->vocab), "tau", o->tau, "cal_repos",
                     o->cal_repos, "ctx", o->ctx, "prompt_tokens", o->prompt_tokens,
                     "retr_tokens", o->retr_tokens, "copy", !o->no_copy, "tau_copy", o->tau_copy,
                     "copy_w", o->copy_w, "copy_theta", o->copy_theta);
}

static int check_state(const opts *o, const char *cmd, const char *setup) {
    char path[1024];
    snprintf(path, sizeof path, "%s/run.json", o->out);
    json_t *fp = fingerprint(o);
    char *want = json_dumps(fp, JSON_SORT_KEYS | JSON_COMPACT);
    json_error_t je;
    json_t *old = json_load_file(path, 0, &je);
    int rc = 0;
    if (old) {
        char *have = json_dumps(json_object_get(old, "settings"), JSON_SORT_KEYS | JSON_COMPACT);
        if (!have || !want || strcmp(have, want) != 0) {
            fprintf(stderr,
                    "mccom eval: %s holds a run with other settings (models, benchmark files, tau "
                    "or budgets):\n  then: %s\n  now:  %s\nuse another --out, or remove %s to start "
                    "over\n",
                    o->out, have ? have : "?", want ? want : "?", o->out);
            rc = 1;
        }
        free(have);
        json_decref(old);
    }
    if (rc == 0) {
        json_t *st = json_pack("{s:O, s:s, s:s}", "settings", fp, "command", cmd, "setup", setup);
        char *txt = st ? json_dumps(st, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
        mc_err e;
        if (!txt || mc_file_replace(path, txt, strlen(txt), 0644, &e) != 0) {
            fprintf(stderr, "mccom eval: cannot write %s: %s\n", path, txt ? e.msg : "out of memory");
            rc = 1;
        }
        free(txt);
        json_decref(st);
    }
    free(want);
    json_decref(fp);
    return rc;
}

/* An interrupted run can leave a torn last line; cut it off so that the
 * records appended next start on a line of their own. */
static int drop_torn_tail(const char *path) {
    FILE *f = fopen(path, "r+b");
    if (!f)
        return errno == ENOENT ? 0 : -1;
    long keep = 0, pos = 0;
    int ch;
    while ((ch = fgetc(f)) != EOF) {
        pos++;
        if (ch == '\n')
            keep = pos;
    }
    int rc = keep < pos ? ftruncate(fileno(f), keep) : 0;
    fclose(f);
    return rc;
}

/* ---- the report ------------------------------------------------------------- */

static int write_report(const opts *o, mc_eval_recs *rs, double tau, char *const *cal, int n_cal,
                        const char *cmd, const char *setup) {
    char md[1024], plots[1024];
    if (o->report)
        snprintf(md, sizeof md, "%s", o->report);
    else
        snprintf(md, sizeof md, "%s/eval.md", o->out);
    snprintf(plots, sizeof plots, "%s", md);
    size_t l = strlen(plots);
    if (l > 3 && !strcmp(plots + l - 3, ".md"))
        plots[l - 3] = '\0';
    else
        snprintf(plots + l, sizeof plots - l, ".d");
    mc_eval_report_params rp = {
        .md_path = md,
        .plot_dir = plots,
        .command = cmd,
        .setup = setup,
        .note = o->note,
        .rtt_ms = o->rtt,
        .rtt_real_ms = o->rtt_report,
        .reaction_ms = o->reaction,
        .tau = tau,
        .tau_calibrated = !strcmp(o->tau, "auto"),
        .em_drop = o->em_drop,
        .cal_repos = (const char *const *)cal,
        .n_cal_repos = n_cal,
    };
    mc_err err;
    if (mc_eval_report(rs, &rp, &err) != 0) {
        mc_cli_error("report", &err);
        return 1;
    }
    fprintf(stderr, "mccom eval: report %s (plots in %s/)\n", md, plots);
    return 0;
}

/* ---- progress ---------------------------------------------------------------- */

typedef struct progress {
    int total, done;
    double t0, last;
    bool tty, quiet;
} progress;

static void progress_show(progress *p, const char *what, bool final) {
    if (p->quiet || p->total == 0)
        return;
    double t = mc_time_s(), el = t - p->t0;
    if (!final && !p->tty && t - p->last < 30.0)
        return;
    p->last = t;
    double eta = p->done > 0 ? el / p->done * (p->total - p->done) : 0;
    char bar[31];
    int fill = (int)(30.0 * p->done / p->total);
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[30] = '\0';
    fprintf(stderr, "%s[%s] %d/%d %3.0f%%  %.1f s/task  elapsed %dm%02ds  ETA %dm%02ds  %-40.40s%s",
            p->tty ? "\r" : "", bar, p->done, p->total, 100.0 * p->done / p->total,
            p->done ? el / p->done : 0.0, (int)el / 60, (int)el % 60, (int)eta / 60, (int)eta % 60,
            what, p->tty && !final ? "" : "\n");
    fflush(stderr);
}

/* ---- the run ------------------------------------------------------------------ */

typedef struct run {
    const opts *o;
    mc_eval_bench *b;
    int nb;
    bool mode_on[MC_EVAL_N_MODES];
    char **cal;
    int n_cal;
    mc_eval_recs recs;
    FILE *out;
    mc_eval_runner *runner;
    mc_retr_index *ix;
    char *ix_repo;
    progress pr;
} run;

/* Make the index of `repo` current. */
static int open_repo(run *R, const char *repo) {
    if (R->ix_repo && !strcmp(R->ix_repo, repo))
        return 0;
    mc_eval_runner_set_index(R->runner, NULL);
    mc_retr_free(R->ix);
    R->ix = NULL;
    free(R->ix_repo);
    R->ix_repo = NULL;
    char root[2048];
    snprintf(root, sizeof root, "%s/%s", R->o->repos, repo);
    struct stat st;
    if (stat(root, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "\nmccom eval: repository %s is missing: run fetch-repos.sh %s (or pass "
                        "--repos)\n", root, R->o->repos);
        return 1;
    }
    mc_err err;
    mc_retr_params rp = mc_retr_params_default();
    if (mc_retr_new(&R->ix, root, &rp, NULL, &err) != 0 || mc_retr_sync(R->ix, NULL, &err) != 0) {
        mc_cli_error(root, &err);
        return 1;
    }
    /* The repository holds every task's finished file; a few of them are
     * files the walk skips as generated (a data table that says "automatically
     * generated"). Index those as they are, so that the leakage filters know
     * their lines, before any mode runs. */
    int added = 0;
    for (int bi = 0; bi < R->nb; bi++) {
        for (int ti = 0; ti < R->b[bi].n; ti++) {
            const mc_eval_task *t = &R->b[bi].tasks[ti];
            mc_retr_file rf;
            if (strcmp(t->repo, repo) || mc_retr_file_get(R->ix, t->path, &rf) == 0)
                continue;
            char fp[4096];
            size_t len;
            snprintf(fp, sizeof fp, "%s/%s", root, t->path);
            char *text = mc_cli_read_file(fp, &len);
            if (text && mc_retr_set_file(R->ix, t->path, text, len, &err) == 0)
                added++;
            free(text);
        }
    }
    if (added && !R->o->quiet)
        fprintf(stderr, "\nmccom eval: %s: indexed %d task file%s the walk skips (generated)\n",
                repo, added, added > 1 ? "s" : "");
    R->ix_repo = strdup(repo);
    mc_eval_runner_set_index(R->runner, R->ix);
    return R->ix_repo ? 0 : 1;
}

/* The task must sit in its repository where the benchmark says: the prompt's
 * last line is the file's line above the target (its end, when the prompt is
 * one cut line). This catches trees that are not the benchmark's, and a path
 * the index does not know, with which retrieval's leakage filter would let
 * the target's own lines into the prompt. */
static int check_task(run *R, const mc_eval_task *t) {
    const char *last = t->prompt + t->prompt_len;
    while (last > t->prompt && last[-1] != '\n')
        last--;
    size_t ll = (size_t)(t->prompt + t->prompt_len - last);
    mc_str w = {NULL, 0};
    bool ok = t->line == 0 ? t->prompt_len == 0
                           : mc_retr_window_text(R->ix, t->path, t->line - 1, 1, &w) == 0 &&
                                 w.len >= ll && memcmp(w.ptr + w.len - ll, last, ll) == 0;
    if (!ok) {
        fprintf(stderr, "\nmccom eval: task %s: line %d of %s/%s/%s is not the line above the "
                        "task's target: the repositories under %s are not the benchmark's "
                        "(fetch-repos.sh recreates them)\n",
                t->id, t->line - 1, R->o->repos, t->repo, t->path, R->o->repos);
        return 1;
    }
    return 0;
}

static int run_unit(run *R, const mc_eval_bench *b, const mc_eval_task *t, int mode) {
    const mc_eval_rec *old = mc_eval_recs_find(&R->recs, b->split, t->id, mode);
    if (old) {
        if (old->hash != t->hash) {
            fprintf(stderr, "\nmccom eval: the record of %s %s in %s was made from a different "
                            "prompt: the benchmark file changed; use another --out\n",
                    b->split, t->id, R->o->out);
            return 1;
        }
        return 0;
    }
    if (open_repo(R, t->repo) != 0 || check_task(R, t) != 0)
        return 1;
    char what[128];
    snprintf(what, sizeof what, "%s %s %s", b->split, t->id, mc_eval_mode_name(mode));
    progress_show(&R->pr, what, false);
    mc_eval_rec rec;
    mc_err err;
    if (mc_eval_run(R->runner, b->split, t, mode, &rec, &err) != 0) {
        mc_cli_error(what, &err);
        return 1;
    }
    if (rec.error && !R->o->quiet)
        fprintf(stderr, "\nmccom eval: %s failed: %s\n", what, rec.error);
    int rc = mc_eval_rec_write(R->out, &rec);
    if (rc == 0)
        rc = mc_eval_recs_push(&R->recs, &rec);
    mc_eval_rec_fini(&rec);
    if (rc != 0) {
        fprintf(stderr, "\nmccom eval: cannot record %s (%s)\n", what, mc_code_message(rc));
        return 1;
    }
    R->pr.done++;
    return 0;
}

/* Every (repository, mode, task) of the phase, repository by repository.
 * count_only: just count what is still to run. */
static int run_phase(run *R, char *const *repos, int n_repos, const bool *modes, int *count) {
    for (int ri = 0; ri < n_repos; ri++) {
        for (int m = 0; m < MC_EVAL_N_MODES; m++) {
            if (!modes[m])
                continue;
            for (int bi = 0; bi < R->nb; bi++) {
                const mc_eval_bench *b = &R->b[bi];
                for (int ti = 0; ti < b->n; ti++) {
                    const mc_eval_task *t = &b->tasks[ti];
                    if (strcmp(t->repo, repos[ri]))
                        continue;
                    if (count) {
                        *count += !mc_eval_recs_find(&R->recs, b->split, t->id, m);
                        continue;
                    }
                    if (run_unit(R, b, t, m) != 0)
                        return 1;
                }
            }
        }
    }
    return 0;
}

static double choose_tau(run *R) {
    int n = 0;
    const mc_eval_rec **cal = malloc((size_t)(R->recs.n + 1) * sizeof *cal);
    if (!cal)
        return -1;
    for (int i = 0; i < R->recs.n; i++)
        if (R->recs.r[i].mode == MC_EVAL_CASCADE_NO_ROUTING && in_list(R->cal, R->n_cal, R->recs.r[i].repo))
            cal[n++] = &R->recs.r[i];
    int g = mc_eval_choose_tau(cal, n, mc_eval_tau_grid, MC_EVAL_N_TAU, R->o->rtt, R->o->reaction,
                               R->o->em_drop);
    free(cal);
    return g < 0 ? -1 : mc_eval_tau_grid[g];
}

/* The run's description for the report. */
static char *describe(const opts *o, const run *R, const mc_model *slm, const mc_model *llm,
                      mc_llm *shared, int n_threads) {
    char *s = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&s, &n);
    if (!f)
        return NULL;
    time_t now = time(NULL);
    char date[64];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    char cpu[256] = "unknown CPU";
    FILE *ci = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (ci && fgets(line, sizeof line, ci)) {
        if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
            snprintf(cpu, sizeof cpu, "%s", strchr(line, ':') + 2);
            cpu[strcspn(cpu, "\n")] = '\0';
            break;
        }
    }
    if (ci)
        fclose(ci);
    fprintf(f, "| | |\n|---|---|\n| date | %s |\n| machine | %s, %ld cores online, %d threads per model |\n",
            date, cpu, sysconf(_SC_NPROCESSORS_ONLN), n_threads);
    const mc_model *ms[2] = {slm, llm};
    const char *names[2] = {o->slm, o->llm};
    for (int i = 0; i < 2; i++) {
        if (!ms[i])
            continue;
        const mc_hparams *h = mc_model_hparams(ms[i]);
        fprintf(f, "| %s | `%s`: %s, %d layers, d %d, %d heads (%d KV), vocabulary %d, context %d; "
                   "%.1f MB of weights |\n",
                i ? "large model (in process)" : "small model", names[i], h->arch, h->n_layer,
                h->n_embd, h->n_head, h->n_head_kv, h->n_vocab, h->n_ctx_train,
                mc_model_weight_bytes(ms[i]) / 1e6);
    }
    if (shared)
        fprintf(f, "| large model | %s |\n", mc_llm_describe(shared));
    fprintf(f, "| benchmark |");
    for (int i = 0; i < R->nb; i++)
        fprintf(f, " %s`%s` (%d tasks)", i ? "; " : "", o->bench[i], R->b[i].n);
    fprintf(f, " |\n| subset |");
    if (o->per_repo)
        fprintf(f, " the first %d task%s of each repository in each file%s", o->per_repo,
                o->per_repo > 1 ? "s" : "", o->limit ? "," : "");
    if (o->limit)
        fprintf(f, " the first %d tasks of each file", o->limit);
    fprintf(f, "%s |\n", o->per_repo || o->limit ? "" : " every task");
    fprintf(f, "| repositories | `%s`", o->repos);
    if (!strcmp(o->tau, "auto")) {
        fprintf(f, "; τ calibrated on ");
        for (int i = 0; i < R->n_cal; i++)
            fprintf(f, "%s%s", i ? ", " : "", R->cal[i]);
    } else {
        fprintf(f, "; τ = %s given", o->tau);
    }
    if (o->no_copy)
        fprintf(f, " |\n| copy tier | off (`--no-copy`)");
    else
        fprintf(f, " |\n| copy tier | on: the top proposal is shown at once when its calibrated "
                   "precision is ≥ τ_copy = %.2f; otherwise the small model scores up to %d "
                   "candidates and picks (`copy_w` %.2f, `copy_theta` %g)",
                o->tau_copy, mc_cascade_params_default().copy_k, o->copy_w, o->copy_theta);
    fprintf(f, " |\n| budgets | prompt %s tokens (retrieved code ≤ %d), ≤ 48 tokens per line; "
               "context %s |\n\n",
            o->prompt_tokens ? "as given" : "context − 48 × lines",
            o->retr_tokens ? o->retr_tokens : 1000, o->ctx ? "as given" : "the model's");
    fclose(f);
    return s;
}

int mc_cmd_eval(int argc, char **argv) {
    opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : rc;
    run R;
    memset(&R, 0, sizeof R);
    R.o = &o;
    mc_err err;
    int status = 1;
    mc_model *slm = NULL, *llm_model = NULL;
    mc_tok *tok = NULL;
    mc_llm *shared = NULL;
    char *cmd = command_line(argc, argv), *setup = NULL; /* argv[0] is "eval" */
    char **modes = NULL, **repos = NULL;
    int n_modes = 0, n_repos = 0;
    double tau = 0.5;

    /* tasks */
    R.b = calloc((size_t)o.n_bench, sizeof *R.b);
    if (!R.b || !cmd)
        goto out;
    for (int i = 0; i < o.n_bench; i++, R.nb++) {
        if (mc_eval_bench_load(o.bench[i], &R.b[i], &err) != 0) {
            mc_cli_error(o.bench[i], &err);
            goto out;
        }
        mc_eval_bench_select(&R.b[i], o.per_repo, o.limit);
        for (int j = 0; j < i; j++)
            if (!strcmp(R.b[j].split, R.b[i].split)) {
                fprintf(stderr, "mccom eval: two benchmark files named %s\n", R.b[i].split);
                goto out;
            }
        for (int t = 0; t < R.b[i].n; t++) {
            bool seen = in_list(repos, n_repos, R.b[i].tasks[t].repo);
            char **nr = seen ? repos : realloc(repos, (size_t)(n_repos + 1) * sizeof *nr);
            if (!nr)
                goto out;
            repos = nr;
            if (!seen && !(repos[n_repos++] = strdup(R.b[i].tasks[t].repo)))
                goto out;
        }
    }
    qsort(repos, (size_t)n_repos, sizeof *repos, cmp_str);

    /* modes, calibration repositories, tau */
    if (split_list(o.modes     ? o.modes
                   : o.no_copy ? "slm,llm,llm+rag,llm+iter,cascade,cascade-no-routing,"
                                 "cascade-no-spec,cascade-no-iter"
                               : "slm,llm,llm+rag,llm+iter,copy,slm+copy,cascade,cascade-no-routing,"
                                 "cascade-no-spec,cascade-no-iter,cascade-no-copy",
                   &modes, &n_modes) != 0)
        goto out;
    for (int i = 0; i < n_modes; i++) {
        int m = mc_eval_mode_parse(modes[i]);
        if (m < 0) {
            fprintf(stderr, "mccom eval: unknown mode '%s'\n", modes[i]);
            status = 2;
            goto out;
        }
        if (o.no_copy && (m == MC_EVAL_COPY || m == MC_EVAL_SLM_COPY)) {
            fprintf(stderr, "mccom eval: mode %s needs the copy tier (drop --no-copy)\n", modes[i]);
            status = 2;
            goto out;
        }
        R.mode_on[m] = true;
    }
    if (o.cal_repos) {
        if (split_list(o.cal_repos, &R.cal, &R.n_cal) != 0)
            goto out;
    } else { /* the first half of the repositories by name */
        R.cal = calloc((size_t)(n_repos / 2 + 1), sizeof *R.cal);
        if (!R.cal)
            goto out;
        for (; R.n_cal < n_repos / 2; R.n_cal++)
            if (!(R.cal[R.n_cal] = strdup(repos[R.n_cal])))
                goto out;
    }
    bool tau_auto = !strcmp(o.tau, "auto");
    if (!tau_auto && parse_num("--tau", o.tau, 0, 1, &tau) != 0) {
        status = 2;
        goto out;
    }
    bool routed = R.mode_on[MC_EVAL_CASCADE] || R.mode_on[MC_EVAL_CASCADE_NO_SPEC] ||
                  R.mode_on[MC_EVAL_CASCADE_NO_ITER] || R.mode_on[MC_EVAL_CASCADE_NO_COPY];
    if (tau_auto && routed && !R.mode_on[MC_EVAL_CASCADE_NO_ROUTING]) {
        fprintf(stderr, "mccom eval: --tau auto adds the calibration run (cascade-no-routing)\n");
        R.mode_on[MC_EVAL_CASCADE_NO_ROUTING] = true;
    }
    if (tau_auto && routed && R.n_cal == 0) {
        fprintf(stderr, "mccom eval: --tau auto needs calibration repositories (at least two "
                        "repositories, or --cal-repos)\n");
        status = 2;
        goto out;
    }

    if (mkdir(o.out, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "mccom eval: cannot create %s: %s\n", o.out, strerror(errno));
        goto out;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/records.jsonl", o.out);
    if (mc_eval_recs_load(path, &R.recs, &err) != 0) {
        mc_cli_error(path, &err);
        goto out;
    }
    if (o.report_only) {
        char state[1024];
        snprintf(state, sizeof state, "%s/run.json", o.out);
        json_error_t je;
        json_t *st = json_load_file(state, 0, &je);
        const char *c0 = json_string_value(json_object_get(st, "command"));
        const char *s0 = json_string_value(json_object_get(st, "setup"));
        for (int i = 0; i < R.recs.n; i++)
            if (R.recs.r[i].mode == MC_EVAL_CASCADE)
                tau = R.recs.r[i].tau;
        status = write_report(&o, &R.recs, tau, R.cal, R.n_cal, c0 ? c0 : cmd, s0);
        json_decref(st);
        goto out;
    }

    /* models */
    if (mc_model_load(o.slm, &slm, &err) != 0) {
        mc_cli_error(o.slm, &err);
        goto out;
    }
    rc = o.vocab ? mc_tok_load_gguf_file(o.vocab, &tok, &err) : mc_tok_load_gguf(mc_model_gguf(slm), &tok, &err);
    if (rc != 0) {
        mc_cli_error(o.vocab ? o.vocab : "the small model's tokenizer (try --vocab FILE.gguf)", &err);
        goto out;
    }
    if (mc_tok_n_vocab(tok) > mc_model_hparams(slm)->n_vocab) {
        fprintf(stderr, "mccom eval: the vocabulary has %d tokens, the small model %d\n",
                mc_tok_n_vocab(tok), mc_model_hparams(slm)->n_vocab);
        goto out;
    }
    if (o.llm) {
        if (mc_model_load(o.llm, &llm_model, &err) != 0) {
            mc_cli_error(o.llm, &err);
            goto out;
        }
        if (mc_model_hparams(llm_model)->n_vocab != mc_model_hparams(slm)->n_vocab) {
            fprintf(stderr, "mccom eval: the models do not share a vocabulary (%d vs %d tokens)\n",
                    mc_model_hparams(slm)->n_vocab, mc_model_hparams(llm_model)->n_vocab);
            goto out;
        }
    } else if (o.remote) {
        mc_remote_params rp = mc_remote_params_default();
        rp.url = o.remote;
        rp.api_key = getenv("MCCOM_API_KEY");
        rp.log_path = o.remote_log;
        if (mc_llm_remote_new(&rp, tok, &shared, &err) != 0) {
            mc_cli_error(o.remote, &err);
            goto out;
        }
    }
    for (int m = 0; m < MC_EVAL_N_MODES; m++) {
        if (R.mode_on[m] && mc_eval_mode_needs_llm(m) && !llm_model && !shared) {
            fprintf(stderr, "mccom eval: mode %s needs a large model (--llm or --remote)\n",
                    mc_eval_mode_name(m));
            status = 2;
            goto out;
        }
    }
    mc_eval_setup es;
    memset(&es, 0, sizeof es);
    es.slm = slm;
    es.tok = tok;
    es.llm_model = llm_model;
    es.llm = shared;
    es.slm_ctx = mc_ctx_params_default();
    es.slm_ctx.n_ctx = o.ctx;
    es.slm_ctx.n_threads = o.threads;
    es.llm_ctx = es.slm_ctx;
    es.params = mc_cascade_params_default();
    /* The evaluation scores what the models answer; a wall-clock budget would make the
     * answers depend on the machine's load (times are measured and reported instead). */
    es.params.llm_budget_ms = 0;
    es.params.tau = (float)tau;
    /* the in-process LLM has the small model's context: its budget follows the
     * small model's, which keeps room for multi-line output */
    es.params.slm_prompt_tokens = o.prompt_tokens;
    es.params.llm_prompt_tokens = shared ? o.prompt_tokens : 0;
    if (o.retr_tokens)
        es.params.retr_tokens = o.retr_tokens;
    es.params.copy = !o.no_copy;
    es.params.tau_copy = (float)o.tau_copy;
    es.params.copy_w = (float)o.copy_w;
    es.params.copy_theta = (float)o.copy_theta;
    if (mc_eval_runner_new(&es, &R.runner, &err) != 0) {
        mc_cli_error("runner", &err);
        goto out;
    }
    setup = describe(&o, &R, slm, llm_model, shared, o.threads ? o.threads : (int)sysconf(_SC_NPROCESSORS_ONLN));
    if (!setup || check_state(&o, cmd, setup) != 0)
        goto out;
    if (drop_torn_tail(path) != 0) {
        fprintf(stderr, "mccom eval: cannot repair %s: %s\n", path, strerror(errno));
        goto out;
    }
    {   /* appended to, never through a link planted at its name */
        int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
        R.out = fd >= 0 ? fdopen(fd, "a") : NULL;
        if (fd >= 0 && !R.out)
            close(fd);
    }
    if (!R.out) {
        fprintf(stderr, "mccom eval: cannot append to %s: %s\n", path, strerror(errno));
        goto out;
    }

    /* phase 1 (tau auto): the calibration run on the calibration repositories */
    bool cal_modes[MC_EVAL_N_MODES] = {false};
    cal_modes[MC_EVAL_CASCADE_NO_ROUTING] = true;
    bool calibrate = tau_auto && routed;
    R.pr.tty = isatty(2);
    R.pr.quiet = o.quiet;
    R.pr.t0 = R.pr.last = mc_time_s();
    if (run_phase(&R, repos, n_repos, R.mode_on, &R.pr.total) != 0)
        goto out;
    if (!o.quiet)
        fprintf(stderr, "mccom eval: %d task runs to do (%d records already in %s)\n", R.pr.total,
                R.recs.n, path);
    if (calibrate) {
        if (run_phase(&R, R.cal, R.n_cal, cal_modes, NULL) != 0)
            goto out;
        tau = choose_tau(&R);
        if (tau < 0) {
            fprintf(stderr, "\nmccom eval: no calibration records on %s (are the calibration "
                            "repositories in the benchmark?)\n", R.cal[0]);
            goto out;
        }
        if (!o.quiet)
            fprintf(stderr, "%smccom eval: tau = %.2f (chosen on %d calibration repositories)\n",
                    R.pr.tty ? "\n" : "", tau, R.n_cal);
        if (mc_eval_runner_set_tau(R.runner, tau, &err) != 0) {
            mc_cli_error("tau", &err);
            goto out;
        }
    }
    if (run_phase(&R, repos, n_repos, R.mode_on, NULL) != 0)
        goto out;
    progress_show(&R.pr, "done", true);
    fclose(R.out);
    R.out = NULL;
    status = write_report(&o, &R.recs, tau, R.cal, R.n_cal, cmd, setup);
out:
    if (R.out)
        fclose(R.out);
    mc_eval_runner_free(R.runner);
    mc_retr_free(R.ix);
    free(R.ix_repo);
    mc_eval_recs_fini(&R.recs);
    for (int i = 0; i < R.nb; i++)
        mc_eval_bench_fini(&R.b[i]);
    free(R.b);
    free_list(R.cal, R.n_cal);
    free_list(modes, n_modes);
    free_list(repos, n_repos);
    mc_llm_free(shared);
    mc_tok_free(tok);
    mc_model_free(llm_model);
    mc_model_free(slm);
    free(cmd);
    free(setup);
    return status;
}
