/* src/copy/index.c — the copy index: per-file normalized line hashes and the
 * K1/K2 maps from the last one or two lines to the lines that followed, kept
 * in step with a retrieval index (mc_copy_sync).
 *
 * It never reads files (the retrieval index did), never stores text (the
 * retrieval index has it), and does not rank anything (propose.c).
 *
 * Updates append postings to the lists they touch and mark them dirty; the
 * end of an update (mc__copy_finish) sorts each dirty list's new tail and
 * merges it into the sorted head, so a one-file update costs the lengths of
 * the lists that file touches, not a sort of the index. */
#include "copy_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- hashing -------------------------------------------------------------- */

static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t fmix64(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    k ^= k >> 33;
    return k;
}

/* 64-bit hash of a normalized line (8 bytes at a time; not cryptographic:
 * a collision could only make two different lines count as one). */
uint64_t mc__copy_hash(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    uint64_t h = 0x2545F4914F6CDD1Dull ^ ((uint64_t)n * 0x9E3779B97F4A7C15ull);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        w *= 0x87c37b91114253d5ull;
        w = rotl64(w, 31);
        w *= 0x4cf5ad432745937full;
        h ^= w;
        h = rotl64(h, 27) * 5 + 0x52dce729;
    }
    uint64_t w = 0;
    if (n > i)
        memcpy(&w, p + i, n - i);
    h ^= fmix64(w ^ (uint64_t)(n - i));
    return fmix64(h);
}

/* Keys of the two maps; distinct seeds keep K1 and K2 keys apart. */
uint64_t mc__copy_k1(uint64_t a) { return fmix64(a ^ 0x6A09E667F3BCC908ull); }

uint64_t mc__copy_k2(uint64_t a, uint64_t b) {
    return fmix64(a * 0x9E3779B97F4A7C15ull ^ rotl64(b, 29) ^ 0xBB67AE8584CAA73Bull);
}

static inline bool is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

void mc__copy_strip(const char *s, size_t n, size_t *b, size_t *e) {
    size_t i = 0, j = n;
    while (i < j && is_blank(s[i]))
        i++;
    while (j > i && is_blank(s[j - 1]))
        j--;
    *b = i;
    *e = j;
}

/* ---- lifecycle ------------------------------------------------------------ */

int mc_copy_new(mc_copy_index **out, const mc_retr_index *ix, mc_err *err) {
    *out = NULL;
    if (!ix)
        return mc_err_set(err, MC_EINVAL, -1, "copy index: no retrieval index to follow");
    mc_copy_index *cx = calloc(1, sizeof *cx);
    if (!cx)
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    cx->ix = ix;
    *out = cx;
    return 0;
}

static void cfile_free(cfile *f) {
    if (!f)
        return;
    free(f->path);
    free(f->line);
    free(f->h);
    free(f);
}

void mc__copy_clear(mc_copy_index *cx) {
    for (int i = 0; i < cx->n_files; i++)
        cfile_free(cx->files[i]);
    cx->n_files = 0;
    for (uint32_t i = 0; i < cx->n_lists; i++)
        free(cx->lists[i].p);
    cx->n_lists = 0;
    free(cx->tab);
    cx->tab = NULL;
    cx->n_tab = 0;
    cx->n_slots = 0;
    cx->n_free = 0;
    cx->n_dirty = 0;
    cx->n_postings = 0;
    cx->synced = false;
}

void mc_copy_free(mc_copy_index *cx) {
    if (!cx)
        return;
    mc__copy_clear(cx);
    free(cx->files);
    free(cx->slots);
    free(cx->free_slots);
    free(cx->lists);
    free(cx->dirty);
    free(cx);
}

/* ---- the key table ---------------------------------------------------------- */

static inline uint32_t slot_of(uint64_t key, uint32_t mask) { return (uint32_t)(key >> 17) & mask; }

