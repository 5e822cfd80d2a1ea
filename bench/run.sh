#!/usr/bin/env bash
# bench/run.sh — build plait's benchmarks (coroutines; the thread strand: pool,
# fork-join, cross-thread wake-ups; the process strand: start+join, process pool
# round trip, map, crash recovery, queue) and their peers, run them side by side
# several times, print the median of every figure and plait's ratio to each peer.
#
#   bench/run.sh             5 runs, full counts (6-12 minutes on 2 cores; 1.8 GB of
#                            memory for Python's million pool tasks)
#   bench/run.sh --runs 9    9 runs
#   bench/run.sh --quick     1 run, small counts: a smoke test
#
# The peers come from Debian packages, installed here if missing (apt-get, as
# root or through sudo): libboost-context-dev (jump_fcontext), libtbb-dev (oneTBB),
# golang-go, python3 (asyncio, concurrent.futures, multiprocessing); glibc's ucontext,
# futex, fork, posix_spawn and pipes and gcc's OpenMP (libgomp) need nothing more.  Nothing else is downloaded: the Go peers
# are single files built with GO111MODULE=off and the proxy off.
#
# Everything is built into build-bench/ at the top of the repository (override with
# BUILD_DIR=...).  The raw figures of every run go to build-bench/results.txt, the
# summary to build-bench/summary.txt.  Within a run, each plait benchmark runs just
# before its peers, so the ratios compare figures taken moments apart: on a shared
# machine, quote the ratios and medians, not a single absolute time.
#
# A program that fails (a status other than 0, no end within 300 s, no figure) is
# named on stderr and in results.txt (`# FAILED <program> run <i>: <reason>`; its
# figures of that run are not kept), as is a part not run on purpose (`# SKIPPED
# <bench>: <why>`); the summary lists them first, says "not measured" of every figure,
# peer and goal they leave out, and warns where plait's pool and a peer's ran different
# worker counts.  The exit status is 1 when a program failed or the summary is not
# complete (bench/summarize.py's exit status), else 0.
#
# `plait bench` runs the same plait benchmarks and the peers in C (the CMake targets
# built here too) from a build tree or an install, without the peers on Go, Python,
# Boost, oneTBB and OpenMP.
set -euo pipefail
# The caller's OpenMP limits would shrink the OpenMP peer's teams below the sizes its
# figures are named for (it checks, and fails), and make nproc answer them.
unset OMP_NUM_THREADS OMP_THREAD_LIMIT OMP_DYNAMIC
# The CPUs this process may use.
cpus=$(nproc)

runs=5
quick=0
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs="${2:?--runs needs a number}"; shift 2 ;;
        --runs=*) runs="${1#--runs=}"; shift ;;
        --quick) quick=1; shift ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "run.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
done
case "$runs" in ''|*[!0-9]*|0) echo "run.sh: --runs wants a positive number" >&2; exit 2 ;; esac
[ "$quick" = 1 ] && runs=1

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build-bench}"
cd "$root"

# ---- 1. the peers' packages -------------------------------------------------------
missing=()
dpkg -s libboost-context-dev >/dev/null 2>&1 || missing+=(libboost-context-dev)
dpkg -s libtbb-dev >/dev/null 2>&1 || missing+=(libtbb-dev)
command -v go >/dev/null 2>&1 || missing+=(golang-go)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi
# The Debian interpreter, as the other peers are Debian's, when there is one.
python=python3
[ -x /usr/bin/python3 ] && python=/usr/bin/python3

# ---- 2. plait and its benchmarks ---------------------------------------------------
mkdir -p "$build"
log="$build/build.log"
: >"$log"
echo "== building plait (Release, -O2) into $build (log: $log)"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_C_FLAGS_RELEASE="-O2 -DNDEBUG" \
      -DPLAIT_BENCH=ON -DPLAIT_TESTS=OFF >>"$log" 2>&1 \
    || { tail -n 30 "$log"; echo "run.sh: cmake configure failed" >&2; exit 1; }
