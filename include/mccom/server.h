/* mccom/server.h — `mccom serve`: one model behind HTTP (libmicrohttpd, JSON
 * through jansson), usually the cascade's large model.
 *
 * Endpoints (all JSON; errors are {"error": {"message", "type", "param",
 * "code"}} with a 4xx/5xx status, "param" naming the field at fault or null,
 * "code" the HTTP status; no error ends the server):
 *
 *   POST /v1/completions   OpenAI's legacy completions API.
 *       prompt        string (tokenized with BOS if the vocabulary adds one,
 *                     special tokens recognised), or array of token ids (used
 *                     as they are); one prompt: n must be 1
 *       max_tokens    int >= 0 (16)          temperature  number >= 0 (1.0; 0 = greedy)
 *       top_k         int, -1/0 = off (vLLM)  top_p        (0,1] (1.0)
 *       seed          int                     stop         string or array of <= 8 strings
 *       logprobs      int 0..20 or null: top alternatives per generated token
 *       echo          bool: the prompt is part of the returned text (and of logprobs)
 *       stream        bool: server-sent events, one chunk per token, then a
 *                     chunk with "finish_reason" and "usage", then "data: [DONE]"
 *       prompt_logprobs int 0..20 (vLLM extension): per prompt position, the
 *                     actual token's logprob and rank plus the top alternatives,
 *                     in vLLM's shape: choices[0].prompt_logprobs = [null,
 *                     {"<id>": {"logprob": x, "rank": r, "decoded_token": s}, ...}, ...]
 *                     (the actual token's rank is its vocabulary rank, 1 + the
 *                     tokens strictly more likely; alternatives are ranked 1..k)
 *       model, user, n (=1), best_of (=1), frequency_penalty/presence_penalty (=0)
 *                     accepted; any other field, or an unsupported value, is a 400
 *                     naming the field. null means "the default" for every field.
 *     → {"id", "object": "text_completion", "created", "model",
 *        "choices": [{"index": 0, "text", "logprobs": null | {"tokens",
 *        "token_logprobs", "top_logprobs", "text_offset"}, "finish_reason":
 *        "stop" | "length"}], "usage": {"prompt_tokens", "completion_tokens",
 *        "total_tokens"}}
 *       logprobs as OpenAI's: top_logprobs maps token text to logprob for the
 *       best alternatives plus the chosen token; with echo the first prompt
 *       token's entries are null; text_offset is in bytes of "text" (vLLM's
 *       convention); a token that is not valid UTF-8 alone is "bytes:\xNN..".
 *       A prompt plus max_tokens that exceed the context is a 400 (as vLLM).
 *
 *   POST /infill           llama.cpp's fill-in-the-middle request shape:
 *       input_prefix, input_suffix (strings), input_extra ([{"filename", "text"}]),
 *       prompt (string, after the FIM middle token), n_predict (int; -1, the
 *       default, and anything larger are cut to what the context holds, as
 *       llama.cpp does), temperature (0.8), top_k (40), top_p (0.95), seed,
 *       stop, stream, model
 *     → {"content", "stop": true, "model", "tokens_predicted", "tokens_evaluated",
 *        "tokens_cached", "stopped_eos", "stopped_word", "stopped_limit",
 *        "stopping_word", "timings": {...}}; a stream is {"content", "stop":
 *        false} events, then that object with "content": "" (no [DONE]).
 *       The prompt is [BOS]<|fim_prefix|>PREFIX<|fim_suffix|>SUFFIX<|fim_middle|>PROMPT,
 *       each input_extra chunk before it as "<|file_sep|>FILENAME\nTEXT" (just
 *       TEXT when the vocabulary has no file separator); the text parts are
 *       tokenized without special-token parsing, the FIM tokens inserted by id.
 *       A vocabulary without FIM tokens gets a 400.
 *
 *   POST /v1/verify        draft verification (mccom's; DESIGN.md):
 *       prompt        string or array of ids     draft  string or array of ids (may be empty;
 *                                                a string is tokenized on its own, without
 *                                                BOS: send ids when the boundary matters)
 *       max_tokens    int >= 0: model tokens after the accepted prefix (16)
 *       stop          string or array            stop_at_newline  bool (false)
 *       n_lines       int 1..1024: with stop_at_newline, end at the n-th newline (1)
 *       heal          string: the healing constraint (gen.h)  logprobs  int 0..20 (0)
 *       model         string, ignored
 *     → {"object": "verify", "model", "accepted": k, "n_draft", "tokens": [ids
 *        after the prompt: accepted draft prefix, then the model's own],
 *        "token_logprobs": [...], "top_logprobs": [[{"id", "logprob"}, ...]
 *        per token] (if logprobs > 0), "text", "finish_reason": "length" |
 *        "newline" | "stop" | "eog" | "ctx_full", "timings": {"queue_ms",
 *        "prompt_ms", "gen_ms", "n_reused", "n_computed", "n_passes"},
 *        "usage": {...}}
 *       Greedy always; the result equals greedy decoding without a draft.
 *       A prompt plus max_tokens that exceed the context is a 400; a draft
 *       that does not fit is shortened (ctx_full ends such a request).
 *
 *   GET /v1/models         {"object": "list", "data": [{"id", "object": "model",
 *                           "owned_by": "mccom", "max_model_len"}]}
 *   GET /health            {"status": "ok", "server": "mccom", "model", "slots", "queued"}
 *   GET /metrics           Prometheus text: requests by endpoint and status
 *                          (499: the client left first), prompt/cached/generated/
 *                          draft/accepted tokens, cancellations, latency
 *                          histograms, queue length.
 *
 * Execution: requests are parsed and validated on libmicrohttpd's threads and
 * queued; one engine thread runs them in order over `n_slots` contexts (KV
 * caches), each request on the slot whose cached tokens share the longest
 * prefix with its prompt, if that prefix is at least half the prompt (else
 * the least recently used slot), so clients that repeat a prompt prefix
 * compute only the new tail. A client that disconnects cancels its request,
 * queued (it leaves the queue at once) or running (generation stops within a
 * forward pass).
 *
 * Security: binds 127.0.0.1 unless told otherwise; binding any other address
 * requires an API key, then checked on every request but GET /health (which
 * reveals nothing and must answer load balancers that cannot send keys, as
 * llama.cpp's does): "Authorization: Bearer KEY", constant-time compare; 401
 * otherwise. Request bodies are limited in size (413) and JSON nesting depth
 * (400, checked before parsing); every field is type-checked.
 *
 * Hostile clients (slowloris, floods of huge prompts). One thread serves each
 * connection, so connections are a resource the server guards itself:
 *   - a connection must deliver a complete request (headers and body) within
 *     request_timeout_s of opening, or of its previous answer (keep-alive
 *     idling included), plus one second per 16 KiB of body received (a large
 *     upload over a slow link is not cut off; Apache's mod_reqtimeout has the
 *     same rule); the server closes it otherwise, however slowly it trickles
 *     bytes (libmicrohttpd's own timeout only measures silence) — unless
 *     bytes it sent are still unread (the server, not the client, is behind);
 *   - at most max_connections are open, at most max_connections_per_ip from
 *     one address; a new connection at a limit closes a connection that is
 *     still waiting for its request (a real client sends it in milliseconds):
 *     at the per-address limit the longest-waiting one of that address, at
 *     the global limit the longest-waiting one of the address holding the
 *     most connections (fair shares: a flood from a few addresses closes its
 *     own connections, not those of a client with one or two); it is refused
 *     only when every connection concerned is busy with a real request;
 *   - headers are limited to libmicrohttpd's 32 KiB connection pool;
 *   - a memory budget (max_inflight_bytes) bounds what requests in flight
 *     may hold: each reserves 3 × its body (the body, the parsed JSON) plus
 *     64 KiB from its Content-Length, or as a chunked body grows, until it is
 *     answered; a request that does not fit gets 429 with "Retry-After: 1"
 *     (its body is read and dropped, so that the client sees the answer); a
 *     full queue gets 503 with "Retry-After: 1";
 *   - prompts are measured before they are tokenized (api.c): bytes first,
 *     then the tokenizer stops at the context's limit.
 * So /health and a completion stay reachable while N slow connections are
 * held open, and peak memory is bounded by the budget, not by the clients
 * (tests/test_server.c; bench/serve_hostile.sh measures both). /metrics
 * counts what the defences closed (mccom_connections_*_total).
 * Limits of this design: a slow reader of a long answer holds its thread
 * (libmicrohttpd's 60 s idle timeout and the streaming stall limit apply);
 * many addresses at once can still fill max_connections with busy requests,
 * which the queue bounds (max_queue: 503).
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
    int max_queue;           /* waiting requests beyond this get 503 (64; >= 1) */
    int max_connections;     /* open client connections (256) */
    int max_connections_per_ip; /* open connections from one address (64) */
    int request_timeout_s;   /* to deliver a complete request, from opening or the previous
                                answer (10) */
    size_t max_inflight_bytes; /* memory budget of requests in flight (64 MiB; >= max_body * 3) */
    const char *model_name;  /* the id clients see (NULL: the file's general.name, else
                                "mccom"; `mccom serve` passes the file's basename) */
    int verbose;             /* log one line per request to stderr */
} mc_server_params;

mc_server_params mc_server_params_default(void);

typedef struct mc_server mc_server;

/* Start serving `m` (tokenizer `tok`; both borrowed, must outlive the
 * server) on background threads; the parameters' strings are copied. Errors:
 * MC_EINVAL (non-loopback host without an API key, a host that does not
 * resolve, bad parameters), MC_EIO (cannot bind), MC_ENOMEM, or the error of
 * creating a slot's context. On failure *out is NULL and nothing is left
 * running. */
int mc_server_start(mc_model *m, const mc_tok *tok, const mc_server_params *p, mc_server **out,
                    mc_err *err);
/* The port actually bound (the free port chosen when params.port was 0). */
int mc_server_port(const mc_server *s);
/* Stop accepting, cancel queued and running requests (their clients get a
 * 503, or an error event on a stream), join every thread, free. NULL is a
 * no-op. */
void mc_server_stop(mc_server *s);

#endif
