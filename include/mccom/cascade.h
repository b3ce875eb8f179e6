/* mccom/cascade.h — MCCom's request path: the small model (SLM) answers
 * first, the large model (LLM) only when the small one is unsure or rejected,
 * and then it starts from the small model's work.
 *
 *   tier 0:    the copy tier (copy.h, when a copy index is set and `copy` is
 *              on): the lines that followed the lines above the cursor
 *              elsewhere in the file or repository. A top proposal whose
 *              calibrated precision is at least tau_copy is shown at once
 *              (path "copy": no model runs, the SLM's KV cache is untouched).
 *              Otherwise the proposals are candidates: the SLM scores each
 *              (its log-probability after the same prompt) and the pick rule
 *              (copy_w, copy_theta) chooses between them and its own line. A
 *              copy line is never escalated by confidence routing (its precision
 *              was already weighed): it is shown, and a rejection escalates.
 *   suggest:   retrieval round 1 (query: the last retr_query_lines lines above
 *              the cursor's line) → SLM greedy line (healed prompt, stops at the
 *              end of the line) → confidence = mean p of its first n_conf
 *              tokens; below tau (routing on, an LLM available) → escalate now.
 *   escalate:  retrieval round 2 (query: the last retr_query_lines/2 lines above
 *              plus the SLM's completed line) → two-stage speculative decoding
 *              on the LLM: stage 1 verifies the SLM's line as a draft in one
 *              pass (longest agreeing prefix kept, plus the LLM's own next
 *              token); stage 2, while the line is unfinished, the SLM drafts
 *              draft_k tokens after what the LLM has so far and the LLM verifies
 *              them, repeating; when a round's draft was mostly rejected, the
 *              next draft may come from prompt lookup (mc_copy_lookup) instead.
 *              The stage-1 draft is the most likely local line the user did not
 *              reject: the SLM's line or a copy candidate (by the SLM's
 *              log-probability). The LLM's line equals its plain greedy line for
 *              the same prompt (gen.h); only the latency differs.
 *   sessions:  per document, the user-action state machine of docs/cascade.md:
 *              a shown suggestion survives typing that matches it
 *              (type-through), ends on accept or cursor move, and is rejected by
 *              a diverging keystroke, Esc or an explicit re-ask — which
 *              escalates when the SLM had answered (with a non-empty line: an
 *              empty one showed nothing, and typing on just drops it).
 *
 * Prompts (both models, each with its own token budget): [retrieved windows as
 * comment blocks (mc_retr_prompt), most similar last] + [the file's text above
 * the cursor, cut on the left at a line boundary to fit]. The cut moves in
 * steps of 8 lines, so that while the user types the prompt's prefix stays the
 * same and the SLM's KV cache computes only the new characters. A cursor
 * inside a word is healed (mc_tok_heal): the model sees whole words only.
 *
 * Threads: a cascade and its sessions are used by one thread at a time (the
 * caller serializes requests, and updates the retrieval index only between
 * them; the cascade syncs the copy index with it at the start of a request);
 * a cancel flag may be set from any thread.
 *
 * Not here: transport (llm.h, remote.h), editor protocol (lsp), scoring (eval).
 */
#ifndef MCCOM_CASCADE_H
#define MCCOM_CASCADE_H

