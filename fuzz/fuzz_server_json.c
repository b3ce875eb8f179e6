/* Fuzz target: the server's request parser and validator (src/server/api.c),
 * everything `mccom serve` does with a body before the engine sees it.
 * The first byte picks the endpoint (completions, infill, verify); the rest
 * is the body. The vocabulary is a small llama2.c-style one built in memory
 * (byte tokens, a few words, and the FIM tokens, so /infill parses fully),
 * so the target needs no files. A parsed request must satisfy what the engine
 * relies on: a prompt of 1..n_ctx ids in range, a draft in range, max_tokens
 * within the context, at most 8 stop strings. */
#include "fuzz.h"
#include "../src/server/server_internal.h"
#include "mccom/tok.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The test vocabulary: <unk> <s> </s>, the 256 byte tokens, then words and
 * the FIM tokens (found by their text). */
static mc_tok *fuzz_vocab(void) {
    static const char *const words[] = {"▁the", "▁def", "▁return", "(", ")", ":", "▁x",
                                        "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>",
                                        "<|file_sep|>"};
    size_t n_words = sizeof words / sizeof words[0];
    size_t cap = 4 + (3 + 256 + n_words) * 64;
    uint8_t *b = calloc(1, cap);
    if (!b)
        return NULL;
    size_t k = 0;
    int32_t max_len = 16;
    memcpy(b + k, &max_len, 4);
    k += 4;
    for (int i = 0; i < 3 + 256 + (int)n_words; i++) {
        char text[32];
        if (i == 0)
            strcpy(text, "<unk>");
        else if (i == 1)
            strcpy(text, "<s>");
        else if (i == 2)
            strcpy(text, "</s>");
        else if (i < 259)
            snprintf(text, sizeof text, "<0x%02X>", i - 3);
        else
            snprintf(text, sizeof text, "%s", words[i - 259]);
        float score = i < 259 ? 0.0f : -1.0f;
        int32_t len = (int32_t)strlen(text);
        memcpy(b + k, &score, 4);
        memcpy(b + k + 4, &len, 4);
        memcpy(b + k + 8, text, (size_t)len);
        k += 8 + (size_t)len;
    }
    mc_tok *t = NULL;
    mc_tok_load_llama2c_mem(b, k, 0, &t, NULL);
    free(b);
    return t;
}

static int fuzz_server_json(const uint8_t *data, size_t size) {
    static mc_tok *tok;
    if (!tok)
        tok = fuzz_vocab(); /* kept for the process: loading per input would dominate */
    if (!tok || size < 1)
        return 0;
    mc__srv_env env = {tok, (int)mc_tok_n_vocab(tok), 256, 32, mc_tok_max_piece(tok)};
    mc__srv_req rq;
    char param[64];
    mc_err err;
    int kind = data[0] % 3;
    if (mc__srv_parse(kind, (const char *)data + 1, size - 1, &env, &rq, param, sizeof param, &err) == 0) {
        if (rq.n_prompt < 1 || rq.n_prompt > env.n_ctx || rq.max_tokens < 0 ||
            (kind != MC__SRV_INFILL && rq.n_prompt + rq.max_tokens > env.n_ctx) ||
            rq.n_stop > MC__SRV_MAX_STOP || rq.n_draft < 0 || (rq.n_draft > 0 && !rq.draft))
            abort();
        for (int i = 0; i < rq.n_prompt; i++)
            if (rq.prompt[i] < 0 || rq.prompt[i] >= env.n_vocab)
                abort();
        for (int i = 0; i < rq.n_draft; i++)
            if (rq.draft[i] < 0 || rq.draft[i] >= env.n_vocab)
                abort();
        mc__srv_req_fini(&rq);
    } else if (err.msg[0] == '\0' || rq.prompt || rq.n_stop) {
        abort(); /* a failure says why and leaves nothing behind */
    }
    /* the error body for any message is valid JSON */
    size_t len = 0;
    free(mc__srv_error_json(400, err.msg, param, &len));
    return 0;
}

MC_FUZZ_TARGET(server, fuzz_server_json)
