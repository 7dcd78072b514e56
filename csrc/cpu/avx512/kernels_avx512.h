// The avx512 folder's kernels: the base table's (MUMOE_DECLARE_CPU_KERNELS) and the extras that
// table_avx512.cpp fills in (fused prefill kernels; VBMI2 / AVX512-BF16 variants; the AMX block GEMM).
#pragma once
#include "cpu/kernel_decls.h"

namespace mumoe::cpu::avx512 {
MUMOE_DECLARE_CPU_KERNELS()
// select_avx512.cpp
RowThreshold score_select(const void* w, DType dt, const float* norms, int64_t d, int64_t k,
                          uint32_t hint, int near_shift, uint32_t* keys, uint32_t* scratch,
                          uint32_t* max_key, bool* near_hit);
float emit_pruned_compact(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th,
                          int64_t k, void* pruned, uint32_t* bitmap, void* values, const float* v);
// emit_vbmi2_avx512.cpp
void emit_compact_vbmi2(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th,
                        int64_t k, uint32_t* bitmap, void* values);
float emit_compact_dot_vbmi2(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th,
                             int64_t k, uint32_t* bitmap, void* values, const float* v);
float emit_pruned_compact_vbmi2(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th,
                                int64_t k, void* pruned, uint32_t* bitmap, void* values, const float* v);
// gemm_amx_avx512.cpp
int64_t amx_packed_tokens_words(int64_t T, int64_t d);
void amx_pack_tokens(const uint16_t* x, int64_t T, int64_t d, uint32_t* out, int64_t s0, int64_t s1);
void amx_block_gemm(const uint16_t* w, int64_t n, int64_t ldw, int64_t d, const uint32_t* xt, int64_t T,
                    uint16_t* y, int64_t ldy, const float* add);
// sparse_dot_bf16_avx512.cpp
void sparse_dot_bf16_vbmi2(const uint16_t* x, int64_t T, const uint32_t* bitmap,
                           const uint16_t* values, int64_t d, int64_t k, float* out);
}  // namespace mumoe::cpu::avx512
