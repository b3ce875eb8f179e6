/* mccom/copy.h — tier 0 of the cascade: repository copy completion (a cache
 * model). No model runs: the line proposed is one that followed the same
 * (or, failing that, similar) lines elsewhere in the file or the repository.
 *
 * The copy index is derived from a retrieval index (retr.h) and follows it:
 * it sees the same files (the same walk, the same incremental updates, the
 * same editor buffers), and mc_copy_sync brings it up to date with whatever
 * changed there. For every file it keeps the non-blank lines in normalized
 * form (a line's normalized form is its bytes without leading and trailing
 * blanks ' ' '\t' '\r' '\f' '\v'; a blank line has an empty form and is not a
 * line here), as 64-bit hashes, and two maps:
 *     K1(a)    -> every line that follows a non-blank line of form a
 *     K2(a, b) -> every line that follows the non-blank lines a, b (in order)
 * each entry saying where (file, line) and, by its multiplicity, how often.
 * The text of a proposal is read from the retrieval index, so the copy index
 * stores no text; indentation comes from the original lines.
 *
 * A proposal for a cursor (mc_copy_propose):
 *   context   the last non-blank lines above the cursor's line, most recent
 *             first (at most max_context of them);
 *   in-file   the lines of the query's own file above the cursor (the
 *             document the caller passes; where the document is a cut, the
 *             indexed file's lines before the cut), and below it when
 *             use_below is set, matched against the context by scanning;
 *   repository  every other indexed file, through K2 and K1;
 *   candidate every distinct normalized line that followed a match, with its
 *             features: the longest context matched (lines), in-file or not,
 *             distance from the cursor of the nearest in-file match, how many
 *             matches propose it and how many matches its context level has
 *             (agreement);
 *   fuzzy     when nothing matches exactly (and `fuzzy` is set): the lines
 *             that followed the lines most similar to the context — in the
 *             retrieval index's top 16 windows for the words (identifiers and
 *             numbers of 2+ characters) of the last two lines, the lines
 *             whose term set has Jaccard similarity >= 0.5 with the context
 *             line's; similarity = that + half the same for the line above
 *             (context 0 marks such a candidate);
 *   precision a calibrated estimate that the candidate is the right line: a
 *             logistic model of the features whose coefficients were fitted
 *             on the calibration repositories of ../shared/bench (biopython,
 *             breezy, dask, mne; bench/bench_copy.c --calibrate prints them);
 *   order     the longer context, then the query's own file (above, then
 *             below the cursor) before other files, then more matches, then
 *             the nearer match, then path and line (fuzzy ones: the more
 *             similar first) — never the order in which files were indexed;
 *   filter    the typed prefix: the non-blank text typed on the cursor's line
 *             must begin the candidate's normalized text (its rest is the
 *             suggestion);
 *   re-indent the candidate keeps its indentation relative to the context line
 *             above it: that line's indentation in the source is replaced by
 *             the query's; the whitespace already typed on the cursor's line
 *             is not repeated.
 * Leakage rule: text of the query's own file at or after the cursor's line is
 * never used unless use_below is set (an editor's buffer below the cursor is
 * the user's own text); the benchmark never sets it, and the indexed copy of
 * the query's file is never used at or after its cursor line.
 *
 * A proposal never invents a line: every candidate is a line that exists in
 * the file or the repository.
 *
 * Token-level prompt lookup (mc_copy_lookup) is the drafting half of the
 * tier: the tokens that followed an earlier occurrence of the last n tokens.
 *
 * Persistence: mc_copy_save / mc_copy_load, a versioned, checksummed file
 * kept beside the retrieval index's (mc_copy_path_for), byte layout in
 * src/copy/store.c and docs/copy.md.
 *
 * Concurrency: one writer (mc_copy_sync, mc_copy_load). mc_copy_propose takes
 * const indexes and may run concurrently with other proposals and retrieval
 * searches, never with an update of either index.
 */
#ifndef MCCOM_COPY_H
#define MCCOM_COPY_H

#include "mccom/common.h"
#include "mccom/retr.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct mc_copy_index mc_copy_index;

