"""wanda_mask and wanda_prune vs the stable-sort reference: exact masks, exactly k per row, per
prompt for batched norms, every dtype, odd sizes, every CPU path."""
import pytest
import torch

import mumoe_ext
from mumoe_ext import reference
from helpers_ops import (BACKENDS, BATCH_IDS, BATCHES, DENSITIES, DENSITY_IDS, DTYPE_IDS, DTYPES,
                         SHAPE_IDS, SHAPES, assert_exactly_k_per_row, assert_masks_equal,
                         keep_count, lead, make_norms, make_weight, on_backend, to)


def test_keep_count_convention():
    # k = d_in - floor(d_in * (1 - density)); never 0 kept, whatever the density.
    assert [keep_count(7, d) for d in DENSITIES] == [1, 2, 4, 6, 7]
    assert [keep_count(1, d) for d in DENSITIES] == [1, 1, 1, 1, 1]
    for d_in in (1, 7, 37, 1000):
        for density in DENSITIES:
            mask = mumoe_ext.wanda_mask(torch.ones(2, d_in), torch.ones(d_in), density)
            assert_exactly_k_per_row(mask, keep_count(d_in, density))


@pytest.mark.parametrize("d_in,density,k", [(1000, 0.8, 800), (10, 0.7, 7), (100, 0.9, 90),
                                             (4096, 0.5, 2048), (1000, 0.2, 200)],
                         ids=["1000-rho0.8", "10-rho0.7", "100-rho0.9", "4096-rho0.5", "1000-rho0.2"])
def test_keep_count_matches_wanda_sparsity_ratio(d_in, density, k):
    # Wanda prunes int(d_in * sparsity_ratio) with the user's sparsity (0.2 for density 0.8):
    # 1000 * 0.2 = 200. Computing 1 - 0.8 in binary first gives 0.19999999999999996 and
    # floor(199.99999999999997) = 199 pruned, one weight per row more than Wanda keeps.
    assert d_in - int(d_in * round(1.0 - density, 10)) == k
    mask = mumoe_ext.wanda_mask(torch.ones(1, d_in), torch.ones(d_in), density)
    assert int(mask.sum()) == k
    assert int(reference.wanda_mask(torch.ones(1, d_in), torch.ones(d_in), density).sum()) == k


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch", BATCHES, ids=BATCH_IDS)
@pytest.mark.parametrize("density", DENSITIES, ids=DENSITY_IDS)
@pytest.mark.parametrize("d_out,d_in", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_wanda_mask_matches_reference(dtype, d_out, d_in, density, batch, backend):
    w = make_weight(d_out, d_in, dtype)
    norms = make_norms(batch, d_in)
    want = reference.wanda_mask(w, norms, density)
    assert want.shape == (*lead(batch), d_out, d_in)
    assert_exactly_k_per_row(want, keep_count(d_in, density))
    with on_backend(backend) as dev:
        got = mumoe_ext.wanda_mask(*to(dev, w, norms), density)
    assert_masks_equal(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch", BATCHES, ids=BATCH_IDS)
@pytest.mark.parametrize("density", DENSITIES, ids=DENSITY_IDS)
@pytest.mark.parametrize("d_out,d_in", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_wanda_prune_matches_reference(dtype, d_out, d_in, density, batch, backend):
    w = make_weight(d_out, d_in, dtype)
    norms = make_norms(batch, d_in)
    mask = reference.wanda_mask(w, norms, density)
    want = torch.where(mask, w, torch.zeros((), dtype=dtype))
    with on_backend(backend) as dev:
        got = mumoe_ext.wanda_prune(*to(dev, w, norms), density).cpu()
    assert got.dtype == dtype and got.shape == want.shape
    assert torch.equal(got, want)  # kept weights copied bit for bit, the rest zero


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_wanda_mask_many_rows_across_threads(dtype, backend):
    # Enough rows for at::parallel_for to split them over both cores, with 4096-long rows.
    w = make_weight(256, 4096, dtype)
    norms = make_norms(2, 4096)
    want = reference.wanda_mask(w, norms, 0.5)
    with on_backend(backend) as dev:
        got = mumoe_ext.wanda_mask(*to(dev, w, norms), 0.5)
    assert_masks_equal(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("density", [0.2, 0.5], ids=["rho0.2", "rho0.5"])
def test_wanda_mask_batched_is_per_prompt(density, backend):
    # Each prompt of a batch gets the mask its own norms give, not a shared one.
    w = make_weight(9, 65, torch.float32)
    norms = make_norms(4, 65)
    with on_backend(backend) as dev:
        got = mumoe_ext.wanda_mask(*to(dev, w, norms), density).cpu()
        singles = [mumoe_ext.wanda_mask(*to(dev, w, norms[b]), density).cpu() for b in range(4)]
    for b in range(4):
        assert torch.equal(got[b], singles[b])
        assert torch.equal(got[b], reference.wanda_mask(w, norms[b], density))
    assert not torch.equal(got[0], got[1])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_selection_non_contiguous_weight_and_norms(dtype, backend):
    w = make_weight(40, 11, dtype).t()  # (11, 40) column-major
    norms = make_norms(None, 80)[::2]   # stride 2
    assert not w.is_contiguous() and not norms.is_contiguous()
    want = reference.wanda_mask(w.contiguous(), norms.contiguous(), 0.5)
    with on_backend(backend) as dev:
        got = mumoe_ext.wanda_mask(*to(dev, w, norms), 0.5)
        pruned = mumoe_ext.wanda_prune(*to(dev, w, norms), 0.5).cpu()
        rs = mumoe_ext.prune_rows(*to(dev, w, norms), 0.5)
    assert_masks_equal(got, want)
    assert torch.equal(pruned, torch.where(want, w, torch.zeros((), dtype=dtype)))
    want_rs = reference.prune_rows(w.contiguous(), norms.contiguous(), 0.5)
    assert torch.equal(rs.bitmap.cpu(), want_rs.bitmap) and torch.equal(rs.values.cpu(), want_rs.values)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("norm_dtype", [torch.float16, torch.bfloat16, torch.float64],
                         ids=["fp16", "bf16", "fp64"])
def test_wanda_mask_accepts_other_float_norms(norm_dtype, backend):
    # norms are scores' fp32 factors: other float dtypes are converted to fp32 first.
    w = make_weight(5, 37, torch.float32)
    norms = make_norms(None, 37).to(norm_dtype)
    want = reference.wanda_mask(w, norms.float(), 0.5)
    with on_backend(backend) as dev:
        got = mumoe_ext.wanda_mask(*to(dev, w, norms), 0.5)
    assert_masks_equal(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_wanda_scores_in_fp32_not_input_dtype(dtype, backend):
    # |W|*n in fp16 would overflow (60000 * 100 > 65504) and in bf16 would merge these two scores;
    # computed in fp32 they order correctly: column 1 wins.
    w = torch.tensor([[60000.0, 60000.0 + (32 if dtype == torch.float16 else 256)]], dtype=dtype)
    if dtype == torch.float32:
        w = torch.tensor([[60000.0, 60000.0078125]])
    norms = torch.tensor([100.0, 100.0])
    want = reference.wanda_mask(w, norms, 0.5)
    assert want.tolist() == [[False, True]]
    with on_backend(backend) as dev:
        got = mumoe_ext.wanda_mask(*to(dev, w, norms), 0.5)
    assert_masks_equal(got, want)
