// Host emulation of the CUDA features our kernels use: every CUDA thread of a block is a fiber.
#pragma once
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <algorithm>
#include <functional>
#include <ucontext.h>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace emu {
// Cooperative fibers (ucontext) on one OS thread: every CUDA thread of a block is a fiber that yields
// at barriers, so the emulation costs one core and no spinning.
struct Bar {
  int expected = 0, count = 0, gen = 0;
};
inline ucontext_t sched_ctx;
inline std::vector<ucontext_t> fctx;
inline std::vector<char> done;
inline std::vector<std::vector<char>> stacks;
inline int cur = 0;
inline dim3 g_bDim, g_gDim, g_bIdx;
inline Bar block_bar;
inline Bar warp_bars[64];
inline uint32_t xchg[64][32];
alignas(16) inline unsigned char dyn_smem[1 << 20];
inline int g_optin = 227 * 1024, g_sms = 132;
inline std::function<void()> g_fn;

inline void yield() { swapcontext(&fctx[cur], &sched_ctx); }
inline void bar_wait(Bar& b) {
  const int g = b.gen;
  if (++b.count == b.expected) { b.count = 0; ++b.gen; return; }
  while (b.gen == g) yield();
}
inline void bar_drop(Bar& b) {
  --b.expected;
  if (b.count > 0 && b.count == b.expected) { b.count = 0; ++b.gen; }
}
inline dim3 thread_idx() {
  return dim3(cur % g_bDim.x, (cur / g_bDim.x) % g_bDim.y, cur / (g_bDim.x * g_bDim.y));
}
inline int lane() { return cur & 31; }
inline int warp() { return cur >> 5; }
inline void syncwarp() { bar_wait(warp_bars[warp()]); }
template <class T>
T shfl(T v, int src) {
  static_assert(sizeof(T) == 4);
  uint32_t u; std::memcpy(&u, &v, 4);
  xchg[warp()][lane()] = u;
  syncwarp();
  uint32_t r = xchg[warp()][src & 31];
  syncwarp();
  T out; std::memcpy(&out, &r, 4);
  return out;
}
inline unsigned ballot(bool p) {
  xchg[warp()][lane()] = p;
  syncwarp();
  unsigned b = 0;
  for (int l = 0; l < 32; ++l) b |= (xchg[warp()][l] ? 1u : 0u) << l;
  syncwarp();
  return b;
}
template <class T>
const T* aligned_ptr(const T* p) {
  if (reinterpret_cast<uintptr_t>(p) % sizeof(T)) { std::fprintf(stderr, "MISALIGNED %zu-byte load\n", sizeof(T)); std::abort(); }
  return p;
}
inline unsigned lanemask_lt() { return (1u << lane()) - 1u; }

inline void trampoline() {
  g_fn();
  bar_drop(warp_bars[warp()]);
  bar_drop(block_bar);
  done[cur] = 1;
}

template <class F>
void run_grid(F fn, dim3 grid, dim3 block) {
  g_gDim = grid; g_bDim = block;
  const int nt = block.x * block.y * block.z, nw = (nt + 31) / 32;
  fctx.resize(nt); done.resize(nt); stacks.resize(nt);
  g_fn = fn;
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        g_bIdx = dim3(bx, by, bz);
        block_bar = Bar{nt, 0, 0};
        for (int w = 0; w < nw; ++w) warp_bars[w] = Bar{std::min(32, nt - 32 * w), 0, 0};
        for (int t = 0; t < nt; ++t) {
          stacks[t].resize(64 * 1024);
          getcontext(&fctx[t]);
          fctx[t].uc_stack.ss_sp = stacks[t].data();
          fctx[t].uc_stack.ss_size = stacks[t].size();
          fctx[t].uc_link = &sched_ctx;
          makecontext(&fctx[t], trampoline, 0);
          done[t] = 0;
        }
        for (int alive = nt; alive > 0;) {
          alive = 0;
          for (int t = 0; t < nt; ++t) {
            if (done[t]) continue;
            cur = t;
            swapcontext(&sched_ctx, &fctx[t]);
            alive += !done[t];
          }
        }
      }
}

template <class K>
auto launch(K kernel, dim3 grid, dim3 block, size_t = 0, cudaStream_t = 0) {
  return [=](auto... args) { run_grid([=] { kernel(args...); }, grid, block); };
}

inline float float_as_float(float f) { return f; }
inline uint32_t float_as_uint(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
inline float uint_as_float(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
inline int atomic_add(int* p, int v) { int o = *p; *p += v; return o; }
inline cudaError_t dev_attr(int* v, cudaDeviceAttr a) {
  *v = a == cudaDevAttrMultiProcessorCount ? g_sms : a == cudaDevAttrMaxSharedMemoryPerBlockOptin ? g_optin : 0;
  return cudaSuccess;
}
inline cudaError_t func_attr(cudaFuncAttributes* a) { a->sharedSizeBytes = 1136; return cudaSuccess; }
}  // namespace emu

#undef __global__
#undef __device__
#undef __host__
#undef __forceinline__
#undef __launch_bounds__
#undef __shared__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define threadIdx emu::thread_idx()
#define blockIdx emu::g_bIdx
#define blockDim emu::g_bDim
#define gridDim emu::g_gDim
#define __syncthreads() emu::bar_wait(emu::block_bar)
#define __syncwarp() emu::syncwarp()
#define __shfl_sync(m, v, s) emu::shfl(v, s)
#define __shfl_up_sync(m, v, o) (emu::lane() >= (o) ? emu::shfl(v, emu::lane() - (o)) : emu::shfl(v, emu::lane()))
#define __shfl_xor_sync(m, v, o) emu::shfl(v, emu::lane() ^ (o))
#define __ballot_sync(m, p) emu::ballot(p)
#define __popc(x) __builtin_popcount(unsigned(x))
#define __float_as_uint(f) emu::float_as_uint(f)
#define __uint_as_float(u) emu::uint_as_float(u)
#define __fmul_rn(a, b) ((a) * (b))
#define atomicAdd(p, v) emu::atomic_add(p, v)
#define __ldcs(p) (*emu::aligned_ptr(p))
#define cudaFuncSetAttribute(...) cudaSuccess
#define cudaGetDevice(p) (*(p) = 0, cudaSuccess)
#define cudaDeviceGetAttribute(p, a, d) emu::dev_attr(p, a)
#define cudaFuncGetAttributes(p, ...) emu::func_attr(p)
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
