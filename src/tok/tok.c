/* src/tok/tok.c — loading vocabularies, encoding (BPE and SPM), decoding,
 * streaming decoding and token healing.
 *
 * The algorithms follow llama.cpp's llama-vocab.cpp so that ids are identical:
 *   - special tokens are cut out first, longest text first; control/unknown
 *     ones only with MC_TOK_PARSE_SPECIAL, user-defined ones always;
 *   - BPE: pre-tokenize (tok_pretok.c), then per word start from one symbol
 *     per byte and repeatedly merge the adjacent pair of lowest merge rank
 *     (leftmost on ties); with ignore_merges (llama3) a word that is itself a
 *     token is taken whole;
 *   - SPM: spaces become U+2581, a space is prefixed to text that starts the
 *     input or follows a special token, symbols are UTF-8 characters, the pair
 *     whose concatenation is the highest-scoring token is merged first
 *     (leftmost on ties), leftovers fall back to <0xXX> byte tokens.
 * Internally BPE works on ids: merges are a hash (left id, right id) -> (rank,
 * result id) built at load, and words are cached per thread.
 * Not here: the trainer (tok_train.c), pre-tokenizers (tok_pretok.c). */
#include "tok_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- per-thread scratch and word cache ------------------------------------- */

typedef struct wc_slot {
    uint64_t h;       /* 0 = empty */
    uint32_t key_off; /* in kpool */
    uint32_t key_len;
    uint32_t ids_off; /* in ipool */
    uint32_t n_ids;
} wc_slot;

typedef struct frag {
    uint32_t start, len;
    int32_t tok; /* -1: raw text */
} frag;

typedef struct bpe_cand {
    int32_t rank, left, right, lid, rid;
} bpe_cand;

typedef struct spm_cand {
    float score;
    int32_t left, right;
    uint32_t size;
} spm_cand;

typedef struct tls {
    mc__pretok_buf pb;
    int32_t *sym, *prev, *next;
    uint32_t *soff, *slen;
    size_t cap_sym;
    void *heap;
    size_t cap_heap; /* bytes */
    frag *fr, *fr2;
    size_t cap_fr, cap_fr2;
    char *sbuf;
    size_t cap_sbuf;
    uint8_t *present; /* (n_special) which specials occur in the current text */
    size_t cap_present;
    /* word cache */
    wc_slot *wc;
    size_t wc_mask, wc_used;
    char *kpool;
    size_t kp_len, kp_cap;
    int32_t *ipool;
    size_t ip_len, ip_cap;
} tls;

#define WC_SLOTS (1u << 15)
#define WC_KPOOL (1u << 21)
#define WC_IPOOL (1u << 19)
#define WC_MAX_WORD 128

static void tls_free(void *p) {
    tls *c = p;
    if (!c)
        return;
    mc__pretok_buf_fini(&c->pb);
    free(c->sym);
    free(c->prev);
    free(c->next);
    free(c->soff);
    free(c->slen);
    free(c->heap);
    free(c->fr);
    free(c->fr2);
    free(c->sbuf);
    free(c->present);
    free(c->wc);
    free(c->kpool);
    free(c->ipool);
    free(c);
}

static tls *tls_get(const mc_tok *t) {
    tls *c = pthread_getspecific(t->tls);
    if (c)
        return c;
    c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    if (pthread_setspecific(t->tls, c)) {
        free(c);
        return NULL;
    }
    return c;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 64;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q)
        return MC_ENOMEM;
    *p = q;
    *cap = n;
    return 0;
}

static int sym_reserve(tls *c, size_t n) {
    if (n <= c->cap_sym)
        return 0;
    size_t cap = c->cap_sym ? c->cap_sym : 256;
    while (cap < n)
        cap *= 2;
    int32_t *a = realloc(c->sym, cap * sizeof(int32_t));
    if (!a)
        return MC_ENOMEM;
    c->sym = a;
    a = realloc(c->prev, cap * sizeof(int32_t));
    if (!a)
        return MC_ENOMEM;
    c->prev = a;
    a = realloc(c->next, cap * sizeof(int32_t));
    if (!a)
        return MC_ENOMEM;
    c->next = a;
    uint32_t *u = realloc(c->soff, cap * sizeof(uint32_t));
    if (!u)
        return MC_ENOMEM;
    c->soff = u;
    u = realloc(c->slen, cap * sizeof(uint32_t));
    if (!u)
        return MC_ENOMEM;
    c->slen = u;
    c->cap_sym = cap;
    return 0;
}

