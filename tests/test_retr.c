/* Tests of the retr module on small synthetic repositories: windows, Jaccard
 * and BM25 by hand, tie-breaking, the leakage filter, walk rules, incremental
 * updates against a full rebuild, the on-disk format and its corruption,
 * queries, prompt assembly and watch mode. */
#include "mccom/retr.h"
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static void write_file(const char *dir, const char *rel, const char *text) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    for (char *p = path + strlen(dir) + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0755);
            *p = '/';
        }
    FILE *f = fopen(path, "wb");
    MC_REQUIRE(f);
    fwrite(text, 1, strlen(text), f);
    fclose(f);
}

/* "L<i>" for i in [from, from+n), one per line, plus a shared word. */
static char *numbered_lines(int from, int n) {
    char *s = malloc((size_t)n * 32 + 1);
    size_t k = 0;
    for (int i = from; i < from + n; i++)
        k += (size_t)sprintf(s + k, "L%d common\n", i);
    s[k] = '\0';
    return s;
}

static mc_retr_index *build(const char *dir) {
    mc_retr_index *ix;
    mc_err e;
    MC_REQUIRE(mc_retr_new(&ix, dir, NULL, NULL, &e) == 0);
    int rc = mc_retr_sync(ix, NULL, &e);
    CHECK_MSG(rc == 0, "sync: %s", e.msg);
    return ix;
}

static int search(const mc_retr_index *ix, const char *text, mc_retr_sim sim, const char *file,
                  int line, mc_retr_hit *hits, int k) {
    mc_retr_query q = mc_retr_query_default();
    q.text = text;
    q.len = strlen(text);
    q.sim = sim;
    q.k = k;
    q.file = file;
    q.cursor_line = line;
    mc_err e;
    int n = mc_retr_search(ix, &q, hits, k, &e);
    CHECK_MSG(n >= 0, "search: %s", e.msg);
    return n;
}

MC_TEST_T(retr_window_boundaries, 10) {
    const char *d = mc_test_tmpdir();
    char *t45 = numbered_lines(0, 45);
    write_file(d, "w45.py", t45);
    write_file(d, "w5.py", "A0 x\nA1 x\nA2 x\nA3 x\nA4 x\n");
    char *t20 = numbered_lines(100, 20), *t21 = numbered_lines(200, 21);
    write_file(d, "w20.py", t20);
    write_file(d, "w21.py", t21);
    write_file(d, "empty.py", "");
    mc_retr_index *ix = build(d);
    mc_retr_stats st;
    mc_retr_get_stats(ix, &st);
    CHECK_EQ_INT(st.n_files, 5);
    CHECK_EQ_INT(st.n_windows, 4 + 1 + 1 + 2);
    CHECK_EQ_INT(st.n_lines, 45 + 5 + 20 + 21);
    mc_retr_hit h[10];
    /* line 44 is only in the last window [30,45) */
    int n = search(ix, "L44", MC_RETR_JACCARD, NULL, -1, h, 10);
    MC_REQUIRE(n == 1);
    CHECK_EQ_STR(h[0].file, "w45.py");
    CHECK_EQ_INT(h[0].start_line, 30);
    CHECK_EQ_INT(h[0].n_lines, 15);
    /* line 25 is in [10,30) and [20,40) */
    n = search(ix, "L25", MC_RETR_JACCARD, NULL, -1, h, 10);
    MC_REQUIRE(n == 2);
    CHECK_EQ_INT(h[0].start_line + h[1].start_line, 30);
    CHECK_EQ_INT(h[0].n_lines, 20);
    n = search(ix, "L5", MC_RETR_JACCARD, NULL, -1, h, 10);
    MC_REQUIRE(n == 1);
    CHECK_EQ_INT(h[0].start_line, 0);
    n = search(ix, "A4", MC_RETR_JACCARD, NULL, -1, h, 10);
    MC_REQUIRE(n == 1);
    CHECK_EQ_INT(h[0].start_line, 0);
    CHECK_EQ_INT(h[0].n_lines, 5);
    n = search(ix, "L220", MC_RETR_JACCARD, NULL, -1, h, 10);
    MC_REQUIRE(n == 1);
    CHECK_EQ_INT(h[0].start_line, 10);
    CHECK_EQ_INT(h[0].n_lines, 11);
    n = search(ix, "L119", MC_RETR_JACCARD, NULL, -1, h, 10);
    MC_REQUIRE(n == 1);
    CHECK_EQ_INT(h[0].n_lines, 20);
    mc_str w;
    CHECK_EQ_INT(mc_retr_window_text(ix, "w5.py", 1, 2, &w), 0);
    CHECK(w.len == 9 && !memcmp(w.ptr, "A1 x\nA2 x", 9));
    CHECK_EQ_INT(mc_retr_window_text(ix, "w5.py", 4, 2, &w), MC_ERANGE);
    CHECK_EQ_INT(mc_retr_window_text(ix, "nope.py", 0, 1, &w), MC_ENOTFOUND);
    mc_retr_free(ix);
    free(t45);
    free(t20);
    free(t21);
}

