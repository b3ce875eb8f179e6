/* src/lsp/frame.c — the LSP base protocol's framing: "Content-Length: N"
 * headers, a blank line, N bytes of body.
 *
 * The framer is a byte buffer with a cursor. It never trusts a header: a
 * length is parsed digit by digit with an overflow check, a header section
 * has at most MAX_HEADER bytes, a body at most max_body (a larger one is
 * skipped as it streams in, never buffered). After a malformed header it
 * drops the header section and resynchronizes on the next "Content-Length". It does
 * not look at the body (JSON is rpc.c's business) and does no I/O. */
#include "mccom/lsp.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { MAX_HEADER = 8192 };
static const char CL[] = "content-length";

struct mc_lsp_framer {
    char *buf;          /* (cap) bytes; the unread ones are buf[head..len) */
    size_t head, len, cap;
    size_t max_body;
    uint64_t consumed;  /* stream offset of buf[head] */
    size_t skip;        /* bytes of an oversized body still to drop */
    bool resync;        /* drop bytes until the next "Content-Length" */
};

mc_lsp_framer *mc_lsp_framer_new(size_t max_body) {
    mc_lsp_framer *f = calloc(1, sizeof *f);
    if (f)
        f->max_body = max_body ? max_body : (size_t)64 << 20;
    return f;
}

void mc_lsp_framer_free(mc_lsp_framer *f) {
    if (!f)
        return;
    free(f->buf);
    free(f);
}

uint64_t mc_lsp_framer_offset(const mc_lsp_framer *f) { return f->consumed; }

static void drop(mc_lsp_framer *f, size_t n) {
    f->head += n;
    f->consumed += n;
}

int mc_lsp_framer_feed(mc_lsp_framer *f, const void *data, size_t n) {
    /* an oversized body is dropped as it arrives, never buffered */
    if (f->skip > 0 && f->head == f->len) {
        size_t k = MC_MIN(f->skip, n);
        f->skip -= k;
        f->consumed += k;
        data = (const char *)data + k;
        n -= k;
    }
    if (n == 0)
        return 0;
    if (f->head > 0) {
        memmove(f->buf, f->buf + f->head, f->len - f->head);
        f->len -= f->head;
        f->head = 0;
    }
    if (f->len + n > f->cap) {
        size_t nc = f->cap ? f->cap : 4096;
        while (nc < f->len + n)
            nc *= 2;
        char *nb = realloc(f->buf, nc);
        if (!nb)
            return MC_ENOMEM;
        f->buf = nb;
        f->cap = nc;
    }
    memcpy(f->buf + f->len, data, n);
    f->len += n;
    return 0;
}

/* Drop bytes until the next "Content-Length" (case-insensitive). Bodies do
 * not end with a newline, so the next header usually follows a bad body on
 * the same line: the name is searched anywhere. */
static bool do_resync(mc_lsp_framer *f) {
    const char *p = f->buf + f->head;
    size_t n = f->len - f->head;
    const size_t m = sizeof CL - 1;
    for (size_t i = 0; i < n; i++) {
        size_t k = MC_MIN(m, n - i);
        if (strncasecmp(p + i, CL, k) != 0)
            continue;
        drop(f, i);
        if (k == m)
            f->resync = false;
        return k == m; /* a partial name at the end: wait for more */
    }
    drop(f, n);
    return false;
}

/* A bad header section: drop it (or one byte, when its end is unknown), then
 * look for the next message. */
static int header_error(mc_lsp_framer *f, size_t at, size_t skip, mc_err *err, const char *what) {
    mc_err_set(err, MC_EFORMAT, (int64_t)(f->consumed + at), "bad message header: %s", what);
    drop(f, skip > 0 ? skip : 1);
    f->resync = true;
    return MC_EFORMAT;
}

/* Parse a decimal length: digits only (spaces around allowed), no overflow. */
static bool parse_len(const char *s, size_t n, size_t *out) {
    while (n > 0 && (s[0] == ' ' || s[0] == '\t')) {
        s++;
        n--;
    }
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n == 0 || n > 19)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > SIZE_MAX / 2)
        return false;
    *out = (size_t)v;
    return true;
}

/* Case-insensitive search of needle in s[0..n). */
static bool has_ci(const char *s, size_t n, const char *needle) {
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++)
        if (strncasecmp(s + i, needle, m) == 0)
            return true;
    return false;
}

