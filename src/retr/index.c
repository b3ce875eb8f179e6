/* src/retr/index.c — the in-memory index: files, line windows, the inverted
 * index (term -> postings), incremental add/remove of one file, sync with the
 * directory, and top-k search with Jaccard or BM25.
 * It does not walk directories (walk.c), persist (store.c) or format prompts
 * (prompt.c). */
#include "retr_internal.h"

#include "mccom/file.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const default_include[] = {
    "*.py", "*.pyi", "*.c", "*.h", "*.cc", "*.cpp", "*.cxx", "*.hpp", "*.hh", "*.hxx",
    "*.java", "*.kt", "*.scala", "*.js", "*.jsx", "*.mjs", "*.ts", "*.tsx", "*.go", "*.rs",
    "*.rb", "*.php", "*.cs", "*.swift", "*.m", "*.sh", "*.lua", "*.sql",
};

mc_retr_params mc_retr_params_default(void) {
    mc_retr_params p;
    memset(&p, 0, sizeof p);
    p.window_lines = 20;
    p.stride = 10;
    p.include = NULL;
    p.n_include = 0;
    p.max_file_bytes = 1 << 20;
    p.respect_gitignore = 1;
    p.bm25_k1 = 1.2;
    p.bm25_b = 0.75;
    return p;
}

mc_retr_query mc_retr_query_default(void) {
    mc_retr_query q;
    memset(&q, 0, sizeof q);
    q.cursor_line = -1;
    q.k = 10;
    q.sim = MC_RETR_JACCARD;
    return q;
}

int mc_retr_sim_parse(const char *s, mc_retr_sim *out) {
    if (s && !strcmp(s, "jaccard")) {
        *out = MC_RETR_JACCARD;
        return 0;
    }
    if (s && !strcmp(s, "bm25")) {
        *out = MC_RETR_BM25;
        return 0;
    }
    return MC_EINVAL;
}

/* A 64-bit content hash for change detection (not cryptographic). */
static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
static inline uint64_t fmix64(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    k ^= k >> 33;
    return k;
}

uint64_t mc__retr_hash64(const void *data, size_t len) {
    const unsigned char *p = data;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ ((uint64_t)len * 0xC2B2AE3D27D4EB4Full);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        w *= 0x87c37b91114253d5ull;
        w = rotl64(w, 31);
        w *= 0x4cf5ad432745937full;
        h ^= w;
        h = rotl64(h, 27) * 5 + 0x52dce729;
    }
    uint64_t w = 0;
    if (len > i)
        memcpy(&w, p + i, len - i);
    h ^= fmix64(w ^ (uint64_t)(len - i));
    return fmix64(h);
}

uint32_t *mc__retr_split_lines(const char *text, size_t len, int *n_lines) {
    size_t n = 0;
    for (const char *q = text; (q = memchr(q, '\n', (size_t)(text + len - q))) != NULL; q++)
        n++;
    if (len > 0 && text[len - 1] != '\n')
        n++;
    if (n >= (size_t)INT_MAX || len >= UINT32_MAX) {
        *n_lines = -1;
        return NULL;
    }
    uint32_t *off = malloc((n + 1) * sizeof *off);
    if (!off) {
        *n_lines = -1;
        return NULL;
    }
    size_t k = 0;
    off[0] = 0;
    for (size_t i = 0; i < len; i++)
        if (text[i] == '\n')
            off[++k] = (uint32_t)(i + 1);
    if (k < n)
        off[++k] = (uint32_t)len;
    *n_lines = (int)n;
    return off;
}

/* ---- lifecycle ---- */

int mc_retr_new(mc_retr_index **out, const char *root, const mc_retr_params *pp,
                const mc_retr_tokenizer *tok, mc_err *err) {
    *out = NULL;
    mc_retr_params p = pp ? *pp : mc_retr_params_default();
    if (!root || !*root)
        return mc_err_set(err, MC_EINVAL, -1, "retrieval: no repository root given");
    if (p.window_lines < 1 || p.window_lines > 100000 || p.stride < 1 || p.stride > 100000)
        return mc_err_set(err, MC_EINVAL, -1,
                          "retrieval: window lines (%d) and stride (%d) must be in 1..100000",
                          p.window_lines, p.stride);
    if (!(p.bm25_k1 >= 0) || !(p.bm25_b >= 0 && p.bm25_b <= 1))
        return mc_err_set(err, MC_EINVAL, -1, "retrieval: BM25 needs k1 >= 0 and 0 <= b <= 1");
    if (p.max_file_bytes <= 0 || p.max_file_bytes > ((int64_t)1 << 31))
        p.max_file_bytes = (int64_t)1 << 31;
    mc_retr_tokenizer t = tok ? *tok : mc_retr_tokenizer_split();
    if (!t.tokenize || !t.count_tokens || !t.name || !*t.name)
        return mc_err_set(err, MC_EINVAL, -1, "retrieval: tokenizer needs a name and both callbacks");
    if (p.n_include < 0 || (p.n_include > 0 && !p.include))
        return mc_err_set(err, MC_EINVAL, -1, "retrieval: bad include globs");

    mc_retr_index *ix = calloc(1, sizeof *ix);
    if (!ix)
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    ix->root = strdup(root);
    size_t rl = strlen(ix->root ? ix->root : "");
    while (rl > 1 && ix->root[rl - 1] == '/')
        ix->root[--rl] = '\0';
    const char *const *inc = p.include ? p.include : default_include;
    int n_inc = p.include ? p.n_include : (int)MC_ARRAY_LEN(default_include);
    ix->include = calloc((size_t)n_inc + 1, sizeof *ix->include);
    if (!ix->root || !ix->include) {
        mc_retr_free(ix);
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    }
    for (int i = 0; i < n_inc; i++) {
        ix->include[i] = strdup(inc[i] ? inc[i] : "");
        if (!ix->include[i]) {
            mc_retr_free(ix);
            return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
        }
    }
    p.include = (const char *const *)ix->include;
    p.n_include = n_inc;
    ix->p = p;
    ix->tok = t;
    *out = ix;
    return 0;
}

