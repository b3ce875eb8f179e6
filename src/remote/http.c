/* src/remote/http.c — one HTTP request attempt over libcurl's multi
 * interface: a reused easy handle (the multi handle's connection cache keeps
 * the connection alive between calls), a connect timeout, an absolute
 * deadline, and a cancel flag polled every 10 ms.
 *
 * Deliberately not here: retries, back-off, the circuit breaker, JSON (all in
 * remote.c). This file never logs and never looks at what it sends. */
#include "remote_internal.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* The longest the client sleeps in curl_multi_poll before looking at the
 * cancel flag and the deadline again. */
#define POLL_SLICE_MS 10

_Static_assert(sizeof(((mc__http *)0)->errbuf) >= CURL_ERROR_SIZE, "libcurl's error buffer size");

static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;
static CURLcode g_curl_init_rc = CURLE_FAILED_INIT;

static void curl_init_once(void) { g_curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

int mc__http_global_init(mc_err *err) {
    pthread_once(&g_curl_once, curl_init_once);
    if (g_curl_init_rc != CURLE_OK)
        return mc_err_set(err, MC_EIO, -1, "libcurl initialisation failed: %s",
                          curl_easy_strerror(g_curl_init_rc));
    return 0;
}

/* Byte counts of what went over the connection (HTTP level: the request
 * line, headers and body each way). libcurl's own size counters count a small
 * POST body twice (once inside the request size), so the debug callback is the
 * one exact source. It only counts; it never looks at the bytes. */
static int on_debug(CURL *e, curl_infotype type, char *data, size_t n, void *ud) {
    (void)e;
    (void)data;
    mc__http *h = ud;
    if (type == CURLINFO_HEADER_OUT || type == CURLINFO_DATA_OUT)
        h->n_out += (int64_t)n;
    else if (type == CURLINFO_HEADER_IN || type == CURLINFO_DATA_IN)
        h->n_in += (int64_t)n;
    return 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud) {
    mc__http *h = ud;
    size_t n = size * nmemb;
    if (h->len + n > MC__HTTP_MAX_BODY) {
        h->overflow = true;
        return 0; /* aborts the transfer (CURLE_WRITE_ERROR) */
    }
    if (h->len + n + 1 > h->cap) {
        size_t nc = h->cap ? h->cap : 4096;
        while (nc < h->len + n + 1)
            nc *= 2;
        char *nb = realloc(h->buf, nc);
        if (!nb)
            return 0;
        h->buf = nb;
        h->cap = nc;
    }
    memcpy(h->buf + h->len, data, n);
    h->len += n;
    h->buf[h->len] = '\0';
    return n;
}

int mc__http_init(mc__http *h, const char *api_key, mc_err *err) {
    memset(h, 0, sizeof *h);
    int rc = mc__http_global_init(err);
    if (rc != 0)
        return rc;
    h->multi = curl_multi_init();
    h->easy = curl_easy_init();
    if (!h->multi || !h->easy) {
        mc__http_fini(h);
        return mc_err_set(err, MC_EIO, -1, "libcurl could not create a transfer handle");
    }
    struct curl_slist *hd = NULL, *t;
    const char *fixed[] = {"Content-Type: application/json", "Accept: application/json",
                           "Expect:" /* no 100-continue round trip for large bodies */};
    for (size_t i = 0; i < MC_ARRAY_LEN(fixed); i++) {
        t = curl_slist_append(hd, fixed[i]);
        if (!t)
            goto oom;
        hd = t;
    }
    if (api_key && *api_key) {
        size_t n = strlen(api_key) + 32;
        char *line = malloc(n);
        if (!line)
            goto oom;
        snprintf(line, n, "Authorization: Bearer %s", api_key);
        t = curl_slist_append(hd, line);
        free(line);
        if (!t)
            goto oom;
        hd = t;
    }
    h->headers = hd;
    CURL *e = h->easy;
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, h);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h->errbuf);
    curl_easy_setopt(e, CURLOPT_DEBUGFUNCTION, on_debug);
    curl_easy_setopt(e, CURLOPT_DEBUGDATA, h);
    curl_easy_setopt(e, CURLOPT_VERBOSE, 1L); /* for on_debug: nothing is printed */
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "mccom-remote/1");
    /* only http(s): a URL can never make us read a file or speak another protocol */
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    return 0;
oom:
    curl_slist_free_all(hd);
    mc__http_fini(h);
    return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
}

