#!/usr/bin/env bash
# Build plait and run its test suite.
#   bash scripts/test.sh          plain build (warnings are errors)
#   bash scripts/test.sh asan     AddressSanitizer + UndefinedBehaviorSanitizer
#   bash scripts/test.sh tsan     ThreadSanitizer (coroutine switches annotated as fibers)
# Installs what it needs when missing: a C compiler, CMake, the real HTTP clients the
# I/O examples are tested against (curl, wrk), and for `plait compare`'s report test
# headless Chromium and python3-jsonschema.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-plain}

need=()
command -v cc >/dev/null || need+=(gcc)
command -v cmake >/dev/null || need+=(cmake)
command -v curl >/dev/null || need+=(curl)
command -v wrk >/dev/null || need+=(wrk)
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || need+=(chromium)
# Debian's interpreter, into which apt installs jsonschema (the report's test runs it)
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import jsonschema' 2>/dev/null || need+=(python3-jsonschema)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" make
fi

case "$mode" in
  plain) dir=build-test; flags=() ;;
  asan)  dir=build-asan; flags=(-DPLAIT_SANITIZE=address,undefined) ;;
  tsan)  dir=build-tsan; flags=(-DPLAIT_SANITIZE=thread) ;;
  *) echo "usage: $0 [plain|asan|tsan]" >&2; exit 2 ;;
esac

cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPLAIT_WERROR=ON -DPLAIT_BENCH=OFF "${flags[@]}" >/dev/null
cmake --build "$dir" -j"$(nproc)"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
# Each test binary's own alarm (check.h; ctest's limit is 300 s): a sanitizer build runs
# several times slower (test_core takes about a minute under TSan on 2 cores).
if [ "$mode" != plain ]; then
  export PLAIT_TEST_TIMEOUT=${PLAIT_TEST_TIMEOUT:-240}
fi
ctest --test-dir "$dir" --output-on-failure -j"$(nproc)"
