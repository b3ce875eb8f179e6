/* src/retr/split.c — the default tokenizer: a fast identifier/punctuation
 * splitter that hashes terms to 32-bit ids, and the token-count approximation
 * used for prompt budgets when no model tokenizer is given.
 * It does not know any language: keywords are identifiers like any other. */
#include "retr_internal.h"

static inline int is_word(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c >= 0x80;
}

static inline int is_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

uint32_t mc_retr_term_id(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

static int split_tokenize(void *ud, const char *s, size_t n, uint32_t *ids, int cap) {
    (void)ud;
    int k = 0;
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (is_space(c)) {
            i++;
            continue;
        }
        size_t j = i + 1;
        if (is_word(c))
            while (j < n && is_word((unsigned char)s[j]))
                j++;
        if (k < cap)
            ids[k] = mc_retr_term_id(s + i, j - i);
        if (k == INT32_MAX)
            return MC_ERANGE;
        k++;
        i = j;
    }
    return k;
}

/* Budget approximation: a word run counts 1 + (len-1)/8 (BPE splits long
 * identifiers), a run of punctuation 1 + (len-1)/3 (BPE merges "()", "):",
 * "==", "----"), a newline 1, a run of 2+ blanks (indentation) 1, a single
 * blank nothing (it merges with the next word). On CPython's standard library
 * this gives 3.9 characters per token (p50k on the benchmark: 3.3), so
 * budgets measured with it are approximate (may run ~15% over in p50k tokens). */
static int split_count(void *ud, const char *s, size_t n) {
    (void)ud;
    int64_t k = 0;
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') {
            k++;
            i++;
            continue;
        }
        if (is_space(c)) {
            size_t j = i + 1;
            while (j < n && is_space((unsigned char)s[j]) && s[j] != '\n')
                j++;
            if (j - i > 1)
                k++; /* an indentation run is a token of its own */
            i = j;
            continue;
        }
        size_t j = i + 1;
        if (is_word(c)) {
            while (j < n && is_word((unsigned char)s[j]))
                j++;
            k += 1 + (int64_t)(j - i - 1) / 8;
        } else {
            while (j < n && !is_word((unsigned char)s[j]) && !is_space((unsigned char)s[j]))
                j++;
            k += 1 + (int64_t)(j - i - 1) / 3;
        }
        i = j;
    }
    return k > INT32_MAX ? MC_ERANGE : (int)k;
}

mc_retr_tokenizer mc_retr_tokenizer_split(void) {
    mc_retr_tokenizer t = {"split-v1", NULL, split_tokenize, split_count};
    return t;
}