/* ---- output --------------------------------------------------------------- */

typedef struct outw {
    int32_t *out;
    int64_t cap, n;
    bool stop; /* MC_TOK_STOP_FULL: give up once n > cap */
} outw;

static inline void put(outw *o, int32_t id) {
    if (o->n < o->cap)
        o->out[o->n] = id;
    o->n++;
}

/* ---- lookups ---------------------------------------------------------------- */

static inline const char *tok_text(const mc_tok *t, int32_t id, size_t *n) {
    *n = (size_t)(t->text_off[id + 1] - t->text_off[id]);
    return t->text_pool + t->text_off[id];
}

int32_t mc__tok_lookup(const mc_tok *t, const char *s, size_t n) {
    uint64_t h = mc__tok_hash(s, n);
    for (uint64_t i = h & t->text_ht_mask;; i = (i + 1) & t->text_ht_mask) {
        int32_t id = t->text_ht[i];
        if (id < 0)
            return -1;
        size_t l;
        const char *x = tok_text(t, id, &l);
        if (l == n && memcmp(x, s, n) == 0)
            return id;
    }
}

static inline const mc__merge_slot *merge_find(const mc_tok *t, int32_t a, int32_t b) {
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    for (uint64_t i = mc__tok_hash64(key) & t->merge_ht_mask;; i = (i + 1) & t->merge_ht_mask) {
        const mc__merge_slot *s = &t->merge_ht[i];
        if (s->key == key)
            return s;
        if (s->key == 0)
            return NULL;
    }
}

/* ---- BPE ------------------------------------------------------------------- */

static inline bool cand_less(const bpe_cand *x, const bpe_cand *y) {
    return x->rank < y->rank || (x->rank == y->rank && x->left < y->left);
}

static void heap_push(bpe_cand *h, size_t *n, bpe_cand v) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&v, &h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static bpe_cand heap_pop(bpe_cand *h, size_t *n) {
    bpe_cand top = h[0];
    bpe_cand v = h[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= m)
            break;
        size_t r = l + 1;
        size_t k = (r < m && cand_less(&h[r], &h[l])) ? r : l;
        if (!cand_less(&h[k], &v))
            break;
        h[i] = h[k];
        i = k;
    }
    h[i] = v;
    return top;
}

static int wc_init(tls *c) {
    c->wc = calloc(WC_SLOTS, sizeof(wc_slot));
    c->kpool = malloc(WC_KPOOL);
    c->ipool = malloc(WC_IPOOL * sizeof(int32_t));
    if (!c->wc || !c->kpool || !c->ipool)
        return MC_ENOMEM;
    c->wc_mask = WC_SLOTS - 1;
    c->kp_cap = WC_KPOOL;
    c->ip_cap = WC_IPOOL;
    return 0;
}

static void wc_clear(tls *c) {
    memset(c->wc, 0, WC_SLOTS * sizeof(wc_slot));
    c->wc_used = 0;
    c->kp_len = 0;
    c->ip_len = 0;
}

