/* Fuzz target: the tokenizer loaders and the encoder.
 * The first byte picks what the rest is:
 *   0: a llama2.c tokenizer.bin, loaded, then used on a fixed text and itself;
 *   1: a GGUF file, opened and loaded as a vocabulary, then used likewise;
 *   2..: text, encoded with every real vocabulary (loaded once from
 *        $MC_SHARED or ../shared; skipped if absent) with and without special
 *        tokens, then decoded, streamed and healed; the round trip must hold
 *        for bytes the vocabulary can represent. */
#include "fuzz.h"
#include "mccom/gguf.h"
#include "mccom/tok.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void exercise(const mc_tok *t, const uint8_t *data, size_t size) {
    static const char fixed[] = "def f(x):\n    return x  # héllo 🦙 <|endoftext|>\r\n";
    int32_t ids[4096];
    int64_t n = 0;
    char dec[1 << 16];
    for (int pass = 0; pass < 2; pass++) {
        const char *s = pass ? (const char *)data : fixed;
        size_t len = pass ? MC_MIN(size, (size_t)2048) : sizeof fixed - 1;
        for (int flags = 0; flags < 4; flags++) {
            /* count only, as callers size their buffer (out NULL, cap 0) */
            mc_tok_encode(t, s, len, flags, NULL, 0, &n);
            int rc = mc_tok_encode(t, s, len, flags, ids, 4096, &n);
            if (rc != 0 && rc != MC_EFULL)
                continue;
            int64_t k = MC_MIN(n, (int64_t)4096);
            mc_tok_decode(t, ids, k, MC_TOK_DECODE_SPECIAL, dec, sizeof dec);
            mc_tok_stream st;
            mc_tok_stream_init(&st, 0);
            for (int64_t i = 0; i < k; i++)
                if (mc_tok_stream_push(t, &st, ids[i], dec, sizeof dec) < 0)
                    break;
            mc_tok_stream_flush(&st, dec, sizeof dec);
        }
        mc_tok_heal_result h;
        mc_tok_heal(t, s, len, 0, 0, ids, 4096, &h);
    }
}

static mc_tok *g_vocab[8];
static int g_loaded;

static void load_real(void) {
    if (g_loaded)
        return;
    g_loaded = 1;
    const char *dir = getenv("MC_SHARED") ? getenv("MC_SHARED") : "../shared";
    static const char *names[] = {"starcoder", "deepseek-coder", "qwen2",    "gpt-2",
                                  "llama-bpe", "llama-spm",      "refact"};
    for (int i = 0; i < 7; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/tokenizers/ggml-vocab-%s.gguf", dir, names[i]);
        mc_err err;
        if (mc_tok_load_gguf_file(path, &g_vocab[i], &err) != 0)
            g_vocab[i] = NULL;
    }
}

static int fuzz_tok(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    /* a private copy of exactly `size` bytes so any overread is caught */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    mc_err err;
    mc_tok *t = NULL;
    if (mode == 0) {
        if (mc_tok_load_llama2c_mem(copy, size, 0, &t, &err) == 0) {
            exercise(t, copy, size);
            mc_tok_free(t);
        }
    } else if (mode == 1) {
        mc_gguf *g = NULL;
        if (mc_gguf_open_mem(copy, size, &g, &err) == 0) {
            if (mc_tok_load_gguf(g, &t, &err) == 0) {
                exercise(t, copy, size);
                mc_tok_free(t);
            }
            mc_gguf_close(g);
        }
    } else {
        load_real();
        for (int i = 0; i < 7; i++) {
            if (!g_vocab[i])
                continue;
            size_t len = MC_MIN(size, (size_t)4096);
            int32_t ids[8192];
            int64_t n = 0;
            if (mc_tok_encode(g_vocab[i], (const char *)copy, len, 0, ids, 8192, &n) == 0) {
                char dec[1 << 15];
                int64_t dn = mc_tok_decode(g_vocab[i], ids, n, MC_TOK_DECODE_STRIP_PREFIX, dec,
                                           sizeof dec);
                /* byte-level vocabularies with all 256 bytes round-trip anything */
                if (i == 2 || i == 3 || i == 4) {
                    if (dn != (int64_t)len || memcmp(dec, copy, len) != 0)
                        abort();
                }
            }
            exercise(g_vocab[i], copy, size);
        }
    }
    free(copy);
    return 0;
}

MC_FUZZ_TARGET(tok, fuzz_tok)
