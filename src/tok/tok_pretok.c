/* src/tok/tok_pretok.c — pre-tokenizers: split text into the words BPE runs on.
 *
 * Each vocabulary family is a sequence of stages; each stage splits every
 * fragment of the previous one, and both its matches and the gaps between them
 * become fragments (llama.cpp's unicode_regex_split). The stages are written as
 * scanners with the exact semantics llama.cpp gives its regexes:
 *   - the gpt-2 and llama3/qwen2 expressions as llama.cpp's own hand-written
 *     matchers behave (a fragment end is the end of the world for lookahead);
 *   - the others as std::regex (ECMAScript, leftmost match) over llama.cpp's
 *     "collapsed" text, where an ASCII character is classified by the ASCII
 *     members of the class and a non-ASCII one by its category (whitespace
 *     first).
 * Positions are codepoint indices; b->off maps them to bytes. Invalid UTF-8
 * bytes are classified as U+FFFD (what llama.cpp turns them into). */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

void mc__pretok_buf_fini(mc__pretok_buf *b) {
    free(b->cp);
    free(b->fl);
    free(b->off);
    free(b->ends);
    free(b->ends2);
    memset(b, 0, sizeof(*b));
}

static int grow_u32(uint32_t **p, size_t *cap, size_t need) {
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    uint32_t *q = realloc(*p, c * sizeof(uint32_t));
    if (!q)
        return MC_ENOMEM;
    *p = q;
    *cap = c;
    return 0;
}

/* Output of a stage: word ends appended to ends2. */
typedef struct stage_out {
    mc__pretok_buf *b;
    int rc;
} stage_out;

static inline void emit(stage_out *o, uint32_t end) {
    mc__pretok_buf *b = o->b;
    if (b->n_ends >= b->cap_ends2 && grow_u32(&b->ends2, &b->cap_ends2, b->n_ends + 1)) {
        o->rc = MC_ENOMEM;
        return;
    }
    b->ends2[b->n_ends++] = end;
}

#define WS MC__U_WS
#define LET MC__U_L
#define NUM MC__U_N

/* ---- llama.cpp's hand-written matchers ----------------------------------- */

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static void stage_gpt2(const mc__pretok_buf *b, uint32_t a, uint32_t e, stage_out *o) {
    const uint32_t *cp = b->cp;
    const uint16_t *fl = b->fl;
#define F(p) ((p) < e ? fl[p] : 0)
    uint32_t pos = a;
    while (pos < e) {
        uint32_t c = cp[pos];
        uint16_t f = fl[pos];
        if (c == '\'' && pos + 1 < e) {
            uint32_t c1 = cp[pos + 1];
            if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
                pos += 2;
                emit(o, pos);
                continue;
            }
            if (pos + 2 < e) {
                uint32_t c2 = cp[pos + 2];
                if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
                    pos += 3;
                    emit(o, pos);
                    continue;
                }
            }
        }
        uint16_t f2 = c == ' ' ? F(pos + 1) : f;
        if (f2 & LET) {
            pos += c == ' ';
            while (F(pos) & LET)
                pos++;
            emit(o, pos);
            continue;
        }
        if (f2 & NUM) {
            pos += c == ' ';
            while (F(pos) & NUM)
                pos++;
            emit(o, pos);
            continue;
        }
        if (!(f2 & (WS | LET | NUM)) && f2) {
            pos += c == ' ';
            while (F(pos) && !(F(pos) & (WS | LET | NUM)))
                pos++;
            emit(o, pos);
            continue;
        }
        uint32_t nws = 0;
        while (F(pos + nws) & WS)
            nws++;
        if (nws > 1 && pos + nws < e) {
            pos += nws - 1;
            emit(o, pos);
            continue;
        }
        if (nws > 0) {
            pos += nws;
            emit(o, pos);
            continue;
        }
        emit(o, ++pos);
    }
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}|
 *  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+   (llama3: 3 digits, qwen2: 1) */
