/* test_http_request.c — the incremental HTTP request parser of the example server and
 * the benchmark's C peers (examples/http_request.h): what it says of whole requests,
 * that a request parsed piece by piece (every split in two and in three) gets the same
 * verdict as whole, a malformed line refused in the call whose piece completes it, and
 * the answers.  Each piece is handed over in a buffer of its exact size, moved to a new
 * place at each call (as the servers' buffers move), so AddressSanitizer sees any read
 * past what has come. */
#include "check.h"

#include "../examples/http_request.h"

#include <stdbool.h>

typedef struct expected {
    const char *text;
    bool bad, get, close, keep_alive_10, body;
    size_t end; /* where the block ends when not bad (0: the whole text) */
} expected;

static const expected cases[] = {
    {.text = "GET / HTTP/1.1\r\nHost: x\r\n\r\n", .get = true},
    {.text = "GET /a HTTP/1.1\r\nHost: x\r\nUser-Agent: u\r\nAccept: */*\r\n\r\n", .get = true},
    {.text = "\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", .get = true},
    {.text = "GET / HTTP/1.0\r\n\r\n", .get = true, .close = true},
    {.text = "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", .get = true, .keep_alive_10 = true},
    {.text = "GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, close\r\n\r\n", .get = true,
     .close = true},
    {.text = "GET / HTTP/1.1\r\nHost: x\r\nConnection: x-close\r\n\r\n", .get = true},
    {.text = "GET / HTTP/1.2\r\nHost: x\r\n\r\n", .get = true},
    {.text = "GET / HTTP/1.1\r\nhost: x\r\nContent-Length:  0 \r\n\r\n", .get = true},
    {.text = "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", .get = true, .body = true,
     .end = 46},
    {.text = "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", .get = true, .body = true},
    {.text = "POST / HTTP/1.1\r\nHost: x\r\n\r\n"},
    {.text = "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\n", .get = true, .end = 27},
    {.text = "GET garbage\r\nHost: x\r\n\r\n", .bad = true},
    {.text = "GET /\r\n\r\n", .bad = true},
    {.text = "GET / HTTP/2.0\r\nHost: x\r\n\r\n", .bad = true},
    {.text = "GET / HTTP/1.0 \r\n\r\n", .bad = true},
    {.text = "\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", .bad = true},
    {.text = "GET / HTTP/1.1\n", .bad = true},
    {.text = "GET /\r HTTP/1.1\r\n", .bad = true},
    {.text = "GET / HTTP/1.1\r\n\r\n", .bad = true},
    {.text = "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", .bad = true},
    {.text = "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", .bad = true},
    {.text = "GET / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n", .get = true, .body = true},
    {.text = "GET / HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n", .bad = true},
    {.text = "GET / HTTP/1.1\r\nHost: x\r\n: no name\r\n\r\n", .bad = true},
    {.text = "GET / HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\n", .bad = true},
    {.text = "GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n folded\r\n\r\n", .bad = true},
    /* a field name is a token (RFC 9110, 5.1): "Content-Length\v" or "Content Length"
     * was some other field, and the body it declared was served as the next request,
     * which a proxy that took it for Content-Length would forward as a body (session
     * 51's audit) */
    {.text = "GET / HTTP/1.1\r\nHost: x\r\nContent-Length\v: 5\r\n\r\n", .bad = true},
    {.text = "GET / HTTP/1.1\r\nHost: x\r\nContent Length: 5\r\n\r\n", .bad = true},
    {.text = "GET / HTTP/1.1\r\nHost: x\r\nX(y): z\r\n\r\n", .bad = true},
    {.text = "GET / HTTP/1.1\r\nHost: x\r\nX-Odd_Name.~!#$%&'*+^`|: z\r\n\r\n", .get = true},
    {.text = "GET / HTTP/1.1\r\nHost: x\n\n", .bad = true},
    {.text = "GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n", .bad = true},
    {.text = "GET / HTTP/1.1\r\nHost: x\r\n\n", .bad = true},
    /* a method is a token, a target visible characters (RFC 9112, 3; RFC 9110, 5.6.2):
     * controls there were served (a method with one answered 405) */
    {.text = "GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n", .bad = true},
    {.text = "GET /a\tb HTTP/1.1\r\nHost: x\r\n\r\n", .bad = true},
    {.text = "GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n", .bad = true},
    {.text = "G\x01T / HTTP/1.1\r\nHost: x\r\n\r\n", .bad = true},
    {.text = "GE(T / HTTP/1.1\r\nHost: x\r\n\r\n", .bad = true},
    {.text = "M-SEARCH * HTTP/1.1\r\nHost: x\r\n\r\n"},
    {.text = "GET /a%20b?q=1&r=~!$'()*+,;=:@ HTTP/1.1\r\nHost: x\r\n\r\n", .get = true},
    /* refused before its block ends: the rest never needs to come */
    {.text = "GET / HTTP/1.1\r\nno colon\r\n", .bad = true},
    {.text = "GE garbage\r\nHost: x\r\n", .bad = true},
};
enum { CASES = sizeof cases / sizeof cases[0] };

