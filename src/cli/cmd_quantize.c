/* `mccom quantize IN.gguf OUT.gguf TYPE`. */
#include "cli.h"
#include "mccom/convert.h"
#include "mccom/gguf.h"

#include <string.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f, "usage: mccom quantize IN.gguf OUT.gguf q8_0|q4_0|f16|bf16|f32\n\n"
               "Re-encodes the weight matrices of a GGUF model. Norms and biases stay f32;\n"
               "a matrix whose rows are not a whole number of 32-element blocks keeps its\n"
               "type; with q4_0 the output projection is stored as q8_0. The output file\n"
               "appears only when complete.\n");
}

static void progress(void *ud, int64_t done, int64_t total, const char *what) {
    (void)ud;
    if (isatty(2) || done == total)
        fprintf(stderr, "\r[%lld/%lld] %-48.48s%s", (long long)done, (long long)total, what,
                done == total ? "\n" : "");
}

int mc_cmd_quantize(int argc, char **argv) {
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        usage(stdout);
        return 0;
    }
    if (argc != 4) {
        usage(stderr);
        return 2;
    }
    int type = mc_ggml_type_from_name(argv[3]);
    if (type != MC_TYPE_Q8_0 && type != MC_TYPE_Q4_0 && type != MC_TYPE_F16 &&
        type != MC_TYPE_BF16 && type != MC_TYPE_F32) {
        fprintf(stderr, "mccom quantize: unknown type '%s' (q8_0, q4_0, f16, bf16, f32)\n", argv[3]);
        return 2;
    }
    if (!strcmp(argv[1], argv[2])) {
        fprintf(stderr, "mccom quantize: input and output are the same file\n");
        return 2;
    }
    mc_err err;
    double t0 = mc_time_s();
    if (mc_quantize_file(argv[1], argv[2], type, progress, NULL, &err) != 0) {
        mc_cli_error("quantize", &err);
        return 1;
    }
    fprintf(stderr, "wrote %s in %.2f s\n", argv[2], mc_time_s() - t0);
    return 0;
}
