// The prefill's block GEMM on AMX-BF16 (Sapphire Rapids and later): a thread's block of freshly
// pruned weight rows times all of the prompt's tokens, without the vendor GEMM's call and repacking
// per block. The pruned rows are the A operand as the selection wrote them (row-major, no copy);
// the tokens, shared by every block, are packed once per call into the B layout AMX wants (pairs of
// columns interleaved, 32 tokens per slab), so the product comes out transposed (rows x tokens) and
// is transposed back, with the fp32 bias added and rounded once, as each 16 x 16 tile is stored.
// Only this file is compiled for AMX; the avx512 table points at it when cpu_features() reports it.
#include "cpu/avx512/amx_tiles.h"
#include "cpu/avx512/kernels_avx512.h"
#include "cpu/avx512/simd_avx512.h"

#pragma GCC push_options
#pragma GCC target("amx-tile,amx-bf16")

namespace mumoe::cpu::avx512 {
namespace {

// r[i] (16 x 32-bit lanes) <- column i of the 16 x 16 matrix whose rows r holds.
inline void transpose16(__m512i r[16]) {
  __m512i t[16], u[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {  // u[i + c]: column 4L + c of rows i..i+3, per 128-bit lane L
    u[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    u[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    u[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    u[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  for (int c = 0; c < 4; ++c) {
    const __m512i lo0 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x88);   // columns c, 8+c of rows 0-7
    const __m512i hi0 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xdd);   // columns 4+c, 12+c
    const __m512i lo1 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x88);  // the same, rows 8-15
    const __m512i hi1 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xdd);
    r[c] = _mm512_shuffle_i32x4(lo0, lo1, 0x88);
    r[8 + c] = _mm512_shuffle_i32x4(lo0, lo1, 0xdd);
    r[4 + c] = _mm512_shuffle_i32x4(hi0, hi1, 0x88);
    r[12 + c] = _mm512_shuffle_i32x4(hi0, hi1, 0xdd);
  }
}

inline int64_t at_most(int64_t a, int64_t b) { return a < b ? a : b; }

// One 16 x 16 fp32 tile c[row][token] of the transposed product into y[token][row] (bf16), adding
// add[row]; only the n_rows x n_tokens corner that exists is written.
inline void store_tile(const float* c, int64_t n_rows, int64_t n_tokens, const float* add, uint16_t* y,
                       int64_t ldy) {
  __m512i r[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_load_si512(c + 16 * i);
  transpose16(r);
  const __mmask16 m = lanes(n_rows);
  const __m512 a = add ? _mm512_maskz_loadu_ps(m, add) : _mm512_setzero_ps();
  for (int64_t t = 0; t < n_tokens; ++t) {
    const __m256i h = narrow16<DType::bf16>(_mm512_add_ps(_mm512_castsi512_ps(r[t]), a));
    if (m == 0xffff) _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + t * ldy), h);
    else _mm256_mask_storeu_epi16(y + t * ldy, m, h);
  }
}

}  // namespace

int64_t amx_packed_tokens_words(int64_t T, int64_t d) {
  return (T + 31) / 32 * 32 * ((d + 31) / 32 * 16);
}

// Slab s (tokens 32s..32s+32) holds, for every column pair p, the 32 tokens' (x[t][2p], x[t][2p+1])
// as one 32-bit word each: out[(s * pairs + p) * 32 + t % 32]. Tokens past T and columns past d
// are zero, so the padded steps of the product add nothing. Writes slabs [s0, s1) only.
void amx_pack_tokens(const uint16_t* x, int64_t T, int64_t d, uint32_t* out, int64_t s0, int64_t s1) {
  const int64_t pairs = (d + 31) / 32 * 16;
  for (int64_t t0 = 32 * s0; t0 < 32 * s1; t0 += 16) {
    uint32_t* slab = out + (t0 / 32) * pairs * 32 + t0 % 32;
    for (int64_t p0 = 0; p0 < pairs; p0 += 16) {
      __m512i r[16];
      const __mmask32 cols = lanes32(d - 2 * p0);
      for (int i = 0; i < 16; ++i)
        r[i] = t0 + i < T ? _mm512_maskz_loadu_epi16(cols, x + (t0 + i) * d + 2 * p0) : _mm512_setzero_si512();
      transpose16(r);  // r[p]: the 16 tokens' word of pair p0 + p
      for (int p = 0; p < 16; ++p) _mm512_storeu_si512(slab + (p0 + p) * 32, r[p]);
    }
  }
}

// y[t * ldy + j] = bf16(sum_i x[t][i] * w[j * ldw + i] + add[j]) for t < T, j < n. w: n rows of bf16
// at stride ldw >= d rounded up to 32, the columns from d to that zero (finite), and readable up to
// row n rounded up to 32 (rows past n only feed outputs that are not stored); xt: amx_pack_tokens.
void amx_block_gemm(const uint16_t* w, int64_t n, int64_t ldw, int64_t d, const uint32_t* xt, int64_t T,
                    uint16_t* y, int64_t ldy, const float* add) {
  const TileConfig config;
  _tile_loadconfig(&config);
  const int64_t pairs = (d + 31) / 32 * 16, steps = pairs / 16;
  alignas(64) float c[4][256];
  auto product = [&](int64_t j0, int64_t t0) {  // rows j0..j0+32 x tokens t0..t0+32
    const uint16_t* a0 = w + j0 * ldw;
    const uint16_t* a1 = a0 + 16 * ldw;
    const uint32_t* slab = xt + (t0 / 32) * pairs * 32;
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int64_t s = 0; s < steps; ++s) {
      _tile_loadd(4, a0 + 32 * s, ldw * 2);        // rows j0..j0+16, columns 32s..32s+32
      _tile_loadd(5, a1 + 32 * s, ldw * 2);        // rows j0+16..j0+32
      _tile_loadd(6, slab + 512 * s, 128);         // tokens t0..t0+16, pairs 16s..16s+16
      _tile_loadd(7, slab + 512 * s + 16, 128);    // tokens t0+16..t0+32
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, c[0], 64);
    _tile_stored(1, c[1], 64);
    _tile_stored(2, c[2], 64);
    _tile_stored(3, c[3], 64);
    for (int q = 0; q < 4; ++q) {
      const int64_t j = j0 + 16 * (q >> 1), t = t0 + 16 * (q & 1);
      if (j < n && t < T)
        store_tile(c[q], at_most(16, n - j), at_most(16, T - t), add ? add + j : nullptr,
                   y + t * ldy + j, ldy);
    }
  };
  // Keep the smaller operand in L2 across the loop inside: the packed tokens when they are no
  // larger than the block, else the block.
  if ((T + 31) / 32 * 32 <= (n + 31) / 32 * 32) {
    for (int64_t j0 = 0; j0 < n; j0 += 32)
      for (int64_t t0 = 0; t0 < T; t0 += 32) product(j0, t0);
  } else {
    for (int64_t t0 = 0; t0 < T; t0 += 32)
      for (int64_t j0 = 0; j0 < n; j0 += 32) product(j0, t0);
  }
  _tile_release();
}

}  // namespace mumoe::cpu::avx512

#pragma GCC pop_options
