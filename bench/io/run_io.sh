#!/usr/bin/env bash
# bench/io/run_io.sh — plait's coroutine servers against other runtimes: an HTTP/1.1
# "hello" server (wrk, 50 connections and 1 connection: requests/s, the 99th
# percentile latency and the server's CPU time per request; then the memory
# 10,000 idle connections cost it) and a TCP echo server (100 connections playing
# 64-byte ping-pong: round trips/s and the server's CPU time per round trip).
#
#   bench/io/run_io.sh                  5 runs, 5 s per load run
#   bench/io/run_io.sh --runs 9         9 runs
#   bench/io/run_io.sh --seconds 10     10 s per wrk and echo_client run
#   bench/io/run_io.sh --only plait,epoll,go
#                                       only these servers (plait epoll libuv go
#                                       asyncio nginx)
#   bench/io/run_io.sh --quick          1 run, 2 s per load run: a smoke test
#
# The servers (all: `SERVER PORT`, on 127.0.0.1, one thread, until SIGTERM):
#   plait    examples/http_server.c and echo_server.c (CMake targets plait_http,
#            plait_echo; binaries in BUILD/bench/io/), on the io_uring poller
#   plait-epoll  the same on the epoll poller (PLAIT_POLLER=epoll)
#   epoll    a hand-written epoll loop in C (peer_http_epoll.c, peer_echo_epoll.c)
#   libuv    one libuv loop (peer_http_libuv.c, peer_echo_libuv.c)
#   go       net/http and a goroutine per connection, GOMAXPROCS=1 (peer_*.go)
#   asyncio  Python asyncio protocols (peer_http_asyncio.py, peer_echo_asyncio.py)
#   nginx    HTTP only: nginx_hello.conf.in, one process
# Each server is pinned to the first CPU and the load generator (wrk, echo_client,
# idle_client) to the second.  Missing Debian packages are installed (apt-get, as
# root or through sudo): wrk, libuv1-dev, nginx-light, golang-go, python3, curl.
#
# Built into BUILD/io/ (BUILD is build-bench/ at the top of the repository, or
# BUILD_DIR).  Raw figures go to BUILD/io/results.txt (`# servers http|echo ...`,
# then `# run N` and `<figure> <server> <value>` lines), the summary (medians, plait's
# ratio to each peer: the median of the per-run ratios) to BUILD/io/summary.txt.
# Within a run each figure is taken of every server in turn, seconds apart (run N
# starts with the Nth server), so on a shared machine quote the ratios and medians
# rather than one absolute figure.
#
# A server that does not start or stop cleanly, or a measurement that fails, is named
# on stderr and in results.txt (`# FAILED <server> <step> run <i>: <its message>`), as
# is a part not run (`# SKIPPED <figure>: <why>`: the idle connections where
# RLIMIT_NOFILE is too low); the summary lists them first and says "not measured" of
# every figure of a server that is missing.  The exit status is 1 when something
# failed or the summary is not complete (summarize_io.py's exit status), else 0.

# shellcheck disable=SC2317  # the functions run through `trap` and "$step"
set -euo pipefail

runs=5
quick=0
seconds=""
only=""
all_servers="plait plait-epoll epoll libuv go asyncio nginx"
while [ $# -gt 0 ]; do
    opt="$1"
    shift
    case "$opt" in --*=*) set -- "${opt#*=}" "$@"; opt="${opt%%=*}" ;; esac
    case "$opt" in
        --runs|--seconds|--only)
            [ $# -gt 0 ] || { echo "run_io.sh: $opt needs a value" >&2; exit 2; }
            case "$opt" in --runs) runs="$1" ;; --seconds) seconds="$1" ;; *) only="$1" ;; esac
            shift ;;
        --quick) quick=1 ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "run_io.sh: unknown option $opt (try --help)" >&2; exit 2 ;;
    esac
done
case "$runs" in ''|*[!0-9]*|0) echo "run_io.sh: --runs wants a positive number" >&2; exit 2 ;; esac
[ "$quick" = 1 ] && runs=1
[ -n "$seconds" ] || { [ "$quick" = 1 ] && seconds=2 || seconds=5; }
case "$seconds" in ''|*[!0-9]*|0) echo "run_io.sh: --seconds wants a positive number" >&2; exit 2 ;; esac
selected="$all_servers"
if [ -n "$only" ]; then
    selected="${only//,/ }"
    for s in $selected; do
        case " $all_servers " in *" $s "*) ;; *) echo "run_io.sh: unknown server '$s' (known: $all_servers)" >&2; exit 2 ;; esac
    done
