#!/usr/bin/env bash
# Build plait and run its test suite.
#   bash scripts/test.sh          plain build (warnings are errors)
#   bash scripts/test.sh asan     AddressSanitizer + UndefinedBehaviorSanitizer (clang 19)
#   bash scripts/test.sh tsan     ThreadSanitizer (coroutine switches annotated as fibers)
#   bash scripts/test.sh coverage gcov line coverage of the library (src/): the suite,
#                                 then per file the lines no test ran, into
#                                 build-cov/coverage/ (FILE.gcov, summary.txt)
# Installs what it needs when missing: a C compiler, CMake, Ninja, gdb (the stacks of an
# example server that does not stop, in the log), the real HTTP clients the
# I/O examples are tested against (curl, wrk), and for `plait compare`'s report test
# headless Chromium and python3-jsonschema.
# Environment: PLAIT_TEST_JOBS (tests run at once; default twice the CPUs),
# PLAIT_TEST_TIMEOUT (each test binary's own alarm, seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-plain}

need=()
command -v cc >/dev/null || need+=(gcc)
command -v cmake >/dev/null || need+=(cmake)
command -v ninja >/dev/null || need+=(ninja-build)
command -v curl >/dev/null || need+=(curl)
command -v gdb >/dev/null || need+=(gdb) # the stacks of an example server that does not stop
command -v wrk >/dev/null || need+=(wrk)
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || need+=(chromium)
# Debian's interpreter, into which apt installs jsonschema (the report's test runs it)
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import jsonschema' 2>/dev/null || need+=(python3-jsonschema)
# The ASan build is clang 19's: gcc 12's AddressSanitizer takes no lock on its allocator
# around fork(), so a child forked while another thread allocated could hang for ever
# (docs/ARCHITECTURE.md, "Sanitizers"; plait compare's processes job did so in CI);
# clang's runtime has had fork handlers since LLVM 18.
if [ "$mode" = asan ]; then
  command -v clang-19 >/dev/null || need+=(clang-19)
  dpkg -s libclang-rt-19-dev >/dev/null 2>&1 || need+=(libclang-rt-19-dev)
fi
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" make
fi

type=RelWithDebInfo werror=ON
case "$mode" in
  plain) dir=build-test; flags=() ;;
  asan)  dir=build-asan-clang; flags=(-DPLAIT_SANITIZE=address,undefined)
         export CC=clang-19 CXX=clang++-19 ;; # (a folder made before keeps its compiler)
  tsan)  dir=build-tsan; flags=(-DPLAIT_SANITIZE=thread) ;;
  # (atomic counters: gcov derives some counts from others, and racing threads' lost
  # increments made hot functions' error paths look never run)
  # (unoptimised, and without -Werror: gcc's -O0 range analysis warns where -O2's
  # proves; warnings are the other builds' gate)
  coverage) dir=build-cov; type=Debug werror=OFF
            flags=("-DCMAKE_C_FLAGS=--coverage -fprofile-update=atomic -DPLAIT_COVERAGE"
                   -DCMAKE_EXE_LINKER_FLAGS=--coverage -DCMAKE_SHARED_LINKER_FLAGS=--coverage)
            find "$dir" -name '*.gcda' -delete 2>/dev/null || true ;;
  *) echo "usage: $0 [plain|asan|tsan|coverage]" >&2; exit 2 ;;
esac

# Ninja, not CMake's Makefiles, which start several processes of their own for every
# target (dependency scans, echoes): on a host where starting a process is slow a build
# took 86 s with them, 63 s with Ninja.  A build folder made before keeps its generator.
gen=()
[ -f "$dir/CMakeCache.txt" ] || gen=(-G Ninja)
cmake "${gen[@]}" -S . -B "$dir" -DCMAKE_BUILD_TYPE=$type -DPLAIT_WERROR=$werror -DPLAIT_BENCH=OFF "${flags[@]}" >/dev/null
cmake --build "$dir" -j"$(nproc)"
# (clang's runtime looks for uses of a returned function's stack frame by default: each
# call's frame then comes from a heap of fake stacks, which made the suite several times
# slower and knows nothing of coroutine stacks; gcc's has it off)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
# Each test binary's own alarm (check.h; ctest's limit is 300 s, 540 s in a sanitizer
# build): a sanitizer build runs several times slower (test_core takes about a minute
# under TSan on 2 cores), and with twice as many tests as CPUs at once a slow machine's
# plain build needs more than the 60 s a test program alone gets (a CI machine once ran
# test_core several times slower).  On a virtual machine whose page faults cost 16 µs
# each (4 s to touch 1 GiB), ThreadSanitizer's suite took 891 s where another machine's
# took 298, and four of its programs passed 240 s (test_io_backends_alike: 65 s alone).
if [ "$mode" = plain ]; then
  export PLAIT_TEST_TIMEOUT=${PLAIT_TEST_TIMEOUT:-120}
