// Portable selection kernels: scores, radix threshold, and the three ways to write a selected row.
#include "cpu/scalar_helpers.h"

namespace mumoe::cpu::scalar {

void row_scores(const void* w, DType dt, const float* norms, int64_t d, uint32_t* keys) {
  for (int64_t j = 0; j < d; ++j) keys[j] = score_key(load_as_float(w, dt, j), norms[j]);
}

RowThreshold row_select(const uint32_t* keys, int64_t d, int64_t k, uint32_t hint, uint32_t* scratch) {
  return radix_select_scalar(keys, d, k, scratch);
}

void emit_mask(const uint32_t* keys, int64_t d, RowThreshold th, uint8_t* mask) {
  KeepCursor cur{th.tau, th.ties_kept};
  for (int64_t j = 0; j < d; ++j) mask[j] = cur.next(keys[j]);
}

void emit_pruned(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th,
                 void* out, bool /*streaming*/) {
  KeepCursor cur{th.tau, th.ties_kept};
  if (dt == DType::f32) {
    const float* src = static_cast<const float*>(w);
    float* dst = static_cast<float*>(out);
    for (int64_t j = 0; j < d; ++j) dst[j] = cur.next(keys[j]) ? src[j] : 0.0f;
  } else {
    const uint16_t* src = static_cast<const uint16_t*>(w);
    uint16_t* dst = static_cast<uint16_t*>(out);
    for (int64_t j = 0; j < d; ++j) dst[j] = cur.next(keys[j]) ? src[j] : uint16_t(0);
  }
}

void emit_compact(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th,
                  int64_t k, uint32_t* bitmap, void* values) {
  KeepCursor cur{th.tau, th.ties_kept};
  const int64_t words = (d + 31) / 32, es = dtype_size(dt);
  for (int64_t i = 0; i < words; ++i) bitmap[i] = 0;
  const char* src = static_cast<const char*>(w);
  char* dst = static_cast<char*>(values);
  int64_t n = 0;
  for (int64_t j = 0; j < d; ++j) {
    if (!cur.next(keys[j])) continue;
    bitmap[j >> 5] |= 1u << (j & 31);
    std::memcpy(dst + es * n++, src + es * j, es);
  }
}

float pruned_dot(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th,
                 const float* v) {
  KeepCursor cur{th.tau, th.ties_kept};
  float sum = 0.0f;
  for (int64_t j = 0; j < d; ++j)
    if (!cur.next(keys[j])) sum += load_as_float(w, dt, j) * v[j];
  return sum;
}

float emit_compact_dot(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th,
                       int64_t k, uint32_t* bitmap, void* values, const float* v) {
  emit_compact(w, dt, keys, d, th, k, bitmap, values);
  return pruned_dot(w, dt, keys, d, th, v);
}

}  // namespace mumoe::cpu::scalar
