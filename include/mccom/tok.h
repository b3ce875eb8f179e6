/* mccom/tok.h — tokenizers: byte-level BPE and SentencePiece-style vocabularies,
 * loaded from GGUF metadata (or llama2.c's tokenizer.bin), encoding exactly as
 * llama.cpp does; streaming decoding; token healing; a BPE trainer; and the
 * flat token file that `mccom tokenize` writes for training.
 *
 * Supported (tokenizer.ggml.model / tokenizer.ggml.pre):
 *   "gpt2"  byte-level BPE, pre-tokenizers "default", "gpt-2", "starcoder",
 *           "refact", "deepseek-coder", "qwen2", "llama-bpe" (also "llama3");
 *   "llama" SentencePiece-style: score-driven merges of UTF-8 characters,
 *           spaces as U+2581, a space prefix, <0xXX> byte fallback.
 * Anything else is refused with MC_EUNSUPPORTED at load, never mis-tokenized.
 *
 * Exactness: encode() reproduces llama.cpp's llama_tokenize(add_special,
 * parse_special) for valid UTF-8 input. One deliberate difference: llama.cpp
 * replaces invalid UTF-8 bytes by U+FFFD before tokenizing, so its output does
 * not decode back to the input; mccom classifies such a byte as U+FFFD for
 * pre-tokenization (same word boundaries) but keeps the byte itself, so
 * decode(encode(x)) == x for every byte string x (byte-level BPE, and SPM with
 * byte fallback).
 *
 * Unicode categories come from libutf8proc (Unicode 15), whitespace is the
 * Unicode White_Space property, as in llama.cpp.
 *
 * Threads: an mc_tok is immutable after load; encode/decode may run on many
 * threads at once (each thread keeps its own word cache).
 *
 * ---- the token file (`mccom tokenize -o out.bin`), little-endian ----------
 *   offset  size  field
 *   0       8     magic "MCTOKENS"
 *   8       4     u32 version = 1
 *   12      4     u32 bytes per token: 2 if the vocabulary has <= 65536 tokens, else 4
 *   16      8     u64 n_tokens (tokens that follow, separators included)
 *   24      4     u32 separator token id (end-of-text)
 *   28      4     u32 vocabulary size
 *   32      ...   n_tokens tokens (u16 or u32). Every document (input file) is
 *                 followed by one separator token. No BOS is added.
 * The file is replaced crash-safely (mc_file_tmp, include/mccom/file.h: a
 * unique temp file beside OUT, fsync, rename): OUT is the old file or the new
 * one, never a partial one.
 */
#ifndef MCCOM_TOK_H
#define MCCOM_TOK_H

#include "mccom/common.h"
#include "mccom/gguf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mc_tok mc_tok;

enum mc_tok_type {
    MC_TOK_BPE = 1, /* byte-level BPE ("gpt2") */
    MC_TOK_SPM = 2, /* SentencePiece-style ("llama", llama2.c) */
};

/* Token attributes (llama.cpp's token types turned into bits). */
enum mc_tok_attr {
    MC_TOK_ATTR_NORMAL = 1 << 0,
    MC_TOK_ATTR_UNKNOWN = 1 << 1,
    MC_TOK_ATTR_CONTROL = 1 << 2,
    MC_TOK_ATTR_USER_DEFINED = 1 << 3,
    MC_TOK_ATTR_BYTE = 1 << 4,
    MC_TOK_ATTR_UNUSED = 1 << 5,
};

/* Special token roles. */
enum mc_tok_special {
    MC_TOK_BOS = 0,
    MC_TOK_EOS,
    MC_TOK_EOT,
    MC_TOK_UNK,
    MC_TOK_PAD,
    MC_TOK_FIM_PRE,
    MC_TOK_FIM_SUF,
    MC_TOK_FIM_MID,
    MC_TOK_FIM_PAD,
    MC_TOK_FIM_REP,
    MC_TOK_FIM_SEP, /* file separator, "<|file_sep|>" */
    MC_TOK_N_SPECIAL
};

