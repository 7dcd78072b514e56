// The scalar kernel table (the kernels live beside this file).
#include "cpu/kernel_decls.h"

namespace mumoe::cpu::scalar {
MUMOE_DECLARE_CPU_KERNELS()
}  // namespace mumoe::cpu::scalar

namespace mumoe::cpu {
const CpuKernels kScalarKernels = MUMOE_CPU_KERNEL_TABLE(scalar, "scalar");
}  // namespace mumoe::cpu
