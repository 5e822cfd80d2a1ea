#!/usr/bin/env bash
# Build plait (release) and run its main job: `plait tour`.
# Installs what it needs (a C compiler, CMake) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v cc >/dev/null || need+=(gcc)
command -v cmake >/dev/null || need+=(cmake)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" make
fi
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DPLAIT_TESTS=OFF -DPLAIT_BENCH=OFF >/dev/null
cmake --build build-release -j"$(nproc)" --target plait_tool
./build-release/plait tour
