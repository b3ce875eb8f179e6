/* src/copy/propose.c — line proposals: match the lines above the cursor
 * against the document (in-file, scanned) and the repository (K2/K1 lists),
 * group the lines that followed by their normalized form, score each group
 * with the calibrated model, keep those that agree with what was typed, and
 * re-indent them to the cursor.
 *
 * It never writes the index, never runs a model and never reads the query's
 * own file at or after the cursor's line unless the caller allowed the text
 * below the cursor (use_below). */
#include "copy_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

mc_copy_params mc_copy_params_default(void) {
    mc_copy_params p;
    memset(&p, 0, sizeof p);
    p.k = 4;
    p.max_context = 8;
    p.use_below = false;
    p.max_doc_lines = 20000;
    p.fuzzy = true;
    return p;
}

void mc_copy_result_fini(mc_copy_result *r) {
    if (!r)
        return;
    for (int i = 0; i < r->n; i++)
        free(r->c[i].text);
    free(r->c);
    memset(r, 0, sizeof *r);
}

/* ---- the calibrated model --------------------------------------------------- */

void mc_copy_feature_vector(const mc_copy_features *f, double x[MC_COPY_N_COEF]) {
    int m = f->context < 0 ? 0 : f->context;
    x[0] = 1.0;
    x[1] = m == 2;
    x[2] = m >= 3;
    x[3] = MC_MIN(m, 8) / 8.0;
    x[4] = f->in_file;
    x[5] = f->in_file * log2(1.0 + f->distance);
    x[6] = f->total > 0 ? (double)f->count / f->total : 0.0;
    x[7] = log2(1.0 + f->count);
    x[8] = log2(1.0 + f->total);
    x[9] = f->in_file * (m >= 2);
    x[10] = m == 0;
    x[11] = m == 0 ? f->similarity : 0.0;
}

double mc_copy_logit(const mc_copy_calib *cal, const mc_copy_features *f) {
    double x[MC_COPY_N_COEF], z = 0.0;
    mc_copy_feature_vector(f, x);
    for (int i = 0; i < MC_COPY_N_COEF; i++)
        z += cal->c[i] * x[i];
    return z;
}

double mc_copy_precision(const mc_copy_calib *cal, const mc_copy_features *f) {
    return 1.0 / (1.0 + exp(-mc_copy_logit(cal, f)));
}

/* ---- the query's own lines ---------------------------------------------------- */

/* A non-blank line of the query's file: its normalized hash, its raw text
 * (indentation included, no '\n') and its 0-based line in the file. */
typedef struct sline {
    uint64_t h;
    const char *s;
    uint32_t n;
    int32_t line;
} sline;

typedef struct lines {
    sline *v;
    int n, cap;
} lines;

static int lines_push(lines *L, const char *s, size_t n, int line) {
    size_t b, e;
    mc__copy_strip(s, n, &b, &e);
    if (e == b)
        return 0;
    if (L->n == L->cap) {
        int nc = L->cap ? L->cap * 2 : 256;
        sline *nv = realloc(L->v, (size_t)nc * sizeof *nv);
        if (!nv)
            return MC_ENOMEM;
        L->v = nv;
        L->cap = nc;
    }
    L->v[L->n++] = (sline){mc__copy_hash(s + b, e - b), s, (uint32_t)n, line};
    return 0;
}

/* Raw line i of a retrieval view, without its '\n'. */
static void view_line(const mc_retr_file *rf, int i, const char **s, size_t *n) {
    uint32_t a = rf->line_off[i], b = rf->line_off[i + 1];
    if (b > a && rf->text[b - 1] == '\n')
        b--;
    *s = rf->text + a;
    *n = b - a;
}

/* ---- candidates --------------------------------------------------------------- */

typedef struct cand {
    uint64_t next;
    int m;           /* longest context matched */
    int n1, n2;      /* matches proposing it with context >= 1, >= 2 */
    /* the best match: longest context; then in-file above (nearest), below
     * (nearest), another file (path order, then line) */
    int src;         /* enum mc_copy_source */
    int dist;
    int si;          /* in-file: index into the above/below lines */
    int rank;        /* another file: its position in path order ... */
    uint32_t slot, j; /* ... its slot and non-blank line */
    bool indexed;    /* a fuzzy match in the query's file: read from the index (slot, j) */
    double sim;      /* fuzzy: the context's similarity */
    double logit;
} cand;

