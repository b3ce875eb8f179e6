/* src/cli/main.c — `mccom COMMAND ...`: dispatch to the subcommands. */
#include "cli.h"

#include <string.h>

static int mc_cmd_version(int argc, char **argv);

static const struct mc_cmd commands[] = {
    {"generate", mc_cmd_generate, "generate text from a prompt with a GGUF model"},
    {"info", mc_cmd_info, "print a GGUF file's metadata and tensor table"},
    {"convert", mc_cmd_convert, "convert a llama2.c checkpoint or a Hugging Face directory to GGUF"},
    {"quantize", mc_cmd_quantize, "re-quantize a GGUF model (q8_0, q4_0, f16, bf16, f32)"},
    {"tokenize", mc_cmd_tokenize, "tokenize a corpus to a token file (or print ids of stdin)"},
    {"tokenizer", mc_cmd_tokenizer, "train a byte-level BPE vocabulary: tokenizer train ..."},
    {"version", mc_cmd_version, "print mccom's version"},
    {"index", mc_cmd_index, "build or update a repository's retrieval index (--watch)"},
    {"retrieve", mc_cmd_retrieve, "retrieve code windows similar to a cursor's context"},
    {"complete", mc_cmd_complete, "complete a line of a repository file through the cascade"},
    {"serve", mc_cmd_serve, "serve a model over HTTP (OpenAI completions, infill, draft verification)"},
    {"lsp", mc_cmd_lsp, "language server: inline completions for editors (docs/lsp.md)"},
    {"eval", mc_cmd_eval, "evaluate the cascade on a RepoEval-format benchmark (report + plots)"},
};


static int mc_cmd_version(int argc, char **argv) {
    (void)argc;
    (void)argv;
    printf("mccom %s\n", MC_CLI_VERSION);
    return 0;
}

void mc_cli_error(const char *what, const mc_err *err) {
    if (err && err->offset >= 0)
        fprintf(stderr, "mccom: %s: %s (at byte %lld)\n", what, err->msg, (long long)err->offset);
    else if (err)
        fprintf(stderr, "mccom: %s: %s\n", what, err->msg[0] ? err->msg : mc_code_message(err->code));
    else
        fprintf(stderr, "mccom: %s\n", what);
}

static void usage(FILE *f) {
    fprintf(f, "mccom — code completion that cascades a local small model with a large one\n\n"
               "usage: mccom COMMAND [ARGS...]   (mccom COMMAND --help for details)\n\n"
               "commands:\n");
    for (size_t i = 0; i < MC_ARRAY_LEN(commands); i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < MC_ARRAY_LEN(commands); i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "mccom: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
