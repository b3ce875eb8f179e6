/* src/tok/tok_train.c — a byte-level BPE trainer for our own code vocabulary.
 *
 * 1. Count words: every document is pre-tokenized with the qwen2 rules (which
 *    llama.cpp implements exactly) and each distinct word is counted in a hash
 *    map, one map per thread, merged at the end. Words are then sorted by
 *    their bytes, so the result does not depend on threads or input order.
 * 2. Merge: words become sequences of byte tokens; pair counts and, per pair,
 *    the words it occurs in are kept incrementally; a max-heap with lazy
 *    re-insertion picks the most frequent pair (ties: smaller left id, then
 *    smaller right id), as Hugging Face's trainer does.
 * Vocabulary layout: ids 0..5 special tokens (MC_TOK_TRAIN_SPECIALS, CONTROL),
 * 6..261 the 256 bytes in byte order, then merges in the order learned.
 * Not here: encoding (tok.c) — a written vocabulary is loaded like any other. */
#include "tok_internal.h"

#include "mccom/file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define N_SPECIAL MC_TOK_TRAIN_N_SPECIAL
#define BYTE0 N_SPECIAL

/* ---- word counts ------------------------------------------------------------- */

typedef struct wslot {
    uint64_t h; /* 0 empty */
    uint64_t off;
    uint32_t len;
    int64_t count;
} wslot;

typedef struct wmap {
    wslot *s;
    uint64_t mask, used;
    char *pool;
    uint64_t pool_len, pool_cap;
} wmap;

static int wmap_init(wmap *m) {
    memset(m, 0, sizeof *m);
    m->mask = (1u << 16) - 1;
    m->s = calloc(m->mask + 1, sizeof(wslot));
    m->pool_cap = 1 << 20;
    m->pool = malloc(m->pool_cap);
    return m->s && m->pool ? 0 : MC_ENOMEM;
}

static void wmap_fini(wmap *m) {
    free(m->s);
    free(m->pool);
    memset(m, 0, sizeof *m);
}

static int wmap_grow(wmap *m) {
    uint64_t nm = m->mask * 2 + 1;
    wslot *ns = calloc(nm + 1, sizeof(wslot));
    if (!ns)
        return MC_ENOMEM;
    for (uint64_t i = 0; i <= m->mask; i++) {
        if (!m->s[i].h)
            continue;
        uint64_t j = m->s[i].h & nm;
        while (ns[j].h)
            j = (j + 1) & nm;
        ns[j] = m->s[i];
    }
    free(m->s);
    m->s = ns;
    m->mask = nm;
    return 0;
}

static int wmap_add(wmap *m, const char *w, size_t n, int64_t c) {
    uint64_t h = mc__tok_hash(w, n) | 1;
    uint64_t i = h & m->mask;
    for (;; i = (i + 1) & m->mask) {
        wslot *s = &m->s[i];
        if (!s->h)
            break;
        if (s->h == h && s->len == n && memcmp(m->pool + s->off, w, n) == 0) {
            s->count += c;
            return 0;
        }
    }
    if (m->pool_len + n > m->pool_cap) {
        uint64_t cap = m->pool_cap * 2;
        while (cap < m->pool_len + n)
            cap *= 2;
        char *p = realloc(m->pool, cap);
        if (!p)
            return MC_ENOMEM;
        m->pool = p;
        m->pool_cap = cap;
    }
    memcpy(m->pool + m->pool_len, w, n);
    m->s[i] = (wslot){h, m->pool_len, (uint32_t)n, c};
    m->pool_len += n;
    if (++m->used * 2 > m->mask)
        return wmap_grow(m);
    return 0;
}

/* ---- trainer ---------------------------------------------------------------- */

struct mc_tok_trainer {
    mc_tok_train_params p;
    pthread_mutex_t mu;
    wmap words; /* merged counts */
    /* result */
    int32_t n_tokens;
    char **tok_bytes; /* raw bytes of each token */
    uint32_t *tok_len;
    int32_t (*merges)[2];
    int64_t n_merges;
    bool trained;
};

mc_tok_train_params mc_tok_train_default(void) {
    mc_tok_train_params p = {16384, 2, 2, false};
    return p;
}

mc_tok_trainer *mc_tok_trainer_new(const mc_tok_train_params *p) {
    mc_tok_trainer *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->p = p ? *p : mc_tok_train_default();
    if (t->p.vocab_size < N_SPECIAL + 256)
        t->p.vocab_size = N_SPECIAL + 256;
    if (t->p.n_threads < 1)
        t->p.n_threads = 1;
    pthread_mutex_init(&t->mu, NULL);
    if (wmap_init(&t->words)) {
        mc_tok_trainer_free(t);
        return NULL;
    }
    return t;
}

