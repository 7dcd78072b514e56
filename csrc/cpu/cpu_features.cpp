#include "cpu/cpu_features.h"

#include <cstdlib>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#include <cstdint>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#endif

namespace mumoe::cpu {
namespace {

#if defined(__x86_64__) || defined(_M_X64)
uint64_t xgetbv0() {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t(hi) << 32) | lo;
}

// An environment switch set to anything but empty or 0.
bool switched_on(const char* name) {
  const char* v = std::getenv(name);
  return v && *v && *v != '0';
}

// Linux enables AMX's tile data per process, on request (once; the vendor GEMM asks the same).
bool amx_permitted(uint64_t xcr0) {
  if ((xcr0 & 0x60000) != 0x60000) return false;  // XTILECFG + XTILEDATA
#if defined(__linux__)
  constexpr long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

CpuFeatures detect() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27), fma = c & (1u << 12), f16c = c & (1u << 29),
             avx = c & (1u << 28);
  if (!osxsave || !avx) return f;
  const uint64_t xcr0 = xgetbv0();
  const bool ymm_os = (xcr0 & 0x6) == 0x6;           // SSE + AVX state
  const bool zmm_os = (xcr0 & 0xe6) == 0xe6;         // + opmask, ZMM_Hi256, Hi16_ZMM
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  const bool avx2 = b & (1u << 5);
  const bool f512 = b & (1u << 16), dq = b & (1u << 17), bw = b & (1u << 30), vl = b & (1u << 31);
  f.avx2_fma_f16c = ymm_os && avx2 && fma && f16c;
  f.avx512 = f.avx2_fma_f16c && zmm_os && f512 && dq && bw && vl;
  const bool vbmi2 = c & (1u << 6);
  const bool amx = (d & (1u << 24)) && (d & (1u << 22));  // AMX-TILE, AMX-BF16
  __cpuid_count(7, 1, a, b, c, d);
  // MUMOE_CPU_NO_VBMI2_BF16=1 hides both optional extensions (to test the plain AVX-512 path).
  f.avx512_vbmi2 = f.avx512 && vbmi2 && !switched_on("MUMOE_CPU_NO_VBMI2_BF16");
  f.avx512_vbmi2_bf16 = f.avx512_vbmi2 && (a & (1u << 5));
  // MUMOE_CPU_NO_AMX=1 hides AMX (to test the vendor-GEMM prefill on an AMX machine).
  f.amx_bf16 = f.avx512 && amx && !switched_on("MUMOE_CPU_NO_AMX") && amx_permitted(xcr0);
  return f;
}
#elif defined(__aarch64__)
CpuFeatures detect() {
  CpuFeatures f;
  f.neon = true;  // Advanced SIMD is mandatory on AArch64
  return f;
}
#else
CpuFeatures detect() { return {}; }
#endif

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

}  // namespace mumoe::cpu
