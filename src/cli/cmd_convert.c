/* `mccom convert llama2c MODEL.bin TOK.bin OUT.gguf` and
 * `mccom convert hf DIR OUT.gguf [--type T] [--vocab V.gguf] [--pre NAME]`. */
#include "cli.h"
#include "mccom/convert.h"
#include "mccom/gguf.h"

#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: mccom convert llama2c MODEL.bin TOKENIZER.bin OUT.gguf\n"
               "       mccom convert hf DIR OUT.gguf [--type f32|f16|bf16] [--vocab V.gguf]\n"
               "                                     [--pre NAME] [-q]\n\n"
               "llama2c: a llama2.c checkpoint and its tokenizer to an F32 GGUF model\n"
               "(architecture llama, SentencePiece-style vocabulary).\n\n"
               "hf: a Hugging Face model directory (config.json with LlamaForCausalLM or\n"
               "Qwen2ForCausalLM, model.safetensors or a sharded model.safetensors.index.json,\n"
               "tokenizer.json) to GGUF architecture llama or qwen2. Llama q/k rows are\n"
               "permuted to llama.cpp's rope order.\n"
               "  --type T      2-D weights as f32, f16 or bf16 (default: f32 stays f32,\n"
               "                f16 and bf16 become f16); norms and biases are always f32\n"
               "  --vocab V     copy the tokenizer.* keys of the GGUF file V (e.g. the\n"
               "                vocab.gguf of `mccom tokenizer train`) instead of reading\n"
               "                tokenizer.json: identical tokenization by construction\n"
               "  --pre NAME    byte-level pre-tokenizer to record (qwen2, llama-bpe, gpt-2,\n"
               "                starcoder, deepseek-coder, refact) when tokenizer.json's\n"
               "                cannot be recognised (qwen2, llama-bpe, gpt-2 and starcoder are)\n"
               "  -q            no progress output\n\n"
               "OUT is replaced only when complete (a temp file beside it, fsync, rename).\n"
               "Both load in mccom\n"
               "and llama.cpp; quantize afterwards with `mccom quantize`.\n");
}

struct progress {
    double t0, last;
    int quiet, shown;
};

/* A progress line on stderr once a conversion takes more than a second. */
static void on_progress(void *ud, int64_t done, int64_t total, const char *what) {
    struct progress *p = ud;
    double now = mc_time_s();
    if (p->quiet || (now - p->t0 < 1.0 && !p->shown) || (now - p->last < 0.5 && done < total))
        return;
    p->last = now;
    p->shown = 1;
    if (!strcmp(what, "writing"))
        fprintf(stderr, "\rconvert: %lld tensors ready, writing the file...%20s\n",
                (long long)total, "");
    else
        fprintf(stderr, "\rconvert: %lld/%lld tensors (%.0f s) %-40.40s", (long long)done,
                (long long)total, now - p->t0, what);
}

static int convert_hf(int argc, char **argv) {
    mc_convert_hf_params p = mc_convert_hf_default();
    const char *pos[2] = {NULL, NULL};
    int n_pos = 0;
    struct progress pr = {mc_time_s(), 0, 0, 0};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "--type") || !strcmp(a, "--vocab") || !strcmp(a, "--pre")) &&
            i + 1 >= argc) {
            fprintf(stderr, "convert: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--type")) {
            const char *t = argv[++i];
            p.out_type = mc_ggml_type_from_name(t);
            if (p.out_type != MC_TYPE_F32 && p.out_type != MC_TYPE_F16 &&
                p.out_type != MC_TYPE_BF16) {
                fprintf(stderr,
                        "convert: --type %s: use f32, f16 or bf16 (then `mccom quantize` "
                        "for q8_0/q4_0)\n",
                        t);
                return 2;
            }
        } else if (!strcmp(a, "--vocab")) {
            p.vocab_gguf = argv[++i];
        } else if (!strcmp(a, "--pre")) {
            p.pre = argv[++i];
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            pr.quiet = 1;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "convert: unknown option %s\n", a);
            usage(stderr);
            return 2;
        } else if (n_pos < 2) {
            pos[n_pos++] = a;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (n_pos != 2) {
        usage(stderr);
        return 2;
    }
    p.progress = on_progress;
    p.ud = &pr;
    mc_err err;
    if (mc_convert_hf(pos[0], pos[1], &p, &err) != 0) {
        if (pr.shown)
            fputc('\n', stderr);
        mc_cli_error("convert hf", &err);
        return 1;
    }
    if (!pr.quiet)
        fprintf(stderr, "wrote %s in %.2f s\n", pos[1], mc_time_s() - pr.t0);
    return 0;
}

int mc_cmd_convert(int argc, char **argv) {
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        usage(stdout);
        return 0;
    }
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
    if (argc >= 2 && !strcmp(argv[1], "hf"))
        return convert_hf(argc, argv);
    if (argc != 5 || strcmp(argv[1], "llama2c") != 0) {
        usage(stderr);
        return 2;
    }
    mc_err err;
    double t0 = mc_time_s();
    if (mc_convert_llama2c(argv[2], argv[3], argv[4], &err) != 0) {
        mc_cli_error("convert", &err);
        return 1;
    }
    fprintf(stderr, "wrote %s in %.2f s\n", argv[4], mc_time_s() - t0);
    return 0;
}