static void stage_llama3(const mc__pretok_buf *b, uint32_t a, uint32_t e, uint32_t max_digits,
                         stage_out *o) {
    const uint32_t *cp = b->cp;
    const uint16_t *fl = b->fl;
    uint32_t pos = a;
    while (pos < e) {
        uint32_t c = cp[pos];
        uint16_t f = fl[pos];
        if (c == '\'' && pos + 1 < e) {
            /* only ASCII letters lower-case to these letters */
            uint32_t c1 = cp[pos + 1];
            if (c1 >= 'A' && c1 <= 'Z')
                c1 += 32;
            if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
                pos += 2;
                emit(o, pos);
                continue;
            }
            if (pos + 2 < e) {
                uint32_t c2 = cp[pos + 2];
                if (c2 >= 'A' && c2 <= 'Z')
                    c2 += 32;
                if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
                    pos += 3;
                    emit(o, pos);
                    continue;
                }
            }
        }
        if (!(c == '\r' || c == '\n' || (f & NUM))) {
            if ((f & LET) || (F(pos + 1) & LET)) {
                pos++;
                while (F(pos) & LET)
                    pos++;
                emit(o, pos);
                continue;
            }
        }
        if (f & NUM) {
            uint32_t ini = pos;
            while (F(pos) & NUM) {
                if (++pos - ini >= max_digits) {
                    emit(o, pos);
                    ini = pos;
                }
            }
            if (pos > ini)
                emit(o, pos);
            continue;
        }
        uint16_t f2 = c == ' ' ? F(pos + 1) : f;
        if (!(f2 & (WS | LET | NUM)) && f) {
            pos += c == ' ';
            while (F(pos) && !(F(pos) & (WS | LET | NUM)))
                pos++;
            while (pos < e && (cp[pos] == '\r' || cp[pos] == '\n'))
                pos++;
            emit(o, pos);
            continue;
        }
        uint32_t nws = 0, last_rn = 0;
        while (F(pos + nws) & WS) {
            uint32_t c2 = cp[pos + nws];
            if (c2 == '\r' || c2 == '\n')
                last_rn = pos + nws + 1;
            nws++;
        }
        if (last_rn > 0) {
            pos = last_rn;
            emit(o, pos);
            continue;
        }
        if (nws > 1 && pos + nws < e) {
            pos += nws - 1;
            emit(o, pos);
            continue;
        }
        if (nws > 0) {
            pos += nws;
            emit(o, pos);
            continue;
        }
        emit(o, ++pos);
    }
#undef F
}

/* ---- std::regex stages over the collapsed text ---------------------------- */

/* \s: C-locale isspace for ASCII, White_Space for the rest. */
static inline bool col_space(uint32_t c, uint16_t f) {
    return c < 128 ? (c == ' ' || (c >= 9 && c <= 13)) : (f & WS) != 0;
}
static inline bool col_letter(uint32_t c, uint16_t f) {
    if (c < 128)
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
    return !(f & WS) && (f & LET);
}
static inline bool col_number(uint32_t c, uint16_t f) {
    if (c < 128)
        return c >= '0' && c <= '9';
    return !(f & WS) && (f & NUM);
}
/* ASCII members of \p{P} in llama.cpp's collapsed classes: !"#%&'()*,-./:;?@[\]_{} */
static inline bool col_punct(uint32_t c, uint16_t f) {
    if (c < 128)
        return (c >= '!' && c <= '#') || (c >= '%' && c <= '*') || (c >= ',' && c <= '/') ||
               c == ':' || c == ';' || c == '?' || c == '@' || (c >= '[' && c <= ']') || c == '_' ||
               c == '{' || c == '}';
    return !(f & WS) && (f & MC__U_P);
}

enum { M_NUMBER, M_RN, M_SLETTERS, M_SPUNCT, M_CJK };

/* Length of the match of expression `kind` starting at pos, 0 if none. */
static uint32_t match_at(const mc__pretok_buf *b, int kind, uint32_t pos, uint32_t e) {
    const uint32_t *cp = b->cp;
    const uint16_t *fl = b->fl;
    uint32_t c = cp[pos];
    switch (kind) {
    case M_NUMBER: /* \p{N} */
        return col_number(c, fl[pos]) ? 1 : 0;
    case M_RN: /* [\r\n] */
        return (c == '\r' || c == '\n') ? 1 : 0;
    case M_SLETTERS:   /* \s?\p{L}+ */
    case M_SPUNCT: {   /* \s?\p{P}+ */
        bool (*cls)(uint32_t, uint16_t) = kind == M_SLETTERS ? col_letter : col_punct;
        uint32_t p = pos;
        if (col_space(c, fl[p]) && p + 1 < e && cls(cp[p + 1], fl[p + 1]))
            p++;
        if (!cls(cp[p], fl[p]))
            return 0;
        while (p < e && cls(cp[p], fl[p]))
            p++;
        return p - pos;
    }
    case M_CJK: { /* [一-龥ࠀ-一가-퟿]+ */
        uint32_t p = pos;
        while (p < e && ((cp[p] >= 0x4E00 && cp[p] <= 0x9FA5) || (cp[p] >= 0x0800 && cp[p] <= 0x4E00) ||
                         (cp[p] >= 0xAC00 && cp[p] <= 0xD7FF)))
            p++;
        return p - pos;
    }
    }
    return 0;
}

