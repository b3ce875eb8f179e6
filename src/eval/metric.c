/* src/eval/metric.c — RepoCoder's exact match and edit similarity, and
 * fuzzywuzzy's ratio, over Unicode code points as Python computes them.
 *
 * Python semantics reproduced here: str.splitlines (its ten line boundaries,
 * "\r\n" as one), str.strip (every code point for which str.isspace is true),
 * len() and edit distances counting code points, round() rounding half to
 * even. Invalid UTF-8 bytes count as one unit each (they never reach here from
 * the harness, which cleans model output first). No tokenisation, no case
 * folding: the benchmark's metric does neither. */
#include "mccom/eval.h"

#include <fenv.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Decode UTF-8 into code points; an invalid byte becomes 0x110000 + byte. */
static uint32_t *decode(const char *s, size_t n, size_t *out_n) {
    uint32_t *cp = malloc((n + 1) * sizeof *cp);
    if (!cp)
        return NULL;
    size_t k = 0;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned c = u[i];
        int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        uint32_t v = len == 1 ? c : len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
        bool ok = len > 0 && i + (size_t)len <= n;
        for (int j = 1; ok && j < len; j++) {
            if ((u[i + j] & 0xC0) != 0x80)
                ok = false;
            else
                v = (v << 6) | (u[i + j] & 0x3F);
        }
        /* overlong forms, surrogates and values beyond U+10FFFF are invalid */
        if (ok && ((len == 2 && v < 0x80) || (len == 3 && v < 0x800) || (len == 4 && v < 0x10000) ||
                   (v >= 0xD800 && v <= 0xDFFF) || v > 0x10FFFF))
            ok = false;
        if (ok) {
            cp[k++] = v;
            i += (size_t)len;
        } else {
            cp[k++] = 0x110000u + c;
            i++;
        }
    }
    *out_n = k;
    return cp;
}

