/* src/lsp/text.c — positions in documents: LSP (line, character) in UTF-16
 * code units, bytes or code points ↔ byte offsets of UTF-8 text; file URIs
 * ↔ paths.
 *
 * Lines end at "\n"; a "\r" right before it belongs to the line break, not
 * to the line (so "\r\n" files work); a lone "\r" is an ordinary character
 * (the protocol calls it a line break too, but no editor we serve writes
 * one, and the cascade's lines are "\n" lines). Invalid UTF-8 counts one unit
 * per byte — documents built from JSON strings are always valid, this is for
 * robustness only. */
#include "lsp_internal.h"

#include <stdlib.h>
#include <string.h>

const char *mc_lsp_encoding_name(mc_lsp_encoding e) {
    switch (e) {
    case MC_LSP_UTF8:
        return "utf-8";
    case MC_LSP_UTF32:
        return "utf-32";
    default:
        return "utf-16";
    }
}

/* Length of the valid UTF-8 sequence at s[0..n) (1..4), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t k;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
        k = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        k = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        k = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < k)
        return 0;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((k == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (k == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return k;
}

size_t mc__lsp_utf8_valid_prefix(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t k = utf8_seq((const unsigned char *)s + i, n - i);
        if (k == 0)
            break;
        i += k;
    }
    return i;
}

/* Units of one code point of k bytes (k == 0: an invalid byte). */
static uint32_t units(size_t k, mc_lsp_encoding enc) {
    if (enc == MC_LSP_UTF8)
        return k ? (uint32_t)k : 1;
    if (enc == MC_LSP_UTF16)
        return k == 4 ? 2 : 1;
    return 1;
}

/* [start, end) of line `line` (end excludes "\n" and a "\r" before it), or
 * false if the text has fewer lines. */
static bool line_span(const char *text, size_t len, uint32_t line, size_t *start, size_t *end) {
    size_t s = 0;
    for (uint32_t l = 0; l < line; l++) {
        const char *nl = memchr(text + s, '\n', len - s);
        if (!nl)
            return false;
        s = (size_t)(nl - text) + 1;
    }
    const char *nl = memchr(text + s, '\n', len - s);
    size_t e = nl ? (size_t)(nl - text) : len;
    if (nl && e > s && text[e - 1] == '\r')
        e--;
    *start = s;
    *end = e;
    return true;
}

size_t mc_lsp_offset(const char *text, size_t len, uint32_t line, uint32_t character,
                     mc_lsp_encoding enc) {
    size_t s, e;
    if (!line_span(text, len, line, &s, &e))
        return len;
    const unsigned char *u = (const unsigned char *)text;
    uint32_t col = 0;
    size_t i = s;
    while (i < e && col < character) {
        size_t k = utf8_seq(u + i, e - i);
        uint32_t w = units(k, enc);
        if (col + w > character)
            break; /* inside this code point: its start */
        col += w;
        i += k ? k : 1;
    }
    return i;
}

void mc_lsp_position(const char *text, size_t len, size_t off, mc_lsp_encoding enc,
                     uint32_t *line, uint32_t *character) {
    if (off > len)
        off = len;
    uint32_t l = 0;
    size_t s = 0;
    for (;;) {
        const char *nl = memchr(text + s, '\n', off - s);
        if (!nl)
            break;
        s = (size_t)(nl - text) + 1;
        l++;
    }
    /* a "\r" of a "\r\n" is not part of the line */
    size_t stop = off;
    if (stop > s && text[stop - 1] == '\r' && stop < len && text[stop] == '\n')
        stop--;
    const unsigned char *u = (const unsigned char *)text;
    uint32_t col = 0;
    size_t i = s;
    while (i < stop) {
        size_t k = utf8_seq(u + i, len - i);
        size_t step = k ? k : 1;
        if (i + step > stop)
            break;
        col += units(k, enc);
        i += step;
    }
    *line = l;
    *character = col;
}

/* ---- documents ----------------------------------------------------------------- */

mc__lsp_text *mc__lsp_text_new(const char *s, size_t n) {
    mc__lsp_text *t = malloc(sizeof *t + n + 1);
    if (!t)
        return NULL;
    t->refs = 1;
    t->len = n;
    if (n)
        memcpy(t->data, s, n);
    t->data[n] = '\0';
    return t;
}

mc__lsp_text *mc__lsp_text_ref(mc__lsp_text *t) {
    if (t)
        __atomic_add_fetch(&t->refs, 1, __ATOMIC_RELAXED);
    return t;
}

void mc__lsp_text_unref(mc__lsp_text *t) {
    if (t && __atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) == 0)
        free(t);
}

mc__lsp_text *mc__lsp_text_splice(const mc__lsp_text *t, size_t a, size_t b, const char *s,
                                  size_t n) {
    if (a > t->len)
        a = t->len;
    if (b > t->len)
        b = t->len;
    if (b < a)
        b = a;
    size_t nl = t->len - (b - a) + n;
    mc__lsp_text *r = malloc(sizeof *r + nl + 1);
    if (!r)
        return NULL;
    r->refs = 1;
    r->len = nl;
    memcpy(r->data, t->data, a);
    if (n)
        memcpy(r->data + a, s, n);
    memcpy(r->data + a + n, t->data + b, t->len - b);
    r->data[nl] = '\0';
    return r;
}

/* ---- URIs ------------------------------------------------------------------------ */

static int hexval(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char *mc__lsp_uri_to_path(const char *uri) {
    if (strncmp(uri, "file://", 7) != 0)
        return NULL;
    const char *p = uri + 7;
    /* an authority: empty or "localhost" */
    if (strncmp(p, "localhost/", 10) == 0)
        p += 9;
    if (*p != '/')
        return NULL;
    size_t n = strlen(p);
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '%' && i + 2 < n && hexval(p[i + 1]) >= 0 && hexval(p[i + 2]) >= 0) {
            int v = hexval(p[i + 1]) * 16 + hexval(p[i + 2]);
            if (v == 0) { /* a NUL byte cannot be in a path */
                free(out);
                return NULL;
            }
            out[k++] = (char)v;
            i += 2;
        } else if (p[i] == '?' || p[i] == '#') {
            break;
        } else {
            out[k++] = p[i];
        }
    }
    out[k] = '\0';
    return out;
}

char *mc__lsp_relpath(const char *root, const char *path) {
    if (!root || !path)
        return NULL;
    size_t n = strlen(root);
    while (n > 1 && root[n - 1] == '/')
        n--;
    if (strncmp(path, root, n) != 0 || path[n] != '/' || path[n + 1] == '\0')
        return NULL;
    return strdup(path + n + 1);
}