static void stage_regex(const mc__pretok_buf *b, uint32_t a, uint32_t e, int kind, stage_out *o) {
    uint32_t pos = a, gap = a;
    while (pos < e) {
        uint32_t m = match_at(b, kind, pos, e);
        if (m == 0) {
            pos++;
            continue;
        }
        if (pos > gap)
            emit(o, pos);
        pos += m;
        emit(o, pos);
        gap = pos;
    }
    if (e > gap)
        emit(o, e);
}

/* ---- driver ---------------------------------------------------------------- */

enum { S_GPT2 = 100, S_LLAMA3, S_QWEN2 };

static int run_stage(mc__pretok_buf *b, int stage) {
    stage_out o = {b, 0};
    size_t n_in = b->n_ends;
    /* swap: read from ends, write to ends2 */
    b->n_ends = 0;
    uint32_t start = 0;
    for (size_t i = 0; i < n_in && !o.rc; i++) {
        uint32_t end = b->ends[i];
        switch (stage) {
        case S_GPT2: stage_gpt2(b, start, end, &o); break;
        case S_LLAMA3: stage_llama3(b, start, end, 3, &o); break;
        case S_QWEN2: stage_llama3(b, start, end, 1, &o); break;
        default: stage_regex(b, start, end, stage, &o); break;
        }
        start = end;
    }
    if (o.rc)
        return o.rc;
    uint32_t *t = b->ends;
    b->ends = b->ends2;
    b->ends2 = t;
    size_t tc = b->cap_ends;
    b->cap_ends = b->cap_ends2;
    b->cap_ends2 = tc;
    return 0;
}

int mc__pretok_split(int pre, const char *text, size_t len, mc__pretok_buf *b) {
    if (len >= UINT32_MAX)
        return MC_ERANGE;
    size_t need = len + 1;
    if (need > b->cap_cp) {
        size_t c = b->cap_cp ? b->cap_cp : 256;
        while (c < need)
            c *= 2;
        uint32_t *cp = realloc(b->cp, c * sizeof(uint32_t));
        if (!cp)
            return MC_ENOMEM;
        b->cp = cp;
        uint16_t *fl = realloc(b->fl, c * sizeof(uint16_t));
        if (!fl)
            return MC_ENOMEM;
        b->fl = fl;
        uint32_t *off = realloc(b->off, c * sizeof(uint32_t));
        if (!off)
            return MC_ENOMEM;
        b->off = off;
        b->cap_cp = c;
    }

    const uint8_t *s = (const uint8_t *)text;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        size_t l;
        uint32_t c = mc__u_decode(s, len, i, &l);
        b->cp[n] = c;
        b->fl[n] = mc__u_flags(c);
        b->off[n] = (uint32_t)i;
        n++;
        i += l;
    }
    b->off[n] = (uint32_t)len;
    b->n_cp = n;
    b->n_ends = 0;
    if (n == 0)
        return 0;
    if (grow_u32(&b->ends, &b->cap_ends, 1))
        return MC_ENOMEM;
    b->ends[0] = (uint32_t)n;
    b->n_ends = 1;

    static const int st_gpt2[] = {S_GPT2, -1};
    static const int st_star[] = {M_NUMBER, S_GPT2, -1};
    static const int st_deep[] = {M_RN, M_SLETTERS, M_SPUNCT, M_CJK, M_NUMBER, -1};
    static const int st_qwen2[] = {S_QWEN2, -1};
    static const int st_llama3[] = {S_LLAMA3, -1};
    const int *st;
    switch (pre) {
    case MC__PRE_STARCODER: st = st_star; break;
    case MC__PRE_DEEPSEEK_CODER: st = st_deep; break;
    case MC__PRE_QWEN2: st = st_qwen2; break;
    case MC__PRE_LLAMA3: st = st_llama3; break;
    default: st = st_gpt2; break;
    }
    for (; *st >= 0; st++) {
        int rc = run_stage(b, *st);
        if (rc)
            return rc;
    }
    return 0;
}
