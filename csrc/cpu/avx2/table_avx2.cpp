// The avx2 kernel table (the kernels live beside this file).
#include "cpu/kernel_decls.h"

namespace mumoe::cpu::avx2 {
MUMOE_DECLARE_CPU_KERNELS()
}  // namespace mumoe::cpu::avx2

namespace mumoe::cpu {
const CpuKernels kAvx2Kernels = MUMOE_CPU_KERNEL_TABLE(avx2, "avx2");
}  // namespace mumoe::cpu
