/* mccom/eval.h — the evaluation harness: RepoEval-format benchmarks, RepoCoder's
 * scores, a simulated user driving the cascade, latency accounting, and the
 * threshold sweep that the report (src/eval/report.c) is made of.
 *
 * Scores (RepoCoder's compute_score.py, microsoft/CodeT): both texts are split
 * into lines as Python's str.splitlines does, each line stripped as
 * str.strip does (Unicode whitespace), blank lines dropped; the prediction
 * keeps at most as many lines as the target has.
 *   EM    1 iff the two line lists are equal.
 *   ES    1 - lev(t, p) / max(|t|, |p|) on the '\n'-joined lines, lev the
 *         unit-cost Levenshtein distance over code points (editdistance.eval);
 *         1 when both are empty (RepoCoder divides by zero there).
 *   fuzz  fuzzywuzzy's fuzz.ratio on the same strings: 100 if equal, 0 if
 *         either is empty, else round-half-even(100 · (|t|+|p| − indel) /
 *         (|t|+|p|)), indel = insertions + deletions (python-Levenshtein's
 *         ratio). Reported beside ES for papers that use it (CodeXGLUE).
 *
 * A run is a list of records, one per (split, task, mode), kept as JSON Lines
 * so that a run resumes after an interruption. Everything in the report is
 * computed from the records: latency with any network round trip (records keep
 * per-task LLM call counts), and the cascade at any threshold τ (the
 * cascade-no-routing mode also escalates, off the record, every task whose
 * small-model line was accepted, so each task has both models' lines).
 *
 * Not here: loading models, progress output, command-line options (cli).
 */
#ifndef MCCOM_EVAL_H
#define MCCOM_EVAL_H

#include "mccom/cascade.h"
#include "mccom/common.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* ---- scores -------------------------------------------------------------- */

/* RepoCoder's normalisation of s[0..n): at most max_lines (< 0: all) stripped
 * non-blank lines joined by '\n', into a malloc'd NUL-terminated string.
 * *n_lines (may be NULL) gets the number of lines kept. Invalid UTF-8 bytes
 * count as one character each. Returns 0 or MC_ENOMEM. */
int mc_eval_normalize(const char *s, size_t n, int max_lines, char **out, size_t *out_len,
                      int *n_lines);

typedef struct mc_eval_score {
    int em;    /* 0 or 1 */
    double es; /* [0, 1] */
    int fuzz;  /* 0..100 */
} mc_eval_score;

/* Score prediction p against target t (both UTF-8, any length). 0 or MC_ENOMEM. */
int mc_eval_score_text(const char *t, size_t tn, const char *p, size_t pn, mc_eval_score *out);

/* Replace invalid UTF-8 in s[0..n) by U+FFFD (as Python's errors="replace"),
 * into a malloc'd NUL-terminated string (NULL: out of memory). Model output
 * goes through this before it is scored or written as JSON. */
char *mc_eval_utf8_clean(const char *s, size_t n, size_t *out_len);

/* ---- benchmark tasks ----------------------------------------------------- */

typedef struct mc_eval_task {
    char *id;           /* metadata.task_id, e.g. "nltk/6" */
    char *repo;         /* fpath_tuple[0]: the repository's directory under the repos root */
    char *path;         /* the rest of fpath_tuple joined by '/': relative to DIR/repo */
    char *prompt;       /* the left context (no trailing newline) */
    size_t prompt_len;
    char *truth;        /* metadata.ground_truth */
    int line;           /* metadata.line_no: 0-based line of the target's first line */
    int n_lines;        /* lines of the ground truth */
    uint64_t hash;      /* FNV-1a 64 of the prompt */
} mc_eval_task;

typedef struct mc_eval_bench {
    char *split;        /* the file's name without directory and ".jsonl" */
    mc_eval_task *tasks;
    int n;
} mc_eval_bench;

/* Read a RepoEval-format JSON Lines file. A malformed line is an error that
 * names the line (err->offset = its byte offset). */