#include "mccom/common.h"
#include "mccom/copy.h"
#include "mccom/llm.h"
#include "mccom/model.h"
#include "mccom/retr.h"
#include "mccom/tok.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct mc_cascade_params {
    /* routing */
    float tau;             /* escalate at once below this confidence (see docs/eval.md for its calibration) */
    int n_conf;            /* SLM tokens averaged for the confidence (3) */
    /* MCCom's three ideas, each switchable for ablations (all true) */
    bool routing;          /* confidence routing */
    bool speculative;      /* two-stage speculative decoding (false: the LLM decodes alone) */
    bool iterative;        /* retrieval round 2 with the SLM's line (false: round 1's windows) */
    bool retrieval;        /* repository retrieval at all (false: in-file context only) */
    int draft_k;           /* stage-2 draft tokens per round (4) */
    int max_line_tokens;   /* most tokens of one suggestion, per line (48) */
    /* prompts */
    int slm_prompt_tokens; /* SLM prompt budget, retrieved windows included (0: its context -
                              max_line_tokens; never more than context - n_lines * max_line_tokens) */
    int llm_prompt_tokens; /* LLM prompt budget (0: as the SLM's; a given one must leave the LLM's
                              context room for n_lines * max_line_tokens) */
    int retr_tokens;       /* of which at most this many for retrieved windows (1000) */
    int retr_k;            /* windows retrieved per round (10) */
    int retr_query_lines;  /* lines of the round-1 query (20) */
    mc_retr_sim sim;       /* JACCARD, RepoCoder's */
    bool heal;             /* token healing at the cursor (true) */
    /* tier 0: repository copy completion (copy.h) */
    bool copy;             /* the copy tier at all (true; it needs a copy index) */
    float tau_copy;        /* show the top copy proposal at once, no model, when its calibrated
                              precision is at least this (0.5; > 1: never) */
    int copy_k;            /* copy candidates the SLM scores (4) */
    float copy_w;          /* pick rule: a candidate's score is logit(precision) + copy_w ·
                              (its mean SLM log-probability per token - that of the SLM's own
                              line); the best candidate ... (0: the copy order stands) */
    float copy_theta;      /* ... replaces the SLM's line when its score is at least this
                              (-1e9: always). Calibrated on the calibration repositories
                              (docs/eval.md) */
    bool copy_below;       /* the document's text below the cursor may be copied (true: an
                              editor's buffer; the evaluation's documents end at the cursor) */
    int lookup_min;        /* prompt-lookup drafts need a match of at least this many of the
                              last tokens, 1..4 (2: a one-token match is mostly noise, and a
                              rejected draft costs an LLM call) */
    /* The large model's time per request (10000 ms; 0: none beyond the tier's
     * own per-call timeout): every LLM call of one request — stage 1, stage-2
     * rounds, retries inside the tier, a confidence escalation and a later
     * escalation of the same request (mc_cascade_doc.llm_deadline_ns) —
     * shares it. It starts at the request's first LLM call; once spent, no
     * further call is made (MC_ETIMEOUT) and the SLM's line stands. */
    int llm_budget_ms;
} mc_cascade_params;

mc_cascade_params mc_cascade_params_default(void);

/* A completion request: a document and a cursor. */
typedef struct mc_cascade_doc {
    const char *path;  /* relative to the index's root (leakage filter, comment syntax); may be NULL */
    const char *text;  /* the document (need not be NUL-terminated) */
    size_t len;
    size_t cursor;     /* byte offset of the cursor, <= len */
    int line;          /* 0-based line of the cursor in the file, or -1: counted from text.
                          (The evaluation passes it: its prompts are cut files.) */
    int n_lines;       /* lines to complete: 0 or 1 the rest of the cursor's line; n > 1
                          also the n-1 lines after it (statement-level tasks) */
    int64_t llm_deadline_ns; /* 0: this is a new request (its LLM budget starts at its first
                          LLM call); else the deadline (mc_time_ns) of the request this
                          call continues — the st.llm_deadline_ns of its suggestion — so
                          that, e.g., `complete --reject` after a failed confidence
                          escalation does not get a second budget */
} mc_cascade_doc;

/* How a suggestion came to be. */
typedef enum mc_cascade_path {
    MC_PATH_SLM = 0,        /* the small model's line */
    MC_PATH_CONFIDENCE = 1, /* escalated at once: the SLM's confidence was below tau */
    MC_PATH_REJECTION = 2,  /* escalated after the user rejected the SLM's line (or re-asked) */
    MC_PATH_LLM = 3,        /* the large model alone (evaluation baselines) */
    MC_PATH_COPY = 4,       /* the copy tier's proposal, shown at once: no model ran */
} mc_cascade_path;

#define MC_CASCADE_N_PATHS 5

/* "slm", "confidence", "rejection", "llm", "copy" */
const char *mc_cascade_path_name(int path);

/* Where the text of a suggestion came from (mc_suggestion.source). */
enum { MC_SRC_SLM = 0, MC_SRC_LLM = 1, MC_SRC_COPY = 2 };

/* What one request cost: times in milliseconds, counts in tokens. */
typedef struct mc_cascade_stats {
    double ms_retr1, ms_slm, ms_retr2, ms_llm; /* ms_llm: every LLM call, network included, plus
                                                  the SLM's stage-2 drafting */
    double ms_llm_server;     /* model time the LLM tier reported */
    double ms_copy;           /* the copy tier's proposal (and sync) */
    double ms_total;          /* the whole request */
    int copy_candidates;      /* copy proposals considered (0: none, or the tier is off) */
    int copy_scored;          /* of which the SLM scored */
    int slm_prompt_tokens, slm_reused, slm_tokens;
    int llm_calls, llm_prompt_tokens, llm_tokens; /* llm_calls: failed ones too */
    int llm_attempts;         /* requests the tier sent for those calls, retries included */
    int64_t llm_deadline_ns;  /* when this request's LLM budget ends (0: no LLM call yet) */
    int draft_tokens;         /* offered to the LLM, both stages */
    int draft_accepted;       /* of which accepted */
    int stage1_accepted;      /* SLM line tokens the LLM accepted in stage 1 */
    int stage2_rounds;
    int lookup_tokens;        /* stage-2 draft tokens that came from prompt lookup (copy.h) */
    int lookup_accepted;      /* of which accepted */
    int retr1_windows, retr2_windows; /* windows placed in the prompts */
    bool llm_failed;          /* an escalation failed: the SLM's line stands */
    bool unverified;          /* the LLM tier could not verify drafts (plain completion) */
    int64_t bytes_sent, bytes_received;
} mc_cascade_stats;

