/* mccom/server.h — `mccom serve`: one model behind HTTP (libmicrohttpd, JSON
 * through jansson), usually the cascade's large model.
 *
 * Endpoints (all JSON; errors are {"error": {"message", "type", "code"}} with a
 * 4xx/5xx status and never end the server):
 *
 *   POST /v1/completions   OpenAI's legacy completions API.
 *       prompt        string, or array of token ids (one prompt; n must be 1)
 *       max_tokens    int >= 0 (16)          temperature  number >= 0 (1.0)
 *       top_k         int, -1/0 = off (vLLM)  top_p        (0,1] (1.0)
 *       seed          int                     stop         string or array of <= 8 strings
 *       logprobs      int 0..20 or null: top alternatives per generated token
 *       echo          bool: the prompt is part of the returned text (and of logprobs)
 *       stream        bool: server-sent events, one chunk per token, then "data: [DONE]"
 *       prompt_logprobs int 0..20 (vLLM extension): per prompt position, the
 *                     actual token's logprob and rank plus the top alternatives,
 *                     in vLLM's shape: choices[0].prompt_logprobs = [null,
 *                     {"<id>": {"logprob": x, "rank": r, "decoded_token": s}, ...}, ...]
 *       model, user, n (=1), best_of (=1), frequency_penalty/presence_penalty (=0)
 *                     accepted; any other field, or an unsupported value, is a 400
 *                     naming the field.
 *     → {"id", "object": "text_completion", "created", "model",
 *        "choices": [{"index": 0, "text", "logprobs": null | {"tokens",
 *        "token_logprobs", "top_logprobs", "text_offset"}, "finish_reason":
 *        "stop" | "length"}], "usage": {"prompt_tokens", "completion_tokens",
 *        "total_tokens"}}
 *
 *   POST /infill           llama.cpp's fill-in-the-middle request shape:
 *       input_prefix, input_suffix (strings), input_extra ([{"filename", "text"}]),
 *       n_predict (int), temperature, top_k, top_p, seed, stop, stream
 *     → {"content", "stop": true, "tokens_predicted", "tokens_evaluated",
 *        "stopped_eos", "stopped_word", "stopped_limit", "timings": {...}}.
 *       The prompt is <|fim_prefix|>PREFIX<|fim_suffix|>SUFFIX<|fim_middle|>,
 *       each input_extra chunk before it as "<|file_sep|>FILENAME\nTEXT"; a
 *       vocabulary without FIM tokens gets a 400.
 *
 *   POST /v1/verify        draft verification (mccom's; DESIGN.md):
 *       prompt        string or array of ids     draft  string or array of ids (may be empty)
 *       max_tokens    int >= 0: model tokens after the accepted prefix (16)
 *       stop          string or array            stop_at_newline  bool (false)
 *       heal          string: the healing constraint (gen.h)  logprobs  int 0..20 (0)
 *     → {"object": "verify", "model", "accepted": k, "n_draft", "tokens": [ids
 *        after the prompt: accepted draft prefix, then the model's own],
 *        "token_logprobs": [...], "top_logprobs": [...] (if logprobs > 0),
 *        "text", "finish_reason": "length" | "newline" | "stop" | "eog" |
 *        "ctx_full", "timings": {"queue_ms", "prompt_ms", "gen_ms", "n_reused",
 *        "n_computed", "n_passes"}, "usage": {...}}
 *       Greedy always; the result equals greedy decoding without a draft.
 *
 *   GET /v1/models         {"object": "list", "data": [{"id", "object": "model",
 *                           "owned_by": "mccom", "max_model_len"}]}
 *   GET /health            {"status": "ok", "server": "mccom", "model", "slots", "queued"}
 *   GET /metrics           Prometheus text: requests by endpoint and status,
 *                          prompt/generated/draft/accepted tokens, cancellations,
 *                          latency histograms, queue length.
 *
 * Execution: requests are parsed and validated on libmicrohttpd's threads and
 * queued; one engine thread runs them in order over `n_slots` contexts (KV
 * caches), each request on the slot whose cached tokens share the longest
 * prefix with its prompt (else the least recently used), so clients that
 * repeat a prompt prefix compute only the new tail. A client that disconnects
 * cancels its request, queued or running.
 *
 * Security: binds 127.0.0.1 unless told otherwise; binding any other address
 * requires an API key, then checked on every request ("Authorization: Bearer
 * KEY", constant-time compare; 401 otherwise). Request bodies are limited in
 * size and JSON nesting depth; every field is type-checked.
 */
#ifndef MCCOM_SERVER_H
#define MCCOM_SERVER_H

#include "mccom/common.h"
#include "mccom/model.h"
#include "mccom/tok.h"

typedef struct mc_server_params {
    const char *host;        /* "127.0.0.1" */
    int port;                /* 8080; 0 = any free port (see mc_server_port) */
    const char *api_key;     /* required when host is not a loopback address */
    int n_slots;             /* KV caches kept for prefix reuse (2) */
    mc_ctx_params ctx;       /* per slot */
    size_t max_body;         /* bytes (1 MiB) */
    int max_json_depth;      /* 32 */
    int max_queue;           /* waiting requests beyond this get 503 (64) */
    const char *model_name;  /* the id clients see (default: the file's basename) */
    int verbose;             /* log one line per request to stderr */
} mc_server_params;

mc_server_params mc_server_params_default(void);

typedef struct mc_server mc_server;

/* Start serving `m` (tokenizer `tok`; both borrowed, must outlive the
 * server) on background threads. Errors: MC_EINVAL (non-loopback host
 * without an API key, bad parameters), MC_EIO (cannot bind), MC_ENOMEM. */
int mc_server_start(mc_model *m, const mc_tok *tok, const mc_server_params *p, mc_server **out,
                    mc_err *err);
/* The port actually bound. */
int mc_server_port(const mc_server *s);
/* Stop accepting, cancel queued and running requests, join threads, free. */
void mc_server_stop(mc_server *s);

#endif
