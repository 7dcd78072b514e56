// The avx512 kernel table (the kernels live beside this file).
#include "cpu/kernel_decls.h"

namespace mumoe::cpu::avx512 {
MUMOE_DECLARE_CPU_KERNELS()
}  // namespace mumoe::cpu::avx512

namespace mumoe::cpu {
const CpuKernels kAvx512Kernels = MUMOE_CPU_KERNEL_TABLE(avx512, "avx512");
}  // namespace mumoe::cpu
