/* src/retr/store.c — the on-disk index: one file, versioned and checksummed.
 *
 * Layout (all integers little-endian; "str" = u32 length + bytes, no NUL):
 *
 *   header, 40 bytes
 *     0  u8[8]  magic "MCRETRIX"
 *     8  u32    version (1)
 *    12  u32    flags (0; nonzero is rejected)
 *    16  u64    payload_len: bytes after the header (the file is exactly 40 + payload_len)
 *    24  u32    payload_crc: CRC-32 (zlib's) of the payload
 *    28  u32    n_files
 *    32  u32    window_lines
 *    36  u32    stride
 *   payload
 *     str  root (as given to mc_retr_new)
 *     str  tokenizer name
 *     n_files × file, sorted by path (bytewise), no duplicates:
 *       str  path (root-relative, '/'-separated, no "." or ".." or empty components)
 *       i64  mtime_ns     (0 for a buffer given by mc_retr_set_file)
 *       i64  size
 *       u64  content hash (checked against the text on load)
 *       str  text
 *       u32  n_lines      (must equal the text's line count)
 *       u32  n_tokens
 *       u32  tokens per line × n_lines (summing to n_tokens)
 *       u32  term ids × n_tokens
 *
 * Windows and postings are not stored: they are rebuilt from the tokens on
 * load, which is fast and keeps the format canonical (same content, same
 * bytes). Loading never trusts a length: every read is bounds-checked and
 * reports the byte offset of the first bad field.
 */
#include "retr_internal.h"

#include "mccom/file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define MAGIC "MCRETRIX"
#define VERSION 1u
#define HEADER_LEN 40

/* ---- writing ---- */

typedef struct wbuf {
    unsigned char *p;
    size_t n, cap;
    int oom;
} wbuf;

