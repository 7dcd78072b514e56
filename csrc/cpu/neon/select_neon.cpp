// NEON selection kernels: cpu/simd_select.h over this folder's 4-lane vector layers.
#include "cpu/neon/simd_neon.h"
#include "cpu/simd_select.h"

namespace mumoe::cpu::neon {
MUMOE_DEFINE_LANE_SELECT_KERNELS(F32Vec, U32Vec)
}  // namespace mumoe::cpu::neon
