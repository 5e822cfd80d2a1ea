#!/usr/bin/env bash
# Build plait (release) and run its main job: `plait tour` (the classic examples of
# every strand), then `plait compare` (coroutines, threads and processes measured on
# this machine, with the HTML report in build-release/compare.html).
#   bash scripts/tour.sh           the full comparison (about a minute on 2 cores)
#   bash scripts/tour.sh --quick   the quick comparison (under 10 s), as CI runs it
# Installs what it needs (a C compiler, CMake) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
compare=()
case "${1:-}" in
  "") ;;
  --quick) compare=(--quick) ;;
  *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
esac
need=()
command -v cc >/dev/null || need+=(gcc)
command -v cmake >/dev/null || need+=(cmake)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" make
fi
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DPLAIT_TESTS=OFF -DPLAIT_BENCH=OFF >/dev/null
cmake --build build-release -j"$(nproc)" --target plait_tool
./build-release/plait tour
echo
./build-release/plait compare "${compare[@]}" --html build-release/compare.html
echo "the report with charts: build-release/compare.html"
