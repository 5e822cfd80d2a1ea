/* peer_http_common.h — the HTTP side of the C peers (peer_http_epoll.c,
 * peer_http_libuv.c): find the complete requests in what was read, answer each,
 * keep an incomplete one.
 *
 * Requests are parsed and answered by plait's example server's own code
 * (examples/http_request.h): the same checks, the same answers, so that the benchmark
 * compares the runtimes, not two parsers.  (Until 2026-12-02 the peers only looked
 * for each request's blank line: some 500 instructions a request less than the
 * example's parse; docs/BENCHMARKS.md.)  A refused request (400, 405) or a
 * "Connection: close" is answered, then the connection closed at once.
 * Bytes are read into one buffer shared by every connection; only when a read
 * ends inside a request is that start copied, with its parse so far, into a buffer of
 * the connection's own (16 KiB), and the next read goes after it.  16 KiB without a
 * complete request closes the connection. */
#ifndef PEER_HTTP_COMMON_H
#define PEER_HTTP_COMMON_H

#include "../../examples/http_request.h"

#include <stdlib.h>
#include <string.h>

#define HTTP_REQUEST_MAX (16 * 1024)

/* A request split over reads: its bytes so far and its parse. */
struct http_partial {
    http_request req;
    size_t len;
    char bytes[HTTP_REQUEST_MAX];
};

/* Sends n bytes on conn; returns 0, or -1 when the connection is to be closed. */
typedef int (*http_send_fn)(void *conn, const char *p, size_t n);

/* Where the next read goes: after the incomplete request if there is one, else into
 * the shared buffer. */
static void http_read_place(struct http_partial *in, char *shared, size_t shared_cap,
                            char **at, size_t *cap)
{
    if (in) {
        *at = in->bytes + in->len;
        *cap = HTTP_REQUEST_MAX - in->len;
    } else {
        *at = shared;
        *cap = shared_cap;
    }
}

/* n bytes were just read where http_read_place said: answer every complete
 * request, in order, with as few sends as the answer buffer allows, and keep the
 * incomplete rest in *in.  Returns 0, or -1 to close. */
static int http_consume(struct http_partial **in, const char *shared, size_t n,
                        http_send_fn send_fn, void *conn)
{
    static char out[64 * 1024];
    struct http_partial *part = *in;
    http_request fresh;
    http_request *req = part ? &part->req : &fresh;
    if (!part)
        http_request_begin(&fresh);
    const char *buf = part ? part->bytes : shared;
    size_t have = (part ? part->len : 0) + n;
    size_t done = 0, used = 0;
    bool last = false;
    while (!last) {
        /* no request is taken past its first 16 KiB, however the reads split it: a
         * longer one read whole would be served, and the same in pieces refused */
        size_t room = have - done < HTTP_REQUEST_MAX ? have - done : HTTP_REQUEST_MAX;
        const char *end = http_request_parse(req, buf + done, buf + done + room);
        if (!end && !req->bad)
            break; /* the rest is still coming (or too large: closed below) */
        const char *text;
        size_t len;
        http_request_answer(req, &text, &len, &last);
        if (used + len > sizeof out) {
            if (send_fn(conn, out, used) < 0)
                return -1;
            used = 0;
        }
        memcpy(out + used, text, len);
        used += len;
        done = end ? (size_t)(end - buf) : have;
        http_request_begin(req);
    }
    if (used > 0 && send_fn(conn, out, used) < 0)
        return -1;
    if (last)
        return -1;

    size_t left = have - done;
    if (left == 0) {
        free(part);
        *in = NULL;
        return 0;
    }
    if (left >= HTTP_REQUEST_MAX)
        return -1;
    if (!part) {
        if (!(part = malloc(sizeof *part)))
            return -1;
        part->req = fresh;
        memcpy(part->bytes, buf + done, left);
        *in = part;
    } else if (done > 0) {
        memmove(part->bytes, part->bytes + done, left);
    }
    part->len = left;
    return 0;
}

#endif
