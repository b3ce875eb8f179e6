/* `mccom convert llama2c MODEL.bin TOK.bin OUT.gguf` (and, later, `hf`). */
#include "cli.h"
#include "mccom/convert.h"

#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: mccom convert llama2c MODEL.bin TOKENIZER.bin OUT.gguf\n\n"
               "Converts a llama2.c checkpoint and its tokenizer to an F32 GGUF model\n"
               "(architecture llama, SentencePiece-style vocabulary) that mccom and\n"
               "llama.cpp load. Quantize it afterwards with `mccom quantize`.\n");
}

int mc_cmd_convert(int argc, char **argv) {
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        usage(stdout);
        return 0;
    }
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