/* An empty copy index following `ix` (borrowed: it must outlive the copy
 * index, and must not be replaced by another index under it). Nothing is
 * read until mc_copy_sync. */
int mc_copy_new(mc_copy_index **out, const mc_retr_index *ix, mc_err *err);
void mc_copy_free(mc_copy_index *cx);

/* What a sync did. */
typedef struct mc_copy_sync_stats {
    int n_added, n_updated, n_removed, n_unchanged; /* files */
    double ms;
} mc_copy_sync_stats;

/* Bring the copy index up to date with its retrieval index: files whose
 * content hash changed are derived again, new files added, files gone from
 * the retrieval index removed. O(1) when the retrieval index has not changed
 * since the last sync (its generation); otherwise one pass over the file list
 * plus the work of the changed files. The result does not depend on the
 * history of updates: an index synced incrementally equals one built from
 * scratch (same saved bytes, same proposals). On MC_ENOMEM the index is left
 * consistent but not synced (the next sync retries). `st` may be NULL. */
int mc_copy_sync(mc_copy_index *cx, mc_copy_sync_stats *st, mc_err *err);

/* True when the copy index reflects the retrieval index's current content. */
bool mc_copy_synced(const mc_copy_index *cx);

typedef struct mc_copy_stats {
    int n_files;
    int64_t n_lines;     /* non-blank lines */
    int n_keys;          /* distinct K1 and K2 keys */
    int64_t n_postings;
    int64_t mem_bytes;   /* approximate heap use */
} mc_copy_stats;

void mc_copy_get_stats(const mc_copy_index *cx, mc_copy_stats *st);

/* ---- proposals ------------------------------------------------------------ */

typedef struct mc_copy_params {
    int k;               /* most candidates returned (4) */
    int max_context;     /* most context lines compared (8, at most 16) */
    bool use_below;      /* the document's text after the cursor's line may be
                            matched (an editor: true; a benchmark: false) */
    int max_doc_lines;   /* most document lines scanned above (and below) the
                            cursor (20000) */
    bool fuzzy;          /* similar contexts when no exact one matches (true) */
} mc_copy_params;

mc_copy_params mc_copy_params_default(void);

/* A cursor in a document (the same fields as mc_cascade_doc). */
typedef struct mc_copy_query {
    const char *path;    /* the document's path relative to the index's root, or NULL */
    const char *text;    /* the document (need not be NUL-terminated) */
    size_t len;
    size_t cursor;       /* byte offset, <= len */
    int line;            /* 0-based line of the cursor in the file, or -1: counted from
                            text (the evaluation passes it: its documents are cut files) */
    int n_lines;         /* lines to propose: 0 or 1 the rest of the cursor's line; n > 1
                            also the n-1 non-blank lines that followed the source line */
} mc_copy_query;

/* Where a candidate came from (the account shows it). */
typedef enum mc_copy_source {
    MC_COPY_IN_FILE = 0,   /* the query's own file, above the cursor */
    MC_COPY_BELOW = 1,     /* the query's own file, below the cursor (use_below) */
    MC_COPY_REPO = 2,      /* another file of the repository */
} mc_copy_source;

typedef struct mc_copy_cand {
    char *text;          /* the suggestion: what goes after the cursor (re-indented; n lines
                            joined by '\n'); NUL-terminated, owned */
    size_t len;
    float precision;     /* calibrated estimate that this is the right line, in (0, 1) */
    float score;         /* the model's logit (ranking) */
    int context;         /* lines of context matched by the best match (1..max_context;
                            0: a fuzzy candidate) */
    float similarity;    /* fuzzy: the context's similarity (0..1.5); exact: 0 */
    int source;          /* enum mc_copy_source of the best match */
    int distance;        /* in-file: non-blank lines between the match and the cursor; else 0 */
    int count;           /* matches proposing this line (at its context level) */
    int total;           /* matches of the context at that level */
    char file[256];      /* where the line was taken from (root-relative; the query's path for
                            in-file), cut to fit */
    int line;            /* its 0-based line there */
} mc_copy_cand;

typedef struct mc_copy_result {
    mc_copy_cand *c;     /* n candidates, best first; owned */
    int n;
    int n_considered;    /* distinct candidates before the typed-prefix filter and k */
} mc_copy_result;