int mc_lsp_framer_next(mc_lsp_framer *f, const char **body, size_t *len, mc_err *err) {
    *body = NULL;
    *len = 0;
    for (;;) {
        if (f->skip > 0) {
            size_t k = MC_MIN(f->skip, f->len - f->head);
            drop(f, k);
            f->skip -= k;
            if (f->skip > 0)
                return 0;
        }
        if (f->resync && !do_resync(f))
            return 0;
        if (f->head == f->len)
            return 0;
        /* The header section: lines up to an empty one, found first. */
        const char *p = f->buf + f->head;
        size_t n = f->len - f->head;
        size_t lim = MC_MIN(n, (size_t)MAX_HEADER);
        size_t body_at = 0;
        for (size_t i = 0; i < lim;) {
            const char *nl = memchr(p + i, '\n', lim - i);
            if (!nl)
                break;
            size_t e = (size_t)(nl - p);
            size_t le = e > i && p[e - 1] == '\r' ? e - 1 : e;
            if (le == i) {
                body_at = e + 1;
                break;
            }
            i = e + 1;
        }
        if (body_at == 0) {
            if (n >= MAX_HEADER)
                return header_error(f, 0, 0, err, "no end of the header section in 8 KiB");
            return 0; /* incomplete */
        }
        bool have_len = false, bad_type = false;
        size_t clen = 0;
        for (size_t i = 0; i + 1 < body_at;) {
            const char *nl = memchr(p + i, '\n', body_at - i);
            size_t e = (size_t)(nl - p);
            size_t le = e > i && p[e - 1] == '\r' ? e - 1 : e;
            if (le == i)
                break;
            const char *colon = memchr(p + i, ':', le - i);
            if (!colon)
                return header_error(f, i, body_at, err, "a header line without ':'");
            size_t nlen = (size_t)(colon - (p + i));
            const char *v = colon + 1;
            size_t vlen = (size_t)(p + le - v);
            if (nlen == sizeof CL - 1 && strncasecmp(p + i, CL, nlen) == 0) {
                size_t L;
                if (!parse_len(v, vlen, &L))
                    return header_error(f, i, body_at, err, "Content-Length is not a number");
                if (have_len && L != clen)
                    return header_error(f, i, body_at, err, "two different Content-Length headers");
                clen = L;
                have_len = true;
            } else if (nlen == 12 && strncasecmp(p + i, "content-type", 12) == 0) {
                const char *cs = NULL;
                for (size_t k = 0; k + 8 <= vlen; k++)
                    if (strncasecmp(v + k, "charset=", 8) == 0) {
                        cs = v + k + 8;
                        break;
                    }
                if (cs && !has_ci(cs, (size_t)(v + vlen - cs), "utf-8") &&
                    !has_ci(cs, (size_t)(v + vlen - cs), "utf8"))
                    bad_type = true;
            }
            /* other headers are ignored */
            i = e + 1;
        }
        if (!have_len)
            return header_error(f, 0, body_at, err, "no Content-Length");
        if (clen > f->max_body || bad_type) {
            if (bad_type)
                mc_err_set(err, MC_EFORMAT, (int64_t)f->consumed,
                           "message dropped: charset is not utf-8 (%zu bytes skipped)", clen);
            else
                mc_err_set(err, MC_ERANGE, (int64_t)f->consumed,
                           "message dropped: body of %zu bytes exceeds the %zu-byte limit", clen,
                           f->max_body);
            drop(f, body_at);
            f->skip = clen;
            return bad_type ? MC_EFORMAT : MC_ERANGE;
        }
        if (n - body_at < clen)
            return 0;
        *body = p + body_at;
        *len = clen;
        drop(f, body_at + clen);
        return 1;
    }
}

int mc_lsp_frame(const char *body, size_t n, char **out, size_t *out_len) {
    char hdr[64];
    int h = snprintf(hdr, sizeof hdr, "Content-Length: %zu\r\n\r\n", n);
    char *b = malloc((size_t)h + n + 1);
    if (!b)
        return MC_ENOMEM;
    memcpy(b, hdr, (size_t)h);
    if (n)
        memcpy(b + h, body, n);
    b[(size_t)h + n] = '\0';
    *out = b;
    *out_len = (size_t)h + n;
    return 0;
}