static int grow_tab(mc_copy_index *cx) {
    uint32_t n = cx->n_tab ? cx->n_tab * 2 : 4096;
    uint32_t *t = calloc(n, sizeof *t);
    if (!t)
        return MC_ENOMEM;
    for (uint32_t i = 0; i < cx->n_lists; i++) {
        uint32_t j = slot_of(cx->lists[i].key, n - 1);
        while (t[j])
            j = (j + 1) & (n - 1);
        t[j] = i + 1;
    }
    free(cx->tab);
    cx->tab = t;
    cx->n_tab = n;
    return 0;
}

static uint32_t find_list(const mc_copy_index *cx, uint64_t key) {
    if (!cx->n_tab)
        return 0;
    uint32_t mask = cx->n_tab - 1;
    for (uint32_t j = slot_of(key, mask);; j = (j + 1) & mask) {
        uint32_t s = cx->tab[j];
        if (!s || cx->lists[s - 1].key == key)
            return s;
    }
}

const clist *mc__copy_list(const mc_copy_index *cx, uint64_t key) {
    uint32_t s = find_list(cx, key);
    return s ? &cx->lists[s - 1] : NULL;
}

/* The list of `key`, created if new: its id + 1, or 0 when out of memory. */
static uint32_t get_list(mc_copy_index *cx, uint64_t key) {
    uint32_t s = find_list(cx, key);
    if (s)
        return s;
    if ((cx->n_lists + 1) * 2 > cx->n_tab && grow_tab(cx))
        return 0;
    if (cx->n_lists == cx->cap_lists) {
        uint32_t nc = cx->cap_lists ? cx->cap_lists * 2 : 4096;
        clist *nl = realloc(cx->lists, nc * sizeof *nl);
        if (!nl)
            return 0;
        cx->lists = nl;
        cx->cap_lists = nc;
    }
    uint32_t mask = cx->n_tab - 1;
    uint32_t j = slot_of(key, mask);
    while (cx->tab[j])
        j = (j + 1) & mask;
    clist *l = &cx->lists[cx->n_lists];
    memset(l, 0, sizeof *l);
    l->key = key;
    cx->tab[j] = ++cx->n_lists;
    return cx->n_lists;
}

static int push_dirty(mc_copy_index *cx, uint32_t id) {
    if (cx->n_dirty == cx->cap_dirty) {
        uint32_t nc = cx->cap_dirty ? cx->cap_dirty * 2 : 1024;
        uint32_t *nd = realloc(cx->dirty, nc * sizeof *nd);
        if (!nd)
            return MC_ENOMEM;
        cx->dirty = nd;
        cx->cap_dirty = nc;
    }
    cx->dirty[cx->n_dirty++] = id;
    return 0;
}

static int post(mc_copy_index *cx, uint64_t key, cpost e) {
    uint32_t s = get_list(cx, key);
    if (!s)
        return MC_ENOMEM;
    clist *l = &cx->lists[s - 1];
    if (l->n == l->cap) {
        uint32_t nc = l->cap ? l->cap + l->cap / 2 + 4 : 2;
        cpost *np = realloc(l->p, nc * sizeof *np);
        if (!np)
            return MC_ENOMEM;
        l->p = np;
        l->cap = nc;
    }
    /* the first append after a sort makes the list dirty */
    if (l->n == l->n_sorted && push_dirty(cx, s - 1))
        return MC_ENOMEM;
    l->p[l->n++] = e;
    cx->n_postings++;
    return 0;
}

static int cmp_post(const void *a, const void *b) {
    uint64_t x = ((const cpost *)a)->next, y = ((const cpost *)b)->next;
    return (x > y) - (x < y);
}

/* Sort l's appended tail and merge it into the sorted head, from the back
 * (the tail is copied out first, so the merge can write in place). */
