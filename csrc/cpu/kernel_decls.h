// Declarations of one instruction set's kernels and its table, so every ISA folder lists the
// same signatures once: put MUMOE_DECLARE_CPU_KERNELS() inside `namespace mumoe::cpu::<isa>`.
#pragma once
#include "cpu/kernels.h"

#define MUMOE_DECLARE_CPU_KERNELS()                                                               \
  void col_sumsq(const void*, DType, int64_t, int64_t, int64_t, const uint8_t*, const float*,     \
                 float*);                                                                         \
  void col_sum(const void*, DType, int64_t, int64_t, int64_t, const uint8_t*, float*);            \
  void row_scores(const void*, DType, const float*, int64_t, uint32_t*);                          \
  RowThreshold row_select(const uint32_t*, int64_t, int64_t, uint32_t, uint32_t*);                \
  void emit_mask(const uint32_t*, int64_t, RowThreshold, uint8_t*);                               \
  void emit_pruned(const void*, DType, const uint32_t*, int64_t, RowThreshold, void*, bool);      \
  void emit_compact(const void*, DType, const uint32_t*, int64_t, RowThreshold, int64_t,          \
                    uint32_t*, void*);                                                            \
  void apply_mask(const void*, DType, const uint8_t*, int64_t, void*);                            \
  void expand_compact(const uint32_t*, const void*, DType, int64_t, int64_t, void*);              \
  void masked_dot(const float*, int64_t, const void*, DType, const uint8_t*, int64_t, float*);   \
  void sparse_dot(const float*, int64_t, const uint32_t*, const void*, DType, int64_t, int64_t,  \
                  float*);                                                                        \
  float pruned_dot(const void*, DType, const uint32_t*, int64_t, RowThreshold, const float*);     \
  float emit_compact_dot(const void*, DType, const uint32_t*, int64_t, RowThreshold, int64_t,      \
                         uint32_t*, void*, const float*);                                         \
  void add_cols(void*, DType, int64_t, int64_t, int64_t, const float*);

// The table of the kernels declared in namespace `ns`, named `name` for dispatch (optional kernels
// unset: a table that has them fills them in).
#define MUMOE_CPU_KERNEL_TABLE(ns, name)                                                      \
  CpuKernels{name,          ns::col_sumsq,      ns::col_sum,    ns::row_scores, ns::row_select, \
             ns::emit_mask,   ns::emit_pruned,    ns::emit_compact, ns::pruned_dot,            \
             ns::emit_compact_dot,                                                             \
             ns::apply_mask,  ns::expand_compact, ns::masked_dot, ns::sparse_dot, ns::add_cols,     \
             nullptr,         nullptr,            nullptr,         nullptr,                       \
             nullptr,         nullptr,            nullptr}