/* Encode flags. */
enum {
    MC_TOK_ADD_BOS = 1 << 0,       /* prepend BOS if the vocabulary asks for it (add_bos) */
    MC_TOK_PARSE_SPECIAL = 1 << 1, /* recognise control tokens ("<|fim_prefix|>") in text */
    MC_TOK_STOP_FULL = 1 << 2,     /* stop once more than cap ids are needed (MC_EFULL; *n_out
                                      is then only a lower bound): for limits on untrusted
                                      text, which need not be tokenized to its end */
};

/* Decode flags. */
enum {
    MC_TOK_DECODE_SPECIAL = 1 << 0,      /* render control tokens as their text (else nothing) */
    MC_TOK_DECODE_STRIP_PREFIX = 1 << 1, /* SPM: drop the space the encoder prefixed to the
                                            first piece (use for whole-text round trips) */
};

/* ---- loading ------------------------------------------------------------ */

/* Build a tokenizer from the tokenizer.ggml.* keys of an open GGUF file.
 * Everything needed is copied: the mc_gguf may be closed afterwards.
 * Errors: MC_ENOTFOUND (no tokenizer keys), MC_ETYPE/MC_EFORMAT (bad arrays,
 * ids out of range), MC_EUNSUPPORTED (model or pre-tokenizer unknown),
 * MC_ENOMEM. On failure *out is NULL. */
int mc_tok_load_gguf(const mc_gguf *g, mc_tok **out, mc_err *err);
/* Convenience: open PATH, load, close. */
int mc_tok_load_gguf_file(const char *path, mc_tok **out, mc_err *err);
/* llama2.c's tokenizer.bin (e.g. tok512.bin): i32 max_token_length, then per
 * token f32 score, i32 len, len bytes. n_vocab is the model's vocabulary size
 * (0: as many tokens as the file holds). BOS=1, EOS=2, bytes at 3..258. */
int mc_tok_load_llama2c(const char *path, int n_vocab, mc_tok **out, mc_err *err);
/* Same over bytes in memory (fuzz target, tests); copied. */
int mc_tok_load_llama2c_mem(const void *data, size_t size, int n_vocab, mc_tok **out,
                            mc_err *err);
void mc_tok_free(mc_tok *tok);

/* ---- queries ------------------------------------------------------------ */
int mc_tok_type(const mc_tok *tok);          /* enum mc_tok_type */
const char *mc_tok_pre_name(const mc_tok *tok); /* "qwen2", ...; "llama" for SPM */
int32_t mc_tok_n_vocab(const mc_tok *tok);
/* Id of a special role, or -1 if the vocabulary has none. */
int32_t mc_tok_special(const mc_tok *tok, int role);
int32_t mc_tok_bos(const mc_tok *tok);
int32_t mc_tok_eos(const mc_tok *tok);
bool mc_tok_add_bos(const mc_tok *tok);
int mc_tok_attr(const mc_tok *tok, int32_t id); /* enum mc_tok_attr bits; 0 if out of range */
/* True for end-of-generation tokens (EOS, EOT, file separator, and control
 * tokens llama.cpp treats as such: "<|endoftext|>", "<|im_end|>", ...). */
bool mc_tok_is_eog(const mc_tok *tok, int32_t id);
/* The vocabulary's text of a token, as stored (byte-level BPE: mapped chars). */
mc_str mc_tok_text(const mc_tok *tok, int32_t id);
/* Id of a token by its stored text, or -1. */
int32_t mc_tok_find(const mc_tok *tok, const char *text, size_t len);

/* ---- encoding ----------------------------------------------------------- */

/* Tokenize text[0..len). Writes at most cap ids to out and sets *n_out to the
 * number of ids the text needs: if that is more than cap, returns MC_EFULL
 * (out holds the first cap) and the caller retries with a bigger buffer.
 * With MC_TOK_STOP_FULL the work stops soon after the cap is passed (between
 * words for byte-level BPE, between special-token fragments for SPM).
 * Returns 0, MC_EFULL or MC_ENOMEM. Thread-safe. */
