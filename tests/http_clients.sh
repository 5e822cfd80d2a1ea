#!/usr/bin/env bash
# tests/http_clients.sh SERVER — the HTTP example server against real clients: curl
# (one request, keep-alive across two), raw bytes (three pipelined requests in one
# write, and more than one write of answers holds, a request split across writes,
# "Connection: close", HTTP/1.0, a bad method, a GET with a body, malformed requests, an
# oversized request, an oversized request line)
# and wrk (a short load: no errors, no non-2xx answers), then a graceful stop on
# SIGTERM; then a server with a timeout of 1 s, a client that goes silent, one that
# trickles, and one that sends only empty lines.  curl and wrk come from Debian: scripts/test.sh installs
# them.  Every step is bounded by `timeout`; a failure prints what was seen.
set -uo pipefail
server="${1:?usage: http_clients.sh SERVER}"
for tool in curl wrk timeout; do
    command -v "$tool" >/dev/null || { echo "http_clients: $tool is missing (scripts/test.sh installs it)"; exit 1; }
done
failures=0
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
ok() { echo "ok   $*"; }

. "$(dirname "$0")/start_server.sh"
start_server "$server"
check_poller_asked_for
url="http://127.0.0.1:$port/"
hello="Hello, world!"

# raw REQUEST_BYTES... : send each argument as one write (0.1 s apart), then read
# until the server closes or 2 s pass; prints what came back.  closed: whether the
# last raw's read ended at the server's close (end of file), not at the 2 s.
raw() {
    exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
    local first=1
    for part in "$@"; do
        [ $first = 1 ] || sleep 0.1
        first=0
        printf '%b' "$part" >&3
    done
    timeout 2 cat <&3
    echo $? >"$tmp/raw.status"
    exec 3<&-
}
closed() { [ "$(cat "$tmp/raw.status")" = 0 ]; }
count() { grep -o "HTTP/1.1 200 OK" <<<"$1" | wc -l; }

body=$(timeout 10 curl -sS "$url")
[ "$body" = "$hello" ] && ok "curl: one request" || fail "curl: one request gave '$body'"

both=$(timeout 10 curl -sSv "$url" "${url}again" 2>"$tmp/curl.err")
if [ "$both" = "$hello$hello" ] && grep -qi "re-using existing connection" "$tmp/curl.err"; then
    ok "curl: two requests on one kept-alive connection"
else
    fail "curl: keep-alive gave '$both'"; cat "$tmp/curl.err"
fi

req='GET / HTTP/1.1\r\nHost: x\r\n\r\n'
got=$(raw "$req$req$req")
[ "$(count "$got")" = 3 ] && ok "three pipelined requests in one write: three answers" \
    || fail "pipelining: $(count "$got") answers: $got"

# (more than 210 answers fill the 16 KiB the server writes at once: the rest were left
# unanswered in its buffer while it waited to read)
many=""
for _ in $(seq 300); do many+=$req; done
got=$(raw "$many")
[ "$(count "$got")" = 300 ] && ok "300 pipelined requests in one write: 300 answers" \
    || fail "300 pipelined requests: $(count "$got") answers"

got=$(raw 'GET / HT' 'TP/1.1\r\nHost: x\r' '\n\r\nGET / HTTP/1.1\r\n' 'Host: y\r\n\r\n')
[ "$(count "$got")" = 2 ] && ok "requests split across writes: answered once whole" \
    || fail "split requests: $(count "$got") answers: $got"
# (each line is looked at once, as it completes, however the request came: a malformed
# line is answered 400 at once, even when the request has not ended and never does —
# the last three, which once waited for the end or the timeout of 10 s, not 2)
for pieces in 'GET / HTTP/1.1\r\nHo|st: x\n\n' 'GET / HTTP/1.1\r\nHost: x\r\n|no colon\r\n\r\n' \
              'GET / HTTP/1.1\r|\nHost: x\r\nHost: y\r\n\r|\n' \
              'GE|T garbage\r\nHost: x\r\n' 'GET / HTTP/1.1\r\n|Host: x\r\nno colon\r\n' \
              'GET / HTTP/1.1\r\nHost: x\r\n| folded\r\nX: y'; do
    IFS='|' read -r -a parts <<<"$pieces"
    got=$(raw "${parts[@]}")
    grep -q "400 Bad Request" <<<"$got" && [ "$(count "$got")" = 0 ] \
        && ok "malformed, in pieces, 400: $pieces" || fail "malformed in pieces '$pieces': $got"
done

