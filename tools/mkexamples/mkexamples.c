/* tools/mkexamples/mkexamples.c — retrieval-formatted training examples for the
 * model factory's final training phase (docs/training.md, "Models v2").
 *
 * Each training package (a directory) is one repository. For anchor lines
 * sampled across its Python files, an example is exactly what the cascade
 * gives the small model at the start of that line (mc_cascade_prompt_text:
 * round-1 retrieval over the package's own files with the leakage rule, the
 * windows as comment blocks most similar last, then the file's text above cut
 * on the left to the budget), followed by the anchor line and up to --after
 * lines after it: the answer the model should learn to write.
 *
 * Output: a token file (tokfile.py's format, one example per document) and a
 * weight file beside it (OUT.w): one byte per token, the weight of that token
 * as a training target — 0 on the retrieved block (the model reads it, it is
 * not asked to write it) and on separators, 1 on the file text above and the
 * lines after, --anchor-weight on the anchor line. The trainer packs one
 * example per sequence (tools/train/train.py). Weight file, little-endian:
 *   0  8  magic "MCWEIGHT"
 *   8  4  u32 version = 1
 *   12 4  u32 reserved = 0
 *   16 8  u64 n (= the token file's n_tokens)
 *   24 n  u8 weights
 *
 * Deterministic: packages and files in byte order, anchors drawn from a seeded
 * hash of (seed, package, file). Not part of the product; built by `make tools`.
 */
#include "mccom/cascade.h"
#include "mccom/common.h"
#include "mccom/retr.h"
#include "mccom/tok.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct opts {
    const char *vocab, *out;
    int ctx, after, per_lines, max_per_file, anchor_w, max_line_tokens;
    uint64_t seed;
    int64_t max_examples;
    double repo_fraction;
} opts;

/* A growable byte/token output (both files are held in memory, then written). */
typedef struct outbuf {
    uint16_t *tok;
    uint8_t *w;
    int64_t n, cap;
    int64_t n_examples;
} outbuf;

static int out_push(outbuf *o, int32_t id, uint8_t w) {
    if (o->n == o->cap) {
        int64_t nc = o->cap ? o->cap * 2 : 1 << 20;
        uint16_t *t = realloc(o->tok, (size_t)nc * sizeof *t);
        if (!t)
            return MC_ENOMEM;
        o->tok = t;
        uint8_t *ww = realloc(o->w, (size_t)nc);
        if (!ww)
            return MC_ENOMEM;
        o->w = ww;
        o->cap = nc;
    }
    o->tok[o->n] = (uint16_t)id;
    o->w[o->n] = w;
    o->n++;
    return 0;
}