void mc_tok_trainer_free(mc_tok_trainer *t) {
    if (!t)
        return;
    wmap_fini(&t->words);
    pthread_mutex_destroy(&t->mu);
    if (t->tok_bytes)
        for (int32_t i = 0; i < t->n_tokens; i++)
            free(t->tok_bytes[i]);
    free(t->tok_bytes);
    free(t->tok_len);
    free(t->merges);
    free(t);
}

static int count_text(wmap *m, mc__pretok_buf *pb, const char *text, size_t len) {
    /* documents larger than 4 GiB are not code: refuse them rather than wrap */
    if (len >= UINT32_MAX)
        return MC_ERANGE;
    int rc = mc__pretok_split(MC__PRE_QWEN2, text, len, pb);
    if (rc)
        return rc;
    uint32_t start = 0;
    for (size_t i = 0; i < pb->n_ends; i++) {
        uint32_t s = pb->off[start], e = pb->off[pb->ends[i]];
        rc = wmap_add(m, text + s, e - s, 1);
        if (rc)
            return rc;
        start = pb->ends[i];
    }
    return 0;
}

static int merge_map(wmap *dst, const wmap *src) {
    for (uint64_t i = 0; i <= src->mask; i++) {
        const wslot *s = &src->s[i];
        if (s->h) {
            int rc = wmap_add(dst, src->pool + s->off, s->len, s->count);
            if (rc)
                return rc;
        }
    }
    return 0;
}

int mc_tok_trainer_add_text(mc_tok_trainer *t, const char *text, size_t len) {
    wmap m;
    mc__pretok_buf pb;
    memset(&pb, 0, sizeof pb);
    int rc = wmap_init(&m);
    if (!rc)
        rc = count_text(&m, &pb, text, len);
    mc__pretok_buf_fini(&pb);
    if (!rc) {
        pthread_mutex_lock(&t->mu);
        rc = merge_map(&t->words, &m);
        pthread_mutex_unlock(&t->mu);
    }
    wmap_fini(&m);
    return rc;
}

/* ---- files ------------------------------------------------------------------ */

typedef struct flist {
    char **v;
    size_t n, cap;
} flist;

