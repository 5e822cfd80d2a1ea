#!/usr/bin/env bash
# tests/echo_client_timeout.sh CLIENT — the echo client's TIMEOUT bounds each round trip,
# not the whole run: against a server that answers each line 0.3 s late, 6 messages
# (about 1.8 s) with a 1 s timeout succeed; against one that answers 2 lines and then
# never again, the client fails, saying so, about 1 s after the last answer.
set -uo pipefail
client="${1:?usage: echo_client_timeout.sh CLIENT}"
command -v python3 >/dev/null || { echo "SKIP no python3 for the slow server"; exit 77; }
tmp=$(mktemp -d)
. "$(dirname "$0")/start_server.sh"
# slow_echo.py 0 ANSWERS: one connection, each line echoed after 0.3 s; after ANSWERS
# lines (0: no limit) it reads on but answers nothing more, until the client closes.
cat >"$tmp/slow_echo.py" <<'PY'
#!/usr/bin/env python3
import socket, sys, time
answers = int(sys.argv[2])
ls = socket.socket()
ls.bind(("127.0.0.1", int(sys.argv[1])))
ls.listen(1)
print("listening on 127.0.0.1:%d" % ls.getsockname()[1], flush=True)
ls.settimeout(60)
c, _ = ls.accept()
c.settimeout(60)
done = 0
for line in c.makefile("rb"):
    if answers == 0 or done < answers:
        time.sleep(0.3)
        c.sendall(line)
        done += 1
PY
chmod +x "$tmp/slow_echo.py"
status=0

start_server "$tmp/slow_echo.py" 0
if timeout 60 "$client" 127.0.0.1 "$port" 1 6 1 >"$tmp/client" 2>&1; then
    echo "ok   6 round trips of 0.3 s each with a 1 s timeout: $(cat "$tmp/client")"
else
    echo "FAIL a slow server with a 1 s timeout per round trip: $(cat "$tmp/client")"; status=1
fi
kill_server

start_server "$tmp/slow_echo.py" 2
begin=$(date +%s%N)
timeout 60 "$client" 127.0.0.1 "$port" 1 6 1 >"$tmp/client" 2>&1
code=$?
ms=$((($(date +%s%N) - begin) / 1000000))
# 2 answers (0.6 s), then the 1 s timeout: 1.6 s; no sooner than the timeout, and not
# much later (5 s leaves room for a loaded machine)
if [ "$code" = 1 ] && grep -q "^echo_client: the server did not answer within 1 s$" "$tmp/client" &&
   [ "$ms" -ge 1000 ] && [ "$ms" -lt 5000 ]; then
    echo "ok   a server that stops answering: exit 1 after $ms ms: $(cat "$tmp/client")"
else
    echo "FAIL a server that stops answering: exit $code after $ms ms: $(cat "$tmp/client")"; status=1
fi
exit $status