static uint64_t mix(uint64_t h, const char *s) {
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t rnd(uint64_t *st) { /* splitmix64 */
    uint64_t z = (*st += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (cap - n < 65536) {
            cap = cap ? cap * 2 : 65536 + 1;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    buf[n] = 0;
    *len = n;
    return buf;
}

/* ---- file lists (sorted, regular *.py files, symlinks not followed) ---------- */
typedef struct strlist {
    char **v;
    int n, cap;
} strlist;

static int sl_add(strlist *l, const char *s) {
    if (l->n == l->cap) {
        int nc = l->cap ? l->cap * 2 : 64;
        char **nv = realloc(l->v, (size_t)nc * sizeof *nv);
        if (!nv)
            return MC_ENOMEM;
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n] = strdup(s);
    return l->v[l->n++] ? 0 : MC_ENOMEM;
}

static void sl_free(strlist *l) {
    for (int i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int list_py(const char *root, const char *rel, strlist *out) {
    char path[4096];
    snprintf(path, sizeof path, "%s%s%s", root, *rel ? "/" : "", rel);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    strlist names = {0};
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, "__pycache__"))
            continue;
        if (sl_add(&names, e->d_name)) {
            closedir(d);
            sl_free(&names);
            return MC_ENOMEM;
        }
    }
    closedir(d);
    qsort(names.v, (size_t)names.n, sizeof *names.v, cmp_str);
    int rc = 0;
    for (int i = 0; i < names.n && !rc; i++) {
        char r2[4096], p2[8200];
        int nr = snprintf(r2, sizeof r2, "%s%s%s", rel, *rel ? "/" : "", names.v[i]);
        if (nr < 0 || (size_t)nr >= sizeof r2)
            continue; /* a path too long to be useful */
        snprintf(p2, sizeof p2, "%s/%s", root, r2);
        struct stat st;
        if (lstat(p2, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode))
            rc = list_py(root, r2, out);
        else if (S_ISREG(st.st_mode)) {
            size_t l = strlen(r2);
            if (l > 3 && !strcmp(r2 + l - 3, ".py"))
                rc = sl_add(out, r2);
        }
    }
    sl_free(&names);
    return rc;
}

/* ---- one example -------------------------------------------------------------- */
enum { W_BLOCK = 0, W_ABOVE = 1, W_AFTER = 1 };

/* Tokenize text[0..n) and append it with per-byte-region weights: bytes
 * [0,b1) weight w0, [b1,b2) w1, [b2,b3) w2, the rest w3 (a token's weight is
 * that of its first byte). At most `max` tokens are kept. */
static int emit(const mc_tok *tok, const char *text, size_t n, size_t b1, size_t b2, size_t b3,
                const uint8_t w[4], int max, outbuf *o, int32_t sep) {
    int64_t need = 0;
    int rc = mc_tok_encode(tok, text, n, MC_TOK_ADD_BOS, NULL, 0, &need);
    if (rc != 0 && rc != MC_EFULL)
        return rc;
    int32_t *ids = malloc((size_t)(need + 1) * sizeof *ids);
    if (!ids)
        return MC_ENOMEM;
    int64_t got = 0;
    rc = mc_tok_encode(tok, text, n, MC_TOK_ADD_BOS, ids, need + 1, &got);
    if (rc != 0) {
        free(ids);
        return rc;
    }
    size_t off = 0;
    char piece[256];
    for (int64_t i = 0; i < got && i < max && !rc; i++) {
        int pl = mc_tok_decode_piece(tok, ids[i], 0, piece, sizeof piece);
        uint8_t wt = off < b1 ? w[0] : off < b2 ? w[1] : off < b3 ? w[2] : w[3];
        if (pl <= 0)
            wt = 0; /* BOS and other specials */
        rc = out_push(o, ids[i], wt);
        if (pl > 0)
            off += (size_t)pl;
    }
    free(ids);
    if (!rc)
        rc = out_push(o, sep, 0);
    return rc;
}

static int do_package(const opts *op, const mc_tok *tok, const char *root, outbuf *o,
                      int64_t *n_files, mc_err *err) {
    strlist files = {0};
    int rc = list_py(root, "", &files);
    if (rc != 0 || files.n == 0) {
        sl_free(&files);
        return rc;
    }
    mc_retr_index *ix = NULL;
    rc = mc_retr_new(&ix, root, NULL, NULL, err);
    if (rc == 0)
        rc = mc_retr_sync(ix, NULL, err);
    mc_cascade_params cp = mc_cascade_params_default();
    const int budget = op->ctx - op->max_line_tokens;
    const int32_t sep = mc_tok_eos(tok) >= 0 ? mc_tok_eos(tok) : 0;
    for (int fi = 0; fi < files.n && rc == 0; fi++) {
        if (op->max_examples && o->n_examples >= op->max_examples)
            break;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", root, files.v[fi]);
        size_t len = 0;
        char *text = read_file(path, &len);
        if (!text)
            continue;
        (*n_files)++;
        /* line starts and non-blank lines (anchor candidates: not the first two) */
        int n_lines = 0, cap = 0, n_cand = 0;
        size_t *ls = NULL;
        int *cand = NULL;
        for (size_t i = 0; i <= len; i++) {
            if (i == 0 || text[i - 1] == '\n') {
                if (i == len)
                    break;
                if (n_lines == cap) {
                    cap = cap ? cap * 2 : 256;
                    size_t *nl = realloc(ls, (size_t)cap * sizeof *nl);
                    int *nc = realloc(cand, (size_t)cap * sizeof *nc);
                    if (nl)
                        ls = nl;
                    if (nc)
                        cand = nc;
                    if (!nl || !nc) {
                        rc = MC_ENOMEM;
                        break;
                    }
                }
                ls[n_lines] = i;
                size_t j = i;
                while (j < len && (text[j] == ' ' || text[j] == '\t'))
                    j++;
                if (n_lines >= 2 && j < len && text[j] != '\n' && text[j] != '\r')
                    cand[n_cand++] = n_lines;
                n_lines++;
            }
        }
        int want = n_cand / (op->per_lines > 0 ? op->per_lines : 40);
        if (want < 1)
            want = 1;
        if (want > op->max_per_file)
            want = op->max_per_file;
        if (want > n_cand)
            want = n_cand;
        uint64_t st = mix(mix(0xcbf29ce484222325ull ^ op->seed, root), files.v[fi]);
        for (int k = 0; k < want && rc == 0; k++) {
            /* a distinct anchor: partial Fisher-Yates over the candidates */
            int j = k + (int)(rnd(&st) % (uint64_t)(n_cand - k));
            int t = cand[k];
            cand[k] = cand[j];
            cand[j] = t;
            int a = cand[k];
            size_t cur = ls[a];
            int last = a + op->after;
            if (last >= n_lines)
                last = n_lines - 1;
            size_t anchor_end = a + 1 < n_lines ? ls[a + 1] : len;
            size_t tgt_end = last + 1 < n_lines ? ls[last + 1] : len;
            mc_cascade_doc d = {files.v[fi], text, len, cur, a, 1, 0};
            char *block = NULL;
            size_t block_len = 0, above = cur;
            mc_err e2;
            mc_err_clear(&e2);
            rc = mc_cascade_prompt_text(&cp, tok, ix, &d, budget, &block, &block_len, &above, &e2);
            if (rc != 0) {
                fprintf(stderr, "mkexamples: %s/%s:%d: %s (skipped)\n", root, files.v[fi], a + 1,
                        e2.msg);
                free(block);
                rc = 0;
                continue;
            }
            size_t n_above = cur - above, n_tgt = tgt_end - cur;
            size_t n = block_len + n_above + n_tgt;
            char *full = malloc(n + 1);
            if (!full) {
                free(block);
                rc = MC_ENOMEM;
                break;
            }
            if (block_len)
                memcpy(full, block, block_len);
            memcpy(full + block_len, text + above, n_above);
            memcpy(full + block_len + n_above, text + cur, n_tgt);
            free(block);
            const uint8_t w[4] = {W_BLOCK, W_ABOVE, (uint8_t)op->anchor_w, W_AFTER};
            size_t b1 = block_len, b2 = b1 + n_above, b3 = b2 + (anchor_end - cur);
            rc = emit(tok, full, n, b1, b2, b3, w, op->ctx + 1 - 1, o, sep);
            free(full);
            if (rc == 0)
                o->n_examples++;
        }
        free(ls);
        free(cand);
        free(text);
    }
    mc_retr_free(ix);
    sl_free(&files);
    return rc;
}

/* Write the token file and the weight file (temp, fsync, rename). */
static int write_out(const char *path, const void *hdr, size_t hl, const void *data, size_t dl) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return MC_EIO;
    const char *parts[2] = {hdr, data};
    size_t lens[2] = {hl, dl};
    for (int p = 0; p < 2; p++) {
        size_t done = 0;
        while (done < lens[p]) {
            ssize_t w = write(fd, parts[p] + done, lens[p] - done);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                close(fd);
                unlink(tmp);
                return MC_EIO;
            }
            done += (size_t)w;
        }
    }
    if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return MC_EIO;
    }
    return 0;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: mkexamples --vocab V.gguf --out OUT.tok [options] REPO_DIR... | --each DIR\n"
            "Retrieval-formatted training examples (the cascade's SLM prompt at an anchor line,\n"
            "then the anchor line and the lines after it), one per document of OUT.tok, with\n"
            "per-token loss weights in OUT.tok.w (0 retrieved block, 1 text, W anchor line).\n"
            "  --each DIR          every subdirectory of DIR is one repository (a corpus split)\n"
            "  --ctx N             tokens per example (1024); the prompt gets N - 48, as the\n"
            "                      cascade's default SLM budget\n"
            "  --after N           lines after the anchor line in the answer (2)\n"
            "  --per-lines N       one anchor per N non-blank lines of a file (40)\n"
            "  --max-per-file N    at most N anchors per file (8)\n"
            "  --anchor-weight W   loss weight of the anchor line's tokens (4)\n"
            "  --max-examples N    stop after N examples (0: no limit)\n"
            "  --repo-fraction F   keep a seeded sample of F of the repositories (1)\n"
            "  --seed S            anchor sampling seed (1)\n");
}

