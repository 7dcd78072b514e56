// N:M selection of one scored row (per-prompt N:M sparsity): in every group of m consecutive
// columns keep the n = k*m/d largest keys, ties to the lower column. Flag-free, portable code:
// the keys come from the ISA's row_scores, the group step is the same on every path.
#pragma once
#include <cstdint>

#include "cpu/kernels.h"

namespace mumoe::cpu {

// Rewrites keys to 1 (kept) / 0 (pruned) so the ISA's emit_* kernels write the selection with
// the returned threshold {tau = 1, ties_kept = k}: exactly the kept keys equal tau, none exceed it.
RowThreshold nm_select(uint32_t* keys, int64_t d, int64_t k, int64_t m);

}  // namespace mumoe::cpu
