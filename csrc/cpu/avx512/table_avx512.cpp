// PLACEHOLDER until the avx512 kernels land: forwards to the scalar kernels.
#include "cpu/kernels.h"

namespace mumoe::cpu {
const CpuKernels kAvx512Kernels = [] {
  CpuKernels t = kScalarKernels;
  t.isa = "avx512";
  return t;
}();
}  // namespace mumoe::cpu
