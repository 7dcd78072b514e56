// The CPU kernel table: one instance per instruction set (scalar/, avx2/, avx512/, neon/), picked
// once at run time by dispatch.cpp. Kernels work on one row (or one block of columns) through raw
// pointers; threading, allocation and torch live in the flag-free bindings. ISA folders include no
// torch/c10/STL templates: an inline function compiled with -mavx512f could otherwise be the copy
// the linker keeps for everyone.
#pragma once
#include <cstdint>

namespace mumoe::cpu {

enum class DType : int32_t { f32 = 0, f16 = 1, bf16 = 2 };

// The k-th largest score key of a row, and how many keys equal to it are kept: keys > tau are kept,
// plus the first `ties_kept` keys == tau in column order.
struct RowThreshold {
  uint32_t tau;
  int64_t ties_kept;
};

constexpr uint32_t kNoHint = 0xffffffffu;  // keys never have the sign bit set
// score_select's range around a hint: steps of 2^shift key units (2^19 is 1/16 octave, 2^22 half
// an octave). RowSelector widens the step after a miss and narrows it after a run of hits.
constexpr int kNearShiftMin = 19, kNearShiftMax = 21;

// Up to this many tokens a product streams each weight row once through the small-T kernels
// (masked_dot, sparse_dot); above it the GEMM is compute-bound and the vendor BLAS wins.
constexpr int64_t kSmallT = 8;

struct CpuKernels {
  const char* isa;

  // out[j] += sum over tokens t (keep == nullptr or keep[t] != 0) of (x[t*ld + j] - center[j])^2,
  // j < d (center null: 0).
  void (*col_sumsq)(const void* x, DType dt, int64_t T, int64_t d, int64_t ld, const uint8_t* keep,
                    const float* center, float* out);
  // out[j] += sum over the same tokens of x[t*ld + j].
  void (*col_sum)(const void* x, DType dt, int64_t T, int64_t d, int64_t ld, const uint8_t* keep,
                  float* out);

  // keys[j] = bit pattern of |w[j]| * |norms[j]| in fp32 (non-negative, so bits order like values).
  void (*row_scores)(const void* w, DType dt, const float* norms, int64_t d, uint32_t* keys);

  // Threshold of the k largest keys (1 <= k <= d). `scratch` holds d + 16 uint32. `hint` is the tau
  // of a similar row (the previous one) or kNoHint: it only speeds the search up.
  RowThreshold (*row_select)(const uint32_t* keys, int64_t d, int64_t k, uint32_t hint,
                             uint32_t* scratch);

  // Outputs of a selected row.
  void (*emit_mask)(const uint32_t* keys, int64_t d, RowThreshold th, uint8_t* mask);
  // `streaming`: out is read back from memory later, not from cache (non-temporal stores allowed).
  void (*emit_pruned)(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th,
                      void* out, bool streaming);
  // bitmap: ceil(d/32) words, bit j%32 of word j/32; values: the k kept weights in column order.
  // (k is passed to the compact-format kernels so vector code never touches the next row's values.)
  void (*emit_compact)(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th,
                       int64_t k, uint32_t* bitmap, void* values);
  // Sum over the columns a selected row does NOT keep of w[j] * v[j], in fp32 (the mean-shift
  // compensation (W - W_kept) v of one row, while the row is still in L1).
  float (*pruned_dot)(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th,
                      const float* v);
  // emit_compact, returning pruned_dot(v) (fused on AVX-512: one pass over the keys).
  float (*emit_compact_dot)(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th,
                            int64_t k, uint32_t* bitmap, void* values, const float* v);

  // out[j] = mask[j] ? w[j] : 0 for one row.
  void (*apply_mask)(const void* w, DType dt, const uint8_t* mask, int64_t d, void* out);
  // Dense row of a compact one.
  void (*expand_compact)(const uint32_t* bitmap, const void* values, DType dt, int64_t d, int64_t k,
                         void* out);