static int bpe_word(const mc_tok *t, tls *c, const uint8_t *w, size_t n, outw *o) {
    uint64_t h = 0;
    wc_slot *slot = NULL;
    if (n <= WC_MAX_WORD) {
        if (!c->wc && wc_init(c))
            return MC_ENOMEM;
        h = mc__tok_hash(w, n) | 1;
        for (size_t i = h & c->wc_mask;; i = (i + 1) & c->wc_mask) {
            wc_slot *s = &c->wc[i];
            if (s->h == 0) {
                slot = s;
                break;
            }
            if (s->h == h && s->key_len == n && memcmp(c->kpool + s->key_off, w, n) == 0) {
                for (uint32_t k = 0; k < s->n_ids; k++)
                    put(o, c->ipool[s->ids_off + k]);
                return 0;
            }
        }
    }
    int64_t first = o->n;
    bool done = false;
    if (t->ignore_merges) {
        char buf[2 * WC_MAX_WORD + 8] = {0};
        char *mb = n <= WC_MAX_WORD ? buf : malloc(2 * n + 1);
        if (!mb)
            return MC_ENOMEM;
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            m += (size_t)mc__u_encode(mc__u_byte_to_cp(w[i]), mb + m);
        int32_t id = mc__tok_lookup(t, mb, m);
        if (mb != buf)
            free(mb);
        if (id >= 0) {
            put(o, id);
            done = true;
        }
    }
    if (!done) {
        if (sym_reserve(c, n + 1) || grow(&c->heap, &c->cap_heap, n + 1, sizeof(bpe_cand)))
            return MC_ENOMEM;
        int32_t *sym = c->sym, *prev = c->prev, *next = c->next;
        for (size_t i = 0; i < n; i++) {
            sym[i] = t->byte_tok[w[i]];
            prev[i] = (int32_t)i - 1;
            next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
        }
        bpe_cand *hp = c->heap;
        size_t nh = 0, cap_h = c->cap_heap;
        for (size_t i = 0; i + 1 < n; i++) {
            if (sym[i] < 0 || sym[i + 1] < 0)
                continue;
            const mc__merge_slot *m = merge_find(t, sym[i], sym[i + 1]);
            if (m)
                heap_push(hp, &nh, (bpe_cand){m->rank, (int32_t)i, (int32_t)i + 1, sym[i], sym[i + 1]});
        }
        while (nh > 0) {
            bpe_cand b = heap_pop(hp, &nh);
            int32_t L = b.left, R = b.right;
            if (sym[L] != b.lid || sym[R] != b.rid || next[L] != R)
                continue; /* outdated */
            const mc__merge_slot *m = merge_find(t, b.lid, b.rid);
            sym[L] = m->result;
            sym[R] = -2; /* dead */
            next[L] = next[R];
            if (next[R] >= 0)
                prev[next[R]] = L;
            /* at most two new candidates per merge: room for n + 2k stays below 3n */
            if (nh + 2 > cap_h) {
                size_t used = nh;
                c->heap = hp;
                if (grow(&c->heap, &c->cap_heap, used + 2, sizeof(bpe_cand)))
                    return MC_ENOMEM;
                hp = c->heap;
                cap_h = c->cap_heap;
            }
            if (prev[L] >= 0 && sym[prev[L]] >= 0) {
                const mc__merge_slot *mm = merge_find(t, sym[prev[L]], sym[L]);
                if (mm)
                    heap_push(hp, &nh, (bpe_cand){mm->rank, prev[L], L, sym[prev[L]], sym[L]});
            }
            if (next[L] >= 0 && sym[next[L]] >= 0) {
                const mc__merge_slot *mm = merge_find(t, sym[L], sym[next[L]]);
                if (mm)
                    heap_push(hp, &nh, (bpe_cand){mm->rank, L, next[L], sym[L], sym[next[L]]});
            }
        }
        c->heap = hp;
        for (int32_t i = 0; i >= 0 && (size_t)i < n; i = next[i])
            if (sym[i] >= 0)
                put(o, sym[i]);
    }
    /* remember the word (only if its ids were all written: o->n <= cap) */
    if (slot && o->n <= o->cap) {
        uint32_t k = (uint32_t)(o->n - first);
        if (c->wc_used * 2 > WC_SLOTS || c->kp_len + n > c->kp_cap || c->ip_len + k > c->ip_cap) {
            wc_clear(c);
            for (size_t i = h & c->wc_mask;; i = (i + 1) & c->wc_mask)
                if (c->wc[i].h == 0) {
                    slot = &c->wc[i];
                    break;
                }
        }
        memcpy(c->kpool + c->kp_len, w, n);
        /* k == 0: a word none of whose bytes has a token (a vocabulary without
         * byte tokens); o->out may then be NULL (a count-only call), and
         * memcpy must not see a null pointer even for 0 bytes */
        if (k > 0)
            memcpy(c->ipool + c->ip_len, o->out + first, k * sizeof(int32_t));
        *slot = (wc_slot){h, (uint32_t)c->kp_len, (uint32_t)n, (uint32_t)c->ip_len, k};
        c->kp_len += n;
        c->ip_len += k;
        c->wc_used++;
    }
    return 0;
}

