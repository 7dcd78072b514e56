#!/usr/bin/env bash
# Runs the real csrc/cuda kernel source on the CPU (one fiber per CUDA thread, emu.h) against host
# references: exact masks vs a stable sort, RowSparse, masked/sparse GEMV, fp32/fp16/bf16.
# Needs g++ and the CUDA toolkit headers (CUDA_HOME, default /usr/local/cuda); no GPU.
# Usage: tools/cuda_emu/run.sh [build dir]   (~4 min on one core)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$repo/build/cuda_emu}
cuda_inc=${CUDA_HOME:-/usr/local/cuda}/include
mkdir -p "$out/src"
python3 "$here/transform.py" "$repo/csrc/cuda" "$out/src/cuda"
flags=(-std=c++20 -O1 -include "$here/emu.h" -I"$here" -I"$here/inc" -I"$out/src" -I"$cuda_inc")
for f in col_norms select_rows masked_gemv sparse_gemv expand_rows; do
  g++ "${flags[@]}" -x c++ -c "$out/src/cuda/$f.cu" -o "$out/$f.o"
done
g++ "${flags[@]}" -c "$here/driver.cpp" -o "$out/driver.o"
g++ "$out"/*.o -o "$out/driver"
"$out/driver"
