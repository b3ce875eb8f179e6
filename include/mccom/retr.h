/* mccom/retr.h — repository retrieval: an incremental index of line windows,
 * token-set Jaccard and BM25 top-k, iterative (generation-augmented) queries,
 * prompt assembly under a token budget.
 *
 * The index covers one repository directory (the "root"). Every source file
 * (walk rules: mc_retr_params and docs/retrieval.md) is split on '\n' into
 * lines (a final newline adds no line) and cut into windows of `window_lines`
 * lines every `stride` lines: [0,W), [S,S+W), ... up to the first window that
 * reaches the end of the file (no trailing windows that are subsets of it); a
 * file shorter than W lines is one window. Each line is tokenized into 32-bit
 * term ids by a pluggable tokenizer (mc_retr_tokenizer); a window is the
 * multiset of its lines' terms. An inverted index (term -> postings of
 * (window, tf)) makes a query touch only windows that share a term with it.
 *
 * Similarities, for query term set Q and window term set D:
 *   Jaccard  |Q ∩ D| / |Q ∪ D|                       (RepoCoder's choice)
 *   BM25     Σ_{t ∈ Q, distinct} idf(t) · tf(t,D)·(k1+1) / (tf(t,D) + k1·(1 − b + b·|D|/avgdl))
 *            idf(t) = ln(1 + (N − n_t + 0.5) / (n_t + 0.5)), |D| = tokens in the window,
 *            N = windows in the index, n_t = windows containing t.
 * Top-k order: score descending, then file path ascending (bytewise), then
 * start line ascending — so results do not depend on the order files were
 * indexed or updated in. Windows with score 0 are never returned.
 *
 * Leakage filter: a query may name its own file and cursor line; windows of
 * that file that overlap or follow the cursor line (end > cursor) are never
 * returned. Windows of it that end at or before the cursor line are fine.
 *
 * Concurrency: one writer. mc_retr_search and the read-only functions take a
 * const index and may run concurrently with each other, never with an update.
 *
 * The workspace boundary: the repository is untrusted. Every file the index
 * reads (sources, .gitignore files) is read through mc_file_read_in
 * (include/mccom/file.h): symbolic links are resolved, and a file that does
 * not lie inside the root's real path is never read. The walk follows a file
 * link that stays inside the root; one that leaves it is skipped, counted
 * (mc_retr_sync_stats.n_outside) and reported (mc_retr_params.on_outside).
 * Directory links are never followed, and an update of a path that goes
 * through one (an editor's save under a linked directory) is refused.
 *
 * The on-disk format is specified byte by byte in src/retr/store.c and in
 * docs/retrieval.md.
 */
#ifndef MCCOM_RETR_H
#define MCCOM_RETR_H

#include "mccom/common.h"

#include <stdint.h>

/* A tokenizer, as callbacks, so that retrieval does not depend on the model
 * tokenizer's module. `name` identifies the vocabulary (it is stored in the
 * on-disk index: an index built with another tokenizer is rejected).
 *
 * tokenize: write up to `cap` term ids of s[0..n) into ids; return the total
 *           number of ids the text has (which may exceed cap: the caller then
 *           retries with a larger buffer), or a negative MC_E* code.
 * count_tokens: the number of tokens of s[0..n) (for prompt budgets), or a
 *           negative MC_E* code. */
typedef struct mc_retr_tokenizer {
    const char *name;
    void *ud;
    int (*tokenize)(void *ud, const char *s, size_t n, uint32_t *ids, int cap);
    int (*count_tokens)(void *ud, const char *s, size_t n);
} mc_retr_tokenizer;

/* The default tokenizer: a fast identifier/number/punctuation splitter.
 * Terms are maximal runs of [A-Za-z0-9_] or of non-ASCII bytes (identifiers,
 * numbers, keywords; UTF-8 kept whole) and single ASCII punctuation characters;
 * whitespace separates and is dropped. A term's id is the 32-bit FNV-1a hash of
 * its bytes. count_tokens is the budget approximation used when no model
 * tokenizer is given: the number of terms plus one per newline (a BPE
 * vocabulary merges some punctuation but splits long identifiers; on the
 * benchmark's Python this is within ~15% of p50k counts, see docs). */