benches="bench_context bench_switch bench_spawn bench_memory bench_chan"
benches="$benches bench_forkjoin bench_pool bench_wakeup bench_process bench_queue"
benches="$benches bench_offload"
# The peers in C that need only libc and pthreads are CMake targets too (`plait bench`
# runs them): built here with the benchmarks, the same flags, warnings as errors.
benches="$benches peer_ucontext_switch peer_mutex_queue peer_futex_pingpong"
benches="$benches peer_process_start peer_shm_pingpong peer_pipe"
bindir="$build/bench"
# shellcheck disable=SC2086
cmake --build "$build" -j "$cpus" --target $benches >>"$log" 2>&1 \
    || { tail -n 30 "$log"; echo "run.sh: building the benchmarks failed" >&2; exit 1; }

# ---- 3. the peers ------------------------------------------------------------------
peers="$build/peers"
mkdir -p "$peers"
echo "== building the peers on other toolchains into $peers"
g++ -O2 -Wall -Wextra -Werror -o "$peers/peer_boost_switch" \
    "$root/bench/peer_boost_switch.cpp" -lboost_context
gcc -std=c17 -O2 -Wall -Wextra -Werror -fopenmp -o "$peers/peer_forkjoin_omp" \
    "$root/bench/peer_forkjoin_omp.c"
g++ -O2 -Wall -Wextra -Werror -o "$peers/peer_forkjoin_tbb" \
    "$root/bench/peer_forkjoin_tbb.cpp" -ltbb
for p in peer_spawn peer_chan peer_memory peer_forkjoin; do
    (cd "$root/bench" &&
     GO111MODULE=off GOFLAGS='' GOPROXY=off GOTOOLCHAIN=local \
     GOCACHE="$peers/gocache" GOPATH="$peers/gopath" \
     go build -o "$peers/$p" "$p.go")
done

# ---- 4. run ------------------------------------------------------------------------
if [ "$quick" = 1 ]; then
    n_switch=1000000 n_boost=1000000 n_ucontext=100000
    n_spawn=100000 n_asyncio=20000
    n_memory_first="100000" n_memory="100000"
    n_chan=100000
    n_forkjoin=2 n_pool=100000 n_wakeup=2000
    n_process=1 n_offload=500
else
    n_switch=10000000 n_boost=10000000 n_ucontext=300000
    n_spawn=1000000 n_asyncio=100000
    # A million parked coroutines take tens of seconds of page faults (the kernel
    # zeroing every page they touch), and the bytes they cost do not vary from run
    # to run: the million is measured in the first run only, 100,000 in every run.
    n_memory_first="100000 1000000" n_memory="100000"
    n_chan=1000000
    # fork-join: repetitions (fib(30) cut 20 runs 10x this many, fib(25) this many);
    # pool: no-op tasks, as many for plait, the mutex+condvar pool and Python (whose
    # rate per task falls as N grows: peer_threadpool.py; its million futures take
    # some 1.8 GB and 20 s); wakeup: round trips per variant and placement.
    n_forkjoin=10 n_pool=1000000 n_wakeup=20000
    # processes: a scale factor (1: 2,000 starts, 20,000 round trips, 20 crashes,
    # 1,000,000 small and 20,000 large queue messages; Python gets its own counts)
    n_process=1
    # offloads from a coroutine per round, 6 rounds for each of three ways
    n_offload=5000
fi

