/* tests/test.h — the test framework: self-registering tests, checks.
 *
 * A test is `MC_TEST(name) { ... }` in any tests/test_*.c file; it registers
 * itself in the linker section "mc_tests", so no central list exists to edit.
 * The runner (tests/runner.c) forks each test into its own process with a
 * timeout. A failed CHECK prints file:line and marks the test failed but goes
 * on; MC_REQUIRE stops the test. MC_SKIP("why") ends it as skipped.
 *
 * Paths: tests run from the repository root. mc_test_shared("x") gives the
 * path of x inside ../shared (or $MC_SHARED); mc_test_tmpdir() a fresh
 * directory owned by this test process, removed by the runner.
 */
#ifndef MCCOM_TEST_H
#define MCCOM_TEST_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

struct mc_test {
    const char *name;
    void (*fn)(void);
    int timeout_s;
    const char *file;
};

void mc_test_fail_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void mc_test_skip(const char *why) __attribute__((noreturn));
void mc_test_abort(void) __attribute__((noreturn));
int mc_test_failed(void);
const char *mc_test_shared(const char *rel);
const char *mc_test_tmpdir(void);
/* Path of the mccom binary of the build under test (for end-to-end tests). */
const char *mc_test_bin(void);

#define MC__TEST_REG(name_, timeout_)                                                \
    static void mc_test_fn_##name_(void);                                            \
    static const struct mc_test mc_test_rec_##name_                                  \
        __attribute__((used, section("mc_tests"), aligned(sizeof(void *)))) = {     \
            #name_, mc_test_fn_##name_, timeout_, __FILE__};                         \
    static void mc_test_fn_##name_(void)

/* Default timeout: 120 s (ASan builds are several times slower). */
#define MC_TEST(name_) MC__TEST_REG(name_, 120)
#define MC_TEST_T(name_, timeout_s_) MC__TEST_REG(name_, timeout_s_)

#define CHECK(cond)                                                \
    do {                                                           \
        if (!(cond))                                               \
            mc_test_fail_at(__FILE__, __LINE__, "CHECK(%s)", #cond); \
    } while (0)

#define CHECK_MSG(cond, ...)                                \
    do {                                                    \
        if (!(cond))                                        \
            mc_test_fail_at(__FILE__, __LINE__, __VA_ARGS__); \
    } while (0)

#define MC_REQUIRE(cond)                                               \
    do {                                                               \
        if (!(cond)) {                                                 \
            mc_test_fail_at(__FILE__, __LINE__, "REQUIRE(%s)", #cond); \
            mc_test_abort();                                           \
        }                                                              \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                              \
    do {                                                                                \
        long long mc__a = (long long)(a), mc__b = (long long)(b);                       \
        if (mc__a != mc__b)                                                             \
            mc_test_fail_at(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, mc__a, \
                            mc__b);                                                     \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                                 \
    do {                                                                                   \
        const char *mc__a = (a), *mc__b = (b);                                             \
        if (!mc__a || !mc__b || strcmp(mc__a, mc__b) != 0)                                \
            mc_test_fail_at(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b,      \
                            mc__a ? mc__a : "(null)", mc__b ? mc__b : "(null)");           \
    } while (0)

/* |a-b| <= tol */
#define CHECK_NEAR(a, b, tol)                                                             \
    do {                                                                                  \
        double mc__a = (double)(a), mc__b = (double)(b);                                  \
        if (!(fabs(mc__a - mc__b) <= (double)(tol)))                                      \
            mc_test_fail_at(__FILE__, __LINE__, "%s ~ %s: %.9g vs %.9g (tol %g)", #a, #b, \
                            mc__a, mc__b, (double)(tol));                                 \
    } while (0)

#define MC_SKIP(why) mc_test_skip(why)

#endif
