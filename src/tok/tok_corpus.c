/* src/tok/tok_corpus.c — corpus tokenization to the flat token file described
 * in mccom/tok.h, on several threads.
 *
 * Workers take files in order from a shared counter and tokenize each into its
 * own buffer; the calling thread writes the buffers strictly in file order, so
 * the output does not depend on the number of threads. Workers run at most
 * WINDOW files ahead of the writer, which bounds memory. */
#include "tok_internal.h"

#include "mccom/file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *mc__tok_read_text_file(const char *path, size_t *n);
int mc__tok_collect_files(const char *const *paths, int n_paths, char ***files, size_t *n_files);

#define WINDOW 64

typedef struct slot {
    int32_t *ids;
    int64_t n;
    int64_t bytes;
    int state; /* 0 pending, 1 done, 2 skipped */
    int rc;
} slot;

typedef struct job {
    const mc_tok *tok;
    char **files;
    size_t n_files, next, written;
    slot *slots;
    pthread_mutex_t mu;
    pthread_cond_t cv_done, cv_room;
    bool stop;
} job;

static void *worker(void *p) {
    job *j = p;
    for (;;) {
        pthread_mutex_lock(&j->mu);
        while (!j->stop && j->next < j->n_files && j->next >= j->written + WINDOW)
            pthread_cond_wait(&j->cv_room, &j->mu);
        if (j->stop || j->next >= j->n_files) {
            pthread_mutex_unlock(&j->mu);
            return NULL;
        }
        size_t i = j->next++;
        pthread_mutex_unlock(&j->mu);

        slot s = {0};
        size_t n;
        char *text = mc__tok_read_text_file(j->files[i], &n);
        if (!text) {
            s.state = 2;
        } else {
            int64_t cap = (int64_t)n / 2 + 16, got = 0;
            s.ids = malloc((size_t)cap * sizeof(int32_t));
            s.rc = s.ids ? mc_tok_encode(j->tok, text, n, 0, s.ids, cap, &got) : MC_ENOMEM;
            if (s.rc == MC_EFULL) {
                free(s.ids);
                cap = got;
                s.ids = malloc((size_t)cap * sizeof(int32_t) + 1);
                s.rc = s.ids ? mc_tok_encode(j->tok, text, n, 0, s.ids, cap, &got) : MC_ENOMEM;
            }
            s.n = got;
            s.bytes = (int64_t)n;
            s.state = 1;
            free(text);
        }
        pthread_mutex_lock(&j->mu);
        j->slots[i] = s;
        pthread_cond_broadcast(&j->cv_done);
        pthread_mutex_unlock(&j->mu);
    }
}

static int put_u32(FILE *f, uint32_t v) {
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    return fwrite(b, 1, 4, f) == 4 ? 0 : -1;
}

static int put_u64(FILE *f, uint64_t v) {
    return put_u32(f, (uint32_t)v) || put_u32(f, (uint32_t)(v >> 32));
}

static int write_header(FILE *f, uint32_t bpt, uint64_t n, uint32_t sep, uint32_t nv) {
    if (fseek(f, 0, SEEK_SET) != 0 || fwrite("MCTOKENS", 1, 8, f) != 8)
        return -1;
    return put_u32(f, 1) || put_u32(f, bpt) || put_u64(f, n) || put_u32(f, sep) || put_u32(f, nv);
}

static int write_ids(FILE *f, const int32_t *ids, int64_t n, uint32_t bpt) {
    uint8_t buf[8192];
    size_t o = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t v = (uint32_t)ids[i];
        buf[o++] = (uint8_t)v;
        buf[o++] = (uint8_t)(v >> 8);
        if (bpt == 4) {
            buf[o++] = (uint8_t)(v >> 16);
            buf[o++] = (uint8_t)(v >> 24);
        }
        if (o + 4 > sizeof buf) {
            if (fwrite(buf, 1, o, f) != o)
                return -1;
            o = 0;
        }
    }
    return o && fwrite(buf, 1, o, f) != o ? -1 : 0;
}

