// The AMX tile layout of the prefill's block GEMM (gemm_amx_avx512.cpp), shared with the
// measurement in tools/amx_overlap.cpp: palette 1, tiles 0-7 all 16 rows of 64 bytes, used as
// C 0-3 (16 x 16 fp32), A 4-5, B 6-7. Plain data: no intrinsics, so any file may include it.
#pragma once
#include <cstdint>

namespace mumoe::cpu::avx512 {

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
  TileConfig() {
    for (int i = 0; i < 8; ++i) rows[i] = 16, colsb[i] = 64;
  }
};

}  // namespace mumoe::cpu::avx512
