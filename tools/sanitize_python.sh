#!/usr/bin/env bash
# The Python op suite against an ASan+UBSan build of the extension: a copy of the tree is built with
# MUMOE_SANITIZE=address,undefined (CPU only) and pytest runs with libasan/libubsan preloaded (the
# Python interpreter itself is not instrumented, so the runtime must come first).
#   tools/sanitize_python.sh                                  # python_tests/test_ops_*.py
#   tools/sanitize_python.sh python_tests/test_fuzz_ops.py    # any pytest arguments
set -euo pipefail
cd "$(dirname "$0")/.."
tree=$(mktemp -d /tmp/mumoe-asan.XXXXXX)
trap 'rm -rf "$tree"' EXIT
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$tree"
cd "$tree"
MUMOE_SANITIZE=address,undefined MUMOE_NO_CUDA=1 python3 setup.py -q build_ext --inplace \
    --build-temp build/asan > build.log 2>&1 || { tail -50 build.log; exit 1; }
CXX=${CXX:-g++}
export LD_PRELOAD="$($CXX -print-file-name=libasan.so):$($CXX -print-file-name=libubsan.so)"
# leaks: CPython and torch keep their arenas to exit; odr: torch's and our copies of inline headers
export ASAN_OPTIONS=halt_on_error=1:detect_leaks=0:detect_odr_violation=0:abort_on_error=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# torch.compile's on-disk cache is shared under /tmp by default: a checkout with another op schema
# would hand us its compiled graphs
export TORCHINDUCTOR_CACHE_DIR="$tree/.inductor-cache"
[ $# -gt 0 ] || set -- python_tests/test_ops_*.py
python3 -m pytest -q -p no:cacheprovider -x "$@"
echo "sanitize_python: clean under ASan+UBSan ($*)"
