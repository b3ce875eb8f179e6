/* src/cascade/session.c — the per-document user-action state machine
 * (docs/cascade.md):
 *
 *   IDLE --request--> SHOWN(copy | slm | llm)  [tier 0 and confidence routing inside request]
 *   SHOWN --typed matching / request at cursor+k with the typed bytes--> SHOWN (shortened)
 *   SHOWN --typed all of it / accepted--> IDLE
 *   SHOWN(copy | slm) --diverging keystroke / Esc / re-ask--> PENDING (this line)
 *   SHOWN(empty) --diverging keystroke / Esc--> IDLE  [nothing was shown]
 *   SHOWN(llm) --diverging keystroke / Esc--> IDLE
 *   PENDING --request on the same line--> SHOWN(llm)  [escalation, path rejection]
 *   any --cursor moved (other line, or text before the shown point edited)--> IDLE
 *
 * A suggestion is identified by where it was shown: the cursor offset and a
 * hash of the document before it. The session never owns the document; the
 * caller passes it with every request. */
#include "cascade_internal.h"

#include <stdlib.h>
#include <string.h>

struct mc_session {
    mc_cascade *c;
    bool has_cur;
    mc_suggestion cur;    /* the shown suggestion, full text */
    mc_suggestion view;   /* what callers see: cur with its text advanced by `typed` */
    size_t shown_at;      /* cursor offset where cur.text[0] goes */
    uint64_t shown_hash;  /* hash of the document before shown_at */
    int shown_line;
    size_t typed;         /* bytes of cur.text typed or accepted since */
    /* the SLM's suggestion at the same place, kept for an escalation */
    bool has_slm;
    mc_suggestion slm;
    size_t slm_at;
    uint64_t slm_hash;
    bool pending;
    int pending_line;
    mc_session_stats st;
};

mc_session *mc_session_new(mc_cascade *c) {
    if (!c)
        return NULL;
    mc_session *s = calloc(1, sizeof *s);
    if (s)
        s->c = c;
    return s;
}

static void drop_cur(mc_session *s) {
    if (s->has_cur)
        mc_suggestion_fini(&s->cur);
    s->has_cur = false;
    s->typed = 0;
}

static void drop_slm(mc_session *s) {
    if (s->has_slm)
        mc_suggestion_fini(&s->slm);
    s->has_slm = false;
}

void mc_session_free(mc_session *s) {
    if (!s)
        return;
    drop_cur(s);
    drop_slm(s);
    free(s);
}

static void make_view(mc_session *s) {
    s->view = s->cur;
    s->view.text = s->cur.text + s->typed;
    s->view.len = s->cur.len - s->typed;
}

const mc_suggestion *mc_session_current(const mc_session *s) {
    return s && s->has_cur ? &s->view : NULL;
}

/* A suggestion made on this machine (the SLM's line or a copy line): the
 * user's rejection of it escalates. */
static bool local(const mc_suggestion *g) { return g->source != MC_SRC_LLM; }

static void count_shown(mc_session_stats *st, const mc_suggestion *g, bool accepted) {
    int64_t *v = g->source == MC_SRC_LLM    ? (accepted ? &st->accepted_llm : &st->shown_llm)
                 : g->source == MC_SRC_COPY ? (accepted ? &st->accepted_copy : &st->shown_copy)
                                            : (accepted ? &st->accepted_slm : &st->shown_slm);
    (*v)++;
}

static int line_of(const mc_cascade_doc *d) {
    if (d->line >= 0)
        return d->line;
    int n = 0;
    for (size_t i = 0; i < d->cursor; i++)
        n += d->text[i] == '\n';
    return n;
}

/* The shown suggestion was rejected. An empty one showed nothing: it is
 * dropped, and nothing escalates (typing on after an empty line is not a
 * rejection of anything). */
static void reject(mc_session *s) {
    if (s->has_cur && s->cur.len == 0) {
        drop_cur(s);
        return;
    }
    s->st.rejected++;
    if (s->has_cur && local(&s->cur)) {
        s->pending = true;
        s->pending_line = s->shown_line;
    }
    drop_cur(s);
}

static char *dup_or_null(const char *t, bool *oom) {
    if (!t)
        return NULL;
    size_t n = strlen(t);
    char *d = malloc(n + 1);
    if (d)
        memcpy(d, t, n + 1);
    else
        *oom = true;
    return d;
}

static int dup_suggestion(mc_suggestion *dst, const mc_suggestion *src) {
    *dst = *src;
    bool oom = false;
    dst->text = malloc(src->len + 1);
    dst->slm_text = dup_or_null(src->slm_text, &oom);
    dst->draft_text = dup_or_null(src->draft_text, &oom);
    dst->copy_top = dup_or_null(src->copy_top, &oom);
    dst->slm_ids = malloc((size_t)(src->n_slm_ids > 0 ? src->n_slm_ids : 1) * sizeof(int32_t));
    if (!dst->text || !dst->slm_ids || oom) {
        mc_suggestion_fini(dst);
        return MC_ENOMEM;
    }
    memcpy(dst->text, src->text, src->len + 1);
    if (src->n_slm_ids > 0)
        memcpy(dst->slm_ids, src->slm_ids, (size_t)src->n_slm_ids * sizeof(int32_t));
    return 0;
}

/* Make `sug` (taken over) the shown suggestion at the doc's cursor. */
static void show(mc_session *s, const mc_cascade_doc *d, mc_suggestion *sug, uint64_t h, int line) {
    drop_cur(s);
    s->cur = *sug;
    memset(sug, 0, sizeof *sug);
    s->has_cur = true;
    s->shown_at = d->cursor;
    s->shown_hash = h;
    s->shown_line = line;
    s->typed = 0;
    count_shown(&s->st, &s->cur, false);
    make_view(s);
}

