/* Error codes' string table and the error record. */
#include "mccom/common.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

const char *mc_code_name(int code) {
    switch (code) {
#define MC__ERR_NAME(name, value, msg) \
    case value:                        \
        return #name;
        MC_ERRORS(MC__ERR_NAME)
#undef MC__ERR_NAME
    }
    return "MC_E?";
}

const char *mc_code_message(int code) {
    switch (code) {
#define MC__ERR_MSG(name, value, msg) \
    case value:                       \
        return msg;
        MC_ERRORS(MC__ERR_MSG)
#undef MC__ERR_MSG
    }
    return "unknown error";
}

int mc_err_set(mc_err *err, int code, int64_t offset, const char *fmt, ...) {
    if (!err)
        return code;
    err->code = code;
    err->offset = offset;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}

void mc_err_clear(mc_err *err) {
    if (!err)
        return;
    err->code = MC_OK;
    err->offset = -1;
    err->msg[0] = '\0';
}

int64_t mc_time_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

double mc_time_s(void) { return (double)mc_time_ns() * 1e-9; }