int mc_eval_bench_load(const char *path, mc_eval_bench *out, mc_err *err);
void mc_eval_bench_fini(mc_eval_bench *b);

/* Keep a fixed subset in place: the first per_repo tasks of each repository in
 * file order (per_repo <= 0: all), then the first `limit` of those (<= 0: all). */
void mc_eval_bench_select(mc_eval_bench *b, int per_repo, int limit);

/* ---- modes and records --------------------------------------------------- */

#define MC_EVAL_MODES(X)                                                       \
    X(MC_EVAL_SLM, "slm")                               /* small model alone */ \
    X(MC_EVAL_LLM, "llm")                               /* large model, in-file context */ \
    X(MC_EVAL_LLM_RAG, "llm+rag")                       /* one retrieval round */ \
    X(MC_EVAL_LLM_ITER, "llm+iter")                     /* RepoCoder's two rounds */ \
    X(MC_EVAL_COPY, "copy")                             /* the copy tier alone, no model */ \
    X(MC_EVAL_SLM_COPY, "slm+copy")                     /* copy tier, then the SLM, no LLM */ \
    X(MC_EVAL_CASCADE, "cascade")                       /* MCCom with the copy tier */ \
    X(MC_EVAL_CASCADE_NO_ROUTING, "cascade-no-routing") /* + the calibration data */ \
    X(MC_EVAL_CASCADE_NO_SPEC, "cascade-no-spec")                                   \
    X(MC_EVAL_CASCADE_NO_ITER, "cascade-no-iter")                                   \
    X(MC_EVAL_CASCADE_NO_COPY, "cascade-no-copy")       /* MCCom without tier 0 */

enum mc_eval_mode {
#define MC__EVAL_ENUM(name, str) name,
    MC_EVAL_MODES(MC__EVAL_ENUM)
#undef MC__EVAL_ENUM
    MC_EVAL_N_MODES
};

const char *mc_eval_mode_name(int mode);
int mc_eval_mode_parse(const char *s); /* the mode, or MC_EINVAL */
bool mc_eval_mode_cascade(int mode);   /* a cascade mode (driven by the simulated user) */
bool mc_eval_mode_needs_llm(int mode); /* llm, llm+rag, llm+iter */
bool mc_eval_mode_copy(int mode);      /* the copy tier is on (copy, slm+copy, and the cascade
                                          modes but cascade-no-copy) */

/* One task in one mode. Times in milliseconds of the eval clock. */
typedef struct mc_eval_rec {
    char *split, *task, *repo;
    uint64_t hash;       /* the prompt's hash (a resumed run checks it) */
    int mode;
    double tau;          /* routing threshold of cascade modes, else -1 */
    int path;            /* mc_cascade_path of the final suggestion */
    char *pred;          /* the final suggestion */
    char *slm;           /* the small model's line (slm and cascade modes), or NULL */
    float conf;          /* the confidence of the first suggestion shown, or -1 */
    /* the copy tier (modes with it on): the first suggestion shown was a copy
     * line (source MC_SRC_COPY) with this calibrated precision (always > 0),
     * else <= 0 (-1 as written; 0 in a zeroed record); its top proposal,
     * whether shown or not (NULL: none) */
    float copy_p;
    char *copy;
    mc_eval_score score; /* of pred against the ground truth */
    double ms_first;     /* request until the first suggestion was shown */
    double ms_second;    /* rejection until the escalated suggestion was shown (0: none) */
    /* the large model's share of the final suggestion */
    int calls, prompt_tokens, gen_tokens;
    int draft_tokens, draft_accepted, stage1_accepted, stage2_rounds;
    bool llm_failed;     /* an escalation failed and the small model's line stood */
    /* cascade-no-routing only: the escalation of an accepted line, run off the
     * record for the threshold sweep (its time and calls are not in this
     * record's latency or counts) */
    char *shadow;
    mc_eval_score shadow_score;
    double ms_shadow;
    int shadow_calls;
    char *error;         /* the task failed (pred is ""), or NULL */
} mc_eval_rec;

