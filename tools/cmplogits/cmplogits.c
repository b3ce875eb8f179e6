/* tools/cmplogits/cmplogits.c — compare mccom's logits on a GGUF with reference logits.
 *
 *   cmplogits MODEL.gguf IDS REF.bin [MAX_REL]
 *
 * IDS: token ids separated by commas or spaces (as `mccom tokenize --print` writes them);
 * REF.bin: float32 logits of every position, n_ids rows of n_vocab values, as
 * tools/train/dump_logits.py writes them for the Hugging Face directory the GGUF was
 * converted from. The ids are decoded in one batch (F32 KV cache), and the line printed is
 *   MODEL: N positions, max |diff| D (max |logit| L), argmax same A/N
 * With MAX_REL, exits 1 when D / L exceeds it (the factory's check step uses 1e-4 for F32).
 * Exit 2 on bad input (unreadable files, sizes that do not match, bad ids).
 */
#include "mccom/model.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_ids(const char *s, int32_t **out, int *n_out) {
    int cap = 64, n = 0;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    if (!ids)
        return -1;
    while (*s) {
        while (*s == ',' || *s == ' ' || *s == '\n' || *s == '\t')
            s++;
        if (!*s)
            break;
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || errno || v < 0 || v > INT32_MAX) {
            free(ids);
            return -1;
        }
        if (n == cap) {
            cap *= 2;
            int32_t *g = realloc(ids, (size_t)cap * sizeof *ids);
            if (!g) {
                free(ids);
                return -1;
            }
            ids = g;
        }
        ids[n++] = (int32_t)v;
        s = end;
    }
    *out = ids;
    *n_out = n;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: cmplogits MODEL.gguf IDS REF.bin [MAX_REL]\n");
        return 2;
    }
    double max_rel = argc == 5 ? atof(argv[4]) : 0.0;
    int32_t *ids = NULL;
    int n = 0;
    if (parse_ids(argv[2], &ids, &n) != 0 || n == 0) {
        fprintf(stderr,
                "cmplogits: IDS must be non-negative integers separated by commas or spaces\n");
        return 2;
    }
    mc_err e;
    mc_model *m = NULL;
    if (mc_model_load(argv[1], &m, &e) != 0) {
        fprintf(stderr, "cmplogits: %s: %s\n", argv[1], e.msg);
        free(ids);
        return 2;
    }
    int V = mc_model_hparams(m)->n_vocab;
    for (int i = 0; i < n; i++)
        if (ids[i] >= V) {
            fprintf(stderr, "cmplogits: id %d is outside the vocabulary (%d)\n", ids[i], V);
            mc_model_free(m);
            free(ids);
            return 2;
        }
    size_t want = (size_t)n * (size_t)V;
    float *ref = malloc(want * sizeof *ref);
    FILE *f = fopen(argv[3], "rb");
    size_t got = ref && f ? fread(ref, sizeof *ref, want, f) : 0;
    int extra = f ? fgetc(f) : EOF;
    if (f)
        fclose(f);
    if (!ref || got != want || extra != EOF) {
        fprintf(stderr, "cmplogits: %s must hold exactly %d x %d float32 logits\n", argv[3], n, V);
        free(ref);
        mc_model_free(m);
        free(ids);
        return 2;
    }
    mc_ctx_params cp = mc_ctx_params_default();
    cp.kv_f32 = 1;
    if (cp.n_ctx < n)
        cp.n_ctx = n;
    mc_ctx *c = NULL;
    if (mc_ctx_new(m, &cp, &c, &e) != 0 || mc_ctx_decode(c, ids, n, 1, &e) != 0) {
        fprintf(stderr, "cmplogits: %s\n", e.msg);
        mc_ctx_free(c);
        free(ref);
        mc_model_free(m);
        free(ids);
        return 2;
    }
    double md = 0, mx = 0;
    int same = 0;
    for (int i = 0; i < n; i++) {
        const float *l = mc_ctx_logits(c, i), *r = ref + (size_t)i * (size_t)V;
        int a = 0, b = 0;
        for (int j = 0; j < V; j++) {
            md = fmax(md, fabs((double)l[j] - (double)r[j]));
            mx = fmax(mx, fabs((double)r[j]));
            if (l[j] > l[a])
                a = j;
            if (r[j] > r[b])
                b = j;
        }
        same += a == b;
    }
    printf("%s: %d positions, max |diff| %.3g (max |logit| %.3g), argmax same %d/%d\n", argv[1], n,
           md, mx, same, n);
    mc_ctx_free(c);
    free(ref);
    mc_model_free(m);
    free(ids);
    return max_rel > 0 && md > max_rel * mx ? 1 : 0;
}
