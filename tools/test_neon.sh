#!/usr/bin/env bash
# The NEON kernel table's C++ tests (csrc/cpu/tests/table_vs_scalar.cpp) on an x86 machine:
# cross-compiled for AArch64 and run under qemu user-mode emulation. Needs Debian's
# g++-aarch64-linux-gnu and qemu-user-static (.ci/run installs them); on an AArch64 machine the
# extension's own build runs the NEON path natively and the Python suite covers it.
#   tools/test_neon.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CXX=${CXX_AARCH64:-aarch64-linux-gnu-g++}
QEMU=${QEMU_AARCH64:-qemu-aarch64-static}
for tool in "$CXX" "$QEMU"; do
  command -v "$tool" >/dev/null || { echo "test_neon: $tool not found (apt-get install g++-aarch64-linux-gnu qemu-user-static)"; exit 1; }
done
out=$(mktemp -d /tmp/mumoe-neon.XXXXXX)
trap 'rm -rf "$out"' EXIT
# The flags of the neon folder in CMakeLists.txt (-O3, no -m flags: Advanced SIMD is baseline).
"$CXX" -std=c++20 -O3 -fno-math-errno -Wall -Werror -static -DMUMOE_HAVE_neon -DTABLE=kNeonKernels -I csrc \
    csrc/cpu/tests/table_vs_scalar.cpp csrc/cpu/scalar/*.cpp csrc/cpu/neon/*.cpp -o "$out/tvs_neon"
echo "test_neon: running the neon table under $QEMU"
"$QEMU" "$out/tvs_neon"
