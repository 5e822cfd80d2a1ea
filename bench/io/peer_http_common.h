/* peer_http_common.h — the HTTP side of the C peers (peer_http_epoll.c,
 * peer_http_libuv.c): find the complete requests in what was read, answer each,
 * keep an incomplete one.
 *
 * A request is everything up to its blank line ("\r\n\r\n"): GET only, no body.
 * Bytes are read into one buffer shared by every connection; only when a read
 * ends inside a request is that start copied into a 16 KiB buffer of the
 * connection's own, and the next read goes after it.  16 KiB without a complete
 * request closes the connection. */
#ifndef PEER_HTTP_COMMON_H
#define PEER_HTTP_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <stdlib.h>
#include <string.h>

static const char http_response[] = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n"
                                    "Content-Type: text/plain\r\n\r\nHello, world!";
#define HTTP_RESPONSE_LEN (sizeof http_response - 1)
#define HTTP_REQUEST_MAX (16 * 1024)

/* Sends n bytes on conn; returns 0, or -1 when the connection is to be closed. */
typedef int (*http_send_fn)(void *conn, const char *p, size_t n);

/* Where the next read goes: after the incomplete request (*in, *in_len) if there
 * is one, else into the shared buffer. */
static void http_read_place(char *in, size_t in_len, char *shared, size_t shared_cap,
                            char **at, size_t *cap)
{
    if (in) {
        *at = in + in_len;
        *cap = HTTP_REQUEST_MAX - in_len;
    } else {
        *at = shared;
        *cap = shared_cap;
    }
}

/* n bytes were just read where http_read_place said: answer every complete
 * request, in order, with as few sends as the response buffer allows, and keep
 * the incomplete rest in (*in, *in_len).  Returns 0, or -1 to close. */
static int http_consume(char **in, size_t *in_len, const char *shared, size_t n,
                        http_send_fn send_fn, void *conn)
{
    static char out[64 * 1024];
    const char *buf = *in ? *in : shared;
    size_t scan = *in && *in_len > 3 ? *in_len - 3 : 0; /* an end may straddle reads */
    size_t have = (*in ? *in_len : 0) + n;
    size_t done = 0, used = 0;
    const char *end;
    while ((end = memmem(buf + scan, have - scan, "\r\n\r\n", 4)) != NULL) {
        done = scan = (size_t)(end - buf) + 4;
        if (used + HTTP_RESPONSE_LEN > sizeof out) {
            if (send_fn(conn, out, used) < 0)
                return -1;
            used = 0;
        }
        memcpy(out + used, http_response, HTTP_RESPONSE_LEN);
        used += HTTP_RESPONSE_LEN;
    }
    if (used > 0 && send_fn(conn, out, used) < 0)
        return -1;

    size_t left = have - done;
    if (left == 0) {
        free(*in);
        *in = NULL;
        *in_len = 0;
        return 0;
    }
    if (left >= HTTP_REQUEST_MAX)
        return -1;
    if (!*in) {
        if (!(*in = malloc(HTTP_REQUEST_MAX)))
            return -1;
        memcpy(*in, buf + done, left);
    } else if (done > 0) {
        memmove(*in, *in + done, left);
    }
    *in_len = left;
    return 0;
}

#endif
