/* test_input_fuzz.c — hostile input, fuzzed with a fixed seed (deterministic, well under
 * a second): the HTTP request parser of the examples (examples/http_request.h) gives one
 * verdict however the bytes are split across reads, never reports a request longer than
 * what came nor one before its end; plait_addr_ip takes random text without harm and
 * what it takes formats and parses back to itself; example_number refuses what is not
 * a number in range. */
#include "check.h"

#include "../examples/args.h"
#include "../examples/http_request.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>

static uint64_t rng = 0x9e3779b97f4a7c15u;
static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 32) % n;
}

/* ---- the HTTP parser ---- */

typedef struct verdict {
    long end; /* -1: none */
    bool bad, get, head, close, keep_alive_10, body;
} verdict;

/* text[0, len) handed over growing to each cut (the last len), each time in a fresh
 * buffer of its exact size */
static verdict parse_cut(const char *text, size_t len, const size_t *cuts, size_t ncuts)
{
    http_request r;
    http_request_begin(&r);
    verdict v = {.end = -1};
    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts && cuts[i] < len ? cuts[i] : len;
        char *buf = malloc(to ? to : 1);
        memcpy(buf, text, to);
        const char *end = http_request_parse(&r, buf, buf + to);
        if (!end && !r.bad)
            CHECK(r.parsed <= to);
        if (end) {
            CHECK(end > buf && end <= buf + to);
            v.end = end - buf;
        }
        free(buf);
        if (v.end >= 0 || r.bad)
            break;
    }
    v.bad = r.bad;
    if (v.end >= 0) {
        v.get = r.get, v.head = r.head, v.close = r.close;
        v.keep_alive_10 = r.keep_alive_10, v.body = r.body;
    }
    return v;
}

static bool same(verdict a, verdict b)
{
    return a.end == b.end && a.bad == b.bad && a.get == b.get && a.head == b.head &&
           a.close == b.close && a.keep_alive_10 == b.keep_alive_10 && a.body == b.body;
}

static const char *const seeds[] = {
    "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "\r\n\r\nHEAD /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.1\r\n",
    "GET / HTTP/1.1\r\nhost: y\r\nContent-Length: 00\r\nConnection: close, keep-alive\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
};
static const char *const pieces[] = {"\r\n", "\r", "\n", " ", ":", ",", "\t", "0", "HTTP/1.1",
                                     "Host:", "Connection:", "close", "Content-Length:"};

TEST(parser_gives_one_verdict_however_mutated_input_is_split)
{
    enum { ROUNDS = 3000, MAX = 256 };
    char text[MAX];
    size_t cuts[MAX];
    int before = check_failures;
    for (int round = 0; round < ROUNDS && check_failures == before; round++) {
        const char *seed = seeds[rnd(sizeof seeds / sizeof *seeds)];
        size_t len = strlen(seed);
        memcpy(text, seed, len);
        for (int m = (int)rnd(6); m >= 0; m--) { /* mutate */
            size_t at = len ? rnd((uint32_t)len) : 0;
            switch (rnd(4)) {
            case 0: text[at] = (char)rnd(256); break;
            case 1: if (len) { memmove(text + at, text + at + 1, len - at - 1); len--; } break;
            default: {
                const char *p = pieces[rnd(sizeof pieces / sizeof *pieces)];
                size_t pl = strlen(p);
                if (len + pl <= MAX) {
                    memmove(text + at + pl, text + at, len - at);
                    memcpy(text + at, p, pl);
                    len += pl;
                }
            }
            }
        }
        verdict whole = parse_cut(text, len, NULL, 0);
        for (size_t i = 0; i < len; i++)
            cuts[i] = i;
        verdict bytes = parse_cut(text, len, cuts, len);
        size_t n = 0;
        for (size_t at = 0; at < len; n++)
            cuts[n] = at += rnd(9);
        verdict pieces_ = parse_cut(text, len, cuts, n);
        CHECK(same(whole, bytes));
        CHECK(same(whole, pieces_));
        CHECK(!(whole.bad && whole.end >= 0));
        if (whole.end >= 0) { /* the same from its bytes alone; nothing from fewer */
            CHECK((size_t)whole.end <= len);
            CHECK(same(parse_cut(text, (size_t)whole.end, NULL, 0), whole));
            for (size_t k = 0; k < (size_t)whole.end; k++) {
                verdict p = parse_cut(text, k, NULL, 0);
                CHECK(p.end < 0 && !p.bad);
            }
        }
        if (check_failures != before)
            fprintf(stderr, "  round %d: %.*s\n", round, (int)len, text);
    }
}

