/* src/retr/retr_internal.h — the index's data structures, shared by the files
 * of the retr module (index.c, walk.c, store.c, prompt.c, watch.c).
 *
 * Ownership: the index owns every rfile (its path, text, line offsets and
 * tokens); windows point at their file; posting lists hold window ids.
 * Invariants:
 *   - files[] is sorted by path (bytewise) with no duplicates;
 *   - a live window w (wins[w].file != NULL) has exactly one posting in the
 *     list of each distinct term of its lines, with that term's count as tf;
 *   - a free window id is in free_ids[] and in no posting list;
 *   - n_live_win and total_len are the number and summed length of live windows.
 */
#ifndef MCCOM_RETR_INTERNAL_H
#define MCCOM_RETR_INTERNAL_H

#include "mccom/retr.h"

#include <stdbool.h>
#include <sys/stat.h>

typedef struct rfile {
    char *path;          /* relative to the root, '/'-separated */
    int64_t mtime_ns;
    int64_t size;
    uint64_t hash;       /* mc__retr_hash64 of the text */
    char *text;          /* (len) bytes, owned; NUL-terminated for convenience */
    size_t len;
    uint32_t *line_off;  /* (n_lines + 1): line i is text[line_off[i], line_off[i+1]) minus its '\n' */
    int n_lines;
    uint32_t *tok;       /* (n_tok) term ids of all lines, line by line */
    uint32_t *tok_off;   /* (n_lines + 1) offsets into tok */
    uint32_t n_tok;
    uint32_t *win;       /* (n_win) window ids */
    int n_win;
} rfile;

typedef struct rwin {
    rfile *file;         /* NULL when the id is free */
    int32_t start;       /* first line */
    int32_t n_lines;
    uint32_t n_terms;    /* distinct terms */
    uint32_t len;        /* tokens */
} rwin;

typedef struct rpost {
    uint32_t win;
    uint32_t tf;
} rpost;

typedef struct rplist {
    uint32_t term;
    uint32_t n, cap;
    rpost *p;
} rplist;

struct mc_retr_index {
    char *root;
    char *root_real;     /* realpath of root, the boundary of every read (set by
                            mc__retr_boundary on first use) */
    mc_retr_params p;
    char **include;      /* owned copies of the include globs */
    mc_retr_tokenizer tok;

    rfile **files;       /* (n_files), sorted by path */
    int n_files, cap_files;

    rwin *wins;          /* (n_wins) ids 0..n_wins-1, live or free */
    uint32_t n_wins, cap_wins;
    uint32_t *free_ids;
    uint32_t n_free, cap_free;
    uint32_t n_live_win;
    int64_t total_len;

    /* term -> posting list: open addressing over `slots` (index+1 into
     * plists, 0 = empty); lists are never deleted, an empty list is a term
     * that no longer occurs. */
    uint32_t *slots;
    uint32_t n_slots;    /* power of two */
    rplist *plists;
    uint32_t n_plists, cap_plists;
    uint32_t n_terms_live;
    /* bumped by every change of a file's content or the file set (mc_retr_generation) */
    uint64_t generation;
};

/* index.c */
uint64_t mc__retr_hash64(const void *data, size_t len);
int mc__retr_find_file(const mc_retr_index *ix, const char *path, bool *found);
/* Add or replace `path` with `text` (ownership of text moves to the index,
 * also on failure). tok/tok_off may be given (from a stored index: ownership
 * moves too) or NULL (then the tokenizer runs). */
int mc__retr_put_file(mc_retr_index *ix, const char *path, char *text, size_t len,
                      int64_t mtime_ns, int64_t size, uint32_t *tok, uint32_t *tok_off,
                      uint32_t n_tok, mc_err *err);
void mc__retr_clear(mc_retr_index *ix);
/* Split text into lines: returns a malloc'd (n+1) offset array or NULL. */
uint32_t *mc__retr_split_lines(const char *text, size_t len, int *n_lines);
/* Normalize a user path to root-relative form into buf; 0 or MC_EINVAL. */
int mc__retr_relpath(const mc_retr_index *ix, const char *path, char *buf, size_t cap);

/* The root's real path (computed once); NULL with err set when the root is
 * not a directory. */
const char *mc__retr_boundary(mc_retr_index *ix, mc_err *err);
/* Count and report a file that leads outside the root. */
void mc__retr_outside(const mc_retr_index *ix, const char *relpath, mc_retr_sync_stats *st);

/* walk.c */
typedef int (*mc__retr_walk_fn)(void *ud, const char *relpath, const struct stat *st);
/* Walk the root (ix->root_real must be set); skipped files counted in st. */
int mc__retr_walk(const mc_retr_index *ix, mc__retr_walk_fn fn, void *ud,
                  mc_retr_sync_stats *st, mc_err *err);
/* 1 if a directory on relpath's way (not the file itself) is a symbolic link. */
int mc__retr_through_link(const mc_retr_index *ix, const char *relpath);
/* 1 if the walk would visit relpath (globs, ignore rules, skipped dirs). */
int mc__retr_path_accepted(const mc_retr_index *ix, const char *relpath);
/* 1 if the content looks binary or generated (the walk skips it). */
int mc__retr_content_rejected(const char *text, size_t len, const char *relpath);
/* Read root/relpath inside the boundary (mc_file_read_in; ix->root_real set). */
int mc__retr_read_in(const mc_retr_index *ix, const char *relpath, char **out, size_t *out_len,
                     mc_err *err);

/* store.c */
int mc__retr_load_mem(mc_retr_index *ix, const void *data, size_t len, bool check_crc,
                      mc_err *err);

#endif
