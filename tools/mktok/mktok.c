/* tools/mktok/mktok.c — `mccom tokenize` for the one-shot GPU run
 * (tools/train/gpu-run.sh): the same token files (mc_tok_corpus_write, format
 * in include/mccom/tok.h), in a program that links statically against only the
 * tokenizer, so it runs on a machine without mccom's run-time libraries.
 * Built by `make gpu-tools`; not part of the product.
 *
 *   mktok --vocab V.gguf -o OUT.tok [--threads N] FILES/DIRS...
 */
#include "mccom/tok.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    const char *vocab = NULL, *out = NULL;
    int threads = 0, n_paths = 0;
    const char **paths = calloc((size_t)argc + 1, sizeof *paths);
    if (!paths)
        return 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--vocab") && i + 1 < argc)
            vocab = argv[++i];
        else if (!strcmp(argv[i], "-o") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (argv[i][0] == '-') {
            fprintf(stderr, "mktok: unknown option %s\n"
                            "usage: mktok --vocab V.gguf -o OUT.tok [--threads N] FILES/DIRS...\n",
                    argv[i]);
            free(paths);
            return 2;
        } else
            paths[n_paths++] = argv[i];
    }
    if (!vocab || !out || n_paths == 0) {
        fprintf(stderr, "usage: mktok --vocab V.gguf -o OUT.tok [--threads N] FILES/DIRS...\n");
        free(paths);
        return 2;
    }
    mc_tok *tok = NULL;
    mc_err err;
    mc_err_clear(&err);
    if (mc_tok_load_gguf_file(vocab, &tok, &err) != 0) {
        fprintf(stderr, "mktok: %s: %s\n", vocab, err.msg);
        free(paths);
        return 1;
    }
    mc_tok_corpus_stats st;
    int rc = mc_tok_corpus_write(tok, paths, n_paths, threads, out, false, &st, &err);
    if (rc != 0)
        fprintf(stderr, "mktok: %s: %s\n", out, err.msg);
    else
        fprintf(stderr, "mktok: %s: %lld documents, %.1f MB -> %lld tokens, %.1f MB/s\n", out,
                (long long)st.n_docs, (double)st.n_bytes / 1e6, (long long)st.n_tokens,
                st.seconds > 0 ? (double)st.n_bytes / 1e6 / st.seconds : 0.0);
    mc_tok_free(tok);
    free(paths);
    return rc == 0 ? 0 : 1;
}