/* RFC 9112, 3.2: "A server MUST respond with a 400 (Bad Request) status code to any
 * HTTP/1.1 request message that lacks a Host header field and to any request message
 * that contains more than one Host header field line or a Host header field with an
 * invalid field value." (Host = uri-host [ ":" port ], RFC 3986.) */
TEST(a_host_with_an_invalid_value_is_refused)
{
    static const char *const refused[] = {
        "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a/b@c\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x:8o\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: \x01\r\n\r\n",
        "GET / HTTP/1.0\r\nHost: a\"b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        verdict v = parse_cut(refused[i], strlen(refused[i]), NULL, 0);
        CHECK(v.bad);
        if (!v.bad)
            fprintf(stderr, "  took %s", refused[i]);
    }
    static const char *const taken[] = {
        "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
        "GET / HTTP/1.1\r\nHost:example.com:8080 \r\n\r\n",
        "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a-b_c~d%41!$&'()*+,;=\r\n\r\n",
        "GET / HTTP/1.1\r\nHost:\r\n\r\n", /* empty: allowed (RFC 9112, 3.2) */
        "GET / HTTP/1.1\r\nHost: x:\r\n\r\n", /* port = *DIGIT */
    };
    for (size_t i = 0; i < sizeof taken / sizeof *taken; i++) {
        verdict v = parse_cut(taken[i], strlen(taken[i]), NULL, 0);
        CHECK(!v.bad && v.get && v.end == (long)strlen(taken[i]));
        if (v.bad)
            fprintf(stderr, "  refused %s", taken[i]);
    }
}

/* RFC 9110, 5.5: "a recipient of CR, LF, or NUL within a field value MUST either reject
 * the message or replace each of those characters with SP before further processing".
 * "Connection: close\0" is then either refused or "close ", a close: not kept alive. */
TEST(a_nul_in_connection_is_refused_or_read_as_a_blank)
{
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\0\r\n\r\n";
    verdict v = parse_cut(req, sizeof req - 1, NULL, 0);
    CHECK(v.bad || v.close);
    static const char req10[] = "GET / HTTP/1.0\r\nConnection: keep-alive\0\r\n\r\n";
    v = parse_cut(req10, sizeof req10 - 1, NULL, 0);
    CHECK(v.bad || v.keep_alive_10);
}

/* A NUL in the method or the target is refused (400), not taken for the end of a
 * string: the method must be a token, the target visible characters (RFC 9112, 3). */
TEST(a_nul_in_the_request_line_is_refused)
{
    static const char method[] = "GET\0 / HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK(parse_cut(method, sizeof method - 1, NULL, 0).bad);
    static const char target[] = "GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK(parse_cut(target, sizeof target - 1, NULL, 0).bad);
}

/* ---- plait_addr ---- */

TEST(addr_ip_takes_random_text_and_what_it_takes_parses_back)
{
    static const char alphabet[] = "0123456789abcdefABCDEF:.%[]lo \x01-+x";
    char host[48], text[PLAIT_ADDR_STRLEN];
    int taken = 0;
    int before = check_failures;
    for (int round = 0; round < 50000 && check_failures == before; round++) {
        size_t len = rnd(sizeof host);
        for (size_t i = 0; i < len; i++)
            host[i] = alphabet[rnd(sizeof alphabet - 1)];
        host[len] = '\0';
        if (round % 4 == 0 && len < sizeof host - 12) /* something nearer an address */
            snprintf(host, sizeof host, "%s", (const char *[]){"::1", "[::1]", "1.2.3.4",
                     "fe80::1%lo", "[fe80::1%1]", "::ffff:1.2.3.4", "[::]"}[rnd(7)]);
        if (round % 8 == 1 && host[0]) /* and one mutation */
            host[rnd((uint32_t)strlen(host))] = alphabet[rnd(sizeof alphabet - 1)];
        plait_addr a, b;
        int port = (int)rnd(70000) - 100;
        int r = plait_addr_ip(&a, host, port);
        if (port < 0 || port > 65535) {
            CHECK_EQ(r, -EINVAL);
            continue;
        }
        CHECK(r == 0 || r == -EINVAL);
        if (r != 0)
            continue;
        taken++;
        CHECK_EQ(plait_addr_port(&a), port);
        int n = plait_addr_format(&a, text, sizeof text);
        CHECK(n > 0 && (size_t)n < sizeof text);
        char *colon = strrchr(text, ':');
        CHECK(colon != NULL);
        *colon = '\0';
        CHECK_EQ(plait_addr_ip(&b, text, port), 0);
        CHECK_EQ(a.len, b.len);
        CHECK(memcmp(&a.u, &b.u, a.len) == 0);
        if (check_failures != before)
            fprintf(stderr, "  host '%s' formatted '%s'\n", host, text);
    }
    CHECK(taken > 300);
    plait_addr a;
    CHECK_EQ(plait_addr_ip(&a, "1.2.3.4", 65536), -EINVAL);
    CHECK_EQ(plait_addr_ip(&a, "1.2.3.4", -1), -EINVAL);
    CHECK_EQ(plait_addr_ip(&a, "1.2.3.4", INT32_MIN), -EINVAL);
    CHECK_EQ(plait_addr_ip(&a, "[1.2.3.4]", 1), -EINVAL);
    CHECK_EQ(plait_addr_ip(&a, "[::1", 1), -EINVAL);
    CHECK_EQ(plait_addr_ip(&a, "::1]", 1), -EINVAL);
    CHECK_EQ(plait_addr_ip(&a, "[]", 1), -EINVAL);
    CHECK_EQ(plait_addr_ip(&a, "", 1), -EINVAL);
    CHECK_EQ(plait_addr_ip(&a, "::1%", 1), -EINVAL);
    CHECK_EQ(plait_addr_ip(&a, "::1%4294967296", 1), -EINVAL);
    CHECK_EQ(plait_addr_ip(&a, "::1%123456789012345678", 1), -EINVAL);
    CHECK_EQ(plait_addr_ip(&a, "::1%4294967295", 1), 0);
    CHECK_EQ(plait_addr_ip(&a, "1.2.3.4:80", 1), -EINVAL);
}

