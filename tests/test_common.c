/* Tests of the error record and the test framework itself. */
#include "mccom/common.h"
#include "test.h"

MC_TEST(common_err_set_formats_message) {
    mc_err e;
    mc_err_clear(&e);
    CHECK_EQ_INT(e.code, MC_OK);
    int rc = mc_err_set(&e, MC_EFORMAT, 42, "field %s", "n_kv");
    CHECK_EQ_INT(rc, MC_EFORMAT);
    CHECK_EQ_INT(e.offset, 42);
    CHECK_EQ_STR(e.msg, "field n_kv");
    CHECK_EQ_STR(mc_code_name(MC_EFORMAT), "MC_EFORMAT");
    CHECK_EQ_STR(mc_code_name(12345), "MC_E?");
    CHECK(mc_err_set(NULL, MC_EIO, 0, "x") == MC_EIO);
}

MC_TEST(common_clock_is_monotonic) {
    int64_t a = mc_time_ns();
    int64_t b = mc_time_ns();
    CHECK(b >= a);
}
