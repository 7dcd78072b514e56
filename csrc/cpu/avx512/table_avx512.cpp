// The avx512 kernel table (the kernels live beside this file): the fused prefill kernels, and the
// optional VBMI2 / AVX512-BF16 variants and the AMX block GEMM where the CPU has those extensions.
#include "cpu/avx512/kernels_avx512.h"
#include "cpu/cpu_features.h"

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
  if (cpu_features().amx_bf16) {
    t.packed_tokens_words = avx512::amx_packed_tokens_words;
    t.pack_tokens = avx512::amx_pack_tokens;
    t.block_gemm = avx512::amx_block_gemm;
  }
  return t;
}();
}  // namespace mumoe::cpu