typedef struct ctab {
    cand *v;
    int n, cap;
    int32_t *slot;   /* open addressing by next: index+1 into v */
    uint32_t n_slot; /* power of two */
} ctab;

static int ctab_grow(ctab *t) {
    uint32_t ns = t->n_slot ? t->n_slot * 2 : 256;
    int32_t *s = calloc(ns, sizeof *s);
    if (!s)
        return MC_ENOMEM;
    for (int i = 0; i < t->n; i++) {
        uint32_t j = (uint32_t)(t->v[i].next >> 7) & (ns - 1);
        while (s[j])
            j = (j + 1) & (ns - 1);
        s[j] = i + 1;
    }
    free(t->slot);
    t->slot = s;
    t->n_slot = ns;
    return 0;
}

/* The candidate for `next`, created empty if new; NULL when out of memory. */
static cand *ctab_get(ctab *t, uint64_t next) {
    if ((uint32_t)(t->n + 1) * 2 > t->n_slot && ctab_grow(t))
        return NULL;
    uint32_t mask = t->n_slot - 1;
    uint32_t j = (uint32_t)(next >> 7) & mask;
    while (t->slot[j]) {
        cand *c = &t->v[t->slot[j] - 1];
        if (c->next == next)
            return c;
        j = (j + 1) & mask;
    }
    if (t->n == t->cap) {
        int nc = t->cap ? t->cap * 2 : 64;
        cand *nv = realloc(t->v, (size_t)nc * sizeof *nv);
        if (!nv)
            return NULL;
        t->v = nv;
        t->cap = nc;
    }
    cand *c = &t->v[t->n];
    memset(c, 0, sizeof *c);
    c->next = next;
    c->src = -1;
    t->slot[j] = ++t->n;
    return c;
}

/* Does a match (m, src, dist, rank, j) beat c's best match? */
static bool better_match(const cand *c, int m, int src, int dist, int rank, uint32_t j) {
    if (c->src < 0 || m != c->m)
        return c->src < 0 || m > c->m;
    if (src != c->src)
        return src < c->src;
    if (src != MC_COPY_REPO)
        return dist < c->dist;
    return rank != c->rank ? rank < c->rank : j < c->j;
}

static void take_match(cand *c, int m, int src, int dist, int si, int rank, uint32_t slot,
                       uint32_t j) {
    if (!better_match(c, m, src, dist, rank, j))
        return;
    c->m = m;
    c->src = src;
    c->dist = dist;
    c->si = si;
    c->rank = rank;
    c->slot = slot;
    c->j = j;
}

/* The order of candidates — the rules, measured on the calibration
 * repositories (bench_copy; docs/copy.md): the longer context first, then
 * the query's own file (above, then below the cursor) before other files,
 * then more matches (agreement), then the nearer match, then path order and
 * line. (Ordering by the calibrated precision instead was 0.4 points of EM
 * worse there: the model is fitted for calibration, not for ranking.) */
static int cmp_cand(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->m != y->m)
        return x->m > y->m ? -1 : 1;
    if (x->sim != y->sim)
        return x->sim > y->sim ? -1 : 1;
    if (x->src != y->src)
        return x->src < y->src ? -1 : 1;
    int cx = x->m >= 2 ? x->n2 : x->n1, cy = y->m >= 2 ? y->n2 : y->n1;
    if (cx != cy)
        return cx > cy ? -1 : 1;
    if (x->dist != y->dist)
        return x->dist < y->dist ? -1 : 1;
    if (x->rank != y->rank)
        return x->rank < y->rank ? -1 : 1;
    if (x->j != y->j)
        return x->j < y->j ? -1 : 1;
    return (x->next > y->next) - (x->next < y->next);
}

/* ---- text ---------------------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 128;
        while (nc < b->n + n + 1)
            nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    if (n)
        memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static size_t indent_of(const char *s, size_t n) {
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    return i;
}

/* The indentation a source line gets at the query: the source context
 * line's indentation `sc` is replaced by the query's `qc`. A line indented
 * deeper than sc keeps its extra indentation; one indented less gives up as
 * many bytes of qc as it gave up of sc; otherwise it keeps its own. */