typedef struct mc_suggestion {
    uint64_t id;              /* unique within the cascade */
    char *text;               /* the rest of the line after the cursor (n_lines lines: with
                                 '\n' between them); NUL-terminated, owned */
    size_t len;
    int source;               /* MC_SRC_SLM, MC_SRC_LLM or MC_SRC_COPY (a copy proposal, shown
                                 at once or picked over the SLM's own line) */
    int path;                 /* enum mc_cascade_path */
    float confidence;         /* the SLM's confidence in the shown line (mean p of its first
                                 n_conf tokens; for a picked copy line, of that line), or -1
                                 when the SLM did not run */
    /* the copy line shown (source MC_SRC_COPY), for the account; else precision -1 */
    float copy_precision;     /* its calibrated precision (copy.h) */
    int copy_context;         /* lines of context it matched */
    char copy_file[256];      /* where it was copied from, and its 0-based line */
    int copy_line;
    mc_cascade_stats st;
    /* For a later escalation of an SLM line: the SLM's tokens and the cursor's
     * line text before the cursor. Owned. */
    int32_t *slm_ids;
    int n_slm_ids;
    char *slm_text;           /* the SLM's line (== text when source is the SLM); NULL when
                                 the SLM did not run (path copy) */
    char *draft_text;         /* the stage-1 draft of an escalation when it is not the SLM's
                                 line (a copy candidate or the copy line shown), or NULL; owned */
    char *copy_top;           /* the top copy proposal (whether shown or not), or NULL; owned */
} mc_suggestion;

void mc_suggestion_fini(mc_suggestion *s);

typedef struct mc_cascade mc_cascade;

/* A cascade over the SLM `slm` (borrowed) with its tokenizer `tok` (borrowed;
 * the LLM shares it), an optional LLM tier `llm` (borrowed; NULL: local only)
 * and an optional retrieval index `ix` (borrowed; NULL: no retrieval). The
 * SLM's context is created with `slm_ctx` (NULL: defaults) and owned. */
int mc_cascade_new(const mc_cascade_params *p, mc_model *slm, const mc_tok *tok, mc_llm *llm,
                   mc_retr_index *ix, const mc_ctx_params *slm_ctx, mc_cascade **out,
                   mc_err *err);
void mc_cascade_free(mc_cascade *c);
/* Replace the parameters (validated; MC_EINVAL leaves the old ones). */
int mc_cascade_set_params(mc_cascade *c, const mc_cascade_params *p, mc_err *err);
const mc_cascade_params *mc_cascade_get_params(const mc_cascade *c);
/* Swap the LLM tier or the index (borrowed; NULL removes). */
void mc_cascade_set_llm(mc_cascade *c, mc_llm *llm);
void mc_cascade_set_index(mc_cascade *c, mc_retr_index *ix);
/* The copy index of tier 0 (borrowed; NULL removes the tier). It must follow
 * the cascade's retrieval index; the cascade syncs it before each request. */
void mc_cascade_set_copy(mc_cascade *c, mc_copy_index *cx);

/* The SLM's suggestion at the cursor, with confidence routing. On success
 * `out` is filled (caller calls mc_suggestion_fini). MC_ECANCELED when the
 * flag was raised; an LLM failure is not an error (st.llm_failed, with the
 * failed calls' time, count and bytes in st). */
int mc_cascade_suggest(mc_cascade *c, const mc_cascade_doc *d, const volatile int *cancel,
                       mc_suggestion *out, mc_err *err);

/* Escalate: the LLM's line for the same document and cursor, starting from
 * `prev` (a local suggestion from mc_cascade_suggest for this cursor: its
 * draft_text, else its slm_ids, is the stage-1 draft; its SLM line, else its
 * copy line, joins the round-2 query). `path`
 * is what is recorded (MC_PATH_REJECTION, or MC_PATH_CONFIDENCE). Without an
 * available LLM: MC_ENET / MC_EUNSUPPORTED and out zeroed. When the LLM
 * fails (MC_ETIMEOUT once the request's budget is spent), out has no text but
 * out->st records what the attempt cost (ms_llm, llm_calls, llm_attempts,
 * bytes, llm_deadline_ns, ms_total). */
int mc_cascade_escalate(mc_cascade *c, const mc_cascade_doc *d, const mc_suggestion *prev,
                        int path, const volatile int *cancel, mc_suggestion *out, mc_err *err);