static void rfile_free(rfile *f) {
    if (!f)
        return;
    free(f->path);
    free(f->text);
    free(f->line_off);
    free(f->tok);
    free(f->tok_off);
    free(f->win);
    free(f);
}

void mc__retr_clear(mc_retr_index *ix) {
    for (int i = 0; i < ix->n_files; i++)
        rfile_free(ix->files[i]);
    ix->n_files = 0;
    for (uint32_t i = 0; i < ix->n_plists; i++)
        free(ix->plists[i].p);
    ix->n_plists = 0;
    free(ix->slots);
    ix->slots = NULL;
    ix->n_slots = 0;
    ix->n_wins = 0;
    ix->n_free = 0;
    ix->n_live_win = 0;
    ix->total_len = 0;
    ix->n_terms_live = 0;
    ix->generation++;
}

void mc_retr_free(mc_retr_index *ix) {
    if (!ix)
        return;
    mc__retr_clear(ix);
    free(ix->files);
    free(ix->wins);
    free(ix->free_ids);
    free(ix->plists);
    if (ix->include)
        for (int i = 0; ix->include[i]; i++)
            free(ix->include[i]);
    free(ix->include);
    free(ix->root);
    free(ix->root_real);
    free(ix);
}

const char *mc_retr_root(const mc_retr_index *ix) { return ix->root; }

const char *mc__retr_boundary(mc_retr_index *ix, mc_err *err) {
    if (!ix->root_real)
        ix->root_real = mc_file_root_real(ix->root, err);
    return ix->root_real;
}

void mc__retr_outside(const mc_retr_index *ix, const char *relpath, mc_retr_sync_stats *st) {
    if (st)
        st->n_outside++;
    if (ix->p.on_outside)
        ix->p.on_outside(ix->p.on_outside_ud, relpath);
}

/* ---- files ---- */