static int bpe_text(const mc_tok *t, tls *c, const char *text, size_t len, outw *o) {
    int rc = mc__pretok_split(t->pre, text, len, &c->pb);
    if (rc)
        return rc;
    const mc__pretok_buf *b = &c->pb;
    uint32_t start = 0;
    for (size_t i = 0; i < b->n_ends; i++) {
        if (o->stop && o->n > o->cap)
            return 0; /* past the caller's limit: the rest need not be tokenized */
        uint32_t s = b->off[start], e = b->off[b->ends[i]];
        rc = bpe_word(t, c, (const uint8_t *)text + s, e - s, o);
        if (rc)
            return rc;
        start = b->ends[i];
    }
    return 0;
}

/* ---- SPM ------------------------------------------------------------------- */

static inline bool spm_less(const spm_cand *x, const spm_cand *y) {
    /* "less" = higher priority: bigger score, then smaller left */
    return x->score > y->score || (x->score == y->score && x->left < y->left);
}

static void spm_push(spm_cand *h, size_t *n, spm_cand v) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!spm_less(&v, &h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static spm_cand spm_pop(spm_cand *h, size_t *n) {
    spm_cand top = h[0];
    spm_cand v = h[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= m)
            break;
        size_t r = l + 1;
        size_t k = (r < m && spm_less(&h[r], &h[l])) ? r : l;
        if (!spm_less(&h[k], &v))
            break;
        h[i] = h[k];
        i = k;
    }
    h[i] = v;
    return top;
}

static void spm_try(const mc_tok *t, const char *s, tls *c, int32_t l, int32_t r, spm_cand **hp,
                    size_t *nh) {
    if (l < 0 || r < 0)
        return;
    uint32_t size = c->slen[l] + c->slen[r];
    int32_t id = mc__tok_lookup(t, s + c->soff[l], size);
    if (id < 0)
        return;
    spm_push(*hp, nh, (spm_cand){t->scores[id], l, r, size});
}

static int spm_text(const mc_tok *t, tls *c, const char *text, size_t len, bool prefix, outw *o) {
    /* escape: ' ' -> U+2581 (3 bytes) */
    size_t need = 3 * (len + 1);
    if (grow((void **)&c->sbuf, &c->cap_sbuf, need, 1))
        return MC_ENOMEM;
    char *s = c->sbuf;
    size_t n = 0;
    if (prefix) {
        memcpy(s, "\xE2\x96\x81", 3);
        n = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(s + n, "\xE2\x96\x81", 3);
            n += 3;
        } else {
            s[n++] = text[i];
        }
    }
    if (n == 0)
        return 0;
    static const uint8_t lens[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    if (sym_reserve(c, n + 1))
        return MC_ENOMEM;
    int32_t ns = 0;
    for (size_t off = 0; off < n;) {
        size_t l = lens[(uint8_t)s[off] >> 4];
        if (l > n - off)
            l = n - off;
        /* llama.cpp trusts the lead byte; for invalid UTF-8 that would glue a
         * following U+2581 to a broken byte and lose the space on decoding.
         * Valid UTF-8 is unaffected. */
        for (size_t k = 1; k < l; k++)
            if (((uint8_t)s[off + k] & 0xC0) != 0x80) {
                l = 1;
                break;
            }
        c->soff[ns] = (uint32_t)off;
        c->slen[ns] = (uint32_t)l;
        c->prev[ns] = ns - 1;
        off += l;
        c->next[ns] = off == n ? -1 : ns + 1;
        ns++;
    }
    /* each merge adds at most 2 candidates: n - 1 + 2 (n - 1) < 3n */
    if (grow(&c->heap, &c->cap_heap, (size_t)3 * ns + 4, sizeof(spm_cand)))
        return MC_ENOMEM;
    spm_cand *hp = c->heap;
    size_t nh = 0;
    for (int32_t i = 1; i < ns; i++)
        spm_try(t, s, c, i - 1, i, &hp, &nh);
    while (nh > 0) {
        spm_cand b = spm_pop(hp, &nh);
        uint32_t *sl = c->slen;
        if (sl[b.left] == 0 || sl[b.right] == 0 || sl[b.left] + sl[b.right] != b.size)
            continue;
        sl[b.left] += sl[b.right];
        sl[b.right] = 0;
        c->next[b.left] = c->next[b.right];
        if (c->next[b.right] >= 0)
            c->prev[c->next[b.right]] = b.left;
        spm_try(t, s, c, c->prev[b.left], b.left, &hp, &nh);
        spm_try(t, s, c, b.left, c->next[b.left], &hp, &nh);
    }
    for (int32_t i = 0; i != -1; i = c->next[i]) {
        int32_t id = mc__tok_lookup(t, s + c->soff[i], c->slen[i]);
        if (id >= 0) {
            put(o, id);
            continue;
        }
        for (uint32_t k = 0; k < c->slen[i]; k++) {
            int32_t b = t->byte_tok[(uint8_t)s[c->soff[i] + k]];
            if (b < 0)
                b = t->special[MC_TOK_UNK];
            if (b >= 0)
                put(o, b);
        }
    }
    return 0;
}

