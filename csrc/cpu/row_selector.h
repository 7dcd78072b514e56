// One thread's Wanda selection of weight rows (scores, threshold, then an output of the caller's
// choosing), shared by the selection ops and the CPU wanda_linear. Flag-free: it calls the kernel
// table.
#pragma once
#include <ATen/ATen.h>

#include <c10/util/Exception.h>

#include <atomic>
#include <cstring>
#include <vector>

#include "cpu/dispatch.h"
#include "cpu/nm_select.h"

namespace mumoe::cpu {

inline DType dtype_of(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return DType::f32;
    case at::kHalf: return DType::f16;
    default: return DType::bf16;
  }
}

// On unless a benchmark turns it off (mumoe_ext._C._set_weight_check) to measure its cost.
std::atomic<bool>& weight_check_enabled();

// True when no score key is NaN/Inf (>= 0x7f800000): a key is only so if its weight is NaN/Inf
// (the norms were checked) or |w|*n overflowed fp32. In select_rows.cpp, cloned per ISA.
bool keys_all_finite(const uint32_t* keys, int64_t d);

// First column of the row holding NaN/Inf, or -1 (an overflowed score is not an error).
inline int64_t first_non_finite(const char* w, DType dt, int64_t d) {
  for (int64_t j = 0; j < d; ++j) {
    if (dt == DType::f32) {
      uint32_t u;
      std::memcpy(&u, w + 4 * j, 4);
      if ((u & 0x7f800000u) == 0x7f800000u) return j;
    } else {
      uint16_t h;
      std::memcpy(&h, w + 2 * j, 2);
      const uint16_t e = dt == DType::f16 ? 0x7c00 : 0x7f80;
      if ((h & e) == e) return j;
    }
  }
  return -1;
}

class RowSelector {
 public:
  // m > 0: N:M selection in groups of m columns (k = d*n/m); 0: the k largest of the row.
  // `op` names the public op in the error raised for a NaN/Inf weight.
  explicit RowSelector(int64_t d, int64_t m = 0, const char* op = "mumoe")
      : keys_(buffer(0, d)), scratch_(buffer(1, d + 16)), d_(d), m_(m), op_(op) {}

  // Scores the row w (d values of dtype dt) against norms and finds its threshold for keeping k;
  // keys() then holds the row's scores for the emit_* kernels. (No prefetch of the next row here:
  // 64 prefetcht0 in a burst stalled on the fill buffers, 7% of a 5632 x 2048 prefill. The AVX-512
  // scoring pass prefetches a fixed distance ahead as it goes, instead.)
  RowThreshold select(const CpuKernels& K, const char* w, DType dt, const float* norms, int64_t k) {
    const int64_t d = d_;
    if (m_ == 0 && K.score_select) {  // one pass scores the row and brackets its threshold
      uint32_t max_key = 0;
      bool hit = false;
      const RowThreshold th =
          K.score_select(w, dt, norms, d, k, hint_, near_shift_, keys_, scratch_, &max_key, &hit);
      if (max_key >= 0x7f800000u) check_weight(w, dt);
      adapt_range(hit || hint_ == kNoHint);
      hint_ = th.tau;
      return th;
    }
    K.row_scores(w, dt, norms, d, keys_);
    if (weight_check_enabled().load(std::memory_order_relaxed) && !keys_all_finite(keys_, d))
      check_weight(w, dt);
    if (m_ > 0) return nm_select(keys_, d, k, m_);
    const RowThreshold th = K.row_select(keys_, d, k, hint_, scratch_);
    hint_ = th.tau;  // rows of one weight have similar thresholds
    return th;
  }
  const uint32_t* keys() const { return keys_; }

 private:
  // A miss costs a histogram of the whole row, a hit a select among the range's candidates (twice
  // as many per step wider): widen after a miss, narrow again after 4 hits in a row. Rows of real
  // weights vary more than random ones: 27-62% of SmolLM2-135M's rows (d = 576) hit the
  // 1/16-octave range, 46-88% the 1/8, against 85% and 99% of random TinyLlama-shape rows. Measured
  // selection (2 threads): SmolLM2 layers 3/15/27 5.99 ms at a fixed 1/16 octave, 5.44 at 1/8,
  // 5.35 adaptive; TinyLlama 5632 x 2048 3.19, 3.36, 3.12 (1/4 octave: 4.11).
  void adapt_range(bool hit) {
    if (!hit) {
      near_shift_ = near_shift_ < kNearShiftMax ? near_shift_ + 1 : kNearShiftMax;
      hits_ = 0;
    } else if (++hits_ >= 4) {
      near_shift_ = near_shift_ > kNearShiftMin ? near_shift_ - 1 : kNearShiftMin;
      hits_ = 0;
    }
  }

  // A key is NaN/Inf (>= 0x7f800000) when its weight is, or when |w|*n overflowed (not an error).
  void check_weight(const char* w, DType dt) const {
    if (!weight_check_enabled().load(std::memory_order_relaxed)) return;
    const int64_t j = first_non_finite(w, dt, d_);
    TORCH_CHECK_VALUE(j < 0, op_, ": weight contains NaN or Inf (column ", j,
                      "); Wanda scores need finite weights");
  }

  // The thread's keys (0) and scratch (1), reused by every selector of the thread: a row's keys
  // stay in L1/L2, and no chunk of rows pays for fresh pages.
  static uint32_t* buffer(int which, int64_t n) {
    thread_local std::vector<uint32_t> buffers[2];
    if (int64_t(buffers[which].size()) < n) buffers[which].resize(n);
    return buffers[which].data();
  }

  uint32_t* keys_;
  uint32_t* scratch_;
  int64_t d_ = 0;
  int64_t m_ = 0;
  const char* op_;
  uint32_t hint_ = kNoHint;
  int near_shift_ = kNearShiftMin;
  int hits_ = 0;
};

}  // namespace mumoe::cpu