static void reindent(sbuf *b, const char *li, size_t ln, const char *sc, size_t scn,
                     const char *qc, size_t qcn) {
    if (ln >= scn && !memcmp(li, sc, scn)) {
        sb_put(b, qc, qcn);
        sb_put(b, li + scn, ln - scn);
    } else if (scn > ln && !memcmp(li, sc, ln) && qcn >= scn - ln) {
        sb_put(b, qc, qcn - (scn - ln));
    } else {
        sb_put(b, li, ln);
    }
}

/* Where a candidate's lines come from: a function of the source giving the
 * raw text of its t-th line from the match (t = 0: the line proposed; -1:
 * the context line above it); false past the end. */
typedef struct source {
    const lines *L;       /* in-file (above or below) */
    int si;
    int limit;            /* lines of L that may be used */
    const cfile *f;       /* another file */
    mc_retr_file rf;
    uint32_t j;
} source;

static bool source_line(const source *s, int t, const char **p, size_t *n) {
    if (s->L) {
        int i = s->si + t;
        if (i < 0 || i >= s->limit)
            return false;
        *p = s->L->v[i].s;
        *n = s->L->v[i].n;
        return true;
    }
    int64_t j = (int64_t)s->j + t;
    if (j < 0 || j >= s->f->nb)
        return false;
    view_line(&s->rf, (int)s->f->line[j], p, n);
    return true;
}

/* ---- fuzzy contexts ------------------------------------------------------------------ */

enum { FUZZY_WINDOWS = 16, MAX_TERMS = 256 };
#define FUZZY_MIN 0.5 /* Jaccard similarity of the context line */

