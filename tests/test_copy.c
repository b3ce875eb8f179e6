/* Tests of the copy module on small hand-made repositories: proposals from
 * two-line and one-line contexts, in-file recency before other files,
 * re-indentation, the typed-prefix filter, the leakage rule (a cut document,
 * text below the cursor), multi-line proposals, incremental sync == rebuild
 * (saved bytes and proposals), the on-disk format's corruption, staleness,
 * and token-level prompt lookup. */
#include "../src/copy/copy_internal.h" /* the loader without its checksum */
#include "mccom/copy.h"
#include "test.h"

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

typedef struct repo {
    char dir[512];
    mc_retr_index *ix;
    mc_copy_index *cx;
} repo;

static void repo_open(repo *r, const char *name) {
    snprintf(r->dir, sizeof r->dir, "%s/%s", mc_test_tmpdir(), name);
    mkdir(r->dir, 0755);
}

static void repo_index(repo *r) {
    mc_err e;
    MC_REQUIRE(mc_retr_new(&r->ix, r->dir, NULL, NULL, &e) == 0);
    MC_REQUIRE(mc_retr_sync(r->ix, NULL, &e) == 0);
    MC_REQUIRE(mc_copy_new(&r->cx, r->ix, &e) == 0);
    int rc = mc_copy_sync(r->cx, NULL, &e);
    CHECK_MSG(rc == 0, "sync: %s", e.msg);
    CHECK(mc_copy_synced(r->cx));
}

static void repo_close(repo *r) {
    mc_copy_free(r->cx);
    mc_retr_free(r->ix);
    r->cx = NULL;
    r->ix = NULL;
}

/* Propose for a document whose cursor is at its end. */
static void propose(const repo *r, const char *path, const char *doc, int line,
                    const mc_copy_params *p, mc_copy_result *out) {
    mc_copy_query q = {path, doc, strlen(doc), strlen(doc), line, 1};
    mc_err e;
    int rc = mc_copy_propose(r->cx, &q, p, out, &e);
    CHECK_MSG(rc == 0, "propose: %s", e.msg);
    MC_REQUIRE(rc == 0);
}

static const char *top(const mc_copy_result *r) { return r->n > 0 ? r->c[0].text : "(none)"; }

static bool has(const mc_copy_result *r, const char *text) {
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->c[i].text, text))
            return true;
    return false;
}

MC_TEST(copy_two_line_context_before_one_line) {
    repo r;
    repo_open(&r, "two");
    write_file(r.dir, "a.py",
               "x = 1\n"
               "foo()\n"
               "bar()\n"
               "\n"
               "y = 2\n"
               "foo()\n"
               "baz()\n");
    repo_index(&r);
    mc_copy_result res;
    /* two lines of context pick the one that followed both */
    propose(&r, "q.py", "y = 2\n\nfoo()\n", -1, NULL, &res);
    CHECK_EQ_STR(top(&res), "baz()");
    CHECK_EQ_INT(res.c[0].context, 2);
    CHECK_EQ_INT(res.c[0].source, MC_COPY_REPO);
    CHECK_EQ_STR(res.c[0].file, "a.py");
    CHECK_EQ_INT(res.c[0].line, 6);
    CHECK(has(&res, "bar()")); /* the one-line match follows */
    CHECK(res.c[0].precision > 0.0f && res.c[0].precision < 1.0f);
    mc_copy_result_fini(&res);
    /* one line of context: both, with agreement 1 of 2 each, in path/line order */
    propose(&r, "q.py", "z = 3\nfoo()\n", -1, NULL, &res);
    CHECK_EQ_INT(res.n, 2);
    CHECK_EQ_STR(top(&res), "bar()");
    CHECK_EQ_INT(res.c[0].context, 1);
    CHECK_EQ_INT(res.c[0].count, 1);
    CHECK_EQ_INT(res.c[0].total, 2);
    CHECK(has(&res, "baz()"));
    mc_copy_result_fini(&res);
    /* no occurrence of the context: nothing (a proposal never invents a line) */
    propose(&r, "q.py", "unseen()\n", -1, NULL, &res);
    CHECK_EQ_INT(res.n, 0);
    mc_copy_result_fini(&res);
    /* agreement: a second file votes for bar() after foo() */
    repo_close(&r);
    write_file(r.dir, "b.py", "w = 0\nfoo()\nbar()\n");
    repo_index(&r);
    propose(&r, "q.py", "z = 3\nfoo()\n", -1, NULL, &res);
    CHECK_EQ_STR(top(&res), "bar()");
    CHECK_EQ_INT(res.c[0].count, 2);
    CHECK_EQ_INT(res.c[0].total, 3);
    mc_copy_result_fini(&res);
    repo_close(&r);
}