MC_TEST_T(retr_jaccard_by_hand, 10) {
    const char *d = mc_test_tmpdir();
    write_file(d, "a.py", "x y z\n");
    write_file(d, "b.py", "x w\n");
    write_file(d, "c.py", "q\n");
    mc_retr_index *ix = build(d);
    mc_retr_hit h[10];
    /* Q = {x,y}: a = {x,y,z}: 2/3; b = {x,w}: 1/3; c shares nothing */
    int n = search(ix, "x y y", MC_RETR_JACCARD, NULL, -1, h, 10);
    MC_REQUIRE(n == 2);
    CHECK_EQ_STR(h[0].file, "a.py");
    CHECK_NEAR(h[0].score, 2.0 / 3.0, 1e-12);
    CHECK_EQ_STR(h[1].file, "b.py");
    CHECK_NEAR(h[1].score, 1.0 / 3.0, 1e-12);
    /* punctuation is a term of its own: Q = {f, (, )}, a2 = {f,(,),x} */
    write_file(d, "d.py", "f(x)\n");
    CHECK_EQ_INT(mc_retr_update_file(ix, "d.py", NULL), 1);
    n = search(ix, "f()", MC_RETR_JACCARD, NULL, -1, h, 10);
    MC_REQUIRE(n == 1);
    CHECK_NEAR(h[0].score, 3.0 / 4.0, 1e-12);
    CHECK_EQ_INT(search(ix, "", MC_RETR_JACCARD, NULL, -1, h, 10), 0);
    CHECK_EQ_INT(search(ix, "nothing_shared", MC_RETR_JACCARD, NULL, -1, h, 10), 0);
    mc_retr_free(ix);
}

MC_TEST_T(retr_bm25_by_hand, 10) {
    const char *d = mc_test_tmpdir();
    write_file(d, "a.py", "x x y\n");
    write_file(d, "b.py", "y z\n");
    write_file(d, "c.py", "w\n");
    mc_retr_index *ix = build(d);
    mc_retr_hit h[10];
    /* N = 3 windows, avgdl = (3+2+1)/3 = 2, k1 = 1.2, b = 0.75 */
    double k1 = 1.2, b = 0.75, avgdl = 2.0;
    double idf_x = log(1 + (3 - 1 + 0.5) / (1 + 0.5));
    double idf_y = log(1 + (3 - 2 + 0.5) / (2 + 0.5));
    double ax = idf_x * 2 * (k1 + 1) / (2 + k1 * (1 - b + b * 3 / avgdl));
    double ay = idf_y * 1 * (k1 + 1) / (1 + k1 * (1 - b + b * 3 / avgdl));
    double by = idf_y * 1 * (k1 + 1) / (1 + k1 * (1 - b + b * 2 / avgdl));
    int n = search(ix, "x y", MC_RETR_BM25, NULL, -1, h, 10);
    MC_REQUIRE(n == 2);
    CHECK_EQ_STR(h[0].file, "a.py");
    CHECK_NEAR(h[0].score, ax + ay, 1e-12);
    CHECK_EQ_STR(h[1].file, "b.py");
    CHECK_NEAR(h[1].score, by, 1e-12);
    /* a repeated query term counts once */
    n = search(ix, "y y y", MC_RETR_BM25, NULL, -1, h, 10);
    MC_REQUIRE(n == 2);
    CHECK_EQ_STR(h[0].file, "b.py"); /* shorter window wins at equal tf */
    CHECK_NEAR(h[0].score, by, 1e-12);
    CHECK_NEAR(h[1].score, ay, 1e-12);
    mc_retr_sim s;
    CHECK_EQ_INT(mc_retr_sim_parse("bm25", &s), 0);
    CHECK_EQ_INT(s, MC_RETR_BM25);
    CHECK_EQ_INT(mc_retr_sim_parse("cosine", &s), MC_EINVAL);
    mc_retr_free(ix);
}