mc_retr_tokenizer mc_retr_tokenizer_split(void);

/* The splitter's id of one term (what mc_retr_tokenizer_split assigns). */
uint32_t mc_retr_term_id(const char *s, size_t n);

typedef enum mc_retr_sim {
    MC_RETR_JACCARD = 0,
    MC_RETR_BM25 = 1,
} mc_retr_sim;

/* Parse "jaccard" / "bm25"; return 0 or MC_EINVAL. */
int mc_retr_sim_parse(const char *s, mc_retr_sim *out);

typedef struct mc_retr_params {
    int window_lines;           /* lines per window (20) */
    int stride;                 /* lines between window starts (10) */
    const char *const *include; /* file-name globs to index; NULL = defaults (common source extensions) */
    int n_include;
    int64_t max_file_bytes;     /* larger files are skipped (1 MiB) */
    int respect_gitignore;      /* read .gitignore files (1) */
    double bm25_k1;             /* 1.2 */
    double bm25_b;              /* 0.75 */
    /* Called (when not NULL) for every file left out because it leads outside
     * the root (a symbolic link), with its root-relative path, so that the
     * skip is reported and never silent. Runs on the thread that syncs. */
    void (*on_outside)(void *ud, const char *relpath);
    void *on_outside_ud;
} mc_retr_params;

mc_retr_params mc_retr_params_default(void);

typedef struct mc_retr_index mc_retr_index;

/* Create an empty index of the directory `root` (the path is kept as given;
 * nothing is read yet). `tok` NULL = the splitter; the tokenizer's ud must
 * outlive the index. Parameters are copied (the include globs too). */
int mc_retr_new(mc_retr_index **out, const char *root, const mc_retr_params *p,
                const mc_retr_tokenizer *tok, mc_err *err);
void mc_retr_free(mc_retr_index *ix);

/* Counts of what a sync did. */
typedef struct mc_retr_sync_stats {
    int n_seen;      /* files the walk accepted */
    int n_indexed;   /* files (re)tokenized */
    int n_unchanged; /* files kept as they were (same mtime+size, or same content hash) */
    int n_removed;   /* files dropped (gone, now ignored, or now binary/too large) */
    int n_skipped;   /* files the walk rejected as binary, generated or too large */
    int n_outside;   /* symbolic links to files outside the root: never read (not in n_skipped) */
} mc_retr_sync_stats;

/* Walk the root and bring the index up to date: files whose mtime or size
 * changed are re-read, and re-indexed only if their content hash changed;
 * new files are added, files no longer present (or no longer accepted) are
 * removed. On an empty index this is a full build. On failure (I/O error on
 * the root itself, out of memory) the index keeps what it had for every file
 * not yet visited; a file that cannot be read is skipped, not fatal.
 * `st` may be NULL. */
int mc_retr_sync(mc_retr_index *ix, mc_retr_sync_stats *st, mc_err *err);

/* Re-index one file from disk, by path relative to the root (an absolute path
 * under the root is accepted too). A file that no longer exists, or is no
 * longer accepted by the walk rules (a directory on its path is a symbolic
 * link, ...), is removed. Returns 1 if the index changed, 0 if not, or a
 * negative code: MC_EACCES when the path leads outside the root (it is then
 * not indexed, and removed if it was; on_outside is called). The rest of the
 * index is untouched. */
int mc_retr_update_file(mc_retr_index *ix, const char *path, mc_err *err);

/* Index `text` as the content of `relpath` (an editor's unsaved buffer; no
 * walk rules apply, mtime/size are recorded as 0 so that the next sync re-reads
 * the file from disk). The text is copied. MC_EACCES (nothing indexed) when
 * the path leads outside the root or through a directory link. */
int mc_retr_set_file(mc_retr_index *ix, const char *relpath, const char *text, size_t len,
                     mc_err *err);