MC_TEST(copy_in_file_recency_before_other_files) {
    repo r;
    repo_open(&r, "rec");
    /* another file says "after step(): other()" three times */
    write_file(r.dir, "lib.py", "step()\nother()\nstep()\nother()\nstep()\nother()\n");
    repo_index(&r);
    const char *doc = "step()\nfirst()\n"
                      "pass\n"
                      "step()\nsecond()\n"
                      "pass\n"
                      "step()\n";
    mc_copy_result res;
    propose(&r, "mine.py", doc, -1, NULL, &res);
    MC_REQUIRE(res.n == 3);
    /* the query's own file first (the nearer match first at equal agreement), then the repository */
    CHECK_EQ_STR(res.c[0].text, "second()");
    CHECK_EQ_INT(res.c[0].source, MC_COPY_IN_FILE);
    CHECK_EQ_INT(res.c[0].distance, 3);
    CHECK_EQ_INT(res.c[0].line, 4);
    CHECK_EQ_STR(res.c[0].file, "mine.py");
    CHECK_EQ_STR(res.c[1].text, "first()");
    CHECK_EQ_STR(res.c[2].text, "other()");
    CHECK_EQ_INT(res.c[2].count, 3);
    CHECK_EQ_INT(res.c[2].source, MC_COPY_REPO);
    mc_copy_result_fini(&res);
    /* k limits the list */
    mc_copy_params p = mc_copy_params_default();
    p.k = 1;
    propose(&r, "mine.py", doc, -1, &p, &res);
    CHECK_EQ_INT(res.n, 1);
    CHECK_EQ_INT(res.n_considered, 3);
    mc_copy_result_fini(&res);
    repo_close(&r);
}

MC_TEST(copy_reindents_to_the_cursor) {
    repo r;
    repo_open(&r, "ind");
    write_file(r.dir, "src.py",
               "def f(x):\n"
               "    if x:\n"
               "        return 1\n"
               "    for y in x:\n"
               "        g(y)\n"
               "    else:\n"
               "        h()\n");
    repo_index(&r);
    mc_copy_result res;
    /* deeper context here (8 spaces, 4 in the source): the line keeps its relative indentation */
    propose(&r, "q.py", "class K:\n    def g(self, x):\n        if x:\n", -1, NULL, &res);
    CHECK_EQ_STR(top(&res), "            return 1");
    mc_copy_result_fini(&res);
    /* the editor already indented the new line: only the rest is suggested */
    propose(&r, "q.py", "class K:\n    def g(self, x):\n        if x:\n        ", -1, NULL, &res);
    CHECK_EQ_STR(top(&res), "    return 1");
    mc_copy_result_fini(&res);
    /* typed whitespace short of the indentation gets the rest of it ... */
    propose(&r, "q.py", "if x:\n  ", -1, NULL, &res);
    CHECK_EQ_STR(top(&res), "  return 1");
    mc_copy_result_fini(&res);
    /* ... and whitespace that does not fit it stands; the code follows it */
    propose(&r, "q.py", "if x:\n\t", -1, NULL, &res);
    CHECK_EQ_STR(top(&res), "return 1");
    mc_copy_result_fini(&res);
    /* a dedent: the line gives up as much indentation as in the source */
    propose(&r, "q.py", "class K:\n    def g(self, x):\n        for y in x:\n            g(y)\n", -1,
            NULL, &res);
    CHECK_EQ_STR(top(&res), "        else:");
    mc_copy_result_fini(&res);
    /* tabs at the query: the source's spaces are replaced by the query's tabs */
    propose(&r, "q.py", "def k(x):\n\tif x:\n", -1, NULL, &res);
    CHECK_EQ_STR(top(&res), "\t    return 1");
    mc_copy_result_fini(&res);
    repo_close(&r);
}

