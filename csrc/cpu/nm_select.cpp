#include "cpu/nm_select.h"

#include <algorithm>
#include <numeric>
#include <vector>

namespace mumoe::cpu {
namespace {

// Rank of every key in its group (how many beat it: larger, or equal at a lower index) against n.
// O(M^2) compares with no branches; M > 0 unrolls it for the common group sizes, M = 0 takes the
// group size m (<= 32) at run time.
template <int M>
void rank_groups(uint32_t* keys, int64_t d, int64_t n, int64_t m = M) {
  for (int64_t base = 0; base < d; base += m) {
    int32_t g[M > 0 ? M : 32];  // keys never have the sign bit set: signed compares (SSE2 has only those)
    for (int64_t a = 0; a < m; ++a) g[a] = int32_t(keys[base + a]);
    for (int64_t a = 0; a < m; ++a) {
      int64_t rank = 0;
      for (int64_t b = 0; b < m; ++b) rank += (g[b] > g[a]) | ((g[b] == g[a]) & (b < a));
      keys[base + a] = rank < n ? 1u : 0u;
    }
  }
}

// Large groups: a stable descending sort of each group's columns, the first n kept.
void large_groups(uint32_t* keys, int64_t d, int64_t n, int64_t m) {
  std::vector<int64_t> idx(m);
  std::vector<uint32_t> g(m);
  for (int64_t base = 0; base < d; base += m) {
    std::copy(keys + base, keys + base + m, g.begin());
    std::iota(idx.begin(), idx.end(), int64_t(0));
    std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return g[a] > g[b]; });
    for (int64_t a = 0; a < m; ++a) keys[base + a] = 0u;
    for (int64_t a = 0; a < n; ++a) keys[base + idx[a]] = 1u;
  }
}

}  // namespace

RowThreshold nm_select(uint32_t* keys, int64_t d, int64_t k, int64_t m) {
  const int64_t n = k * m / d;
  switch (m) {
    case 2: rank_groups<2>(keys, d, n); break;
    case 4: rank_groups<4>(keys, d, n); break;
    case 8: rank_groups<8>(keys, d, n); break;
    case 16: rank_groups<16>(keys, d, n); break;
    default:
      if (m <= 32) rank_groups<0>(keys, d, n, m);
      else large_groups(keys, d, n, m);
  }
  return RowThreshold{1u, k};
}

}  // namespace mumoe::cpu