static void put(wbuf *b, const void *d, size_t n) {
    if (b->oom)
        return;
    if (b->n + n > b->cap) {
        size_t nc = b->cap ? b->cap : 1 << 16;
        while (nc < b->n + n)
            nc *= 2;
        unsigned char *np = realloc(b->p, nc);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void put_u32(wbuf *b, uint32_t v) {
    unsigned char x[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    put(b, x, 4);
}

static void put_u64(wbuf *b, uint64_t v) {
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}

static void put_str(wbuf *b, const char *s, size_t n) {
    put_u32(b, (uint32_t)n);
    put(b, s, n);
}

static void set_u32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static int write_all(FILE *f, const void *p, size_t n) { return fwrite(p, 1, n, f) == n ? 0 : -1; }

int mc_retr_save(const mc_retr_index *ix, const char *path, mc_err *err) {
    wbuf b = {0};
    unsigned char hdr[HEADER_LEN] = {0};
    put_str(&b, ix->root, strlen(ix->root));
    put_str(&b, ix->tok.name, strlen(ix->tok.name));
    for (int i = 0; i < ix->n_files; i++) {
        const rfile *f = ix->files[i];
        put_str(&b, f->path, strlen(f->path));
        put_u64(&b, (uint64_t)f->mtime_ns);
        put_u64(&b, (uint64_t)f->size);
        put_u64(&b, f->hash);
        put_str(&b, f->text, f->len);
        put_u32(&b, (uint32_t)f->n_lines);
        put_u32(&b, f->n_tok);
        for (int l = 0; l < f->n_lines; l++)
            put_u32(&b, f->tok_off[l + 1] - f->tok_off[l]);
        if (!b.oom && f->n_tok) {
            /* term ids in bulk: little-endian hosts only need a copy */
            size_t at = b.n;
            put(&b, f->tok, (size_t)f->n_tok * 4);
            if (!b.oom)
                for (uint32_t t = 0; t < f->n_tok; t++)
                    set_u32(b.p + at + (size_t)t * 4, f->tok[t]);
        }
    }
    if (b.oom) {
        free(b.p);
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory saving the index");
    }
    memcpy(hdr, MAGIC, 8);
    set_u32(hdr + 8, VERSION);
    set_u32(hdr + 12, 0);
    set_u32(hdr + 16, (uint32_t)b.n);
    set_u32(hdr + 20, (uint32_t)((uint64_t)b.n >> 32));
    uLong crc = crc32(0L, Z_NULL, 0);
    for (size_t off = 0; off < b.n;) {
        size_t chunk = MC_MIN(b.n - off, (size_t)1 << 30);
        crc = crc32(crc, b.p + off, (uInt)chunk);
        off += chunk;
    }
    set_u32(hdr + 24, (uint32_t)crc);
    set_u32(hdr + 28, (uint32_t)ix->n_files);
    set_u32(hdr + 32, (uint32_t)ix->p.window_lines);
    set_u32(hdr + 36, (uint32_t)ix->p.stride);

    /* 0600: the index holds the repository's text, readable by this user only */
    mc_file_tmp t;
    int rc = mc_file_tmp_open(&t, path, 0600, err);
    if (rc == 0) {
        if (write_all(t.f, hdr, sizeof hdr) || write_all(t.f, b.p, b.n)) {
            int e = errno;
            mc_file_tmp_abort(&t);
            rc = mc_err_set(err, MC_EIO, -1, "%s: write failed: %s", path, strerror(e));
        } else {
            rc = mc_file_tmp_commit(&t, err);
        }
    }
    free(b.p);
    return rc;
}

/* ---- reading ---- */

typedef struct rbuf {
    const unsigned char *p;
    size_t n, off;
    mc_err *err;
} rbuf;

static int need(rbuf *r, size_t n, const char *what) {
    if (r->n - r->off < n)
        return mc_err_set(r->err, MC_EFORMAT, (int64_t)r->off,
                          "retrieval index: truncated (%s needs %zu bytes, %zu left)", what, n,
                          r->n - r->off);
    return 0;
}

static uint32_t rd_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int get_u32(rbuf *r, uint32_t *v, const char *what) {
    int rc = need(r, 4, what);
    if (rc)
        return rc;
    *v = rd_u32(r->p + r->off);
    r->off += 4;
    return 0;
}

static int get_u64(rbuf *r, uint64_t *v, const char *what) {
    int rc = need(r, 8, what);
    if (rc)
        return rc;
    *v = (uint64_t)rd_u32(r->p + r->off) | (uint64_t)rd_u32(r->p + r->off + 4) << 32;
    r->off += 8;
    return 0;
}

static int get_str(rbuf *r, const char **s, uint32_t *n, const char *what) {
    int rc = get_u32(r, n, what);
    if (rc)
        return rc;
    rc = need(r, *n, what);
    if (rc)
        return rc;
    *s = (const char *)r->p + r->off;
    r->off += *n;
    return 0;
}

static int path_ok(const char *s, uint32_t n) {
    if (n == 0 || n >= 4096 || s[0] == '/' || memchr(s, '\0', n))
        return 0;
    for (uint32_t i = 0; i < n;) {
        uint32_t j = i;
        while (j < n && s[j] != '/')
            j++;
        uint32_t c = j - i;
        if (c == 0 || (c == 1 && s[i] == '.') || (c == 2 && s[i] == '.' && s[i + 1] == '.'))
            return 0;
        i = j + 1;
        if (j == n - 1)
            return 0; /* trailing '/' */
    }
    return 1;
}

int mc__retr_load_mem(mc_retr_index *ix, const void *data, size_t len, bool check_crc,
                      mc_err *err) {
    mc__retr_clear(ix);
    rbuf r = {data, len, 0, err};
    int rc;
    if (len < HEADER_LEN || memcmp(data, MAGIC, 8) != 0)
        return mc_err_set(err, MC_EFORMAT, 0, "not a mccom retrieval index (bad magic)");
    const unsigned char *h = data;
    uint32_t version = rd_u32(h + 8), flags = rd_u32(h + 12);
    uint64_t plen = (uint64_t)rd_u32(h + 16) | (uint64_t)rd_u32(h + 20) << 32;
    uint32_t crc = rd_u32(h + 24), n_files = rd_u32(h + 28);
    uint32_t W = rd_u32(h + 32), S = rd_u32(h + 36);
    if (version != VERSION)
        return mc_err_set(err, MC_EFORMAT, 8, "retrieval index version %u, this mccom reads %u",
                          version, VERSION);
    if (flags)
        return mc_err_set(err, MC_EFORMAT, 12, "retrieval index: unknown flags 0x%x", flags);
    if (plen != len - HEADER_LEN)
        return mc_err_set(err, MC_EFORMAT, 16,
                          "retrieval index: payload length %llu but the file has %zu bytes after "
                          "the header (truncated or appended to)",
                          (unsigned long long)plen, len - HEADER_LEN);
    if (W != (uint32_t)ix->p.window_lines || S != (uint32_t)ix->p.stride)
        return mc_err_set(err, MC_EFORMAT, 32,
                          "retrieval index built with windows of %u lines / stride %u, not %d / %d",
                          W, S, ix->p.window_lines, ix->p.stride);
    if (check_crc) {
        uLong c = crc32(0L, Z_NULL, 0);
        for (size_t off = HEADER_LEN; off < len;) {
            size_t chunk = MC_MIN(len - off, (size_t)1 << 30);
            c = crc32(c, h + off, (uInt)chunk);
            off += chunk;
        }
        if ((uint32_t)c != crc)
            return mc_err_set(err, MC_EFORMAT, 24, "retrieval index: checksum mismatch (corrupt)");
    }
    r.off = HEADER_LEN;
    const char *s;
    uint32_t n;
    if ((rc = get_str(&r, &s, &n, "root")))
        return rc;
    if (n != strlen(ix->root) || memcmp(s, ix->root, n))
        return mc_err_set(err, MC_EFORMAT, (int64_t)(r.off - n),
                          "retrieval index is of another directory (%.*s), not %s",
                          (int)MC_MIN(n, 200u), s, ix->root);
    if ((rc = get_str(&r, &s, &n, "tokenizer")))
        return rc;
    if (n != strlen(ix->tok.name) || memcmp(s, ix->tok.name, n))
        return mc_err_set(err, MC_EFORMAT, (int64_t)(r.off - n),
                          "retrieval index built with tokenizer '%.*s', not '%s'",
                          (int)MC_MIN(n, 200u), s, ix->tok.name);
    if (n_files > (len - r.off) / 36 + 1)
        return mc_err_set(err, MC_EFORMAT, 28, "retrieval index: %u files cannot fit", n_files);
    char prev[4096] = "";
    for (uint32_t i = 0; i < n_files; i++) {
        size_t at = r.off;
        const char *path;
        uint32_t path_n, text_n, n_lines, n_tok;
        uint64_t mt, size, hash;
        const char *text;
        if ((rc = get_str(&r, &path, &path_n, "path")))
            goto fail;
        if (!path_ok(path, path_n)) {
            rc = mc_err_set(err, MC_EFORMAT, (int64_t)at, "retrieval index: bad file path");
            goto fail;
        }
        char cur[4096];
        memcpy(cur, path, path_n);
        cur[path_n] = '\0';
        if (i > 0 && strcmp(prev, cur) >= 0) {
            rc = mc_err_set(err, MC_EFORMAT, (int64_t)at, "retrieval index: files out of order");
            goto fail;
        }
        memcpy(prev, cur, path_n + 1);
        if ((rc = get_u64(&r, &mt, "mtime")) || (rc = get_u64(&r, &size, "size")) ||
            (rc = get_u64(&r, &hash, "hash")))
            goto fail;
        size_t text_at = r.off;
        if ((rc = get_str(&r, &text, &text_n, "text")))
            goto fail;
        if ((int64_t)text_n > ix->p.max_file_bytes || mc__retr_hash64(text, text_n) != hash) {
            rc = mc_err_set(err, MC_EFORMAT, (int64_t)text_at,
                            "retrieval index: text of %s does not match its hash", cur);
            goto fail;
        }
        size_t lines_at = r.off;
        if ((rc = get_u32(&r, &n_lines, "n_lines")) || (rc = get_u32(&r, &n_tok, "n_tokens")))
            goto fail;
        int real_lines;
        uint32_t *lo = mc__retr_split_lines(text, text_n, &real_lines);
        if (!lo) {
            rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
            goto fail;
        }
        free(lo);
        if ((uint32_t)real_lines != n_lines) {
            rc = mc_err_set(err, MC_EFORMAT, (int64_t)lines_at,
                            "retrieval index: %s has %d lines, not %u", cur, real_lines, n_lines);
            goto fail;
        }
        if ((rc = need(&r, (size_t)n_lines * 4, "line token counts")))
            goto fail;
        size_t counts_at = r.off;
        r.off += (size_t)n_lines * 4;
        if ((rc = need(&r, (size_t)n_tok * 4, "tokens")))
            goto fail;
        uint32_t *tok_off = malloc(((size_t)n_lines + 1) * sizeof *tok_off);
        uint32_t *tok = malloc(((size_t)n_tok + 1) * sizeof *tok);
        char *t = malloc((size_t)text_n + 1);
        if (!tok_off || !tok || !t) {
            free(tok_off);
            free(tok);
            free(t);
            rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
            goto fail;
        }
        uint64_t sum = 0;
        for (uint32_t l = 0; l < n_lines; l++) {
            tok_off[l] = (uint32_t)MC_MIN(sum, (uint64_t)UINT32_MAX);
            sum += rd_u32(r.p + counts_at + (size_t)l * 4);
        }
        tok_off[n_lines] = (uint32_t)MC_MIN(sum, (uint64_t)UINT32_MAX);
        if (sum != n_tok) {
            free(tok_off);
            free(tok);
            free(t);
            rc = mc_err_set(err, MC_EFORMAT, (int64_t)counts_at,
                            "retrieval index: token counts of %s do not add up", cur);
            goto fail;
        }
        for (uint32_t k = 0; k < n_tok; k++)
            tok[k] = rd_u32(r.p + r.off + (size_t)k * 4);
        r.off += (size_t)n_tok * 4;
        memcpy(t, text, text_n);
        t[text_n] = '\0';
        rc = mc__retr_put_file(ix, cur, t, text_n, (int64_t)mt, (int64_t)size, tok, tok_off, n_tok,
                               err);
        if (rc)
            goto fail;
    }
    if (r.off != len) {
        rc = mc_err_set(err, MC_EFORMAT, (int64_t)r.off, "retrieval index: trailing bytes");
        goto fail;
    }
    return 0;
fail:
    mc__retr_clear(ix);
    return rc;
}

int mc_retr_load_mem(mc_retr_index *ix, const void *data, size_t len, mc_err *err) {
    return mc__retr_load_mem(ix, data, len, true, err);
}

int mc_retr_load(mc_retr_index *ix, const char *path, mc_err *err) {
    char *data;
    size_t len;
    mc_err e;
    mc_err_clear(&e);
    int rc = mc_file_read_all(path, 0, &data, &len, &e);
    if (rc) {
        mc__retr_clear(ix);
        return mc_err_set(err, rc, -1, "%s", e.msg);
    }
    rc = mc__retr_load_mem(ix, data, len, true, err);
    free(data);
    if (rc && err && rc == MC_EFORMAT) {
        char m[sizeof err->msg];
        memcpy(m, err->msg, sizeof m);
        int k = snprintf(err->msg, sizeof err->msg, "%.100s: ", path);
        if (k > 0 && (size_t)k < sizeof err->msg)
            snprintf(err->msg + k, sizeof err->msg - (size_t)k, "%.150s", m);
    }
    return rc;
}
