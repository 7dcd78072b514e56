// One thread's Wanda selection of weight rows (scores, threshold, then an output of the caller's
// choosing), shared by the selection ops and the CPU wanda_linear. Flag-free: it calls the kernel
// table.
#pragma once
#include <ATen/ATen.h>

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

class RowSelector {
 public:
  // m > 0: N:M selection in groups of m columns (k = d*n/m); 0: the k largest of the row.
  explicit RowSelector(int64_t d, int64_t m = 0)
      : keys_(buffer(0, d)), scratch_(buffer(1, d + 16)), d_(d), m_(m) {}

  // Scores the row w (d values of dtype dt) against norms and finds its threshold for keeping k;
  // keys() then holds the row's scores for the emit_* kernels. `next_row` (or null) is
  // prefetched while this one is selected from L1.
  RowThreshold select(const CpuKernels& K, const char* w, DType dt, const float* norms, int64_t k,
                      const char* next_row) {
    const int64_t d = d_;
    K.row_scores(w, dt, norms, d, keys_);
    if (next_row) {
      const int64_t n = d * (dt == DType::f32 ? 4 : 2);
      for (int64_t off = 0; off < n; off += 64) __builtin_prefetch(next_row + off);
    }
    if (m_ > 0) return nm_select(keys_, d, k, m_);
    const RowThreshold th = K.row_select(keys_, d, k, hint_, scratch_);
    hint_ = th.tau;  // rows of one weight have similar thresholds
    return th;
  }
  const uint32_t* keys() const { return keys_; }

 private:
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
  uint32_t hint_ = kNoHint;
};

}  // namespace mumoe::cpu