/* ---- special-token partition -------------------------------------------------- */

static int partition(const mc_tok *t, tls *c, const char *text, size_t len, bool parse_special,
                     size_t *n_fr) {
    if (grow((void **)&c->fr, &c->cap_fr, 1, sizeof(frag)))
        return MC_ENOMEM;
    size_t n = 0;
    if (len > 0)
        c->fr[n++] = (frag){0, (uint32_t)len, -1};
    if (n == 0 || t->n_special == 0) {
        *n_fr = n;
        return 0;
    }
    /* one pass over the text finds the specials that occur at all; only those
     * take part in llama.cpp's split-by-each-special loop below */
    if (grow((void **)&c->present, &c->cap_present, (size_t)t->n_special, 1))
        return MC_ENOMEM;
    memset(c->present, 0, (size_t)t->n_special);
    int n_present = 0;
    const uint8_t *u = (const uint8_t *)text;
    for (size_t p = 0; p < len; p++) {
        int32_t one = t->sp_one[u[p]];
        if (one >= 0 && !c->present[one]) {
            c->present[one] = 1;
            n_present++;
        }
        if (p + 1 >= len)
            break;
        unsigned key = (unsigned)u[p] << 8 | u[p + 1];
        for (uint32_t q = t->sp_start[key]; q < t->sp_start[key + 1]; q++) {
            int32_t k = t->sp_ids[q];
            if (c->present[k])
                continue;
            int32_t id = t->special_ids[k];
            size_t sl;
            const char *st = tok_text(t, id, &sl);
            if (p + sl <= len && memcmp(text + p, st, sl) == 0) {
                c->present[k] = 1;
                n_present++;
            }
        }
    }
    if (n_present == 0) {
        *n_fr = n;
        return 0;
    }
    for (int32_t k = 0; k < t->n_special && n > 0; k++) {
        int32_t id = t->special_ids[k];
        if (!parse_special && (t->attr[id] & (MC_TOK_ATTR_CONTROL | MC_TOK_ATTR_UNKNOWN)))
            continue;
        if (!c->present[k])
            continue;
        size_t sl;
        const char *st = tok_text(t, id, &sl);
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            frag f = c->fr[i];
            if (f.tok >= 0) {
                if (grow((void **)&c->fr2, &c->cap_fr2, m + 1, sizeof(frag)))
                    return MC_ENOMEM;
                c->fr2[m++] = f;
                continue;
            }
            uint32_t pos = f.start, end = f.start + f.len;
            while (pos < end) {
                const char *hit = memmem(text + pos, end - pos, st, sl);
                if (grow((void **)&c->fr2, &c->cap_fr2, m + 2, sizeof(frag)))
                    return MC_ENOMEM;
                if (!hit) {
                    c->fr2[m++] = (frag){pos, end - pos, -1};
                    break;
                }
                uint32_t at = (uint32_t)(hit - text);
                if (at > pos)
                    c->fr2[m++] = (frag){pos, at - pos, -1};
                c->fr2[m++] = (frag){at, (uint32_t)sl, id};
                pos = at + (uint32_t)sl;
            }
        }
        frag *tmp = c->fr;
        c->fr = c->fr2;
        c->fr2 = tmp;
        size_t tc = c->cap_fr;
        c->cap_fr = c->cap_fr2;
        c->cap_fr2 = tc;
        n = m;
    }
    *n_fr = n;
    return 0;
}

