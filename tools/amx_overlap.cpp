// Can one thread hide the prefill's AVX-512 selection work behind its AMX tile products? Measures,
// on one core, the block GEMM's inner product (2 x 2 tiles, 64 K-steps: 32 rows x 32 tokens x 2048
// columns, bf16, operands in L2), a selection-like AVX-512 pass (the scoring loop: bf16 -> fp32,
// times the norms, the sign cleared, the key stored, the near-range compare and compress), each
// alone and interleaved in one instruction stream at several grains (scoring chunks of 16 columns
// after every K-step, after every 4th, or all after each product), before anything of the kind is
// built into the extension.
//
//   g++ -O2 -mavx512f -mavx512bw -mavx512vl -mamx-tile -mamx-bf16 -I csrc tools/amx_overlap.cpp -o /tmp/amx_overlap
//   /tmp/amx_overlap      # Linux: asks the kernel for the AMX tile state first
//   (add -DLDPAD=32 for A rows 32 columns longer than 2048: a stride off 4 KiB, whose 16 tile rows
//   no longer share one L1 set; -DROWS=262144 for scoring that streams 1 GiB of weights from
//   memory, as the prefill's does, instead of one row in L1)
//
// Interleaved time close to the larger of the two alone means the core overlaps them; close to
// their sum means it does not.
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cpu/avx512/amx_tiles.h"  // the extension's tile layout

using mumoe::cpu::avx512::TileConfig;

namespace {

#ifndef LDPAD
#define LDPAD 0
#endif
#ifndef ROWS
#define ROWS 1
#endif
constexpr int64_t kD = 2048, kSteps = kD / 32, kLd = kD + LDPAD;

// The selection-like work: 16 columns of scoring. Keeps its state in a struct so the interleaved
// loop can advance it a chunk at a time.
struct Scorer {
  const uint16_t* row;  // w's rows start here, span values in all
  int64_t span;
  const uint16_t* w;
  const float* norms;
  uint32_t* keys;
  uint32_t* scratch;
  int64_t j = 0, n = 0;
  __m512i lo = _mm512_set1_epi32(0x3c000000), width = _mm512_set1_epi32(0x00400000);
  inline void chunk() {
    _mm_prefetch(reinterpret_cast<const char*>(w + j) + 2048, _MM_HINT_T0);  // as the extension does
    const __m512i h = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + j)));
    const __m512 s = _mm512_mul_ps(_mm512_castsi512_ps(_mm512_slli_epi32(h, 16)), _mm512_loadu_ps(norms + j));
    const __m512i key = _mm512_and_si512(_mm512_castps_si512(s), _mm512_set1_epi32(0x7fffffff));
    _mm512_storeu_si512(keys + j, key);
    const __mmask16 in = _mm512_cmplt_epu32_mask(_mm512_sub_epi32(key, lo), width);
    _mm512_storeu_si512(scratch + (n & 1023), _mm512_maskz_compress_epi32(in, key));
    n += __builtin_popcount(in);
    j += 16;
    if (j == kD) {  // the next row: through all of w (one row, in L1, or rows past the caches)
      j = 0;
      w = row + (w - row + kD) % span;
    }
  }
};

void product(const uint16_t* a, const uint32_t* slab, int every, int chunks, Scorer* sc) {
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int64_t s = 0; s < kSteps; ++s) {
    _tile_loadd(4, a + 32 * s, kLd * 2);
    _tile_loadd(5, a + 16 * kLd + 32 * s, kLd * 2);
    _tile_loadd(6, slab + 512 * s, 128);
    _tile_loadd(7, slab + 512 * s + 16, 128);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
    if (sc && s % every == 0)
      for (int c = 0; c < chunks; ++c) sc->chunk();
  }
}

double seconds(const std::chrono::steady_clock::time_point& t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main() {
  if (syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */)) {
    std::fprintf(stderr, "the kernel refused the AMX tile state\n");
    return 1;
  }
  std::vector<uint16_t> a(32 * kLd, 0x3f80);
  std::vector<uint32_t> slab(kSteps * 512, 0x3f803f80);
  // ROWS rows of weights for the scoring to stream: 1 (in L1, the default) or enough to leave the
  // caches (-DROWS=262144: 1 GiB), as the prefill's selection reads W.
  std::vector<uint16_t> w(int64_t(ROWS) * kD, 0x3f00);
  std::vector<float> norms(kD, 1.5f);
  std::vector<uint32_t> keys(kD), scratch(1024 + 16);
  alignas(64) float c[256];
  const TileConfig config;
  _tile_loadconfig(&config);
  const int reps = 20000;
  std::printf("one core; %d products of 32 x 32 x %lld (%lld K-steps each)\n", reps, (long long)kD,
              (long long)kSteps);
  for (int round = 0; round < 3; ++round) {
    auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < reps; ++r) product(a.data(), slab.data(), 1, 0, nullptr);
    _tile_stored(0, c, 64);
    const double amx = seconds(t0);
    std::printf("AMX alone %.3f ms", amx * 1e3);
    for (int every : {1, 4, 64}) {
      for (int chunks : every == 64 ? std::vector<int>{64, 256, 512} : std::vector<int>{4, 8, 16, 32}) {
        Scorer sc{w.data(), int64_t(w.size()), w.data(), norms.data(), keys.data(), scratch.data()};
        t0 = std::chrono::steady_clock::now();
        for (int r = 0; r < reps; ++r)
          for (int64_t s = 0; s < kSteps; s += every)
            for (int q = 0; q < chunks; ++q) sc.chunk();
        const double alone = seconds(t0);
        Scorer sc2{w.data(), int64_t(w.size()), w.data(), norms.data(), keys.data(), scratch.data()};
        t0 = std::chrono::steady_clock::now();
        for (int r = 0; r < reps; ++r) product(a.data(), slab.data(), every, chunks, &sc2);
        _tile_stored(0, c, 64);
        const double both = seconds(t0);
        std::printf(" | %d x 16 cols / %d step%s: scoring alone %.3f, interleaved %.3f ms (%.2f of the sum, %.2f of the max)",
                    chunks, every, every > 1 ? "s" : "", alone * 1e3, both * 1e3, both / (amx + alone),
                    both / (amx > alone ? amx : alone));
        if (sc.n + sc2.n == 42) std::printf("!");  // keep the work
      }
    }
    std::printf("\n");
  }
  _tile_release();
  std::printf("checksum %g\n", c[0]);
}