/* Binary search: the position of path, or where it would be inserted. */
int mc__retr_find_file(const mc_retr_index *ix, const char *path, bool *found) {
    int lo = 0, hi = ix->n_files;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(ix->files[mid]->path, path);
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

static const rfile *lookup(const mc_retr_index *ix, const char *path) {
    bool found;
    int i = mc__retr_find_file(ix, path, &found);
    return found ? ix->files[i] : NULL;
}

/* ---- the term table ---- */

static inline uint32_t slot_of(uint32_t term, uint32_t mask) {
    uint32_t h = term * 0x9E3779B1u;
    h ^= h >> 15;
    return h & mask;
}

static int grow_slots(mc_retr_index *ix) {
    uint32_t n = ix->n_slots ? ix->n_slots * 2 : 1024;
    uint32_t *s = calloc(n, sizeof *s);
    if (!s)
        return MC_ENOMEM;
    for (uint32_t i = 0; i < ix->n_plists; i++) {
        uint32_t j = slot_of(ix->plists[i].term, n - 1);
        while (s[j])
            j = (j + 1) & (n - 1);
        s[j] = i + 1;
    }
    free(ix->slots);
    ix->slots = s;
    ix->n_slots = n;
    return 0;
}

static rplist *plist_find(const mc_retr_index *ix, uint32_t term) {
    if (!ix->n_slots)
        return NULL;
    uint32_t mask = ix->n_slots - 1;
    for (uint32_t j = slot_of(term, mask);; j = (j + 1) & mask) {
        uint32_t s = ix->slots[j];
        if (!s)
            return NULL;
        if (ix->plists[s - 1].term == term)
            return &ix->plists[s - 1];
    }
}

static rplist *plist_get(mc_retr_index *ix, uint32_t term) {
    rplist *pl = plist_find(ix, term);
    if (pl)
        return pl;
    if ((ix->n_plists + 1) * 2 > ix->n_slots && grow_slots(ix))
        return NULL;
    if (ix->n_plists == ix->cap_plists) {
        uint32_t nc = ix->cap_plists ? ix->cap_plists * 2 : 1024;
        rplist *np = realloc(ix->plists, nc * sizeof *np);
        if (!np)
            return NULL;
        ix->plists = np;
        ix->cap_plists = nc;
    }
    uint32_t mask = ix->n_slots - 1;
    uint32_t j = slot_of(term, mask);
    while (ix->slots[j])
        j = (j + 1) & mask;
    pl = &ix->plists[ix->n_plists];
    memset(pl, 0, sizeof *pl);
    pl->term = term;
    ix->slots[j] = ++ix->n_plists;
    return pl;
}

static int plist_push(mc_retr_index *ix, rplist *pl, uint32_t win, uint32_t tf) {
    if (pl->n == pl->cap) {
        uint32_t nc = pl->cap ? pl->cap + pl->cap / 2 + 4 : 4;
        rpost *np = realloc(pl->p, nc * sizeof *np);
        if (!np)
            return MC_ENOMEM;
        pl->p = np;
        pl->cap = nc;
    }
    if (pl->n == 0)
        ix->n_terms_live++;
    pl->p[pl->n++] = (rpost){win, tf};
    return 0;
}

/* ---- windows ---- */

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Sort ids[0..n) (radix sort for large inputs, insertion for tiny ones). */
static void sort_u32(uint32_t *ids, uint32_t n, uint32_t *tmp) {
    if (n < 64 || !tmp) {
        if (n < 2)
            return;
        if (n < 24) {
            for (uint32_t i = 1; i < n; i++) {
                uint32_t v = ids[i];
                uint32_t j = i;
                while (j > 0 && ids[j - 1] > v) {
                    ids[j] = ids[j - 1];
                    j--;
                }
                ids[j] = v;
            }
            return;
        }
        qsort(ids, n, sizeof *ids, cmp_u32);
        return;
    }
    uint32_t cnt[256];
    uint32_t *src = ids, *dst = tmp;
    for (int shift = 0; shift < 32; shift += 8) {
        memset(cnt, 0, sizeof cnt);
        for (uint32_t i = 0; i < n; i++)
            cnt[(src[i] >> shift) & 255]++;
        uint32_t s = 0;
        for (int b = 0; b < 256; b++) {
            uint32_t c = cnt[b];
            cnt[b] = s;
            s += c;
        }
        for (uint32_t i = 0; i < n; i++)
            dst[cnt[(src[i] >> shift) & 255]++] = src[i];
        uint32_t *t = src;
        src = dst;
        dst = t;
    }
    /* four passes: the result is back in ids */
}

static int alloc_win(mc_retr_index *ix, uint32_t *id) {
    if (ix->n_free) {
        *id = ix->free_ids[--ix->n_free];
        return 0;
    }
    if (ix->n_wins == ix->cap_wins) {
        uint32_t nc = ix->cap_wins ? ix->cap_wins * 2 : 1024;
        rwin *nw = realloc(ix->wins, nc * sizeof *nw);
        if (!nw)
            return MC_ENOMEM;
        ix->wins = nw;
        ix->cap_wins = nc;
    }
    *id = ix->n_wins++;
    return 0;
}

static int push_free(mc_retr_index *ix, uint32_t id) {
    if (ix->n_free == ix->cap_free) {
        uint32_t nc = ix->cap_free ? ix->cap_free * 2 : 1024;
        uint32_t *nf = realloc(ix->free_ids, nc * sizeof *nf);
        if (!nf)
            return MC_ENOMEM;
        ix->free_ids = nf;
        ix->cap_free = nc;
    }
    ix->free_ids[ix->n_free++] = id;
    return 0;
}

static int n_windows_for(int n_lines, int W, int S) {
    if (n_lines <= 0)
        return 0;
    if (n_lines <= W)
        return 1;
    return 1 + (n_lines - W + S - 1) / S;
}

/* Remove f's windows from the postings and free their ids. Never fails:
 * without memory for a term list it scans every posting list. */
static void drop_windows(mc_retr_index *ix, rfile *f) {
    if (f->n_win == 0)
        return;
    for (int i = 0; i < f->n_win; i++) {
        rwin *w = &ix->wins[f->win[i]];
        ix->n_live_win--;
        ix->total_len -= w->len;
        w->file = NULL;
    }
    uint32_t *terms = f->n_tok ? malloc(f->n_tok * sizeof *terms) : NULL;
    uint32_t *tmp = f->n_tok ? malloc(f->n_tok * sizeof *tmp) : NULL;
    if (terms && tmp) {
        memcpy(terms, f->tok, f->n_tok * sizeof *terms);
        sort_u32(terms, f->n_tok, tmp);
    }
    uint32_t n_pl = (terms && tmp) ? f->n_tok : ix->n_plists;
    for (uint32_t i = 0; i < n_pl; i++) {
        rplist *pl;
        if (terms && tmp) {
            if (i > 0 && terms[i] == terms[i - 1])
                continue;
            pl = plist_find(ix, terms[i]);
            if (!pl)
                continue;
        } else {
            pl = &ix->plists[i];
        }
        uint32_t k = 0;
        for (uint32_t j = 0; j < pl->n; j++)
            if (ix->wins[pl->p[j].win].file)
                pl->p[k++] = pl->p[j];
        if (pl->n > 0 && k == 0)
            ix->n_terms_live--;
        pl->n = k;
        if (k == 0) {
            free(pl->p);
            pl->p = NULL;
            pl->cap = 0;
        }
    }
    free(terms);
    free(tmp);
    for (int i = 0; i < f->n_win; i++)
        if (push_free(ix, f->win[i])) {
            /* out of memory for the free list: the id stays unused (leaks a slot, not memory) */
        }
    f->n_win = 0;
}

/* Cut f into windows and post them. On failure the windows added so far are
 * dropped again (the file is left with none). */
static int add_windows(mc_retr_index *ix, rfile *f) {
    int W = ix->p.window_lines, S = ix->p.stride;
    int nw = n_windows_for(f->n_lines, W, S);
    f->n_win = 0;
    if (nw == 0)
        return 0;
    f->win = malloc((size_t)nw * sizeof *f->win);
    uint32_t max_tok = 0;
    for (int i = 0; i < nw; i++) {
        int s = i * S, e = MC_MIN(s + W, f->n_lines);
        max_tok = MC_MAX(max_tok, f->tok_off[e] - f->tok_off[s]);
    }
    uint32_t *buf = malloc(((size_t)max_tok + 1) * sizeof *buf);
    uint32_t *tmp = malloc(((size_t)max_tok + 1) * sizeof *tmp);
    int rc = 0;
    if (!f->win || !buf || !tmp) {
        rc = MC_ENOMEM;
        goto done;
    }
    for (int i = 0; i < nw; i++) {
        int s = i * S, e = MC_MIN(s + W, f->n_lines);
        uint32_t a = f->tok_off[s], b = f->tok_off[e], n = b - a;
        memcpy(buf, f->tok + a, n * sizeof *buf);
        sort_u32(buf, n, tmp);
        uint32_t n_terms = 0;
        for (uint32_t j = 0; j < n; j++)
            if (j == 0 || buf[j] != buf[j - 1])
                n_terms++;
        uint32_t id;
        rc = alloc_win(ix, &id);
        if (rc)
            goto done;
        ix->wins[id] = (rwin){f, s, e - s, n_terms, n};
        f->win[f->n_win++] = id;
        ix->n_live_win++;
        ix->total_len += n;
        for (uint32_t j = 0; j < n;) {
            uint32_t k = j + 1;
            while (k < n && buf[k] == buf[j])
                k++;
            rplist *pl = plist_get(ix, buf[j]);
            if (!pl || plist_push(ix, pl, id, k - j)) {
                rc = MC_ENOMEM;
                goto done;
            }
            j = k;
        }
    }
done:
    free(buf);
    free(tmp);
    if (rc)
        drop_windows(ix, f);
    return rc;
}

/* Tokenize every line of f into f->tok / f->tok_off. */
static int tokenize_file(const mc_retr_index *ix, rfile *f, mc_err *err) {
    uint32_t cap = (uint32_t)MC_MIN((size_t)f->len / 3 + 16, (size_t)UINT32_MAX / 8);
    f->tok = malloc(cap * sizeof *f->tok);
    f->tok_off = malloc(((size_t)f->n_lines + 1) * sizeof *f->tok_off);
    if (!f->tok || !f->tok_off)
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    uint32_t n = 0;
    for (int i = 0; i < f->n_lines; i++) {
        f->tok_off[i] = n;
        const char *s = f->text + f->line_off[i];
        size_t len = f->line_off[i + 1] - f->line_off[i];
        for (;;) {
            int room = (int)MC_MIN((size_t)(cap - n), (size_t)INT_MAX);
            int k = ix->tok.tokenize(ix->tok.ud, s, len, f->tok + n, room);
            if (k < 0)
                return mc_err_set(err, k, -1, "%s: tokenizer failed on line %d", f->path, i + 1);
            if (k <= room) {
                n += (uint32_t)k;
                break;
            }
            if ((uint64_t)n + (uint64_t)k > UINT32_MAX / 8)
                return mc_err_set(err, MC_ERANGE, -1, "%s: too many tokens", f->path);
            uint32_t nc = MC_MAX(cap * 2, n + (uint32_t)k);
            uint32_t *nt = realloc(f->tok, nc * sizeof *nt);
            if (!nt)
                return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
            f->tok = nt;
            cap = nc;
        }
    }
    f->tok_off[f->n_lines] = n;
    f->n_tok = n;
    return 0;
}

int mc__retr_put_file(mc_retr_index *ix, const char *path, char *text, size_t len,
                      int64_t mtime_ns, int64_t size, uint32_t *tok, uint32_t *tok_off,
                      uint32_t n_tok, mc_err *err) {
    rfile *f = calloc(1, sizeof *f);
    if (!f) {
        free(text);
        free(tok);
        free(tok_off);
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    }
    f->text = text;
    f->len = len;
    f->tok = tok;
    f->tok_off = tok_off;
    f->n_tok = n_tok;
    f->mtime_ns = mtime_ns;
    f->size = size;
    f->path = strdup(path);
    if (!f->path) {
        rfile_free(f);
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    }
    f->line_off = mc__retr_split_lines(text, len, &f->n_lines);
    if (!f->line_off) {
        rfile_free(f);
        return mc_err_set(err, f->n_lines < 0 && len >= UINT32_MAX ? MC_ERANGE : MC_ENOMEM, -1,
                          "%s: cannot split into lines", path);
    }
    f->hash = mc__retr_hash64(text, len);
    if (!tok) {
        int rc = tokenize_file(ix, f, err);
        if (rc) {
            rfile_free(f);
            return rc;
        }
    }
    bool found;
    int pos = mc__retr_find_file(ix, path, &found);
    if (!found && ix->n_files == ix->cap_files) {
        int nc = ix->cap_files ? ix->cap_files * 2 : 64;
        rfile **nf = realloc(ix->files, (size_t)nc * sizeof *nf);
        if (!nf) {
            rfile_free(f);
            return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
        }
        ix->files = nf;
        ix->cap_files = nc;
    }
    int rc = add_windows(ix, f);
    if (rc) {
        rfile_free(f);
        return mc_err_set(err, rc, -1, "out of memory indexing %s", path);
    }
    if (found) {
        rfile *old = ix->files[pos];
        drop_windows(ix, old);
        rfile_free(old);
        ix->files[pos] = f;
    } else {
        memmove(ix->files + pos + 1, ix->files + pos, (size_t)(ix->n_files - pos) * sizeof *ix->files);
        ix->files[pos] = f;
        ix->n_files++;
    }
    ix->generation++;
    return 0;
}

static void remove_at(mc_retr_index *ix, int pos) {
    rfile *f = ix->files[pos];
    drop_windows(ix, f);
    rfile_free(f);
    memmove(ix->files + pos, ix->files + pos + 1, (size_t)(ix->n_files - pos - 1) * sizeof *ix->files);
    ix->n_files--;
    ix->generation++;
}

int mc__retr_relpath(const mc_retr_index *ix, const char *path, char *buf, size_t cap) {
    const char *p = path;
    if (!p || !*p)
        return MC_EINVAL;
    size_t rl = strlen(ix->root);
    if (p[0] == '/') {
        if (!strncmp(p, ix->root, rl) && p[rl] == '/') {
            p += rl;
        } else {
            char rr[PATH_MAX];
            if (!realpath(ix->root, rr))
                return MC_EINVAL;
            size_t n = strlen(rr);
            if (strncmp(p, rr, n) || p[n] != '/')
                return MC_EINVAL;
            p += n;
        }
    }
    /* copy, dropping empty and "." components; reject ".." */
    size_t k = 0;
    while (*p) {
        while (*p == '/')
            p++;
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0)
            break;
        if (n == 1 && p[0] == '.') {
            p += n;
            continue;
        }
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return MC_EINVAL;
        if (k + n + 2 > cap)
            return MC_EINVAL;
        if (k)
            buf[k++] = '/';
        memcpy(buf + k, p, n);
        k += n;
        p += n;
    }
    if (k == 0)
        return MC_EINVAL;
    buf[k] = '\0';
    return 0;
}