static bool is_word(char ch) {
    unsigned char c = (unsigned char)ch;
    return c == '_' || (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c >= 0x80;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Sort ids[0..n) and drop repeats: a term set. Returns its size. */
static int term_set(uint32_t *ids, int n) {
    if (n <= 1)
        return n;
    qsort(ids, (size_t)n, sizeof *ids, cmp_u32);
    int k = 1;
    for (int i = 1; i < n; i++)
        if (ids[i] != ids[k - 1])
            ids[k++] = ids[i];
    return k;
}

static int text_terms(const mc_retr_index *ix, const char *s, size_t n, uint32_t *out) {
    int k = mc_retr_tokenize(ix, s, n, out, MAX_TERMS);
    return k < 0 ? 0 : term_set(out, MC_MIN(k, MAX_TERMS));
}

static int line_terms(const mc_retr_file *rf, int i, uint32_t *out) {
    uint32_t a = rf->tok_off[i], n = MC_MIN(rf->tok_off[i + 1] - a, (uint32_t)MAX_TERMS);
    memcpy(out, rf->tok + a, n * sizeof *out);
    return term_set(out, (int)n);
}

static double jaccard(const uint32_t *a, int na, const uint32_t *b, int nb) {
    if (na == 0 || nb == 0)
        return 0.0;
    int i = 0, j = 0, in = 0;
    while (i < na && j < nb) {
        if (a[i] == b[j]) {
            in++;
            i++;
            j++;
        } else if (a[i] < b[j]) {
            i++;
        } else {
            j++;
        }
    }
    return (double)in / (na + nb - in);
}

/* Candidates from similar contexts: the retrieval index's top windows for
 * the last two lines (its leakage filter keeps the query's file before the
 * cursor's line), every line in them similar enough to the context line, and
 * the line that followed it (never at or after the cursor's line in the
 * query's own file). Appends to T; the caller sorts. */
static int fuzzy(const mc_copy_index *cx, const char *path, const cfile *own, int cursor_line,
                 const lines *A, ctab *T) {
    const int nA = A->n;
    uint32_t q0[MAX_TERMS], q1[MAX_TERMS], t0[MAX_TERMS], t1[MAX_TERMS];
    const sline *l0 = &A->v[nA - 1], *l1 = nA >= 2 ? &A->v[nA - 2] : NULL;
    int n0 = text_terms(cx->ix, l0->s, l0->n, q0), n1 = l1 ? text_terms(cx->ix, l1->s, l1->n, q1) : 0;
    if (n0 == 0)
        return 0;
    /* The query: the words of the two context lines (identifiers and numbers
     * of two or more characters). Punctuation and one-letter names occur in
     * nearly every window: they would make the search visit the whole index
     * and barely change which windows come first. */
    size_t qn = 2 * ((size_t)l0->n + 1) + (l1 ? 2 * ((size_t)l1->n + 1) : 0); /* a word and its
                                                                               separator */
    char *qt = malloc(qn);
    if (!qt)
        return MC_ENOMEM;
    size_t k = 0;
    for (int li = 0; li < 2; li++) {
        const sline *l = li == 0 ? l1 : l0;
        if (!l)
            continue;
        for (uint32_t i = 0; i < l->n;) {
            uint32_t e = i;
            while (e < l->n && is_word(l->s[e]))
                e++;
            if (e - i >= 2) {
                memcpy(qt + k, l->s + i, e - i);
                k += e - i;
                qt[k++] = ' ';
            }
            i = e > i ? e : i + 1;
        }
        qt[k++] = '\n';
    }
    qn = k;
    mc_retr_query rq = mc_retr_query_default();
    rq.text = qt;
    rq.len = qn;
    rq.file = path;
    rq.cursor_line = cursor_line;
    rq.k = FUZZY_WINDOWS;
    mc_retr_hit hits[FUZZY_WINDOWS];
    int nh = mc_retr_search(cx->ix, &rq, hits, FUZZY_WINDOWS, NULL);
    free(qt);
    if (nh < 0)
        return nh == MC_ENOMEM ? MC_ENOMEM : 0;
    int n_match = 0;
    for (int h = 0; h < nh; h++) {
        const cfile *f = mc__copy_find(cx, hits[h].file);
        mc_retr_file rf;
        if (!f || mc_retr_file_get(cx->ix, f->path, &rf) != 0 || rf.hash != f->hash || !rf.tok)
            continue;
        /* the window's non-blank lines: f->line[j0 .. j1) */
        int lo = 0, hi = f->nb;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if ((int)f->line[mid] < hits[h].start_line)
                lo = mid + 1;
            else
                hi = mid;
        }
        for (int j = lo; j + 1 < f->nb && (int)f->line[j] < hits[h].start_line + hits[h].n_lines;
             j++) {
            if (f == own && (int)f->line[j + 1] >= cursor_line)
                break; /* the leakage rule: nothing at or after the cursor's line */
            int nt = line_terms(&rf, (int)f->line[j], t0);
            double s0 = jaccard(q0, n0, t0, nt);
            if (s0 < FUZZY_MIN)
                continue;
            double s1 = 0.0;
            if (j > 0 && n1 > 0) {
                int nt1 = line_terms(&rf, (int)f->line[j - 1], t1);
                s1 = jaccard(q1, n1, t1, nt1);
            }
            cand *c = ctab_get(T, f->h[j + 1]);
            if (!c)
                return MC_ENOMEM;
            double sim = s0 + 0.5 * s1;
            bool mine = f == own;
            c->n1++;
            n_match++;
            /* the best match: the most similar; then the query's file, the nearer, path order */
            int src = mine ? MC_COPY_IN_FILE : MC_COPY_REPO;
            int dist = mine ? cursor_line - (int)f->line[j + 1] : 0;
            bool better = c->src < 0 || sim > c->sim ||
                          (sim == c->sim && (src != c->src ? src < c->src
                                             : dist != c->dist ? dist < c->dist
                                             : f->rank != c->rank ? f->rank < c->rank
                                                                  : (uint32_t)(j + 1) < c->j));
            if (better) {
                c->m = 0;
                c->sim = sim;
                c->src = src;
                c->dist = dist;
                c->rank = f->rank;
                c->slot = f->slot;
                c->j = (uint32_t)(j + 1);
                c->indexed = mine;
            }
        }
    }
    (void)n_match;
    return 0;
}

/* ---- the proposal ----------------------------------------------------------------- */

int mc_copy_propose(const mc_copy_index *cx, const mc_copy_query *q, const mc_copy_params *pp,
                    mc_copy_result *out, mc_err *err) {
    memset(out, 0, sizeof *out);
    mc_copy_params p = pp ? *pp : mc_copy_params_default();
    if (!q || (!q->text && q->len) || q->cursor > q->len || p.k < 0 || p.max_context < 1 ||
        p.max_context > 16 || p.max_doc_lines < 1)
        return mc_err_set(err, MC_EINVAL, -1,
                          "copy: bad query or parameters (cursor within the text, k >= 0, "
                          "max_context in 1..16, max_doc_lines >= 1)");
    if (!mc_copy_synced(cx))
        return mc_err_set(err, MC_EUNSUPPORTED, -1,
                          "copy index is not synced with its retrieval index (mc_copy_sync)");
    if (p.k == 0)
        return 0;
    const char *text = q->text ? q->text : "";
    const int want_lines = q->n_lines > 1 ? q->n_lines : 1;

    /* the cursor's line: what was typed on it (blanks W, then the rest P) */
    size_t ls = q->cursor;
    while (ls > 0 && text[ls - 1] != '\n')
        ls--;
    size_t w_end = ls;
    while (w_end < q->cursor && (text[w_end] == ' ' || text[w_end] == '\t'))
        w_end++;
    const char *P = text + w_end;
    size_t Pn = q->cursor - w_end;

    /* which file lines the document holds: scan back at most max_doc_lines */
    int n_above = 0; /* document lines before the cursor's line */
    for (size_t i = 0; i < ls; i++)
        n_above += text[i] == '\n';
    int cursor_line = q->line >= 0 ? q->line : n_above;
    int L0 = cursor_line - n_above; /* the file line of the document's first line */
    if (L0 < 0)
        return mc_err_set(err, MC_EINVAL, -1,
                          "copy: cursor line %d, but the document has %d lines above it",
                          cursor_line, n_above);
    const cfile *own = q->path ? mc__copy_find(cx, q->path) : NULL;
    mc_retr_file own_rf;
    memset(&own_rf, 0, sizeof own_rf);
    if (own && (mc_retr_file_get(cx->ix, own->path, &own_rf) != 0 || own_rf.hash != own->hash))
        own = NULL; /* cannot happen while synced; be safe */

    lines A = {0}, B = {0}; /* above the cursor (oldest first), below it (nearest first) */
    ctab T = {0};
    int rc = 0;
    size_t scan = ls; /* byte where the document's scanned part starts */
    int first_doc_line = 0, lines_back = 0;
    while (scan > 0) {
        size_t s = scan - 1; /* scan[-1] is the '\n' ending the line before */
        while (s > 0 && text[s - 1] != '\n')
            s--;
        if (++lines_back > p.max_doc_lines)
            break;
        scan = s;
    }
    for (size_t i = 0; i < scan; i++)
        first_doc_line += text[i] == '\n';
    /* A document that is a cut of its file (L0 > 0, as the benchmark's prompts
     * are) starts with a possibly partial line: that line and the ones before
     * it come from the indexed file, which holds them whole. Only lines before
     * the cursor's line are ever taken from it (the leakage rule). */
    bool from_index = own && L0 > 0 && scan == 0 && own_rf.n_lines > L0;
    if (from_index) {
        int lo = 0, hi = own->nb; /* non-blank lines with line <= L0 */
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if ((int)own->line[mid] <= L0)
                lo = mid + 1;
            else
                hi = mid;
        }
        int start = MC_MAX(0, lo - p.max_doc_lines);
        for (int j = start; j < lo && rc == 0; j++) {
            const char *s;
            size_t n;
            view_line(&own_rf, (int)own->line[j], &s, &n);
            rc = lines_push(&A, s, n, (int)own->line[j]);
        }
    }
    {
        size_t i = scan;
        int dl = first_doc_line;
        while (i < ls && rc == 0) {
            const char *nl = memchr(text + i, '\n', ls - i);
            size_t e = nl ? (size_t)(nl - text) : ls;
            if (!(from_index && dl == 0))
                rc = lines_push(&A, text + i, e - i, L0 + dl);
            dl++;
            i = e + 1;
        }
    }
    if (rc == 0 && p.use_below) {
        const char *nl = memchr(text + q->cursor, '\n', q->len - q->cursor);
        size_t i = nl ? (size_t)(nl - text) + 1 : q->len;
        int dl = cursor_line + 1;
        for (int k = 0; i < q->len && k < p.max_doc_lines && rc == 0; k++) {
            const char *n2 = memchr(text + i, '\n', q->len - i);
            size_t e = n2 ? (size_t)(n2 - text) : q->len;
            rc = lines_push(&B, text + i, e - i, dl++);
            i = e + 1;
        }
    }
    if (rc)
        goto oom;
    const int nA = A.n, mc = MC_MIN(p.max_context, nA);
    if (mc == 0)
        goto done;
    uint64_t qh[16]; /* the context, most recent first */
    for (int m = 0; m < mc; m++)
        qh[m] = A.v[nA - 1 - m].h;

    /* in-file, above: every earlier occurrence of the context line */
    for (int i = 1; i < nA; i++) {
        if (A.v[i - 1].h != qh[0])
            continue;
        int m = 1;
        while (m < mc && i - 1 - m >= 0 && A.v[i - 1 - m].h == qh[m])
            m++;
        cand *c = ctab_get(&T, A.v[i].h);
        if (!c)
            goto oom;
        c->n1++;
        c->n2 += m >= 2;
        take_match(c, m, MC_COPY_IN_FILE, nA - i, i, 0, 0, 0);
    }
    /* in-file, below (the context must be below too) */
    for (int i = 1; i < B.n; i++) {
        if (B.v[i - 1].h != qh[0])
            continue;
        int m = 1;
        while (m < mc && i - 1 - m >= 0 && B.v[i - 1 - m].h == qh[m])
            m++;
        cand *c = ctab_get(&T, B.v[i].h);
        if (!c)
            goto oom;
        c->n1++;
        c->n2 += m >= 2;
        take_match(c, m, MC_COPY_BELOW, i, i, 0, 0, 0);
    }
    /* other files: two lines of context (extended as far as they agree) ... */
    const uint32_t own_slot = own ? own->slot : UINT32_MAX;
    if (mc >= 2) {
        const clist *l = mc__copy_list(cx, mc__copy_k2(qh[1], qh[0]));
        for (uint32_t r = 0; l && r < l->n; r++) {
            const cpost *e = &l->p[r];
            if (e->file == own_slot)
                continue;
            const cfile *f = cx->slots[e->file];
            int m = 2;
            while (m < mc && (int64_t)e->j - 1 - m >= 0 && f->h[e->j - 1 - m] == qh[m])
                m++;
            cand *c = ctab_get(&T, e->next);
            if (!c)
                goto oom;
            c->n2++;
            take_match(c, m, MC_COPY_REPO, 0, 0, f->rank, e->file, e->j);
        }
    }
    /* ... and one line (every match; those of two lines were taken above) */
    {
        const clist *l = mc__copy_list(cx, mc__copy_k1(qh[0]));
        for (uint32_t r = 0; l && r < l->n;) {
            uint32_t e = r;
            while (e < l->n && l->p[e].next == l->p[r].next)
                e++;
            cand *c = NULL;
            for (uint32_t k = r; k < e; k++) {
                const cpost *x = &l->p[k];
                if (x->file == own_slot)
                    continue;
                if (!c && !(c = ctab_get(&T, x->next)))
                    goto oom;
                c->n1++;
                if (c->m <= 1)
                    take_match(c, 1, MC_COPY_REPO, 0, 0, cx->slots[x->file]->rank, x->file, x->j);
            }
            r = e;
        }
    }
    if (T.n == 0 && p.fuzzy) {
        rc = fuzzy(cx, own ? own->path : q->path, own, cursor_line, &A, &T);
        if (rc)
            goto oom;
    }
    if (T.n == 0)
        goto done;

    /* score and order */
    int t1 = 0, t2 = 0;
    for (int i = 0; i < T.n; i++) {
        t1 += T.v[i].n1;
        t2 += T.v[i].n2;
    }
    const mc_copy_calib *cal = mc_copy_calib_default();
    for (int i = 0; i < T.n; i++) {
        cand *c = &T.v[i];
        mc_copy_features f = {c->m, c->src != MC_COPY_REPO, c->src != MC_COPY_REPO ? c->dist : 0,
                              c->m >= 2 ? c->n2 : c->n1, c->m >= 2 ? t2 : t1, (float)c->sim};
        c->logit = mc_copy_logit(cal, &f);
    }
    qsort(T.v, (size_t)T.n, sizeof *T.v, cmp_cand);
    out->n_considered = T.n;
    out->c = calloc((size_t)MC_MIN(p.k, T.n), sizeof *out->c);
    if (!out->c)
        goto oom;

    /* the query's context line's indentation (what the source's is replaced by) */
    const char *qc = A.v[nA - 1].s;
    size_t qcn = indent_of(qc, A.v[nA - 1].n);
    for (int i = 0; i < T.n && out->n < p.k; i++) {
        const cand *c = &T.v[i];
        source S;
        memset(&S, 0, sizeof S);
        if (c->src == MC_COPY_REPO || c->indexed) {
            S.f = cx->slots[c->slot];
            S.j = c->j;
            if (mc_retr_file_get(cx->ix, S.f->path, &S.rf) != 0 || S.rf.hash != S.f->hash)
                continue;
        } else {
            S.L = c->src == MC_COPY_IN_FILE ? &A : &B;
            S.si = c->si;
            S.limit = S.L->n; /* above: never past the cursor */
        }
        const char *ctx, *li;
        size_t ctxn, lin;
        if (!source_line(&S, -1, &ctx, &ctxn) || !source_line(&S, 0, &li, &lin))
            continue;
        size_t b, e;
        mc__copy_strip(li, lin, &b, &e);
        /* the typed-prefix filter: what was typed must begin the line, and
         * something must be left to suggest */
        if (e - b < Pn || memcmp(li + b, P, Pn) != 0 || (Pn > 0 && e - b == Pn && want_lines == 1))
            continue;
        sbuf sb = {0};
        size_t scn = indent_of(ctx, ctxn);
        if (Pn > 0) {
            sb_put(&sb, li + b + Pn, e - b - Pn);
        } else {
            sbuf ind = {0};
            reindent(&ind, li, b, ctx, scn, qc, qcn);
            const char *W = text + ls;
            size_t Wn = w_end - ls;
            if (!ind.oom && ind.n >= Wn && (Wn == 0 || !memcmp(ind.p, W, Wn)))
                sb_put(&sb, ind.p + Wn, ind.n - Wn);
            free(ind.p);
            sb_put(&sb, li + b, e - b);
        }
        for (int t = 1; t < want_lines; t++) {
            const char *ln;
            size_t lnn;
            if (!source_line(&S, t, &ln, &lnn))
                break;
            size_t b2, e2;
            mc__copy_strip(ln, lnn, &b2, &e2);
            sb_put(&sb, "\n", 1);
            reindent(&sb, ln, b2, ctx, scn, qc, qcn);
            sb_put(&sb, ln + b2, e2 - b2);
        }
        if (sb.oom || !sb.p) {
            free(sb.p);
            if (sb.oom)
                goto oom;
            continue;
        }
        mc_copy_cand *o = &out->c[out->n++];
        o->text = sb.p;
        o->len = sb.n;
        o->score = (float)c->logit;
        o->precision = (float)(1.0 / (1.0 + exp(-c->logit)));
        o->context = c->m;
        o->similarity = (float)c->sim;
        o->source = c->src;
        o->distance = c->src != MC_COPY_REPO ? c->dist : 0;
        o->count = c->m >= 2 ? c->n2 : c->n1;
        o->total = c->m >= 2 ? t2 : t1;
        const char *fp = S.f ? S.f->path : (q->path ? q->path : "");
        snprintf(o->file, sizeof o->file, "%s", fp);
        o->line = S.f ? (int)S.f->line[c->j] : S.L->v[c->si].line;
    }
done:
    free(A.v);
    free(B.v);
    free(T.v);
    free(T.slot);
    return 0;
oom:
    free(A.v);
    free(B.v);
    free(T.v);
    free(T.slot);
    mc_copy_result_fini(out);
    return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
}