/* Drop a file; MC_ENOTFOUND if it is not indexed. */
int mc_retr_remove_file(mc_retr_index *ix, const char *relpath, mc_err *err);

/* Persist to `path` with mode 0600 (it holds the repository's text) by
 * mc_file_replace's protocol (file.h): a crash leaves the old file or the new
 * one, concurrent savers never share a temp file, a planted link is never
 * written through. The format is canonical: files sorted by path, so two
 * indexes with the same content have byte-identical files. Callers keep it
 * outside the repository (mc_file_cache_dir). */
int mc_retr_save(const mc_retr_index *ix, const char *path, mc_err *err);

/* Replace the index's content with what `path` holds. MC_ENOTFOUND when there
 * is no such file; MC_EFORMAT (with the byte offset) when it is corrupt,
 * truncated, of another version, or was built with other window parameters,
 * another tokenizer or another root. On any failure the index is left empty
 * (a sync then rebuilds it); it never crashes on bad bytes. */
int mc_retr_load(mc_retr_index *ix, const char *path, mc_err *err);

/* Load the same bytes from memory (used by the fuzz target and tests). */
int mc_retr_load_mem(mc_retr_index *ix, const void *data, size_t len, mc_err *err);

typedef struct mc_retr_stats {
    int n_files;
    int n_windows;
    int64_t n_lines;
    int64_t n_bytes;   /* text bytes */
    int64_t n_tokens;  /* sum of window lengths */
    int n_terms;       /* distinct terms */
    int64_t n_postings;
    int64_t mem_bytes; /* approximate heap use */
} mc_retr_stats;

void mc_retr_get_stats(const mc_retr_index *ix, mc_retr_stats *st);
const char *mc_retr_root(const mc_retr_index *ix);

/* Read access to the indexed files, for indexes derived from this one (the
 * copy index, copy.h). Every pointer is a view into the index, valid until its
 * next update. */
typedef struct mc_retr_file {
    const char *path;         /* root-relative, '/'-separated */
    const char *text;         /* the content (NUL-terminated; len bytes) */
    size_t len;
    uint64_t hash;            /* 64-bit content hash (change detection, not cryptographic) */
    int n_lines;              /* lines as the windows count them */
    const uint32_t *line_off; /* (n_lines + 1): line i is text[line_off[i], line_off[i+1])
                                 with its '\n' */
    const uint32_t *tok;      /* the term ids of every line, line by line: line i's are */
    const uint32_t *tok_off;  /* tok[tok_off[i] .. tok_off[i+1]) ((n_lines + 1) offsets) */
} mc_retr_file;

/* Files are numbered 0..mc_retr_n_files()-1 in path order (bytewise). */
int mc_retr_n_files(const mc_retr_index *ix);
/* File i into *out; MC_ERANGE (out zeroed) when i is out of range. */
int mc_retr_file_at(const mc_retr_index *ix, int i, mc_retr_file *out);
/* The file with this root-relative path; MC_ENOTFOUND (out zeroed) if it is not indexed. */
int mc_retr_file_get(const mc_retr_index *ix, const char *relpath, mc_retr_file *out);
/* Term ids of s[0..n) with the index's own tokenizer (as its lines were
 * tokenized): writes up to cap ids, returns how many the text has (may
 * exceed cap), or a negative code. */
int mc_retr_tokenize(const mc_retr_index *ix, const char *s, size_t n, uint32_t *ids, int cap);

/* A counter that changes whenever a file is added, removed or changes content
 * (loads and clears included), and only then: equal values mean the same
 * files with the same texts. */
uint64_t mc_retr_generation(const mc_retr_index *ix);

/* One query. `text` is the query (see mc_retr_query_text). `file` is the path
 * of the query's own file relative to the root (or NULL), `cursor_line` the
 * 0-based line of the cursor in it (the leakage filter). */
typedef struct mc_retr_query {
    const char *text;
    size_t len;
    const char *file;
    int cursor_line;
    int k;          /* how many windows (10) */
    mc_retr_sim sim;
} mc_retr_query;