int mc_tok_encode(const mc_tok *tok, const char *text, size_t len, int flags, int32_t *out,
                  int64_t cap, int64_t *n_out);

/* The most bytes one token of the vocabulary decodes to (control tokens'
 * text included): a text of n bytes needs at least n / this many tokens, a
 * bound to check before tokenizing at all. */
size_t mc_tok_max_piece(const mc_tok *tok);

/* ---- decoding ----------------------------------------------------------- */

/* The bytes of one token (control tokens: empty unless MC_TOK_DECODE_SPECIAL).
 * Returns the length (which may exceed cap: then only cap bytes are written),
 * or MC_EINVAL for an id out of range. Pieces can be partial UTF-8. */
int mc_tok_decode_piece(const mc_tok *tok, int32_t id, int flags, char *buf, size_t cap);
/* Concatenate pieces. Returns the total length (written up to cap) or MC_EINVAL. */
int64_t mc_tok_decode(const mc_tok *tok, const int32_t *ids, int64_t n, int flags, char *buf,
                      size_t cap);

/* Incremental decoding for streaming output: push tokens one at a time and get
 * the bytes that are ready. An incomplete UTF-8 sequence at the end of a step
 * is held back until the token that completes it arrives (or flush). Bytes that
 * can never form valid UTF-8 are passed through as they are. */
typedef struct mc_tok_stream {
    int flags;      /* decode flags */
    int n_pending;  /* held-back bytes */
    bool started;   /* a piece has been emitted (for STRIP_PREFIX) */
    uint8_t pending[4];
} mc_tok_stream;

void mc_tok_stream_init(mc_tok_stream *s, int flags);
/* Decode `id`, write the ready bytes to out (cap >= 260 always suffices for one
 * token of at most 256 bytes). Returns the number of bytes written, MC_EFULL if
 * cap is too small (state unchanged), or MC_EINVAL. */
int mc_tok_stream_push(const mc_tok *tok, mc_tok_stream *s, int32_t id, char *out, size_t cap);
/* Emit whatever is held back (an unfinished sequence, as its raw bytes). */
int mc_tok_stream_flush(mc_tok_stream *s, char *out, size_t cap);

/* ---- token healing -------------------------------------------------------
 * When the cursor is inside a word ("self.assertEq|"), the prompt's last token
 * is an accident of where the text stops: the model would see a split it was
 * never trained on. mc_tok_heal backs off to the start of the last word (the
 * last pre-tokenizer word for BPE; for SPM the run of non-space characters at
 * the end, with its leading space), encodes the text before it, and reports
 * the removed bytes. Generation must then start with tokens whose bytes agree
 * with the removed text: mc_tok_heal_match / mc_tok_heal_mask. */
typedef struct mc_tok_heal_result {
    int64_t n_ids;    /* ids of text[0..keep_len) written to the caller's buffer */
    size_t keep_len;  /* bytes of text kept in the prompt */
    size_t removed_len; /* text[keep_len..len): what the first tokens must reproduce */
} mc_tok_heal_result;

/* Encode text with healing (flags as mc_tok_encode). removed_len is 0 when the
 * text ends on a safe boundary (whitespace, punctuation run ends are still
 * healed: a word is a word). Returns as mc_tok_encode (MC_EFULL: n_ids says how
 * many are needed). max_removed caps the bytes backed off (0: 64). */
int mc_tok_heal(const mc_tok *tok, const char *text, size_t len, int flags, size_t max_removed,
                int32_t *out, int64_t cap, mc_tok_heal_result *res);
/* How token `id` fits the removed text rem[0..n): returns the number of bytes
 * of rem it covers (its whole piece if the piece is a proper prefix of rem,
 * else n when rem is a prefix of the piece), or 0 if it does not fit. An empty
 * rem accepts every non-control token (returns 0 as "covers nothing" — callers
 * test n == 0 first). */
