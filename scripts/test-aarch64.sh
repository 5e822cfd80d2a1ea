#!/usr/bin/env bash
# Check the context-switch back ends that a plain x86-64 build does not exercise.
#   bash scripts/test-aarch64.sh            cross-build for aarch64 (asm back end,
#                                           src/context_aarch64.S) in build-aarch64 and
#                                           run every test under qemu-aarch64
#   bash scripts/test-aarch64.sh ucontext   native build with -DPLAIT_CONTEXT=ucontext
#                                           (the portable fallback) in build-ucontext,
#                                           building and running the library's unit
#                                           tests (test_*; which, below)
# Installs what it needs (cross gcc, arm64 libc, qemu-user, CMake, Ninja) when missing.
# Exits non-zero if configuring, building or any test fails, or if no test is found.
# Environment: JOBS (parallel build jobs, default 2; tests run twice as many at once);
# PLAIT_TEST_TIMEOUT (each test binary's own alarm, seconds; default 280 under qemu,
# which is much slower, and 180 for ucontext, whose every switch makes two sigprocmask
# calls: test_core's million coroutines took 61 s on a loaded 2-core CI machine;
# ctest's own per-test limit is 300 s).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-aarch64}
jobs=${JOBS:-2}

case "$mode" in
  aarch64)  dir=build-aarch64
            pkgs=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user cmake make ninja-build)
            flags=(-DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/aarch64-linux-gnu.cmake")
            export PLAIT_TEST_TIMEOUT=${PLAIT_TEST_TIMEOUT:-280} ;;
  ucontext) dir=build-ucontext
            pkgs=(gcc libc6-dev cmake make ninja-build)
            flags=(-DPLAIT_CONTEXT=ucontext)
            export PLAIT_TEST_TIMEOUT=${PLAIT_TEST_TIMEOUT:-180} ;;
  -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
  *) echo "usage: $0 [aarch64|ucontext]" >&2; exit 2 ;;
esac

missing=()
if command -v dpkg >/dev/null; then
  for p in "${pkgs[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
else # not Debian: the tools must be there already
  tools=(cmake ninja cc)
  [ "$mode" = aarch64 ] && tools+=(aarch64-linux-gnu-gcc qemu-aarch64)
  for t in "${tools[@]}"; do
    command -v "$t" >/dev/null || { echo "error: $t not found" >&2; exit 1; }
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}"
fi

# (Ninja: see scripts/test.sh; a build folder made before keeps its generator)
gen=()
[ -f "$dir/CMakeCache.txt" ] || gen=(-G Ninja)
cmake "${gen[@]}" -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPLAIT_WERROR=ON \
      -DPLAIT_BENCH=OFF -DPLAIT_TESTS=ON "${flags[@]}"

# ucontext: the library's unit tests, which check the switch.  The end-to-end runs of the
# tool and the examples, and the tests of the tool, the benchmarks' drivers and the
# harness (label end_to_end, tests/CMakeLists.txt), are the other builds'; so are the
# second runs of the I/O tests on the epoll poller (_epoll: the poller is not what this
# build checks) and the pool's suite without membarrier(2) (_without_membarrier).  Only
# the programs those tests run are built.
only=()
targets=()
if [ "$mode" = ucontext ]; then
  only=(-LE end_to_end -E '_(epoll|without_membarrier)$')
  # (the programs named in the tests' commands; not built yet, each is "not found")
  mapfile -t targets < <(ctest --test-dir "$dir" -N -V "${only[@]}" |
                         grep -E 'Test command:|Could not find executable' |
                         grep -o "/$dir/tests/[A-Za-z0-9_]*" | sed 's|.*/||' | sort -u)
  [ ${#targets[@]} -gt 0 ] || { echo "error: no test programs listed" >&2; exit 1; }
  targets=(--target "${targets[@]}") # (the library with them: not "plait", the tool under Ninja)
fi
cmake --build "$dir" -j"$jobs" "${targets[@]}"

# Make sure the build is the one this script is meant to check.  (Outputs are
# captured before grep: with pipefail, grep -q closing a pipe early fails the check.)
lib="$dir/libplait.a"
if [ "$mode" = aarch64 ]; then
  arch=$(aarch64-linux-gnu-objdump -f "$lib")
  syms=$(aarch64-linux-gnu-nm "$lib")
  grep -q 'architecture: aarch64' <<<"$arch" ||
    { echo "error: $lib is not an aarch64 library" >&2; exit 1; }
  grep -q ' T plait__ctx_switch$' <<<"$syms" ||
    { echo "error: the asm switch (context_aarch64.S) is not in $lib" >&2; exit 1; }
  grep -rqs 'qemu-aarch64' "$dir/tests/CTestTestfile.cmake" ||
    { echo "error: the tests are not set to run under qemu-aarch64" >&2; exit 1; }
  echo "== aarch64 build, asm context switch; tests run under $(command -v qemu-aarch64)"
else
  syms=$(nm "$lib")
  if grep -q ' plait__ctx_switch$' <<<"$syms"; then
    echo "error: $lib holds the asm switch in a ucontext build" >&2; exit 1
  fi
  echo "== native $(uname -m) build, ucontext context switch"
fi

# (tests at once: twice the jobs, as scripts/test.sh)
ctest --test-dir "$dir" --output-on-failure --no-tests=error -j"$((2 * jobs))" "${only[@]}"