mc_retr_query mc_retr_query_default(void);

/* One retrieved window. `file` points into the index (valid until the next
 * update of the index). */
typedef struct mc_retr_hit {
    const char *file;
    int start_line; /* 0-based, first line */
    int n_lines;
    double score;
} mc_retr_hit;

/* Top-k windows for q, best first, into hits[0..cap). Returns the number
 * written (≤ min(k, cap)) or a negative code. Allocates only per-call scratch. */
int mc_retr_search(const mc_retr_index *ix, const mc_retr_query *q, mc_retr_hit *hits, int cap,
                   mc_err *err);

/* The text of a window: lines [start_line, start_line+n_lines) of `file`,
 * joined by '\n', no trailing newline; a slice into the index (valid until the
 * next update). MC_ENOTFOUND for an unknown file. */
int mc_retr_window_text(const mc_retr_index *ix, const char *file, int start_line, int n_lines,
                        mc_str *out);

/* Build a query text into a new malloc'd string (*out, *out_len; caller frees).
 * Round 1 (draft NULL): the last `n_lines` lines of `prefix` (the text above
 * the cursor line; a trailing partial line counts as a line).
 * Round 2 (draft non-NULL): the last max(1, n_lines/2) lines of `prefix`, then
 * the non-empty lines of the draft (whitespace-only lines dropped), '\n'-joined. */
int mc_retr_query_text(const char *prefix, size_t prefix_len, int n_lines, const char *draft,
                       size_t draft_len, char **out, size_t *out_len);

/* The line-comment prefix for a source path, by extension: "# " for Python,
 * shell, Ruby, Perl, R, YAML, TOML; "-- " for Lua, SQL, Haskell; "// " for
 * C/C++, Java, JavaScript/TypeScript, Go, Rust, C#, Kotlin, Swift, Scala,
 * PHP and as the default for anything else. */
const char *mc_retr_comment_prefix(const char *path);

typedef struct mc_retr_prompt_params {
    int budget_tokens;       /* at most this many tokens in all (1000) */
    const char *target_path; /* the file being completed: decides the comment syntax (NULL: "# ") */
} mc_retr_prompt_params;

mc_retr_prompt_params mc_retr_prompt_params_default(void);

/* Assemble retrieved windows (hits best first, as from mc_retr_search) into a
 * block of comments to put before the code context. Each window becomes
 *     <c>the below code fragment can be found in:
 *     <c><path>
 *     <c>--------------------------------------------------
 *     <c><line>              (each line of the window)
 *     <c>--------------------------------------------------
 * (<c> the comment prefix). Windows are taken best first while they fit in
 * the token budget (measured with the index's tokenizer's count_tokens); a
 * block that does not fit is skipped and the next one tried. The chosen blocks
 * are written most similar last (nearest the code). *out is malloc'd (caller
 * frees; "" when nothing fits); *n_used (may be NULL) gets the number of
 * windows included and *n_tokens (may be NULL) their token count. */
int mc_retr_prompt(const mc_retr_index *ix, const mc_retr_hit *hits, int n_hits,
                   const mc_retr_prompt_params *pp, char **out, size_t *out_len, int *n_used,
                   int *n_tokens, mc_err *err);

/* Watch mode: inotify watches on every directory under the root (new
 * directories are added as they appear). */
typedef struct mc_retr_watch mc_retr_watch;

int mc_retr_watch_open(mc_retr_watch **out, mc_retr_index *ix, mc_err *err);
void mc_retr_watch_close(mc_retr_watch *w);

/* Wait up to timeout_ms (0: don't wait; -1: forever) for file changes, then
 * drain the pending events and re-index the changed files. Returns the number
 * of files whose index changed (0 on timeout) or a negative code. */
int mc_retr_watch_poll(mc_retr_watch *w, int timeout_ms, mc_err *err);

/* The inotify file descriptor, for callers that multiplex with poll(2). */
int mc_retr_watch_fd(const mc_retr_watch *w);

#endif
