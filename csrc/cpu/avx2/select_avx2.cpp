// AVX2 selection kernels: cpu/simd_select.h over this folder's 8-lane vector layers.
#include "cpu/avx2/simd_avx2.h"
#include "cpu/simd_select.h"

namespace mumoe::cpu::avx2 {
MUMOE_DEFINE_LANE_SELECT_KERNELS(F32Vec, U32Vec)
}  // namespace mumoe::cpu::avx2
