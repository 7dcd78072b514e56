// PLACEHOLDER until the avx2 kernels land: forwards to the scalar kernels.
#include "cpu/kernels.h"

namespace mumoe::cpu {
const CpuKernels kAvx2Kernels = [] {
  CpuKernels t = kScalarKernels;
  t.isa = "avx2";
  return t;
}();
}  // namespace mumoe::cpu