static int flist_push(flist *l, const char *s) {
    if (l->n == l->cap) {
        size_t c = l->cap ? l->cap * 2 : 256;
        char **v = realloc(l->v, c * sizeof(char *));
        if (!v)
            return MC_ENOMEM;
        l->v = v;
        l->cap = c;
    }
    l->v[l->n] = strdup(s);
    return l->v[l->n++] ? 0 : MC_ENOMEM;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int walk(flist *l, const char *path, int depth) {
    struct stat st;
    if (stat(path, &st) != 0)
        return 0; /* vanished or unreadable: skip */
    if (S_ISREG(st.st_mode))
        return flist_push(l, path);
    if (!S_ISDIR(st.st_mode) || depth > 64)
        return 0;
    DIR *d = opendir(path);
    if (!d)
        return 0;
    flist sub = {0};
    struct dirent *e;
    int rc = 0;
    while (!rc && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue; /* ., .., .git and other hidden entries */
        size_t n = strlen(path) + strlen(e->d_name) + 2;
        char *p = malloc(n);
        if (!p) {
            rc = MC_ENOMEM;
            break;
        }
        snprintf(p, n, "%s/%s", path, e->d_name);
        rc = flist_push(&sub, p);
        free(p);
    }
    closedir(d);
    qsort(sub.v, sub.n, sizeof(char *), cmp_str);
    for (size_t i = 0; i < sub.n; i++) {
        if (!rc)
            rc = walk(l, sub.v[i], depth + 1);
        free(sub.v[i]);
    }
    free(sub.v);
    return rc;
}

/* Read a whole file; NULL for unreadable or binary (NUL in the first 8 KiB). */
char *mc__tok_read_text_file(const char *path, size_t *n);
char *mc__tok_read_text_file(const char *path, size_t *n) {
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return NULL;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < 0) {
        close(fd);
        return NULL;
    }
    size_t sz = (size_t)st.st_size;
    char *b = malloc(sz + 1);
    if (!b) {
        close(fd);
        return NULL;
    }
    size_t got = 0;
    while (got < sz) {
        ssize_t r = read(fd, b + got, sz - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (memchr(b, 0, MC_MIN(got, (size_t)8192))) {
        free(b);
        return NULL;
    }
    *n = got;
    return b;
}

int mc__tok_collect_files(const char *const *paths, int n_paths, char ***files, size_t *n_files);
int mc__tok_collect_files(const char *const *paths, int n_paths, char ***files, size_t *n_files) {
    flist l = {0};
    for (int i = 0; i < n_paths; i++) {
        int rc = walk(&l, paths[i], 0);
        if (rc) {
            for (size_t k = 0; k < l.n; k++)
                free(l.v[k]);
            free(l.v);
            return rc;
        }
    }
    *files = l.v;
    *n_files = l.n;
    return 0;
}

typedef struct count_job {
    mc_tok_trainer *t;
    char **files;
    size_t n_files;
    atomic_size_t next;
    atomic_llong bytes;
    atomic_size_t done;
    wmap map;
    int rc;
    double t0;
} count_job;

typedef struct count_arg {
    count_job *job;
    wmap map;
    int rc;
} count_arg;

static void *count_main(void *p) {
    count_arg *a = p;
    count_job *j = a->job;
    mc__pretok_buf pb;
    memset(&pb, 0, sizeof pb);
    for (;;) {
        size_t i = atomic_fetch_add(&j->next, 1);
        if (i >= j->n_files || a->rc)
            break;
        size_t n;
        char *s = mc__tok_read_text_file(j->files[i], &n);
        if (s) {
            a->rc = count_text(&a->map, &pb, s, n);
            atomic_fetch_add(&j->bytes, (long long)n);
            free(s);
        }
        size_t d = atomic_fetch_add(&j->done, 1) + 1;
        if (j->t->p.progress && (d % 200 == 0 || d == j->n_files)) {
            double el = mc_time_s() - j->t0;
            long long b = atomic_load(&j->bytes);
            fprintf(stderr, "\rcounting: %zu/%zu files, %.1f MB, %.1f MB/s   ", d, j->n_files,
                    (double)b / 1e6, el > 0 ? (double)b / 1e6 / el : 0.0);
        }
    }
    mc__pretok_buf_fini(&pb);
    return NULL;
}

int mc_tok_trainer_add_paths(mc_tok_trainer *t, const char *const *paths, int n_paths,
                             int64_t *n_bytes, mc_err *err) {
    char **files = NULL;
    size_t n_files = 0;
    int rc = mc__tok_collect_files(paths, n_paths, &files, &n_files);
    if (rc)
        return mc_err_set(err, rc, -1, "listing input files failed");
    count_job j;
    memset(&j, 0, sizeof j);
    j.t = t;
    j.files = files;
    j.n_files = n_files;
    j.t0 = mc_time_s();
    int nt = t->p.n_threads;
    count_arg *args = calloc((size_t)nt, sizeof(count_arg));
    pthread_t *th = calloc((size_t)nt, sizeof(pthread_t));
    if (!args || !th) {
        rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
        goto done;
    }
    for (int i = 0; i < nt; i++) {
        args[i].job = &j;
        if (wmap_init(&args[i].map)) {
            rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
            nt = i;
            goto join;
        }
    }
    for (int i = 0; i < nt; i++)
        if (pthread_create(&th[i], NULL, count_main, &args[i]) != 0) {
            args[i].rc = MC_ENOMEM;
            count_main(&args[i]); /* run it here instead */
            th[i] = 0;
        }
join:
    for (int i = 0; i < nt; i++) {
        if (th[i])
            pthread_join(th[i], NULL);
        if (!rc && args[i].rc)
            rc = mc_err_set(err, args[i].rc, -1, "counting words failed");
        pthread_mutex_lock(&t->mu);
        if (!rc && merge_map(&t->words, &args[i].map))
            rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory merging word counts");
        pthread_mutex_unlock(&t->mu);
        wmap_fini(&args[i].map);
    }
    if (t->p.progress)
        fprintf(stderr, "\n");
    if (n_bytes)
        *n_bytes += atomic_load(&j.bytes);
done:
    free(args);
    free(th);
    for (size_t i = 0; i < n_files; i++)
        free(files[i]);
    free(files);
    return rc;
}

/* ---- merging -------------------------------------------------------------------- */

typedef struct pslot {
    uint64_t key; /* (a << 32 | b) + 1, 0 empty */
    uint32_t idx;
} pslot;

typedef struct pairs {
    pslot *s;
    uint64_t mask, used;
    int64_t *count;    /* (n) */
    uint32_t **where;  /* (n) word ids */
    uint32_t *n_where, *cap_where;
    uint32_t *stamp;   /* (n) last step it was pushed */
    uint64_t *keyv;    /* (n) its key */
    uint64_t n, cap;
} pairs;

static int pairs_grow_arrays(pairs *p) {
    uint64_t c = p->cap ? p->cap * 2 : 1 << 16;
    int64_t *cnt = realloc(p->count, c * sizeof(int64_t));
    if (!cnt)
        return MC_ENOMEM;
    p->count = cnt;
    uint32_t **w = realloc(p->where, c * sizeof(uint32_t *));
    if (!w)
        return MC_ENOMEM;
    p->where = w;
    uint32_t *a = realloc(p->n_where, c * sizeof(uint32_t));
    if (!a)
        return MC_ENOMEM;
    p->n_where = a;
    a = realloc(p->cap_where, c * sizeof(uint32_t));
    if (!a)
        return MC_ENOMEM;
    p->cap_where = a;
    a = realloc(p->stamp, c * sizeof(uint32_t));
    if (!a)
        return MC_ENOMEM;
    p->stamp = a;
    uint64_t *kv = realloc(p->keyv, c * sizeof(uint64_t));
    if (!kv)
        return MC_ENOMEM;
    p->keyv = kv;
    p->cap = c;
    return 0;
}

static int pairs_rehash(pairs *p) {
    uint64_t nm = p->mask ? p->mask * 2 + 1 : (1 << 16) - 1;
    pslot *ns = calloc(nm + 1, sizeof(pslot));
    if (!ns)
        return MC_ENOMEM;
    if (p->s)
        for (uint64_t i = 0; i <= p->mask; i++) {
            if (!p->s[i].key)
                continue;
            uint64_t j = mc__tok_hash64(p->s[i].key) & nm;
            while (ns[j].key)
                j = (j + 1) & nm;
            ns[j] = p->s[i];
        }
    free(p->s);
    p->s = ns;
    p->mask = nm;
    return 0;
}

/* Index of pair (a, b), created if missing; -1 on allocation failure. */
static int64_t pair_get(pairs *p, int32_t a, int32_t b) {
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    uint64_t i = mc__tok_hash64(key) & p->mask;
    for (;; i = (i + 1) & p->mask) {
        if (p->s[i].key == key)
            return p->s[i].idx;
        if (!p->s[i].key)
            break;
    }
    if (p->n == p->cap && pairs_grow_arrays(p))
        return -1;
    uint64_t idx = p->n++;
    p->count[idx] = 0;
    p->where[idx] = NULL;
    p->n_where[idx] = p->cap_where[idx] = 0;
    p->stamp[idx] = UINT32_MAX;
    p->keyv[idx] = key;
    p->s[i] = (pslot){key, (uint32_t)idx};
    if (++p->used * 2 > p->mask && pairs_rehash(p))
        return -1;
    return (int64_t)idx;
}

static int where_add(pairs *p, uint64_t idx, uint32_t w) {
    uint32_t n = p->n_where[idx];
    if (n > 0 && p->where[idx][n - 1] == w)
        return 0;
    if (n == p->cap_where[idx]) {
        uint32_t c = n ? n * 2 : 4;
        uint32_t *v = realloc(p->where[idx], c * sizeof(uint32_t));
        if (!v)
            return MC_ENOMEM;
        p->where[idx] = v;
        p->cap_where[idx] = c;
    }
    p->where[idx][p->n_where[idx]++] = w;
    return 0;
}

typedef struct hent {
    int64_t count;
    int32_t a, b;
} hent;

static inline bool hent_before(const hent *x, const hent *y) {
    if (x->count != y->count)
        return x->count > y->count;
    if (x->a != y->a)
        return x->a < y->a;
    return x->b < y->b;
}

typedef struct heap {
    hent *v;
    size_t n, cap;
} heap;

static int heap_push_h(heap *h, hent e) {
    if (h->n == h->cap) {
        size_t c = h->cap ? h->cap * 2 : 1 << 16;
        hent *v = realloc(h->v, c * sizeof(hent));
        if (!v)
            return MC_ENOMEM;
        h->v = v;
        h->cap = c;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t q = (i - 1) / 2;
        if (!hent_before(&e, &h->v[q]))
            break;
        h->v[i] = h->v[q];
        i = q;
    }
    h->v[i] = e;
    return 0;
}

static hent heap_pop_h(heap *h) {
    hent top = h->v[0];
    hent e = h->v[--h->n];
    size_t i = 0, m = h->n;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= m)
            break;
        size_t k = (l + 1 < m && hent_before(&h->v[l + 1], &h->v[l])) ? l + 1 : l;
        if (!hent_before(&h->v[k], &e))
            break;
        h->v[i] = h->v[k];
        i = k;
    }
    h->v[i] = e;
    return top;
}

