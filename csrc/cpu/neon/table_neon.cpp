// The neon kernel table (the kernels live beside this file).
#include "cpu/kernel_decls.h"

namespace mumoe::cpu::neon {
MUMOE_DECLARE_CPU_KERNELS()
}  // namespace mumoe::cpu::neon

namespace mumoe::cpu {
const CpuKernels kNeonKernels = MUMOE_CPU_KERNEL_TABLE(neon, "neon");
}  // namespace mumoe::cpu