MC_TEST(copy_typed_prefix_filter) {
    repo r;
    repo_open(&r, "pre");
    write_file(r.dir, "a.py", "go()\nbar(1)\ngo()\nbaz(2)\ngo()\nqux(3)\n");
    repo_index(&r);
    mc_copy_result res;
    propose(&r, "q.py", "go()\nba", -1, NULL, &res);
    CHECK_EQ_INT(res.n, 2);
    CHECK(has(&res, "r(1)"));
    CHECK(has(&res, "z(2)"));
    mc_copy_result_fini(&res);
    propose(&r, "q.py", "go()\n    baz", -1, NULL, &res);
    CHECK_EQ_INT(res.n, 1);
    CHECK_EQ_STR(top(&res), "(2)");
    CHECK_EQ_INT(res.n_considered, 3);
    mc_copy_result_fini(&res);
    propose(&r, "q.py", "go()\nzz", -1, NULL, &res);
    CHECK_EQ_INT(res.n, 0);
    mc_copy_result_fini(&res);
    /* the whole line typed: nothing is left to suggest */
    propose(&r, "q.py", "go()\nqux(3)", -1, NULL, &res);
    CHECK_EQ_INT(res.n, 0);
    mc_copy_result_fini(&res);
    repo_close(&r);
}

MC_TEST(copy_leakage_rule) {
    repo r;
    repo_open(&r, "leak");
    /* the finished file: the answer after "mark()" occurs only below line 5 */
    write_file(r.dir, "own.py",
               "early = 0\n"   /* 0 */
               "mark()\n"      /* 1 */
               "before()\n"    /* 2 */
               "x = 1\n"       /* 3 */
               "y = 2\n"       /* 4 */
               "mark()\n"      /* 5: the cursor is on line 6 */
               "SECRET()\n"    /* 6: the target */
               "mark()\n"      /* 7 */
               "SECRET()\n");  /* 8 */
    repo_index(&r);
    mc_copy_result res;
    /* benchmark style: a cut document (lines 3-5; the first may be partial),
     * the cursor on line 6; lines 0-3 come from the index, nothing at or after 6 */
    propose(&r, "own.py", " = 1\ny = 2\nmark()\n", 6, NULL, &res);
    CHECK_EQ_INT(res.n, 1);
    CHECK_EQ_STR(top(&res), "before()");
    CHECK_EQ_INT(res.c[0].line, 2);
    CHECK(!has(&res, "SECRET()"));
    mc_copy_result_fini(&res);
    /* the cut's first line is taken whole from the index, so a context that
     * reaches it matches: "x = 1" is the indexed line 3 */
    propose(&r, "own.py", " = 1\n", 4, NULL, &res);
    CHECK_EQ_INT(res.n, 0); /* "x = 1" is followed by nothing above line 4 */
    mc_copy_result_fini(&res);
    /* an editor: the text below the cursor is the user's own and may be used */
    const char *doc = "early = 0\nmark()\n\nmark()\nSECRET()\n";
    mc_copy_query q2 = {"own.py", doc, strlen(doc), strlen("early = 0\nmark()\n"), 2, 1};
    mc_copy_params p = mc_copy_params_default();
    mc_err e;
    MC_REQUIRE(mc_copy_propose(r.cx, &q2, &p, &res, &e) == 0);
    CHECK_EQ_INT(res.n, 0); /* without use_below: the buffer's own above-text has no match */
    mc_copy_result_fini(&res);
    p.use_below = true;
    MC_REQUIRE(mc_copy_propose(r.cx, &q2, &p, &res, &e) == 0);
    CHECK_EQ_STR(top(&res), "SECRET()");
    CHECK_EQ_INT(res.c[0].source, MC_COPY_BELOW);
    mc_copy_result_fini(&res);
    repo_close(&r);
}

