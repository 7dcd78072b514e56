// What the running CPU (and OS) supports; compiled with no -m flags.
#pragma once

namespace mumoe::cpu {
struct CpuFeatures {
  bool avx2_fma_f16c = false;  // AVX2 + FMA + F16C, OS saves YMM state
  bool avx512 = false;         // AVX-512 F/BW/VL/DQ, OS saves ZMM state
  bool avx512_vbmi2 = false;       // + VBMI2 (16-bit compress/expand): optional
  bool avx512_vbmi2_bf16 = false;  // + VBMI2 and BF16 (dot products): optional
  bool amx_bf16 = false;       // AVX-512 + AMX-TILE/BF16, tile data granted by the OS: optional
  bool neon = false;           // AArch64 Advanced SIMD
};
const CpuFeatures& cpu_features();
}  // namespace mumoe::cpu
