/* src/copy/copy_internal.h — the copy index's data structures, shared by the
 * files of the copy module (index.c, propose.c, store.c).
 *
 * Ownership: the index owns every cfile (path, line numbers, hashes) and every
 * posting list; it borrows the retrieval index it follows.
 * Invariants (after a successful sync or load):
 *   - files[] is sorted by path (bytewise), no duplicates; files[i]->rank == i;
 *   - slots[s] is the file whose postings carry file id s, or NULL (a free id,
 *     listed in free_slots[] and in no posting);
 *   - for every file f and non-blank line j >= 1 of f, the list of
 *     K1(h[j-1]) holds exactly one posting (h[j], f->slot, j), and for
 *     j >= 2 so does the list of K2(h[j-2], h[j-1]); nothing else is posted;
 *   - every list is sorted by `next` (ties in any order: proposals never
 *     depend on the order within a run, so incremental updates and rebuilds
 *     answer alike).
 */
#ifndef MCCOM_COPY_INTERNAL_H
#define MCCOM_COPY_INTERNAL_H

#include "mccom/copy.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cpost {
    uint64_t next;   /* normalized hash of the line that followed */
    uint32_t file;   /* slot id of its file */
    uint32_t j;      /* its non-blank line number in that file */
} cpost;

typedef struct clist {
    uint64_t key;
    uint32_t n, cap;
    uint32_t n_sorted; /* p[0..n_sorted) is sorted; appended postings follow */
    cpost *p;
} clist;

typedef struct cfile {
    char *path;
    uint64_t hash;     /* the retrieval index's content hash of the text derived from */
    int n_lines;       /* lines of the text (as the retrieval index counts them) */
    int nb;            /* non-blank lines */
    uint32_t *line;    /* (nb) 0-based line of each non-blank line */
    uint64_t *h;       /* (nb) hash of each non-blank line's normalized form */
    uint32_t slot;
    int rank;          /* position in files[] (path order) */
} cfile;

struct mc_copy_index {
    const mc_retr_index *ix;
    uint64_t gen;      /* the retrieval generation last synced with */
    bool synced;

    cfile **files;     /* (n_files) sorted by path */
    int n_files, cap_files;
    cfile **slots;     /* (n_slots) by slot id; NULL = free */
    uint32_t n_slots, cap_slots;
    uint32_t *free_slots;
    uint32_t n_free, cap_free;

    /* key -> list: open addressing over tab (index+1 into lists, 0 = empty);
     * lists are never deleted (an empty list is a key no longer in use) */
    uint32_t *tab;
    uint32_t n_tab;    /* power of two */
    clist *lists;
    uint32_t n_lists, cap_lists;
    uint32_t *dirty;   /* lists with unsorted postings */
    uint32_t n_dirty, cap_dirty;
    int64_t n_postings;
};

/* index.c */
/* The normalized form of s[0..n): *b..*e without leading and trailing blanks. */
void mc__copy_strip(const char *s, size_t n, size_t *b, size_t *e);
uint64_t mc__copy_hash(const char *s, size_t n);
uint64_t mc__copy_k1(uint64_t a);
uint64_t mc__copy_k2(uint64_t a, uint64_t b);
const clist *mc__copy_list(const mc_copy_index *cx, uint64_t key);
/* The file with this path, or NULL. */
const cfile *mc__copy_find(const mc_copy_index *cx, const char *path);
/* Add a file whose derived arrays are given (ownership of line/h moves to
 * the index, also on failure); replaces a file of the same path. */
int mc__copy_put(mc_copy_index *cx, const char *path, uint64_t hash, int n_lines, int nb,
                 uint32_t *line, uint64_t *h);
/* store.c: mc_copy_load_mem, with the checksum optionally skipped (the fuzz
 * target's mutations then reach the parser). */
int mc__copy_load_mem(mc_copy_index *cx, const void *data, size_t len, bool check_crc,
                      mc_err *err);
/* Sort what updates appended. */
int mc__copy_finish(mc_copy_index *cx);
void mc__copy_clear(mc_copy_index *cx);

#endif
