/* Sampling from a logit row: greedy, temperature, top-k, top-p (nucleus). */
#include "mccom/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct cand {
    float logit;
    int32_t id;
};

size_t mc_sampler_work_size(int n_vocab) { return (size_t)n_vocab * sizeof(struct cand); }

static uint64_t next_u64(uint64_t *s) {
    /* xorshift64* */
    uint64_t x = *s ? *s : 0x9E3779B97F4A7C15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 2685821657736338717ull;
}

static int cmp_cand(const void *a, const void *b) {
    const struct cand *x = a, *y = b;
    if (x->logit != y->logit)
        return x->logit < y->logit ? 1 : -1;
    return x->id < y->id ? -1 : (x->id > y->id);
}

int32_t mc_sample(mc_sampler *s, const float *logits, int n_vocab, void *work) {
    if (s->temperature <= 0.0f)
        return mc_argmax(logits, n_vocab);
    struct cand *c = work;
    for (int i = 0; i < n_vocab; i++) {
        c[i].logit = logits[i];
        c[i].id = i;
    }
    int n = n_vocab;
    qsort(c, (size_t)n, sizeof *c, cmp_cand);
    if (s->top_k > 0 && s->top_k < n)
        n = s->top_k;
    double sum = 0.0;
    float mx = c[0].logit;
    for (int i = 0; i < n; i++) {
        c[i].logit = expf((c[i].logit - mx) / s->temperature);
        sum += c[i].logit;
    }
    if (s->top_p > 0.0f && s->top_p < 1.0f) {
        double cum = 0.0;
        for (int i = 0; i < n; i++) {
            cum += c[i].logit / sum;
            if (cum >= s->top_p) {
                n = i + 1;
                break;
            }
        }
        sum = 0.0;
        for (int i = 0; i < n; i++)
            sum += c[i].logit;
    }
    double r = (double)(next_u64(&s->rng) >> 11) * (1.0 / 9007199254740992.0) * sum;
    double cum = 0.0;
    for (int i = 0; i < n; i++) {
        cum += c[i].logit;
        if (r < cum)
            return c[i].id;
    }
    return c[n - 1].id;
}