void mc__http_fini(mc__http *h) {
    if (!h)
        return;
    if (h->easy)
        curl_easy_cleanup(h->easy);
    if (h->multi)
        curl_multi_cleanup(h->multi);
    curl_slist_free_all(h->headers);
    free(h->buf);
    memset(h, 0, sizeof *h);
}

static void fill_counts(mc__http *h, mc__http_resp *resp) {
    long status = 0;
    curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &status);
    resp->bytes_sent = h->n_out;
    resp->bytes_received = h->n_in;
    resp->status = (int)status;
}

int mc__http_once(mc__http *h, const char *url, const char *body, size_t body_len,
                  int connect_timeout_ms, int64_t deadline_ns, const volatile int *cancel,
                  mc__http_resp *resp, mc_err *err) {
    memset(resp, 0, sizeof *resp);
    int64_t left_ms = (deadline_ns - mc_time_ns()) / 1000000;
    if (left_ms <= 0)
        return mc_err_set(err, MC_ETIMEOUT, -1, "the call's deadline passed before the request");
    if (cancel && *cancel)
        return mc_err_set(err, MC_ECANCELED, -1, "canceled");
    CURL *e = h->easy;
    CURLM *m = h->multi;
    h->len = 0;
    h->n_out = h->n_in = 0;
    h->overflow = false;
    h->errbuf[0] = '\0';
    if (h->buf)
        h->buf[0] = '\0';
    curl_easy_setopt(e, CURLOPT_URL, url);
    if (body) {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    } else {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    }
    long cto = connect_timeout_ms < left_ms ? connect_timeout_ms : (long)left_ms;
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, cto > 0 ? cto : 1L);
    /* libcurl's own limit is a backstop: the loop below enforces the deadline */
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)left_ms + 50);

    if (curl_multi_add_handle(m, e) != CURLM_OK)
        return mc_err_set(err, MC_EIO, -1, "libcurl refused the transfer");
    resp->started = true;
    int rc = 0;
    CURLcode res = CURLE_OK;
    bool done = false;
    while (!done) {
        int running = 0;
        CURLMcode mc = curl_multi_perform(m, &running);
        if (mc != CURLM_OK) {
            rc = mc_err_set(err, MC_ENET, -1, "libcurl: %s", curl_multi_strerror(mc));
            break;
        }
        int q = 0;
        CURLMsg *msg;
        while ((msg = curl_multi_info_read(m, &q)) != NULL) {
            if (msg->msg == CURLMSG_DONE && msg->easy_handle == e) {
                res = msg->data.result;
                done = true;
            }
        }
        if (done)
            break;
        if (cancel && *cancel) {
            rc = mc_err_set(err, MC_ECANCELED, -1, "canceled");
            break;
        }
        int64_t left_ns = deadline_ns - mc_time_ns();
        if (left_ns <= 0) {
            rc = mc_err_set(err, MC_ETIMEOUT, -1, "no answer before the call's deadline");
            break;
        }
        int wait = (int)MC_MIN((int64_t)POLL_SLICE_MS, left_ns / 1000000 + 1);
        mc = curl_multi_poll(m, NULL, 0, wait, NULL);
        if (mc != CURLM_OK) {
            rc = mc_err_set(err, MC_ENET, -1, "libcurl: %s", curl_multi_strerror(mc));
            break;
        }
    }
    fill_counts(h, resp);
    /* removing an unfinished transfer closes its connection: a canceled or
     * timed-out request is never read by the next one */
    curl_multi_remove_handle(m, e);
    if (rc != 0)
        return rc;
    resp->body = h->buf ? h->buf : "";
    resp->len = h->len;
    if (res == CURLE_OK)
        return 0;
    const char *why = h->errbuf[0] ? h->errbuf : curl_easy_strerror(res);
    if (h->overflow)
        return mc_err_set(err, MC_EFORMAT, -1, "the response is larger than %zu bytes",
                          (size_t)MC__HTTP_MAX_BODY);
    if (res == CURLE_WRITE_ERROR)
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory for the response");
    if (res == CURLE_OPERATION_TIMEDOUT && mc_time_ns() >= deadline_ns)
        return mc_err_set(err, MC_ETIMEOUT, -1, "no answer before the call's deadline");
    if (res == CURLE_URL_MALFORMAT || res == CURLE_UNSUPPORTED_PROTOCOL)
        return mc_err_set(err, MC_EINVAL, -1, "bad URL: %s", why);
    return mc_err_set(err, MC_ENET, -1, "%s", why);
}