# (the request after the close is one the server would answer 200: a server that kept
# the connection would show two answers; and the close itself must come)
got=$(raw 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n')
[ "$(count "$got")" = 1 ] && closed && ok "Connection: close: one answer, then the server closes" \
    || fail "Connection: close: $(count "$got") answers, read ended with status $(cat "$tmp/raw.status")"

got=$(raw 'GET / HTTP/1.0\r\n\r\n')
[ "$(count "$got")" = 1 ] && closed && ok "HTTP/1.0 without keep-alive: answered and closed" \
    || fail "HTTP/1.0: read ended with status $(cat "$tmp/raw.status"): $got"

# (an HTTP/1.0 client keeps a connection only when the answer says keep-alive: one
# that was not told waited for the close, and the server for its next request)
got=$(raw 'GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n')
if [ "$(count "$got")" = 2 ] && [ "$(grep -ci '^Connection: keep-alive' <<<"$got")" = 1 ] &&
   [ "$(grep -ci '^Connection: close' <<<"$got")" = 1 ]; then
    ok "HTTP/1.0 keep-alive: the answer says so, the connection stays, then closes"
else
    fail "HTTP/1.0 keep-alive: $got"
fi
got=$(raw 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
[ "$(count "$got")" = 1 ] && grep -qi '^Connection: close' <<<"$got" \
    && ok "Connection: close: the answer says close" || fail "Connection: close answer: $got"

got=$(raw 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n')
grep -q "405 Method Not Allowed" <<<"$got" && ok "a method it does not serve: 405 and close" \
    || fail "bad method: $got"

# a body is not read by this server: it must not be taken for the next request (which
# a client could smuggle in it), so such a GET is refused and the connection closed
inner='GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n'
got=$(raw "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 35\r\n\r\n$inner")
if grep -q "400 Bad Request" <<<"$got" && [ "$(count "$got")" = 0 ]; then
    ok "a GET with a body: 400 and close, its body not taken for a request"
else
    fail "a GET with a body: $got"
fi
got=$(raw 'GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n')
grep -q "400 Bad Request" <<<"$got" && ok "a chunked GET: 400 and close" || fail "chunked: $got"
got=$(raw 'GET / HTTP/1.1\r\nHost: x\r\nConnection: x-not-closed\r\n\r\n' 'GET / HTTP/1.1\r\nHost: x\r\n\r\n')
[ "$(count "$got")" = 2 ] && ok "Connection's tokens are whole words" \
    || fail "Connection: x-not-closed: $(count "$got") answers"

# (every line ends in CRLF: a bare LF or a lone CR once ended the header block early
# for the parser alone, and the Content-Length or Transfer-Encoding after it was not
# read, nor a Connection: close; below, with the malformed requests)
# a field name ends at its colon: with a space before it, or folded onto the line above,
# a Content-Length might be missed and its body taken for the next request
for how in 'Content-Length : 35' 'X: a\r\n Content-Length: 35'; do
    got=$(raw "GET / HTTP/1.1\r\nHost: x\r\n$how\r\n\r\n$inner")
    if grep -q "400 Bad Request" <<<"$got" && [ "$(count "$got")" = 0 ]; then
        ok "a header written '$how': 400 and close, nothing smuggled"
    else
        fail "a header written '$how': $got"
    fi
done
got=$(raw 'GET / HTTP/1.2\r\nHost: x\r\n\r\n')
[ "$(count "$got")" = 1 ] && ok "HTTP/1.2: served as 1.1" || fail "HTTP/1.2: $got"
got=$(raw 'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0 \r\n\r\n')
[ "$(count "$got")" = 1 ] && ok "Content-Length 0 with a blank after it: answered" \
    || fail "Content-Length '0 ': $got"
for bad in 'GET garbage\r\n\r\n' 'GET /\r\n\r\n' 'GET / HTTP/2.0\r\nHost: x\r\n\r\n' \
           'GET / HTTP/1.0 \r\n\r\n' '\nGET / HTTP/1.1\r\nHost: x\r\n\r\n' \
           'GET / HTTP/1.1\r\n\r\n' 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n' \
           'GET / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n' \
           'GET / HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n' \
           'GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n' \
           'GET / HTTP/1.1\r\nHost: x\n\nGET /x HTTP/1.1\r\nHost: x\r\n\r\n' \
           'GET / HTTP/1.1\r\nHost: x\r\n\nContent-Length: 5\r\n\r\nhello' \
           'GET / HTTP/1.1\r\nHost: x\r\n\rTransfer-Encoding: chunked\r\n\r\n' \
           'GET / HTTP/1.1\r\nHost: x\nContent-Length: 5\r\n\r\nhello' \
           'GET /a\rb HTTP/1.1\r\nHost: x\r\n\r\n' \
           'GET / HTTP/1.1\nHost: x\n\n'; do  # (bare LFs only: once no answer till the timeout)
    got=$(raw "$bad")
    grep -q "400 Bad Request" <<<"$got" && [ "$(count "$got")" = 0 ] \
        && ok "malformed, 400: $bad" || fail "malformed '$bad': $got"
done

big=$(head -c 20000 /dev/zero | tr '\0' 'a')
got=$(raw "GET / HTTP/1.1\r\nHost: x\r\nX: $big")
grep -q "^HTTP/1.1 431 " <<<"$got" && ok "a request larger than 16 KiB: 431, then the connection is closed" \
    || fail "oversized request: ${got:0:80}"
# a request line longer than the server takes: 414 (RFC 9112, 3: "A server that receives
# a request-target longer than any URI it wishes to parse MUST respond with a 414")
got=$(raw "GET /$big")
grep -q "^HTTP/1.1 414 " <<<"$got" && ok "a request line longer than 16 KiB: 414, then the connection is closed" \
    || fail "oversized request line: ${got:0:80}"

timeout 20 wrk -t1 -c20 -d1s "$url" >"$tmp/wrk" 2>&1
reqs=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$tmp/wrk")
if [ "${reqs:-0}" -gt 0 ] && ! grep -q "Socket errors\|Non-2xx" "$tmp/wrk"; then
    ok "wrk: $reqs requests over 20 connections, no errors"
else
    fail "wrk"; cat "$tmp/wrk"
fi

if stop_server "stopped accepting"; then
    ok "SIGTERM: a graceful stop, status 0"
else
    fail "SIGTERM"
fi

# A client that begins a request and goes silent is closed after the timeout (it held
# its connection and descriptor for ever: enough of them starve every other client).
start_server "$server" 1
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET / HTTP/1.1\r\nHost: x\r\n' >&3
start=$(date +%s%N)
timeout 10 cat <&3 >/dev/null
took=$(( ($(date +%s%N) - start) / 1000000 ))
exec 3<&-
[ "$took" -lt 9000 ] && ok "a request begun, then silence: closed after the timeout (${took} ms)" \
    || fail "a silent client was kept for ${took} ms"
# fed_until_closed FIRST MORE COUNT: a connection that sends FIRST, then MORE every 0.5 s
# (COUNT times), and reads until the server closes it (12 s at most); $took: how long
# that took, in ms.
fed_until_closed() {
    exec 3<>"/dev/tcp/127.0.0.1/$port"
    printf '%b' "$1" >&3
    start=$(date +%s%N)
    (for _ in $(seq "$3"); do sleep 0.5; printf '%b' "$2" >&3 2>/dev/null || break; done) &
    local feeder=$!
    timeout 12 cat <&3 >/dev/null
    took=$(( ($(date +%s%N) - start) / 1000000 ))
    kill $feeder 2>/dev/null; wait $feeder 2>/dev/null
    exec 3<&-
}
# The timeout is for the whole request, not each read: a client that sends a byte every
# 0.5 s is closed too (each read once had a timeout of its own: kept for as long as the
# client liked, 8 s here).
fed_until_closed 'GET / HTTP/1.1\r\n' 'X' 16
[ "$took" -lt 5000 ] && ok "a request that trickles in: closed after the timeout (${took} ms)" \
    || fail "a trickling client was kept for ${took} ms"
# An empty line between requests (RFC 9112, 2.2) begins no request: the connection
# stays idle (6 s here), not on the 1 s of a request begun (it was closed after 1 s).
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\n\r\n' >&3
sleep 2.5 # longer than a request may take, well inside the idle time
(printf 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3) 2>/dev/null # (closed: SIGPIPE)
got=$(timeout 5 cat <&3)
exec 3<&-
[ "$(count "$got")" = 2 ] && ok "an empty line between requests: the connection stays idle" \
    || fail "an empty line between requests: $(count "$got") answers"
# But empty lines alone are no request either: a client that sends only those, one
# every 0.5 s, is closed when it has been idle 6 s since its connection (each empty
# line began a new idle time: kept for as long as it sent them, 12 s here).
fed_until_closed '\r\n' '\r\n' 24
[ "$took" -lt 10000 ] && ok "empty lines only, one every 0.5 s: closed once idle 6 s (${took} ms)" \
    || fail "a client sending only empty lines was kept for ${took} ms"
stop_server "stopped accepting" || fail "SIGTERM of the second server"
echo "http_clients: $failures failed"
[ $failures = 0 ]
