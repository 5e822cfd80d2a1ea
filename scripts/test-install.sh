#!/usr/bin/env bash
# Install plait into a scratch prefix and build a consumer with find_package(plait)
# and with pkg-config (in C and in C++): what a user of the installed library does.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v pkg-config >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pkg-config; }
prefix=$(mktemp -d)
work=$(mktemp -d)
trap 'rm -rf "$prefix" "$work"' EXIT
cmake -S . -B build-install -DCMAKE_BUILD_TYPE=Release -DPLAIT_WERROR=ON -DPLAIT_TESTS=OFF \
      -DPLAIT_BENCH=OFF -DCMAKE_INSTALL_PREFIX="$prefix" >/dev/null
cmake --build build-install -j"$(nproc)"
cmake --install build-install >/dev/null

cat >"$work/main.c" <<'C'
#include <plait.h>
#include <stdint.h>
static void *twice(void *arg) { plait_sleep(PLAIT_MS); return (void *)((intptr_t)arg * 2); }
static void *run(void *arg) {
    plait_task t;
    void *v = NULL;
    if (plait_spawn(&t, twice, arg) || plait_join(t, &v, PLAIT_FOREVER)) return PLAIT_FAIL(-1);
    return v;
}
int main(void) { void *v; return plait_run(run, (void *)21, &v) == 0 && (intptr_t)v == 42 ? 0 : 1; }
C
cat >"$work/CMakeLists.txt" <<'C'
cmake_minimum_required(VERSION 3.18)
project(consumer C)
find_package(plait REQUIRED)
add_executable(consumer main.c)
target_link_libraries(consumer PRIVATE plait::plait)
C
cmake -S "$work" -B "$work/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/build" >/dev/null
"$work/build/consumer"
# linked with the static library, whose libc calls go through the program's PLT: bound
# at load, so no lazy binding runs the dynamic linker on a small coroutine stack
if ! readelf -d "$work/build/consumer" | grep -Eq 'BIND_NOW|FLAGS_1.* NOW'; then
  echo "a program linked with plait::plait is not bound at load (-z now)" >&2
  exit 1
fi
echo "find_package(plait): ok"

pc_dir=$(dirname "$(find "$prefix" -name plait.pc | head -1)")
export PKG_CONFIG_PATH="$pc_dir"
# shellcheck disable=SC2046
cc -o "$work/consumer-pc" "$work/main.c" $(pkg-config --cflags --libs --static plait) \
   -Wl,-rpath,"$(pkg-config --variable=libdir plait)"
"$work/consumer-pc"
echo "pkg-config plait: ok"

# The same program as C++: plait.h's declarations are extern "C", and nothing in it
# warns under -pedantic (its flexible array member did, in every C++ file).
command -v g++ >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++; }
cp "$work/main.c" "$work/main.cpp"
# shellcheck disable=SC2046
g++ -std=c++11 -Wall -Wextra -pedantic -Werror -o "$work/consumer-cxx" "$work/main.cpp" \
    $(pkg-config --cflags --libs --static plait) -Wl,-rpath,"$(pkg-config --variable=libdir plait)"
"$work/consumer-cxx"
echo "C++ program with pkg-config plait: ok"

# Installed elsewhere than the configured prefix (`cmake --install --prefix`, as a
# package build does): plait.pc names where it lies, not the configured prefix.
moved=$(mktemp -d)
trap 'rm -rf "$prefix" "$work" "$moved"' EXIT
cmake --install build-install --prefix "$moved" >/dev/null
moved_libdir=$(PKG_CONFIG_PATH=$(dirname "$(find "$moved" -name plait.pc | head -1)") \
               pkg-config --variable=libdir plait)
if [ "$(cd "$moved_libdir" && pwd -P)" != "$(cd "$(dirname "$(find "$moved" -name libplait.a | head -1)")" && pwd -P)" ]; then
  echo "plait.pc installed under $moved names libdir $moved_libdir" >&2
  exit 1
fi
echo "pkg-config plait (installed with --prefix): ok"
"$prefix/bin/plait" version

# `plait bench` runs the benchmark programs installed in PREFIX/libexec/plait: one short one.
if ! env -u PLAIT_BENCH_DIR "$prefix/bin/plait" bench --quick spawn \
       >"$work/bench.out" 2>"$work/bench.err" ||
   ! grep -Eq '^spawn +plait +ns_per_task +[0-9]' "$work/bench.out" ||
   ! grep -q "from $prefix/" "$work/bench.err"; then
  cat "$work/bench.out" "$work/bench.err" >&2
  echo "plait bench from the install: failed" >&2
  exit 1
fi
echo "plait bench (installed): ok"