results="$build/results.txt"
: >"$results"
failed=0
# note LINE: a `# FAILED ...` or `# SKIPPED ...` line, into results.txt (the summary
# lists them) and on stderr
note() {
    echo "$1" >>"$results"
    echo "run.sh: ${1#\# }" >&2
}
# one RUN COMMAND...: run it (5 minutes at most), keep its figure lines tagged with the
# run; one that fails or prints no figure leaves a FAILED note instead
one() {
    local run="$1"; shift
    local prog out figures last why st=0
    prog="$(basename "$1")"
    [ "$1" = "$python" ] && prog="$(basename "$2")"
    out="$(timeout 300 "$@" 2>"$build/stderr.txt")" || st=$?
    cat "$build/stderr.txt" >&2
    figures="$(printf '%s\n' "$out" | awk -v r="$run" 'NF == 4 && $1 !~ /^#/ { print r, $0 }')"
    if [ "$st" != 0 ]; then
        last="$(grep -v '^[[:space:]]*$' "$build/stderr.txt" | tail -n 1 || true)"
        why="exit $st"
        [ "$st" != 124 ] || why="no end within 300 s"
        note "# FAILED $prog run $run: $why${last:+ ($last)}"
        failed=1
    elif [ -z "$figures" ]; then
        note "# FAILED $prog run $run: no figure printed"
        failed=1
    else
        printf '%s\n' "$figures" >>"$results"
    fi
}
# bench_wakeup and peer_futex_pingpong measure on two CPUs only where they may use two
[ "$cpus" -ge 2 ] ||
    note "# SKIPPED wakeup.twocpu: this process may run on one CPU only"

start=$(date +%s)
for r in $(seq 1 "$runs"); do
    echo "== run $r of $runs"
    one "$r" "$bindir/bench_context" "$((2 * n_boost))"
    one "$r" "$bindir/bench_switch" "$n_switch"
    one "$r" "$peers/peer_boost_switch" "$n_boost"
    one "$r" "$bindir/peer_ucontext_switch" "$n_ucontext"
    one "$r" "$bindir/bench_spawn" "$n_spawn"
    one "$r" "$peers/peer_spawn" "$n_spawn"
    one "$r" "$python" "$root/bench/peer_asyncio_spawn.py" "$n_asyncio"
    one "$r" "$bindir/bench_chan" "$n_chan"
    one "$r" "$peers/peer_chan" "$n_chan"
    counts="$n_memory"
    [ "$r" = 1 ] && counts="$n_memory_first"
    # shellcheck disable=SC2086
    one "$r" "$bindir/bench_memory" $counts
    # shellcheck disable=SC2086
    one "$r" "$peers/peer_memory" $counts
    one "$r" "$bindir/bench_forkjoin" "$n_forkjoin"
    one "$r" "$peers/peer_forkjoin_omp" "$n_forkjoin"
    one "$r" "$peers/peer_forkjoin_tbb" "$n_forkjoin"
    one "$r" "$peers/peer_forkjoin" "$n_forkjoin"
    one "$r" "$bindir/bench_pool" "$n_pool"
    one "$r" "$bindir/peer_mutex_queue" "$n_pool"
    one "$r" "$python" "$root/bench/peer_threadpool.py" "$n_pool"
    one "$r" "$bindir/bench_wakeup" "$n_wakeup"
    one "$r" "$bindir/peer_futex_pingpong" "$n_wakeup"
    one "$r" "$bindir/bench_process" "$n_process"
    one "$r" "$bindir/peer_process_start" "$n_process"
    one "$r" "$bindir/peer_shm_pingpong" "$n_process"
    one "$r" "$python" "$root/bench/peer_mp.py" "$n_process"
    one "$r" "$bindir/bench_queue" "$n_process"
    one "$r" "$bindir/peer_pipe" "$n_process"
    one "$r" "$bindir/bench_offload" "$n_offload"
done
elapsed=$(( $(date +%s) - start ))

# ---- 5. summary --------------------------------------------------------------------
summary="$build/summary.txt"
summarized=0
{
    echo "machine: $cpus CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), Linux $(uname -r)"
    echo "tools: $(gcc --version | head -n 1); $(go version); $("$python" --version 2>&1); boost $(dpkg-query -W -f='${Version}' libboost-context-dev 2>/dev/null || echo '?'); oneTBB $(dpkg-query -W -f='${Version}' libtbb-dev 2>/dev/null || echo '?')"
    echo "runs: $runs$([ "$quick" = 1 ] && echo ' (quick)'), $elapsed s"
    echo
    "$python" "$root/bench/summarize.py" "$results"
} | tee "$summary" || summarized=$?
if [ "$summarized" != 0 ]; then
    echo "run.sh: the summary is not complete: see FAILED, 'not measured', NOT CHECKED and WARNING in $summary" >&2
    failed=1
fi
exit "$failed"