fi
wanted() { case " $selected " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
here="$root/bench/io"
build="${BUILD_DIR:-$root/build-bench}"
out="$build/io"
mkdir -p "$out"
cd "$root"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/run_io.XXXXXX")"

# The server being run (the `timeout` wrapping it, and the server itself): stopped
# on the way out, however the script ends.
T_PID="" S_PID="" S_PORT=""
cleanup() {
    if [ -n "$T_PID" ]; then
        kill -TERM "${S_PID:-$T_PID}" 2>/dev/null || true
        sleep 0.5
        kill -KILL "${S_PID:-$T_PID}" 2>/dev/null || true
    fi
    exec 9>&- 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- 1. the packages -----------------------------------------------------------------
nginx="$(command -v nginx || echo /usr/sbin/nginx)"
missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
dpkg -s libuv1-dev >/dev/null 2>&1 || missing+=(libuv1-dev)
[ -x "$nginx" ] || missing+=(nginx-light)
command -v go >/dev/null 2>&1 || missing+=(golang-go)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    # nginx's package starts a system nginx on port 80: a policy-rc.d that says
    # "no" keeps it from doing so (removed again if this script put it there).
    policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
        $sudo chmod 755 "$policy"
    fi
    st=0
    { timeout 900 $sudo apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive timeout 900 $sudo apt-get install -y -qq "${missing[@]}"; } || st=$?
    [ -z "$policy" ] || $sudo rm -f "$policy"
    [ "$st" = 0 ] || { echo "run_io.sh: installing ${missing[*]} failed" >&2; exit 1; }
    nginx="$(command -v nginx || echo /usr/sbin/nginx)"
fi
# The Debian interpreter, as the other peers are Debian's, when there is one.
python=python3
[ -x /usr/bin/python3 ] && python=/usr/bin/python3

first_line() { "$@" 2>&1 | head -n 1 || true; }
versions="$(first_line "$nginx" -v); $(first_line go version); libuv $(pkg-config --modversion libuv 2>/dev/null || dpkg-query -W -f='${Version}' libuv1-dev); $(first_line "$python" --version); wrk $(first_line wrk -v | awk '{ print $2 }'); $(first_line gcc --version)"
echo "== versions: $versions"

# ---- 2. the peers and the load generators ---------------------------------------------
echo "== building the peers into $out"
cflags=(-std=c17 -O2 -Wall -Wextra -Werror)
read -r -a uv_flags <<<"$(pkg-config --cflags --libs libuv 2>/dev/null || echo -luv)"
for p in peer_http_epoll peer_echo_epoll echo_client idle_client; do
    timeout 300 gcc "${cflags[@]}" -o "$out/$p" "$here/$p.c"
done
for p in peer_http_libuv peer_echo_libuv; do
    timeout 300 gcc "${cflags[@]}" -o "$out/$p" "$here/$p.c" "${uv_flags[@]}"
done
for p in peer_http peer_echo; do
    (cd "$here" &&
     GO111MODULE=off GOFLAGS='' GOPROXY=off GOTOOLCHAIN=local \
     GOCACHE="$out/gocache" GOPATH="$out/gopath" \
     timeout 600 go build -o "$out/$p" "$p.go")
done

# ---- 3. plait's servers ------------------------------------------------------------------
# The examples examples/http_server.c and examples/echo_server.c, built as the CMake
# targets plait_http and plait_echo (bench/CMakeLists.txt) into $build/bench/io/.
# "plait" runs them on the default poller (io_uring where the kernel allows it),
# "plait-epoll" with PLAIT_POLLER=epoll.
plait_http="" plait_echo=""
if wanted plait || wanted plait-epoll; then
    log="$out/build.log"
    echo "== building plait (Release, -O2) into $build (log: $log)"
    timeout 600 cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
          -DCMAKE_C_FLAGS_RELEASE="-O2 -DNDEBUG" \
          -DPLAIT_BENCH=ON -DPLAIT_TESTS=OFF >"$log" 2>&1 \
        || { tail -n 30 "$log"; echo "run_io.sh: cmake configure failed" >&2; exit 1; }
    timeout 900 cmake --build "$build" -j "$(nproc)" --target plait_http plait_echo >>"$log" 2>&1 \
        || { tail -n 30 "$log"; echo "run_io.sh: building plait_http plait_echo failed" >&2; exit 1; }
    plait_http="$build/bench/io/plait_http"
    plait_echo="$build/bench/io/plait_echo"
fi

http_servers="" echo_servers=""
for s in $all_servers; do
    wanted "$s" || continue
    http_servers="$http_servers $s"
    [ "$s" = nginx ] || echo_servers="$echo_servers $s"
done
[ -n "$http_servers$echo_servers" ] || { echo "run_io.sh: no server to run" >&2; exit 1; }

# ---- 4. the machine: CPUs, descriptors --------------------------------------------------
# The first two CPUs this script may use: the server on one, the load on the other.
read -r cpu_server cpu_client < <(awk '/^Cpus_allowed_list:/ {
    n = split($2, parts, ","); k = 0
    for (i = 1; i <= n && k < 2; i++) {
        m = split(parts[i], r, "-"); hi = (m == 2) ? r[2] : r[1]
        for (c = r[1]; c <= hi && k < 2; c++) cpu[k++] = c
    }
    print cpu[0], (k > 1 ? cpu[1] : cpu[0]) }' /proc/self/status)
[ "$cpu_server" != "$cpu_client" ] ||
    echo "== warning: only one CPU: the servers and the load generators share CPU $cpu_server"

idle_n=10000
hard="$(ulimit -Hn)"
[ "$hard" = unlimited ] && hard=1048576
ulimit -n "$hard" 2>/dev/null || true
nofile="$(ulimit -n)"
[ "$nofile" = unlimited ] && nofile=1048576
idle_ok=1 idle_skip=""
if [ "$nofile" -lt $((idle_n + 100)) ]; then
    idle_ok=0
    idle_skip="RLIMIT_NOFILE's hard limit is $hard, it needs $((idle_n + 100))"
    echo "== skipping the idle-connection test: $idle_skip (noted in the summary)"
fi

# ---- 5. running a server ----------------------------------------------------------------
port_next="${IO_PORT_BASE:-18080}"
port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# start_server KIND NAME LIMIT_S: run it pinned, on a fresh free port, until it
# accepts connections; sets T_PID (its timeout), S_PID (the server), S_PORT.
start_server() {
    local kind="$1" name="$2" limit="$3" cmd _
    while port_open "$port_next"; do port_next=$((port_next + 1)); done
    S_PORT=$port_next
    port_next=$((port_next + 1))
    case "$kind:$name" in
        http:plait) cmd=(env PLAIT_POLLER=io_uring "$plait_http" "$S_PORT") ;;
        echo:plait) cmd=(env PLAIT_POLLER=io_uring "$plait_echo" "$S_PORT") ;;
        http:plait-epoll) cmd=(env PLAIT_POLLER=epoll "$plait_http" "$S_PORT") ;;
        echo:plait-epoll) cmd=(env PLAIT_POLLER=epoll "$plait_echo" "$S_PORT") ;;
        *:epoll) cmd=("$out/peer_${kind}_epoll" "$S_PORT") ;;
        *:libuv) cmd=("$out/peer_${kind}_libuv" "$S_PORT") ;;
        *:go) cmd=(env GOMAXPROCS=1 "$out/peer_$kind" "$S_PORT") ;;
        *:asyncio) cmd=("$python" "$here/peer_${kind}_asyncio.py" "$S_PORT") ;;
        http:nginx)
            local d="$tmp/nginx.$S_PORT"
            mkdir -p "$d"
            sed -e "s|@PORT@|$S_PORT|g" -e "s|@DIR@|$d|g" -e "s|@CONNS@|$((nofile - 64))|g" \
                "$here/nginx_hello.conf.in" >"$d/nginx.conf"
            cmd=("$nginx" -p "$d" -e "$d/error.log" -c "$d/nginx.conf") ;;
        *) echo "run_io.sh: no $kind server '$name'" >&2; return 1 ;;
    esac
    timeout -k 5 "$limit" taskset -c "$cpu_server" "${cmd[@]}" >"$tmp/server.log" 2>&1 &
    T_PID=$!
    S_PID=""
    for _ in $(seq 1 100); do
        if ! kill -0 "$T_PID" 2>/dev/null; then
            local st=0
            wait "$T_PID" || st=$?
            T_PID=""
            echo "run_io.sh: $name ($kind) exited (status $st) before listening on $S_PORT:" >&2
            tail -n 20 "$tmp/server.log" >&2
            return 1
        fi
        port_open "$S_PORT" && break
        sleep 0.1
    done
    if ! port_open "$S_PORT"; then
        echo "run_io.sh: $name ($kind) did not listen on $S_PORT within 10 s" >&2
        stop_server "$kind" "$name" || true
        return 1
    fi
    # timeout runs it as its child (taskset and env exec it)
    S_PID="$( { pgrep -P "$T_PID" || cat "/proc/$T_PID/task/$T_PID/children"; } 2>/dev/null |
              awk '{ print $1; exit }' || true)"
    if [ -z "$S_PID" ]; then
        echo "run_io.sh: cannot find the process of $name ($kind)" >&2
        stop_server "$kind" "$name" || true
        return 1
    fi
    # plait's servers print the poller they run on.  Asked for io_uring where the kernel
    # refuses it, plait runs on epoll: its figures would be epoll's under io_uring's name.
    case "$name" in
        plait|plait-epoll)
            local want=io_uring line=""
            [ "$name" = plait-epoll ] && want=epoll
            for _ in $(seq 1 50); do # printed just after it listens
                line="$(grep -m1 -o 'poller: [a-z_]*' "$tmp/server.log" || true)"
                [ -n "$line" ] && break
                sleep 0.1
            done
            if [ "$line" != "poller: $want" ]; then
                echo "run_io.sh: $name ($kind) runs on ${line:-an unknown poller (none printed)}, not $want: no figure of it" >&2
                stop_server "$kind" "$name" || true
                return 1
            fi ;;
    esac
}

