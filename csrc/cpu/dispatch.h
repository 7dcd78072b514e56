// The kernel table in use: the best supported path (avx512 > avx2 > neon > scalar) unless
// MUMOE_CPU_ISA or set_cpu_isa() asks for another.
#pragma once
#include <string>
#include <vector>

#include "cpu/kernels.h"

namespace mumoe::cpu {
const CpuKernels& kernels();
// Paths compiled into this build AND supported by this CPU, best first.
std::vector<std::string> available_isas();
// Throws c10::ValueError naming the request when it is unknown, not compiled or not supported.
void set_isa(const std::string& name);
std::string current_isa();
// The optional kernels the path in use has on this CPU (e.g. "sparse_dot_bf16").
std::vector<std::string> optional_kernels();
}  // namespace mumoe::cpu