typedef struct wref {
    const char *p;
    uint32_t len;
    int64_t count;
} wref;

static int cmp_wref(const void *x, const void *y) {
    const wref *a = x, *b = y;
    int c = memcmp(a->p, b->p, MC_MIN(a->len, b->len));
    if (c)
        return c;
    return a->len < b->len ? -1 : a->len > b->len;
}

int mc_tok_trainer_run(mc_tok_trainer *t, mc_err *err) {
    int rc = 0;
    int32_t vocab = t->p.vocab_size;
    /* words, sorted by bytes: deterministic ids */
    uint64_t nw = t->words.used;
    wref *ws = malloc((nw ? nw : 1) * sizeof(wref));
    if (!ws)
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    uint64_t k = 0, total_sym = 0;
    for (uint64_t i = 0; i <= t->words.mask; i++) {
        wslot *s = &t->words.s[i];
        if (s->h && s->len >= 1) {
            ws[k++] = (wref){t->words.pool + s->off, s->len, s->count};
            total_sym += s->len;
        }
    }
    nw = k;
    qsort(ws, nw, sizeof(wref), cmp_wref);
    int32_t *sym = malloc((total_sym ? total_sym : 1) * sizeof(int32_t));
    uint64_t *woff = malloc((nw + 1) * sizeof(uint64_t));
    uint32_t *wlen = malloc((nw ? nw : 1) * sizeof(uint32_t));
    int64_t *wcnt = malloc((nw ? nw : 1) * sizeof(int64_t));
    uint32_t *wstamp = malloc((nw ? nw : 1) * sizeof(uint32_t));
    t->tok_bytes = calloc((size_t)vocab, sizeof(char *));
    t->tok_len = calloc((size_t)vocab, sizeof(uint32_t));
    t->merges = malloc((size_t)vocab * sizeof(*t->merges));
    pairs P;
    memset(&P, 0, sizeof P);
    heap H = {0};
    if (!sym || !woff || !wlen || !wcnt || !wstamp || !t->tok_bytes || !t->tok_len || !t->merges ||
        pairs_rehash(&P) || pairs_grow_arrays(&P)) {
        rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory for %llu words",
                        (unsigned long long)nw);
        goto done;
    }
    uint64_t o = 0;
    for (uint64_t w = 0; w < nw; w++) {
        woff[w] = o;
        wlen[w] = ws[w].len;
        wcnt[w] = ws[w].count;
        wstamp[w] = UINT32_MAX;
        for (uint32_t i = 0; i < ws[w].len; i++)
            sym[o + i] = BYTE0 + (uint8_t)ws[w].p[i];
        o += ws[w].len;
    }
    woff[nw] = o;
    /* tokens: specials, bytes */
    static const char *specials[] = {
#define X(id, s) s,
        MC_TOK_TRAIN_SPECIALS
#undef X
    };
    t->n_tokens = 0;
    for (int i = 0; i < N_SPECIAL; i++) {
        t->tok_bytes[i] = strdup(specials[i]);
        t->tok_len[i] = (uint32_t)strlen(specials[i]);
    }
    for (int b = 0; b < 256; b++) {
        t->tok_bytes[BYTE0 + b] = malloc(1);
        if (t->tok_bytes[BYTE0 + b])
            t->tok_bytes[BYTE0 + b][0] = (char)b;
        t->tok_len[BYTE0 + b] = 1;
    }
    t->n_tokens = BYTE0 + 256;
    for (int32_t i = 0; i < t->n_tokens; i++)
        if (!t->tok_bytes[i]) {
            rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
            goto done;
        }
    /* initial pair counts */
    for (uint64_t w = 0; w < nw; w++) {
        const int32_t *s = sym + woff[w];
        for (uint32_t i = 0; i + 1 < wlen[w]; i++) {
            int64_t idx = pair_get(&P, s[i], s[i + 1]);
            if (idx < 0 || where_add(&P, (uint64_t)idx, (uint32_t)w)) {
                rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory counting pairs");
                goto done;
            }
            P.count[idx] += wcnt[w];
        }
    }
    for (uint64_t i = 0; i <= P.mask; i++)
        if (P.s[i].key) {
            uint64_t key = P.s[i].key - 1;
            hent e = {P.count[P.s[i].idx], (int32_t)(key >> 32), (int32_t)(uint32_t)key};
            if (heap_push_h(&H, e)) {
                rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
                goto done;
            }
        }
    /* token bytes -> id (merged tokens only), to reuse an id when two merges
     * make the same bytes */
    uint64_t tmask = 1;
    while (tmask < (uint64_t)vocab * 2)
        tmask <<= 1;
    tmask--;
    int32_t *tht = malloc((tmask + 1) * sizeof(int32_t));
    if (!tht) {
        rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
        goto done;
    }
    memset(tht, 0xFF, (tmask + 1) * sizeof(int32_t));
    double t0 = mc_time_s();
    uint32_t step = 0;
    int64_t *touched = NULL;
    size_t n_touched = 0, cap_touched = 0;
    while (t->n_tokens < vocab && H.n > 0) {
        hent e = heap_pop_h(&H);
        int64_t idx = pair_get(&P, e.a, e.b);
        if (idx < 0) {
            rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
            break;
        }
        if (P.count[idx] != e.count) {
            if (P.count[idx] > 0) {
                e.count = P.count[idx];
                if (heap_push_h(&H, e)) {
                    rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
                    break;
                }
            }
            continue;
        }
        if (e.count < t->p.min_pair_count)
            break;
        /* the new token */
        uint32_t la = t->tok_len[e.a], lb = t->tok_len[e.b];
        /* two pairs can spell the same bytes ("ab"+"c", "a"+"bc"): reuse the id */
        int32_t nid = -1;
        {
            char stackbuf[256];
            char *cat = la + lb <= sizeof stackbuf ? stackbuf : malloc(la + lb);
            if (!cat) {
                rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
                break;
            }
            memcpy(cat, t->tok_bytes[e.a], la);
            memcpy(cat + la, t->tok_bytes[e.b], lb);
            uint64_t h = mc__tok_hash(cat, la + lb);
            uint64_t i = h & tmask;
            for (;; i = (i + 1) & tmask) {
                int32_t id = tht[i];
                if (id < 0)
                    break;
                if (t->tok_len[id] == la + lb && !memcmp(t->tok_bytes[id], cat, la + lb)) {
                    nid = id;
                    break;
                }
            }
            if (nid < 0) {
                nid = t->n_tokens;
                char *nb = malloc(la + lb);
                if (!nb) {
                    if (cat != stackbuf)
                        free(cat);
                    rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
                    break;
                }
                memcpy(nb, cat, la + lb);
                t->tok_bytes[nid] = nb;
                t->tok_len[nid] = la + lb;
                t->n_tokens++;
                tht[i] = nid;
            }
            if (cat != stackbuf)
                free(cat);
        }
        t->merges[t->n_merges][0] = e.a;
        t->merges[t->n_merges][1] = e.b;
        t->n_merges++;
        step++;
        n_touched = 0;
        /* apply in every word that has the pair */
        uint32_t nwh = P.n_where[idx];
        uint32_t *wh = P.where[idx];
        P.where[idx] = NULL;
        P.n_where[idx] = P.cap_where[idx] = 0;
        for (uint32_t q = 0; q < nwh && !rc; q++) {
            uint32_t w = wh[q];
            if (wstamp[w] == step)
                continue;
            wstamp[w] = step;
            int32_t *s = sym + woff[w];
            uint32_t n = wlen[w], out = 0;
            int64_t c = wcnt[w];
            for (uint32_t i = 0; i < n;) {
                if (i + 1 < n && s[i] == e.a && s[i + 1] == e.b) {
                    /* left neighbour: already written at s[out-1] */
                    if (out > 0) {
                        int64_t x = pair_get(&P, s[out - 1], e.a);
                        int64_t y = pair_get(&P, s[out - 1], nid);
                        if (x < 0 || y < 0 || where_add(&P, (uint64_t)y, w)) {
                            rc = MC_ENOMEM;
                            break;
                        }
                        P.count[x] -= c;
                        P.count[y] += c;
                        if (cap_touched == n_touched) {
                            cap_touched = cap_touched ? cap_touched * 2 : 1024;
                            int64_t *tt = realloc(touched, cap_touched * sizeof(int64_t));
                            if (!tt) {
                                rc = MC_ENOMEM;
                                break;
                            }
                            touched = tt;
                        }
                        touched[n_touched++] = y;
                    }
                    if (i + 2 < n) {
                        int64_t x = pair_get(&P, e.b, s[i + 2]);
                        int64_t y = pair_get(&P, nid, s[i + 2]);
                        if (x < 0 || y < 0 || where_add(&P, (uint64_t)y, w)) {
                            rc = MC_ENOMEM;
                            break;
                        }
                        P.count[x] -= c;
                        P.count[y] += c;
                        if (cap_touched == n_touched) {
                            cap_touched = cap_touched ? cap_touched * 2 : 1024;
                            int64_t *tt = realloc(touched, cap_touched * sizeof(int64_t));
                            if (!tt) {
                                rc = MC_ENOMEM;
                                break;
                            }
                            touched = tt;
                        }
                        touched[n_touched++] = y;
                    }
                    P.count[idx] -= c;
                    s[out++] = nid;
                    i += 2;
                } else {
                    s[out++] = s[i++];
                }
            }
            wlen[w] = out;
        }
        free(wh);
        if (rc) {
            rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory while merging");
            break;
        }
        /* new pairs enter the heap with their final counts (existing pairs only
         * lose counts: the heap re-inserts them lazily when popped) */
        for (size_t q = 0; q < n_touched && !rc; q++) {
            int64_t y = touched[q];
            if (P.stamp[y] == step || P.count[y] <= 0)
                continue;
            P.stamp[y] = step;
            uint64_t key = P.keyv[y] - 1;
            if (heap_push_h(&H, (hent){P.count[y], (int32_t)(key >> 32), (int32_t)(uint32_t)key}))
                rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
        }
        if (rc)
            break;
        if (t->p.progress && (t->n_merges % 500 == 0)) {
            double el = mc_time_s() - t0;
            fprintf(stderr, "\rmerging: %lld/%d merges, %.0f merges/s   ", (long long)t->n_merges,
                    vocab - BYTE0 - 256, el > 0 ? (double)t->n_merges / el : 0.0);
        }
    }
    free(touched);
    free(tht);
    if (t->p.progress)
        fprintf(stderr, "\rmerging: %lld merges in %.1f s                 \n",
                (long long)t->n_merges, mc_time_s() - t0);
    if (!rc)
        t->trained = true;