/* Parses text[0, len) handed over in pieces ending at the cuts (ascending, the last
 * len), each time the whole of what has come in a fresh buffer of its exact size.
 * Returns the end found (offset) or -1 while none; *bad_call is the index of the call
 * that found it bad (-1: none). */
static long parse_in_pieces(http_request *r, const char *text, const size_t *cuts, int n,
                            int *bad_call)
{
    http_request_begin(r);
    *bad_call = -1;
    for (int i = 0; i < n; i++) {
        char *buf = malloc(cuts[i] ? cuts[i] : 1);
        memcpy(buf, text, cuts[i]);
        const char *end = http_request_parse(r, buf, buf + cuts[i]);
        long at = end ? end - buf : -1;
        free(buf);
        if (r->bad) {
            *bad_call = i;
            return -1;
        }
        if (at >= 0)
            return at;
    }
    return -1;
}

/* The shortest prefix of text that the parser, given it whole, refuses (0: none). */
static size_t refused_from(const char *text, size_t len)
{
    for (size_t l = 1; l <= len; l++) {
        http_request r;
        int bad_call;
        parse_in_pieces(&r, text, &l, 1, &bad_call);
        if (bad_call == 0)
            return l;
    }
    return 0;
}

static bool same_verdict(const http_request *a, const http_request *b)
{
    return a->bad == b->bad && a->get == b->get && a->close == b->close &&
           a->keep_alive_10 == b->keep_alive_10 && a->body == b->body;
}

TEST(whole_requests_say_what_they_are)
{
    for (int i = 0; i < CASES; i++) {
        const expected *e = &cases[i];
        size_t len = strlen(e->text);
        http_request r;
        int bad_call;
        long at = parse_in_pieces(&r, e->text, &len, 1, &bad_call);
        if (r.bad != e->bad || (!e->bad && (r.get != e->get || r.close != e->close ||
                                            r.keep_alive_10 != e->keep_alive_10 ||
                                            r.body != e->body)))
            fprintf(stderr, "  case %d: %s\n", i, e->text);
        CHECK_EQ(r.bad, e->bad);
        if (e->bad) {
            CHECK_EQ(at, -1);
            continue;
        }
        CHECK_EQ(at, (long)(e->end ? e->end : len));
        CHECK_EQ(r.get, e->get);
        CHECK_EQ(r.close, e->close);
        CHECK_EQ(r.keep_alive_10, e->keep_alive_10);
        CHECK_EQ(r.body, e->body);
    }
}

TEST(a_request_still_coming_is_neither_ended_nor_refused)
{
    static const char text[] = "GET / HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n";
    size_t len = sizeof text - 1;
    for (size_t l = 0; l < len; l++) {
        http_request r;
        int bad_call;
        CHECK_EQ(parse_in_pieces(&r, text, &l, 1, &bad_call), -1);
        CHECK_EQ(bad_call, -1);
    }
}

/* Every split in two and in three: the verdict of the whole, and a refusal in the call
 * whose piece brought the malformed line's end (never later, never earlier). */