# stop_server KIND NAME: SIGTERM, 5 s to exit (then SIGKILL); fails unless it exits 0.
stop_server() {
    [ -n "$T_PID" ] || return 0
    local target="${S_PID:-$T_PID}" st=0 _
    kill -TERM "$target" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$T_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$T_PID" 2>/dev/null; then
        echo "run_io.sh: $2 ($1) still running 5 s after SIGTERM: killed" >&2
        kill -KILL "$target" 2>/dev/null || true
    fi
    wait "$T_PID" || st=$?
    T_PID="" S_PID=""
    if [ "$st" != 0 ]; then
        echo "run_io.sh: $2 ($1) exited with status $st after SIGTERM (expected 0)" >&2
        tail -n 5 "$tmp/server.log" >&2
        return 1
    fi
}

# The server's CPU time (user + system, all its threads) in clock ticks.  With two
# CPUs, one load generator can be the bottleneck of a fast server: the CPU time the
# server spent per request tells servers apart even then.
clk_tck="$(getconf CLK_TCK)"
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$S_PID/stat"; }
# FIGURE SERVER TICKS_BEFORE COUNT COUNTED: record µs of server CPU per unit of work;
# without a COUNT (COUNTED says whose), no figure and a message
cpu_per() {
    local now
    now="$(cpu_ticks)"
    if ! [ "$4" -gt 0 ] 2>/dev/null; then
        echo "run_io.sh: $1 of $2: no count of $5's output: no figure recorded" >&2
        return 1
    fi
    record "$1" "$2" "$(awk -v t="$((now - $3))" -v hz="$clk_tck" -v n="$4" 'BEGIN { printf "%.2f", t * 1e6 / hz / n }')"
}

