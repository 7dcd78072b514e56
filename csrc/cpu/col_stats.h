// Per-prompt column statistics of activations over the tokens each prompt's attention mask keeps:
// the sums behind col_norms, and the mean-shifted norms of µ-MoE's `mean_shift`.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <utility>

namespace mumoe::cpu {

// x (B, T, d) contiguous, keep null or (B, T) bytes, center null or (B, d) fp32; out (B, d) fp32,
// zeroed by the caller. square: out += sum of (x - center)^2, else out += sum of x.
void col_moments(const at::Tensor& x, const uint8_t* keep, const float* center, bool square,
                 float* out);

// The attention mask as (B, T) keep bytes (undefined when there is none), its shape checked.
at::Tensor keep_bytes(const at::Tensor& x, const std::optional<at::Tensor>& attention_mask,
                      const char* op);

// (norms, center), both (B, d) fp32 for x (B, T, d): center = mean_shift * the column mean of the
// kept tokens (0 for a prompt that keeps none), norms = sqrt(sum over them of (x - center)^2).
// Raises naming `op` when x holds NaN/Inf (or values whose squares overflow fp32).
std::pair<at::Tensor, at::Tensor> centered_col_norms(const at::Tensor& x, const at::Tensor& keep,
                                                     double mean_shift, const char* op);

// sqrt in place and the finiteness check in one plain loop (a few ATen ops cost more than a short
// prompt's norms).
void finish_norms(float* sums, int64_t n, const char* op);

}  // namespace mumoe::cpu
