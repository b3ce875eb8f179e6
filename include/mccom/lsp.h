/* mccom/lsp.h — `mccom lsp`: the cascade behind the Language Server Protocol.
 *
 * Transport: JSON-RPC 2.0 messages framed by "Content-Length: N\r\n\r\n"
 * headers (LSP base protocol), on stdin/stdout; log lines on stderr.
 *
 * The server answers `textDocument/inlineCompletion` (LSP 3.18) with the
 * cascade's suggestion for the cursor (one item, insertText + an empty range
 * at the cursor) — and, when configured, `textDocument/completion` with the
 * same line as one completion item, for editors without inline completion —
 * and learns what the user did with it through three
 * notifications of its own: `mccom/didShow`, `mccom/didAccept` (whole or
 * partial) and `mccom/didReject` (Esc, or a diverging keystroke). A rejection
 * of the small model's line escalates to the large model; its line is pushed
 * as a `mccom/suggestion` notification and also returned to the next request
 * at that cursor. docs/lsp.md specifies the messages, the configuration and
 * the flow.
 *
 * Threads. The thread that feeds bytes (mc_lsp_server_feed) parses, keeps the
 * documents and answers the cheap requests. One worker thread owns the models,
 * the cascade, the sessions (one per document) and the attached retrieval
 * index, and runs completion jobs one at a time with a cancel flag that
 * $/cancelRequest, a newer request or an edit raises. The repository index is
 * built on a third thread, attached by the worker between jobs; edits reach
 * it through the worker too, so it is never updated while a request runs.
 * Writes of whole messages are serialized by a lock.
 *
 * Robustness: no input ends the server but `exit` (or end of input). A bad
 * frame is dropped with a log line and the reader resynchronizes on the next
 * "Content-Length" header; bad JSON and bad requests get JSON-RPC error
 * responses when they carry an id, a log line otherwise.
 *
 * Not here: the editors' side (editors/nvim/), the remote large-model client
 * (remote.h; the worker builds it from llmUrl/llmApiKey/llmLog).
 */
#ifndef MCCOM_LSP_H
#define MCCOM_LSP_H

#include "mccom/common.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* ---- framing (the base protocol) ------------------------------------------ */

typedef struct mc_lsp_framer mc_lsp_framer;

/* A framer that accepts bodies of at most max_body bytes (0: 64 MiB). */
mc_lsp_framer *mc_lsp_framer_new(size_t max_body);
void mc_lsp_framer_free(mc_lsp_framer *f);

/* Append received bytes (any split: partial headers, several messages).
 * Returns 0 or MC_ENOMEM (the bytes are then lost). */
int mc_lsp_framer_feed(mc_lsp_framer *f, const void *data, size_t n);

/* The next complete message body. Returns 1 with *body and *len set (valid until
 * the next call), 0 when more bytes are needed, or a negative code when bytes
 * were dropped: MC_EFORMAT (malformed header: missing or bad Content-Length,
 * an unsupported charset, a header section over 8 KiB; the framer drops the
 * header section and skips to the next "Content-Length") or MC_ERANGE (a body over the
 * limit; exactly that many bytes are skipped as they arrive). err says what
 * and where (offset: bytes consumed from the stream before the problem). Call
 * again after an error: the framer has resynchronized. Headers may end lines
 * with "\r\n" or "\n"; names are case-insensitive. */
int mc_lsp_framer_next(mc_lsp_framer *f, const char **body, size_t *len, mc_err *err);

/* Bytes consumed from the stream so far (for log lines). */
uint64_t mc_lsp_framer_offset(const mc_lsp_framer *f);

/* Frame a body: *out (malloc'd, caller frees) = header + body. */
int mc_lsp_frame(const char *body, size_t n, char **out, size_t *out_len);

/* ---- positions -------------------------------------------------------------- */

/* How a Position's `character` counts (LSP positionEncoding). Lines are
 * separated by "\n"; a "\r" before it is not part of the line. */
typedef enum mc_lsp_encoding {
    MC_LSP_UTF16 = 0, /* UTF-16 code units (the default of the protocol) */
    MC_LSP_UTF8 = 1,  /* bytes */
    MC_LSP_UTF32 = 2, /* code points */
} mc_lsp_encoding;

const char *mc_lsp_encoding_name(mc_lsp_encoding e); /* "utf-16", "utf-8", "utf-32" */

/* The byte offset of (line, character) in text[0..len). A line past the end
 * gives len; a character past the line's end gives the line's end; a
 * character inside a code point (half a surrogate pair, the middle of a UTF-8
 * sequence) gives that code point's start. Bytes that are not valid UTF-8
 * count as one unit each. */
size_t mc_lsp_offset(const char *text, size_t len, uint32_t line, uint32_t character,
                     mc_lsp_encoding enc);

/* The (line, character) of byte offset `off` (clamped to len; an offset inside
 * a code point counts up to that code point's start). */
void mc_lsp_position(const char *text, size_t len, size_t off, mc_lsp_encoding enc,
                     uint32_t *line, uint32_t *character);

/* ---- the server --------------------------------------------------------------- */