results="$out/results.txt"
: >"$results"
# what was run, for the summary to say which server has no figure; what was not run
echo "# servers http$http_servers" >>"$results"
echo "# servers echo$echo_servers" >>"$results"
[ "$idle_ok" = 1 ] || echo "# SKIPPED idle10k_kib_per_conn: $idle_skip" >>"$results"
failed=0
record() { # FIGURE SERVER VALUE
    echo "$1 $2 $3" >>"$results"
    printf '   %-22s %-8s %s\n' "$1" "$2" "$3"
}

# wrk_run NAME CONNS: wrk -t1 against the running server; records httpC_rps, httpC_p99_us.
wrk_run() {
    local name="$1" c="$2" o rps p99 n cpu0
    cpu0="$(cpu_ticks)"
    if ! o="$(timeout $((seconds + 30)) taskset -c "$cpu_client" \
              wrk -t1 -c"$c" -d"${seconds}s" --latency "http://127.0.0.1:$S_PORT/" 2>&1)"; then
        echo "run_io.sh: wrk -c$c against $name failed:" >&2
        printf '%s\n' "$o" | tail -n 5 >&2
        return 1
    fi
    rps="$(awk '$1 == "Requests/sec:" { printf "%.0f", $2 }' <<<"$o")"
    n="$(awk '$2 == "requests" && $3 == "in" { print $1 }' <<<"$o")"
    # wrk prints latencies as 812.00us, 1.23ms, 2.01s (or m, h): into microseconds
    p99="$(awk '$1 == "99%" { v = $2; u = $2; sub(/[a-z]+$/, "", v); sub(/^[0-9.]+/, "", u)
                              m = u == "us" ? 1 : u == "ms" ? 1e3 : u == "s" ? 1e6 : u == "m" ? 6e7 : u == "h" ? 3.6e9 : 0
                              if (m) printf "%.0f", v * m }' <<<"$o")"
    if [ -z "$rps" ] || [ -z "$p99" ] || [ "$rps" = 0 ]; then
        echo "run_io.sh: no figures in wrk's output for $name:" >&2
        printf '%s\n' "$o" >&2
        return 1
    fi
    # before anything is recorded: the figures of a run whose requests failed (a server
    # answering errors at full speed) are no figures of that server
    if grep -Eq 'Socket errors|Non-2xx' <<<"$o"; then
        echo "run_io.sh: wrk -c$c against $name: $(grep -E 'Socket errors|Non-2xx' <<<"$o" | tr -s ' ' | tr '\n' ';') no figure recorded" >&2
        return 1
    fi
    record "http${c}_rps" "$name" "$rps"
    record "http${c}_p99_us" "$name" "$p99"
    cpu_per "http${c}_cpu_us_per_req" "$name" "$cpu0" "$n" "requests in wrk"
}