done:
    if (P.where)
        for (uint64_t i = 0; i < P.n; i++)
            free(P.where[i]);
    free(P.s);
    free(P.count);
    free(P.where);
    free(P.n_where);
    free(P.cap_where);
    free(P.stamp);
    free(P.keyv);
    free(H.v);
    free(ws);
    free(sym);
    free(woff);
    free(wlen);
    free(wcnt);
    free(wstamp);
    return rc;
}

/* ---- writing --------------------------------------------------------------------- */

/* The stored text of token i: specials as they are, others byte-level mapped. */
static char *token_text(const mc_tok_trainer *t, int32_t i, size_t *n) {
    const char *b = t->tok_bytes[i];
    uint32_t l = t->tok_len[i];
    char *s = malloc((size_t)l * 2 + 1);
    if (!s)
        return NULL;
    if (i < N_SPECIAL) {
        memcpy(s, b, l);
        *n = l;
    } else {
        size_t o = 0;
        for (uint32_t k = 0; k < l; k++)
            o += (size_t)mc__u_encode(mc__u_byte_to_cp((uint8_t)b[k]), s + o);
        *n = o;
    }
    s[*n] = 0;
    return s;
}

int mc_tok_trainer_write_gguf(const mc_tok_trainer *t, const char *path, mc_err *err) {
    if (!t->trained)
        return mc_err_set(err, MC_EINVAL, -1, "trainer has not run");
    int32_t n = t->n_tokens;
    char **texts = calloc((size_t)n, sizeof(char *));
    size_t *lens = calloc((size_t)n, sizeof(size_t));
    int32_t *types = calloc((size_t)n, sizeof(int32_t));
    char **merges = calloc((size_t)(t->n_merges ? t->n_merges : 1), sizeof(char *));
    mc_gguf_writer *w = mc_gguf_writer_new();
    int rc = 0;
    if (!texts || !lens || !types || !merges || !w) {
        rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
        goto done;
    }
    for (int32_t i = 0; i < n; i++) {
        texts[i] = token_text(t, i, &lens[i]);
        if (!texts[i]) {
            rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
            goto done;
        }
        types[i] = i < N_SPECIAL ? 3 : 1; /* CONTROL : NORMAL */
    }
    for (int64_t m = 0; m < t->n_merges; m++) {
        size_t la = lens[t->merges[m][0]], lb = lens[t->merges[m][1]];
        merges[m] = malloc(la + lb + 2);
        if (!merges[m]) {
            rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
            goto done;
        }
        memcpy(merges[m], texts[t->merges[m][0]], la);
        merges[m][la] = ' ';
        memcpy(merges[m] + la + 1, texts[t->merges[m][1]], lb);
        merges[m][la + lb + 1] = 0;
    }
    /* A vocabulary-only file: llama.cpp needs an architecture and its
     * hyper-parameters to open it (vocab_only), so a tiny llama is described. */
    mc_gguf_set_str(w, "general.architecture", "llama");
    mc_gguf_set_str(w, "general.name", "mccom-code-bpe");
    mc_gguf_set_u32(w, "llama.block_count", 1);
    mc_gguf_set_u32(w, "llama.context_length", 2048);
    mc_gguf_set_u32(w, "llama.embedding_length", 64);
    mc_gguf_set_u32(w, "llama.feed_forward_length", 256);
    mc_gguf_set_u32(w, "llama.attention.head_count", 1);
    mc_gguf_set_u32(w, "llama.attention.head_count_kv", 1);
    mc_gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    mc_gguf_set_u32(w, "llama.rope.dimension_count", 64);
    mc_gguf_set_u32(w, "llama.vocab_size", (uint32_t)n);
    mc_gguf_set_str(w, "tokenizer.ggml.model", "gpt2");
    mc_gguf_set_str(w, "tokenizer.ggml.pre", MC_TOK_TRAIN_PRE);
    mc_gguf_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)texts, lens, (uint64_t)n);
    mc_gguf_set_arr(w, "tokenizer.ggml.token_type", MC_GGUF_I32, types, (uint64_t)n);
    mc_gguf_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)merges, NULL,
                        (uint64_t)t->n_merges);
    mc_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 0);
    mc_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", 0);
    mc_gguf_set_u32(w, "tokenizer.ggml.padding_token_id", 4);
    mc_gguf_set_u32(w, "tokenizer.ggml.fim_pre_token_id", 1);
    mc_gguf_set_u32(w, "tokenizer.ggml.fim_mid_token_id", 2);
    mc_gguf_set_u32(w, "tokenizer.ggml.fim_suf_token_id", 3);
    mc_gguf_set_u32(w, "tokenizer.ggml.fim_pad_token_id", 4);
    mc_gguf_set_u32(w, "tokenizer.ggml.fim_sep_token_id", 5);
    mc_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", false);
    mc_gguf_set_bool(w, "tokenizer.ggml.add_eos_token", false);
    rc = mc_gguf_writer_write(w, path, err);
