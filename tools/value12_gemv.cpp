// Measures the lossless 12-bit value format docs/generation.md "Speed" proposes for the decode
// (sign + 7-bit mantissa in one byte, a 4-bit exponent offset from a per-row base) against the
// 16-bit compact rows sparse_linear streams today, before any of it is built into the extension:
// one TinyLlama gate_proj shape (5632 x 2048, k = 1024), T = 1, bf16, random kept columns.
//
//   g++ -O2 -mavx512f -mavx512bw -mavx512vl -mavx512vbmi2 -mavx512bf16 -fopenmp
//       tools/value12_gemv.cpp -o /tmp/value12_gemv   (one command line)
//   OMP_NUM_THREADS=2 /tmp/value12_gemv [layers]   # 40 layers (~430 MiB) stream from DRAM, 1 fits L3
//
// Both 12-bit forms decode a row's values into a 16-bit scratch row in L1, then run the same
// expand + vdpbf16ps loop as the 16-bit path (the loop of sparse_dot_bf16_avx512.cpp); every
// output is compared with the 16-bit one (bit for bit: the values are the same). The last column
// reads the 16-bit rows' bytes with no compute on them: where the memory side stops.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

namespace {

uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return uint16_t((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}
__mmask32 lanes32(int64_t c) { return c >= 32 ? ~__mmask32(0) : (__mmask32(1) << c) - 1; }

// 32 columns of a compact row as bf16, consuming values[n..].
__m512bh weights32(const uint32_t* bitmap, const uint16_t* values, int64_t j, int64_t k, int64_t& n) {
  const __mmask32 m = bitmap[j >> 5];
  const int c = __builtin_popcount(m);
  const __m512i p = n + 32 <= k ? _mm512_loadu_si512(values + n) : _mm512_maskz_loadu_epi16(lanes32(c), values + n);
  n += c;
  return (__m512bh)_mm512_maskz_expand_epi16(m, p);
}

float dot16(const uint16_t* x, const uint32_t* bitmap, const uint16_t* values, int64_t d, int64_t k) {
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  int64_t n = 0;
  for (int64_t j = 0; j < d; j += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(values + n) + 4096, _MM_HINT_T0);
    const __m512bh w0 = weights32(bitmap, values, j, k, n), w1 = weights32(bitmap, values, j + 32, k, n);
    a0 = _mm512_dpbf16_ps(a0, w0, (__m512bh)_mm512_loadu_si512(x + j));
    a1 = _mm512_dpbf16_ps(a1, w1, (__m512bh)_mm512_loadu_si512(x + j + 32));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

// Word form, 32 values a step: mant byte = sign << 7 | mantissa; expo: 16 bytes per 32 values,
// byte i = off[i] | off[i + 16] << 4. vpermw looks (sign, off) up in a 32-word table of
// sign << 15 | (base + off) << 7.
void decode_words(const uint8_t* mant, const uint8_t* expo, int base, int64_t k, uint16_t* out) {
  alignas(64) uint16_t tab[32];
  for (int s = 0; s < 2; ++s)
    for (int o = 0; o < 16; ++o) tab[s * 16 + o] = uint16_t(s << 15 | ((base + o) & 0xff) << 7);
  const __m512i table = _mm512_load_si512(tab);
  const __m512i c10 = _mm512_set1_epi16(0x10), c7f = _mm512_set1_epi16(0x7f);
  const __m256i c0f = _mm256_set1_epi16(0xf);
  for (int64_t g = 0; g < k; g += 32) {
    _mm_prefetch(reinterpret_cast<const char*>(mant + g) + 2048, _MM_HINT_T0);  // the next rows
    _mm_prefetch(reinterpret_cast<const char*>(expo + g / 2) + 1024, _MM_HINT_T0);
    const __m512i lo = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(mant + g)));
    const __m256i nw = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(expo + g / 2)));
    const __m512i off = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(nw, c0f)),
                                           _mm256_srli_epi16(nw, 4), 1);
    const __m512i idx = _mm512_ternarylogic_epi32(_mm512_srli_epi16(lo, 3), c10, off, 0xEA);  // (a & b) | c
    const __m512i e = _mm512_permutexvar_epi16(idx, table);
    _mm512_storeu_si512(out + g, _mm512_ternarylogic_epi32(e, lo, c7f, 0xF8));  // a | (b & c)
  }
}

