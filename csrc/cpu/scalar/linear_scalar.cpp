// Portable norm, masking and small-T product kernels.
#include "cpu/scalar_helpers.h"

namespace mumoe::cpu::scalar {

void col_sumsq(const void* x, DType dt, int64_t T, int64_t d, int64_t ld, const uint8_t* keep,
               const float* center, float* out) {
  const int64_t es = dtype_size(dt);
  for (int64_t t = 0; t < T; ++t) {
    if (keep && !keep[t]) continue;
    const void* row = static_cast<const char*>(x) + es * ld * t;
    for (int64_t j = 0; j < d; ++j) {
      const float v = load_as_float(row, dt, j) - (center ? center[j] : 0.0f);
      out[j] += v * v;
    }
  }
}

void col_sum(const void* x, DType dt, int64_t T, int64_t d, int64_t ld, const uint8_t* keep,
             float* out) {
  const int64_t es = dtype_size(dt);
  for (int64_t t = 0; t < T; ++t) {
    if (keep && !keep[t]) continue;
    const void* row = static_cast<const char*>(x) + es * ld * t;
    for (int64_t j = 0; j < d; ++j) out[j] += load_as_float(row, dt, j);
  }
}

void add_cols(void* y, DType dt, int64_t T, int64_t n, int64_t ld, const float* add) {
  add_cols_from(y, dt, T, n, ld, add, 0);
}

void apply_mask(const void* w, DType dt, const uint8_t* mask, int64_t d, void* out) {
  if (dt == DType::f32) {
    const float* src = static_cast<const float*>(w);
    float* dst = static_cast<float*>(out);
    for (int64_t j = 0; j < d; ++j) dst[j] = mask[j] ? src[j] : 0.0f;
  } else {
    const uint16_t* src = static_cast<const uint16_t*>(w);
    uint16_t* dst = static_cast<uint16_t*>(out);
    for (int64_t j = 0; j < d; ++j) dst[j] = mask[j] ? src[j] : uint16_t(0);
  }
}

void expand_compact(const uint32_t* bitmap, const void* values, DType dt, int64_t d, int64_t k,
                    void* out) {
  const int64_t es = dtype_size(dt);
  const char* src = static_cast<const char*>(values);
  char* dst = static_cast<char*>(out);
  std::memset(dst, 0, es * d);
  int64_t n = 0;
  for (int64_t j = 0; j < d; ++j)
    if (bitmap[j >> 5] >> (j & 31) & 1u) std::memcpy(dst + es * j, src + es * n++, es);
}

void masked_dot(const float* x, int64_t T, const void* w, DType dt, const uint8_t* mask,
                int64_t d, float* out) {
  for (int64_t t = 0; t < T; ++t) {
    float acc = 0.0f;
    for (int64_t j = 0; j < d; ++j)
      if (mask[j]) acc += x[t * d + j] * load_as_float(w, dt, j);
    out[t] = acc;
  }
}

void sparse_dot(const float* x, int64_t T, const uint32_t* bitmap, const void* values, DType dt,
                int64_t d, int64_t k, float* out) {
  for (int64_t t = 0; t < T; ++t) out[t] = 0.0f;
  int64_t n = 0;
  for (int64_t j = 0; j < d; ++j) {
    if (!(bitmap[j >> 5] >> (j & 31) & 1u)) continue;
    const float v = load_as_float(values, dt, n++);
    for (int64_t t = 0; t < T; ++t) out[t] += x[t * d + j] * v;
  }
}

}  // namespace mumoe::cpu::scalar
