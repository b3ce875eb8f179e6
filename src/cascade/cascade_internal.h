/* src/cascade/cascade_internal.h — shared between the cascade's files. */
#ifndef MCCOM_CASCADE_INTERNAL_H
#define MCCOM_CASCADE_INTERNAL_H

#include "mccom/cascade.h"
#include "mccom/gen.h"

#include <stdbool.h>

struct mc_cascade {
    mc_cascade_params p;
    mc_model *slm;
    const mc_tok *tok;
    mc_llm *llm;
    mc_retr_index *ix;
    mc_copy_index *cx;   /* tier 0 (NULL: off) */
    mc_ctx *slm_ctx;
    uint64_t next_id;
    /* The SLM prompt of the last suggestion (stage-2 drafting reuses it). */
    uint64_t last_id;
    int32_t *last_prompt;
    int n_last_prompt;
};

/* A model prompt: healed token ids, the healed bytes, what retrieval put in. */
typedef struct mc__prompt {
    int32_t *ids;
    int n;
    char heal[72];   /* mc_tok_heal backs off at most 64 bytes */
    size_t heal_len;
    int n_windows;
    char **files;    /* distinct files of the retrieved windows (for the escalation log) */
    int n_files;
    double ms_retr;
    char *block;         /* the retrieved windows' text (or NULL) ... */
    size_t block_len;
    size_t above_start;  /* ... followed by d->text[above_start, cursor): the prompt's text */
} mc__prompt;

/* What prompt building needs of a cascade (all borrowed; ix may be NULL). */
typedef struct mc__prompt_env {
    const mc_cascade_params *p;
    const mc_tok *tok;
    const mc_retr_index *ix;
} mc__prompt_env;

void mc__prompt_fini(mc__prompt *pr);

/* Build the prompt for `d` within `budget` tokens. Retrieval: none when
 * `round` is 0 (or retrieval is off or there is no index); round 1 queries the
 * lines above the cursor; round 2 adds `draft_line` (the completed line) to
 * the query. */
int mc__prompt_build_env(const mc__prompt_env *env, const mc_cascade_doc *d, int budget, int round,
                         const char *draft_line, size_t draft_len, mc__prompt *out, mc_err *err);
int mc__prompt_build(mc_cascade *c, const mc_cascade_doc *d, int budget, int round,
                     const char *draft_line, size_t draft_len, mc__prompt *out, mc_err *err);

/* tier0.c — the copy tier. Proposals for the request (none when the tier is
 * off or has no index; a failure of the tier other than MC_ENOMEM is none). */
int mc__copy_propose(mc_cascade *c, const mc_cascade_doc *d, int k, mc_copy_result *out,
                     double *ms, mc_err *err);
/* Record a copy candidate in a suggestion: as its shown text (`shown`) and as
 * its copy_top (if not set yet). */
int mc__copy_take(mc_suggestion *out, const mc_copy_cand *cc, bool shown);
/* After the SLM's line g for prompt pr: score the candidates with the SLM,
 * apply the pick rule (the shown text becomes a copy line, or stays the
 * SLM's), and choose the stage-1 draft of a later escalation. */
int mc__copy_pick(mc_cascade *c, const mc__prompt *pr, const mc_gen_result *g,
                  const mc_copy_result *cr, int n_lines, mc_suggestion *out, mc_err *err);

/* 64-bit FNV-1a of bytes (the session's document fingerprints). */
uint64_t mc__hash(const char *s, size_t n);

#endif