MC_TEST_T(retr_ties_are_deterministic, 10) {
    const char *d = mc_test_tmpdir();
    /* same content in three files: order by path, then start line */
    write_file(d, "z.py", "alpha beta\n");
    write_file(d, "a/b.py", "alpha beta\n");
    write_file(d, "m.py", "alpha beta\n");
    mc_retr_index *ix = build(d);
    mc_retr_hit h[10];
    int n = search(ix, "alpha", MC_RETR_JACCARD, NULL, -1, h, 2);
    MC_REQUIRE(n == 2);
    CHECK_EQ_STR(h[0].file, "a/b.py");
    CHECK_EQ_STR(h[1].file, "m.py");
    n = search(ix, "alpha", MC_RETR_BM25, NULL, -1, h, 10);
    MC_REQUIRE(n == 3);
    CHECK_EQ_STR(h[2].file, "z.py");
    mc_retr_free(ix);
}

MC_TEST_T(retr_leakage_filter, 10) {
    const char *d = mc_test_tmpdir();
    char *t = numbered_lines(0, 50); /* windows [0,20) [10,30) [20,40) [30,50) */
    write_file(d, "own.py", t);
    write_file(d, "other.py", "common\n");
    mc_retr_index *ix = build(d);
    mc_retr_hit h[10];
    int n = search(ix, "common", MC_RETR_JACCARD, "own.py", 25, h, 10);
    /* [0,20) ends before line 25; [10,30) overlaps it; later ones follow it */
    int own = 0, other = 0;
    for (int i = 0; i < n; i++) {
        if (!strcmp(h[i].file, "own.py")) {
            own++;
            CHECK(h[i].start_line + h[i].n_lines <= 25);
        } else {
            other++;
        }
    }
    CHECK_EQ_INT(own, 1);
    CHECK_EQ_INT(other, 1);
    /* a window that ends exactly at the cursor line is fine */
    n = search(ix, "L0", MC_RETR_JACCARD, "own.py", 20, h, 10);
    CHECK_EQ_INT(n, 1);
    n = search(ix, "L0", MC_RETR_JACCARD, "own.py", 19, h, 10);
    CHECK_EQ_INT(n, 0);
    /* the path may be given in another spelling */
    n = search(ix, "L0", MC_RETR_JACCARD, "./own.py", 19, h, 10);
    CHECK_EQ_INT(n, 0);
    /* other files are not filtered */
    n = search(ix, "common", MC_RETR_JACCARD, "other.py", 0, h, 10);
    CHECK_EQ_INT(n, 4);
    mc_retr_free(ix);
    free(t);
}

MC_TEST_T(retr_walk_rules, 10) {
    const char *d = mc_test_tmpdir();
    write_file(d, "keep.py", "token\n");
    write_file(d, "src/x.c", "token\n");
    write_file(d, "src/x.txt", "token\n");           /* not a source extension */
    write_file(d, "build/out.py", "token\n");        /* ignored dir */
    write_file(d, "gen/a.gen.py", "token\n");        /* ignored glob */
    write_file(d, "gen/keep.gen.py", "token\n");     /* re-included */
    write_file(d, "gen/.gitignore", "local.py\n");   /* nested rules */
    write_file(d, "gen/local.py", "token\n");
    write_file(d, "node_modules/m.js", "token\n");   /* vendored */
    write_file(d, ".hidden/h.py", "token\n");        /* hidden */
    write_file(d, "docs/conf.py", "token\n");        /* anchored rule */
    write_file(d, "lib/docs/conf.py", "token\n");    /* not matched by /docs */
    write_file(d, "auto.py", "# Code generated by protoc. DO NOT EDIT.\ntoken\n");
    write_file(d, ".gitignore", "# comment\nbuild/\n*.gen.py\n!keep.gen.py\n/docs\n");
    char bin[] = "token\0\1\2";
    {
        char p[4096];
        snprintf(p, sizeof p, "%s/bin.py", d);
        FILE *f = fopen(p, "wb");
        fwrite(bin, 1, sizeof bin, f);
        fclose(f);
    }
    mc_retr_index *ix = build(d);
    mc_retr_hit h[20];
    int n = search(ix, "token", MC_RETR_JACCARD, NULL, -1, h, 20);
    const char *want[] = {"gen/keep.gen.py", "keep.py", "lib/docs/conf.py", "src/x.c"};
    CHECK_EQ_INT(n, (int)MC_ARRAY_LEN(want));
    for (int i = 0; i < n && i < (int)MC_ARRAY_LEN(want); i++)
        CHECK_EQ_STR(h[i].file, want[i]);
    /* update_file applies the same rules to a single path */
    write_file(d, "build/out2.py", "token\n");
    CHECK_EQ_INT(mc_retr_update_file(ix, "build/out2.py", NULL), 0);
    CHECK_EQ_INT(mc_retr_update_file(ix, "gen/local.py", NULL), 0);
    write_file(d, "lib/new.py", "token\n");
    CHECK_EQ_INT(mc_retr_update_file(ix, "lib/new.py", NULL), 1);
    mc_retr_free(ix);
}

