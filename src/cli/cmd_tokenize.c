/* `mccom tokenize`: corpus tokenization to a token file, or ids of stdin. */
#include "cli.h"
#include "mccom/tok.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: mccom tokenize --vocab V.gguf [--threads N] FILES/DIRS... -o OUT.bin\n"
               "       mccom tokenize --vocab V.gguf --print [--special] [--bos] < TEXT\n\n"
               "The first form writes the token file described in include/mccom/tok.h\n"
               "(magic MCTOKENS; u16 tokens if the vocabulary has <= 65536, else u32;\n"
               "each document followed by the end-of-text token). The second prints the\n"
               "ids of stdin on one line (as llama.cpp's tokenizer would give them).\n"
               "  --threads N   worker threads (default 2)\n"
               "  --special     recognise control tokens such as <|fim_prefix|> in text\n"
               "  --bos         add BOS if the vocabulary asks for it\n");
}

static int print_ids(const mc_tok *tok, int flags) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf)
            return 1;
        size_t r = fread(buf + n, 1, cap - n, stdin);
        n += r;
        if (r == 0)
            break;
        if (n == cap) {
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                return 1;
            }
            buf = nb;
        }
    }
    int64_t need = 0, got = 0;
    mc_tok_encode(tok, buf, n, flags, NULL, 0, &need);
    int32_t *ids = malloc(((size_t)need + 1) * sizeof(int32_t));
    if (!ids || mc_tok_encode(tok, buf, n, flags, ids, need, &got) != 0) {
        fprintf(stderr, "mccom tokenize: encoding failed\n");
        free(ids);
        free(buf);
        return 1;
    }
    for (int64_t i = 0; i < got; i++)
        printf(i ? " %d" : "%d", ids[i]);
    printf("\n");
    free(ids);
    free(buf);
    return 0;
}

int mc_cmd_tokenize(int argc, char **argv) {
    const char *vocab = NULL, *out = NULL;
    int threads = 2, flags = 0;
    bool print = false;
    const char **paths = calloc((size_t)argc + 1, sizeof(char *));
    int n_paths = 0;
    if (!paths)
        return 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            free(paths);
            return 0;
        } else if (!strcmp(argv[i], "--vocab") && i + 1 < argc)
            vocab = argv[++i];
        else if (!strcmp(argv[i], "-o") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--print"))
            print = true;
        else if (!strcmp(argv[i], "--special"))
            flags |= MC_TOK_PARSE_SPECIAL;
        else if (!strcmp(argv[i], "--bos"))
            flags |= MC_TOK_ADD_BOS;
        else if (argv[i][0] == '-') {
            fprintf(stderr, "mccom tokenize: unknown option '%s'\n", argv[i]);
            free(paths);
            return 2;
        } else
            paths[n_paths++] = argv[i];
    }
    if (!vocab || (!print && (!out || n_paths == 0))) {
        usage(stderr);
        free(paths);
        return 2;
    }
    mc_tok *tok;
    mc_err err;
    if (mc_tok_load_gguf_file(vocab, &tok, &err) != 0) {
        mc_cli_error(vocab, &err);
        free(paths);
        return 1;
    }
    int status = 0;
    if (print) {
        status = print_ids(tok, flags);
    } else {
        mc_tok_corpus_stats st;
        if (mc_tok_corpus_write(tok, paths, n_paths, threads, out, true, &st, &err) != 0) {
            mc_cli_error(out, &err);
            status = 1;
        } else {
            fprintf(stderr,
                    "%s: %lld documents (%lld skipped), %.1f MB -> %lld tokens (%.3f tokens/byte), "
                    "%.1f MB/s\n",
                    out, (long long)st.n_docs, (long long)st.n_skipped, (double)st.n_bytes / 1e6,
                    (long long)st.n_tokens,
                    st.n_bytes ? (double)st.n_tokens / (double)st.n_bytes : 0.0,
                    st.seconds > 0 ? (double)st.n_bytes / 1e6 / st.seconds : 0.0);
        }
    }
    mc_tok_free(tok);
    free(paths);
    return status;
}