TEST(every_split_gives_the_verdict_of_the_whole_as_soon_as_it_is_due)
{
    long splits = 0;
    for (int i = 0; i < CASES; i++) {
        const char *text = cases[i].text;
        size_t len = strlen(text);
        http_request whole;
        int whole_bad;
        long whole_at = parse_in_pieces(&whole, text, &len, 1, &whole_bad);
        size_t due = refused_from(text, len);
        for (size_t a = 0; a <= len; a++) {
            for (size_t b = a; b <= len; b++) {
                size_t cuts[3] = {a, b, len};
                http_request r;
                int bad_call;
                long at = parse_in_pieces(&r, text, cuts, 3, &bad_call);
                splits++;
                bool ok = at == whole_at && same_verdict(&r, &whole);
                if (whole.bad) /* refused in the first call that has the line's end */
                    ok = ok && bad_call == (a >= due ? 0 : b >= due ? 1 : 2);
                if (!ok) {
                    fprintf(stderr, "  case %d split %zu|%zu: %s\n", i, a, b, text);
                    CHECK(ok);
                    return;
                }
            }
        }
    }
    CHECK(splits > 10000);
}

/* A request that ends inside what has come leaves the rest untouched: the next one is
 * parsed from a fresh start. */
TEST(pipelined_requests_parse_one_after_another)
{
    static const char text[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
                               "\r\nGET /b HTTP/1.0\r\n\r\n"
                               "POST / HTTP/1.1\r\nHost: y\r\n\r\n";
    const char *p = text, *end = text + sizeof text - 1;
    http_request r;
    bool seen_get11 = false, seen_get10 = false, seen_post = false;
    int requests = 0;
    while (p < end) {
        http_request_begin(&r);
        const char *next = http_request_parse(&r, p, end);
        CHECK(next != NULL);
        if (!next)
            return;
        seen_get11 |= r.get && !r.close;
        seen_get10 |= r.get && r.close;
        seen_post |= !r.get;
        requests++;
        p = next;
    }
    CHECK_EQ(requests, 3);
    CHECK(seen_get11 && seen_get10 && seen_post);
}

TEST(answers_follow_the_verdict)
{
    struct {
        const char *request;
        const char *answer;
        bool served, last;
    } want[] = {
        {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", http_hello, true, false},
        {"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", http_hello_close, true, true},
        {"GET / HTTP/1.0\r\n\r\n", http_hello_close, true, true},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", http_hello_keep_alive, true, false},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n", http_not_allowed, false, true},
        {"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n", http_bad_request, false, true},
        {"GET / HTTP/1.1\r\n\r\n", http_bad_request, false, true},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        http_request r;
        http_request_begin(&r);
        const char *text = want[i].request;
        http_request_parse(&r, text, text + strlen(text));
        const char *answer = NULL;
        size_t len = 0;
        bool last = false;
        CHECK_EQ(http_request_answer(&r, &answer, &len, &last), want[i].served);
        CHECK(answer == want[i].answer);
        CHECK_EQ(len, strlen(want[i].answer));
        CHECK_EQ(last, want[i].last);
    }
}

/* HEAD is answered as GET without the body (RFC 9110, 9.1 and 9.3.2: it was 405); a
 * HEAD that says it has a body is refused as such a GET is (review of the examples). */
TEST(head_is_get_without_its_body)
{
    struct {
        const char *request, *as;
        bool last;
    } want[] = {
        {"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", http_hello, false},
        {"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", http_hello_close, true},
        {"HEAD / HTTP/1.0\r\n\r\n", http_hello_close, true},
        {"HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", http_hello_keep_alive, false},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        http_request r;
        http_request_begin(&r);
        const char *text = want[i].request;
        CHECK(http_request_parse(&r, text, text + strlen(text)) == text + strlen(text));
        const char *answer = NULL;
        size_t len = 0;
        bool last = !want[i].last;
        CHECK(http_request_answer(&r, &answer, &len, &last));
        CHECK(answer == want[i].as);
        CHECK_EQ(len, strlen(want[i].as) - strlen("Hello, world!"));
        CHECK_EQ(last, want[i].last);
    }
    const char *body = "HEAD / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n";
    http_request r;
    http_request_begin(&r);
    http_request_parse(&r, body, body + strlen(body));
    const char *answer = NULL;
    size_t len = 0;
    bool last = false;
    CHECK(!http_request_answer(&r, &answer, &len, &last));
    CHECK(answer == http_bad_request);
    CHECK(last);
}

RUN_TESTS(CASE(whole_requests_say_what_they_are),
          CASE(a_request_still_coming_is_neither_ended_nor_refused),
          CASE(every_split_gives_the_verdict_of_the_whole_as_soon_as_it_is_due),
          CASE(pipelined_requests_parse_one_after_another), CASE(answers_follow_the_verdict),
          CASE(head_is_get_without_its_body))
