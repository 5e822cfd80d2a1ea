/* http_request.h — the HTTP/1.1 request parsing of the "hello" servers: the example
 * (http_server.c) and the C peers it is measured against (bench/io/peer_http_common.h),
 * so that the benchmark compares runtimes serving the same requests the same way.
 *
 * A request is its header block (no body is read: a GET or HEAD that says it has one
 * is refused, as a body taken for the next request would let a client smuggle one).
 * HEAD is answered as GET, without the body (RFC 9110, 9.3.2).
 * The parser is incremental: it looks at each line once, as soon as the line is
 * complete, and keeps what it learnt in an http_request between calls, so
 *   - a request read whole is parsed in one pass that also finds its end;
 *   - one that trickles in piece by piece costs O(its length) in all, not a parse
 *     per piece;
 *   - a malformed line is refused as soon as it has come (with its CRLF, or a bare
 *     LF), not when the block ends or the client's time runs out.
 * Refused (bad): a request line that is not "METHOD TARGET HTTP/1.x", a line not ended
 * by CRLF or with a CR inside, a header line without a colon, with blanks before it or
 * folded (starting with a blank), an HTTP/1.1 request without a Host, any with two or
 * with one whose value is not uri-host [":" port] (RFC 9112, 3.2), a Connection line
 * with a NUL (RFC 9110, 5.5).
 * Empty lines before a request line are skipped (RFC 9112, 2.2).
 *
 * Invariant: r->parsed is the length of the request's complete lines already looked
 * at, counted from the request's first byte; the caller passes the same start each
 * time (its buffer may move, the offset stays right) until the request is answered,
 * then starts the next with http_request_begin. */
#ifndef HTTP_REQUEST_H
#define HTTP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

static const char http_hello[] = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n"
                                 "Content-Type: text/plain\r\n\r\nHello, world!";
/* The same, saying what becomes of the connection where the default does not: an
 * HTTP/1.0 client keeps it only when told so, and one that asked to close is told. */
static const char http_hello_keep_alive[] = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n"
                                            "Content-Type: text/plain\r\n"
                                            "Connection: keep-alive\r\n\r\nHello, world!";
static const char http_hello_close[] = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n"
                                       "Content-Type: text/plain\r\n"
                                       "Connection: close\r\n\r\nHello, world!";
static const char http_not_allowed[] = "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\n"
                                       "Content-Length: 0\r\nConnection: close\r\n\r\n";
static const char http_bad_request[] = "HTTP/1.1 400 Bad Request\r\n"
                                       "Content-Length: 0\r\nConnection: close\r\n\r\n";
enum { HTTP_ANSWER_MAX = 128 }; /* the longest answer fits */
_Static_assert(sizeof http_hello_keep_alive <= HTTP_ANSWER_MAX &&
                   sizeof http_hello_close <= HTTP_ANSWER_MAX &&
                   sizeof http_not_allowed <= HTTP_ANSWER_MAX &&
                   sizeof http_bad_request <= HTTP_ANSWER_MAX,
               "every answer fits HTTP_ANSWER_MAX");

typedef struct http_request {
    /* what the request says (final once http_request_parse returned its end) */
    bool bad;                   /* malformed: answered 400 */
    bool get;                   /* the method is GET */
    bool head;                  /* the method is HEAD: GET's answer without its body */
    bool close;                 /* HTTP/1.0 without keep-alive, or "Connection: close" */
    bool keep_alive_10;         /* HTTP/1.0 with keep-alive (kept only if the answer says) */
    bool body;                  /* a Content-Length other than 0, or a Transfer-Encoding */
    /* the parse so far */
    size_t parsed;              /* see the invariant above */
    int http10;                 /* 1 for HTTP/1.0, 0 for 1.1, -1 before the request line */
    int hosts;                  /* Host lines seen */
    bool close_asked, keep_asked;
} http_request;

static inline void http_request_begin(http_request *r)
{
    *r = (http_request){.http10 = -1};
}

