#!/usr/bin/env bash
# The C++ kernel tests (csrc/cpu/tests/table_vs_scalar.cpp) under AddressSanitizer +
# UndefinedBehaviorSanitizer, once per CPU kernel table this CPU can run (scalar, avx2, avx512),
# stopping at the first report. No torch involved: a few minutes on 2 cores.
#   tools/sanitize.sh            # every table this CPU runs
#   tools/sanitize.sh avx2       # just one
#   MUMOE_TVS_RELEASE=1 tools/sanitize.sh   # no sanitizers: the kernels at the extension's -O3,
#                                           # the test at -O2 (what a miscompile shows under)
# NEON runs under qemu instead: tools/test_neon.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
CXX=${CXX:-g++}
out=$(mktemp -d /tmp/mumoe-sanitize.XXXXXX)
trap 'rm -rf "$out"' EXIT
if [ "${MUMOE_TVS_RELEASE:-0}" = 1 ]; then
  SAN="-O3 -fno-math-errno" TSAN="-O2" what="release flags (-O3 kernels, -O2 test)"
else
  SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g -O1" TSAN=$SAN
  what="ASan+UBSan"
fi
export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

has() { grep -qw "$1" /proc/cpuinfo; }
declare -A FLAGS=([scalar]="" [avx2]="-mavx2 -mfma -mf16c"
                  [avx512]="-mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx2 -mfma -mf16c")
declare -A TABLE=([scalar]=kScalarKernels [avx2]=kAvx2Kernels [avx512]=kAvx512Kernels)
isas=("$@")
if [ ${#isas[@]} -eq 0 ]; then
  isas=(scalar)
  has avx2 && has fma && has f16c && isas+=(avx2)
  has avx512f && has avx512bw && has avx512vl && has avx512dq && isas+=(avx512)
fi

for isa in "${isas[@]}"; do
  objs=()
  for src in csrc/cpu/scalar/*.cpp; do
    o="$out/scalar_$(basename "$src" .cpp).o"
    [ -f "$o" ] || $CXX -std=c++20 $SAN -I csrc -c "$src" -o "$o"
    objs+=("$o")
  done
  if [ "$isa" != scalar ]; then
    for src in csrc/cpu/"$isa"/*.cpp; do
      o="$out/${isa}_$(basename "$src" .cpp).o"
      $CXX -std=c++20 $SAN ${FLAGS[$isa]} -DMUMOE_HAVE_$isa -I csrc -c "$src" -o "$o"
      objs+=("$o")
    done
  fi
  $CXX -std=c++20 $TSAN -DMUMOE_HAVE_$isa -DTABLE=${TABLE[$isa]} -I csrc csrc/cpu/tests/table_vs_scalar.cpp \
      csrc/cpu/cpu_features.cpp "${objs[@]}" -o "$out/tvs_$isa"
  echo "sanitize: running the $isa table, $what"
  "$out/tvs_$isa"
  if [ "$isa" = avx512 ] && has avx512_vbmi2; then  # the table without its optional VBMI2 kernels too
    echo "sanitize: running the avx512 table, $what, with MUMOE_CPU_NO_VBMI2_BF16=1"
    MUMOE_CPU_NO_VBMI2_BF16=1 "$out/tvs_$isa"
  fi
done
echo "sanitize: clean (${isas[*]}; $what)"