static int encode_impl(const mc_tok *t, const char *text, size_t len, int flags, outw *o) {
    if (len >= UINT32_MAX)
        return MC_ERANGE;
    tls *c = tls_get(t);
    if (!c)
        return MC_ENOMEM;
    size_t n_fr;
    int rc = partition(t, c, text, len, (flags & MC_TOK_PARSE_SPECIAL) != 0, &n_fr);
    if (rc)
        return rc;
    bool add_special = (flags & MC_TOK_ADD_BOS) != 0;
    if (add_special && t->add_bos && t->special[MC_TOK_BOS] >= 0)
        put(o, t->special[MC_TOK_BOS]);
    bool prev_special = true;
    for (size_t i = 0; i < n_fr; i++) {
        if (o->stop && o->n > o->cap)
            return 0;
        frag f = c->fr[i];
        if (f.tok >= 0) {
            put(o, f.tok);
            prev_special = true;
            continue;
        }
        if (t->type == MC_TOK_BPE)
            rc = bpe_text(t, c, text + f.start, f.len, o);
        else
            rc = spm_text(t, c, text + f.start, f.len, t->add_space_prefix && prev_special, o);
        if (rc)
            return rc;
        prev_special = false;
    }
    if (add_special && t->add_eos && t->special[MC_TOK_EOS] >= 0)
        put(o, t->special[MC_TOK_EOS]);
    return 0;
}

int mc_tok_encode(const mc_tok *t, const char *text, size_t len, int flags, int32_t *out,
                  int64_t cap, int64_t *n_out) {
    outw o = {out, cap < 0 ? 0 : cap, 0, (flags & MC_TOK_STOP_FULL) != 0};
    int rc = encode_impl(t, text, len, flags, &o);
    if (n_out)
        *n_out = o.n;
    if (rc)
        return rc;
    return o.n > o.cap ? MC_EFULL : 0;
}

size_t mc_tok_max_piece(const mc_tok *t) {
    size_t m = 1;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        size_t n;
        const char *p = (t->attr[id] & (MC_TOK_ATTR_CONTROL | MC_TOK_ATTR_UNKNOWN))
                            ? tok_text(t, id, &n)
                            : mc__tok_piece(t, id, &n);
        (void)p;
        if (n > m)
            m = n;
    }
    return m;
}

/* ---- decoding --------------------------------------------------------------------- */

/* Pointer to the bytes token id decodes to (control tokens: text or nothing). */
static const char *piece_ptr(const mc_tok *t, int32_t id, int flags, size_t *n) {
    if (t->attr[id] & (MC_TOK_ATTR_CONTROL | MC_TOK_ATTR_UNKNOWN)) {
        if (!(flags & MC_TOK_DECODE_SPECIAL)) {
            *n = 0;
            return "";
        }
        return tok_text(t, id, n);
    }
    return mc__tok_piece(t, id, n);
}

int mc_tok_decode_piece(const mc_tok *t, int32_t id, int flags, char *buf, size_t cap) {
    if (id < 0 || id >= t->n_vocab)
        return MC_EINVAL;
    size_t n;
    const char *p = piece_ptr(t, id, flags, &n);
    if (cap > 0 && n > 0)
        memcpy(buf, p, MC_MIN(n, cap));
    return (int)n;
}