void mc_copy_result_fini(mc_copy_result *r);

/* Up to p->k candidates for the cursor of q, best first, into *out (caller
 * calls mc_copy_result_fini; zero candidates is not an error). `p` NULL:
 * defaults. MC_EINVAL for a bad query; MC_ENOMEM; MC_EUNSUPPORTED (with a
 * message) when the copy index is not synced with its retrieval index — call
 * mc_copy_sync first. Allocates only per-call scratch. */
int mc_copy_propose(const mc_copy_index *cx, const mc_copy_query *q, const mc_copy_params *p,
                    mc_copy_result *out, mc_err *err);

/* The features of a candidate, and the calibrated model that turns them into
 * a precision (exposed for the calibration bench and tests). */
typedef struct mc_copy_features {
    int context;         /* lines matched, 1..16; 0: fuzzy */
    bool in_file;        /* the best match is in the query's file (above or below) */
    int distance;        /* in-file distance in lines (0 for other files) */
    int count, total;    /* agreement at the candidate's level */
    float similarity;    /* fuzzy only: the context's similarity */
} mc_copy_features;

#define MC_COPY_N_COEF 12

/* The model's inputs: x[0] = 1, [context = 2], [context >= 3],
 * min(context, 8)/8, in_file, in_file·log2(1 + distance), count/total,
 * log2(1 + count), log2(1 + total), in_file·[context >= 2], [fuzzy],
 * similarity. */
void mc_copy_feature_vector(const mc_copy_features *f, double x[MC_COPY_N_COEF]);

typedef struct mc_copy_calib {
    double c[MC_COPY_N_COEF]; /* logit = Σ c[i]·x[i] */
} mc_copy_calib;

/* The built-in calibration (src/copy/calib.c). */
const mc_copy_calib *mc_copy_calib_default(void);
/* The model: the logit of f under cal, and its precision 1 / (1 + e^-logit). */
double mc_copy_logit(const mc_copy_calib *cal, const mc_copy_features *f);
double mc_copy_precision(const mc_copy_calib *cal, const mc_copy_features *f);

/* ---- token-level prompt lookup (drafts) ------------------------------------ */

/* The continuation of ids[0..n)'s own last tokens: for m = max_n down to
 * min_n (1 <= min_n <= max_n <= 16), find the latest earlier occurrence of
 * ids[n-m..n) in ids[0..n-1) (an occurrence may overlap the suffix but not
 * be it) and copy the tokens that followed it, up to `cap`, into out. Returns
 * the number of tokens written (0: no occurrence at any m); *n_match (may be
 * NULL) gets the m that matched. Pure; O(n · max_n). */
int mc_copy_lookup(const int32_t *ids, int n, int min_n, int max_n, int32_t *out, int cap,
                   int *n_match);

/* ---- persistence ----------------------------------------------------------- */

/* The copy index's file for a retrieval index kept at `retr_path`: the same
 * path with ".copy" appended (so it moves wherever the retrieval index's file
 * goes). Returns 0, or MC_ERANGE when it does not fit in cap bytes. */
int mc_copy_path_for(const char *retr_path, char *buf, size_t cap);

/* Persist to `path` (a temporary file, then renamed: a crash leaves the old
 * file). The format is canonical: files sorted by path, so two indexes with
 * the same content save the same bytes. */
int mc_copy_save(const mc_copy_index *cx, const char *path, mc_err *err);

/* Replace the index's content with what `path` holds; a following
 * mc_copy_sync re-derives only the files whose content hash differs from the
 * retrieval index's. MC_ENOTFOUND when there is no such file; MC_EFORMAT
 * (with the byte offset and what is wrong) when it is corrupt, truncated, of
 * another version, or of another root. On any failure the index is left
 * empty (a sync then rebuilds it); it never crashes on bad bytes. */
int mc_copy_load(mc_copy_index *cx, const char *path, mc_err *err);

/* The same from memory (tests, fuzzing). */
int mc_copy_load_mem(mc_copy_index *cx, const void *data, size_t len, mc_err *err);

#endif
