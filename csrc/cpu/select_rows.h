// The Wanda selection of every (prompt, row) pair of a weight, writing whichever outputs the
// caller asks for from one scoring of each row. Shared by the selection ops and the CPU
// wanda_linear / wanda_linear_compact.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>

namespace mumoe::cpu {

// Row r of the outputs is (prompt r / d_out, weight row r % d_out); null outputs are not written.
struct RowOutputs {
  uint8_t* mask = nullptr;      // (rows, d) bytes
  char* pruned = nullptr;       // (rows, d) weight dtype, zeros outside the mask
  bool streaming = true;        // pruned is read back from memory later (non-temporal stores ok)
  uint32_t* bitmap = nullptr;   // (rows, ceil(d/32)) words
  char* values = nullptr;       // (rows, k) weight dtype
  const char* op = "mumoe";     // the public op, for the error on a NaN/Inf weight
  const float* center = nullptr;  // (d,) or (B, d) fp32, laid out like norms: with offset,
  float* offset = nullptr;        // (rows,) fp32: sum over the pruned columns of w_j * center_j
};

// norms: (d,) or (B, d) fp32, contiguous; weight contiguous. Rows [row_begin, row_end) of the
// B * d_out (prompt, row) pairs, threaded over rows. m > 0: N:M groups of m columns (nm_select.h).
void select_rows(const at::Tensor& weight, const at::Tensor& norms, int64_t k, int64_t m,
                 const RowOutputs& out, int64_t row_begin, int64_t row_end);

inline void select_rows(const at::Tensor& weight, const at::Tensor& norms, int64_t k,
                        const RowOutputs& out, int64_t m = 0) {
  select_rows(weight, norms, k, m, out, 0, (norms.dim() == 2 ? norms.size(0) : 1) * weight.size(0));
}

}  // namespace mumoe::cpu
