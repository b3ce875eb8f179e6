/* src/copy/store.c — the copy index on disk: one file beside the retrieval
 * index's, versioned and checksummed.
 *
 * Layout (all integers little-endian; "str" = u32 length + bytes, no NUL):
 *
 *   header, 40 bytes
 *     0  u8[8]  magic "MCCOPYIX"
 *     8  u32    version (1)
 *    12  u32    flags (0; nonzero is rejected)
 *    16  u64    payload_len: bytes after the header (the file is exactly 40 + payload_len)
 *    24  u32    payload_crc: CRC-32 (zlib's) of the payload
 *    28  u32    n_files
 *    32  u32    line form: 1 = blanks ' ' '\t' '\r' '\f' '\v' stripped at both ends,
 *                          hashed with mc__copy_hash (another value is rejected)
 *    36  u32    reserved (0)
 *   payload
 *     str  root (the retrieval index's, as given to mc_retr_new)
 *     n_files × file, sorted by path (bytewise), no duplicates:
 *       str  path (root-relative, '/'-separated, no "." or ".." or empty components)
 *       u64  content hash (the retrieval index's hash of the text it was derived from)
 *       u32  n_lines      (lines of that text)
 *       u32  nb           (non-blank lines, <= n_lines)
 *       u32  line × nb    (0-based, strictly increasing, < n_lines)
 *       u64  hash × nb    (each non-blank line's normalized hash)
 *
 * The K1/K2 lists are not stored: they are rebuilt from the hashes on load,
 * which keeps the format canonical (same content, same bytes). A loaded file
 * is trusted only for files whose content hash still equals the retrieval
 * index's (mc_copy_sync derives the others again). Loading never trusts a
 * length: every read is bounds-checked and reports the byte offset of the
 * first bad field.
 */
#include "copy_internal.h"
#include "mccom/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define MAGIC "MCCOPYIX"
#define VERSION 1u
#define LINE_FORM 1u
#define HEADER_LEN 40

int mc_copy_path_for(const char *retr_path, char *buf, size_t cap) {
    int n = snprintf(buf, cap, "%s.copy", retr_path ? retr_path : "");
    return n < 0 || (size_t)n >= cap || !retr_path || !*retr_path ? MC_ERANGE : 0;
}

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

static void set_u32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static void put_u32(wbuf *b, uint32_t v) {
    unsigned char x[4];
    set_u32(x, v);
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

static uint32_t crc_of(const unsigned char *p, size_t n) {
    uLong crc = crc32(0L, Z_NULL, 0);
    for (size_t off = 0; off < n;) {
        size_t chunk = MC_MIN(n - off, (size_t)1 << 30);
        crc = crc32(crc, p + off, (uInt)chunk);
        off += chunk;
    }
    return (uint32_t)crc;
}

/* Write hdr ⊕ body in place of path, crash-safely and with mode 0600
 * (mc_file_tmp: a unique temp file beside it, fsync, rename, directory
 * fsync), so that a crash leaves the old file or the new one and a planted
 * temp name or link is never written through. */
static int replace_file(const char *path, const void *hdr, size_t hn, const void *body,
                        size_t bn, mc_err *err) {
    mc_file_tmp t;
    int rc = mc_file_tmp_open(&t, path, 0600, err);
    if (rc)
        return rc;
    if (fwrite(hdr, 1, hn, t.f) != hn || (bn && fwrite(body, 1, bn, t.f) != bn)) {
        mc_file_tmp_abort(&t);
        return mc_err_set(err, MC_EIO, -1, "%s: write failed: %s", path, strerror(errno));
    }
    return mc_file_tmp_commit(&t, err);
}

int mc_copy_save(const mc_copy_index *cx, const char *path, mc_err *err) {
    wbuf b = {0};
    const char *root = mc_retr_root(cx->ix);
    put_str(&b, root, strlen(root));
    for (int i = 0; i < cx->n_files; i++) {
        const cfile *f = cx->files[i];
        put_str(&b, f->path, strlen(f->path));
        put_u64(&b, f->hash);
        put_u32(&b, (uint32_t)f->n_lines);
        put_u32(&b, (uint32_t)f->nb);
        for (int j = 0; j < f->nb; j++)
            put_u32(&b, f->line[j]);
        for (int j = 0; j < f->nb; j++)
            put_u64(&b, f->h[j]);
    }
    if (b.oom) {
        free(b.p);
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory saving the copy index");
    }
    unsigned char hdr[HEADER_LEN] = {0};
    memcpy(hdr, MAGIC, 8);
    set_u32(hdr + 8, VERSION);
    set_u32(hdr + 12, 0);
    set_u32(hdr + 16, (uint32_t)b.n);
    set_u32(hdr + 20, (uint32_t)((uint64_t)b.n >> 32));
    set_u32(hdr + 24, crc_of(b.p, b.n));
    set_u32(hdr + 28, (uint32_t)cx->n_files);
    set_u32(hdr + 32, LINE_FORM);
    set_u32(hdr + 36, 0);
    int rc = replace_file(path, hdr, sizeof hdr, b.p ? b.p : (unsigned char *)"", b.n, err);
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
                          "copy index: truncated (%s needs %zu bytes, %zu left)", what, n,
                          r->n - r->off);
    return 0;
}