TEST(addr_format_of_random_addresses_parses_back)
{
    char text[PLAIT_ADDR_STRLEN];
    int before = check_failures;
    for (int round = 0; round < 5000 && check_failures == before; round++) {
        plait_addr a, b;
        memset(&a, 0, sizeof a);
        int port = (int)rnd(65536);
        if (rnd(2)) {
            a.u.in4.sin_family = AF_INET;
            a.u.in4.sin_addr.s_addr = (uint32_t)rng;
            a.u.in4.sin_port = htons((uint16_t)port);
            a.len = sizeof a.u.in4;
        } else {
            a.u.in6.sin6_family = AF_INET6;
            for (int i = 0; i < 16; i++)
                a.u.in6.sin6_addr.s6_addr[i] = rnd(3) ? 0 : (uint8_t)rnd(256);
            uint32_t scopes[] = {0, 1, (uint32_t)rnd(100), UINT32_MAX, (uint32_t)rng};
            a.u.in6.sin6_scope_id = scopes[rnd(5)];
            a.u.in6.sin6_port = htons((uint16_t)port);
            a.len = sizeof a.u.in6;
        }
        int n = plait_addr_format(&a, text, sizeof text);
        CHECK(n > 0 && (size_t)n < sizeof text);
        CHECK_EQ(plait_addr_format(&a, text, (size_t)n), -ENOSPC);
        n = plait_addr_format(&a, text, sizeof text);
        *strrchr(text, ':') = '\0';
        CHECK_EQ(plait_addr_ip(&b, text, port), 0);
        CHECK_EQ(a.len, b.len);
        CHECK(memcmp(&a.u, &b.u, a.len) == 0);
        if (check_failures != before)
            fprintf(stderr, "  '%s'\n", text);
    }
}

/* ---- the examples' numeric arguments ---- */

TEST(example_number_refuses_what_is_no_number_in_range)
{
    int v = -7;
    static const char *const refused[] = {"", "-", "+", "x", "8080x", "0x10", "1e3", "80 ",
                                          "-1", "65536", "99999999999999999999",
                                          "-99999999999999999999", "4294967376",
                                          "9223372036854775807", "9223372036854775808"};
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        bool ok = example_number(refused[i], 8080, 0, 65535, &v);
        CHECK(!ok);
        if (ok)
            fprintf(stderr, "  took '%s' as %d\n", refused[i], v);
    }
    CHECK(example_number(NULL, 8080, 0, 65535, &v) && v == 8080);
    CHECK(example_number("0", 8080, 0, 65535, &v) && v == 0);
    CHECK(example_number("65535", 8080, 0, 65535, &v) && v == 65535);
}

RUN_TESTS(CASE(parser_gives_one_verdict_however_mutated_input_is_split),
          CASE(a_host_with_an_invalid_value_is_refused),
          CASE(a_nul_in_connection_is_refused_or_read_as_a_blank),
          CASE(a_nul_in_the_request_line_is_refused),
          CASE(addr_ip_takes_random_text_and_what_it_takes_parses_back),
          CASE(addr_format_of_random_addresses_parses_back),
          CASE(example_number_refuses_what_is_no_number_in_range))
