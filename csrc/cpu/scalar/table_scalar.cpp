#include "cpu/kernels.h"

namespace mumoe::cpu::scalar {
void col_sumsq(const void*, DType, int64_t, int64_t, int64_t, const uint8_t*, float*);
void row_scores(const void*, DType, const float*, int64_t, uint32_t*);
RowThreshold row_select(const uint32_t*, int64_t, int64_t, uint32_t*);
void emit_mask(const uint32_t*, int64_t, RowThreshold, uint8_t*);
void emit_pruned(const void*, DType, const uint32_t*, int64_t, RowThreshold, void*);
void emit_compact(const void*, DType, const uint32_t*, int64_t, RowThreshold, uint32_t*, void*);
void apply_mask(const void*, DType, const uint8_t*, int64_t, void*);
void expand_compact(const uint32_t*, const void*, DType, int64_t, void*);
void masked_dot(const float*, int64_t, const void*, DType, const uint8_t*, int64_t, float*);
void sparse_dot(const float*, int64_t, const uint32_t*, const void*, DType, int64_t, float*);
}  // namespace mumoe::cpu::scalar

namespace mumoe::cpu {
const CpuKernels kScalarKernels = {
    "scalar",           scalar::col_sumsq,   scalar::row_scores,   scalar::row_select,
    scalar::emit_mask,  scalar::emit_pruned, scalar::emit_compact, scalar::apply_mask,
    scalar::expand_compact, scalar::masked_dot, scalar::sparse_dot,
};
}  // namespace mumoe::cpu