MC_TEST(copy_multi_line_proposals) {
    repo r;
    repo_open(&r, "multi");
    write_file(r.dir, "a.py",
               "    start()\n"
               "    one(\n"
               "\n"
               "        arg)\n"
               "    two()\n");
    repo_index(&r);
    mc_copy_query q = {"q.py", "start()\n", 8, 8, -1, 3};
    mc_copy_result res;
    mc_err e;
    MC_REQUIRE(mc_copy_propose(r.cx, &q, NULL, &res, &e) == 0);
    /* the next 3 non-blank lines, re-indented from 4 to 0 */
    CHECK_EQ_STR(top(&res), "one(\n    arg)\ntwo()");
    mc_copy_result_fini(&res);
    repo_close(&r);
}

/* Save an index into a temporary file and return its bytes. */
static char *saved(const mc_copy_index *cx, const char *name, size_t *n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", mc_test_tmpdir(), name);
    mc_err e;
    int rc = mc_copy_save(cx, path, &e);
    CHECK_MSG(rc == 0, "save: %s", e.msg);
    FILE *f = fopen(path, "rb");
    MC_REQUIRE(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)len + 1);
    MC_REQUIRE(fread(b, 1, (size_t)len, f) == (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* Proposals of a few queries, as one string. */
static char *answers(const repo *r) {
    static const char *docs[] = {"common()\n", "a = 1\ncommon()\n", "shared = True\n",
                                 "    common()\n    x", "def f():\n"};
    size_t cap = 1 << 14, k = 0;
    char *s = malloc(cap);
    for (size_t i = 0; i < MC_ARRAY_LEN(docs); i++) {
        mc_copy_result res;
        propose(r, "q.py", docs[i], -1, NULL, &res);
        for (int j = 0; j < res.n; j++)
            k += (size_t)snprintf(s + k, cap - k, "%s|%.4f|%d|%d|%s:%d\n", res.c[j].text,
                                  (double)res.c[j].precision, res.c[j].count, res.c[j].total,
                                  res.c[j].file, res.c[j].line);
        mc_copy_result_fini(&res);
        k += (size_t)snprintf(s + k, cap - k, "--\n");
    }
    return s;
}

MC_TEST(copy_incremental_sync_equals_rebuild) {
    repo r;
    repo_open(&r, "inc");
    write_file(r.dir, "a.py", "a = 1\ncommon()\nxa()\nshared = True\n");
    write_file(r.dir, "b.py", "common()\nxb()\ncommon()\nxb()\n");
    write_file(r.dir, "c/d.py", "def f():\n    common()\n    xd()\n");
    write_file(r.dir, "e.py", "common()\nxe()\n");
    repo_index(&r);
    mc_err e;
    /* edits: change, add, remove, an editor buffer; each followed by a sync */
    write_file(r.dir, "a.py", "a = 1\ncommon()\nchanged()\nshared = True\nxa()\n");
    MC_REQUIRE(mc_retr_update_file(r.ix, "a.py", &e) == 1);
    MC_REQUIRE(mc_copy_sync(r.cx, NULL, &e) == 0);
    write_file(r.dir, "f.py", "common()\nxb()\nshared = True\nnew()\n");
    char gone[600];
    snprintf(gone, sizeof gone, "%s/e.py", r.dir);
    unlink(gone);
    mc_copy_sync_stats st;
    MC_REQUIRE(mc_retr_sync(r.ix, NULL, &e) == 0);
    MC_REQUIRE(mc_copy_sync(r.cx, &st, &e) == 0);
    CHECK_EQ_INT(st.n_added, 1);
    CHECK_EQ_INT(st.n_removed, 1);
    CHECK_EQ_INT(st.n_updated, 0);
    CHECK_EQ_INT(st.n_unchanged, 3);
    const char *buf = "common()\nfrom_buffer()\n";
    MC_REQUIRE(mc_retr_set_file(r.ix, "b.py", buf, strlen(buf), &e) == 0);
    CHECK(!mc_copy_synced(r.cx));
    mc_copy_result res;
    mc_copy_query q = {"q.py", "x\n", 2, 2, -1, 1};
    CHECK_EQ_INT(mc_copy_propose(r.cx, &q, NULL, &res, &e), MC_EUNSUPPORTED);
    MC_REQUIRE(mc_copy_sync(r.cx, &st, &e) == 0);
    CHECK_EQ_INT(st.n_updated, 1);
    MC_REQUIRE(mc_copy_sync(r.cx, &st, &e) == 0); /* nothing changed: O(1) */
    CHECK_EQ_INT(st.n_updated + st.n_added + st.n_removed + st.n_unchanged, 0);
    size_t n1, n2;
    char *b1 = saved(r.cx, "inc.copy", &n1);
    char *a1 = answers(&r);

    /* a rebuild from scratch of the same content */
    repo fresh = r;
    fresh.ix = NULL;
    fresh.cx = NULL;
    MC_REQUIRE(mc_retr_new(&fresh.ix, r.dir, NULL, NULL, &e) == 0);
    MC_REQUIRE(mc_retr_sync(fresh.ix, NULL, &e) == 0);
    MC_REQUIRE(mc_retr_set_file(fresh.ix, "b.py", buf, strlen(buf), &e) == 0);
    MC_REQUIRE(mc_copy_new(&fresh.cx, fresh.ix, &e) == 0);
    MC_REQUIRE(mc_copy_sync(fresh.cx, NULL, &e) == 0);
    char *b2 = saved(fresh.cx, "fresh.copy", &n2);
    char *a2 = answers(&fresh);
    CHECK(n1 == n2 && !memcmp(b1, b2, n1));
    CHECK_EQ_STR(a1, a2);
    CHECK(strstr(a1, "from_buffer()") != NULL);
    CHECK(strstr(a1, "changed()") != NULL);
    CHECK(strstr(a1, "xe()") == NULL);
    mc_copy_stats s1, s2;
    mc_copy_get_stats(r.cx, &s1);
    mc_copy_get_stats(fresh.cx, &s2);
    CHECK_EQ_INT(s1.n_postings, s2.n_postings);
    CHECK_EQ_INT(s1.n_keys, s2.n_keys);
    CHECK_EQ_INT(s1.n_lines, s2.n_lines);
    free(b1);
    free(b2);
    free(a1);
    free(a2);
    repo_close(&fresh);
    repo_close(&r);
}

MC_TEST(copy_index_file_round_trip_and_corruption) {
    repo r;
    repo_open(&r, "store");
    write_file(r.dir, "a.py", "a = 1\ncommon()\nxa()\n");
    write_file(r.dir, "b.py", "common()\nxb()\n");
    repo_index(&r);
    char path[1024], bad[1024];
    MC_REQUIRE(mc_copy_path_for("/x/.mccom-retr.idx", path, sizeof path) == 0);
    CHECK_EQ_STR(path, "/x/.mccom-retr.idx.copy");
    CHECK_EQ_INT(mc_copy_path_for("/x/.mccom-retr.idx", path, 8), MC_ERANGE);
    snprintf(path, sizeof path, "%s/idx.copy", mc_test_tmpdir());
    snprintf(bad, sizeof bad, "%s/bad.copy", mc_test_tmpdir());
    mc_err e;
    MC_REQUIRE(mc_copy_save(r.cx, path, &e) == 0);
    char *a0 = answers(&r);
    size_t n;
    char *bytes = saved(r.cx, "again.copy", &n);

    /* a good file loads; the sync trusts it (nothing re-derived) */
    mc_copy_index *ld;
    MC_REQUIRE(mc_copy_new(&ld, r.ix, &e) == 0);
    MC_REQUIRE(mc_copy_load(ld, path, &e) == 0);
    CHECK(!mc_copy_synced(ld));
    mc_copy_sync_stats st;
    MC_REQUIRE(mc_copy_sync(ld, &st, &e) == 0);
    CHECK_EQ_INT(st.n_unchanged, 2);
    CHECK_EQ_INT(st.n_added + st.n_updated + st.n_removed, 0);
    mc_copy_free(r.cx);
    r.cx = ld;
    char *a1 = answers(&r);
    CHECK_EQ_STR(a0, a1);
    free(a1);

    /* a missing file */
    CHECK_EQ_INT(mc_copy_load(ld, bad, &e), MC_ENOTFOUND);
    /* every truncation, a flipped byte anywhere, another version, another root */
    for (size_t cut = 0; cut < n; cut += (cut < 64 ? 1 : 7)) {
        mc_err_clear(&e);
        CHECK_EQ_INT(mc_copy_load_mem(ld, bytes, cut, &e), MC_EFORMAT);
        CHECK(e.msg[0] != '\0');
    }
    for (size_t at = 0; at < n; at++) {
        bytes[at] ^= 0x20;
        int rc = mc_copy_load_mem(ld, bytes, n, &e);
        CHECK_MSG(rc == MC_EFORMAT, "flipped byte %zu: rc %d", at, rc);
        bytes[at] ^= 0x20;
    }
    /* past the checksum, every flipped byte is refused or loads into an index that a
     * sync takes apart and rebuilds without harm (ASan watches) */
    for (size_t at = 40; at < n; at++) {
        for (int bit = 0; bit < 8; bit += 3) {
            bytes[at] ^= (char)(1 << bit);
            int rc = mc__copy_load_mem(ld, bytes, n, false, &e);
            CHECK(rc == 0 || rc == MC_EFORMAT);
            CHECK_EQ_INT(mc_copy_sync(ld, NULL, &e), 0);
            bytes[at] ^= (char)(1 << bit);
        }
    }
    bytes[8] = 2; /* version 2 */
    CHECK_EQ_INT(mc_copy_load_mem(ld, bytes, n, &e), MC_EFORMAT);
    CHECK(strstr(e.msg, "version 2") != NULL);
    bytes[8] = 1;
    FILE *f = fopen(bad, "wb");
    MC_REQUIRE(f);
    fputs("MCRETRIX this is a retrieval index, not a copy index ..........", f);
    fclose(f);
    CHECK_EQ_INT(mc_copy_load(ld, bad, &e), MC_EFORMAT);
    CHECK_MSG(strstr(e.msg, "not a mccom copy index") && strstr(e.msg, "bad.copy"), "%s", e.msg);
    repo other;
    repo_open(&other, "other");
    write_file(other.dir, "a.py", "a = 1\ncommon()\nxa()\n");
    repo_index(&other);
    CHECK_EQ_INT(mc_copy_load(other.cx, path, &e), MC_EFORMAT);
    CHECK_MSG(strstr(e.msg, "another directory") != NULL, "%s", e.msg);
    repo_close(&other);
    /* after a failed load the index is empty and a sync rebuilds it */
    CHECK_EQ_INT(mc_copy_load_mem(ld, bytes, n / 2, &e), MC_EFORMAT);
    mc_copy_stats s;
    mc_copy_get_stats(ld, &s);
    CHECK_EQ_INT(s.n_files, 0);
    MC_REQUIRE(mc_copy_sync(ld, &st, &e) == 0);
    CHECK_EQ_INT(st.n_added, 2);
    a1 = answers(&r);
    CHECK_EQ_STR(a0, a1);
    /* a loaded file whose content changed since is re-derived by the sync */
    MC_REQUIRE(mc_copy_load(ld, path, &e) == 0);
    MC_REQUIRE(mc_retr_set_file(r.ix, "b.py", "common()\nnewer()\n", 17, &e) == 0);
    MC_REQUIRE(mc_copy_sync(ld, &st, &e) == 0);
    CHECK_EQ_INT(st.n_updated, 1);
    CHECK_EQ_INT(st.n_unchanged, 1);
    free(a0);
    free(a1);
    free(bytes);
    repo_close(&r);
}

MC_TEST(copy_bad_arguments) {
    repo r;
    repo_open(&r, "args");
    write_file(r.dir, "a.py", "x()\ny()\n");
    repo_index(&r);
    mc_err e;
    mc_copy_result res;
    mc_copy_query q = {"q.py", "x()\n", 4, 5, -1, 1};
    CHECK_EQ_INT(mc_copy_propose(r.cx, &q, NULL, &res, &e), MC_EINVAL);
    q.cursor = 4;
    q.line = 0; /* the document has a line above the cursor: line 0 is impossible */
    CHECK_EQ_INT(mc_copy_propose(r.cx, &q, NULL, &res, &e), MC_EINVAL);
    q.line = -1;
    mc_copy_params p = mc_copy_params_default();
    p.max_context = 17;
    CHECK_EQ_INT(mc_copy_propose(r.cx, &q, &p, &res, &e), MC_EINVAL);
    p = mc_copy_params_default();
    MC_REQUIRE(mc_copy_propose(r.cx, &q, &p, &res, &e) == 0);
    CHECK_EQ_STR(top(&res), "y()");
    mc_copy_result_fini(&res);
    /* an empty document, an empty repository */
    mc_copy_query empty = {NULL, NULL, 0, 0, -1, 1};
    MC_REQUIRE(mc_copy_propose(r.cx, &empty, NULL, &res, &e) == 0);
    CHECK_EQ_INT(res.n, 0);
    mc_copy_result_fini(&res);
    mc_copy_index *cx;
    CHECK_EQ_INT(mc_copy_new(&cx, NULL, &e), MC_EINVAL);
    repo_close(&r);
}

MC_TEST(copy_prompt_lookup) {
    int32_t out[8];
    int m;
    /* ... 5 6 7 | 9 ... 5 6 7 → 9 follows the latest earlier "5 6 7" */
    const int32_t a[] = {1, 5, 6, 7, 8, 2, 5, 6, 7, 9, 3, 5, 6, 7};
    int n = mc_copy_lookup(a, (int)MC_ARRAY_LEN(a), 1, 4, out, 3, &m);
    CHECK_EQ_INT(m, 3);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(out[0], 9);
    CHECK_EQ_INT(out[1], 3);
    CHECK_EQ_INT(out[2], 5);
    /* the longest suffix first: "4 5" occurs once, "5" later alone */
    const int32_t b[] = {4, 5, 10, 11, 5, 20, 4, 5};
    n = mc_copy_lookup(b, (int)MC_ARRAY_LEN(b), 1, 4, out, 8, &m);
    CHECK_EQ_INT(m, 2);
    CHECK_EQ_INT(n, 6);
    CHECK_EQ_INT(out[0], 10);
    CHECK_EQ_INT(out[4], 4);
    CHECK_EQ_INT(out[5], 5);
    /* min_n excludes short matches */
    n = mc_copy_lookup(b, (int)MC_ARRAY_LEN(b), 3, 4, out, 8, &m);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(m, 0);
    /* an overlapping occurrence counts, the suffix itself does not */
    const int32_t c[] = {7, 7, 7};
    n = mc_copy_lookup(c, 3, 1, 4, out, 8, &m);
    CHECK_EQ_INT(m, 2);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(out[0], 7);
    const int32_t d[] = {1, 2, 3};
    CHECK_EQ_INT(mc_copy_lookup(d, 3, 1, 4, out, 8, &m), 0);
    CHECK_EQ_INT(mc_copy_lookup(d, 1, 1, 4, out, 8, &m), 0);
    CHECK_EQ_INT(mc_copy_lookup(d, 3, 0, 4, out, 8, &m), MC_EINVAL);
    CHECK_EQ_INT(mc_copy_lookup(d, 3, 2, 17, out, 8, &m), MC_EINVAL);
}

MC_TEST(copy_fuzzy_context_when_nothing_matches) {
    repo r;
    repo_open(&r, "fuzzy");
    write_file(r.dir, "a.py", "def f(items, tax):\n    total = compute_total(items, tax)\n    return total\n");
    /* the query's own finished file: a similar line below the cursor is followed by SECRET() */
    write_file(r.dir, "own.py", "a = 0\n"
                                "subtotal = compute_total(items, vat) + shipping\n" /* context */
                                "target()\n"                                       /* line 2 */
                                "subtotal = compute_total(items, vat) + handling\n"
                                "SECRET()\n");
    repo_index(&r);
    mc_copy_result res;
    /* no line equals "total = compute_total(items, fee)": the similar one's follower */
    propose(&r, "q.py", "total = compute_total(items, fee)\n", -1, NULL, &res);
    MC_REQUIRE(res.n >= 1);
    CHECK_EQ_STR(top(&res), "return total");
    CHECK_EQ_INT(res.c[0].context, 0);
    CHECK(res.c[0].similarity >= 0.5f && res.c[0].similarity <= 1.5f);
    CHECK_EQ_STR(res.c[0].file, "a.py");
    CHECK(res.c[0].precision > 0.0f && res.c[0].precision < 0.5f);
    mc_copy_result_fini(&res);
    /* switched off: nothing */
    mc_copy_params p = mc_copy_params_default();
    p.fuzzy = false;
    propose(&r, "q.py", "total = compute_total(items, fee)\n", -1, &p, &res);
    CHECK_EQ_INT(res.n, 0);
    mc_copy_result_fini(&res);
    /* an exact match anywhere comes first and no fuzzy one is made */
    propose(&r, "q.py", "    total = compute_total(items, tax)\n", -1, NULL, &res);
    CHECK_EQ_INT(res.n, 1);
    CHECK_EQ_INT(res.c[0].context, 1);
    mc_copy_result_fini(&res);
    /* the leakage rule holds for similar contexts too: own.py's lines at and after the cursor
     * (line 2) are never read, though line 3 is the most similar to the context */
    propose(&r, "own.py", "a = 0\nsubtotal = compute_total(items, vat) + shipping\n", 2, NULL, &res);
    CHECK(!has(&res, "SECRET()"));
    CHECK(!has(&res, "target()"));
    mc_copy_result_fini(&res);
    repo_close(&r);
}

/* `mccom index` keeps the copy index beside the retrieval index's file, rebuilds a
 * corrupt one with a message, and --no-copy leaves it out. */
MC_TEST_T(copy_cli_index_file, 60) {
    repo r;
    repo_open(&r, "cli");
    write_file(r.dir, "a.py", "x = 1\nfoo()\nbar()\n");
    char idx[1024], cpy[1100], cmd[4096], out[8192];
    snprintf(idx, sizeof idx, "%s/x.idx", mc_test_tmpdir());
    snprintf(cpy, sizeof cpy, "%s.copy", idx);
    snprintf(cmd, sizeof cmd, "%s index %s --index %s 2>&1", mc_test_bin(), r.dir, idx);
    FILE *p = popen(cmd, "r");
    MC_REQUIRE(p);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    CHECK_EQ_INT(pclose(p), 0);
    CHECK_MSG(strstr(out, "copy index:") != NULL, "%s", out);
    struct stat st;
    CHECK(stat(cpy, &st) == 0 && st.st_size > 40);
    /* corrupt: reported and rebuilt */
    FILE *f = fopen(cpy, "r+b");
    MC_REQUIRE(f);
    fseek(f, 50, SEEK_SET);
    fputc('!', f);
    fclose(f);
    p = popen(cmd, "r");
    MC_REQUIRE(p);
    n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    CHECK_EQ_INT(pclose(p), 0);
    CHECK_MSG(strstr(out, "checksum mismatch") && strstr(out, "rebuilding the copy index"), "%s",
              out);
    mc_retr_index *ix;
    mc_copy_index *cx;
    mc_err e;
    MC_REQUIRE(mc_retr_new(&ix, r.dir, NULL, NULL, &e) == 0);
    MC_REQUIRE(mc_copy_new(&cx, ix, &e) == 0);
    CHECK_MSG(mc_copy_load(cx, cpy, &e) == 0, "%s", e.msg); /* rewritten whole */
    mc_copy_free(cx);
    mc_retr_free(ix);
    /* --no-copy: none */
    unlink(cpy);
    snprintf(cmd, sizeof cmd, "%s index %s --index %s --no-copy 2>&1", mc_test_bin(), r.dir, idx);
    p = popen(cmd, "r");
    MC_REQUIRE(p);
    n = fread(out, 1, sizeof out - 1, p);
    CHECK_EQ_INT(pclose(p), 0);
    CHECK(stat(cpy, &st) != 0);
}
