// The avx512 kernel table (the kernels live beside this file), with the optional AVX512-BF16 +
// VBMI2 kernel where the CPU has those extensions.
#include "cpu/cpu_features.h"
#include "cpu/kernel_decls.h"

namespace mumoe::cpu::avx512 {
MUMOE_DECLARE_CPU_KERNELS()
// sparse_dot_bf16_avx512.cpp
void sparse_dot_bf16_vbmi2(const uint16_t* x, int64_t T, const uint32_t* bitmap,
                           const uint16_t* values, int64_t d, int64_t k, float* out);
// select_avx512.cpp
RowThreshold score_select(const void* w, DType dt, const float* norms, int64_t d, int64_t k,
                          uint32_t hint, uint32_t* keys, uint32_t* scratch, uint32_t* max_key);
float emit_pruned_compact(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th,
                          int64_t k, void* pruned, uint32_t* bitmap, void* values, const float* v);
// emit_vbmi2_avx512.cpp
void emit_compact_vbmi2(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th,
                        int64_t k, uint32_t* bitmap, void* values);
float emit_compact_dot_vbmi2(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th,
                             int64_t k, uint32_t* bitmap, void* values, const float* v);
float emit_pruned_compact_vbmi2(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th,
                                int64_t k, void* pruned, uint32_t* bitmap, void* values, const float* v);
}  // namespace mumoe::cpu::avx512

namespace mumoe::cpu {
const CpuKernels kAvx512Kernels = [] {
  CpuKernels t = MUMOE_CPU_KERNEL_TABLE(avx512, "avx512");
  t.score_select = avx512::score_select;
  t.emit_pruned_compact = avx512::emit_pruned_compact;
  if (cpu_features().avx512_vbmi2_bf16) t.sparse_dot_bf16 = avx512::sparse_dot_bf16_vbmi2;
  if (cpu_features().avx512_vbmi2) {
    t.emit_compact = avx512::emit_compact_vbmi2;
    t.emit_compact_dot = avx512::emit_compact_dot_vbmi2;
    t.emit_pruned_compact = avx512::emit_pruned_compact_vbmi2;
    t.emit_variant = "vbmi2";
  }
  return t;
}();
}  // namespace mumoe::cpu
