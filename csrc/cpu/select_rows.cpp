#include "cpu/select_rows.h"

#include "cpu/parallel_rows.h"
#include "cpu/row_selector.h"

namespace mumoe::cpu {

// Keys < 2^31, so adding 2^23 sets bit 31 exactly for the non-finite ones: add + or over keys still
// in L1. target_clones picks the widest vectors the CPU has at load time (this file has no -m flags).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
bool keys_all_finite(const uint32_t* keys, int64_t d) {
  uint32_t acc = 0;
  for (int64_t j = 0; j < d; ++j) acc |= keys[j] + 0x00800000u;
  return !(acc >> 31);
}

std::atomic<bool>& weight_check_enabled() {
  static std::atomic<bool> on{true};
  return on;
}

void select_rows(const at::Tensor& weight, const at::Tensor& norms, int64_t k, int64_t m,
                 const RowOutputs& out, int64_t row_begin, int64_t row_end) {
  const int64_t d_out = weight.size(0), d = weight.size(1);
  const int64_t es = weight.element_size(), words = (d + 31) / 32;
  const CpuKernels& K = kernels();
  const DType dt = dtype_of(weight);
  const char* wp = static_cast<const char*>(weight.const_data_ptr());
  const float* np = norms.const_data_ptr<float>();
  const bool batched = norms.dim() == 2;
  parallel_rows(row_end - row_begin, 32, [&](int64_t s, int64_t e) {
    RowSelector sel(d, m, out.op);
    for (int64_t r = row_begin + s; r < row_begin + e; ++r) {
      const int64_t b = r / d_out, i = r % d_out;
      const char* w = wp + es * i * d;
      const RowThreshold th = sel.select(K, w, dt, np + (batched ? b * d : 0), k);
      if (out.mask) K.emit_mask(sel.keys(), d, th, out.mask + r * d);
      const float* center = out.offset ? out.center + (batched ? b * d : 0) : nullptr;
      if (out.pruned && out.bitmap && K.emit_pruned_compact) {  // one pass for all three
        const float off = K.emit_pruned_compact(w, dt, sel.keys(), d, th, k, out.pruned + es * r * d,
                                                out.bitmap + r * words, out.values + es * r * k, center);
        if (out.offset) out.offset[r] = off;
        continue;
      }
      if (out.pruned) K.emit_pruned(w, dt, sel.keys(), d, th, out.pruned + es * r * d, out.streaming);
      if (out.bitmap && out.offset)
        out.offset[r] = K.emit_compact_dot(w, dt, sel.keys(), d, th, k, out.bitmap + r * words,
                                           out.values + es * r * k, center);
      else if (out.bitmap)
        K.emit_compact(w, dt, sel.keys(), d, th, k, out.bitmap + r * words, out.values + es * r * k);
      else if (out.offset)
        out.offset[r] = K.pruned_dot(w, dt, sel.keys(), d, th, center);
    }
  });
}

}  // namespace mumoe::cpu