int mc_tok_corpus_write(const mc_tok *tok, const char *const *paths, int n_paths, int n_threads,
                        const char *out_path, bool progress, mc_tok_corpus_stats *stats,
                        mc_err *err) {
    mc_tok_corpus_stats st = {0};
    int32_t sep = mc_tok_special(tok, MC_TOK_EOS);
    if (sep < 0)
        sep = mc_tok_special(tok, MC_TOK_EOT);
    if (sep < 0)
        return mc_err_set(err, MC_EINVAL, -1, "the vocabulary has no end-of-text token");
    uint32_t nv = (uint32_t)mc_tok_n_vocab(tok);
    uint32_t bpt = nv <= 65536 ? 2 : 4;
    char **files = NULL;
    size_t n_files = 0;
    int rc = mc__tok_collect_files(paths, n_paths, &files, &n_files);
    if (rc)
        return mc_err_set(err, rc, -1, "listing input files failed");
    const char *tmp = out_path; /* named in messages */
    mc_file_tmp ft = {0};
    FILE *f = NULL;
    job j;
    memset(&j, 0, sizeof j);
    pthread_t *th = NULL;
    int nt = n_threads < 1 ? 1 : n_threads;
    if ((rc = mc_file_tmp_open(&ft, out_path, 0644, err)))
        goto out;
    f = ft.f;
    if (write_header(f, bpt, 0, (uint32_t)sep, nv)) {
        rc = mc_err_set(err, MC_EIO, -1, "write error on %s", tmp);
        goto out;
    }
    j.tok = tok;
    j.files = files;
    j.n_files = n_files;
    j.slots = calloc(n_files ? n_files : 1, sizeof(slot));
    th = calloc((size_t)nt, sizeof(pthread_t));
    if (!j.slots || !th) {
        rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
        goto out;
    }
    pthread_mutex_init(&j.mu, NULL);
    pthread_cond_init(&j.cv_done, NULL);
    pthread_cond_init(&j.cv_room, NULL);
    int started = 0;
    for (int i = 0; i < nt; i++)
        if (pthread_create(&th[i], NULL, worker, &j) == 0)
            started++;
    double t0 = mc_time_s();
    for (size_t i = 0; i < n_files; i++) {
        pthread_mutex_lock(&j.mu);
        while (j.slots[i].state == 0 && started > 0)
            pthread_cond_wait(&j.cv_done, &j.mu);
        slot s = j.slots[i];
        j.slots[i].ids = NULL;
        j.written = i + 1;
        pthread_cond_broadcast(&j.cv_room);
        pthread_mutex_unlock(&j.mu);
        if (started == 0) { /* no threads: do it here */
            rc = mc_err_set(err, MC_ENOMEM, -1, "cannot start threads");
            break;
        }
        if (s.state == 2) {
            st.n_skipped++;
            continue;
        }
        if (!rc && s.rc)
            rc = mc_err_set(err, s.rc, -1, "tokenizing %s failed", files[i]);
        if (!rc && (write_ids(f, s.ids, s.n, bpt) || write_ids(f, &sep, 1, bpt)))
            rc = mc_err_set(err, MC_EIO, -1, "write error on %s", tmp);
        free(s.ids);
        if (rc)
            break;
        st.n_docs++;
        st.n_tokens += s.n + 1;
        st.n_bytes += s.bytes;
        if (progress && (st.n_docs % 200 == 0 || i + 1 == n_files)) {
            double el = mc_time_s() - t0;
            fprintf(stderr, "\rtokenize: %zu/%zu files, %.1f MB, %lld tokens, %.1f MB/s   ", i + 1,
                    n_files, (double)st.n_bytes / 1e6, (long long)st.n_tokens,
                    el > 0 ? (double)st.n_bytes / 1e6 / el : 0.0);
        }
    }
    pthread_mutex_lock(&j.mu);
    j.stop = true;
    pthread_cond_broadcast(&j.cv_room);
    pthread_mutex_unlock(&j.mu);
    for (int i = 0; i < nt; i++)
        if (th[i])
            pthread_join(th[i], NULL);
    for (size_t i = 0; i < n_files; i++)
        free(j.slots[i].ids);
    pthread_mutex_destroy(&j.mu);
    pthread_cond_destroy(&j.cv_done);
    pthread_cond_destroy(&j.cv_room);
    if (progress)
        fprintf(stderr, "\n");
    st.seconds = mc_time_s() - t0;
    if (!rc && write_header(f, bpt, (uint64_t)st.n_tokens, (uint32_t)sep, nv))
        rc = mc_err_set(err, MC_EIO, -1, "write error on %s", tmp);
out:
    if (f && !rc)
        rc = mc_file_tmp_commit(&ft, err);
    else
        mc_file_tmp_abort(&ft);
    free(th);
    free(j.slots);
    for (size_t i = 0; i < n_files; i++)
        free(files[i]);
    free(files);
    if (stats)
        *stats = st;
    return rc;
}