int mc_retr_set_file(mc_retr_index *ix, const char *relpath, const char *text, size_t len,
                     mc_err *err) {
    char rel[PATH_MAX];
    if (mc__retr_relpath(ix, relpath, rel, sizeof rel))
        return mc_err_set(err, MC_EINVAL, -1, "%s: not a path inside %s", relpath, ix->root);
    if ((int64_t)len > ix->p.max_file_bytes)
        return mc_err_set(err, MC_ERANGE, -1, "%s: %zu bytes is more than the limit", rel, len);
    /* A buffer at a path whose file on disk is a link out of the root (or that
     * goes through a linked directory) stays out, as the walk would leave it.
     * A root that is not a directory (an index of buffers only) has no disk. */
    if (mc__retr_boundary(ix, NULL)) {
        char full[PATH_MAX];
        if ((size_t)snprintf(full, sizeof full, "%s/%s", ix->root, rel) >= sizeof full)
            return mc_err_set(err, MC_EINVAL, -1, "%s: path too long", rel);
        if (mc_file_inside(ix->root_real, full) == 0) {
            mc__retr_outside(ix, rel, NULL);
            return mc_err_set(err, MC_EACCES, -1, "%s leads outside %s; not indexed", rel,
                              ix->root);
        }
        if (access(full, F_OK) == 0 && mc__retr_through_link(ix, rel))
            return mc_err_set(err, MC_EACCES, -1,
                              "%s: a directory on its path is a symbolic link; not indexed", rel);
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    memcpy(copy, text, len);
    copy[len] = '\0';
    return mc__retr_put_file(ix, rel, copy, len, 0, 0, NULL, NULL, 0, err);
}

int mc_retr_remove_file(mc_retr_index *ix, const char *relpath, mc_err *err) {
    char rel[PATH_MAX];
    if (mc__retr_relpath(ix, relpath, rel, sizeof rel))
        return mc_err_set(err, MC_EINVAL, -1, "%s: not a path inside %s", relpath, ix->root);
    bool found;
    int pos = mc__retr_find_file(ix, rel, &found);
    if (!found)
        return mc_err_set(err, MC_ENOTFOUND, -1, "%s: not indexed", rel);
    remove_at(ix, pos);
    return 0;
}

static int64_t mtime_of(const struct stat *st) {
    return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

/* Bring one file (known to exist as `st`) up to date. Returns 1 if the index
 * changed, 0 if not, 2 if the file was rejected (binary/generated/too large)
 * and dropped or not added, 3 if it turned out to lead outside the root (a
 * link swapped in since the walk; not read, dropped), or a negative code. */
static int refresh_one(mc_retr_index *ix, const char *rel, const struct stat *st, mc_err *err) {
    bool found;
    int pos = mc__retr_find_file(ix, rel, &found);
    int64_t mt = mtime_of(st);
    if (found && ix->files[pos]->mtime_ns == mt && ix->files[pos]->size == (int64_t)st->st_size &&
        mt != 0)
        return 0;
    if ((int64_t)st->st_size > ix->p.max_file_bytes) {
        if (found)
            remove_at(ix, pos);
        return 2;
    }
    char *text;
    size_t len;
    mc_err e2;
    if (mc__retr_read_in(ix, rel, &text, &len, &e2)) {
        if (e2.code == MC_ENOMEM)
            return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
        if (found)
            remove_at(ix, pos);
        return e2.code == MC_EACCES ? 3 : 2;
    }
    if ((int64_t)len > ix->p.max_file_bytes || mc__retr_content_rejected(text, len, rel)) {
        free(text);
        if (found)
            remove_at(ix, pos);
        return 2;
    }
    if (found && ix->files[pos]->len == len && ix->files[pos]->hash == mc__retr_hash64(text, len) &&
        !memcmp(ix->files[pos]->text, text, len)) {
        free(text);
        ix->files[pos]->mtime_ns = mt;
        ix->files[pos]->size = (int64_t)st->st_size;
        return 0;
    }
    int rc = mc__retr_put_file(ix, rel, text, len, mt, (int64_t)st->st_size, NULL, NULL, 0, err);
    return rc ? rc : 1;
}

int mc_retr_update_file(mc_retr_index *ix, const char *path, mc_err *err) {
    char rel[PATH_MAX];
    if (mc__retr_relpath(ix, path, rel, sizeof rel))
        return mc_err_set(err, MC_EINVAL, -1, "%s: not a path inside %s", path, ix->root);
    char full[PATH_MAX];
    if ((size_t)snprintf(full, sizeof full, "%s/%s", ix->root, rel) >= sizeof full)
        return mc_err_set(err, MC_EINVAL, -1, "%s: path too long", rel);
    if (!mc__retr_boundary(ix, err))
        return err ? err->code : MC_ENOTFOUND;
    struct stat st;
    bool found;
    int pos = mc__retr_find_file(ix, rel, &found);
    if (mc_file_inside(ix->root_real, full) == 0) {
        /* a link (the file's or a directory's on the way) out of the root */
        if (found)
            remove_at(ix, pos);
        mc__retr_outside(ix, rel, NULL);
        return mc_err_set(err, MC_EACCES, -1, "%s leads outside %s; not indexed", rel, ix->root);
    }
    if (stat(full, &st) != 0 || !S_ISREG(st.st_mode) || mc__retr_through_link(ix, rel) ||
        !mc__retr_path_accepted(ix, rel)) {
        if (found) {
            remove_at(ix, pos);
            return 1;
        }
        return 0;
    }
    int rc = refresh_one(ix, rel, &st, err);
    if (rc == 3) {
        mc__retr_outside(ix, rel, NULL);
        return mc_err_set(err, MC_EACCES, -1, "%s leads outside %s; not indexed", rel, ix->root);
    }
    if (rc == 2)
        return found ? 1 : 0;
    return rc;
}

/* ---- sync ---- */

struct seen_ent {
    char *path;
    struct stat st;
};

struct seen {
    struct seen_ent *e;
    int n, cap;
};

static int seen_add(void *ud, const char *rel, const struct stat *st) {
    struct seen *s = ud;
    if (s->n == s->cap) {
        int nc = s->cap ? s->cap * 2 : 256;
        struct seen_ent *ne = realloc(s->e, (size_t)nc * sizeof *ne);
        if (!ne)
            return MC_ENOMEM;
        s->e = ne;
        s->cap = nc;
    }
    s->e[s->n].path = strdup(rel);
    if (!s->e[s->n].path)
        return MC_ENOMEM;
    s->e[s->n++].st = *st;
    return 0;
}

static int cmp_seen(const void *a, const void *b) {
    return strcmp(((const struct seen_ent *)a)->path, ((const struct seen_ent *)b)->path);
}

int mc_retr_sync(mc_retr_index *ix, mc_retr_sync_stats *stp, mc_err *err) {
    mc_retr_sync_stats st;
    memset(&st, 0, sizeof st);
    struct seen s = {0};
    int rc = mc__retr_boundary(ix, err) ? 0 : (err ? err->code : MC_ENOTFOUND);
    if (rc == 0)
        rc = mc__retr_walk(ix, seen_add, &s, &st, err);
    if (rc)
        goto out;
    qsort(s.e, (size_t)s.n, sizeof *s.e, cmp_seen);
    /* drop indexed files the walk did not see (both lists sorted) */
    {
        int j = 0;
        for (int i = 0; i < ix->n_files;) {
            while (j < s.n && strcmp(s.e[j].path, ix->files[i]->path) < 0)
                j++;
            if (j < s.n && !strcmp(s.e[j].path, ix->files[i]->path)) {
                i++;
                continue;
            }
            remove_at(ix, i);
            st.n_removed++;
        }
    }
    for (int j = 0; j < s.n; j++) {
        bool was;
        mc__retr_find_file(ix, s.e[j].path, &was);
        int r = refresh_one(ix, s.e[j].path, &s.e[j].st, err);
        if (r < 0) {
            rc = r;
            goto out;
        }
        st.n_seen++;
        if (r == 0)
            st.n_unchanged++;
        else if (r == 1)
            st.n_indexed++;
        else if (r == 3) {
            mc__retr_outside(ix, s.e[j].path, &st);
            st.n_seen--;
            if (was)
                st.n_removed++;
        } else {
            st.n_skipped++;
            st.n_seen--;
            if (was)
                st.n_removed++;
        }
    }
out:
    for (int i = 0; i < s.n; i++)
        free(s.e[i].path);
    free(s.e);
    if (stp)
        *stp = st;
    return rc;
}

/* ---- stats and text ---- */

void mc_retr_get_stats(const mc_retr_index *ix, mc_retr_stats *st) {
    memset(st, 0, sizeof *st);
    st->n_files = ix->n_files;
    st->n_windows = (int)ix->n_live_win;
    st->n_tokens = ix->total_len;
    st->n_terms = (int)ix->n_terms_live;
    int64_t mem = (int64_t)ix->cap_files * sizeof(void *) + (int64_t)ix->cap_wins * sizeof(rwin) +
                  (int64_t)ix->cap_plists * sizeof(rplist) + (int64_t)ix->n_slots * 4;
    for (int i = 0; i < ix->n_files; i++) {
        const rfile *f = ix->files[i];
        st->n_lines += f->n_lines;
        st->n_bytes += (int64_t)f->len;
        mem += (int64_t)sizeof *f + (int64_t)f->len + 1 + (int64_t)(f->n_lines + 1) * 8 +
               (int64_t)f->n_tok * 4 + (int64_t)f->n_win * 4;
    }
    for (uint32_t i = 0; i < ix->n_plists; i++) {
        st->n_postings += ix->plists[i].n;
        mem += (int64_t)ix->plists[i].cap * sizeof(rpost);
    }
    st->mem_bytes = mem;
}

int mc_retr_n_files(const mc_retr_index *ix) { return ix->n_files; }

uint64_t mc_retr_generation(const mc_retr_index *ix) { return ix->generation; }

static void file_view(const rfile *f, mc_retr_file *out) {
    out->path = f->path;
    out->text = f->text;
    out->len = f->len;
    out->hash = f->hash;
    out->n_lines = f->n_lines;
    out->line_off = f->line_off;
    out->tok = f->tok;
    out->tok_off = f->tok_off;
}

int mc_retr_tokenize(const mc_retr_index *ix, const char *s, size_t n, uint32_t *ids, int cap) {
    return ix->tok.tokenize(ix->tok.ud, s, n, ids, cap);
}

int mc_retr_file_at(const mc_retr_index *ix, int i, mc_retr_file *out) {
    memset(out, 0, sizeof *out);
    if (i < 0 || i >= ix->n_files)
        return MC_ERANGE;
    file_view(ix->files[i], out);
    return 0;
}

int mc_retr_file_get(const mc_retr_index *ix, const char *relpath, mc_retr_file *out) {
    memset(out, 0, sizeof *out);
    const rfile *f = relpath ? lookup(ix, relpath) : NULL;
    if (!f)
        return MC_ENOTFOUND;
    file_view(f, out);
    return 0;
}

int mc_retr_window_text(const mc_retr_index *ix, const char *file, int start_line, int n_lines,
                        mc_str *out) {
    const rfile *f = lookup(ix, file);
    out->ptr = "";
    out->len = 0;
    if (!f)
        return MC_ENOTFOUND;
    if (start_line < 0 || n_lines < 0 || start_line > f->n_lines || n_lines > f->n_lines - start_line)
        return MC_ERANGE;
    if (n_lines == 0)
        return 0;
    uint32_t a = f->line_off[start_line], b = f->line_off[start_line + n_lines];
    if (b > a && f->text[b - 1] == '\n')
        b--;
    out->ptr = f->text + a;
    out->len = b - a;
    return 0;
}

int mc_retr_query_text(const char *prefix, size_t prefix_len, int n_lines, const char *draft,
                       size_t draft_len, char **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    if (n_lines < 1)
        n_lines = 1;
    int want = draft ? MC_MAX(1, n_lines / 2) : n_lines;
    size_t end = prefix_len;
    if (end > 0 && prefix[end - 1] == '\n')
        end--; /* the cursor is at the start of a line: the empty last piece is not a line */
    size_t start = end;
    int lines = 0;
    while (start > 0) {
        if (prefix[start - 1] == '\n') {
            if (++lines == want)
                break;
        }
        start--;
    }
    if (prefix_len == 0)
        start = end = 0;
    size_t cap = (end - start) + (draft ? draft_len + 2 : 0) + 1;
    char *buf = malloc(cap);
    if (!buf)
        return MC_ENOMEM;
    size_t k = end - start;
    memcpy(buf, prefix + start, k);
    if (draft) {
        size_t i = 0;
        while (i < draft_len) {
            const char *nl = memchr(draft + i, '\n', draft_len - i);
            size_t e = nl ? (size_t)(nl - draft) : draft_len;
            int blank = 1;
            for (size_t j = i; j < e; j++)
                if (draft[j] != ' ' && draft[j] != '\t' && draft[j] != '\r' && draft[j] != '\f' &&
                    draft[j] != '\v')
                    blank = 0;
            if (!blank) {
                if (k)
                    buf[k++] = '\n';
                memcpy(buf + k, draft + i, e - i);
                k += e - i;
            }
            i = e + 1;
        }
    }
    buf[k] = '\0';
    *out = buf;
    *out_len = k;
    return 0;
}

/* ---- search ---- */

typedef struct cand {
    uint32_t win;
    double score;
} cand;

/* 1 if a ranks before b: higher score, then path, then start line. */
static int better(const mc_retr_index *ix, const cand *a, const cand *b) {
    if (a->score != b->score)
        return a->score > b->score;
    const rwin *x = &ix->wins[a->win], *y = &ix->wins[b->win];
    if (x->file != y->file) {
        int c = strcmp(x->file->path, y->file->path);
        return c < 0;
    }
    return x->start < y->start;
}

/* Min-heap (worst at the top) of the best k candidates. */
static void heap_offer(const mc_retr_index *ix, cand *h, int *n, int k, cand c) {
    if (*n < k) {
        int i = (*n)++;
        h[i] = c;
        while (i > 0) {
            int p = (i - 1) / 2;
            if (!better(ix, &h[p], &h[i]))
                break;
            cand t = h[p];
            h[p] = h[i];
            h[i] = t;
            i = p;
        }
        return;
    }
    if (!better(ix, &c, &h[0]))
        return;
    h[0] = c;
    int i = 0;
    for (;;) {
        int l = 2 * i + 1, r = l + 1, w = i;
        if (l < *n && better(ix, &h[w], &h[l]))
            w = l;
        if (r < *n && better(ix, &h[w], &h[r]))
            w = r;
        if (w == i)
            break;
        cand t = h[w];
        h[w] = h[i];
        h[i] = t;
        i = w;
    }
}


int mc_retr_search(const mc_retr_index *ix, const mc_retr_query *q, mc_retr_hit *hits, int cap,
                   mc_err *err) {
    if (!q || (!q->text && q->len) || q->k < 0 || cap < 0)
        return mc_err_set(err, MC_EINVAL, -1, "retrieval: bad query");
    int k = MC_MIN(q->k, cap);
    if (k == 0 || q->len == 0 || ix->n_live_win == 0)
        return 0;
    const rfile *own = q->file ? lookup(ix, q->file) : NULL;
    if (q->file && !own) {
        char rel[PATH_MAX];
        if (!mc__retr_relpath(ix, q->file, rel, sizeof rel))
            own = lookup(ix, rel);
    }

    /* query terms, line by line as the windows were tokenized */
    uint32_t qcap = (uint32_t)MC_MIN(q->len / 2 + 16, (size_t)UINT32_MAX / 8);
    uint32_t *qt = malloc(qcap * sizeof *qt);
    int rc = 0;
    uint32_t nq = 0;
    double *acc = NULL;
    uint32_t *inter = NULL, *touched = NULL;
    cand *heap = NULL;
    if (!qt) {
        rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < q->len;) {
        const char *nl = memchr(q->text + i, '\n', q->len - i);
        size_t e = nl ? (size_t)(nl - q->text) + 1 : q->len;
        for (;;) {
            int room = (int)MC_MIN((size_t)(qcap - nq), (size_t)INT_MAX);
            int n = ix->tok.tokenize(ix->tok.ud, q->text + i, e - i, qt + nq, room);
            if (n < 0) {
                rc = mc_err_set(err, n, -1, "retrieval: tokenizer failed on the query");
                goto out;
            }
            if (n <= room) {
                nq += (uint32_t)n;
                break;
            }
            uint32_t nc = MC_MAX(qcap * 2, nq + (uint32_t)n);
            uint32_t *nt = realloc(qt, nc * sizeof *nt);
            if (!nt) {
                rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
                goto out;
            }
            qt = nt;
            qcap = nc;
        }
        i = e;
    }
    sort_u32(qt, nq, NULL);
    uint32_t nd = 0; /* distinct query terms, in place */
    for (uint32_t i = 0; i < nq; i++)
        if (i == 0 || qt[i] != qt[nd - 1])
            qt[nd++] = qt[i];
    if (nd == 0)
        goto out;

    acc = calloc(ix->n_wins, sizeof *acc);
    inter = calloc(ix->n_wins, sizeof *inter);
    touched = malloc(ix->n_wins * sizeof *touched);
    heap = malloc((size_t)k * sizeof *heap);
    if (!acc || !inter || !touched || !heap) {
        rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
        goto out;
    }
    uint32_t n_touched = 0;
    const bool bm25 = q->sim == MC_RETR_BM25;
    const double N = ix->n_live_win;
    const double avgdl = ix->total_len > 0 ? (double)ix->total_len / N : 1.0;
    const double k1 = ix->p.bm25_k1, b = ix->p.bm25_b;
    for (uint32_t i = 0; i < nd; i++) {
        const rplist *pl = plist_find(ix, qt[i]);
        if (!pl || pl->n == 0)
            continue;
        double idf = 0;
        if (bm25)
            idf = log(1.0 + (N - pl->n + 0.5) / (pl->n + 0.5));
        for (uint32_t j = 0; j < pl->n; j++) {
            uint32_t w = pl->p[j].win;
            if (inter[w]++ == 0)
                touched[n_touched++] = w;
            if (bm25) {
                double tf = pl->p[j].tf;
                double norm = k1 * (1.0 - b + b * ix->wins[w].len / avgdl);
                acc[w] += idf * tf * (k1 + 1.0) / (tf + norm);
            }
        }
    }
    int nh = 0;
    for (uint32_t i = 0; i < n_touched; i++) {
        uint32_t w = touched[i];
        const rwin *win = &ix->wins[w];
        if (own && win->file == own && win->start + win->n_lines > q->cursor_line)
            continue; /* leakage: overlaps or follows the cursor line */
        double s;
        if (bm25) {
            s = acc[w];
        } else {
            double in = inter[w];
            s = in / ((double)nd + (double)win->n_terms - in);
        }
        if (!(s > 0))
            continue;
        heap_offer(ix, heap, &nh, k, (cand){w, s});
    }
    for (int i = 1; i < nh; i++) { /* insertion sort, best first (k is small) */
        cand c = heap[i];
        int j = i;
        while (j > 0 && better(ix, &c, &heap[j - 1])) {
            heap[j] = heap[j - 1];
            j--;
        }
        heap[j] = c;
    }
    for (int i = 0; i < nh; i++) {
        const rwin *win = &ix->wins[heap[i].win];
        hits[i] = (mc_retr_hit){win->file->path, win->start, win->n_lines, heap[i].score};
    }
    rc = nh;
out:
    free(qt);
    free(acc);
    free(inter);
    free(touched);
    free(heap);
    return rc;
}