int64_t mc_tok_decode(const mc_tok *t, const int32_t *ids, int64_t n, int flags, char *buf,
                      size_t cap) {
    size_t total = 0;
    bool strip = (flags & MC_TOK_DECODE_STRIP_PREFIX) && t->add_space_prefix;
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab)
            return MC_EINVAL;
        size_t pl;
        const char *p = piece_ptr(t, ids[i], flags, &pl);
        if (pl == 0)
            continue;
        if (strip) {
            strip = false;
            if (p[0] == ' ') {
                p++;
                pl--;
            }
        }
        if (total < cap && pl > 0)
            memcpy(buf + total, p, MC_MIN(pl, cap - total));
        total += pl;
    }
    return (int64_t)total;
}

void mc_tok_stream_init(mc_tok_stream *s, int flags) {
    memset(s, 0, sizeof(*s));
    s->flags = flags;
}

/* Number of bytes at the end of p[0..n) that form an incomplete (but so far
 * valid) UTF-8 sequence. */
static size_t utf8_incomplete_tail(const uint8_t *p, size_t n) {
    for (size_t k = 1; k <= 3 && k <= n; k++) {
        uint8_t c = p[n - k];
        if ((c & 0xC0) == 0x80)
            continue; /* continuation: look further back */
        size_t need = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
        return need > k ? k : 0;
    }
    return 0;
}

int mc_tok_stream_push(const mc_tok *t, mc_tok_stream *s, int32_t id, char *out, size_t cap) {
    if (id < 0 || id >= t->n_vocab)
        return MC_EINVAL;
    char piece[512];
    int k = mc_tok_decode_piece(t, id, s->flags, piece, sizeof(piece));
    if (k < 0)
        return k;
    if (k > (int)sizeof(piece))
        return MC_ERANGE;
    const char *p = piece;
    if (k > 0 && !s->started && (s->flags & MC_TOK_DECODE_STRIP_PREFIX) && t->add_space_prefix &&
        p[0] == ' ') {
        p++;
        k--;
    }
    if (k > 0)
        s->started = true;
    size_t n = (size_t)s->n_pending + (size_t)k;
    if (n > cap + 3 && n - 3 > cap)
        return MC_EFULL;
    uint8_t all[520];
    memcpy(all, s->pending, (size_t)s->n_pending);
    memcpy(all + s->n_pending, p, (size_t)k);
    size_t hold = utf8_incomplete_tail(all, n);
    size_t emit_n = n - hold;
    if (emit_n > cap)
        return MC_EFULL;
    memcpy(out, all, emit_n);
    memcpy(s->pending, all + emit_n, hold);
    s->n_pending = (int)hold;
    return (int)emit_n;
}

int mc_tok_stream_flush(mc_tok_stream *s, char *out, size_t cap) {
    if ((size_t)s->n_pending > cap)
        return MC_EFULL;
    int n = s->n_pending;
    memcpy(out, s->pending, (size_t)n);
    s->n_pending = 0;
    return n;
}

/* ---- token healing -------------------------------------------------------------- */

