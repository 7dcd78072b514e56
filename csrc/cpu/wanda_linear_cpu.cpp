// wanda_linear on the CPU. The composite (wanda_prune, then one GEMM) writes the whole pruned weight
// to memory and reads it back; here, for short prompts, the pruned rows never leave the cache:
// decode (T <= 8) multiplies each row as soon as it is selected, and up to a few MiB of tokens each
// thread selects a block of rows into an L2-sized buffer and multiplies that block right away. The
// op then costs the selection's one read of the weight plus the product.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "op_calls.h"
#include "op_common.h"
#include "cpu/parallel_rows.h"
#include "cpu/row_selector.h"

namespace mumoe::cpu {
namespace {

// Rows per block: about 1 MiB of pruned weight, what the block GEMMs measured fastest with here
// (2-core Zen 4, 1 MiB L2 per core), in multiples of 16 rows; but at least 64, or a wide layer's
// blocks get too thin for the GEMM (Llama-7B down, d_in = 11008 fp32: 1.25x -> 1.12x F.linear).
int64_t block_rows(int64_t d_in, int64_t elem_size) {
  const int64_t rows = (int64_t(1) << 20) / std::max<int64_t>(1, d_in * elem_size);
  return std::clamp<int64_t>(rows / 16 * 16, 64, 256);
}

// The blocked path multiplies every block by all of x: x must stay in the last-level cache
// (32 MiB here, shared with the blocks). Measured: at 5.6 MiB (Llama-7B down, T = 128, fp32)
// blocks beat the composite, at 32 MiB (T = 2048 at d_in = 4096) the composite wins.
constexpr int64_t kBlockedMaxTokenBytes = int64_t(8) << 20;

// A thread's block buffer, reused across calls (a fresh one would pay its page faults each time).
char* block_buffer(int64_t bytes) {
  thread_local std::vector<char> buf;
  if (int64_t(buf.size()) < bytes) buf.resize(bytes);
  return buf.data();
}

// T <= kSmallT: each row's mask goes to an L1 buffer and the row's product with the T tokens is
// taken at once, while the row is still in cache from its scoring.
at::Tensor fused_small_t(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& norms,
                         int64_t k, const std::optional<at::Tensor>& bias) {
  const int64_t B = x.size(0), T = x.size(1), d = x.size(2), d_out = weight.size(0);
  const int64_t es = weight.element_size();
  const CpuKernels& K = kernels();
  const DType dt = dtype_of(weight);
  const at::Tensor xf = x.to(at::kFloat).contiguous();
  const float* xp = xf.const_data_ptr<float>();
  const char* wp = static_cast<const char*>(weight.const_data_ptr());
  const float* np = norms.const_data_ptr<float>();
  at::Tensor y = at::empty({B, T, d_out}, x.options().dtype(at::kFloat));
  float* yp = y.mutable_data_ptr<float>();
  parallel_rows(B * d_out, 32, [&](int64_t s, int64_t e) {
    RowSelector sel(d);
    uint8_t* mask = reinterpret_cast<uint8_t*>(block_buffer(d));
    float acc[kSmallT];
    for (int64_t r = s; r < e; ++r) {
      const int64_t b = r / d_out, i = r % d_out;
      const char* w = wp + es * i * d;
      const RowThreshold th = sel.select(K, w, dt, np + (norms.dim() == 2 ? b * d : 0), k,
                                         r + 1 < e ? wp + es * ((r + 1) % d_out) * d : nullptr);
      K.emit_mask(sel.keys(), d, th, mask);
      K.masked_dot(xp + b * T * d, T, w, dt, mask, d, acc);
      for (int64_t t = 0; t < T; ++t) yp[(b * T + t) * d_out + i] = acc[t];
    }
  });
  if (bias) y.add_(*bias);  // in fp32, rounded once with the product
  return y.to(x.scalar_type());
}

// Larger T, while x stays cached: blocks of rows selected into an L2 buffer, each multiplied
// by x as soon as it is written (the vendor GEMM, one thread per block).
at::Tensor blocked(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& norms,
                   int64_t k) {
  const int64_t B = x.size(0), T = x.size(1), d = x.size(2), d_out = weight.size(0);
  const int64_t es = weight.element_size(), rows = block_rows(d, es);
  const int64_t blocks_per_prompt = (d_out + rows - 1) / rows;
  const CpuKernels& K = kernels();
  const DType dt = dtype_of(weight);
  const char* wp = static_cast<const char*>(weight.const_data_ptr());
  const float* np = norms.const_data_ptr<float>();
  // The output transposed, (B, d_out, T): a block of weight rows owns a contiguous slice of it.
  at::Tensor yt = at::empty({B, d_out, T}, x.options());
  parallel_rows(B * blocks_per_prompt, 1, [&](int64_t s, int64_t e) {
    RowSelector sel(d);
    char* buf = block_buffer(rows * d * es);
    for (int64_t blk = s; blk < e; ++blk) {
      const int64_t b = blk / blocks_per_prompt, r0 = (blk % blocks_per_prompt) * rows;
      const int64_t n = std::min(rows, d_out - r0);
      for (int64_t i = 0; i < n; ++i) {
        const char* w = wp + es * (r0 + i) * d;
        const RowThreshold th = sel.select(K, w, dt, np + (norms.dim() == 2 ? b * d : 0), k,
                                           i + 1 < n ? w + es * d : nullptr);
        K.emit_pruned(w, dt, sel.keys(), d, th, buf + es * i * d, /*streaming=*/false);
      }
      const at::Tensor block = at::from_blob(buf, {n, d}, weight.options());
      at::Tensor out = yt.select(0, b).narrow(0, r0, n);
      at::mm_out(out, block, x.select(0, b).t());
    }
  });
  return yt.transpose(1, 2).contiguous();
}

at::Tensor wanda_linear_cpu(const at::Tensor& x_, const at::Tensor& weight_,
                            const std::optional<at::Tensor>& bias, int64_t k,
                            const std::optional<at::Tensor>& attention_mask) {
  check_wanda_linear_args(x_, weight_, bias, k);
  const at::Tensor norms = call_col_norms(x_, attention_mask).contiguous();  // raises on NaN/Inf
  if (k == weight_.size(1)) return at::linear(x_, weight_, bias);
  const at::Tensor x = x_.dim() == 3 ? x_.contiguous() : x_.contiguous().unsqueeze(0);
  const at::Tensor weight = weight_.contiguous();
  at::Tensor y;
  if (x.size(1) <= kSmallT) {
    y = fused_small_t(x, weight, norms, k, bias);
  } else if (x.size(1) * x.size(2) * x.element_size() <= kBlockedMaxTokenBytes) {
    y = blocked(x, weight, norms, k);
  } else {
    // Long prompts: the GEMM dwarfs the selection, and one full-size GEMM reads x only once.
    const at::Tensor pruned = call_wanda_prune_unchecked(weight, norms, k);
    y = dense_linear(x, pruned, std::nullopt);
  }
  if (bias && x.size(1) > kSmallT) y.add_(*bias);
  return x_.dim() == 3 ? y : y.squeeze(0);
}

}  // namespace

TORCH_LIBRARY_IMPL(mumoe, CPU, m) { m.impl("wanda_linear", &wanda_linear_cpu); }

}  // namespace mumoe::cpu