/* Whether the header value [p, end) lists the token (comma-separated, any case). */
static inline bool http_has_token(const char *p, const char *end, const char *token)
{
    size_t len = strlen(token);
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        const char *stop = p;
        while (stop < end && *stop != ',' && *stop != '\r' && *stop != '\n')
            stop++;
        const char *last = stop;
        while (last > p && (last[-1] == ' ' || last[-1] == '\t'))
            last--;
        if ((size_t)(last - p) == len && strncasecmp(p, token, len) == 0)
            return true;
        if (stop == end || *stop != ',')
            return false; /* the end of the line */
        p = stop + 1;
    }
    return false;
}

static inline bool http_blank(char c) { return c == ' ' || c == '\t'; }

/* Whether c may stand in a host name (RFC 3986, 3.2.2: unreserved, sub-delims, '%'). */
static inline bool http_host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("-._~%!$&'()*+,;=", c));
}

/* Whether the Host value [p, end) (end at its CR) is uri-host [":" port], with blanks
 * around it (RFC 9112, 3.2: an invalid one is answered 400): a name (an IPv4 address
 * is one) or an IP literal in brackets, then digits after a colon; empty is valid. */
static inline bool http_host_valid(const char *p, const char *end)
{
    while (p < end && http_blank(*p))
        p++;
    while (end > p && http_blank(end[-1]))
        end--;
    if (p < end && *p == '[') {
        const char *close = memchr(p, ']', (size_t)(end - p));
        if (!close)
            return false;
        for (p++; p < close; p++)
            if (!http_host_char(*p) && *p != ':')
                return false;
        p++;
    } else {
        while (p < end && http_host_char(*p))
            p++;
    }
    if (p < end && *p == ':')
        for (p++; p < end && *p >= '0' && *p <= '9';)
            p++;
    return p == end;
}

/* Whether the header value [p, end) is 0, with blanks around it (anything else, a
 * malformed number included, is refused as a body would be). */
static inline bool http_zero_length(const char *p, const char *end)
{
    while (p < end && http_blank(*p))
        p++;
    const char *digits = p;
    while (p < end && *p == '0')
        p++;
    if (p == digits)
        return false; /* no number at all */
    while (p < end && http_blank(*p))
        p++;
    return p == end || *p == '\r' || *p == '\n';
}