void mc_eval_rec_fini(mc_eval_rec *r);

/* One record as one JSON line (with '\n') on f, flushed and fdatasync'd (f
 * must be a file; a crash loses at most this record, as a torn last line that
 * mc_eval_recs_load ignores). 0 or MC_EIO. */
int mc_eval_rec_write(FILE *f, const mc_eval_rec *r);

/* All records of a JSON Lines file (a missing file is an empty list; a
 * truncated last line, as an interrupted run leaves, is ignored). */
typedef struct mc_eval_recs {
    mc_eval_rec *r;
    int n, cap;
    int *ht;    /* lookup table of mc_eval_recs_find (internal) */
    int ht_cap;
} mc_eval_recs;

int mc_eval_recs_load(const char *path, mc_eval_recs *out, mc_err *err);
int mc_eval_recs_push(mc_eval_recs *rs, mc_eval_rec *r); /* takes r over; 0 or MC_ENOMEM */
void mc_eval_recs_fini(mc_eval_recs *rs);
/* The record of (split, task, mode), or NULL (the first one if there are
 * several). Builds a lookup table on first use. */
const mc_eval_rec *mc_eval_recs_find(mc_eval_recs *rs, const char *split, const char *task,
                                     int mode);

/* ---- running tasks ------------------------------------------------------- */

/* The clock every time in a record is read from (tests inject a fake one). */
typedef struct mc_eval_clock {
    double (*now_ms)(void *ud);
    void *ud;
} mc_eval_clock;

typedef struct mc_eval_setup {
    mc_model *slm;            /* borrowed */
    const mc_tok *tok;        /* borrowed; both models' vocabulary */
    mc_model *llm_model;      /* in-process large model (borrowed; each mode gets its own context), or */
    mc_llm *llm;              /* a shared large-model tier (borrowed, e.g. remote), or neither */
    mc_ctx_params slm_ctx, llm_ctx;
    /* copy modes need mc_eval_runner_set_index's index to have a copy index:
     * the runner builds one per index it is given (following it) */
    mc_cascade_params params; /* the base parameters of every mode (tau, budgets, ...) */
    mc_eval_clock clock;      /* now_ms NULL: the monotonic clock */
} mc_eval_setup;

typedef struct mc_eval_runner mc_eval_runner;

int mc_eval_runner_new(const mc_eval_setup *s, mc_eval_runner **out, mc_err *err);
void mc_eval_runner_free(mc_eval_runner *r);
/* The repository index of the tasks that follow (borrowed; NULL: none). */
void mc_eval_runner_set_index(mc_eval_runner *r, mc_retr_index *ix);
/* The threshold of the routed cascade modes from now on. */
int mc_eval_runner_set_tau(mc_eval_runner *r, double tau, mc_err *err);

/* Run task t of `split` in `mode` into rec (caller calls mc_eval_rec_fini).
 * Cascade modes play the simulated user: the small model's line is accepted
 * iff it scores EM 1, otherwise rejected (mc_session_escalate) and the large
 * model's line is final. A failing task is not an error: rec->error says why.
 * Returns 0, or MC_EINVAL for a mode that needs a large model when there is
 * none, or MC_ENOMEM. */
int mc_eval_run(mc_eval_runner *r, const char *split, const mc_eval_task *t, int mode,
                mc_eval_rec *rec, mc_err *err);

/* ---- accounting ---------------------------------------------------------- */

/* Time until the final suggestion was shown, with rtt_ms added per LLM call;
 * the user's reaction is never in it. */
double mc_eval_latency(const mc_eval_rec *r, double rtt_ms);

/* What the cascade with threshold tau would have done on a cascade-no-routing
 * record (its shadow escalation stands in for the escalation routing would
 * have made). Returns false when the record cannot say (an error, or an
 * escalation failed). */
