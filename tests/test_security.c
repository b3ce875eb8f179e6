/* tests/test_security.c — issue 14: a hostile repository must not read or
 * overwrite the user's files, and no write is ever torn.
 *
 *   - the workspace boundary: a link out of the repository is never indexed,
 *     never in a prompt, never sent (a capturing fake server sees every byte
 *     `mccom complete --remote` sends); an editor's save through a linked
 *     directory, and the watcher, are refused the same way;
 *   - every writer of the project (retrieval index, GGUF, token file,
 *     tokenizer.json, evaluation report, mc_file_replace): a planted temp-file
 *     link's target stays unchanged; concurrent writers never fail or mix;
 *     a writer killed with SIGKILL at a random moment leaves the old or the
 *     new file, byte for byte, never a torn one;
 *   - the LLM budget: against a server that accepts and never answers,
 *     `complete --reject` waits at most budget + 10 %, and its account shows
 *     the failed call;
 *   - the two inputs UndefinedBehaviorSanitizer flagged (also in the fuzz
 *     corpora): a vocabulary without byte tokens, a llama2.c header whose
 *     vocabulary size is INT_MIN.
 */
#include "test.h"

#include "mccom/convert.h"
#include "mccom/eval.h"
#include "mccom/file.h"
#include "mccom/gguf.h"
#include "mccom/retr.h"
#include "mccom/tok.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- small helpers ------------------------------------------------------------------ */

static void put(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    MC_REQUIRE(f);
    fputs(text, f);
    fclose(f);
}

static char *slurp(const char *path, size_t *len) {
    char *b = NULL;
    size_t n = 0;
    if (mc_file_read_all(path, 0, &b, &n, NULL) != 0)
        return NULL;
    if (len)
        *len = n;
    return b;
}

