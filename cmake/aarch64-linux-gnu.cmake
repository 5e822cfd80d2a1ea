# Cross-compiling plait for aarch64 Linux with Debian's cross toolchain
# (packages gcc-aarch64-linux-gnu, libc6-dev-arm64-cross), running the test
# executables under qemu-user (package qemu-user):
#
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
#   cmake --build build-aarch64 && ctest --test-dir build-aarch64
#
# CMAKE_CROSSCOMPILING_EMULATOR is prepended by CMake to every add_test() command
# that names an executable target, so ctest runs each test binary as
#   qemu-aarch64 -L /usr/aarch64-linux-gnu <test>
# (-L: where qemu finds the aarch64 dynamic loader and libc).
# Override the triple's prefix with -DPLAIT_CROSS_PREFIX=..., the sysroot with
# -DPLAIT_CROSS_ROOT=..., the emulator with -DPLAIT_QEMU=... if needed.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(PLAIT_CROSS_PREFIX "aarch64-linux-gnu-" CACHE STRING "Cross tool name prefix")
set(PLAIT_CROSS_ROOT "/usr/aarch64-linux-gnu" CACHE PATH "Target libc root for qemu -L")
set(PLAIT_QEMU "qemu-aarch64" CACHE STRING "User-mode emulator for aarch64 executables")

set(CMAKE_C_COMPILER ${PLAIT_CROSS_PREFIX}gcc)
set(CMAKE_ASM_COMPILER ${PLAIT_CROSS_PREFIX}gcc)
# ar, ranlib, strip: CMake derives aarch64-linux-gnu-ar etc. from the compiler name.

set(CMAKE_CROSSCOMPILING_EMULATOR ${PLAIT_QEMU} -L ${PLAIT_CROSS_ROOT})

# Look for headers and libraries in the target root only; programs on the host.
set(CMAKE_FIND_ROOT_PATH ${PLAIT_CROSS_ROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
