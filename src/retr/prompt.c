/* src/retr/prompt.c — turn retrieved windows into a comment block for the
 * model's prompt, within a token budget, with the target language's comment
 * syntax. It does not choose the windows (index.c) or place the block in the
 * final prompt (the cascade does). */
#include "retr_internal.h"

#include <stdlib.h>
#include <string.h>

mc_retr_prompt_params mc_retr_prompt_params_default(void) {
    mc_retr_prompt_params p = {1000, NULL};
    return p;
}

const char *mc_retr_comment_prefix(const char *path) {
    const char *ext = path ? strrchr(path, '.') : NULL;
    const char *slash = path ? strrchr(path, '/') : NULL;
    if (!ext || (slash && ext < slash))
        return path ? "// " : "# ";
    ext++;
    static const char *const hash[] = {"py", "pyi", "pyx", "sh", "bash", "zsh", "rb", "pl", "pm",
                                       "r", "R", "yaml", "yml", "toml", "cmake", "mk"};
    static const char *const dash[] = {"lua", "sql", "hs", "ada", "adb", "ads"};
    for (size_t i = 0; i < MC_ARRAY_LEN(hash); i++)
        if (!strcmp(ext, hash[i]))
            return "# ";
    for (size_t i = 0; i < MC_ARRAY_LEN(dash); i++)
        if (!strcmp(ext, dash[i]))
            return "-- ";
    return "// ";
}

typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sput(sbuf *b, const char *s, size_t n) {
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 1024;
        while (nc < b->n + n + 1)
            nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sputs(sbuf *b, const char *s) { sput(b, s, strlen(s)); }

static const char rule[] = "--------------------------------------------------";

/* Format one window as a comment block into b. */
static int block(const mc_retr_index *ix, const mc_retr_hit *h, const char *c, sbuf *b) {
    mc_str text;
    int rc = mc_retr_window_text(ix, h->file, h->start_line, h->n_lines, &text);
    if (rc)
        return rc;
    sputs(b, c);
    sputs(b, "the below code fragment can be found in:\n");
    sputs(b, c);
    sputs(b, h->file);
    sputs(b, "\n");
    sputs(b, c);
    sputs(b, rule);
    sputs(b, "\n");
    for (size_t i = 0; i <= text.len;) {
        const char *nl = memchr(text.ptr + i, '\n', text.len - i);
        size_t e = nl ? (size_t)(nl - text.ptr) : text.len;
        size_t le = e;
        while (le > i && (text.ptr[le - 1] == '\r'))
            le--;
        sputs(b, c);
        sput(b, text.ptr + i, le - i);
        sputs(b, "\n");
        i = e + 1;
        if (!nl)
            break;
    }
    sputs(b, c);
    sputs(b, rule);
    sputs(b, "\n");
    return b->oom ? MC_ENOMEM : 0;
}

int mc_retr_prompt(const mc_retr_index *ix, const mc_retr_hit *hits, int n_hits,
                   const mc_retr_prompt_params *pp, char **out, size_t *out_len, int *n_used,
                   int *n_tokens, mc_err *err) {
    mc_retr_prompt_params p = pp ? *pp : mc_retr_prompt_params_default();
    const char *c = mc_retr_comment_prefix(p.target_path);
    *out = NULL;
    *out_len = 0;
    sbuf *blocks = calloc((size_t)MC_MAX(n_hits, 1), sizeof *blocks);
    if (!blocks)
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    int used = 0, rc = 0;
    int64_t total = 0;
    for (int i = 0; i < n_hits; i++) {
        sbuf b = {0};
        rc = block(ix, &hits[i], c, &b);
        if (rc) {
            free(b.p);
            if (rc == MC_ENOMEM) {
                rc = mc_err_set(err, rc, -1, "out of memory");
                goto out;
            }
            rc = 0; /* a hit of a file no longer indexed: skip it */
            continue;
        }
        int t = ix->tok.count_tokens(ix->tok.ud, b.p, b.n);
        if (t < 0) {
            free(b.p);
            rc = mc_err_set(err, t, -1, "retrieval: the tokenizer could not count a block");
            goto out;
        }
        if (total + t > p.budget_tokens) {
            free(b.p); /* does not fit: try the next, smaller ones may */
            continue;
        }
        total += t;
        blocks[used++] = b;
    }
    sbuf all = {0};
    sputs(&all, "");
    for (int i = used - 1; i >= 0; i--) /* most similar last, nearest the code */
        sput(&all, blocks[i].p, blocks[i].n);
    if (all.oom) {
        free(all.p);
        rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
        goto out;
    }
    *out = all.p;
    *out_len = all.n;
    if (n_used)
        *n_used = used;
    if (n_tokens)
        *n_tokens = (int)total;
out:
    for (int i = 0; i < used; i++)
        free(blocks[i].p);
    free(blocks);
    return rc;
}