/* Whether [p, end) is all token characters (RFC 9110, 5.6.2), or all visible ones. */
static inline bool http_all_token(const char *p, const char *end)
{
    for (; p < end; p++) {
        char c = *p;
        bool alnum = (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
        if (!alnum && (c == '\0' || !strchr("!#$%&'*+-.^_`|~", c))) /* (NUL: the set's end) */
            return false;
    }
    return true;
}
static inline bool http_all_visible(const char *p, const char *end)
{
    for (; p < end; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return false;
    return true;
}

/* The request line [line, next) (next is past its LF) is "METHOD TARGET HTTP/1.x\r\n"
 * with no other CR, the method a token and the target visible characters (RFC 9112,
 * 3): 1 for HTTP/1.0, 0 for HTTP/1.1 and any later 1.x (served as 1.1, RFC 9110, 2.5),
 * -1 when malformed. */
static inline int http_request_line(const char *line, const char *next, bool *get,
                                    bool *head)
{
    const char *eol = next - 1;
    if (eol == line || memchr(line, '\r', (size_t)(eol - line) - 1))
        return -1;
    const char *sp1 = memchr(line, ' ', (size_t)(eol - line));
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
    if (!sp2 || sp1 == line || sp2 == sp1 + 1 || eol - sp2 != 10 || eol[-1] != '\r' ||
        memcmp(sp2 + 1, "HTTP/1.", 7) != 0 || sp2[8] < '0' || sp2[8] > '9' ||
        !http_all_token(line, sp1) || !http_all_visible(sp1 + 1, sp2))
        return -1;
    *get = sp1 - line == 3 && memcmp(line, "GET", 3) == 0;
    *head = sp1 - line == 4 && memcmp(line, "HEAD", 4) == 0;
    return sp2[8] == '0';
}

/* Whether the header line [line, next) names the field (of len bytes, with its
 * colon, in lower case); *value is where its value starts.  (The first letter is
 * compared first: most lines name none of the fields looked for.) */
static inline bool http_field(const char *line, const char *next, const char *name,
                              size_t len, const char **value)
{
    *value = line + len;
    return (size_t)(next - line) > len && (*line | 0x20) == name[0] &&
           strncasecmp(line, name, len) == 0;
}

/* Looks at the header line [line, next) (not the empty one): false when malformed. */
static inline bool http_header_line(http_request *r, const char *line, const char *next)
{
    const char *colon = memchr(line, ':', (size_t)(next - line)), *value;
    if (!colon || colon == line || !http_all_token(line, colon))
        return false; /* no name, or one that is no token (RFC 9110, 5.1): folded, a space
                       * before the colon (RFC 9112, 5), a control in it (a name such as
                       * "Content-Length\v" was some other field here, and its body the
                       * next request, where a lenient proxy sees a body) */
    if (http_field(line, next, "connection:", 11, &value)) {
        /* a NUL is refused, not read as the end of a token nor as a letter of one
         * ("close\0" would be no close; RFC 9110, 5.5: reject, or read a blank) */
        if (memchr(value, '\0', (size_t)(next - value)))
            return false;
        r->close_asked |= http_has_token(value, next, "close");
        r->keep_asked |= http_has_token(value, next, "keep-alive");
    } else if (http_field(line, next, "content-length:", 15, &value)) {
        r->body |= !http_zero_length(value, next);
    } else if (http_field(line, next, "transfer-encoding:", 18, &value)) {
        r->body = true;
    } else if (http_field(line, next, "host:", 5, &value)) {
        if (!http_host_valid(value, next - 2))
            return false; /* RFC 9112, 3.2 */
        r->hosts++;
    }
    return true;
}

/* Parses the request that begins at start, as far as end, from where the last call
 * for it stopped: returns where its header block ends (past its empty line), or NULL,
 * with r->bad true as soon as a line is malformed, false while the block goes on past
 * end (call again when more has come). */
static inline const char *http_request_parse(http_request *r, const char *start,
                                             const char *end)
{
    const char *line = start + r->parsed, *next;
    for (;; line = next) {
        const char *lf = memchr(line, '\n', (size_t)(end - line));
        if (!lf) {
            r->parsed = (size_t)(line - start);
            return NULL;
        }
        next = lf + 1;
        bool empty = next - line == 2 && line[0] == '\r';
        if (r->http10 < 0) {
            if (!empty &&
                (r->http10 = http_request_line(line, next, &r->get, &r->head)) < 0)
                break;
            continue; /* an empty line before the request line is skipped */
        }
        /* every line ends in CRLF, with no other CR: a bare LF ending a line (or an
         * empty one) would end the block early for this parser only, and the headers
         * after it (a Content-Length, a Connection: close) would go unread */
        if (next - line < 2 || next[-2] != '\r' ||
            memchr(line, '\r', (size_t)(next - line - 2)))
            break;
        if (empty) { /* the end of the block (the first CRLF CRLF) */
            if (r->hosts > 1 || (!r->http10 && r->hosts == 0))
                break; /* HTTP/1.1 needs one, and none may have two (RFC 9112, 3.2) */
            r->close = r->close_asked || (r->http10 && !r->keep_asked);
            r->keep_alive_10 = r->http10 && !r->close;
            return next;
        }
        if (!http_header_line(r, line, next))
            break;
    }
    r->bad = true;
    return NULL;
}

/* The answer to a request that http_request_parse ended or refused: its text and
 * length, and whether the connection closes after it (*last).  Returns whether it is
 * the hello (a request served). */
static inline bool http_request_answer(const http_request *r, const char **text,
                                       size_t *len, bool *last)
{
#define HTTP_ANSWER(s) (*text = (s), *len = sizeof(s) - 1)
    *last = true;
    if (r->bad || ((r->get || r->head) && r->body)) {
        HTTP_ANSWER(http_bad_request);
        return false;
    }
    if (!r->get && !r->head) {
        HTTP_ANSWER(http_not_allowed);
        return false;
    }
    if (r->close)
        HTTP_ANSWER(http_hello_close);
    else if (r->keep_alive_10)
        HTTP_ANSWER(http_hello_keep_alive);
    else
        HTTP_ANSWER(http_hello);
    if (r->head) /* the same header fields, no body (RFC 9110, 9.3.2) */
        *len -= sizeof "Hello, world!" - 1;
    *last = r->close;
    return true;
#undef HTTP_ANSWER
}

#endif
