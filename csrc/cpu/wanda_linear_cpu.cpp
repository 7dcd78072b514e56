// wanda_linear and wanda_linear_compact on the CPU: one selection per (prompt, row), and the pruned
// rows multiplied while they are still in cache. The composite (wanda_prune, then one GEMM) writes
// the whole pruned weight to memory and reads it back; here decode-sized prompts (T <= 8) multiply
// each row as soon as it is selected, and up to a few MiB of tokens each thread selects a block of
// rows into an L2-sized buffer and multiplies that block right away. wanda_linear_compact also
// keeps each row's selection as a RowSparse (bitmap + packed values) for the decode steps.
//
// Batch invariance: each prompt's tokens that its attention mask keeps (one contiguous run, as left
// or right padding leaves them) are multiplied on their own, by the path their own count picks, so
// a prompt in a padded batch gets bit for bit what it gets alone. Padding tokens' outputs come from
// the same compact weight afterwards.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <tuple>
#include <vector>

#include "op_calls.h"
#include "op_common.h"
#include "cpu/buffer_pool.h"
#include "cpu/col_stats.h"
#include "cpu/parallel_rows.h"
#include "cpu/row_selector.h"
#include "cpu/select_rows.h"
#include "nm.h"

namespace mumoe::cpu {
namespace {

constexpr int64_t kMaxBlockRows = 256;

// Rows per block: about 1 MiB of pruned weight, what the block GEMMs measured fastest with here
// (2-core Zen 4, 1 MiB L2 per core), in multiples of 16 rows; but at least 64, or a wide layer's
// blocks get too thin for the GEMM (Llama-7B down, d_in = 11008 fp32: 1.25x -> 1.12x F.linear).
// A small layer (SmolLM2's 192 x 576 k/v projections) still gets two blocks per thread, or its one
// or three blocks would leave a core idle.
int64_t block_rows(int64_t d_out, int64_t d_in, int64_t elem_size) {
  const int64_t rows = (int64_t(1) << 20) / std::max<int64_t>(1, d_in * elem_size);
  const int64_t cache_rows = std::clamp<int64_t>(rows / 16 * 16, 64, kMaxBlockRows);
  const int64_t per_thread = (d_out + 2 * at::get_num_threads() - 1) / (2 * at::get_num_threads());
  return std::max<int64_t>(16, std::min(cache_rows, (per_thread + 15) / 16 * 16));
}

// AMX: blocks of pruned bf16 rows in multiples of 32 (its tiles take 32 rows at a time), about
// 512 KiB of them for rows up to 4096 columns and 1.5 MiB for wider ones. Measured, 2 threads,
// T = 256, fused op: on 2026-12-03 (ms, 512 KiB / 1 MiB / 1.5 MiB blocks) 5632 x 2048 6.1 / 6.6 /
// 6.3, 2048 x 5632 8.5 / 7.1 / 6.8: the wide down_proj needs its block to stay in L2 while all
// tokens stream past it; on 2026-12-04 (in-process, rotating order) 128-row blocks at 2048
// columns 3-6% faster than 256-row ones on 2048^2 and 5632 x 2048, where the tokens (1 MiB at
// T = 256) then fit in L2 beside the block.
int64_t amx_block_rows(int64_t d_out, int64_t ldw) {
  const int64_t target = ldw <= 4096 ? int64_t(1) << 19 : int64_t(3) << 19;
  const int64_t rows = std::clamp<int64_t>(target / (2 * ldw) / 32 * 32, 32, kMaxBlockRows);
  const int64_t per_thread = (d_out + 2 * at::get_num_threads() - 1) / (2 * at::get_num_threads());
  return std::max<int64_t>(32, std::min(rows, (per_thread + 31) / 32 * 32));
}

// The blocked path multiplies every block by all of x: x must stay in the last-level cache
// (32 MiB here, shared with the blocks). Measured: at 5.6 MiB (Llama-7B down, T = 128, fp32)
// blocks beat the composite, at 32 MiB (T = 2048 at d_in = 4096) the composite wins.
constexpr int64_t kBlockedMaxTokenBytes = int64_t(8) << 20;

// MUMOE_CPU_PREFILL=blocked|composite forces one of the two T > kSmallT paths (tests, measurements).
// Otherwise blocked while x fits in the cache beside the blocks. (With AMX, bf16, the vendor GEMM
// is 1.6x slower on 256-row blocks than on the whole matrix, but the composite's extra pass over
// a full pruned copy costs as much: 7.5 vs 7.3 ms, 5632 x 2048, T = 256, Sapphire Rapids.)
bool use_blocked(const at::Tensor& x) {
  const char* force = std::getenv("MUMOE_CPU_PREFILL");
  if (force && std::strcmp(force, "blocked") == 0) return true;
  if (force && std::strcmp(force, "composite") == 0) return false;
  TORCH_CHECK_VALUE(!force || !*force, "MUMOE_CPU_PREFILL must be 'blocked', 'composite' or unset, got '", force, "'");
  return x.numel() * x.element_size() <= kBlockedMaxTokenBytes;
}

// A thread's scratch buffer, reused across calls (a fresh one would pay its page faults each time),
// 64-byte aligned: AMX tile rows that straddle two cache lines load at half the speed.
char* thread_buffer(int which, int64_t bytes) {
  thread_local std::vector<char> bufs[2];
  if (int64_t(bufs[which].size()) < bytes + 64) bufs[which].resize(bytes + 64);
  const uintptr_t p = reinterpret_cast<uintptr_t>(bufs[which].data());
  return bufs[which].data() + ((64 - p % 64) % 64);
}

// One prompt's outputs besides y: its compact selection ((d_out, words) bitmap and (d_out, k)
// values, or nulls when the caller does not keep it) and, for wanda_linear_centered, the offset
// (d_out,) = (W - W_kept) center of its (d,) center (nulls otherwise), which y includes.
struct PromptOut {
  uint32_t* bitmap = nullptr;
  char* values = nullptr;
  const char* op = "wanda_linear";  // names the public op in the NaN/Inf weight error
  const float* center = nullptr;
  float* offset = nullptr;
};

// T <= kSmallT: each row's compact selection goes to the output (or an L1 scratch row) and the row's
// product with the T tokens is taken at once from it. Bias added in fp32, rounded once.
at::Tensor small_t(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& norms, int64_t k,
                   int64_t m, const std::optional<at::Tensor>& bias, PromptOut c) {
  const int64_t T = x.size(0), d = x.size(1), d_out = weight.size(0);
  const int64_t es = weight.element_size(), words = (d + 31) / 32;
  const CpuKernels& K = kernels();
  const DType dt = dtype_of(weight);
  const at::Tensor xf = x.to(at::kFloat).contiguous();
  const at::Tensor bf = bias ? bias->to(at::kFloat).contiguous() : at::Tensor();
  const float* xp = xf.const_data_ptr<float>();
  const float* bp = bf.defined() ? bf.const_data_ptr<float>() : nullptr;
  const char* wp = static_cast<const char*>(weight.const_data_ptr());
  const float* np = norms.const_data_ptr<float>();
  at::Tensor y = at::empty({T, d_out}, x.options().dtype(at::kFloat));
  float* yp = y.mutable_data_ptr<float>();
  parallel_rows(d_out, 32, [&](int64_t s, int64_t e) {
    RowSelector sel(d, m, c.op);
    uint32_t* own_bitmap = reinterpret_cast<uint32_t*>(thread_buffer(0, words * 4));
    char* own_values = thread_buffer(1, k * es);
    float acc[kSmallT];
    for (int64_t i = s; i < e; ++i) {
      const char* w = wp + es * i * d;
      const RowThreshold th = sel.select(K, w, dt, np, k);
      uint32_t* bits = c.bitmap ? c.bitmap + i * words : own_bitmap;
      char* vals = c.bitmap ? c.values + es * i * k : own_values;
      float add = bp ? bp[i] : 0.0f;
      if (c.offset) add += c.offset[i] = K.emit_compact_dot(w, dt, sel.keys(), d, th, k, bits, vals, c.center);
      else K.emit_compact(w, dt, sel.keys(), d, th, k, bits, vals);
      K.sparse_dot(xp, T, bits, vals, dt, d, k, acc);
      for (int64_t t = 0; t < T; ++t) yp[t * d_out + i] = acc[t] + add;
    }
  });
  return y.to(x.scalar_type());
}

// Larger T, while x stays cached: blocks of rows selected into an L2 buffer, each multiplied
// by x as soon as it is written, one thread per block: on AMX (bf16) by our own block GEMM, which
// takes the rows where the selection wrote them and x packed once for every block, else by the
// vendor GEMM. The block's bias (+ offset, fp32) is added to its slice of y while that slice is in
// cache: by the AMX GEMM as it stores each tile (one rounding), else by add_cols right after the
// vendor GEMM (addmm's bias costs more: it copies the broadcast bias into y first, +14 us per
// 256 x 144 block of y, +34 us per 256 x 256 one at d_in 2048, against ~9 and ~16 us here; one
// ATen add of an fp32 vector into all of a bf16 y more still, 2.7 ms at 256 x 5632).
at::Tensor blocked(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& norms, int64_t k,
                   int64_t m, const std::optional<at::Tensor>& bias, PromptOut c) {
  const CpuKernels& K = kernels();
  const DType dt = dtype_of(weight);
  const bool amx = dt == DType::bf16 && K.block_gemm;
  const int64_t T = x.size(0), d = x.size(1), d_out = weight.size(0);
  const int64_t es = weight.element_size(), words = (d + 31) / 32;
  // AMX multiplies 32 rows and 32 columns at a time: rows of the buffer padded to 32 columns (zero),
  // blocks a multiple of 32 rows.
  const int64_t ldw = amx ? words * 32 : d;
  const int64_t rows = amx ? amx_block_rows(d_out, ldw) : block_rows(d_out, d, es);
  const int64_t blocks = (d_out + rows - 1) / rows;
  const char* wp = static_cast<const char*>(weight.const_data_ptr());
  const float* np = norms.const_data_ptr<float>();
  const at::Tensor bf = bias && (c.offset || amx) ? bias->to(at::kFloat).contiguous() : at::Tensor();
  const float* bp = bf.defined() ? bf.const_data_ptr<float>() : nullptr;
  const bool adds = c.offset || (amx && bp);
  uint32_t* xt = nullptr;
  if (amx) {
    xt = reinterpret_cast<uint32_t*>(thread_buffer(1, K.packed_tokens_words(T, d) * 4));
    TORCH_INTERNAL_ASSERT(x.is_contiguous());
    const uint16_t* xp = static_cast<const uint16_t*>(x.const_data_ptr());
    parallel_rows((T + 31) / 32, 1, [&](int64_t s0, int64_t s1) { K.pack_tokens(xp, T, d, xt, s0, s1); });
  }
  // A block of weight rows owns a column slice of y: the GEMM writes it in place (ldc = d_out),
  // no transposed copy of the output afterwards.
  at::Tensor y = pooled_empty({T, d_out}, x.options());
  uint16_t* yp = amx ? static_cast<uint16_t*>(y.mutable_data_ptr()) : nullptr;
  parallel_rows(blocks, 1, [&](int64_t s, int64_t e) {
    RowSelector sel(d, m, c.op);
    char* buf = thread_buffer(0, rows * ldw * es);
    for (int64_t blk = s; blk < e; ++blk) {
      const int64_t r0 = blk * rows, n = std::min(rows, d_out - r0);
      for (int64_t i = 0; i < n; ++i) {
        const int64_t r = r0 + i;
        const char* w = wp + es * r * d;
        const RowThreshold th = sel.select(K, w, dt, np, k);
        char* pruned = buf + es * i * ldw;
        if (ldw > d) std::memset(pruned + es * d, 0, es * (ldw - d));
        if (c.bitmap && K.emit_pruned_compact) {  // all three outputs from one pass over the keys
          const float off = K.emit_pruned_compact(w, dt, sel.keys(), d, th, k, pruned, c.bitmap + r * words,
                                                  c.values + es * r * k, c.center);
          if (c.offset) c.offset[r] = off;
          continue;
        }
        K.emit_pruned(w, dt, sel.keys(), d, th, pruned, /*streaming=*/false);
        if (c.bitmap && c.offset)
          c.offset[r] = K.emit_compact_dot(w, dt, sel.keys(), d, th, k, c.bitmap + r * words,
                                           c.values + es * r * k, c.center);
        else if (c.bitmap)
          K.emit_compact(w, dt, sel.keys(), d, th, k, c.bitmap + r * words, c.values + es * r * k);
        else if (c.offset)
          c.offset[r] = K.pruned_dot(w, dt, sel.keys(), d, th, c.center);
      }
      float add[kMaxBlockRows];
      if (adds)
        for (int64_t i = 0; i < n; ++i)
          add[i] = (c.offset ? c.offset[r0 + i] : 0.0f) + (bp ? bp[r0 + i] : 0.0f);
      if (amx) {  // y's columns r0.. by pointer: a narrow() per block cost ~8 us of ATen views
        K.block_gemm(reinterpret_cast<const uint16_t*>(buf), n, ldw, d, xt, T, yp + r0, d_out,
                     adds ? add : nullptr);
        continue;
      }
      at::Tensor out = y.narrow(1, r0, n);
      at::mm_out(out, x, at::from_blob(buf, {n, d}, weight.options()).t());
      if (adds) K.add_cols(out.mutable_data_ptr(), dt, T, n, d_out, add);
    }
  });
  return bias && !adds ? y.add_(*bias) : y;
}

// Long prompts: the GEMM dwarfs the selection, and one full-size GEMM reads x only once.
at::Tensor composite(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& norms,
                     int64_t k, int64_t m, PromptOut c) {
  at::Tensor pruned = pooled_empty(weight.sizes(), weight.options());
  select_rows(weight, norms, k, {.pruned = static_cast<char*>(pruned.mutable_data_ptr()),
                                 .bitmap = c.bitmap, .values = c.values, .op = c.op,
                                 .center = c.center, .offset = c.offset}, m);
  return at::linear(x, pruned);
}

// One prompt's tokens (T, d) -> (T, d_out), bias (and offset) included.
at::Tensor prompt_product(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& norms,
                          int64_t k, int64_t m, const std::optional<at::Tensor>& bias, PromptOut c) {
  if (x.size(0) <= kSmallT) return small_t(x, weight, norms, k, m, bias, c);
  if (use_blocked(x)) return blocked(x, weight, norms, k, m, bias, c);
  at::Tensor y = composite(x, weight, norms, k, m, c);
  if (c.offset) {  // bias + offset rounded to y's dtype once (an fp32 add into y is slow)
    const at::Tensor off = at::from_blob(c.offset, {weight.size(0)}, x.options().dtype(at::kFloat));
    return y.add_((bias ? off + *bias : off).to(x.scalar_type()));
  }
  return bias ? y.add_(*bias) : y;
}

// The tokens of each prompt that count: [begin, end) when its attention mask keeps one contiguous
// run (no padding, left or right padding); the whole prompt when it keeps none or leaves holes
// (its norms still skip the masked tokens, but its products are then taken over all T tokens).
struct Span {
  int64_t begin, end;
};

std::vector<Span> token_spans(const std::optional<at::Tensor>& attention_mask, int64_t B, int64_t T) {
  std::vector<Span> spans(B, Span{0, T});
  if (!attention_mask) return spans;
  const at::Tensor keep = attention_mask->ne(0).to(at::kByte).reshape({B, T}).contiguous();
  const uint8_t* kp = keep.const_data_ptr<uint8_t>();
  for (int64_t b = 0; b < B; ++b) {
    const uint8_t* row = kp + b * T;
    int64_t first = -1, last = -1, count = 0;
    for (int64_t t = 0; t < T; ++t) {
      if (!row[t]) continue;
      if (first < 0) first = t;
      last = t;
      ++count;
    }
    if (count > 0 && count == last - first + 1) spans[b] = Span{first, last + 1};
  }
  return spans;
}

// mean_shift: wanda_linear_centered (norms of x - center, offset returned), else wanda_linear(_compact).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> linear_impl(
    const at::Tensor& x_, const at::Tensor& weight_, const std::optional<at::Tensor>& bias_, int64_t k,
    int64_t m, const std::optional<at::Tensor>& attention_mask, bool keep_compact, const char* op,
    std::optional<double> mean_shift = std::nullopt) {
  const std::optional<at::Tensor> bias =
      bias_ ? std::optional<at::Tensor>(bias_->contiguous()) : std::nullopt;
  const at::Tensor x = x_.dim() == 3 ? x_.contiguous() : x_.contiguous().unsqueeze(0);
  at::Tensor norms, center, offset;
  if (mean_shift) {
    std::tie(norms, center) = centered_col_norms(x, keep_bytes(x_, attention_mask, op), *mean_shift, op);
  } else {
    const at::Tensor norms_ = call_col_norms(x_, attention_mask);  // raises on NaN/Inf
    norms = (norms_.dim() == 1 ? norms_.unsqueeze(0) : norms_).contiguous();
  }
  const at::Tensor weight = weight_.contiguous();
  const int64_t B = x.size(0), T = x.size(1), d = x.size(2), d_out = weight.size(0);
  const int64_t es = weight.element_size(), words = (d + 31) / 32;
  if (mean_shift) offset = at::empty({B, d_out}, x.options().dtype(at::kFloat));
  const std::vector<Span> spans = token_spans(attention_mask, B, T);
  const bool padded = std::any_of(spans.begin(), spans.end(),
                                  [&](const Span& s) { return s.begin != 0 || s.end != T; });
  // Padding tokens are multiplied from the compact weight, so it is built whenever there are any.
  const bool compact = keep_compact || padded;
  at::Tensor bitmap, values;
  if (compact) {
    bitmap = pooled_empty({B, d_out, words}, weight.options().dtype(at::kInt));
    values = pooled_empty({B, d_out, k}, weight.options());
  }
  auto outputs = [&](int64_t b) {
    PromptOut c{.op = op};
    if (compact) {
      c.bitmap = reinterpret_cast<uint32_t*>(bitmap.mutable_data_ptr<int32_t>()) + b * d_out * words;
      c.values = static_cast<char*>(values.mutable_data_ptr()) + es * b * d_out * k;
    }
    if (mean_shift) {
      c.center = center.const_data_ptr<float>() + b * d;
      c.offset = offset.mutable_data_ptr<float>() + b * d_out;
    }
    return c;
  };
  at::Tensor y;
  if (B == 1 && !padded) {
    y = prompt_product(x.select(0, 0), weight, norms.select(0, 0), k, m, bias, outputs(0)).unsqueeze(0);
  } else {
    y = pooled_empty({B, T, d_out}, x.options());
    for (int64_t b = 0; b < B; ++b) {
      const Span sp = spans[b];
      const at::Tensor xb = x.select(0, b);
      // A fresh copy: the prompt's tokens then sit exactly as they would alone (the vendor GEMM
      // may round differently for another alignment).
      const at::Tensor tokens = xb.narrow(0, sp.begin, sp.end - sp.begin).clone();
      y.select(0, b).narrow(0, sp.begin, sp.end - sp.begin)
          .copy_(prompt_product(tokens, weight, norms.select(0, b), k, m, bias, outputs(b)));
      std::optional<at::Tensor> pad_bias = bias;
      if (mean_shift) {
        const at::Tensor off = offset.select(0, b);
        pad_bias = (bias ? off + *bias : off).to(x.scalar_type());
      }
      for (const Span pad : {Span{0, sp.begin}, Span{sp.end, T}}) {
        if (pad.end <= pad.begin) continue;
        y.select(0, b).narrow(0, pad.begin, pad.end - pad.begin)
            .copy_(call_sparse_linear(xb.narrow(0, pad.begin, pad.end - pad.begin),
                                      bitmap.select(0, b), values.select(0, b), d, pad_bias));
      }
    }
  }
  if (x_.dim() == 2) {
    y = y.squeeze(0);
    if (compact) bitmap = bitmap.squeeze(0), values = values.squeeze(0);
    if (mean_shift) offset = offset.squeeze(0);
  }
  return {y, bitmap, values, offset};
}

at::Tensor wanda_linear_cpu(const at::Tensor& x, const at::Tensor& weight,
                            const std::optional<at::Tensor>& bias, int64_t k,
                            const std::optional<at::Tensor>& attention_mask, int64_t m) {
  check_wanda_linear_args(x, weight, bias, k);  // before weight.size(): a 0-d weight must not index
  check_group("wanda_linear", weight.size(1), k, m);
  if (k == weight.size(-1)) {  // density 1: exactly F.linear (the norms still refuse NaN/Inf)
    call_col_norms(x, attention_mask);
    return at::linear(x, weight, bias);
  }
  return std::get<0>(linear_impl(x, weight, bias, k, m, attention_mask, /*keep_compact=*/false,
                                 "wanda_linear"));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> wanda_linear_compact_cpu(
    const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias, int64_t k,
    const std::optional<at::Tensor>& attention_mask, int64_t m) {
  check_wanda_linear_args(x, weight, bias, k);  // before weight.size(): a 0-d weight must not index
  check_group("wanda_linear_compact", weight.size(1), k, m);
  if (k == weight.size(-1)) {  // density 1: y exactly F.linear, the compact weight keeps every entry
    auto [bitmap, values] = call_prune_rows(weight, call_col_norms(x, attention_mask), k);
    return {at::linear(x, weight, bias), bitmap, values};
  }
  auto [y, bitmap, values, offset] = linear_impl(x, weight, bias, k, m, attention_mask,
                                                 /*keep_compact=*/true, "wanda_linear_compact");
  return {y, bitmap, values};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> wanda_linear_centered_cpu(
    const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias, int64_t k,
    double mean_shift, const std::optional<at::Tensor>& attention_mask, int64_t m, bool keep_compact) {
  check_wanda_linear_centered_args(x, weight, bias, k, mean_shift, m);
  auto [y, bitmap, values, offset] = linear_impl(x, weight, bias, k, m, attention_mask, keep_compact,
                                                 "wanda_linear_centered", mean_shift);
  if (!keep_compact) bitmap = at::Tensor(), values = at::Tensor();
  return {y, bitmap.defined() ? bitmap : empty_compact(weight, at::kInt),
          values.defined() ? values : empty_compact(weight, weight.scalar_type()), offset};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> prune_rows_centered_cpu(
    const at::Tensor& x_, const at::Tensor& weight_, int64_t k, double mean_shift,
    const std::optional<at::Tensor>& attention_mask, int64_t m) {
  const char* op = "prune_rows_centered";
  check_wanda_linear_centered_args(x_, weight_, std::nullopt, k, mean_shift, m);
  check_group(op, weight_.size(1), k, m);
  const at::Tensor x = x_.dim() == 3 ? x_.contiguous() : x_.contiguous().unsqueeze(0);
  const at::Tensor weight = weight_.contiguous();
  auto [norms, center] = centered_col_norms(x, keep_bytes(x_, attention_mask, op), mean_shift, op);
  const int64_t B = x.size(0), d_out = weight.size(0), words = (weight.size(1) + 31) / 32;
  at::Tensor bitmap = pooled_empty({B, d_out, words}, weight.options().dtype(at::kInt));
  at::Tensor values = pooled_empty({B, d_out, k}, weight.options());
  at::Tensor offset = at::empty({B, d_out}, x.options().dtype(at::kFloat));
  select_rows(weight, norms, k,
              {.bitmap = reinterpret_cast<uint32_t*>(bitmap.mutable_data_ptr<int32_t>()),
               .values = static_cast<char*>(values.mutable_data_ptr()), .op = op,
               .center = center.const_data_ptr<float>(), .offset = offset.mutable_data_ptr<float>()},
              m);
  if (x_.dim() == 2) return {bitmap.squeeze(0), values.squeeze(0), offset.squeeze(0)};
  return {bitmap, values, offset};
}

}  // namespace

TORCH_LIBRARY_IMPL(mumoe, CPU, m) {
  m.impl("wanda_linear", &wanda_linear_cpu);
  m.impl("wanda_linear_compact", &wanda_linear_compact_cpu);
  m.impl("wanda_linear_centered", &wanda_linear_centered_cpu);
  m.impl("prune_rows_centered", &prune_rows_centered_cpu);
}

}  // namespace mumoe::cpu
