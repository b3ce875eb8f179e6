/* `mccom generate -m MODEL.gguf -p TEXT [-n N] [--temp T] [--top-k K] [--top-p P]
 *  [--seed S] [-t THREADS] [--ctx N]`: stream a continuation, then a timing line. */
#include "cli.h"
#include "mccom/model.h"
#include "mccom/tok.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: mccom generate -m MODEL.gguf -p TEXT [options]\n\n"
            "Continues TEXT with the model and prints the text as it is generated, then a\n"
            "timing line on stderr (prompt and decode tokens/s).\n\n"
            "  -m, --model FILE   GGUF model (llama or qwen2; f32/f16/bf16/q8_0/q4_0)\n"
            "  -p, --prompt TEXT  the prompt\n"
            "  -n N               tokens to generate (default 64)\n"
            "  --temp T           temperature; 0 = greedy (default 0)\n"
            "  --top-k K          sample from the K most likely tokens (default 40)\n"
            "  --top-p P          nucleus sampling threshold (default 1 = off)\n"
            "  --seed S           random seed for sampling (default 1)\n"
            "  -t, --threads N    threads (default: all cores)\n"
            "  --ctx N            context size (default: min(training context, 4096))\n");
}

int mc_cmd_generate(int argc, char **argv) {
    const char *model_path = NULL, *prompt = NULL;
    int n_gen = 64;
    mc_sampler samp = {0.0f, 40, 1.0f, 1};
    mc_ctx_params cp = mc_ctx_params_default();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "mccom generate: %s needs a value (or unknown option)\n", a);
            return 2;
        }
        i++;
        char *end = NULL;
        if (!strcmp(a, "-m") || !strcmp(a, "--model"))
            model_path = v;
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt"))
            prompt = v;
        else if (!strcmp(a, "-n"))
            n_gen = (int)strtol(v, &end, 10);
        else if (!strcmp(a, "--temp"))
            samp.temperature = strtof(v, &end);
        else if (!strcmp(a, "--top-k"))
            samp.top_k = (int)strtol(v, &end, 10);
        else if (!strcmp(a, "--top-p"))
            samp.top_p = strtof(v, &end);
        else if (!strcmp(a, "--seed"))
            samp.rng = strtoull(v, &end, 10);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads"))
            cp.n_threads = (int)strtol(v, &end, 10);
        else if (!strcmp(a, "--ctx"))
            cp.n_ctx = (int)strtol(v, &end, 10);
        else {
            fprintf(stderr, "mccom generate: unknown option '%s'\n", a);
            return 2;
        }
        if (end && *end) {
            fprintf(stderr, "mccom generate: bad number '%s' for %s\n", v, a);
            return 2;
        }
    }
    if (!model_path || !prompt || n_gen < 0 || cp.n_threads < 0 || cp.n_ctx < 0) {
        usage(stderr);
        return 2;
    }
    mc_err err;
    mc_model *m = NULL;
    mc_tok *tok = NULL;
    mc_ctx *c = NULL;
    int32_t *ids = NULL;
    void *work = NULL;
    int status = 1;
    if (mc_model_load(model_path, &m, &err) != 0) {
        mc_cli_error(model_path, &err);
        goto out;
    }
    if (mc_tok_load_gguf(mc_model_gguf(m), &tok, &err) != 0) {
        mc_cli_error("tokenizer", &err);
        goto out;
    }
    if (mc_ctx_new(m, &cp, &c, &err) != 0) {
        mc_cli_error("context", &err);
        goto out;
    }
    int64_t n_prompt = 0;
    size_t plen = strlen(prompt);
    int64_t cap = (int64_t)plen + 8;
    ids = malloc((size_t)(cap + n_gen + 1) * sizeof(int32_t));
    work = malloc(mc_sampler_work_size(mc_model_hparams(m)->n_vocab));
    if (!ids || !work || mc_tok_encode(tok, prompt, plen, MC_TOK_ADD_BOS, ids, cap, &n_prompt) != 0) {
        fprintf(stderr, "mccom generate: cannot tokenize the prompt\n");
        goto out;
    }
    if (n_prompt == 0 || n_prompt + n_gen > mc_ctx_n_ctx(c)) {
        fprintf(stderr, "mccom generate: %lld prompt tokens + %d exceed the %d-token context\n",
                (long long)n_prompt, n_gen, mc_ctx_n_ctx(c));
        goto out;
    }
    fputs(prompt, stdout);
    fflush(stdout);
    double t0 = mc_time_s();
    if (mc_ctx_decode(c, ids, (int)n_prompt, 0, &err) != 0) {
        mc_cli_error("decode", &err);
        goto out;
    }
    double t1 = mc_time_s();
    mc_tok_stream st;
    mc_tok_stream_init(&st, 0);
    char piece[512];
    int n_done = 0;
    for (; n_done < n_gen; n_done++) {
        int32_t t = mc_sample(&samp, mc_ctx_logits_last(c), mc_model_hparams(m)->n_vocab, work);
        if (mc_tok_is_eog(tok, t))
            break;
        int len = mc_tok_stream_push(tok, &st, t, piece, sizeof piece);
        if (len > 0)
            fwrite(piece, 1, (size_t)len, stdout);
        fflush(stdout);
        if (n_done + 1 < n_gen && mc_ctx_decode(c, &t, 1, 0, &err) != 0) {
            mc_cli_error("decode", &err);
            goto out;
        }
    }
    int len = mc_tok_stream_flush(&st, piece, sizeof piece);
    if (len > 0)
        fwrite(piece, 1, (size_t)len, stdout);
    fputc('\n', stdout);
    double t2 = mc_time_s();
    int n_decoded = n_done > 0 ? n_done - (n_done == n_gen) : 0;
    fprintf(stderr, "prompt: %lld tokens, %.1f tok/s | decode: %d tokens, %.1f tok/s | threads %d (0 = all cores)\n",
            (long long)n_prompt, (double)n_prompt / (t1 - t0), n_done,
            n_decoded > 0 ? (double)n_decoded / (t2 - t1) : 0.0, cp.n_threads);
    status = 0;
out:
    free(ids);
    free(work);
    mc_ctx_free(c);
    mc_tok_free(tok);
    mc_model_free(m);
    return status;
}