int mc_session_request(mc_session *s, const mc_cascade_doc *d, const volatile int *cancel,
                       const mc_suggestion **out, mc_err *err) {
    *out = NULL;
    if (!s || !d || (!d->text && d->len > 0) || d->cursor > d->len)
        return mc_err_set(err, MC_EINVAL, -1, "bad session request");
    s->st.requests++;
    const int line = line_of(d);

    /* 1. Is the shown suggestion still alive here? */
    if (s->has_cur) {
        bool same_base = d->cursor >= s->shown_at &&
                         mc__hash(d->text, s->shown_at) == s->shown_hash;
        size_t k = same_base ? d->cursor - s->shown_at : 0;
        if (same_base && k <= s->cur.len && memcmp(d->text + s->shown_at, s->cur.text, k) == 0) {
            if (k < s->cur.len) {
                if (k > s->typed)
                    s->st.typed_through += (int64_t)(k - s->typed);
                s->typed = k;
                make_view(s);
                s->st.reused++;
                *out = &s->view;
                return 0;
            }
            /* typed all of it: as good as accepted */
            count_shown(&s->st, &s->cur, true);
            drop_cur(s);
            s->pending = false;
        } else if (same_base && line == s->shown_line) {
            reject(s); /* a diverging keystroke on the same line */
        } else {
            drop_cur(s); /* the cursor went elsewhere */
            s->pending = false;
        }
    }
    if (s->pending && line != s->pending_line)
        s->pending = false;

    uint64_t h = mc__hash(d->text, d->cursor);
    mc_suggestion sug;
    int rc;
    if (s->pending) {
        /* 2. Escalate: the SLM's line for this cursor, then the LLM. */
        if (!(s->has_slm && s->slm_at == d->cursor && s->slm_hash == h)) {
            mc_cascade_params p = s->c->p, q = p;
            q.routing = false;
            s->c->p = q;
            mc_suggestion fresh;
            rc = mc_cascade_suggest(s->c, d, cancel, &fresh, err);
            s->c->p = p;
            if (rc != 0)
                return rc;
            drop_slm(s);
            s->slm = fresh;
            s->has_slm = true;
            s->slm_at = d->cursor;
            s->slm_hash = h;
        }
        rc = mc_cascade_escalate(s->c, d, &s->slm, MC_PATH_REJECTION, cancel, &sug, err);
        if (rc == MC_ECANCELED)
            return rc;
        s->pending = false;
        if (rc != 0) {
            /* the LLM is unavailable: show the local line again */
            s->st.llm_failures++;
            rc = dup_suggestion(&sug, &s->slm);
            if (rc != 0)
                return mc_err_set(err, rc, -1, "out of memory");
            sug.st.llm_failed = true;
        } else {
            s->st.escalated_rejection++;
        }
    } else {
        /* 3. The cascade: SLM, with confidence routing. */
        rc = mc_cascade_suggest(s->c, d, cancel, &sug, err);
        if (rc != 0)
            return rc;
        if (sug.path == MC_PATH_CONFIDENCE)
            s->st.escalated_confidence++;
        if (sug.st.llm_failed)
            s->st.llm_failures++;
        if (local(&sug)) {
            drop_slm(s);
            rc = dup_suggestion(&s->slm, &sug);
            if (rc != 0) {
                mc_suggestion_fini(&sug);
                return mc_err_set(err, rc, -1, "out of memory");
            }
            s->has_slm = true;
            s->slm_at = d->cursor;
            s->slm_hash = h;
        }
    }
    show(s, d, &sug, h, line);
    *out = &s->view;
    return 0;
}

int mc_session_typed(mc_session *s, const char *text, size_t n) {
    if (!s || !s->has_cur)
        return 0;
    size_t left = s->cur.len - s->typed;
    if (n <= left && memcmp(s->cur.text + s->typed, text, n) == 0) {
        s->st.typed_through += (int64_t)n;
        s->typed += n;
        if (s->typed == s->cur.len) {
            count_shown(&s->st, &s->cur, true);
            drop_cur(s);
            s->pending = false;
        } else {
            make_view(s);
        }
        return 1;
    }
    reject(s);
    return 0;
}

void mc_session_accepted(mc_session *s, size_t n) {
    if (!s || !s->has_cur)
        return;
    size_t left = s->cur.len - s->typed;
    if (n >= left) {
        count_shown(&s->st, &s->cur, true);
        drop_cur(s);
        s->pending = false;
        return;
    }
    s->typed += n;
    make_view(s);
}

void mc_session_rejected(mc_session *s) {
    if (s && s->has_cur)
        reject(s);
}

void mc_session_cursor_moved(mc_session *s) {
    if (!s)
        return;
    drop_cur(s);
    s->pending = false;
}

bool mc_session_pending(const mc_session *s) { return s && s->pending; }

int mc_session_escalate(mc_session *s, const mc_cascade_doc *d, const volatile int *cancel,
                        const mc_suggestion **out, mc_err *err) {
    *out = NULL;
    if (!s || !d)
        return mc_err_set(err, MC_EINVAL, -1, "bad session request");
    if (s->has_cur && local(&s->cur)) {
        s->st.rejected++;
        s->pending = true;
        s->pending_line = s->shown_line;
        drop_cur(s);
    }
    if (!s->pending)
        return mc_err_set(err, MC_ENOTFOUND, -1, "no local suggestion to escalate on this line");
    return mc_session_request(s, d, cancel, out, err);
}

void mc_session_get_stats(const mc_session *s, mc_session_stats *st) {
    if (s && st)
        *st = s->st;
}