else
  export PLAIT_TEST_TIMEOUT=${PLAIT_TEST_TIMEOUT:-420}
fi
# Twice as many tests at once as CPUs: most of them spend most of their time waiting (the
# plain suite two at a time kept 41 % of 2 CPUs busy; four at a time took 76 s, not 219).
junit="$PWD/$dir/Testing/junit.xml"
rm -f "$junit" "$dir/Testing/Temporary/LastTest.log" # (what the summary reads: this run's)
status=0
ctest --test-dir "$dir" --output-on-failure --no-tests=error --output-junit "$junit" \
      -j"${PLAIT_TEST_JOBS:-$((2 * $(nproc)))}" || status=$?

# What was skipped, for the log (skips are not failures): each case a test program
# skipped, its "skip CASE (why)" line (--output-on-failure shows a test's output only
# when it failed; ctest's LastTest.log has all of it), and each test ctest reported
# skipped (exit 77: nothing ran), with the last line it printed.  Grouped per program
# and reason when there are many.
whole=$(awk '/<testcase / { n = $0; sub(/.*<testcase name="/, "", n); sub(/".*/, "", n) }
             /<skipped message="SKIP_RETURN_CODE/ { printf " %s ", n }' "$junit" 2>/dev/null || true)
awk -v whole="$whole" '
    /^[0-9]+\/[0-9]+ Test: / { name = $3; last = ""; next }
    /^Output:$/ { out = 1; getline; next } # (the line of dashes under it)
    /^<end of output>$/ {
        out = 0
        if (index(whole, " " name " "))
            tests[++nt] = "skip " name ": the whole test (" (last == "" ? "no output" : last) ")"
        next
    }
    out && /^skip / {
        c = substr($0, 6); why = c; sub(/^[^(]*\(/, "(", why); sub(/ *\(.*/, "", c)
        cases[++nc] = "skip " name ": " c " " why; programs[name]
        key = name SUBSEP why
        if (!(key in count)) { keys[++nk] = key; gname[key] = name; gwhy[key] = why }
        count[key]++; first[key] = c
    }
    out && NF { last = $0 }
    END {
        if (nc + nt == 0) { print "skipped: none"; exit }
        print "skipped (cases and tests that cannot run here):"
        for (i = 1; i <= nc && nc <= 40; i++) print cases[i] | "sort"
        for (i = 1; i <= nk && nc > 40; i++) {
            k = keys[i]
            print "skip " gname[k] ": " (count[k] == 1 ? first[k] : count[k] " cases") " " \
                gwhy[k] | "sort"
        }
        close("sort")
        for (i = 1; i <= nt; i++) print tests[i] | "sort"
        close("sort")
        np = 0; for (p in programs) np++
        printf "skipped: %d cases in %d programs, %d whole tests (exit 77)\n", nc, np, nt
    }' "$dir/Testing/Temporary/LastTest.log" || true
[ "$status" = 0 ] || exit "$status"
[ "$mode" = coverage ] || exit 0

# A child that ends with _exit() writes no counts: plait's own children (function
# processes, process pools' workers) write theirs before it (PLAIT_COVERAGE, process.c);
# what runs only in other forked children (the tests' own) counts as not run.
out="$PWD/$dir/coverage"
rm -rf "$out" && mkdir -p "$out"
objects=$(find "$PWD/$dir" -path '*plait_objects.dir/src/*.gcda' | sort)
for gcda in $objects; do
    (cd "$out" && gcov -o "$(dirname "$gcda")" "$gcda" >/dev/null 2>&1) || true
done
{
    echo "lines not run / lines, per file of src/ (from the last run of the suite):"
    for g in "$out"/*.c.gcov; do
        total=$(grep -cE '^ +([0-9]+\*?|#####):' "$g" || true)
        missed=$(grep -cE '^ +#####:' "$g" || true)
        echo "$missed $total $(basename "$g" .gcov)"
    done | sort -rn | awk '{ printf "%6d / %-6d %s\n", $1, $2, $3 }'
    echo "functions never run:"
    for gcda in $objects; do
        gcov -f -n -o "$(dirname "$gcda")" "$gcda" 2>/dev/null |
            awk '/^Function/ { f = $2 } /^Lines executed:0.00%/ && f { print "  " f; f = "" }'
    done | sort -u
} | tee "$out/summary.txt"