size_t mc_tok_heal_match(const mc_tok *tok, int32_t id, const char *rem, size_t n);
/* mask[i] = 1 for every token that fits rem (mc_tok_heal_match > 0), else 0.
 * mask has mc_tok_n_vocab() entries. Returns the number of allowed tokens. */
int64_t mc_tok_heal_mask(const mc_tok *tok, const char *rem, size_t n, uint8_t *mask);

/* ---- corpus tokenization --------------------------------------------------- */

typedef struct mc_tok_corpus_stats {
    int64_t n_docs, n_skipped; /* files tokenized; unreadable or binary files skipped */
    int64_t n_tokens;          /* separators included */
    int64_t n_bytes;
    double seconds;
} mc_tok_corpus_stats;

/* Tokenize files and directories (recursively, in name order; files with a NUL
 * byte in their first 8 KiB are skipped as binary) into the token file format
 * above, on n_threads threads. The separator is EOS (else EOT). Written
 * crash-safely (file.h); on failure OUT is untouched. */
int mc_tok_corpus_write(const mc_tok *tok, const char *const *paths, int n_paths, int n_threads,
                        const char *out_path, bool progress, mc_tok_corpus_stats *stats,
                        mc_err *err);

/* ---- training ------------------------------------------------------------ */

typedef struct mc_tok_train_params {
    int32_t vocab_size;  /* total, special tokens and the 256 bytes included (default 16384) */
    int n_threads;       /* word counting threads (default 2) */
    int64_t min_pair_count; /* stop merging below this pair frequency (default 2) */
    bool progress;       /* print a progress line to stderr */
} mc_tok_train_params;

mc_tok_train_params mc_tok_train_default(void);

/* Special tokens of a trained vocabulary, ids 0..5, type CONTROL. */
#define MC_TOK_TRAIN_SPECIALS \
    X(0, "<|endoftext|>") X(1, "<|fim_prefix|>") X(2, "<|fim_middle|>") \
    X(3, "<|fim_suffix|>") X(4, "<|fim_pad|>") X(5, "<|file_sep|>")
#define MC_TOK_TRAIN_N_SPECIAL 6
/* The pre-tokenizer of trained vocabularies (llama.cpp implements it exactly). */
#define MC_TOK_TRAIN_PRE "qwen2"

typedef struct mc_tok_trainer mc_tok_trainer;

/* A trainer collects documents (word counts), then learns merges. The input
 * order of documents does not change the result (deterministic). */
mc_tok_trainer *mc_tok_trainer_new(const mc_tok_train_params *p);
void mc_tok_trainer_free(mc_tok_trainer *t);
/* Count the pre-tokenized words of one document (thread-safe against other
 * add_text calls on the same trainer). */
int mc_tok_trainer_add_text(mc_tok_trainer *t, const char *text, size_t len);
/* Count files and directories (recursively; files with NUL bytes in their
 * first 8 KiB are skipped as binary) on n_threads threads. Bytes read are
 * added to *n_bytes if non-NULL. */
int mc_tok_trainer_add_paths(mc_tok_trainer *t, const char *const *paths, int n_paths,
                             int64_t *n_bytes, mc_err *err);
/* Learn merges; afterwards the vocabulary can be written or loaded. */
int mc_tok_trainer_run(mc_tok_trainer *t, mc_err *err);
/* Write a vocabulary-only GGUF (loads in llama.cpp: general.architecture
 * "llama", tokenizer.ggml.*). Both writers replace PATH crash-safely (file.h). */
int mc_tok_trainer_write_gguf(const mc_tok_trainer *t, const char *path, mc_err *err);
/* Write the same vocabulary as a Hugging Face tokenizer.json. */
int mc_tok_trainer_write_hf(const mc_tok_trainer *t, const char *path, mc_err *err);
/* Numbers for reports. */
int64_t mc_tok_trainer_n_words(const mc_tok_trainer *t);  /* distinct words */
int64_t mc_tok_trainer_n_merges(const mc_tok_trainer *t);

#endif