typedef struct mc_eval_outcome {
    int path;            /* MC_PATH_SLM, _CONFIDENCE, _REJECTION, or _COPY (shown at once
                            by the copy tier: no threshold changes it) */
    const char *pred;    /* points into the record */
    mc_eval_score score;
    double latency;      /* ms, with rtt */
    int calls;
} mc_eval_outcome;

bool mc_eval_outcome_at(const mc_eval_rec *r, double tau, double rtt_ms, mc_eval_outcome *o);

/* Summary of a set of records (one mode). */
typedef struct mc_eval_agg {
    int n, n_err;
    double em, es, fuzz;                 /* means; es, fuzz in [0,1] */
    double lat_mean, lat_p50, lat_p95;   /* ms, with rtt; percentiles interpolate linearly */
    double react_mean;                   /* ms of user reaction per task (rejections x reaction) */
    int n_path[MC_CASCADE_N_PATHS];      /* by mc_cascade_path */
    int n_copy, n_copy_ok;               /* first suggestions that were copy lines, and right */
    int n_llm;                           /* tasks with at least one LLM call */
    double calls, prompt_tokens, gen_tokens; /* per task */
    long draft_tokens, draft_accepted, stage1_accepted, stage2_rounds;
} mc_eval_agg;

/* Aggregate recs[0..n) (pointers) at round trip rtt_ms and reaction reaction_ms. */
int mc_eval_aggregate(const mc_eval_rec *const *recs, int n, double rtt_ms, double reaction_ms,
                      mc_eval_agg *out);

/* The threshold sweep on cascade-no-routing records: one point per tau. */
typedef struct mc_eval_sweep_pt {
    double tau;
    int n;
    double em, es;
    double usage;        /* share of tasks that call the large model */
    double lat_mean, lat_p95;
    double time_mean;    /* mean latency + reaction (what the user waits) */
    int n_path[MC_CASCADE_N_PATHS];
} mc_eval_sweep_pt;

int mc_eval_sweep_at(const mc_eval_rec *const *cal, int n, double tau, double rtt_ms,
                     double reaction_ms, mc_eval_sweep_pt *out);

/* The thresholds of the sweep and the calibration: 0, 0.05, ..., 1. */
#define MC_EVAL_N_TAU 21
extern const double mc_eval_tau_grid[MC_EVAL_N_TAU];

/* Calibration: the tau of grid[0..n_grid) (ascending) that minimises time_mean among those
 * whose EM is within em_drop of the best EM on the grid (ties: the smaller
 * tau). Returns the index into grid, or MC_EINVAL when there are no records. */
int mc_eval_choose_tau(const mc_eval_rec *const *cal, int n, const double *grid, int n_grid,
                       double rtt_ms, double reaction_ms, double em_drop);

/* ---- report -------------------------------------------------------------- */

typedef struct mc_eval_report_params {
    const char *md_path;       /* the markdown report */
    const char *plot_dir;      /* PNG plots (created); linked relative to md_path's directory */
    const char *command;       /* the command line that made the run (quoted in the report) */
    const char *setup;         /* markdown lines describing models, machine, subset (may be NULL) */
    const char *note;          /* a remark shown under the title, e.g. "stand-in models" (may be NULL) */
    double rtt_ms;             /* the round trip of the run */
    double rtt_real_ms;        /* a realistic round trip also shown (50) */
    double reaction_ms;
    double tau;                /* the routed modes' threshold */
    bool tau_calibrated;       /* tau was chosen on calibration repositories */
    double em_drop;
    const char *const *cal_repos; /* the calibration repositories (tau chosen on them) */
    int n_cal_repos;
} mc_eval_report_params;

/* Write the markdown report and its plots from the records. Plots need the
 * gnuplot program; without it the report says so and has no images. The
 * report replaces md_path crash-safely (mc_file_tmp, file.h): an interrupted
 * run leaves the previous report whole. */
int mc_eval_report(mc_eval_recs *rs, const mc_eval_report_params *p, mc_err *err);

#endif
