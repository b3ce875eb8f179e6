/* mccom/common.h — error codes, the error record, and small shared helpers.
 *
 * Every fallible public function returns 0 or a negative MC_E* code. Functions
 * that parse or open things also take an optional `mc_err *` that receives the
 * code, a message a user can act on, and (for parsers) the byte offset where
 * the problem was found. There is no global "last error".
 */
#ifndef MCCOM_COMMON_H
#define MCCOM_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* X-macro: name, value, default message. One string table for all codes. */
#define MC_ERRORS(X)                                                   \
    X(MC_OK, 0, "ok")                                                  \
    X(MC_ENOMEM, -1, "out of memory")                                  \
    X(MC_EIO, -2, "input/output error")                                \
    X(MC_EFORMAT, -3, "malformed input")                               \
    X(MC_EUNSUPPORTED, -4, "unsupported")                              \
    X(MC_EINVAL, -5, "invalid argument")                               \
    X(MC_ENOTFOUND, -6, "not found")                                   \
    X(MC_ETYPE, -7, "wrong type")                                      \
    X(MC_ERANGE, -8, "value out of range")                             \
    X(MC_ECANCELED, -9, "canceled")                                    \
    X(MC_ETIMEOUT, -10, "timed out")                                   \
    X(MC_ENET, -11, "network error")                                   \
    X(MC_EFULL, -12, "capacity exhausted")                             \
    X(MC_EACCES, -13, "access denied (outside the workspace)")

enum mc_code {
#define MC__ERR_ENUM(name, value, msg) name = value,
    MC_ERRORS(MC__ERR_ENUM)
#undef MC__ERR_ENUM
};

/* Human-readable name of a code ("MC_EFORMAT") and its default message. */
const char *mc_code_name(int code);
const char *mc_code_message(int code);

/* An error record. `offset` is a byte offset into the input being parsed, or
 * -1 when it does not apply. */
typedef struct mc_err {
    int code;
    int64_t offset;
    char msg[256];
} mc_err;

/* Fill `err` (if non-NULL) and return `code`. printf-style message. */
int mc_err_set(mc_err *err, int code, int64_t offset, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Reset to MC_OK with an empty message. */
void mc_err_clear(mc_err *err);

/* A non-owning slice of bytes (usually text inside a mapped file). */
typedef struct mc_str {
    const char *ptr;
    size_t len;
} mc_str;

/* Monotonic clock in seconds and nanoseconds. */
double mc_time_s(void);
int64_t mc_time_ns(void);

#define MC_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MC_MIN(a, b) ((a) < (b) ? (a) : (b))
#define MC_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
