/* src/tok/tok_internal.h — what the files of the tok module share: Unicode
 * classification, the pre-tokenizers, small hash tables, the tokenizer struct.
 * Not a public interface: names are mc__tok_* / mc__u_*. */
#ifndef MCCOM_TOK_INTERNAL_H
#define MCCOM_TOK_INTERNAL_H

#include "mccom/tok.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- Unicode (tok_unicode.c) ---------------------------------------------
 * Codepoint flags with llama.cpp's meaning: one category bit from the general
 * category (libutf8proc), plus WS for the White_Space property. */
enum {
    MC__U_UNDEF = 0x0001,
    MC__U_N = 0x0002,
    MC__U_L = 0x0004,
    MC__U_Z = 0x0008,
    MC__U_M = 0x0010,
    MC__U_P = 0x0020,
    MC__U_S = 0x0040,
    MC__U_C = 0x0080,
    MC__U_WS = 0x0100,
};

uint16_t mc__u_flags(uint32_t cp);
/* Decode one codepoint at s[i] (i < n) the way llama.cpp does (lenient: no
 * overlong/surrogate checks); an invalid sequence gives U+FFFD and length 1. */
uint32_t mc__u_decode(const uint8_t *s, size_t n, size_t i, size_t *len);
/* Encode cp as UTF-8 into out (4 bytes room); returns the length. */
int mc__u_encode(uint32_t cp, char *out);
/* GPT-2 byte-to-unicode map: byte -> codepoint, and the inverse (-1 if none). */
uint32_t mc__u_byte_to_cp(uint8_t b);
int mc__u_cp_to_byte(uint32_t cp);

/* ---- pre-tokenizers (tok_pretok.c) --------------------------------------- */
enum mc__pre {
    MC__PRE_GPT2 = 1,      /* default, gpt-2 */
    MC__PRE_STARCODER,     /* starcoder, refact: digits isolated, then gpt-2 */
    MC__PRE_DEEPSEEK_CODER,
    MC__PRE_QWEN2,
    MC__PRE_LLAMA3,
};

/* Scratch for one pre-tokenization, reused between calls (per thread). */
typedef struct mc__pretok_buf {
    uint32_t *cp;    /* (n) codepoints */
    uint16_t *fl;    /* (n) flags */
    uint32_t *off;   /* (n+1) byte offset of each codepoint */
    uint32_t *ends;  /* word ends (codepoint index), current stage */
    uint32_t *ends2; /* next stage */
    size_t cap_cp, cap_ends, cap_ends2;
    size_t n_cp, n_ends;
} mc__pretok_buf;

void mc__pretok_buf_fini(mc__pretok_buf *b);
/* Split text into words. On success b->ends[0..n_ends) are codepoint ends and
 * b->off maps them to byte offsets. Returns 0 or MC_ENOMEM. */
int mc__pretok_split(int pre, const char *text, size_t len, mc__pretok_buf *b);

/* ---- hashing ------------------------------------------------------------- */
static inline uint64_t mc__tok_hash(const void *p, size_t n) {
    const uint8_t *s = (const uint8_t *)p;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xff51afd7ed558ccdull);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        __builtin_memcpy(&v, s + i, 8);
        h = (h ^ v) * 0x100000001B3ull;
        h ^= h >> 29;
    }
    uint64_t v = 0;
    for (int k = 0; i < n; i++, k += 8)
        v |= (uint64_t)s[i] << k;
    h = (h ^ v) * 0xff51afd7ed558ccdull;
    h ^= h >> 32;
    return h;
}
static inline uint64_t mc__tok_hash64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* ---- the tokenizer ---------------------------------------------------------- */
typedef struct mc__merge_slot {
    uint64_t key; /* (left << 32 | right) + 1; 0 = empty */
    int32_t rank;
    int32_t result;
} mc__merge_slot;

struct mc_tok {
    int type; /* enum mc_tok_type */
    int pre;  /* enum mc__pre (BPE) */
    char pre_name[32];
    int32_t n_vocab;
    /* stored texts (as in the vocabulary) */
    char *text_pool;   /* all texts, back to back */
    uint64_t *text_off; /* (n_vocab+1) */
    /* decoded pieces (bytes a token stands for) */
    char *piece_pool;
    uint64_t *piece_off; /* (n_vocab+1) */
    float *scores;      /* (n_vocab) */
    uint8_t *attr;      /* (n_vocab) enum mc_tok_attr */
    uint8_t *eog;       /* (n_vocab) end-of-generation */
    /* stored text -> id; last id wins for duplicates, as in llama.cpp */
    int32_t *text_ht;
    uint64_t text_ht_mask;
    /* BPE merges: (left id, right id) -> rank, result id */
    mc__merge_slot *merge_ht;
    uint64_t merge_ht_mask;
    int32_t byte_tok[256]; /* token of each byte (-1 if none) */
    /* special tokens in matching order (longest text first) */
    int32_t *special_ids;
    int32_t n_special;
    /* quick "which specials occur in this text" filter: specials of 2+ bytes
     * bucketed by their first two bytes (sp_start has 65537 entries, values
     * index sp_ids: positions in special_ids), 1-byte ones flagged in sp_one */
    uint32_t *sp_start;
    int32_t *sp_ids;
    int32_t sp_one[256]; /* position in special_ids of a 1-byte special, or -1 */
    int32_t special[MC_TOK_N_SPECIAL];
    bool add_bos, add_eos, add_space_prefix, ignore_merges;
    pthread_key_t tls; /* per-thread cache (struct mc__tok_tls) */
    bool tls_ok;
};

int32_t mc__tok_lookup(const mc_tok *t, const char *s, size_t n);
static inline const char *mc__tok_piece(const mc_tok *t, int32_t id, size_t *n) {
    *n = (size_t)(t->piece_off[id + 1] - t->piece_off[id]);
    return t->piece_pool + t->piece_off[id];
}

#endif
