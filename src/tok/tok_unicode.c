/* src/tok/tok_unicode.c — Unicode classification for the pre-tokenizers.
 *
 * Categories come from libutf8proc; the flag set and the whitespace set are
 * llama.cpp's (general category collapsed to one bit; White_Space from
 * PropList.txt, which is exactly Zs, Zl, Zp, U+0009..U+000D and U+0085).
 * Flags of the first 0x30000 codepoints are tabulated once (pthread_once);
 * the rest are asked of utf8proc. No hand-made category tables. */
#include "tok_internal.h"

#include <pthread.h>
#include <utf8proc.h>

#define MC__U_TABLE 0x30000u

static uint16_t g_flags[MC__U_TABLE];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static uint16_t flags_slow(uint32_t cp) {
    if (cp > 0x10FFFF)
        return MC__U_UNDEF;
    uint16_t f;
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_CN: f = MC__U_UNDEF; break;
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: f = MC__U_L; break;
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME: f = MC__U_M; break;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO: f = MC__U_N; break;
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO: f = MC__U_P; break;
    case UTF8PROC_CATEGORY_SM:
    case UTF8PROC_CATEGORY_SC:
    case UTF8PROC_CATEGORY_SK:
    case UTF8PROC_CATEGORY_SO: f = MC__U_S; break;
    case UTF8PROC_CATEGORY_ZS:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP: f = MC__U_Z | MC__U_WS; break;
    default: f = MC__U_C; break; /* Cc Cf Cs Co */
    }
    if ((cp >= 0x09 && cp <= 0x0D) || cp == 0x85)
        f |= MC__U_WS;
    return f;
}

static void build_table(void) {
    for (uint32_t cp = 0; cp < MC__U_TABLE; cp++)
        g_flags[cp] = flags_slow(cp);
}

uint16_t mc__u_flags(uint32_t cp) {
    if (cp < MC__U_TABLE) {
        pthread_once(&g_once, build_table);
        return g_flags[cp];
    }
    return flags_slow(cp);
}

uint32_t mc__u_decode(const uint8_t *s, size_t n, size_t i, size_t *len) {
    uint8_t c = s[i];
    if (c < 0x80) {
        *len = 1;
        return c;
    }
    int need;
    uint32_t cp;
    if (!(c & 0x40)) {
        need = -1;
        cp = 0;
    } else if (!(c & 0x20)) {
        need = 1;
        cp = c & 0x1F;
    } else if (!(c & 0x10)) {
        need = 2;
        cp = c & 0x0F;
    } else if (!(c & 0x08)) {
        need = 3;
        cp = c & 0x07;
    } else {
        need = -1;
        cp = 0;
    }
    if (need < 0 || i + (size_t)need >= n) {
        *len = 1;
        return 0xFFFD;
    }
    for (int k = 1; k <= need; k++) {
        if ((s[i + k] & 0xC0) != 0x80) {
            *len = 1;
            return 0xFFFD;
        }
        cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    *len = (size_t)need + 1;
    return cp;
}

int mc__u_encode(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | ((cp >> 18) & 0x07));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the
 * other 68 bytes are mapped, in byte order, to U+0100, U+0101, ... */
static bool byte_is_printable(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

uint32_t mc__u_byte_to_cp(uint8_t b) {
    if (byte_is_printable(b))
        return b;
    unsigned k = 0;
    for (unsigned x = 0; x < b; x++)
        if (!byte_is_printable(x))
            k++;
    return 0x100 + k;
}

int mc__u_cp_to_byte(uint32_t cp) {
    if (cp < 0x100)
        return byte_is_printable(cp) ? (int)cp : -1;
    if (cp >= 0x100 + 68)
        return -1;
    unsigned k = cp - 0x100;
    for (unsigned x = 0; x < 256; x++)
        if (!byte_is_printable(x) && k-- == 0)
            return (int)x;
    return -1;
}
