/* `mccom info FILE.gguf`: metadata and tensor table of a GGUF file. */
#include "cli.h"
#include "mccom/gguf.h"

#include <string.h>

int mc_cmd_info(int argc, char **argv) {
    int show_all = 0;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: mccom info [--all] FILE.gguf\n\n"
                   "Checks a GGUF file and prints its metadata (key, type, value) and its\n"
                   "tensor table (name, type, shape, bytes, offset). Arrays are summarised.\n"
                   "  --all   list every tensor (default: the first 40 and a total)\n");
            return 0;
        } else if (!strcmp(argv[i], "--all"))
            show_all = 1;
        else if (!path)
            path = argv[i];
        else {
            fprintf(stderr, "mccom info: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "usage: mccom info [--all] FILE.gguf\n");
        return 2;
    }
    mc_gguf *g;
    mc_err err;
    if (mc_gguf_open(path, &g, &err) != 0) {
        mc_cli_error(path, &err);
        return 1;
    }
    printf("%s: GGUF v%u, %lld key/values, %lld tensors, alignment %u, data at byte %zu\n\n",
           path, mc_gguf_version(g), (long long)mc_gguf_n_kv(g), (long long)mc_gguf_n_tensors(g),
           mc_gguf_alignment(g), mc_gguf_data_offset(g));
    char buf[512];
    for (int64_t i = 0; i < mc_gguf_n_kv(g); i++) {
        mc_str k = mc_gguf_key(g, i);
        mc_gguf_kv_format(g, i, buf, sizeof buf);
        printf("  %-44.*s %-7s %s\n", (int)k.len, k.ptr, mc_gguf_type_name(mc_gguf_kv_type(g, i)),
               buf);
    }
    printf("\n  %-40s %-6s %-24s %12s %12s\n", "tensor", "type", "shape", "bytes", "offset");
    size_t total = 0;
    int64_t n = mc_gguf_n_tensors(g);
    for (int64_t i = 0; i < n; i++) {
        const mc_gguf_tensor *t = mc_gguf_tensor_at(g, i);
        total += t->size;
        if (!show_all && i >= 40)
            continue;
        char shape[64];
        int o = 0;
        for (int d = 0; d < t->n_dims; d++)
            o += snprintf(shape + o, sizeof shape - (size_t)o, d ? " x %lld" : "%lld",
                          (long long)t->ne[d]);
        printf("  %-40.*s %-6s %-24s %12zu %12llu\n", (int)t->name.len, t->name.ptr,
               mc_ggml_type_name(t->type), shape, t->size, (unsigned long long)t->offset);
    }
    if (!show_all && n > 40)
        printf("  ... %lld more (--all lists them)\n", (long long)(n - 40));
    printf("\n  total tensor data: %zu bytes (%.1f MiB)\n", total, (double)total / 1048576.0);
    mc_gguf_close(g);
    return 0;
}