int mc_tok_heal(const mc_tok *t, const char *text, size_t len, int flags, size_t max_removed,
                int32_t *out, int64_t cap, mc_tok_heal_result *res) {
    if (max_removed == 0)
        max_removed = 64;
    memset(res, 0, sizeof(*res));
    if (len >= UINT32_MAX)
        return MC_ERANGE;
    tls *c = tls_get(t);
    if (!c)
        return MC_ENOMEM;
    size_t n_fr;
    int rc = partition(t, c, text, len, (flags & MC_TOK_PARSE_SPECIAL) != 0, &n_fr);
    if (rc)
        return rc;
    size_t keep = len;
    if (n_fr > 0 && c->fr[n_fr - 1].tok < 0) {
        frag f = c->fr[n_fr - 1];
        size_t start;
        if (t->type == MC_TOK_BPE) {
            rc = mc__pretok_split(t->pre, text + f.start, f.len, &c->pb);
            if (rc)
                return rc;
            const mc__pretok_buf *b = &c->pb;
            uint32_t ws = b->n_ends >= 2 ? b->ends[b->n_ends - 2] : 0;
            start = f.start + b->off[ws];
        } else {
            size_t e = f.start + f.len, i = e;
            while (i > f.start && text[i - 1] == ' ')
                i--;
            if (i == e) { /* ends in a word: back to the space before it */
                while (i > f.start && text[i - 1] != ' ')
                    i--;
                if (i > f.start)
                    i--;
            }
            start = i;
        }
        if (len - start <= max_removed)
            keep = start;
    }
    outw o = {out, cap < 0 ? 0 : cap, 0, false};
    rc = encode_impl(t, text, keep, flags, &o);
    res->n_ids = o.n;
    res->keep_len = keep;
    res->removed_len = len - keep;
    if (rc)
        return rc;
    return o.n > o.cap ? MC_EFULL : 0;
}

size_t mc_tok_heal_match(const mc_tok *t, int32_t id, const char *rem, size_t n) {
    if (id < 0 || id >= t->n_vocab || n == 0)
        return 0;
    if (t->attr[id] & (MC_TOK_ATTR_CONTROL | MC_TOK_ATTR_UNKNOWN))
        return 0;
    size_t pl;
    const char *p = mc__tok_piece(t, id, &pl);
    if (pl == 0)
        return 0;
    if (pl < n)
        return memcmp(p, rem, pl) == 0 ? pl : 0;
    return memcmp(p, rem, n) == 0 ? n : 0;
}

int64_t mc_tok_heal_mask(const mc_tok *t, const char *rem, size_t n, uint8_t *mask) {
    int64_t k = 0;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        mask[i] = mc_tok_heal_match(t, i, rem, n) > 0;
        k += mask[i];
    }
    return k;
}

/* ---- queries ------------------------------------------------------------------- */

int mc_tok_type(const mc_tok *t) { return t->type; }
const char *mc_tok_pre_name(const mc_tok *t) { return t->pre_name; }
int32_t mc_tok_n_vocab(const mc_tok *t) { return t->n_vocab; }
int32_t mc_tok_special(const mc_tok *t, int role) {
    return role >= 0 && role < MC_TOK_N_SPECIAL ? t->special[role] : -1;
}
int32_t mc_tok_bos(const mc_tok *t) { return t->special[MC_TOK_BOS]; }
int32_t mc_tok_eos(const mc_tok *t) { return t->special[MC_TOK_EOS]; }
bool mc_tok_add_bos(const mc_tok *t) { return t->add_bos; }
int mc_tok_attr(const mc_tok *t, int32_t id) {
    return id >= 0 && id < t->n_vocab ? t->attr[id] : 0;
}
bool mc_tok_is_eog(const mc_tok *t, int32_t id) {
    return id >= 0 && id < t->n_vocab && t->eog[id];
}
mc_str mc_tok_text(const mc_tok *t, int32_t id) {
    mc_str s = {"", 0};
    if (id >= 0 && id < t->n_vocab)
        s.ptr = tok_text(t, id, &s.len);
    return s;
}
int32_t mc_tok_find(const mc_tok *t, const char *text, size_t len) {
    return mc__tok_lookup(t, text, len);
}

void mc_tok_free(mc_tok *t) {
    if (!t)
        return;
    if (t->tls_ok) {
        tls_free(pthread_getspecific(t->tls));
        pthread_setspecific(t->tls, NULL);
        pthread_key_delete(t->tls);
    }
    free(t->text_pool);
    free(t->text_off);
    free(t->piece_pool);
    free(t->piece_off);
    free(t->scores);
    free(t->attr);
    free(t->eog);
    free(t->text_ht);
    free(t->merge_ht);
    free(t->special_ids);
    free(t->sp_start);
    free(t->sp_ids);
    free(t);
}

/* exposed to tok_load.c */
void mc__tok_tls_destroy(void *p);
void mc__tok_tls_destroy(void *p) { tls_free(p); }