/* Baselines for the evaluation: the LLM alone (no SLM, no draft), with
 * `rounds` of retrieval: 0 in-file context only, 1 one round (RepoCoder's
 * vanilla RAG), 2 RepoCoder's iterative retrieval (generate, retrieve again
 * with the generated line, generate again: two LLM calls). */
int mc_cascade_llm_only(mc_cascade *c, const mc_cascade_doc *d, int rounds,
                        const volatile int *cancel, mc_suggestion *out, mc_err *err);

/* The text of the prompt the cascade gives a model of `budget` tokens for d
 * (round-1 retrieval when ix is not NULL and p->retrieval), without running a
 * model: *block (malloc'd, caller frees; NULL when nothing was retrieved) then
 * d->text[*above_start, d->cursor). Tokenized whole (with BOS where the
 * vocabulary asks for it) it is the SLM's prompt before healing. For
 * training-data generators (tools/mkexamples), which must see exactly the
 * prompts the cascade builds. */
int mc_cascade_prompt_text(const mc_cascade_params *p, const mc_tok *tok, const mc_retr_index *ix,
                           const mc_cascade_doc *d, int budget, char **block, size_t *block_len,
                           size_t *above_start, mc_err *err);

/* The copy tier alone (the evaluation's `copy` mode): the top copy proposal
 * for the cursor, path MC_PATH_COPY, source MC_SRC_COPY, whatever its
 * precision; an empty text when there is none. No model runs. MC_EUNSUPPORTED
 * without a copy index. */
int mc_cascade_copy_only(mc_cascade *c, const mc_cascade_doc *d, mc_suggestion *out, mc_err *err);

/* ---- sessions: the user-action state machine (docs/cascade.md) ------------ */

typedef struct mc_session mc_session;

typedef struct mc_session_stats {
    int64_t requests;       /* suggestion requests */
    int64_t reused;         /* answered from a live suggestion (type-through) */
    int64_t shown_slm, shown_llm, shown_copy;       /* by source */
    int64_t accepted_slm, accepted_llm, accepted_copy;
    int64_t typed_through;  /* keystrokes that matched a shown suggestion */
    int64_t rejected;       /* diverging keystrokes, Esc, re-asks */
    int64_t escalated_confidence, escalated_rejection;
    int64_t llm_failures;
} mc_session_stats;

mc_session *mc_session_new(mc_cascade *c);
void mc_session_free(mc_session *s);

/* A suggestion for the document's cursor.
 *   - If the shown suggestion is still alive for this cursor (the document
 *     is unchanged before the point where it was shown, and the user typed its
 *     first bytes since), it is returned shortened, without running a model.
 *   - If a rejection is pending (a diverging keystroke, Esc or a re-ask on
 *     this line), the request escalates: the SLM's line for this cursor (reused
 *     when the cursor is where it was shown, else computed again) goes to the
 *     LLM (path MC_PATH_REJECTION).
 *   - Otherwise the cascade runs (mc_cascade_suggest, routing included).
 * The result becomes the shown suggestion. *out points into the session
 * (valid until the next session call). */
int mc_session_request(mc_session *s, const mc_cascade_doc *d, const volatile int *cancel,
                       const mc_suggestion **out, mc_err *err);

/* The shown suggestion (its text shortened by type-through), or NULL. */
const mc_suggestion *mc_session_current(const mc_session *s);

/* The user typed `text` at the shown suggestion's cursor (an explicit event;
 * mc_session_request also detects type-through from the document itself).
 * Returns 1 when it matched the suggestion's beginning (the suggestion stays,
 * shortened), 0 when it diverged: the suggestion is rejected and, if the SLM
 * had answered, an escalation is pending for the next request on this line.
 * Without a shown suggestion: 0. */
int mc_session_typed(mc_session *s, const char *text, size_t n);

/* The user accepted `n` bytes of the shown suggestion (all of it with n =
 * its length: it is gone; a partial accept, word by word, keeps the rest). */
void mc_session_accepted(mc_session *s, size_t n);

/* Esc / explicit rejection of the shown suggestion (an escalation is pending
 * for the next request on this line if the SLM had answered with a non-empty
 * line). */
void mc_session_rejected(mc_session *s);

/* The cursor moved elsewhere: the shown suggestion is dropped, nothing is
 * pending any more. */
void mc_session_cursor_moved(mc_session *s);

/* Whether the next request on this line escalates. */
bool mc_session_pending(const mc_session *s);

/* Escalate now for the document's cursor, as after an explicit re-ask: marks
 * the shown SLM suggestion rejected and runs mc_session_request. MC_ENOTFOUND
 * when no SLM suggestion was shown or pending on this line. */
int mc_session_escalate(mc_session *s, const mc_cascade_doc *d, const volatile int *cancel,
                        const mc_suggestion **out, mc_err *err);

void mc_session_get_stats(const mc_session *s, mc_session_stats *st);

#endif