typedef struct mc_lsp_params {
    /* Defaults of the configuration that initializationOptions and
     * workspace/didChangeConfiguration override (docs/lsp.md). Paths are
     * copied. */
    const char *slm_path;       /* small model (GGUF); NULL: none until configured */
    const char *llm_path;       /* large model, in process (GGUF); NULL: none */
    const char *tokenizer_path; /* GGUF whose vocabulary both models use (NULL: the SLM's own) */
    const char *llm_url;        /* remote large model ("none": none, everything stays local) */
    const char *llm_api_key;    /* its bearer token (never logged) */
    const char *llm_log;        /* JSON Lines log of what each escalation sent (NULL: none) */
    float tau;                  /* confidence threshold (the cascade's default 0.5) */
    bool retrieval;             /* repository retrieval (true) */
    bool copy;                  /* tier 0, repository copy completion (true; needs retrieval's
                                   index, which it follows) */
    float tau_copy;             /* show a copy line at once, no model, from this calibrated
                                   precision (the cascade's default 0.5) */
    int debounce_ms;            /* wait before running a model for a request (0) */
    int llm_budget_ms;          /* the large model's time per request, every call of an
                                   escalation included (the cascade's default 10000; 0: none
                                   beyond the tier's per-call timeout) */
    int max_line_tokens;        /* 0: the cascade's default */
    int n_threads;              /* model threads, 0: all cores */
    int n_ctx;                  /* context of each model, 0: min(training, 4096) */
    bool completion;            /* also offer the suggestion through textDocument/completion
                                   (editors without inline completion: Helix, ...) */
    /* Server limits and behaviour. */
    size_t max_message_bytes;   /* largest accepted body (64 MiB) */
    bool load_files;            /* false: never read models or walk directories (fuzzing) */
    int log_level;              /* 0 errors, 1 info (default), 2 debug */
    FILE *log;                  /* NULL: stderr */
    const char *version;        /* serverInfo.version */
} mc_lsp_params;

/* Defaults: no models, tau of the cascade, retrieval and the copy tier on, no debounce, 64 MiB
 * messages, files loaded, info-level log on stderr. */
mc_lsp_params mc_lsp_params_default(void);

/* Where the server's framed output goes: write all n bytes or return < 0. */
typedef int (*mc_lsp_write_fn)(void *ud, const char *data, size_t n);

typedef struct mc_lsp_server mc_lsp_server;

/* A server writing through `write` (called from several threads, never at the
 * same time). Starts the worker thread; loads nothing until `initialize`. */
int mc_lsp_server_new(const mc_lsp_params *p, mc_lsp_write_fn write, void *ud,
                      mc_lsp_server **out, mc_err *err);

/* Cancel every job, stop the threads (waits for an index build in progress),
 * free everything. */
void mc_lsp_server_free(mc_lsp_server *s);

/* Bytes from the client: every complete message is handled before this
 * returns (completions are queued for the worker). Returns 1 once `exit` was
 * received (later bytes are ignored), else 0. Never fails on bad input. */
int mc_lsp_server_feed(mc_lsp_server *s, const void *data, size_t n);

/* Periodic work of the reading thread ($/progress of the index build); call
 * when wake_fd is readable and at least every tick_ms while it is > 0. */
void mc_lsp_server_tick(mc_lsp_server *s);
int mc_lsp_server_tick_ms(const mc_lsp_server *s);
int mc_lsp_server_wake_fd(const mc_lsp_server *s);

/* The process exit status the protocol asks for: 0 when `shutdown` came
 * before `exit` (or the end of input), else 1. */
int mc_lsp_server_exit_code(const mc_lsp_server *s);

/* Serve on in_fd/out_fd until `exit` or end of input; returns the exit status. */
int mc_lsp_run(const mc_lsp_params *p, int in_fd, int out_fd, mc_err *err);

/* ---- a client (tests, benchmarks, tools) ------------------------------------ */

typedef struct mc_lsp_client mc_lsp_client;

/* Start argv[0] with argv (execvp) with pipes on its stdin/stdout; its stderr
 * goes to stderr_path (NULL: inherited). */
int mc_lsp_client_spawn(char *const argv[], const char *stderr_path, mc_lsp_client **out,
                        mc_err *err);
/* Send one framed message with this body / raw bytes. 0 or MC_EIO. */
int mc_lsp_client_send(mc_lsp_client *c, const char *body);
int mc_lsp_client_send_raw(mc_lsp_client *c, const void *data, size_t n);
/* The next message body within timeout_ms (-1: forever): 1 with *body
 * malloc'd (caller frees, NUL-terminated), 0 on timeout, MC_EIO at end of the
 * server's output, MC_EFORMAT for a bad frame from the server. */
int mc_lsp_client_recv(mc_lsp_client *c, int timeout_ms, char **body, size_t *len);
/* Close the server's stdin (end of input). */
void mc_lsp_client_close_input(mc_lsp_client *c);
/* Wait up to timeout_ms for the server to exit: 1 with *status (exit code, or
 * 128 + signal), 0 if still running. */
int mc_lsp_client_wait(mc_lsp_client *c, int timeout_ms, int *status);
/* Kill the server if it still runs, reap it, free. */
void mc_lsp_client_free(mc_lsp_client *c);

#endif