done:
    mc_gguf_writer_free(w);
    if (texts)
        for (int32_t i = 0; i < n; i++)
            free(texts[i]);
    if (merges)
        for (int64_t m = 0; m < t->n_merges; m++)
            free(merges[m]);
    free(texts);
    free(lens);
    free(types);
    free(merges);
    return rc;
}

static void json_str(FILE *f, const char *s, size_t n) {
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

/* The qwen2 pre-tokenizer expression as Hugging Face writes it. */
static const char hf_pattern[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

int mc_tok_trainer_write_hf(const mc_tok_trainer *t, const char *path, mc_err *err) {
    if (!t->trained)
        return mc_err_set(err, MC_EINVAL, -1, "trainer has not run");
    mc_file_tmp ft;
    int frc = mc_file_tmp_open(&ft, path, 0644, err);
    if (frc)
        return frc;
    FILE *f = ft.f;
    fprintf(f, "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n"
               "  \"added_tokens\": [");
    for (int32_t i = 0; i < N_SPECIAL; i++) {
        fprintf(f, "%s\n    {\"id\": %d, \"content\": ", i ? "," : "", i);
        json_str(f, t->tok_bytes[i], t->tok_len[i]);
        fprintf(f, ", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, "
                   "\"normalized\": false, \"special\": true}");
    }
    fprintf(f, "\n  ],\n  \"normalizer\": null,\n");
    fprintf(f, "  \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [\n"
               "    {\"type\": \"Split\", \"pattern\": {\"Regex\": ");
    json_str(f, hf_pattern, strlen(hf_pattern));
    fprintf(f, "}, \"behavior\": \"Isolated\", \"invert\": false},\n"
               "    {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": false, "
               "\"use_regex\": false}\n  ]},\n");
    fprintf(f, "  \"post_processor\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, "
               "\"trim_offsets\": false, \"use_regex\": false},\n");
    fprintf(f, "  \"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, "
               "\"trim_offsets\": false, \"use_regex\": false},\n");
    fprintf(f, "  \"model\": {\"type\": \"BPE\", \"dropout\": null, \"unk_token\": null, "
               "\"continuing_subword_prefix\": null, \"end_of_word_suffix\": null, "
               "\"fuse_unk\": false, \"byte_fallback\": false, \"ignore_merges\": false,\n"
               "    \"vocab\": {");
    int rc = 0;
    for (int32_t i = 0; i < t->n_tokens && !rc; i++) {
        size_t n;
        char *s = token_text(t, i, &n);
        if (!s) {
            rc = MC_ENOMEM;
            break;
        }
        fprintf(f, "%s\n      ", i ? "," : "");
        json_str(f, s, n);
        fprintf(f, ": %d", i);
        free(s);
    }
    fprintf(f, "\n    },\n    \"merges\": [");
    for (int64_t m = 0; m < t->n_merges && !rc; m++) {
        size_t la, lb;
        char *a = token_text(t, t->merges[m][0], &la);
        char *b = token_text(t, t->merges[m][1], &lb);
        if (!a || !b) {
            free(a);
            free(b);
            rc = MC_ENOMEM;
            break;
        }
        char *ab = malloc(la + lb + 2);
        if (!ab) {
            free(a);
            free(b);
            rc = MC_ENOMEM;
            break;
        }
        memcpy(ab, a, la);
        ab[la] = ' ';
        memcpy(ab + la + 1, b, lb);
        fprintf(f, "%s\n      ", m ? "," : "");
        json_str(f, ab, la + lb + 1);
        free(a);
        free(b);
        free(ab);
    }
    fprintf(f, "\n    ]\n  }\n}\n");
    if (rc) {
        mc_file_tmp_abort(&ft);
        return mc_err_set(err, rc, -1, "writing %s failed", path);
    }
    return mc_file_tmp_commit(&ft, err);
}

int64_t mc_tok_trainer_n_words(const mc_tok_trainer *t) { return (int64_t)t->words.used; }
int64_t mc_tok_trainer_n_merges(const mc_tok_trainer *t) { return t->n_merges; }
