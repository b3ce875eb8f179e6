/* mccom/convert.h — model file conversion: llama2.c checkpoints to GGUF, and
 * GGUF re-quantization.
 *
 * Files written here use llama.cpp's standard architecture keys and tensor
 * names, so they load in llama.cpp as well as in mccom.
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

#endif
