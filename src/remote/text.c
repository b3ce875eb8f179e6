/* src/remote/text.c — a generation's text rebuilt from the token ids a server
 * returned, by the rules of gen.h (and the same steps as src/gen/gen.c's push):
 * every piece appended, the healed bytes not part of the text, a cut before
 * the first '\n' (the n_lines-th) of the text when stop_newline, end-of-generation tokens end
 * it and add nothing.
 *
 * Not here: stop strings (the remote tier asks only for line endings) and
 * streaming (the client gets whole answers). */
#include "remote_internal.h"

#include <stdlib.h>
#include <string.h>

void mc__text_init(mc__text *t, const mc_tok *tok, size_t heal_len, bool stop_newline,
                   int n_lines) {
    memset(t, 0, sizeof *t);
    t->tok = tok;
    t->heal_len = heal_len;
    t->stop_newline = stop_newline;
    t->n_lines = n_lines > 1 ? n_lines : 1;
    t->stop = MC_GEN_LENGTH;
}

void mc__text_fini(mc__text *t) {
    if (!t)
        return;
    free(t->raw);
    t->raw = NULL;
    t->raw_len = t->raw_cap = 0;
}

static int raw_append(mc__text *t, const char *b, size_t n) {
    if (t->raw_len + n + 1 > t->raw_cap) {
        size_t nc = t->raw_cap ? t->raw_cap * 2 : 256;
        while (nc < t->raw_len + n + 1)
            nc *= 2;
        char *nr = realloc(t->raw, nc);
        if (!nr)
            return MC_ENOMEM;
        t->raw = nr;
        t->raw_cap = nc;
    }
    memcpy(t->raw + t->raw_len, b, n);
    t->raw_len += n;
    t->raw[t->raw_len] = '\0';
    return 0;
}

int mc__text_push(mc__text *t, int32_t id) {
    if (t->ended)
        return 0;
    if (id < 0 || id >= mc_tok_n_vocab(t->tok))
        return MC_EINVAL;
    if (mc_tok_is_eog(t->tok, id)) {
        t->ended = true;
        t->stop = MC_GEN_EOG;
        return 0;
    }
    char piece[512];
    int len = mc_tok_decode_piece(t->tok, id, 0, piece, sizeof piece);
    if (len < 0)
        return len;
    if ((size_t)len > sizeof piece)
        len = (int)sizeof piece; /* pieces are at most 256 bytes */
    size_t old = t->raw_len;
    if (raw_append(t, piece, (size_t)len) != 0)
        return MC_ENOMEM;
    t->text_end = t->raw_len;
    if (t->stop_newline) {
        /* only the text counts: the healed bytes are already in the document */
        size_t from = old > t->heal_len ? old : t->heal_len;
        for (size_t k = from; k < t->raw_len; k++) {
            if (t->raw[k] == '\n' && ++t->n_nl == t->n_lines) {
                t->text_end = k;
                t->ended = true;
                t->stop = MC_GEN_NEWLINE;
                break;
            }
        }
    }
    return 0;
}

int mc__text_finish(mc__text *t, char **text, size_t *len) {
    size_t b = t->heal_len < t->raw_len ? t->heal_len : t->raw_len;
    size_t e = t->raw ? t->text_end : 0;
    if (e < b)
        e = b;
    *len = e - b;
    *text = malloc(*len + 1);
    if (!*text) {
        mc__text_fini(t);
        return MC_ENOMEM;
    }
    if (*len)
        memcpy(*text, t->raw + b, *len);
    (*text)[*len] = '\0';
    mc__text_fini(t);
    return 0;
}