static size_t encode_one(uint32_t v, char *o) {
    if (v >= 0x110000u) { /* an invalid byte: itself */
        o[0] = (char)(v - 0x110000u);
        return 1;
    }
    if (v < 0x80) {
        o[0] = (char)v;
        return 1;
    }
    if (v < 0x800) {
        o[0] = (char)(0xC0 | (v >> 6));
        o[1] = (char)(0x80 | (v & 0x3F));
        return 2;
    }
    if (v < 0x10000) {
        o[0] = (char)(0xE0 | (v >> 12));
        o[1] = (char)(0x80 | ((v >> 6) & 0x3F));
        o[2] = (char)(0x80 | (v & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (v >> 18));
    o[1] = (char)(0x80 | ((v >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((v >> 6) & 0x3F));
    o[3] = (char)(0x80 | (v & 0x3F));
    return 4;
}

/* str.isspace */
static bool py_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

/* str.splitlines boundaries */
static bool py_linebreak(uint32_t c) {
    return c == 0x0A || c == 0x0B || c == 0x0C || c == 0x0D || c == 0x1C || c == 0x1D ||
           c == 0x1E || c == 0x85 || c == 0x2028 || c == 0x2029;
}

/* Normalise code points in place: stripped non-blank lines (at most max_lines)
 * joined by '\n'. Returns the new length; *n_lines gets the line count. */
static size_t norm_cp(uint32_t *cp, size_t n, int max_lines, int *n_lines) {
    size_t w = 0, i = 0;
    int lines = 0;
    while (i < n && (max_lines < 0 || lines < max_lines)) {
        size_t b = i;
        while (i < n && !py_linebreak(cp[i]))
            i++;
        size_t e = i;
        if (i < n) /* skip the boundary; "\r\n" is one */
            i += (cp[i] == 0x0D && i + 1 < n && cp[i + 1] == 0x0A) ? 2 : 1;
        while (b < e && py_space(cp[b]))
            b++;
        while (e > b && py_space(cp[e - 1]))
            e--;
        if (b == e)
            continue;
        if (lines > 0)
            cp[w++] = 0x0A;
        memmove(cp + w, cp + b, (e - b) * sizeof *cp);
        w += e - b;
        lines++;
    }
    if (n_lines)
        *n_lines = lines;
    return w;
}

int mc_eval_normalize(const char *s, size_t n, int max_lines, char **out, size_t *out_len,
                      int *n_lines) {
    size_t m;
    uint32_t *cp = decode(s, n, &m);
    if (!cp)
        return MC_ENOMEM;
    m = norm_cp(cp, m, max_lines, n_lines);
    char *o = malloc(m * 4 + 1);
    if (!o) {
        free(cp);
        return MC_ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < m; i++)
        k += encode_one(cp[i], o + k);
    o[k] = '\0';
    free(cp);
    *out = o;
    if (out_len)
        *out_len = k;
    return 0;
}

/* Unit-cost Levenshtein distance (editdistance.eval). */
static size_t levenshtein(const uint32_t *a, size_t n, const uint32_t *b, size_t m, size_t *row) {
    for (size_t j = 0; j <= m; j++)
        row[j] = j;
    for (size_t i = 1; i <= n; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= m; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[m];
}

/* Longest common subsequence: indel distance = n + m - 2 lcs. */
static size_t lcs(const uint32_t *a, size_t n, const uint32_t *b, size_t m, size_t *row) {
    memset(row, 0, (m + 1) * sizeof *row);
    for (size_t i = 1; i <= n; i++) {
        size_t diag = 0;
        for (size_t j = 1; j <= m; j++) {
            size_t up = row[j];
            if (a[i - 1] == b[j - 1])
                row[j] = diag + 1;
            else if (row[j - 1] > row[j])
                row[j] = row[j - 1];
            diag = up;
        }
    }
    return row[m];
}

int mc_eval_score_text(const char *t, size_t tn, const char *p, size_t pn, mc_eval_score *out) {
    memset(out, 0, sizeof *out);
    size_t nt, np;
    uint32_t *a = decode(t, tn, &nt);
    uint32_t *b = decode(p, pn, &np);
    int lt = 0, lp = 0;
    if (!a || !b) {
        free(a);
        free(b);
        return MC_ENOMEM;
    }
    nt = norm_cp(a, nt, -1, &lt);
    np = norm_cp(b, np, lt, &lp);
    size_t *row = malloc((np + 1) * sizeof *row);
    if (!row) {
        free(a);
        free(b);
        return MC_ENOMEM;
    }
    bool equal = nt == np && memcmp(a, b, nt * sizeof *a) == 0;
    /* EM compares line lists: equal joined strings of equal line counts */
    out->em = equal && lt == lp;
    size_t mx = nt > np ? nt : np;
    out->es = mx == 0 ? 1.0 : 1.0 - (double)levenshtein(a, nt, b, np, row) / (double)mx;
    if (equal) {
        out->fuzz = 100;
    } else if (nt == 0 || np == 0) {
        out->fuzz = 0;
    } else {
        size_t sum = nt + np;
        size_t indel = sum - 2 * lcs(a, nt, b, np, row);
        double x = 100.0 * ((double)(sum - indel) / (double)sum);
        int mode = fegetround();
        fesetround(FE_TONEAREST); /* Python's round(): half to even */
        out->fuzz = (int)nearbyint(x);
        fesetround(mode);
    }
    free(row);
    free(a);
    free(b);
    return 0;
}

char *mc_eval_utf8_clean(const char *s, size_t n, size_t *out_len) {
    size_t m;
    uint32_t *cp = decode(s, n, &m);
    if (!cp)
        return NULL;
    char *o = malloc(m * 4 + 1);
    if (o) {
        size_t k = 0;
        for (size_t i = 0; i < m; i++)
            k += encode_one(cp[i] >= 0x110000u ? 0xFFFDu : cp[i], o + k);
        o[k] = '\0';
        if (out_len)
            *out_len = k;
    }
    free(cp);
    return o;
}
