#include "cpu/dispatch.h"

#include <atomic>
#include <cstdlib>

#include <c10/util/Exception.h>

#include "cpu/cpu_features.h"

namespace mumoe::cpu {
namespace {

struct Entry {
  const char* name;
  const CpuKernels* table;  // null: not compiled
  bool supported;
};

std::vector<Entry> entries() {
  const CpuFeatures& f = cpu_features();
  return {
#ifdef MUMOE_HAVE_avx512
      {"avx512", &kAvx512Kernels, f.avx512},
#else
      {"avx512", nullptr, false},
#endif
#ifdef MUMOE_HAVE_avx2
      {"avx2", &kAvx2Kernels, f.avx2_fma_f16c},
#else
      {"avx2", nullptr, false},
#endif
#ifdef MUMOE_HAVE_neon
      {"neon", &kNeonKernels, f.neon},
#else
      {"neon", nullptr, false},
#endif
      {"scalar", &kScalarKernels, true},
  };
}

const CpuKernels* lookup(const std::string& name) {
  std::string known;
  for (const Entry& e : entries()) {
    known += (known.empty() ? "" : ", ") + std::string(e.name);
    if (name != e.name) continue;
    TORCH_CHECK_VALUE(e.table, "MUMOE_CPU_ISA=", name, ": this build has no ", name,
                      " kernels (available here: ", c10::Join(", ", available_isas()), ")");
    TORCH_CHECK_VALUE(e.supported, "MUMOE_CPU_ISA=", name, ": this CPU does not support ", name,
                      " (available here: ", c10::Join(", ", available_isas()), ")");
    return e.table;
  }
  TORCH_CHECK_VALUE(false, "MUMOE_CPU_ISA=", name, " is not an instruction-set path; expected one of ",
                    known);
}

const CpuKernels* best() {
  for (const Entry& e : entries())
    if (e.table && e.supported) return e.table;
  return &kScalarKernels;
}

std::atomic<const CpuKernels*>& active() {
  static std::atomic<const CpuKernels*> a{[] {
    const char* env = std::getenv("MUMOE_CPU_ISA");
    return (env && *env) ? lookup(env) : best();
  }()};
  return a;
}

}  // namespace

const CpuKernels& kernels() { return *active().load(std::memory_order_acquire); }

std::vector<std::string> available_isas() {
  std::vector<std::string> out;
  for (const Entry& e : entries())
    if (e.table && e.supported) out.emplace_back(e.name);
  return out;
}

void set_isa(const std::string& name) {
  active().store(name.empty() ? best() : lookup(name), std::memory_order_release);
}

std::string current_isa() { return kernels().isa; }

std::vector<std::string> optional_kernels() {
  std::vector<std::string> out;
  if (kernels().sparse_dot_bf16) out.emplace_back("sparse_dot_bf16");
  if (kernels().score_select) out.emplace_back("score_select");
  if (kernels().emit_pruned_compact) out.emplace_back("emit_pruned_compact");
  if (kernels().emit_variant) out.emplace_back(std::string("emit_compact_") + kernels().emit_variant);
  if (kernels().block_gemm) out.emplace_back("block_gemm_amx");
  return out;
}

}  // namespace mumoe::cpu
