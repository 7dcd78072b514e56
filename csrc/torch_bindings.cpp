// Every mumoe op's schema, plus the small Python module with build information.
#include <torch/library.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "cpu/buffer_pool.h"
#include "cpu/dispatch.h"
#include "cpu/row_selector.h"

TORCH_LIBRARY(mumoe, m) {
  // fp32 column L2 norms of one prompt (T, d) -> (d,) or a batch (B, T, d) -> (B, d); tokens whose
  // attention_mask is 0 do not count; non-finite norms raise.
  m.def("col_norms(Tensor x, Tensor? attention_mask) -> Tensor");
  // bool mask keeping the k largest |W_ij|*n_j of every row (ties to the lower column index);
  // norms (B, d_in) give a (B, d_out, d_in) mask.
  // m > 0 (every selection op): N:M sparsity, n = k*m/d_in kept in each group of m columns.
  m.def("wanda_mask(Tensor weight, Tensor norms, int k, int m=0) -> Tensor");
  // the weight with everything outside that mask zeroed, written straight from the selection;
  // check_norms=False skips re-validating norms that col_norms already checked (one sync less).
  m.def("wanda_prune(Tensor weight, Tensor norms, int k, bool check_norms=True, int m=0) -> Tensor");
  // the same selection as a RowSparse: (int32 bitmap (.., d_out, ceil(d_in/32)), values (.., d_out, k)).
  m.def("prune_rows(Tensor weight, Tensor norms, int k, int m=0) -> (Tensor, Tensor)");
  // x @ (weight * mask).T + bias; a (B, d_out, d_in) mask applies per sample of x (B, T, d_in).
  m.def("masked_linear(Tensor x, Tensor weight, Tensor mask, Tensor? bias) -> Tensor");
  // x @ dense(bitmap, values).T + bias for a RowSparse weight.
  m.def("sparse_linear(Tensor x, Tensor bitmap, Tensor values, int d_in, Tensor? bias) -> Tensor");
  // the µ-MoE linear: col_norms -> wanda_prune -> GEMM, per prompt.
  m.def("wanda_linear(Tensor x, Tensor weight, Tensor? bias, int k, Tensor? attention_mask, int m=0) -> Tensor");
  // the µ-MoE prefill: wanda_linear that also returns the RowSparse it selected (bitmap, values), so
  // decode reuses the one selection; each prompt's result does not depend on its batch or padding.
  m.def("wanda_linear_compact(Tensor x, Tensor weight, Tensor? bias, int k, Tensor? attention_mask, int m=0) -> (Tensor, Tensor, Tensor)");
  // µ-MoE with mean_shift s (docs/mumoe_plus.md): center = s * the column mean of each prompt's
  // kept tokens, scores |W_ij| * ||x_j - center_j||, y = x W_kept^T + bias + offset with
  // offset = (W - W_kept) center (fp32, (d_out,) / (B, d_out)), returned for the decode steps;
  // (y, bitmap, values, offset), the compact weight (0,)-sized unless keep_compact.
  // its selection alone, from the tokens: (bitmap, values, offset).
  m.def("prune_rows_centered(Tensor x, Tensor weight, int k, float mean_shift, Tensor? attention_mask, int m=0) -> (Tensor, Tensor, Tensor)");
  m.def("wanda_linear_centered(Tensor x, Tensor weight, Tensor? bias, int k, float mean_shift, Tensor? attention_mask, int m=0, bool keep_compact=True) -> (Tensor, Tensor, Tensor, Tensor)");
}

namespace py = pybind11;

PYBIND11_MODULE(_C, m) {
  m.doc() = "mumoe_ext compiled kernels (ops live in torch.ops.mumoe)";
  m.attr("version") = MUMOE_VERSION;
#ifdef MUMOE_WITH_CUDA
  m.attr("cuda") = true;
  m.attr("cuda_archs") = MUMOE_CUDA_ARCHS;
#else
  m.attr("cuda") = false;
  m.attr("cuda_archs") = "";
#endif
  m.def("cpu_isa", &mumoe::cpu::current_isa, "The CPU instruction-set path in use.");
  m.def("cpu_isas", &mumoe::cpu::available_isas, "CPU paths compiled in and supported here.");
  m.def("cpu_optional_kernels", &mumoe::cpu::optional_kernels,
        "Optional kernels of the CPU path in use that this CPU runs (e.g. sparse_dot_bf16).");
  m.def("_set_weight_check", [](bool on) { mumoe::cpu::weight_check_enabled().store(on); },
        "Benchmarks only: turn the CPU NaN/Inf weight check off (True turns it back on).");
  m.def("set_cpu_isa", [](const std::string& name) {
    try {
      mumoe::cpu::set_isa(name);
    } catch (const c10::Error& e) {
      throw py::value_error(e.what_without_backtrace());
    }
  }, "Force a CPU path ('' restores the best one).");
  m.def("empty_cache", &mumoe::cpu::pool_empty_cache,
        "Free the CPU buffer pool's idle buffers and restart its peak from the bytes live now.");
  m.def("memory_stats", [] {
    const mumoe::cpu::PoolStats s = mumoe::cpu::pool_stats();
    return py::dict(py::arg("live_bytes") = s.live_bytes, py::arg("idle_bytes") = s.idle_bytes,
                    py::arg("peak_live_bytes") = s.peak_live_bytes, py::arg("idle_cap_bytes") = s.cap_bytes);
  }, "The CPU buffer pool's live, idle and peak-live bytes and its idle cap.");
}