static int settle(clist *l) {
    uint32_t a = l->n_sorted, n = l->n;
    if (a == n)
        return 0;
    qsort(l->p + a, n - a, sizeof *l->p, cmp_post);
    if (a > 0 && l->p[a - 1].next > l->p[a].next) {
        cpost *tail = malloc((size_t)(n - a) * sizeof *tail);
        if (!tail)
            return MC_ENOMEM;
        memcpy(tail, l->p + a, (size_t)(n - a) * sizeof *tail);
        int64_t i = (int64_t)a - 1, j = (int64_t)(n - a) - 1, k = (int64_t)n - 1;
        while (j >= 0) {
            if (i >= 0 && l->p[i].next > tail[j].next)
                l->p[k--] = l->p[i--];
            else
                l->p[k--] = tail[j--];
        }
        free(tail);
    }
    l->n_sorted = n;
    return 0;
}

int mc__copy_finish(mc_copy_index *cx) {
    while (cx->n_dirty > 0) {
        if (settle(&cx->lists[cx->dirty[cx->n_dirty - 1]]))
            return MC_ENOMEM;
        cx->n_dirty--;
    }
    for (int i = 0; i < cx->n_files; i++)
        cx->files[i]->rank = i;
    return 0;
}

/* ---- files ------------------------------------------------------------------ */

