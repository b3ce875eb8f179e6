/* src/cascade/prompt.c — the cascade's model prompts: retrieved windows, then
 * the file above the cursor cut on the left to fit a token budget, healed at
 * the cursor.
 *
 * The left cut is chosen among line starts whose line index is a multiple of
 * CUT_STEP, the latest one that makes everything fit: while the user types on
 * a line the cut does not move, so the prompt's token prefix is stable and the
 * small model's KV cache computes only what was typed. This file does not run
 * models or decide routing. */
#include "cascade_internal.h"

#include <stdlib.h>
#include <string.h>

enum { CUT_STEP = 8 };

uint64_t mc__hash(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

void mc__prompt_fini(mc__prompt *pr) {
    if (!pr)
        return;
    free(pr->ids);
    free(pr->block);
    for (int i = 0; i < pr->n_files; i++)
        free(pr->files[i]);
    free(pr->files);
    memset(pr, 0, sizeof *pr);
}

/* Tokens of s[0..n) (no BOS), or a negative code. */
static int64_t count_tokens(const mc_tok *tok, const char *s, size_t n) {
    if (n == 0)
        return 0;
    int64_t need = 0;
    int rc = mc_tok_encode(tok, s, n, 0, NULL, 0, &need);
    if (rc != 0 && rc != MC_EFULL)
        return rc;
    return need;
}

static int add_file(mc__prompt *pr, const char *f) {
    for (int i = 0; i < pr->n_files; i++)
        if (!strcmp(pr->files[i], f))
            return 0;
    char **nf = realloc(pr->files, (size_t)(pr->n_files + 1) * sizeof *nf);
    if (!nf)
        return MC_ENOMEM;
    pr->files = nf;
    pr->files[pr->n_files] = strdup(f);
    if (!pr->files[pr->n_files])
        return MC_ENOMEM;
    pr->n_files++;
    return 0;
}

/* The retrieved block for this request (malloc'd, maybe ""). */
static int retrieve(const mc__prompt_env *c, const mc_cascade_doc *d, size_t above_len, int cursor_line,
                    int budget, int round, const char *draft, size_t draft_len, char **block,
                    size_t *block_len, mc__prompt *pr, mc_err *err) {
    *block = NULL;
    *block_len = 0;
    double t0 = mc_time_s();
    char *q = NULL;
    size_t qlen = 0;
    int rc = mc_retr_query_text(d->text, above_len, c->p->retr_query_lines,
                                round == 2 ? draft : NULL, round == 2 ? draft_len : 0, &q, &qlen);
    if (rc != 0)
        return mc_err_set(err, rc, -1, "retrieval query: %s", mc_code_message(rc));
    int n_hits = 0;
    mc_retr_hit hits[64];
    if (qlen > 0) {
        mc_retr_query rq = mc_retr_query_default();
        rq.text = q;
        rq.len = qlen;
        rq.file = d->path;
        rq.cursor_line = cursor_line;
        rq.k = MC_MIN(c->p->retr_k, (int)MC_ARRAY_LEN(hits));
        rq.sim = c->p->sim;
        n_hits = mc_retr_search(c->ix, &rq, hits, (int)MC_ARRAY_LEN(hits), err);
    }
    free(q);
    if (n_hits < 0)
        return n_hits;
    /* The index measures its budget with its own tokenizer (often the fast
     * splitter); the model's tokens decide: shrink the budget until the block
     * fits in the model's tokens too. */
    const int64_t allowed = MC_MIN(c->p->retr_tokens, budget / 2);
    mc_retr_prompt_params pp = mc_retr_prompt_params_default();
    pp.budget_tokens = (int)allowed;
    pp.target_path = d->path;
    int n_used = 0;
    for (int attempt = 0; n_hits > 0 && pp.budget_tokens > 0 && attempt < 4; attempt++) {
        free(*block);
        *block = NULL;
        *block_len = 0;
        rc = mc_retr_prompt(c->ix, hits, n_hits, &pp, block, block_len, &n_used, NULL, err);
        if (rc != 0)
            return rc;
        int64_t real = count_tokens(c->tok, *block, *block_len);
        if (real < 0)
            return mc_err_set(err, (int)real, -1, "tokenizing retrieved code failed");
        if (real <= allowed)
            break;
        pp.budget_tokens = (int)((double)pp.budget_tokens * (double)allowed / (double)real * 0.95);
        n_used = 0;
        if (attempt == 3) { /* give up on retrieval rather than overflow */
            free(*block);
            *block = NULL;
            *block_len = 0;
        }
    }
    if (n_used > 0)
        for (int i = 0; i < n_hits; i++)
            if (add_file(pr, hits[i].file) != 0)
                return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    pr->n_windows = n_used;
    pr->ms_retr = (mc_time_s() - t0) * 1e3;
    return 0;
}

int mc__prompt_build(mc_cascade *cas, const mc_cascade_doc *d, int budget, int round,
                     const char *draft_line, size_t draft_len, mc__prompt *out, mc_err *err) {
    const mc__prompt_env env = {&cas->p, cas->tok, cas->ix};
    return mc__prompt_build_env(&env, d, budget, round, draft_line, draft_len, out, err);
}

int mc__prompt_build_env(const mc__prompt_env *c, const mc_cascade_doc *d, int budget, int round,
                         const char *draft_line, size_t draft_len, mc__prompt *out, mc_err *err) {
    memset(out, 0, sizeof *out);
    if (budget < 8)
        return mc_err_set(err, MC_EINVAL, -1, "prompt budget of %d tokens is too small", budget);
    const char *text = d->text;
    const size_t plen = d->cursor;
    size_t line_start = plen;
    while (line_start > 0 && text[line_start - 1] != '\n')
        line_start--;
    int cursor_line = d->line;
    if (cursor_line < 0) {
        cursor_line = 0;
        for (size_t i = 0; i < plen; i++)
            cursor_line += text[i] == '\n';
    }

    char *block = NULL;
    size_t block_len = 0;
    int rc = 0;
    if (round > 0 && c->p->retrieval && c->ix) {
        size_t above_len = line_start > 0 ? line_start - 1 : 0;
        rc = retrieve(c, d, above_len, cursor_line, budget, round, draft_line, draft_len, &block,
                      &block_len, out, err);
        if (rc != 0)
            goto fail;
    }
    int64_t n_block = count_tokens(c->tok, block, block_len);
    if (n_block < 0) {
        rc = mc_err_set(err, (int)n_block, -1, "tokenizing retrieved code failed");
        goto fail;
    }
    if (budget - n_block < budget / 4) { /* keep room for the file itself */
        free(block);
        block = NULL;
        block_len = 0;
        n_block = 0;
        out->n_windows = 0;
    }
    const int64_t room = budget - n_block;

    /* Candidate cuts: line starts whose index is a multiple of CUT_STEP, not
     * earlier than a byte bound no tail of `room` tokens can exceed. */
    size_t lo_byte = plen > (size_t)room * 16 ? plen - (size_t)room * 16 : 0;
    size_t n_cand = 0, cap_cand = 64;
    size_t *cand = malloc(cap_cand * sizeof *cand);
    if (!cand) {
        rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
        goto fail;
    }
    {
        size_t line = 0;
        for (size_t i = 0; i <= line_start; i++) {
            if (i == 0 || text[i - 1] == '\n') {
                if (line % CUT_STEP == 0 && i >= lo_byte) {
                    if (n_cand == cap_cand) {
                        cap_cand *= 2;
                        size_t *nc = realloc(cand, cap_cand * sizeof *nc);
                        if (!nc) {
                            free(cand);
                            rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
                            goto fail;
                        }
                        cand = nc;
                    }
                    cand[n_cand++] = i;
                }
                line++;
            }
        }
    }
    /* The earliest candidate that fits (tails shrink as the cut moves right). */
    size_t start = plen;
    {
        size_t a = 0, b = n_cand; /* answer in [a, b]; b = none fits */
        while (a < b) {
            size_t mid = a + (b - a) / 2;
            int64_t nt = count_tokens(c->tok, text + cand[mid], plen - cand[mid]);
            if (nt < 0) {
                free(cand);
                rc = mc_err_set(err, (int)nt, -1, "tokenizing the file failed");
                goto fail;
            }
            if (nt <= room)
                b = mid;
            else
                a = mid + 1;
        }
        if (a < n_cand)
            start = cand[a];
    }
    free(cand);
    if (start == plen && plen > 0) {
        /* Not even the cursor's line fits (a huge line): cut inside it, at a
         * UTF-8 boundary, shrinking until it does. */
        size_t s = plen > (size_t)room * 2 ? plen - (size_t)room * 2 : 0;
        for (;;) {
            while (s < plen && ((unsigned char)text[s] & 0xC0) == 0x80)
                s++;
            int64_t nt = count_tokens(c->tok, text + s, plen - s);
            if (nt < 0) {
                rc = mc_err_set(err, (int)nt, -1, "tokenizing the file failed");
                goto fail;
            }
            if (nt <= room || s >= plen)
                break;
            s += (plen - s) / 4 + 1;
        }
        start = s;
    }

    /* Assemble, heal, encode; tokenizing the two parts together can differ
     * from the sum by a token or two: cut further if needed. */
    for (;;) {
        size_t tail = plen - start;
        size_t n = block_len + tail;
        char *full = malloc(n + 1);
        if (!full) {
            rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
            goto fail;
        }
        if (block_len)
            memcpy(full, block, block_len);
        memcpy(full + block_len, text + start, tail);
        int64_t cap = budget + 64;
        int32_t *ids = malloc((size_t)cap * sizeof *ids);
        if (!ids) {
            free(full);
            rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
            goto fail;
        }
        mc_tok_heal_result hr;
        memset(&hr, 0, sizeof hr);
        if (c->p->heal) {
            rc = mc_tok_heal(c->tok, full, n, MC_TOK_ADD_BOS, 64, ids, cap, &hr);
        } else {
            int64_t nid = 0;
            rc = mc_tok_encode(c->tok, full, n, MC_TOK_ADD_BOS, ids, cap, &nid);
            hr.n_ids = nid;
            hr.keep_len = n;
        }
        if (rc == 0 && (hr.n_ids <= budget || tail == 0)) {
            if (hr.n_ids == 0) { /* an empty document: start from BOS/EOS */
                int32_t b = mc_tok_bos(c->tok);
                ids[0] = b >= 0 ? b : mc_tok_eos(c->tok);
                hr.n_ids = ids[0] >= 0 ? 1 : 0;
            }
            out->ids = ids;
            out->n = (int)hr.n_ids;
            out->above_start = start;
            out->heal_len = hr.removed_len;
            memcpy(out->heal, full + hr.keep_len, hr.removed_len);
            free(full);
            break;
        }
        free(full);
        free(ids);
        if (rc != 0 && rc != MC_EFULL) {
            rc = mc_err_set(err, rc, -1, "tokenizing the prompt failed");
            goto fail;
        }
        /* too long: move the cut to the next line (or a quarter further in) */
        size_t nx = start;
        while (nx < plen && text[nx] != '\n')
            nx++;
        start = nx < plen ? nx + 1 : start + (plen - start) / 4 + 1;
        if (start > plen)
            start = plen;
    }
    out->block = block;
    out->block_len = block_len;
    if (out->n <= 0) {
        mc__prompt_fini(out);
        return mc_err_set(err, MC_EINVAL, -1, "empty prompt (a vocabulary without BOS or EOS)");
    }
    return 0;
fail:
    free(block);
    mc__prompt_fini(out);
    return rc;
}

int mc_cascade_prompt_text(const mc_cascade_params *p, const mc_tok *tok, const mc_retr_index *ix,
                           const mc_cascade_doc *d, int budget, char **block, size_t *block_len,
                           size_t *above_start, mc_err *err) {
    *block = NULL;
    *block_len = 0;
    *above_start = d->cursor;
    const mc__prompt_env env = {p, tok, ix};
    mc__prompt pr;
    int rc = mc__prompt_build_env(&env, d, budget, 1, NULL, 0, &pr, err);
    if (rc != 0)
        return rc;
    *block = pr.block;
    *block_len = pr.block_len;
    *above_start = pr.above_start;
    pr.block = NULL;
    mc__prompt_fini(&pr);
    return 0;
}