int main(int argc, char **argv) {
    opts op = {NULL, NULL, 1024, 2, 40, 8, 4, 48, 1, 0, 1.0};
    strlist repos = {0};
    const char *each = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (a[0] == '-' && a[1] == '-' && !v) {
            fprintf(stderr, "mkexamples: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--vocab"))
            op.vocab = argv[++i];
        else if (!strcmp(a, "--out"))
            op.out = argv[++i];
        else if (!strcmp(a, "--each"))
            each = argv[++i];
        else if (!strcmp(a, "--ctx"))
            op.ctx = atoi(argv[++i]);
        else if (!strcmp(a, "--after"))
            op.after = atoi(argv[++i]);
        else if (!strcmp(a, "--per-lines"))
            op.per_lines = atoi(argv[++i]);
        else if (!strcmp(a, "--max-per-file"))
            op.max_per_file = atoi(argv[++i]);
        else if (!strcmp(a, "--anchor-weight"))
            op.anchor_w = atoi(argv[++i]);
        else if (!strcmp(a, "--max-examples"))
            op.max_examples = atoll(argv[++i]);
        else if (!strcmp(a, "--repo-fraction"))
            op.repo_fraction = atof(argv[++i]);
        else if (!strcmp(a, "--seed"))
            op.seed = strtoull(argv[++i], NULL, 10);
        else if (a[0] == '-') {
            fprintf(stderr, "mkexamples: unknown option %s\n", a);
            usage(stderr);
            return 2;
        } else if (sl_add(&repos, a))
            return 1;
    }
    if (!op.vocab || !op.out || (!each && repos.n == 0) || op.ctx < 64 || op.anchor_w < 0 ||
        op.anchor_w > 255 || op.after < 0 || op.max_per_file < 1) {
        fprintf(stderr, "mkexamples: need --vocab, --out and repositories; --ctx >= 64, "
                        "0 <= --anchor-weight <= 255\n");
        usage(stderr);
        sl_free(&repos);
        return 2;
    }
    if (each) {
        DIR *d = opendir(each);
        if (!d) {
            fprintf(stderr, "mkexamples: %s: %s\n", each, strerror(errno));
            return 1;
        }
        struct dirent *e;
        strlist names = {0};
        while ((e = readdir(d)) != NULL)
            if (e->d_name[0] != '.')
                sl_add(&names, e->d_name);
        closedir(d);
        qsort(names.v, (size_t)names.n, sizeof *names.v, cmp_str);
        for (int i = 0; i < names.n; i++) {
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", each, names.v[i]);
            struct stat st;
            if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
                sl_add(&repos, p);
        }
        sl_free(&names);
    }
    mc_err err;
    mc_err_clear(&err);
    mc_tok *tok = NULL;
    if (mc_tok_load_gguf_file(op.vocab, &tok, &err) != 0) {
        fprintf(stderr, "mkexamples: %s: %s\n", op.vocab, err.msg);
        sl_free(&repos);
        return 1;
    }
    if (mc_tok_n_vocab(tok) > 65536) {
        fprintf(stderr, "mkexamples: vocabularies over 65536 tokens are not supported\n");
        mc_tok_free(tok);
        sl_free(&repos);
        return 1;
    }
    outbuf o = {0};
    int64_t n_files = 0;
    int rc = 0;
    double t0 = mc_time_s(), t_last = t0;
    for (int r = 0; r < repos.n && rc == 0; r++) {
        if (op.max_examples && o.n_examples >= op.max_examples)
            break;
        const char *base = strrchr(repos.v[r], '/') ? strrchr(repos.v[r], '/') + 1 : repos.v[r];
        uint64_t hs = mix(0xcbf29ce484222325ull ^ (op.seed * 0x9e3779b97f4a7c15ull), base);
        if (op.repo_fraction < 1.0 && (double)(rnd(&hs) >> 11) * 0x1.0p-53 >= op.repo_fraction)
            continue;
        rc = do_package(&op, tok, repos.v[r], &o, &n_files, &err);
        if (rc != 0)
            fprintf(stderr, "mkexamples: %s: %s\n", repos.v[r], err.msg[0] ? err.msg : mc_code_message(rc));
        double now = mc_time_s();
        if (now - t_last > 10 || r + 1 == repos.n) {
            fprintf(stderr, "mkexamples: %d/%d repositories, %lld files, %lld examples, %.1fM tokens, %.0f s\n",
                    r + 1, repos.n, (long long)n_files, (long long)o.n_examples, (double)o.n / 1e6,
                    now - t0);
            t_last = now;
        }
    }
    if (rc == 0) {
        unsigned char th[32], wh[24];
        memcpy(th, "MCTOKENS", 8);
        uint32_t u[2] = {1, 2};
        memcpy(th + 8, u, 8);
        uint64_t n = (uint64_t)o.n;
        memcpy(th + 16, &n, 8);
        uint32_t u2[2] = {(uint32_t)(mc_tok_eos(tok) >= 0 ? mc_tok_eos(tok) : 0),
                          (uint32_t)mc_tok_n_vocab(tok)};
        memcpy(th + 24, u2, 8);
        memcpy(wh, "MCWEIGHT", 8);
        uint32_t wv[2] = {1, 0};
        memcpy(wh + 8, wv, 8);
        memcpy(wh + 16, &n, 8);
        char wpath[4200];
        snprintf(wpath, sizeof wpath, "%s.w", op.out);
        rc = write_out(op.out, th, sizeof th, o.tok, (size_t)o.n * 2);
        if (rc == 0)
            rc = write_out(wpath, wh, sizeof wh, o.w, (size_t)o.n);
        if (rc != 0)
            fprintf(stderr, "mkexamples: writing %s failed\n", op.out);
        else
            printf("%s: %lld examples, %lld tokens from %d repositories, %lld files\n", op.out,
                   (long long)o.n_examples, (long long)o.n, repos.n, (long long)n_files);
    }
    free(o.tok);
    free(o.w);
    mc_tok_free(tok);
    sl_free(&repos);
    return rc == 0 ? 0 : 1;
}