/* Save to a file and return its bytes (malloc'd). */
static char *save_bytes(const mc_retr_index *ix, const char *path, size_t *len) {
    mc_err e;
    CHECK_MSG(mc_retr_save(ix, path, &e) == 0, "save: %s", e.msg);
    FILE *f = fopen(path, "rb");
    MC_REQUIRE(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    MC_REQUIRE(fread(buf, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void same_results(const mc_retr_index *a, const mc_retr_index *b, const char *q) {
    mc_retr_hit ha[10], hb[10];
    for (int sim = 0; sim < 2; sim++) {
        int na = search(a, q, (mc_retr_sim)sim, NULL, -1, ha, 10);
        int nb = search(b, q, (mc_retr_sim)sim, NULL, -1, hb, 10);
        CHECK_EQ_INT(na, nb);
        for (int i = 0; i < na && i < nb; i++) {
            CHECK_EQ_STR(ha[i].file, hb[i].file);
            CHECK_EQ_INT(ha[i].start_line, hb[i].start_line);
            CHECK(ha[i].score == hb[i].score);
        }
    }
}

MC_TEST_T(retr_incremental_equals_rebuild, 10) {
    char dir[4096], p1[4096], p2[4096];
    snprintf(dir, sizeof dir, "%s/repo", mc_test_tmpdir());
    mkdir(dir, 0755);
    snprintf(p1, sizeof p1, "%s/inc.idx", mc_test_tmpdir());
    snprintf(p2, sizeof p2, "%s/full.idx", mc_test_tmpdir());
    for (int f = 0; f < 12; f++) {
        char name[64];
        snprintf(name, sizeof name, "pkg%d/mod%d.py", f % 3, f);
        char *t = numbered_lines(f * 7, 30 + f * 5);
        write_file(dir, name, t);
        free(t);
    }
    mc_retr_index *ix = build(dir);
    /* edits: change, add, delete, change to identical content, many keystrokes */
    char *t = numbered_lines(1000, 33);
    write_file(dir, "pkg1/mod4.py", t);
    free(t);
    CHECK_EQ_INT(mc_retr_update_file(ix, "pkg1/mod4.py", NULL), 1);
    write_file(dir, "pkg0/new.py", "def f(x):\n    return x + 1\n");
    CHECK_EQ_INT(mc_retr_update_file(ix, "pkg0/new.py", NULL), 1);
    char gone[4200];
    snprintf(gone, sizeof gone, "%s/pkg2/mod5.py", dir);
    unlink(gone);
    CHECK_EQ_INT(mc_retr_update_file(ix, "pkg2/mod5.py", NULL), 1);
    CHECK_EQ_INT(mc_retr_update_file(ix, "pkg2/mod5.py", NULL), 0);
    for (int k = 0; k < 30; k++) { /* typing: an editor buffer per keystroke */
        char buf[256];
        snprintf(buf, sizeof buf, "def g():\n    value = compute(%.*s)\n", k, "abcdefghijklmnopqrstuvwxyz0123");
        CHECK_EQ_INT(mc_retr_set_file(ix, "pkg0/mod0.py", buf, strlen(buf), NULL), 0);
    }
    char *final = "def g():\n    value = compute(abc)\n";
    write_file(dir, "pkg0/mod0.py", final);
    CHECK_EQ_INT(mc_retr_update_file(ix, "pkg0/mod0.py", NULL), 1);
    /* a second sync finds nothing to do */
    mc_retr_sync_stats st;
    CHECK_EQ_INT(mc_retr_sync(ix, &st, NULL), 0);
    CHECK_EQ_INT(st.n_indexed, 0);
    CHECK_EQ_INT(st.n_removed, 0);
    CHECK_EQ_INT(st.n_unchanged, 12);

    mc_retr_index *full = build(dir);
    size_t la, lb;
    char *a = save_bytes(ix, p1, &la), *b = save_bytes(full, p2, &lb);
    CHECK_EQ_INT(la, lb);
    CHECK(la == lb && !memcmp(a, b, la));
    mc_retr_stats sa, sb;
    mc_retr_get_stats(ix, &sa);
    mc_retr_get_stats(full, &sb);
    CHECK_EQ_INT(sa.n_windows, sb.n_windows);
    CHECK_EQ_INT(sa.n_terms, sb.n_terms);
    CHECK_EQ_INT(sa.n_postings, sb.n_postings);
    CHECK_EQ_INT(sa.n_tokens, sb.n_tokens);
    same_results(ix, full, "L1005 common\nL20 common");
    same_results(ix, full, "value = compute(abc)");

    /* a loaded index is the same index too, and syncs as unchanged */
    mc_retr_index *ld;
    MC_REQUIRE(mc_retr_new(&ld, dir, NULL, NULL, NULL) == 0);
    mc_err e;
    CHECK_MSG(mc_retr_load(ld, p1, &e) == 0, "load: %s", e.msg);
    same_results(ld, full, "L1005 common\nL20 common");
    CHECK_EQ_INT(mc_retr_sync(ld, &st, NULL), 0);
    CHECK_EQ_INT(st.n_indexed, 0);
    CHECK_EQ_INT(st.n_unchanged, 12);
    free(a);
    free(b);
    mc_retr_free(ld);
    mc_retr_free(ix);
    mc_retr_free(full);
}

MC_TEST_T(retr_sync_detects_changes, 10) {
    const char *d = mc_test_tmpdir();
    write_file(d, "a.py", "one\n");
    write_file(d, "b.py", "two\n");
    mc_retr_index *ix = build(d);
    mc_retr_sync_stats st;
    write_file(d, "a.py", "one changed\n");
    write_file(d, "c.py", "three\n");
    char p[4096];
    snprintf(p, sizeof p, "%s/b.py", d);
    unlink(p);
    CHECK_EQ_INT(mc_retr_sync(ix, &st, NULL), 0);
    CHECK_EQ_INT(st.n_indexed, 2);
    CHECK_EQ_INT(st.n_removed, 1);
    CHECK_EQ_INT(st.n_seen, 2);
    /* same content, new mtime: re-read, hash equal, not re-indexed */
    struct timespec ts[2] = {{1000, 0}, {1000, 0}};
    snprintf(p, sizeof p, "%s/c.py", d);
    utimensat(AT_FDCWD, p, ts, 0);
    CHECK_EQ_INT(mc_retr_sync(ix, &st, NULL), 0);
    CHECK_EQ_INT(st.n_indexed, 0);
    CHECK_EQ_INT(st.n_unchanged, 2);
    CHECK_EQ_INT(mc_retr_remove_file(ix, "c.py", NULL), 0);
    CHECK_EQ_INT(mc_retr_remove_file(ix, "c.py", NULL), MC_ENOTFOUND);
    mc_retr_free(ix);
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    MC_REQUIRE(f);
    fwrite(p, 1, n, f);
    fclose(f);
}

MC_TEST_T(retr_corrupt_index_is_an_error, 10) {
    char dir[4096], idx[4096], bad[4096];
    snprintf(dir, sizeof dir, "%s/repo", mc_test_tmpdir());
    mkdir(dir, 0755);
    snprintf(idx, sizeof idx, "%s/i.idx", mc_test_tmpdir());
    snprintf(bad, sizeof bad, "%s/bad.idx", mc_test_tmpdir());
    write_file(dir, "a.py", "import os\nx = os.path.join(a, b)\n");
    write_file(dir, "b.py", "def f():\n    return 1\n");
    mc_retr_index *ix = build(dir);
    size_t n;
    char *good = save_bytes(ix, idx, &n);
    mc_retr_index *ld;
    MC_REQUIRE(mc_retr_new(&ld, dir, NULL, NULL, NULL) == 0);
    mc_err e;
    mc_retr_stats st;
    CHECK_EQ_INT(mc_retr_load(ld, "/nonexistent/x.idx", &e), MC_ENOTFOUND);

    /* every single-byte flip and every truncation is rejected cleanly */
    char *cp = malloc(n);
    for (size_t i = 0; i < n; i++) {
        memcpy(cp, good, n);
        cp[i] ^= 0x5a;
        int rc = mc_retr_load_mem(ld, cp, n, &e);
        CHECK_MSG(rc == MC_EFORMAT, "flip at %zu: rc %d", i, rc);
        mc_retr_get_stats(ld, &st);
        CHECK_EQ_INT(st.n_files, 0);
    }
    for (size_t k = 0; k < n; k += 7)
        CHECK_EQ_INT(mc_retr_load_mem(ld, good, k, &e), MC_EFORMAT);
    /* messages a user can act on */
    memcpy(cp, good, n);
    cp[60] ^= 1;
    write_bytes(bad, cp, n);
    CHECK_EQ_INT(mc_retr_load(ld, bad, &e), MC_EFORMAT);
    CHECK(strstr(e.msg, "checksum") != NULL);
    write_bytes(bad, "print('hello')\n", 15);
    CHECK_EQ_INT(mc_retr_load(ld, bad, &e), MC_EFORMAT);
    CHECK(strstr(e.msg, "magic") != NULL);
    memcpy(cp, good, n);
    cp[8] = 9; /* version */
    CHECK_EQ_INT(mc_retr_load_mem(ld, cp, n, &e), MC_EFORMAT);
    CHECK(strstr(e.msg, "version") != NULL);
    CHECK_EQ_INT(e.offset, 8);
    /* other parameters, another root: a rebuild, not a wrong answer */
    mc_retr_params p = mc_retr_params_default();
    p.window_lines = 30;
    mc_retr_index *other;
    MC_REQUIRE(mc_retr_new(&other, dir, &p, NULL, NULL) == 0);
    CHECK_EQ_INT(mc_retr_load(other, idx, &e), MC_EFORMAT);
    CHECK(strstr(e.msg, "windows") != NULL);
    mc_retr_free(other);
    MC_REQUIRE(mc_retr_new(&other, "/tmp", NULL, NULL, NULL) == 0);
    CHECK_EQ_INT(mc_retr_load(other, idx, &e), MC_EFORMAT);
    CHECK(strstr(e.msg, "another directory") != NULL);
    mc_retr_free(other);
    /* after a failed load, a sync rebuilds */
    mc_retr_sync_stats ss;
    CHECK_EQ_INT(mc_retr_sync(ld, &ss, NULL), 0);
    CHECK_EQ_INT(ss.n_indexed, 2);
    CHECK_EQ_INT(mc_retr_load(ld, idx, &e), 0);
    mc_retr_get_stats(ld, &st);
    CHECK_EQ_INT(st.n_files, 2);
    free(cp);
    free(good);
    mc_retr_free(ld);
    mc_retr_free(ix);
}

MC_TEST_T(retr_query_text_rounds, 10) {
    char *q;
    size_t n;
    const char *pre = "l1\nl2\nl3\nl4\nl5";
    CHECK_EQ_INT(mc_retr_query_text(pre, strlen(pre), 3, NULL, 0, &q, &n), 0);
    CHECK_EQ_STR(q, "l3\nl4\nl5");
    free(q);
    /* a trailing newline: the cursor is at the start of an empty line */
    const char *pre2 = "l1\nl2\nl3\n";
    CHECK_EQ_INT(mc_retr_query_text(pre2, strlen(pre2), 2, NULL, 0, &q, &n), 0);
    CHECK_EQ_STR(q, "l2\nl3");
    free(q);
    CHECK_EQ_INT(mc_retr_query_text(pre, strlen(pre), 20, NULL, 0, &q, &n), 0);
    CHECK_EQ_STR(q, pre);
    free(q);
    /* round 2: half the lines plus the draft's non-empty lines */
    const char *draft = "  x = 1\n\n   \n  y = 2";
    CHECK_EQ_INT(mc_retr_query_text(pre, strlen(pre), 4, draft, strlen(draft), &q, &n), 0);
    CHECK_EQ_STR(q, "l4\nl5\n  x = 1\n  y = 2");
    CHECK_EQ_INT(n, strlen(q));
    free(q);
    CHECK_EQ_INT(mc_retr_query_text("", 0, 4, "z", 1, &q, &n), 0);
    CHECK_EQ_STR(q, "z");
    free(q);
}

MC_TEST_T(retr_prompt_budget_and_order, 10) {
    const char *d = mc_test_tmpdir();
    write_file(d, "a.py", "alpha beta gamma\n");
    write_file(d, "b.py", "alpha beta\n");
    char big[8192];
    size_t k = 0;
    for (int i = 0; i < 200; i++)
        k += (size_t)sprintf(big + k, "alpha x%d\n", i);
    write_file(d, "big.py", big);
    mc_retr_index *ix = build(d);
    mc_retr_hit h[10];
    int n = search(ix, "alpha beta gamma", MC_RETR_JACCARD, NULL, -1, h, 10);
    MC_REQUIRE(n >= 3);
    CHECK_EQ_STR(h[0].file, "a.py");
    CHECK_EQ_STR(h[1].file, "b.py");
    mc_retr_prompt_params pp = mc_retr_prompt_params_default();
    pp.target_path = "main.py";
    char *out;
    size_t len;
    int used, toks;
    CHECK_EQ_INT(mc_retr_prompt(ix, h, n, &pp, &out, &len, &used, &toks, NULL), 0);
    CHECK(used >= 3 && used <= n);
    CHECK(toks <= 1000);
    /* most similar last */
    char *pa = strstr(out, "# a.py\n"), *pb = strstr(out, "# b.py\n");
    CHECK(pa && pb && pb < pa);
    CHECK(strstr(out, "# the below code fragment can be found in:\n# a.py\n# ------") != NULL);
    CHECK(strstr(out, "# alpha beta gamma\n") != NULL);
    CHECK(len > 0 && out[len - 1] == '\n');
    free(out);
    /* a block that does not fit is skipped and the next one tried */
    int ta, tb, tbig;
    CHECK_EQ_INT(mc_retr_prompt(ix, &h[0], 1, &pp, &out, &len, &used, &ta, NULL), 0);
    free(out);
    CHECK_EQ_INT(mc_retr_prompt(ix, &h[1], 1, &pp, &out, &len, &used, &tb, NULL), 0);
    free(out);
    CHECK_EQ_INT(mc_retr_prompt(ix, &h[2], 1, &pp, &out, &len, &used, &tbig, NULL), 0);
    free(out);
    CHECK(tbig > ta && ta > 0 && tb > 0);
    mc_retr_hit order[3] = {h[2], h[0], h[1]};
    pp.budget_tokens = ta + tb;
    CHECK_EQ_INT(mc_retr_prompt(ix, order, 3, &pp, &out, &len, &used, &toks, NULL), 0);
    CHECK_EQ_INT(used, 2);
    CHECK_EQ_INT(toks, ta + tb);
    mc_retr_tokenizer t = mc_retr_tokenizer_split();
    CHECK_EQ_INT(t.count_tokens(NULL, out, len), toks);
    CHECK(strstr(out, "big.py") == NULL);
    free(out);
    pp.budget_tokens = 0;
    CHECK_EQ_INT(mc_retr_prompt(ix, h, n, &pp, &out, &len, &used, &toks, NULL), 0);
    CHECK_EQ_INT(used, 0);
    CHECK_EQ_STR(out, "");
    free(out);
    /* C-family comments */
    pp.budget_tokens = 1000;
    pp.target_path = "src/x.rs";
    CHECK_EQ_INT(mc_retr_prompt(ix, h, 1, &pp, &out, &len, &used, &toks, NULL), 0);
    CHECK(strstr(out, "// a.py\n// ---") != NULL);
    free(out);
    CHECK_EQ_STR(mc_retr_comment_prefix("a/b.py"), "# ");
    CHECK_EQ_STR(mc_retr_comment_prefix("a.c"), "// ");
    CHECK_EQ_STR(mc_retr_comment_prefix("a.cpp"), "// ");
    CHECK_EQ_STR(mc_retr_comment_prefix("A.java"), "// ");
    CHECK_EQ_STR(mc_retr_comment_prefix("a.ts"), "// ");
    CHECK_EQ_STR(mc_retr_comment_prefix("a.go"), "// ");
    CHECK_EQ_STR(mc_retr_comment_prefix("a.lua"), "-- ");
    CHECK_EQ_STR(mc_retr_comment_prefix("x.d/Makefile"), "// ");
    mc_retr_free(ix);
}

/* A custom tokenizer plugs in: one id per byte, "model"-like counting. */
static int byte_tok(void *ud, const char *s, size_t n, uint32_t *ids, int cap) {
    (void)ud;
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ' || s[i] == '\n')
            continue;
        if (k < cap)
            ids[k] = (unsigned char)s[i];
        k++;
    }
    return k;
}
static int byte_count(void *ud, const char *s, size_t n) {
    (void)ud;
    (void)s;
    return (int)n;
}

MC_TEST_T(retr_pluggable_tokenizer, 10) {
    const char *d = mc_test_tmpdir();
    write_file(d, "a.py", "abc\n");
    write_file(d, "b.py", "xyz\n");
    mc_retr_tokenizer t = {"bytes-test", NULL, byte_tok, byte_count};
    mc_retr_index *ix;
    MC_REQUIRE(mc_retr_new(&ix, d, NULL, &t, NULL) == 0);
    MC_REQUIRE(mc_retr_sync(ix, NULL, NULL) == 0);
    mc_retr_hit h[4];
    int n = search(ix, "cab", MC_RETR_JACCARD, NULL, -1, h, 4);
    MC_REQUIRE(n == 1);
    CHECK_NEAR(h[0].score, 1.0, 1e-12);
    char idx[4096];
    snprintf(idx, sizeof idx, "%s/t.idx", d);
    CHECK_EQ_INT(mc_retr_save(ix, idx, NULL), 0);
    mc_retr_index *other = build(d); /* splitter */
    mc_err e;
    CHECK_EQ_INT(mc_retr_load(other, idx, &e), MC_EFORMAT);
    CHECK(strstr(e.msg, "tokenizer") != NULL);
    mc_retr_free(other);
    mc_retr_free(ix);
}

MC_TEST_T(retr_watch_reindexes_changed_file, 10) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/repo", mc_test_tmpdir());
    mkdir(dir, 0755);
    write_file(dir, "a.py", "first_version\n");
    mc_retr_index *ix = build(dir);
    mc_retr_watch *w;
    mc_err e;
    int rc = mc_retr_watch_open(&w, ix, &e);
    if (rc)
        MC_SKIP("inotify not available");
    CHECK_EQ_INT(mc_retr_watch_poll(w, 0, NULL), 0);
    write_file(dir, "a.py", "second_version\n");
    write_file(dir, "sub/new.py", "brand_new\n"); /* new directory too */
    mc_retr_hit h[4];
    int found = 0;
    double t0 = mc_time_s();
    while (mc_time_s() - t0 < 5 && !found) {
        rc = mc_retr_watch_poll(w, 200, &e);
        CHECK(rc >= 0);
        found = search(ix, "second_version", MC_RETR_JACCARD, NULL, -1, h, 4) == 1 &&
                search(ix, "brand_new", MC_RETR_JACCARD, NULL, -1, h, 4) == 1;
    }
    CHECK(found);
    CHECK_EQ_INT(search(ix, "first_version", MC_RETR_JACCARD, NULL, -1, h, 4), 0);
    /* a file written in the new directory after it was added to the watch */
    write_file(dir, "sub/later.py", "later_file\n");
    found = 0;
    t0 = mc_time_s();
    while (mc_time_s() - t0 < 5 && !found) {
        CHECK(mc_retr_watch_poll(w, 200, &e) >= 0);
        found = search(ix, "later_file", MC_RETR_JACCARD, NULL, -1, h, 4) == 1;
    }
    CHECK(found);
    mc_retr_watch_close(w);
    mc_retr_free(ix);
}