static int find_pos(const mc_copy_index *cx, const char *path, bool *found) {
    int lo = 0, hi = cx->n_files;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(cx->files[mid]->path, path);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

const cfile *mc__copy_find(const mc_copy_index *cx, const char *path) {
    bool found;
    int i = path ? find_pos(cx, path, &found) : 0;
    return path && found ? cx->files[i] : NULL;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Remove f's postings: each list it touched is filtered once (the list ids
 * are collected first: a popular key occurs on many lines of one file).
 * Filtering keeps the order, so a sorted list stays sorted. Never fails:
 * without memory for the id set it filters every list. */
static void unpost(mc_copy_index *cx, const cfile *f) {
    uint32_t n_ids = f->nb > 0 ? (uint32_t)(2 * f->nb) : 0;
    uint32_t *ids = n_ids ? malloc(n_ids * sizeof *ids) : NULL;
    uint32_t k = 0;
    if (ids) {
        for (int j = 1; j < f->nb; j++) {
            uint32_t s = find_list(cx, mc__copy_k1(f->h[j - 1]));
            if (s)
                ids[k++] = s - 1;
            if (j >= 2) {
                s = find_list(cx, mc__copy_k2(f->h[j - 2], f->h[j - 1]));
                if (s)
                    ids[k++] = s - 1;
            }
        }
    }
    if (ids && k > 1) { /* distinct ids: each list is filtered once */
        qsort(ids, k, sizeof *ids, cmp_u32);
        uint32_t u = 1;
        for (uint32_t i = 1; i < k; i++)
            if (ids[i] != ids[u - 1])
                ids[u++] = ids[i];
        k = u;
    }
    uint32_t n_scan = ids ? k : cx->n_lists;
    for (uint32_t i = 0; i < n_scan; i++) {
        uint32_t id = ids ? ids[i] : i;
        clist *l = &cx->lists[id];
        if (l->n == 0)
            continue;
        uint32_t w = 0, ws = 0;
        for (uint32_t r = 0; r < l->n; r++) {
            if (l->p[r].file == f->slot)
                continue;
            if (r < l->n_sorted)
                ws++;
            l->p[w++] = l->p[r];
        }
        cx->n_postings -= l->n - w;
        l->n = w;
        l->n_sorted = ws; /* the kept sorted head stays a sorted head */
        if (w == 0) {
            free(l->p);
            l->p = NULL;
            l->cap = 0;
        }
    }
    free(ids);
}

static int post_file(mc_copy_index *cx, const cfile *f) {
    for (int j = 1; j < f->nb; j++) {
        cpost e = {f->h[j], f->slot, (uint32_t)j};
        if (post(cx, mc__copy_k1(f->h[j - 1]), e))
            return MC_ENOMEM;
        if (j >= 2 && post(cx, mc__copy_k2(f->h[j - 2], f->h[j - 1]), e))
            return MC_ENOMEM;
    }
    return 0;
}

static int alloc_slot(mc_copy_index *cx, uint32_t *out) {
    if (cx->n_free) {
        *out = cx->free_slots[--cx->n_free];
        return 0;
    }
    if (cx->n_slots == cx->cap_slots) {
        uint32_t nc = cx->cap_slots ? cx->cap_slots * 2 : 256;
        cfile **ns = realloc(cx->slots, nc * sizeof *ns);
        if (!ns)
            return MC_ENOMEM;
        cx->slots = ns;
        cx->cap_slots = nc;
    }
    *out = cx->n_slots++;
    return 0;
}

static void free_slot(mc_copy_index *cx, uint32_t s) {
    cx->slots[s] = NULL;
    if (cx->n_free == cx->cap_free) {
        uint32_t nc = cx->cap_free ? cx->cap_free * 2 : 256;
        uint32_t *nf = realloc(cx->free_slots, nc * sizeof *nf);
        if (!nf)
            return; /* the id is never reused: a leaked slot, not memory */
        cx->free_slots = nf;
        cx->cap_free = nc;
    }
    cx->free_slots[cx->n_free++] = s;
}

static void remove_at(mc_copy_index *cx, int pos) {
    cfile *f = cx->files[pos];
    unpost(cx, f);
    free_slot(cx, f->slot);
    cfile_free(f);
    memmove(cx->files + pos, cx->files + pos + 1, (size_t)(cx->n_files - pos - 1) * sizeof *cx->files);
    cx->n_files--;
}

int mc__copy_put(mc_copy_index *cx, const char *path, uint64_t hash, int n_lines, int nb,
                 uint32_t *line, uint64_t *h) {
    cfile *f = calloc(1, sizeof *f);
    if (!f) {
        free(line);
        free(h);
        return MC_ENOMEM;
    }
    f->line = line;
    f->h = h;
    f->nb = nb;
    f->n_lines = n_lines;
    f->hash = hash;
    f->path = strdup(path);
    bool found;
    int pos = find_pos(cx, path, &found);
    if (!f->path || (!found && cx->n_files == cx->cap_files)) {
        int nc = cx->cap_files ? cx->cap_files * 2 : 64;
        cfile **nf = f->path ? realloc(cx->files, (size_t)nc * sizeof *nf) : NULL;
        if (!nf) {
            cfile_free(f);
            return MC_ENOMEM;
        }
        cx->files = nf;
        cx->cap_files = nc;
    }
    if (found)
        remove_at(cx, pos);
    if (alloc_slot(cx, &f->slot)) {
        cfile_free(f);
        return MC_ENOMEM;
    }
    cx->slots[f->slot] = f;
    if (post_file(cx, f)) {
        /* take back what was posted: the index stays as it was without f */
        unpost(cx, f);
        free_slot(cx, f->slot);
        cfile_free(f);
        return MC_ENOMEM;
    }
    memmove(cx->files + pos + 1, cx->files + pos, (size_t)(cx->n_files - pos) * sizeof *cx->files);
    cx->files[pos] = f;
    cx->n_files++;
    return 0;
}

/* Bytes of line i of a retrieval view, without its '\n'. */
static size_t line_len(const mc_retr_file *rf, int i) {
    uint32_t a = rf->line_off[i], b = rf->line_off[i + 1];
    return b > a && rf->text[b - 1] == '\n' ? b - a - 1 : b - a;
}

/* Derive a file's arrays from the retrieval index's view of it. */
static int derive(mc_copy_index *cx, const mc_retr_file *rf) {
    int nb = 0;
    for (int i = 0; i < rf->n_lines; i++) {
        size_t b, e;
        mc__copy_strip(rf->text + rf->line_off[i], line_len(rf, i), &b, &e);
        nb += e > b;
    }
    uint32_t *line = malloc((size_t)(nb > 0 ? nb : 1) * sizeof *line);
    uint64_t *h = malloc((size_t)(nb > 0 ? nb : 1) * sizeof *h);
    if (!line || !h) {
        free(line);
        free(h);
        return MC_ENOMEM;
    }
    int k = 0;
    for (int i = 0; i < rf->n_lines; i++) {
        const char *s = rf->text + rf->line_off[i];
        size_t b, e;
        mc__copy_strip(s, line_len(rf, i), &b, &e);
        if (e > b) {
            line[k] = (uint32_t)i;
            h[k++] = mc__copy_hash(s + b, e - b);
        }
    }
    return mc__copy_put(cx, rf->path, rf->hash, rf->n_lines, nb, line, h);
}

int mc_copy_sync(mc_copy_index *cx, mc_copy_sync_stats *stp, mc_err *err) {
    mc_copy_sync_stats st;
    memset(&st, 0, sizeof st);
    double t0 = mc_time_s();
    uint64_t gen = mc_retr_generation(cx->ix);
    int rc = 0;
    if (cx->synced && cx->gen == gen)
        goto out;
    cx->synced = false;
    /* both lists are sorted by path: one merge pass */
    int n = mc_retr_n_files(cx->ix);
    int i = 0;
    for (int r = 0; r < n; r++) {
        mc_retr_file rf;
        mc_retr_file_at(cx->ix, r, &rf);
        while (i < cx->n_files && strcmp(cx->files[i]->path, rf.path) < 0) {
            remove_at(cx, i);
            st.n_removed++;
        }
        bool same = i < cx->n_files && !strcmp(cx->files[i]->path, rf.path);
        if (same && cx->files[i]->hash == rf.hash && cx->files[i]->n_lines == rf.n_lines) {
            st.n_unchanged++;
            i++;
            continue;
        }
        rc = derive(cx, &rf);
        if (rc) {
            rc = mc_err_set(err, rc, -1, "out of memory deriving the copy index of %s", rf.path);
            goto out;
        }
        if (same)
            st.n_updated++;
        else
            st.n_added++;
        i++;
    }
    while (i < cx->n_files) {
        remove_at(cx, i);
        st.n_removed++;
    }
    if (mc__copy_finish(cx)) {
        rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory sorting the copy index");
        goto out;
    }
    cx->gen = gen;
    cx->synced = true;
out:
    st.ms = (mc_time_s() - t0) * 1e3;
    if (stp)
        *stp = st;
    return rc;
}

bool mc_copy_synced(const mc_copy_index *cx) {
    return cx->synced && cx->gen == mc_retr_generation(cx->ix);
}

void mc_copy_get_stats(const mc_copy_index *cx, mc_copy_stats *st) {
    memset(st, 0, sizeof *st);
    st->n_files = cx->n_files;
    int64_t mem = (int64_t)cx->cap_files * (int64_t)sizeof(void *) +
                  (int64_t)cx->cap_slots * (int64_t)sizeof(void *) + (int64_t)cx->cap_free * 4 +
                  (int64_t)cx->n_tab * 4 + (int64_t)cx->cap_lists * (int64_t)sizeof(clist) +
                  (int64_t)cx->cap_dirty * 4;
    for (int i = 0; i < cx->n_files; i++) {
        const cfile *f = cx->files[i];
        st->n_lines += f->nb;
        mem += (int64_t)sizeof *f + (int64_t)strlen(f->path) + 1 + (int64_t)f->nb * 12;
    }
    for (uint32_t i = 0; i < cx->n_lists; i++) {
        st->n_keys += cx->lists[i].n > 0;
        mem += (int64_t)cx->lists[i].cap * (int64_t)sizeof(cpost);
    }
    st->n_postings = cx->n_postings;
    st->mem_bytes = mem;
}
