/* mccom/convert.h — model file conversion: llama2.c checkpoints and Hugging
 * Face model directories (safetensors) to GGUF, and GGUF re-quantization.
 *
 * Files written here use llama.cpp's standard architecture keys and tensor
 * names, so they load in llama.cpp as well as in mccom.
 *
 * ---- safetensors (Hugging Face's weight files), little-endian -------------
 *   offset  size  field
 *   0       8     u64 N: length of the JSON header (at most 100 MiB, as the
 *                 reference implementation allows)
 *   8       N     UTF-8 JSON object, usually padded with spaces to a multiple
 *                 of 8:
 *                   "NAME": {"dtype": "F32", "shape": [d0, d1, ...],
 *                            "data_offsets": [begin, end]}    (one per tensor)
 *                   "__metadata__": {"key": "value", ...}     (optional,
 *                                                              strings only)
 *   8+N     ...   the data section: tensor bytes, row-major, outermost
 *                 dimension first (PyTorch order), little-endian
 *   begin/end are relative to the data section. end - begin must equal
 *   product(shape) * sizeof(dtype); the tensors must tile the data section
 *   exactly (no overlap, no hole, no trailing bytes), as the reference
 *   implementation requires. There is no alignment guarantee.
 * A sharded checkpoint is a directory with model.safetensors.index.json
 * ({"metadata": {...}, "weight_map": {"NAME": "model-00001-of-00002.safetensors",
 * ...}}) and the files it names; a single one has model.safetensors.
 *
 * The reader checks every field of every file before anything is used; bad
 * input gets MC_EFORMAT (MC_EUNSUPPORTED for a well-formed but unknown dtype)
 * with the file, the tensor, the field and a byte offset (err->offset: from
 * the start of that file) in the message, never a crash.
 */
#ifndef MCCOM_CONVERT_H
#define MCCOM_CONVERT_H

#include "mccom/common.h"

/* Convert a llama2.c checkpoint (legacy "version 0" format: 7 int32 header
 * fields dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (negative
 * when the classifier is not shared with the embedding), seq_len; then f32
 * weights) and its tokenizer (tok*.bin: i32 max_token_length, then per token
 * f32 score, i32 length, bytes) to an F32 GGUF with architecture "llama" and
 * a SentencePiece-style ("llama") vocabulary. Every size is checked against
 * the file; the output appears at out_path only when complete. */
int mc_convert_llama2c(const char *model_path, const char *tok_path, const char *out_path,
                       mc_err *err);

/* Progress callback: called after each tensor with (done, total). */
typedef void (*mc_progress_fn)(void *ud, int64_t done, int64_t total, const char *what);

/* Re-quantize a GGUF model to `type` (MC_TYPE_Q8_0, MC_TYPE_Q4_0, MC_TYPE_F16,
 * MC_TYPE_BF16 or MC_TYPE_F32). 2-D weight matrices are converted; 1-D
 * tensors (norms, biases) stay f32; a matrix whose row length is not a
 * multiple of the block size keeps its type. With Q4_0, the output matrix
 * (output.weight, or token_embd.weight when tied) is written as Q8_0, since
 * it dominates quality at a small cost in size. Metadata is copied and
 * general.file_type set. */
int mc_quantize_file(const char *in_path, const char *out_path, int type, mc_progress_fn progress,
                     void *ud, mc_err *err);

/* ---- safetensors reader -------------------------------------------------- */

#define MC_ST_MAX_DIMS 8

typedef struct mc_st_tensor {
    const char *name;  /* NUL-terminated, owned by the mc_safetensors */
    const char *dtype; /* "F32", "F16", "BF16", "I64", ... (a static string) */
    int type;          /* ggml type id (MC_TYPE_F32/F16/BF16/F64/I8/I16/I32/I64), or -1 for
                          dtypes ggml has no id for (BOOL, U8, U16, U32, U64, F8_*) */
    int elem_size;     /* bytes per element */
    int n_dims;        /* 0 (a scalar) .. MC_ST_MAX_DIMS */
    int64_t shape[MC_ST_MAX_DIMS]; /* outermost first, as in the file; unused dims 1 */
    int64_t n_elem;
    size_t size;          /* bytes */
    uint64_t file_offset; /* of the first byte, from the start of its file */
    const void *data;     /* inside the mapping; NOT aligned in general (use memcpy) */
    int file;             /* index of the file that holds it (mc_safetensors_file_name) */
} mc_st_tensor;