static uint32_t rd_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd_u64(const unsigned char *p) {
    return (uint64_t)rd_u32(p) | (uint64_t)rd_u32(p + 4) << 32;
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
    *v = rd_u64(r->p + r->off);
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
    if (n == 0 || n >= 4096 || s[0] == '/' || memchr(s, '\0', n) || s[n - 1] == '/')
        return 0;
    for (uint32_t i = 0; i < n;) {
        uint32_t j = i;
        while (j < n && s[j] != '/')
            j++;
        uint32_t c = j - i;
        if (c == 0 || (c == 1 && s[i] == '.') || (c == 2 && s[i] == '.' && s[i + 1] == '.'))
            return 0;
        i = j + 1;
    }
    return 1;
}

int mc_copy_load_mem(mc_copy_index *cx, const void *data, size_t len, mc_err *err) {
    return mc__copy_load_mem(cx, data, len, true, err);
}

int mc__copy_load_mem(mc_copy_index *cx, const void *data, size_t len, bool check_crc,
                      mc_err *err) {
    mc__copy_clear(cx);
    rbuf r = {data, len, 0, err};
    int rc;
    if (len < HEADER_LEN || memcmp(data, MAGIC, 8) != 0)
        return mc_err_set(err, MC_EFORMAT, 0, "not a mccom copy index (bad magic)");
    const unsigned char *h = data;
    uint32_t version = rd_u32(h + 8), flags = rd_u32(h + 12);
    uint64_t plen = rd_u64(h + 16);
    uint32_t crc = rd_u32(h + 24), n_files = rd_u32(h + 28), form = rd_u32(h + 32);
    if (version != VERSION)
        return mc_err_set(err, MC_EFORMAT, 8, "copy index version %u, this mccom reads %u", version,
                          VERSION);
    if (flags)
        return mc_err_set(err, MC_EFORMAT, 12, "copy index: unknown flags 0x%x", flags);
    if (plen != len - HEADER_LEN)
        return mc_err_set(err, MC_EFORMAT, 16,
                          "copy index: payload length %llu but the file has %zu bytes after the "
                          "header (truncated or appended to)",
                          (unsigned long long)plen, len - HEADER_LEN);
    if (form != LINE_FORM || rd_u32(h + 36) != 0)
        return mc_err_set(err, MC_EFORMAT, 32, "copy index: line form %u, this mccom makes %u",
                          form, LINE_FORM);
    if (check_crc && crc_of(h + HEADER_LEN, len - HEADER_LEN) != crc)
        return mc_err_set(err, MC_EFORMAT, 24, "copy index: checksum mismatch (corrupt)");
    r.off = HEADER_LEN;
    const char *s;
    uint32_t n;
    const char *root = mc_retr_root(cx->ix);
    if ((rc = get_str(&r, &s, &n, "root")))
        return rc;
    if (n != strlen(root) || memcmp(s, root, n))
        return mc_err_set(err, MC_EFORMAT, (int64_t)(r.off - n),
                          "copy index is of another directory (%.*s), not %s",
                          (int)MC_MIN(n, 200u), s, root);
    if (n_files > (len - r.off) / 20 + 1)
        return mc_err_set(err, MC_EFORMAT, 28, "copy index: %u files cannot fit", n_files);
    char prev[4096] = "";
    for (uint32_t i = 0; i < n_files; i++) {
        size_t at = r.off;
        const char *path;
        uint32_t path_n, n_lines, nb;
        uint64_t hash;
        if ((rc = get_str(&r, &path, &path_n, "path")))
            goto fail;
        if (!path_ok(path, path_n)) {
            rc = mc_err_set(err, MC_EFORMAT, (int64_t)at, "copy index: bad file path");
            goto fail;
        }
        char cur[4096];
        memcpy(cur, path, path_n);
        cur[path_n] = '\0';
        if (i > 0 && strcmp(prev, cur) >= 0) {
            rc = mc_err_set(err, MC_EFORMAT, (int64_t)at, "copy index: files out of order");
            goto fail;
        }
        memcpy(prev, cur, path_n + 1);
        size_t nb_at = r.off + 12;
        if ((rc = get_u64(&r, &hash, "hash")) || (rc = get_u32(&r, &n_lines, "n_lines")) ||
            (rc = get_u32(&r, &nb, "nb")))
            goto fail;
        if (nb > n_lines || n_lines > INT32_MAX) {
            rc = mc_err_set(err, MC_EFORMAT, (int64_t)nb_at,
                            "copy index: %s has %u non-blank lines of %u", cur, nb, n_lines);
            goto fail;
        }
        if ((rc = need(&r, (size_t)nb * 12, "lines")))
            goto fail;
        uint32_t *line = malloc((size_t)(nb ? nb : 1) * sizeof *line);
        uint64_t *hs = malloc((size_t)(nb ? nb : 1) * sizeof *hs);
        if (!line || !hs) {
            free(line);
            free(hs);
            rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
            goto fail;
        }
        for (uint32_t j = 0; j < nb; j++) {
            line[j] = rd_u32(r.p + r.off + (size_t)j * 4);
            if (line[j] >= n_lines || (j > 0 && line[j] <= line[j - 1])) {
                free(line);
                free(hs);
                rc = mc_err_set(err, MC_EFORMAT, (int64_t)(r.off + (size_t)j * 4),
                                "copy index: line numbers of %s out of order or range", cur);
                goto fail;
            }
        }
        r.off += (size_t)nb * 4;
        for (uint32_t j = 0; j < nb; j++)
            hs[j] = rd_u64(r.p + r.off + (size_t)j * 8);
        r.off += (size_t)nb * 8;
        if (mc__copy_put(cx, cur, hash, (int)n_lines, (int)nb, line, hs)) {
            rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
            goto fail;
        }
    }
    if (r.off != len) {
        rc = mc_err_set(err, MC_EFORMAT, (int64_t)r.off, "copy index: trailing bytes");
        goto fail;
    }
    if (mc__copy_finish(cx)) {
        rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
        goto fail;
    }
    cx->synced = false; /* a sync compares every file with the retrieval index */
    return 0;
fail:
    mc__copy_clear(cx);
    return rc;
}

int mc_copy_load(mc_copy_index *cx, const char *path, mc_err *err) {
    mc__copy_clear(cx);
    char *data = NULL;
    size_t n = 0;
    int rc = mc_file_read_all(path, 0, &data, &n, err);
    if (rc)
        return rc;
    rc = mc__copy_load_mem(cx, data, n, true, err);
    if (rc == MC_EFORMAT && err) {
        char m[sizeof err->msg];
        memcpy(m, err->msg, sizeof m);
        int k = snprintf(err->msg, sizeof err->msg, "%.100s: ", path);
        if (k > 0 && (size_t)k < sizeof err->msg)
            snprintf(err->msg + k, sizeof err->msg - (size_t)k, "%.150s", m);
    }
    free(data);
    return rc;
}
