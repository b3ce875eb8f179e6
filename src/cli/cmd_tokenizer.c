/* `mccom tokenizer train`: learn a byte-level BPE vocabulary from source code. */
#include "cli.h"
#include "mccom/tok.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: mccom tokenizer train --vocab N --out TOK.gguf [--hf tokenizer.json]\n"
               "                             [--threads N] [--min-count N] FILES/DIRS...\n\n"
               "Trains a byte-level BPE vocabulary of N tokens (6 special tokens: "
               "<|endoftext|>,\n"
               "<|fim_prefix|>, <|fim_middle|>, <|fim_suffix|>, <|fim_pad|>, <|file_sep|>; the\n"
               "256 bytes; merges) with the qwen2 pre-tokenizer, deterministically. Writes a\n"
               "vocabulary-only GGUF (loads in llama.cpp) and the same vocabulary as a Hugging\n"
               "Face tokenizer.json (default: tokenizer.json next to --out).\n"
               "  --vocab N       vocabulary size (default 16384)\n"
               "  --threads N     word-counting threads (default 2)\n"
               "  --min-count N   stop when the best pair occurs fewer times (default 2)\n");
}

int mc_cmd_tokenizer(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "train") != 0) {
        usage(argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) ? stdout : stderr);
        return argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) ? 0 : 2;
    }
    mc_tok_train_params p = mc_tok_train_default();
    p.progress = true;
    const char *out = NULL, *hf = NULL;
    const char **paths = calloc((size_t)argc + 1, sizeof(char *));
    int n_paths = 0;
    if (!paths)
        return 1;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            free(paths);
            return 0;
        } else if (!strcmp(argv[i], "--vocab") && i + 1 < argc)
            p.vocab_size = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "--hf") && i + 1 < argc)
            hf = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            p.n_threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--min-count") && i + 1 < argc)
            p.min_pair_count = atoll(argv[++i]);
        else if (argv[i][0] == '-') {
            fprintf(stderr, "mccom tokenizer train: unknown option '%s'\n", argv[i]);
            free(paths);
            return 2;
        } else
            paths[n_paths++] = argv[i];
    }
    if (!out || n_paths == 0 || p.vocab_size < 262) {
        usage(stderr);
        free(paths);
        return 2;
    }
    char hfbuf[4096];
    if (!hf) {
        const char *slash = strrchr(out, '/');
        int dl = slash ? (int)(slash - out) : 0;
        snprintf(hfbuf, sizeof hfbuf, "%.*s%stokenizer.json", dl, out, slash ? "/" : "");
        hf = hfbuf;
    }
    mc_err err;
    mc_tok_trainer *t = mc_tok_trainer_new(&p);
    int status = 1;
    int64_t bytes = 0;
    double t0 = mc_time_s();
    if (!t) {
        fprintf(stderr, "mccom tokenizer train: out of memory\n");
    } else if (mc_tok_trainer_add_paths(t, paths, n_paths, &bytes, &err) != 0) {
        mc_cli_error("counting words", &err);
    } else {
        double t1 = mc_time_s();
        fprintf(stderr, "counted %.1f MB in %.1f s (%.1f MB/s), %lld distinct words\n",
                (double)bytes / 1e6, t1 - t0, (double)bytes / 1e6 / (t1 - t0 + 1e-9),
                (long long)mc_tok_trainer_n_words(t));
        if (mc_tok_trainer_run(t, &err) != 0)
            mc_cli_error("training", &err);
        else if (mc_tok_trainer_write_gguf(t, out, &err) != 0)
            mc_cli_error(out, &err);
        else if (mc_tok_trainer_write_hf(t, hf, &err) != 0)
            mc_cli_error(hf, &err);
        else {
            double el = mc_time_s() - t0;
            fprintf(stderr, "wrote %s and %s: %lld merges; %.1f MB in %.1f s (%.2f MB/s overall)\n",
                    out, hf, (long long)mc_tok_trainer_n_merges(t), (double)bytes / 1e6, el,
                    (double)bytes / 1e6 / (el + 1e-9));
            status = 0;
        }
    }
    mc_tok_trainer_free(t);
    free(paths);
    return status;
}