// Byte form, 64 values a step: vpshufb maps each offset to the two bytes of (base + off) a bf16
// needs; values are stored in the order vpunpck{l,h}bw puts back in place (byte_slot).
int byte_slot(int v) { return v < 32 ? 16 * (v / 8) + v % 8 : 16 * ((v - 32) / 8) + 8 + (v - 32) % 8; }
void decode_bytes(const uint8_t* mant, const uint8_t* expo, int base, int64_t k, uint16_t* out) {
  alignas(16) uint8_t th[16], tl[16];
  for (int o = 0; o < 16; ++o) {
    th[o] = uint8_t(((base + o) & 0xff) >> 1);
    tl[o] = uint8_t(((base + o) & 1) << 7);
  }
  const __m512i TH = _mm512_broadcast_i32x4(_mm_load_si128(reinterpret_cast<const __m128i*>(th)));
  const __m512i TL = _mm512_broadcast_i32x4(_mm_load_si128(reinterpret_cast<const __m128i*>(tl)));
  const __m512i c80 = _mm512_set1_epi8(char(0x80)), c7f = _mm512_set1_epi8(0x7f);
  const __m256i c0f = _mm256_set1_epi8(0x0f);
  for (int64_t g = 0; g < k; g += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(mant + g) + 2048, _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(expo + g / 2) + 1024, _MM_HINT_T0);
    const __m512i m = _mm512_loadu_si512(mant + g);
    const __m256i nb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(expo + g / 2));
    const __m512i idx = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(nb, c0f)),
                                           _mm256_and_si256(_mm256_srli_epi16(nb, 4), c0f), 1);
    const __m512i hi = _mm512_ternarylogic_epi32(_mm512_shuffle_epi8(TH, idx), m, c80, 0xF8);
    const __m512i lo = _mm512_ternarylogic_epi32(_mm512_shuffle_epi8(TL, idx), m, c7f, 0xF8);
    _mm512_storeu_si512(out + g, _mm512_unpacklo_epi8(lo, hi));
    _mm512_storeu_si512(out + g + 32, _mm512_unpackhi_epi8(lo, hi));
  }
}

// The same bytes as dot16 reads, summed without any compute on them: what the memory side allows.
float read_only(const uint32_t* bitmap, const uint16_t* values, int64_t d, int64_t k) {
  __m512i a = _mm512_setzero_si512();
  for (int64_t j = 0; j < k; j += 32) a = _mm512_add_epi32(a, _mm512_loadu_si512(values + j));
  for (int64_t j = 0; j < d / 32; j += 16) a = _mm512_add_epi32(a, _mm512_loadu_si512(bitmap + j));
  return float(_mm512_reduce_add_epi32(a));
}

struct Layer {
  std::vector<uint32_t> bitmap;
  std::vector<uint16_t> v16;
  std::vector<uint8_t> mant_w, expo_w, mant_b, expo_b, base;
};

constexpr int64_t kRows = 5632, kD = 2048, kK = 1024;  // k a multiple of 64: no tail handling

Layer make_layer(std::mt19937& rng) {
  std::normal_distribution<float> normal(0, 0.02f);
  Layer L;
  L.bitmap.assign(kRows * kD / 32, 0);
  L.v16.resize(kRows * kK);
  L.mant_w.resize(kRows * kK);
  L.mant_b.resize(kRows * kK);
  L.expo_w.assign(kRows * kK / 2, 0);
  L.expo_b.assign(kRows * kK / 2, 0);
  L.base.resize(kRows);
  std::vector<int> cols(kD);
  for (int64_t r = 0; r < kRows; ++r) {
    for (int j = 0; j < kD; ++j) cols[j] = j;
    std::shuffle(cols.begin(), cols.end(), rng);
    for (int i = 0; i < kK; ++i) L.bitmap[r * kD / 32 + cols[i] / 32] |= 1u << (cols[i] % 32);
    int emax = 0;
    for (int i = 0; i < kK; ++i) {
      float f = normal(rng);
      if (std::fabs(f) < 0.01f) f = f < 0 ? -0.01f : 0.01f;  // kept weights: the larger half
      L.v16[r * kK + i] = to_bf16(f);
      emax = std::max(emax, (L.v16[r * kK + i] >> 7) & 0xff);
    }
    const int base = emax - 15;
    L.base[r] = uint8_t(base);
    for (int i = 0; i < kK; ++i) {
      const uint16_t h = L.v16[r * kK + i];
      const int off = ((h >> 7) & 0xff) - base;
      if (off < 0) { std::fprintf(stderr, "a row spans more than 16 exponents\n"); std::exit(1); }
      const uint8_t m = uint8_t((h >> 8 & 0x80) | (h & 0x7f));
      L.mant_w[r * kK + i] = m;
      L.expo_w[r * kK / 2 + i / 32 * 16 + i % 16] |= uint8_t(off << (i % 32 < 16 ? 0 : 4));
      const int slot = byte_slot(i % 64);
      L.mant_b[r * kK + i / 64 * 64 + slot] = m;
      L.expo_b[r * kK / 2 + i / 64 * 32 + (slot & 31)] |= uint8_t(off << (slot < 32 ? 0 : 4));
    }
  }
  return L;
}