static int same_file(const char *a, const char *b) {
    size_t na, nb;
    char *x = slurp(a, &na), *y = slurp(b, &nb);
    int same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

static int run(const char *cmd, char *out, size_t cap) {
    FILE *p = popen(cmd, "r");
    MC_REQUIRE(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Files in dir whose name contains `part`. */
static int count_named(const char *dir, const char *part) {
    char cmd[2048], out[64];
    snprintf(cmd, sizeof cmd, "ls -A %s | grep -c -F -- '%s'", dir, part);
    run(cmd, out, sizeof out);
    return atoi(out);
}

/* ---- the writers under test ----------------------------------------------------------- */

/* Each writes version v (0 or 1) of its file to `path`; the two versions
 * differ and each is the same bytes every time. */
typedef int (*writer_fn)(void *ud, int v, const char *path);

static int w_replace(void *ud, int v, const char *path) {
    (void)ud;
    size_t n = (size_t)(v ? 3 : 2) << 20;
    char *b = malloc(n);
    MC_REQUIRE(b);
    memset(b, v ? 'B' : 'A', n);
    int rc = mc_file_replace(path, b, n, 0644, NULL);
    free(b);
    return rc;
}

typedef struct retr_ud {
    mc_retr_index *ix[2];
} retr_ud;

static int w_retr(void *ud, int v, const char *path) {
    return mc_retr_save(((retr_ud *)ud)->ix[v], path, NULL);
}

static int w_gguf(void *ud, int v, const char *path) {
    (void)ud;
    size_t n = (size_t)2 << 20;
    uint8_t *data = malloc(n);
    MC_REQUIRE(data);
    memset(data, v ? 0x5a : 0xa5, n);
    mc_gguf_writer *w = mc_gguf_writer_new();
    MC_REQUIRE(w);
    mc_gguf_set_str(w, "general.architecture", "llama");
    mc_gguf_set_u32(w, "test.version", (uint32_t)v);
    int64_t ne[2] = {(int64_t)(n / 4) / 512, 512};
    mc_gguf_add_tensor(w, "t", 0 /* f32 */, 2, ne, data, n);
    int rc = mc_gguf_writer_write(w, path, NULL);
    mc_gguf_writer_free(w);
    free(data);
    return rc;
}

typedef struct tok_ud {
    mc_tok *tok;
    char in[2][1024];
} tok_ud;

static int w_tokens(void *ud, int v, const char *path) {
    tok_ud *t = ud;
    const char *paths[1] = {t->in[v]};
    return mc_tok_corpus_write(t->tok, paths, 1, 1, path, false, NULL, NULL);
}

typedef struct hf_ud {
    mc_tok_trainer *t[2];
} hf_ud;

static int w_hf(void *ud, int v, const char *path) {
    return mc_tok_trainer_write_hf(((hf_ud *)ud)->t[v], path, NULL);
}

typedef struct report_ud {
    mc_eval_recs rs[2];
} report_ud;

static int w_report(void *ud, int v, const char *path) {
    mc_eval_report_params p;
    memset(&p, 0, sizeof p);
    p.md_path = path;
    p.command = "mccom eval (test)";
    p.tau = 0.5;
    p.rtt_real_ms = 50;
    p.em_drop = 0.01;
    return mc_eval_report(&((report_ud *)ud)->rs[v], &p, NULL);
}

static mc_eval_rec mkrec(int i, int mode) {
    mc_eval_rec r;
    memset(&r, 0, sizeof r);
    char id[32];
    snprintf(id, sizeof id, "t/%d", i);
    r.split = strdup("line");
    r.task = strdup(id);
    r.repo = strdup(i % 3 ? "alpha" : "beta");
    r.hash = (uint64_t)i * 0x9E3779B97F4A7C15ull;
    r.mode = mode;
    r.tau = mc_eval_mode_cascade(mode) ? 0.5 : -1;
    r.path = 0;
    r.pred = strdup(i % 2 ? "x = 1" : "y = 2");
    r.conf = mc_eval_mode_cascade(mode) || mode == MC_EVAL_SLM ? 0.25f + (float)(i % 7) / 10 : -1;
    r.score.em = i % 2;
    r.score.es = (i % 10) / 10.0;
    r.score.fuzz = i % 100;
    r.ms_first = 10 + i % 13;
    r.calls = mode == MC_EVAL_SLM ? 0 : 1;
    MC_REQUIRE(r.split && r.task && r.repo && r.pred);
    return r;
}

/* The fixtures of every writer, prepared once per test process. */
typedef struct writers {
    const char *name[6];
    writer_fn fn[6];
    void *ud[6];
    int n;
    retr_ud retr;
    tok_ud tok;
    hf_ud hf;
    report_ud report;
} writers;

static void writers_init(writers *W) {
    memset(W, 0, sizeof *W);
    const char *tmp = mc_test_tmpdir();
    char root[1024], path[1200];
    mc_err e;
    /* retrieval: one root, two contents of its file (indexes are canonical) */
    snprintf(root, sizeof root, "%s/wroot", tmp);
    mkdir(root, 0755);
    snprintf(path, sizeof path, "%s/a.py", root);
    put(path, "x = 1\n");
    size_t big = 400000;
    char *text = malloc(big + 1);
    MC_REQUIRE(text);
    for (int v = 0; v < 2; v++) {
        MC_REQUIRE(mc_retr_new(&W->retr.ix[v], root, NULL, NULL, &e) == 0);
        MC_REQUIRE(mc_retr_sync(W->retr.ix[v], NULL, &e) == 0);
        for (size_t i = 0; i < big; i++)
            text[i] = i % 40 == 39 ? '\n' : (char)((v ? 'a' : 'k') + (char)(i % 7));
        MC_REQUIRE(mc_retr_set_file(W->retr.ix[v], "a.py", text, big - 100 * (size_t)v, &e) == 0);
    }
    /* a token file from one of two inputs */
    MC_REQUIRE(mc_tok_load_gguf_file("models/stories260K.gguf", &W->tok.tok, &e) == 0);
    for (int v = 0; v < 2; v++) {
        snprintf(W->tok.in[v], sizeof W->tok.in[v], "%s/corpus%d.txt", tmp, v);
        FILE *f = fopen(W->tok.in[v], "wb");
        MC_REQUIRE(f);
        for (int i = 0; i < 20000 + 5000 * v; i++)
            fprintf(f, "Once upon a time %d, Lily saw a %s.\n", i, v ? "dog" : "cat");
        fclose(f);
    }
    /* tokenizer.json of two trained vocabularies */
    for (int v = 0; v < 2; v++) {
        mc_tok_train_params tp = mc_tok_train_default();
        tp.vocab_size = 600 + 50 * v;
        tp.n_threads = 1;
        W->hf.t[v] = mc_tok_trainer_new(&tp);
        MC_REQUIRE(W->hf.t[v]);
        size_t n = 0;
        char *src = slurp(v ? "src/tok/tok.c" : "src/retr/index.c", &n);
        MC_REQUIRE(src);
        MC_REQUIRE(mc_tok_trainer_add_text(W->hf.t[v], src, n) == 0);
        free(src);
        MC_REQUIRE(mc_tok_trainer_run(W->hf.t[v], &e) == 0);
    }
    /* an evaluation report of 600 or 900 records */
    for (int v = 0; v < 2; v++) {
        for (int i = 0; i < 300 + 150 * v; i++) {
            for (int m = 0; m < 2; m++) {
                mc_eval_rec r = mkrec(i, m ? MC_EVAL_CASCADE : MC_EVAL_SLM);
                MC_REQUIRE(mc_eval_recs_push(&W->report.rs[v], &r) == 0);
            }
        }
    }
    free(text);
    W->name[0] = "replace", W->fn[0] = w_replace, W->ud[0] = NULL;
    W->name[1] = "index", W->fn[1] = w_retr, W->ud[1] = &W->retr;
    W->name[2] = "gguf", W->fn[2] = w_gguf, W->ud[2] = NULL;
    W->name[3] = "tokens", W->fn[3] = w_tokens, W->ud[3] = &W->tok;
    W->name[4] = "tokenizer.json", W->fn[4] = w_hf, W->ud[4] = &W->hf;
    W->name[5] = "report", W->fn[5] = w_report, W->ud[5] = &W->report;
    W->n = 6;
}

static void writers_fini(writers *W) {
    for (int v = 0; v < 2; v++) {
        mc_retr_free(W->retr.ix[v]);
        mc_tok_trainer_free(W->hf.t[v]);
        mc_eval_recs_fini(&W->report.rs[v]);
    }
    mc_tok_free(W->tok.tok);
}

/* ref0/ref1: each version written once (and again: the same bytes). */
static void write_refs(const writers *W, int k, char ref[2][1200]) {
    for (int v = 0; v < 2; v++) {
        snprintf(ref[v], sizeof ref[v], "%s/%s.ref%d", mc_test_tmpdir(), W->name[k], v);
        MC_REQUIRE(W->fn[k](W->ud[k], v, ref[v]) == 0);
        char again[1300];
        snprintf(again, sizeof again, "%s.again", ref[v]);
        MC_REQUIRE(W->fn[k](W->ud[k], v, again) == 0);
        CHECK_MSG(same_file(ref[v], again), "%s: version %d is not reproducible", W->name[k], v);
        unlink(again);
    }
    CHECK_MSG(!same_file(ref[0], ref[1]), "%s: the two versions are equal", W->name[k]);
}

/* ---- mc_file_replace's own contract ---------------------------------------------------- */

MC_TEST(sec_file_replace_contract) {
    char dir[1024], path[1400], victim[1200], link[1400];
    snprintf(dir, sizeof dir, "%s/fr", mc_test_tmpdir());
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/out.bin", dir);
    mc_err e;
    CHECK_EQ_INT(mc_file_replace(path, "hello", 5, 0600, &e), 0);
    struct stat st;
    MC_REQUIRE(stat(path, &st) == 0);
    CHECK_EQ_INT(st.st_mode & 0777, 0600);
    char *b = slurp(path, NULL);
    CHECK(b && !strcmp(b, "hello"));
    free(b);
    CHECK_EQ_INT(count_named(dir, ".tmp"), 0); /* no temp file left */
    /* a link at the target is replaced, never written through */
    snprintf(victim, sizeof victim, "%s/victim", dir);
    put(victim, "VICTIM");
    MC_REQUIRE(unlink(path) == 0 && symlink(victim, path) == 0);
    CHECK_EQ_INT(mc_file_replace(path, "new", 3, 0644, &e), 0);
    MC_REQUIRE(lstat(path, &st) == 0);
    CHECK(S_ISREG(st.st_mode));
    b = slurp(victim, NULL);
    CHECK(b && !strcmp(b, "VICTIM"));
    free(b);
    /* a missing directory: an error naming the file, nothing created */
    snprintf(link, sizeof link, "%s/no/such/dir/x", dir);
    CHECK_EQ_INT(mc_file_replace(link, "x", 1, 0644, &e), MC_EIO);
    CHECK(strstr(e.msg, "/no/such/dir/x") != NULL);
    /* mc_file_read_in: a link out of a root is refused, one inside is followed */
    char root[1100], *real;
    snprintf(root, sizeof root, "%s/root", dir);
    mkdir(root, 0755);
    snprintf(link, sizeof link, "%s/out.py", root);
    MC_REQUIRE(symlink(victim, link) == 0);
    snprintf(path, sizeof path, "%s/in.py", root);
    put(path, "inside");
    snprintf(link, sizeof link, "%s/alias.py", root);
    MC_REQUIRE(symlink("in.py", link) == 0);
    real = mc_file_root_real(root, &e);
    MC_REQUIRE(real);
    size_t n;
    snprintf(path, sizeof path, "%s/out.py", root);
    CHECK_EQ_INT(mc_file_read_in(real, path, 0, &b, &n, &e), MC_EACCES);
    CHECK(b == NULL);
    CHECK_EQ_INT(mc_file_read_in(real, link, 0, &b, &n, &e), 0);
    CHECK(b && !strcmp(b, "inside"));
    free(b);
    snprintf(path, sizeof path, "%s/../victim", root);
    CHECK_EQ_INT(mc_file_read_in(real, path, 0, &b, &n, &e), MC_EACCES);
    free(real);
}

/* Issue 14, finding 2: a repository (or anyone) that plants OUT.tmp as a link
 * cannot make a writer overwrite the link's target: every writer creates its
 * own new temp file and never opens a name that exists. */
MC_TEST_T(sec_planted_temp_link_every_writer, 120) {
    writers W;
    writers_init(&W);
    char victim[1200];
    snprintf(victim, sizeof victim, "%s/victim.txt", mc_test_tmpdir());
    for (int k = 0; k < W.n; k++) {
        char ref[2][1200], out[1200], planted[1300];
        write_refs(&W, k, ref);
        put(victim, "the user's file\n");
        snprintf(out, sizeof out, "%s/planted-%s", mc_test_tmpdir(), W.name[k]);
        snprintf(planted, sizeof planted, "%s.tmp", out);
        MC_REQUIRE(symlink(victim, planted) == 0);
        CHECK_MSG(W.fn[k](W.ud[k], 0, out) == 0, "%s: write failed", W.name[k]);
        char *b = slurp(victim, NULL);
        CHECK_MSG(b && !strcmp(b, "the user's file\n"), "%s: the planted link's target changed",
                  W.name[k]);
        free(b);
        struct stat st;
        CHECK_MSG(lstat(out, &st) == 0 && S_ISREG(st.st_mode) && same_file(out, ref[0]),
                  "%s: the output is not the file written", W.name[k]);
        unlink(planted);
    }
    writers_fini(&W);
}

/* Issue 14, finding 7: concurrent writers of one file never share a temp
 * file: none fails, and the result is one writer's version, whole. */
MC_TEST_T(sec_concurrent_writers, 120) {
    writers W;
    writers_init(&W);
    int ks[] = {1, 0, 2}; /* the index (the case), raw bytes, a model */
    for (size_t q = 0; q < MC_ARRAY_LEN(ks); q++) {
        int k = ks[q];
        char ref[2][1200], out[1200];
        write_refs(&W, k, ref);
        snprintf(out, sizeof out, "%s/concurrent-%s", mc_test_tmpdir(), W.name[k]);
        enum { PROCS = 4, ROUNDS = 15 };
        pid_t pid[PROCS];
        for (int p = 0; p < PROCS; p++) {
            pid[p] = fork();
            MC_REQUIRE(pid[p] >= 0);
            if (pid[p] == 0) {
                int failed = 0;
                for (int r = 0; r < ROUNDS; r++)
                    failed += W.fn[k](W.ud[k], p & 1, out) != 0;
                _exit(failed > 100 ? 100 : failed);
            }
        }
        for (int p = 0; p < PROCS; p++) {
            int st;
            waitpid(pid[p], &st, 0);
            CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: writer %d failed %d of %d writes",
                      W.name[k], p, WIFEXITED(st) ? WEXITSTATUS(st) : -1, ROUNDS);
        }
        CHECK_MSG(same_file(out, ref[0]) || same_file(out, ref[1]),
                  "%s: the result is neither version", W.name[k]);
        CHECK_EQ_INT(count_named(mc_test_tmpdir(), ".tmp"), 0);
    }
    writers_fini(&W);
}

/* Issue 14, finding 7: kill -9 at a random moment of a writer that rewrites
 * its file in a loop; the file is then one version, byte for byte. */
MC_TEST_T(sec_kill9_never_torn_every_writer, 240) {
    writers W;
    writers_init(&W);
    unsigned seed = 14;
    for (int k = 0; k < W.n; k++) {
        char ref[2][1200], out[1200];
        write_refs(&W, k, ref);
        snprintf(out, sizeof out, "%s/crash-%s", mc_test_tmpdir(), W.name[k]);
        MC_REQUIRE(W.fn[k](W.ud[k], 0, out) == 0);
        int torn = 0;
        for (int round = 0; round < 12; round++) {
            pid_t pid = fork();
            MC_REQUIRE(pid >= 0);
            if (pid == 0) {
                for (int i = 1;; i++)
                    W.fn[k](W.ud[k], i & 1, out);
            }
            usleep(2000 + (useconds_t)(rand_r(&seed) % 40000));
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            if (!same_file(out, ref[0]) && !same_file(out, ref[1]))
                torn++;
        }
        CHECK_MSG(torn == 0, "%s: %d of 12 kills left a torn file", W.name[k], torn);
        /* what a killed writer can leave is its own temp file, named so */
        char cmd[2048], junk[256];
        snprintf(cmd, sizeof cmd, "rm -f %s/.crash-*.tmp", mc_test_tmpdir());
        run(cmd, junk, sizeof junk);
    }
    writers_fini(&W);
}

/* ---- the workspace boundary in the library ------------------------------------------------ */

/* Issue 14, finding 7: the LSP re-indexes a saved document by path; a path
 * through a directory link (in or out of the root) or a file link out of it
 * is refused, and so is the watcher's event for a link moved into place. */
MC_TEST(sec_update_through_links_refused) {
    const char *tmp = mc_test_tmpdir();
    char root[1024], out[1024], p[1200], q[1200];
    snprintf(root, sizeof root, "%s/ws", tmp);
    snprintf(out, sizeof out, "%s/outside", tmp);
    mkdir(root, 0755);
    mkdir(out, 0755);
    snprintf(p, sizeof p, "%s/secret.py", out);
    put(p, "API_KEY = 'TOPSECRET'\n");
    snprintf(p, sizeof p, "%s/main.py", root);
    put(p, "x = 1\n");
    snprintf(p, sizeof p, "%s/sub", root);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/sub/b.py", root);
    put(p, "y = 2\n");
    snprintf(p, sizeof p, "%s/linkdir", root);
    MC_REQUIRE(symlink(out, p) == 0);
    snprintf(p, sizeof p, "%s/inlink", root);
    MC_REQUIRE(symlink("sub", p) == 0);
    mc_retr_index *ix;
    mc_err e;
    MC_REQUIRE(mc_retr_new(&ix, root, NULL, NULL, &e) == 0);
    mc_retr_sync_stats st;
    MC_REQUIRE(mc_retr_sync(ix, &st, &e) == 0);
    CHECK_EQ_INT(st.n_seen, 2);
    /* a save under the link that leaves the root */
    CHECK_EQ_INT(mc_retr_update_file(ix, "linkdir/secret.py", &e), MC_EACCES);
    snprintf(p, sizeof p, "%s/linkdir/secret.py", root);
    CHECK_EQ_INT(mc_retr_update_file(ix, p, &e), MC_EACCES);
    /* an editor buffer there */
    CHECK_EQ_INT(mc_retr_set_file(ix, "linkdir/secret.py", "k", 1, &e), MC_EACCES);
    /* a directory link inside the root: not followed, as the walk */
    CHECK_EQ_INT(mc_retr_update_file(ix, "inlink/b.py", &e), 0);
    mc_retr_stats rs;
    mc_retr_get_stats(ix, &rs);
    CHECK_EQ_INT(rs.n_files, 2);
    mc_str w;
    CHECK_EQ_INT(mc_retr_window_text(ix, "linkdir/secret.py", 0, 1, &w), MC_ENOTFOUND);
    /* the watcher: main.py replaced by a link to the secret (rename: one event) */
    mc_retr_watch *wt;
    MC_REQUIRE(mc_retr_watch_open(&wt, ix, &e) == 0);
    snprintf(p, sizeof p, "%s/.tmp-link", root);
    snprintf(q, sizeof q, "%s/secret.py", out);
    MC_REQUIRE(symlink(q, p) == 0);
    snprintf(q, sizeof q, "%s/main.py", root);
    MC_REQUIRE(rename(p, q) == 0);
    for (double t0 = mc_time_s(); mc_time_s() - t0 < 3;)
        if (mc_retr_watch_poll(wt, 200, &e) != 0)
            break;
    mc_retr_watch_close(wt);
    CHECK_EQ_INT(mc_retr_window_text(ix, "main.py", 0, 1, &w), MC_ENOTFOUND);
    /* a full sync agrees, and counts it */
    MC_REQUIRE(mc_retr_sync(ix, &st, &e) == 0);
    CHECK_EQ_INT(st.n_outside, 1);
    mc_retr_get_stats(ix, &rs);
    CHECK_EQ_INT(rs.n_files, 1); /* sub/b.py */
    mc_retr_free(ix);
}

/* ---- a capturing fake LLM server ---------------------------------------------------------- */

typedef struct fake {
    int lfd, port;
    pthread_t th;
    volatile int stop;
    bool answer; /* false: accept and never answer (a stalled server) */
    pthread_mutex_t mu;
    char *seen;  /* every request: "METHOD PATH\nBODY\n" */
    size_t n_seen;
    int requests;
} fake;

static void fake_record(fake *f, const char *s, size_t n) {
    pthread_mutex_lock(&f->mu);
    char *nb = realloc(f->seen, f->n_seen + n + 1);
    if (nb) {
        memcpy(nb + f->n_seen, s, n);
        f->n_seen += n;
        nb[f->n_seen] = '\0';
        f->seen = nb;
    }
    pthread_mutex_unlock(&f->mu);
}

static void fake_serve(fake *f, int fd) {
    char *buf = NULL;
    size_t n = 0, cap = 0;
    size_t need = 0;
    for (;;) {
        if (n + 4096 > cap) {
            cap = (cap ? cap * 2 : 65536);
            char *nb = realloc(buf, cap + 1);
            if (!nb)
                break;
            buf = nb;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) <= 0)
            break;
        ssize_t r = recv(fd, buf + n, cap - n, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
        buf[n] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (!end)
            continue;
        const char *cl = strcasestr(buf, "Content-Length:");
        need = (size_t)(end + 4 - buf) + (cl && cl < end ? (size_t)atol(cl + 15) : 0);
        if (n >= need)
            break;
    }
    if (buf && need && n >= need) {
        char *end = strstr(buf, "\r\n\r\n");
        char *sp = strchr(buf, ' '), *sp2 = sp ? strchr(sp + 1, ' ') : NULL;
        pthread_mutex_lock(&f->mu);
        f->requests++;
        pthread_mutex_unlock(&f->mu);
        fake_record(f, buf, sp2 ? (size_t)(sp2 - buf) : 0);
        fake_record(f, "\n", 1);
        fake_record(f, end + 4, n - (size_t)(end + 4 - buf));
        fake_record(f, "\n", 1);
        const char *body;
        if (strncmp(buf, "GET /v1/models", 14) == 0)
            body = "{\"object\":\"list\",\"data\":[{\"id\":\"fake\",\"object\":\"model\",\"owned_by\":\"test\"}]}";
        else
            body = "{\"id\":\"c\",\"object\":\"text_completion\",\"created\":0,\"model\":\"fake\","
                   "\"choices\":[{\"index\":0,\"text\":\" done\",\"logprobs\":null,"
                   "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1,"
                   "\"completion_tokens\":1,\"total_tokens\":2}}";
        char head[256];
        int hl = snprintf(head, sizeof head,
                          "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                          "%zu\r\nConnection: close\r\n\r\n",
                          strlen(body));
        send(fd, head, (size_t)hl, MSG_NOSIGNAL);
        send(fd, body, strlen(body), MSG_NOSIGNAL);
    }
    free(buf);
    close(fd);
}

static void *fake_main(void *arg) {
    fake *f = arg;
    while (!f->stop) {
        struct pollfd p = {.fd = f->lfd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int fd = accept(f->lfd, NULL, NULL);
        if (fd >= 0)
            fake_serve(f, fd);
    }
    return NULL;
}

static void fake_start(fake *f, bool answer) {
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
    f->answer = answer;
    f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    MC_REQUIRE(f->lfd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(0x7f000001);
    socklen_t al = sizeof a;
    MC_REQUIRE(bind(f->lfd, (struct sockaddr *)&a, sizeof a) == 0);
    MC_REQUIRE(listen(f->lfd, 64) == 0);
    MC_REQUIRE(getsockname(f->lfd, (struct sockaddr *)&a, &al) == 0);
    f->port = ntohs(a.sin_port);
    /* a stalled server: the kernel completes the handshakes, nobody answers */
    if (answer)
        MC_REQUIRE(pthread_create(&f->th, NULL, fake_main, f) == 0);
}

static void fake_stop(fake *f) {
    f->stop = 1;
    if (f->answer)
        pthread_join(f->th, NULL);
    close(f->lfd);
    free(f->seen);
    pthread_mutex_destroy(&f->mu);
}

/* The text the client sent: string prompts as they are, id prompts decoded. */
static char *sent_text(const fake *f, const mc_tok *tok) {
    size_t cap = f->n_seen * 4 + 1, n = 0;
    char *out = malloc(cap);
    MC_REQUIRE(out);
    out[0] = '\0';
    for (const char *line = f->seen; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t ll = nl ? (size_t)(nl - line) : strlen(line);
        json_t *j = json_loadb(line, ll, 0, NULL);
        json_t *pr = j ? json_object_get(j, "prompt") : NULL;
        if (json_is_string(pr)) {
            n += (size_t)snprintf(out + n, cap - n, "%s\n", json_string_value(pr));
        } else if (json_is_array(pr)) {
            size_t m = json_array_size(pr);
            int32_t *ids = malloc((m + 1) * sizeof *ids);
            MC_REQUIRE(ids);
            for (size_t i = 0; i < m; i++)
                ids[i] = (int32_t)json_integer_value(json_array_get(pr, i));
            int64_t k = mc_tok_decode(tok, ids, (int64_t)m, 0, out + n, cap - n - 1);
            if (k > 0)
                n += (size_t)MC_MIN((size_t)k, cap - n - 1);
            out[n] = '\0';
            free(ids);
        }
        json_decref(j);
        line = nl ? nl + 1 : NULL;
    }
    return out;
}

/* A repository whose shadow.py links to a secret outside it that looks like
 * what the cursor needs (so retrieval would pick it if it were indexed). */
static void secret_repo(char *repo, size_t cap) {
    const char *tmp = mc_test_tmpdir();
    char p[1200], q[1200];
    snprintf(repo, cap, "%s/repo", tmp);
    mkdir(repo, 0755);
    snprintf(p, sizeof p, "%s/home", tmp);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/home/id_rsa", tmp);
    put(p, "def load_config(path):\n    KEY = 'TOPSECRET-4242'\n    return KEY\n");
    snprintf(q, sizeof q, "%s/shadow.py", repo);
    MC_REQUIRE(symlink(p, q) == 0);
    snprintf(p, sizeof p, "%s/util.py", repo);
    put(p, "def load_config(path):\n    with open(path) as f:\n        return json.load(f)\n");
    snprintf(p, sizeof p, "%s/main.py", repo);
    put(p, "import util\n\ncfg = util.load_config(path)\nprint(cfg)\nkey = load_config(path)\n"
           "value = \n");
}

/* Issue 14, finding 1: the symlinked secret is never indexed, never in a
 * prompt, never sent — checked on what actually reached the server. */
MC_TEST_T(sec_symlink_exfiltration_never_sent, 120) {
    char repo[1024], cmd[8192], out[65536];
    secret_repo(repo, sizeof repo);
    fake f;
    fake_start(&f, true);
    const char *bin = mc_test_bin();
    snprintf(cmd, sizeof cmd,
             "%s complete -m models/stories260K.gguf --repo %s --file main.py --line 5 "
             "--remote http://127.0.0.1:%d --remote-kind openai --tau 1.0 --reject -t 1 --json 2>&1",
             bin, repo, f.port);
    int rc = run(cmd, out, sizeof out);
    CHECK_MSG(rc == 0, "complete: %d: %s", rc, out);
    CHECK_MSG(f.requests >= 1, "nothing was sent: %s", out);
    mc_tok *tok;
    mc_err e;
    MC_REQUIRE(mc_tok_load_gguf_file("models/stories260K.gguf", &tok, &e) == 0);
    char *sent = sent_text(&f, tok);
    CHECK_MSG(strstr(sent, "TOPSECRET") == NULL, "the secret was sent: %s", sent);
    CHECK_MSG(strstr(f.seen, "TOPSECRET") == NULL, "the secret was sent (raw)");
    /* what was sent is the repository's code, with the retrieved window */
    CHECK_MSG(strstr(sent, "value =") != NULL && strstr(sent, "with open(path) as f") != NULL,
              "the prompt lacks the file or its retrieved window: %s", sent);
    free(sent);
    /* and asking for the link itself reads nothing and sends nothing */
    int before = f.requests;
    snprintf(cmd, sizeof cmd,
             "%s complete -m models/stories260K.gguf --repo %s --file shadow.py --line 1 "
             "--remote http://127.0.0.1:%d --remote-kind openai --tau 1.0 -t 1 2>&1",
             bin, repo, f.port);
    CHECK_EQ_INT(run(cmd, out, sizeof out), 1);
    CHECK_MSG(strstr(out, "outside") != NULL, "%s", out);
    CHECK_EQ_INT(f.requests, before);
    /* the index in the cache does not hold it either */
    char idx[4200], dir[4096];
    MC_REQUIRE(mc_file_cache_dir(repo, dir, sizeof dir, &e) == 0);
    snprintf(idx, sizeof idx, "%s/retr.idx", dir);
    size_t n;
    char *data = slurp(idx, &n);
    MC_REQUIRE(data);
    CHECK(memmem(data, n, "TOPSECRET", 9) == NULL);
    CHECK(memmem(data, n, "with open(path)", 15) != NULL);
    free(data);
    mc_tok_free(tok);
    fake_stop(&f);
}

/* Wall time of a shell command, in seconds; its output into out. */
static double timed(const char *cmd, char *out, size_t cap, int *rc) {
    double t0 = mc_time_s();
    *rc = run(cmd, out, cap);
    return mc_time_s() - t0;
}

/* Issue 14, finding 5: against a server that never answers, `complete
 * --reject` (a confidence escalation, then the rejection's) spent the budget
 * twice (20.7 s for 10 s) and its account said 10.6 s. Now the request's
 * wall time — measured around the whole request, and never more than the
 * process's own wall time — is at most its local stages plus the budget
 * + 10 %, and the account shows the failed call with its real time. Best of
 * three: spending the budget twice fails every attempt by a whole budget; a
 * machine busy with other work may delay one. */
MC_TEST_T(sec_stalled_server_one_budget, 120) {
    char repo[1024], cmd[8192], out[65536];
    secret_repo(repo, sizeof repo);
    const int budget_ms = 1500;
    const char *bin = mc_test_bin();
    double over = 1e9;
    for (int attempt = 0; attempt < 3 && over > 0; attempt++) {
        fake f;
        fake_start(&f, false);
        snprintf(cmd, sizeof cmd,
                 "%s complete -m models/stories260K.gguf --repo %s --file main.py --line 5 -t 1 "
                 "--remote http://127.0.0.1:%d --remote-kind openai --tau 1.0 --reject "
                 "--llm-budget-ms %d --json 2>/dev/null",
                 bin, repo, f.port, budget_ms);
        int rc;
        double wall = timed(cmd, out, sizeof out, &rc);
        fake_stop(&f);
        CHECK_MSG(rc == 0, "complete: %d: %s", rc, out);
        json_t *j = json_loads(out, 0, NULL);
        MC_REQUIRE(j);
        double ms_total = json_number_value(json_object_get(j, "ms_total"));
        double ms_llm = json_number_value(json_object_get(j, "ms_llm"));
        double local = json_number_value(json_object_get(j, "ms_retr1")) +
                       json_number_value(json_object_get(j, "ms_slm")) +
                       json_number_value(json_object_get(j, "ms_retr2"));
        CHECK(json_is_true(json_object_get(j, "llm_failed")));
        CHECK(json_integer_value(json_object_get(j, "llm_calls")) >= 1);
        CHECK(json_integer_value(json_object_get(j, "llm_requests")) >= 1);
        CHECK_MSG(ms_llm >= 0.9 * budget_ms, "the account says %.1f ms for the large model "
                  "(budget %d): the failed call's time is missing", ms_llm, budget_ms);
        CHECK_MSG(ms_total <= wall * 1e3 + 1, "the account (%.1f ms) exceeds the wall time (%.1f ms)",
                  ms_total, wall * 1e3);
        over = ms_total - (local + 1.10 * budget_ms);
        printf("request %.1f ms (local stages %.1f, large model %.1f; budget %d), process %.1f ms\n",
               ms_total, local, ms_llm, budget_ms, wall * 1e3);
        json_decref(j);
    }
    CHECK_MSG(over <= 0, "the request took %.1f ms more than its local stages + budget + 10 %%",
              over);
}

/* ---- the two UBSan findings ----------------------------------------------------------------- */

MC_TEST(sec_ubsan_vocab_without_byte_tokens) {
    /* a byte-level BPE vocabulary of one token ("a"), no byte tokens */
    char path[1200];
    snprintf(path, sizeof path, "%s/one.gguf", mc_test_tmpdir());
    mc_gguf_writer *w = mc_gguf_writer_new();
    MC_REQUIRE(w);
    const char *toks[] = {"a"};
    int32_t types[] = {1};
    mc_gguf_set_str(w, "general.architecture", "llama");
    mc_gguf_set_str(w, "tokenizer.ggml.model", "gpt2");
    mc_gguf_set_str(w, "tokenizer.ggml.pre", "qwen2");
    MC_REQUIRE(mc_gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 1) == 0);
    MC_REQUIRE(mc_gguf_set_arr(w, "tokenizer.ggml.token_type", MC_GGUF_I32, types, 1) == 0);
    MC_REQUIRE(mc_gguf_set_arr_str(w, "tokenizer.ggml.merges", NULL, NULL, 0) == 0);
    MC_REQUIRE(mc_gguf_writer_write(w, path, NULL) == 0);
    mc_gguf_writer_free(w);
    mc_tok *t;
    mc_err e;
    MC_REQUIRE(mc_tok_load_gguf_file(path, &t, &e) == 0);
    int64_t n = -1;
    /* count only (no buffer): the word "b" has no token at all */
    CHECK_EQ_INT(mc_tok_encode(t, "ab b", 4, 0, NULL, 0, &n), MC_EFULL);
    CHECK_EQ_INT(n, 1);
    int32_t ids[8];
    CHECK_EQ_INT(mc_tok_encode(t, "ab b", 4, 0, ids, 8, &n), 0);
    CHECK_EQ_INT(n, 1);
    mc_tok_free(t);
}

MC_TEST(sec_ubsan_llama2c_vocab_int_min) {
    char model[1200], out[1200];
    snprintf(model, sizeof model, "%s/m.bin", mc_test_tmpdir());
    snprintf(out, sizeof out, "%s/m.gguf", mc_test_tmpdir());
    int32_t h[7] = {8, 16, 1, 2, 2, INT32_MIN, 8};
    FILE *f = fopen(model, "wb");
    MC_REQUIRE(f && fwrite(h, sizeof h, 1, f) == 1);
    fclose(f);
    mc_err e;
    CHECK_EQ_INT(mc_convert_llama2c(model, mc_test_shared("models/stories260K/tok512.bin"), out, &e),
                 MC_EFORMAT);
    CHECK(strstr(e.msg, "implausible") != NULL);
    CHECK(access(out, F_OK) != 0);
}