  // Small-T products (T <= kSmallT) of one weight row with T fp32 token rows x (T x d, contiguous):
  // out[t] = sum_j x[t*d + j] * w[j] * mask[j]   /   the same for a compact row.
  void (*masked_dot)(const float* x, int64_t T, const void* w, DType dt, const uint8_t* mask,
                     int64_t d, float* out);
  void (*sparse_dot)(const float* x, int64_t T, const uint32_t* bitmap, const void* values,
                     DType dt, int64_t d, int64_t k, float* out);

  // y[t*ld + i] += add[i] for t < T, i < n, the sum taken in fp32 and rounded once to dt (the
  // per-row offsets of wanda_linear_centered added to a block's GEMM output while it is in cache).
  void (*add_cols)(void* y, DType dt, int64_t T, int64_t n, int64_t ld, const float* add);

  // Optional, null where the CPU lacks it: sparse_dot of bf16 values with the tokens still in bf16
  // (T x d), so no row pays for converting them (AVX512-BF16 + VBMI2).
  void (*sparse_dot_bf16)(const uint16_t* x, int64_t T, const uint32_t* bitmap,
                          const uint16_t* values, int64_t d, int64_t k, float* out);

  // Optional fused forms (null: RowSelector and the prefill compose the kernels above).
  // row_scores + row_select in one pass over the row when the threshold lies in
  // range_near(hint, near_shift) (else the usual search on the stored keys, and *near_hit = false);
  // *max_key = the row's largest key (the NaN/Inf check). Same keys and threshold as the composition.
  RowThreshold (*score_select)(const void* w, DType dt, const float* norms, int64_t d, int64_t k,
                               uint32_t hint, int near_shift, uint32_t* keys, uint32_t* scratch,
                               uint32_t* max_key, bool* near_hit);
  // emit_pruned (cached stores) + emit_compact, and with v non-null the pruned_dot of v (returned,
  // bit for bit pruned_dot's), in one pass over the keys.
  float (*emit_pruned_compact)(const void* w, DType dt, const uint32_t* keys, int64_t d,
                               RowThreshold th, int64_t k, void* pruned, uint32_t* bitmap,
                               void* values, const float* v);
  // Names the variant of the emit kernels when an optional extension provides it ("vbmi2"), else
  // null (reported by build_info()["cpu_optional_kernels"] as "emit_compact_<variant>").
  const char* emit_variant;
  // Optional (AMX-BF16): the prefill's block GEMM in bf16. pack_tokens lays x (T x d) out as the
  // B operand, packed_tokens_words(T, d) uint32 of it in slabs of 32 tokens (this call writes
  // slabs [s0, s1), so threads can share the packing); block_gemm then writes
  // y[t*ldy + j] = bf16(sum_i x[t][i] * w[j*ldw + i] + (add ? add[j] : 0)), fp32 sums, for t < T,
  // j < n. w: ldw >= d rounded up to 32 with zero (finite) columns from d, readable up to row n
  // rounded up to 32.
  int64_t (*packed_tokens_words)(int64_t T, int64_t d);
  void (*pack_tokens)(const uint16_t* x, int64_t T, int64_t d, uint32_t* out, int64_t s0, int64_t s1);
  void (*block_gemm)(const uint16_t* w, int64_t n, int64_t ldw, int64_t d, const uint32_t* xt, int64_t T,
                     uint16_t* y, int64_t ldy, const float* add);
};

// Tables compiled into this build (null where the folder was not built).
extern const CpuKernels kScalarKernels;
#ifdef MUMOE_HAVE_avx2
extern const CpuKernels kAvx2Kernels;
#endif
#ifdef MUMOE_HAVE_avx512
extern const CpuKernels kAvx512Kernels;
#endif
#ifdef MUMOE_HAVE_neon
extern const CpuKernels kNeonKernels;
#endif

}  // namespace mumoe::cpu