typedef struct mc_safetensors mc_safetensors;

/* Open and check one .safetensors file (read-only mmap). On failure *out is
 * NULL and err says what and where. */
int mc_safetensors_open(const char *path, mc_safetensors **out, mc_err *err);
/* Same over bytes in memory; the caller keeps `data` alive and unchanged while
 * the mc_safetensors lives (tests, fuzz target). */
int mc_safetensors_open_mem(const void *data, size_t size, mc_safetensors **out, mc_err *err);
/* A model directory: model.safetensors.index.json and every file its
 * weight_map names (each checked; a tensor must be in exactly the file the
 * map says, and every mapped tensor must exist), else model.safetensors. */
int mc_safetensors_open_dir(const char *dir, mc_safetensors **out, mc_err *err);
/* Unmap and free. NULL is a no-op. */
void mc_safetensors_close(mc_safetensors *st);

/* Tensors of all files, sorted by name. */
int64_t mc_safetensors_n_tensors(const mc_safetensors *st);
/* NULL if i is out of range / no tensor has that name. */
const mc_st_tensor *mc_safetensors_tensor_at(const mc_safetensors *st, int64_t i);
const mc_st_tensor *mc_safetensors_find(const mc_safetensors *st, const char *name);
int mc_safetensors_n_files(const mc_safetensors *st);
/* The path a file was opened from ("<memory>" for open_mem). */
const char *mc_safetensors_file_name(const mc_safetensors *st, int file);
/* Bytes of tensor data in all files. */
uint64_t mc_safetensors_data_bytes(const mc_safetensors *st);

/* ---- Hugging Face directory -> GGUF --------------------------------------- */

typedef struct mc_convert_hf_params {
    int out_type;          /* 2-D weights: -1 keep (f32 stays f32, f16 and bf16 become f16),
                              or MC_TYPE_F32 / MC_TYPE_F16 / MC_TYPE_BF16. 1-D tensors (norms,
                              biases) are always f32, as the engine and llama.cpp want */
    const char *vocab_gguf; /* non-NULL: copy the tokenizer.* keys of this GGUF file instead
                               of reading tokenizer.json (identical tokenization by
                               construction) */
    const char *pre;        /* non-NULL: tokenizer.ggml.pre to write, overriding detection */
    mc_progress_fn progress; /* optional: after each tensor; what = tensor name, and once
                                more with what = "writing" before the file is written */
    void *ud;
} mc_convert_hf_params;

/* Defaults: keep types, tokenizer.json, detected pre-tokenizer, no progress. */
mc_convert_hf_params mc_convert_hf_default(void);

/* Convert a Hugging Face model directory (config.json with architectures
 * LlamaForCausalLM or Qwen2ForCausalLM, safetensors weights, tokenizer.json)
 * to GGUF architecture "llama" or "qwen2" with llama.cpp's keys and tensor
 * names. Llama q_proj/k_proj rows are permuted from Hugging Face's
 * rotate-half order to llama.cpp's adjacent-pair order (qwen2 keeps NeoX
 * order, no permutation). The tokenizer becomes tokenizer.ggml.model "gpt2"
 * (byte-level BPE only) with the pre-tokenizer detected from tokenizer.json
 * ("qwen2" for Qwen2 models and mccom's own vocabularies, "llama-bpe",
 * "gpt-2", "starcoder"), or p->pre, else MC_EUNSUPPORTED naming --pre; or it
 * is copied from p->vocab_gguf. Unknown tensors, rope_scaling, biases the
 * engine cannot use and shapes that disagree with config.json are refused
 * with a message naming the field. Converted tensors are staged in an
 * unlinked scratch file beside out_path (bounded memory for big models); the
 * output is written to OUT.tmp and renamed, so out_path is either the old
 * file or the complete new one. */
int mc_convert_hf(const char *dir, const char *out_path, const mc_convert_hf_params *p,
                  mc_err *err);

#endif