echo_run() {
    local name="$1" o n cpu0
    cpu0="$(cpu_ticks)"
    if ! o="$(timeout $((seconds + 30)) taskset -c "$cpu_client" \
              "$out/echo_client" 127.0.0.1 "$S_PORT" 100 "$seconds" 64 2>&1)"; then
        echo "run_io.sh: echo_client against $name failed: $o" >&2
        return 1
    fi
    n="$(sed -n 's/^round_trips=\([0-9]*\)$/\1/p' <<<"$o")"
    o="$(sed -n 's/^round_trips_per_s=\([0-9.]*\)$/\1/p' <<<"$o")"
    [ -n "$o" ] || { echo "run_io.sh: no figure from echo_client against $name" >&2; return 1; }
    record echo100_rtps "$name" "$o"
    cpu_per echo100_cpu_us_per_rt "$name" "$cpu0" "$n" "round trips in echo_client"
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$S_PID/status"; }
fd_count() { find "/proc/$S_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# idle_run NAME: the server's resident memory before and with idle_n idle
# connections (once it holds their descriptors and its RSS has stopped moving: one
# that still moves after 3 s gives no figure).
idle_run() {
    local name="$1" before after fds0 prev line="" cpid st=0 settled=0 _
    before="$(rss_kib)"
    fds0="$(fd_count)"
    rm -f "$tmp/idle.fifo"
    mkfifo "$tmp/idle.fifo"
    # The script holds the fifo open read-write (so opening it does not block);
    # closing that is the client's end of stdin.
    exec 9<>"$tmp/idle.fifo"
    timeout 180 taskset -c "$cpu_client" "$out/idle_client" 127.0.0.1 "$S_PORT" "$idle_n" \
        <"$tmp/idle.fifo" >"$tmp/idle.out" 2>&1 9<&- &
    cpid=$!
    for _ in $(seq 1 600); do
        line="$(grep -m1 '^connected=' "$tmp/idle.out" || true)"
        [ -n "$line" ] && break
        kill -0 "$cpid" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$line" ]; then
        exec 9>&-
        wait "$cpid" || true
        echo "run_io.sh: idle_client against $name: $(tr '\n' ' ' <"$tmp/idle.out")" >&2
        return 1
    fi
    for _ in $(seq 1 100); do
        [ "$(fd_count)" -ge $((fds0 + idle_n)) ] && break
        sleep 0.1
    done
    # A server that does not hold them all has no figure: the growth of the connections
    # it took, divided by all of them, would be too small.
    if [ "$(fd_count)" -lt $((fds0 + idle_n)) ]; then
        echo "run_io.sh: idle_client against $name: the server holds $(($(fd_count) - fds0)) of the $idle_n connections after 10 s: no figure recorded" >&2
        exec 9>&-
        wait "$cpid" || true
        return 1
    fi
    after="$(rss_kib)"
    for _ in $(seq 1 15); do
        sleep 0.2
        prev="$after"
        after="$(rss_kib)"
        [ "$after" = "$prev" ] && { settled=1; break; }
    done
    exec 9>&-
    wait "$cpid" || st=$?
    [ "$st" = 0 ] || { echo "run_io.sh: idle_client against $name exited with status $st" >&2; return 1; }
    if [ "$settled" = 0 ]; then
        echo "run_io.sh: idle10k_kib_per_conn of $name: the server's memory did not settle within 3 s (${prev} KiB, then ${after} KiB): no figure recorded" >&2
        return 1
    fi
    record idle10k_kib_per_conn "$name" "$(awk -v a="$after" -v b="$before" -v n="$idle_n" \
                                             'BEGIN { printf "%.2f", (a - b) / n }')"
}

# attempt SERVER STEP COMMAND...: run COMMAND (a function of this script) with its
# messages held until it ends; when it fails, `# FAILED SERVER STEP run R: <its first
# message>` in results.txt (R: the run under way) and failed=1.
attempt() {
    local name="$1" what="$2" st=0 why
    shift 2
    "$@" 2>"$tmp/messages" || st=$?
    cat "$tmp/messages" >&2
    [ "$st" = 0 ] && return 0
    why="$(sed -n '/^run_io\.sh: /{s///p;q}' "$tmp/messages")"
    echo "# FAILED $name $what run $r: ${why:-status $st}" >>"$results"
    failed=1
    return 1
}

# one KIND NAME LIMIT_S STEP...: start the server, run each step, stop it.
one() {
    local kind="$1" name="$2" limit="$3" step
    shift 3
    attempt "$name" "start ($kind)" start_server "$kind" "$name" "$limit" || return 0
    for step in "$@"; do
        attempt "$name" "$step" "$step" "$name" || true
    done
    attempt "$name" "stop ($kind)" stop_server "$kind" "$name" || true
}
wrk50() { wrk_run "$1" 50; }
wrk1() { wrk_run "$1" 1; }

# ---- 6. run --------------------------------------------------------------------------------
start=$(date +%s)
# rotated LIST R: the list begun at its (R-1)th item (wrapping), so that no server is
# always the first after a pause or the last before one.
rotated() {
    local -a list
    read -r -a list <<<"$1"
    local n=${#list[@]} i
    for ((i = 0; i < n; i++)); do printf '%s ' "${list[(i + $2 - 1) % n]}"; done
}
for r in $(seq 1 "$runs"); do
    echo "== run $r of $runs"
    echo "# run $r" >>"$results"
    # one figure at a time over every server, so that the two sides of a ratio are
    # measured seconds apart, not minutes
    http_order="$(rotated "$http_servers" "$r")"
    for s in $http_order; do one http "$s" $((seconds + 90)) wrk50; done
    for s in $http_order; do one http "$s" $((seconds + 90)) wrk1; done
    if [ "$idle_ok" = 1 ]; then
        for s in $http_order; do one http "$s" 300 idle_run; done
    fi
    for s in $(rotated "$echo_servers" "$r"); do
        one echo "$s" $((seconds + 90)) echo_run
    done
done
elapsed=$(( $(date +%s) - start ))

# ---- 7. summary ------------------------------------------------------------------------------
summary="$out/summary.txt"
summarized=0
{
    echo "machine: $(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), Linux $(uname -r)"
    echo "servers on CPU $cpu_server, load on CPU $cpu_client; plait at $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "tools: $versions"
    echo "runs: $runs$([ "$quick" = 1 ] && echo ' (quick)'), ${seconds} s per load run, $elapsed s"
    echo
    "$python" "$here/summarize_io.py" "$results"
} | tee "$summary" || summarized=$?
if [ "$summarized" != 0 ]; then
    echo "run_io.sh: the summary is not complete: see FAILED and 'not measured' in $summary" >&2
    failed=1
fi
[ "$failed" = 0 ] || echo "run_io.sh: some measurements failed (see the messages above)" >&2
exit "$failed"