template <class Row>
double time_ms(const std::vector<Layer>& layers, std::vector<float>& y, Row row) {
  const auto t0 = std::chrono::steady_clock::now();
  for (const Layer& L : layers) {
#pragma omp parallel
    {
      alignas(64) uint16_t scratch[kK];
#pragma omp for schedule(static)
      for (int64_t r = 0; r < kRows; ++r) y[r] = row(L, r, scratch);
    }
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / layers.size() * 1e3;
}

}  // namespace

int main(int argc, char** argv) {
  const int n_layers = argc > 1 ? std::atoi(argv[1]) : 40;
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0, 1);
  std::vector<uint16_t> x(kD);
  for (auto& v : x) v = to_bf16(normal(rng));
  std::vector<Layer> layers;
  for (int l = 0; l < n_layers; ++l) layers.push_back(make_layer(rng));
  const double bytes16 = kRows * (kD / 8.0 + kK * 2.0), bytes12 = kRows * (kD / 8.0 + kK * 1.5);
  std::printf("%d layers of %lld x %lld, k = %lld, %d threads; MiB per layer: 16-bit %.1f, 12-bit %.1f\n",
              n_layers, (long long)kRows, (long long)kD, (long long)kK, omp_get_max_threads(),
              bytes16 / 1048576, bytes12 / 1048576);
  std::vector<float> y16(kRows), yw(kRows), yb(kRows), yr(kRows);
  for (int rep = 0; rep < 5; ++rep) {
    const double t16 = time_ms(layers, y16, [&](const Layer& L, int64_t r, uint16_t*) {
      return dot16(x.data(), &L.bitmap[r * kD / 32], &L.v16[r * kK], kD, kK);
    });
    const double tw = time_ms(layers, yw, [&](const Layer& L, int64_t r, uint16_t* s) {
      decode_words(&L.mant_w[r * kK], &L.expo_w[r * kK / 2], L.base[r], kK, s);
      return dot16(x.data(), &L.bitmap[r * kD / 32], s, kD, kK);
    });
    const double tb = time_ms(layers, yb, [&](const Layer& L, int64_t r, uint16_t* s) {
      decode_bytes(&L.mant_b[r * kK], &L.expo_b[r * kK / 2], L.base[r], kK, s);
      return dot16(x.data(), &L.bitmap[r * kD / 32], s, kD, kK);
    });
    const double tr = time_ms(layers, yr, [&](const Layer& L, int64_t r, uint16_t*) {
      return read_only(&L.bitmap[r * kD / 32], &L.v16[r * kK], kD, kK);
    });
    const bool same = std::memcmp(y16.data(), yw.data(), kRows * 4) == 0 &&
                      std::memcmp(y16.data(), yb.data(), kRows * 4) == 0;
    std::printf("16-bit %.3f ms (%.1f GB/s) | 12-bit words %.3f ms (%.2fx) | 12-bit bytes %.3f ms (%.2fx) | "
                "16-bit bytes read, no compute %.3f ms (%.1f GB/s) | %s\n",
                t16, bytes16 / t16 / 1e6, tw, t16 / tw, tb, t16 / tb, tr, bytes16 / tr / 1e6,
                same ? "outputs equal" : "OUTPUTS DIFFER");
    if (!same) return 1;
  }
}
