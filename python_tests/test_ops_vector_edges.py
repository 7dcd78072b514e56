"""Row lengths at and around the SIMD widths (8 fp32 lanes in AVX2, 16 in AVX-512, 32 16-bit lanes,
32-bit bitmap words): the main/tail loop split of every CPU kernel, checked in one pass per length."""
import pytest
import torch

import mumoe_ext
from mumoe_ext import reference
from helpers_ops import (BACKENDS, DTYPE_IDS, DTYPES, assert_linear_close, assert_masks_equal,
                         make_weight, on_backend, to)

EDGE_D_INS = [2, 8, 9, 15, 16, 31, 32, 63, 64, 65, 127, 128, 129]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("d_in", EDGE_D_INS, ids=[f"d{d}" for d in EDGE_D_INS])
def test_every_op_at_vector_width_edges(d_in, dtype, backend):
    d_out = 5
    x = torch.randn(2, 3, d_in).to(dtype)        # small-T GEMV path
    x_long = torch.randn(2, 11, d_in).to(dtype)  # vendor-GEMM path
    w = make_weight(d_out, d_in, dtype)
    norms = reference.col_norms(x)
    for density in (0.2, 0.5):
        mask = reference.wanda_mask(w, norms, density)
        rs = reference.prune_rows(w, norms, density)
        w_eff = torch.where(mask, w, torch.zeros((), dtype=dtype))
        with on_backend(backend) as dev:
            got_norms = mumoe_ext.col_norms(x.to(dev)).cpu()
            got_mask = mumoe_ext.wanda_mask(*to(dev, w, norms), density)
            got_pruned = mumoe_ext.wanda_prune(*to(dev, w, norms), density).cpu()
            got_rs = mumoe_ext.prune_rows(*to(dev, w, norms), density)
            got_ml = mumoe_ext.masked_linear(*to(dev, x, w, mask))
            got_ml_long = mumoe_ext.masked_linear(*to(dev, x_long, w, mask))
            got_sl = mumoe_ext.sparse_linear(x.to(dev), rs.to(dev))
            got_sl_long = mumoe_ext.sparse_linear(x_long.to(dev), rs.to(dev))
        torch.testing.assert_close(got_norms, norms, rtol=8 * 2**-23, atol=0)
        assert_masks_equal(got_mask, mask)
        assert torch.equal(got_pruned, w_eff)
        assert torch.equal(got_rs.bitmap.cpu(), rs.bitmap) and torch.equal(got_rs.values.cpu(), rs.values)
        assert_linear_close(got_ml, reference.masked_linear(x, w, mask), x, w_eff)
        assert_linear_close(got_ml_long, reference.masked_linear(x_long, w, mask), x_long, w_eff)
        assert_linear_close(got_sl, reference.sparse_linear(x, rs), x, w_eff)
        assert_linear_close(got_sl_long, reference.sparse_linear(x_long, rs), x_long, w_eff)
