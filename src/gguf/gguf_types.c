/* ggml tensor type table: block sizes and names (ggml.c's type_traits). */
#include "mccom/gguf.h"

#include <string.h>

struct type_info {
    const char *name;
    int block;
    size_t block_bytes;
};

static const struct type_info types[MC_TYPE_COUNT] = {
    [MC_TYPE_F32] = {"f32", 1, 4},      [MC_TYPE_F16] = {"f16", 1, 2},
    [MC_TYPE_Q4_0] = {"q4_0", 32, 18},  [MC_TYPE_Q4_1] = {"q4_1", 32, 20},
    [MC_TYPE_Q5_0] = {"q5_0", 32, 22},  [MC_TYPE_Q5_1] = {"q5_1", 32, 24},
    [MC_TYPE_Q8_0] = {"q8_0", 32, 34},  [MC_TYPE_Q8_1] = {"q8_1", 32, 36},
    [MC_TYPE_Q2_K] = {"q2_k", 256, 84}, [MC_TYPE_Q3_K] = {"q3_k", 256, 110},
    [MC_TYPE_Q4_K] = {"q4_k", 256, 144}, [MC_TYPE_Q5_K] = {"q5_k", 256, 176},
    [MC_TYPE_Q6_K] = {"q6_k", 256, 210}, [MC_TYPE_Q8_K] = {"q8_k", 256, 292},
    [MC_TYPE_I8] = {"i8", 1, 1},        [MC_TYPE_I16] = {"i16", 1, 2},
    [MC_TYPE_I32] = {"i32", 1, 4},      [MC_TYPE_I64] = {"i64", 1, 8},
    [MC_TYPE_F64] = {"f64", 1, 8},      [MC_TYPE_BF16] = {"bf16", 1, 2},
};

int mc_ggml_type_block(int type) {
    if (type < 0 || type >= MC_TYPE_COUNT)
        return 0;
    return types[type].block;
}

size_t mc_ggml_type_block_bytes(int type) {
    if (type < 0 || type >= MC_TYPE_COUNT)
        return 0;
    return types[type].block_bytes;
}

const char *mc_ggml_type_name(int type) {
    if (type < 0 || type >= MC_TYPE_COUNT || !types[type].name)
        return "?";
    return types[type].name;
}

int mc_ggml_type_from_name(const char *name) {
    for (int t = 0; t < MC_TYPE_COUNT; t++)
        if (types[t].name && !strcasecmp(types[t].name, name))
            return t;
    return -1;
}

size_t mc_ggml_row_size(int type, int64_t n) {
    int b = mc_ggml_type_block(type);
    if (b == 0 || n < 0 || n % b != 0)
        return 0;
    return (size_t)(n / b) * types[type].block_bytes;
}

const char *mc_gguf_type_name(int t) {
    static const char *names[MC_GGUF_TYPE_COUNT] = {"u8",  "i8",     "u16",   "i16", "u32",
                                                    "i32", "f32",    "bool",  "string",
                                                    "array", "u64",  "i64",   "f64"};
    if (t < 0 || t >= MC_GGUF_TYPE_COUNT)
        return "?";
    return names[t];
}
