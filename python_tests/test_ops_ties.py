"""Adversarial ties: the kept set must be the first k of a stable descending sort, exactly k per row,
whatever the ties. Checked on wanda_mask, wanda_prune and prune_rows' bitmap alike."""
import pytest
import torch

import mumoe_ext
from mumoe_ext import reference
from mumoe_ext.row_sparse import pack_bitmap
from helpers_ops import (BACKENDS, DENSITIES, DENSITY_IDS, DTYPE_IDS, DTYPES, assert_bitwise_equal,
                         assert_exactly_k_per_row, assert_masks_equal, keep_count, on_backend, to)

D_INS = [7, 16, 33, 129, 1000]


def _all_equal(d_out, d_in):
    return torch.full((d_out, d_in), 0.75), torch.full((d_in,), 2.0)


def _zero_weight_rows(d_out, d_in):
    w = torch.randn(d_out, d_in)
    w[::2] = 0.0
    return w, torch.rand(d_in) + 0.5


def _all_zero_norms(d_out, d_in):
    return torch.randn(d_out, d_in), torch.zeros(d_in)


def _some_zero_norms(d_out, d_in):
    n = torch.rand(d_in) + 0.5
    n[torch.rand(d_in) < 0.6] = 0.0  # more zeros than 1 - density leaves for low densities
    return torch.randn(d_out, d_in), n


def _quantized(d_out, d_in):
    # 7 distinct weights (-1.5 .. 1.5) and 3 distinct norms: huge tie groups at every threshold.
    w = torch.randint(-3, 4, (d_out, d_in)) / 2
    n = torch.randint(1, 4, (d_in,)).float()
    return w, n


def _quantized_unit_norms(d_out, d_in):
    return torch.randint(-3, 4, (d_out, d_in)) / 2, torch.ones(d_in)


def _negative_zero(d_out, d_in):
    # -0.0 must score like +0.0 (its sign bit would make it the largest key as raw bits).
    w = torch.randint(-2, 3, (d_out, d_in)).float()
    w[w == 0] = -0.0
    w[:, ::3] = -0.0
    n = torch.rand(d_in) + 0.5
    n[1::4] = -0.0
    return w, n


def _duplicated_columns(d_out, d_in):
    half = torch.randn(d_out, (d_in + 1) // 2)
    w = torch.cat([half, half], dim=1)[:, :d_in]
    n = torch.rand((d_in + 1) // 2) + 0.5
    return w, torch.cat([n, n])[:d_in]


def _mirrored_signs(d_out, d_in):
    # |w| equal for w and -w: sign must not break ties.
    half = torch.randn(d_out, (d_in + 1) // 2)
    return torch.cat([half, -half], dim=1)[:, :d_in], torch.ones(d_in)


def _ties_at_kth(d_out, d_in):
    # Every row: distinct large scores, then one tie group straddling the k-th position at 0.5.
    w = torch.rand(d_out, d_in) * 0.4
    k = keep_count(d_in, 0.5)
    lo, hi = max(0, k - 3), min(d_in, k + 3)
    w[:, lo:hi] = 0.5
    w[:, : max(0, lo - 1)] += 1.0
    perm = torch.randperm(d_in)
    return w[:, perm], torch.ones(d_in)


def _ties_at_kth_scaled_norms(d_out, d_in):
    # Equal scores from different (w, n) pairs: 0.5 * 4 == 1 * 2 == 2 * 1 exactly in fp32.
    w = torch.tensor([0.5, 1.0, 2.0, 0.25]).repeat(d_out, (d_in + 3) // 4)[:, :d_in]
    n = torch.tensor([4.0, 2.0, 1.0, 8.0]).repeat((d_in + 3) // 4)[:d_in]
    return w, n


def _tiny_scores(d_out, d_in):
    # Products that underflow to 0 or to fp32 subnormals, ordered by raw bits all the same.
    w = torch.randint(1, 4, (d_out, d_in)).float() * 1e-20
    n = torch.randint(1, 4, (d_in,)).float() * 1e-20
    return w, n


def _huge_scores(d_out, d_in):
    # |W| * n just below and at fp32 overflow: Inf scores are largest, ties between them too.
    w = torch.randint(1, 3, (d_out, d_in)).float() * 1e19
    n = torch.full((d_in,), 3e19)
    return w, n


CASES = [_all_equal, _zero_weight_rows, _all_zero_norms, _some_zero_norms, _quantized,
         _quantized_unit_norms, _negative_zero, _duplicated_columns, _mirrored_signs, _ties_at_kth,
         _ties_at_kth_scaled_norms, _tiny_scores, _huge_scores]
CASE_IDS = [c.__name__.lstrip("_") for c in CASES]


def _check(w, n, density, backend):
    want = reference.wanda_mask(w, n, density)
    assert_exactly_k_per_row(want, keep_count(w.shape[1], density))
    with on_backend(backend) as dev:
        wd, nd = to(dev, w, n)
        mask = mumoe_ext.wanda_mask(wd, nd, density)
        pruned = mumoe_ext.wanda_prune(wd, nd, density).cpu()
        rs = mumoe_ext.prune_rows(wd, nd, density)
    assert_masks_equal(mask, want)
    assert_bitwise_equal(pruned, torch.where(want, w, torch.zeros((), dtype=w.dtype)))
    assert torch.equal(rs.bitmap.cpu(), pack_bitmap(want))
    assert_bitwise_equal(rs.values, w.expand_as(want)[want].reshape(*want.shape[:-1], -1))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("density", DENSITIES, ids=DENSITY_IDS)
@pytest.mark.parametrize("d_in", D_INS, ids=[f"d{d}" for d in D_INS])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_ties_match_stable_sort(case, d_in, density, backend):
    w, n = case(5, d_in)
    if case in (_tiny_scores, _huge_scores):
        assert bool(torch.isfinite(n).all())
    _check(w, n, density, backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", [_quantized, _negative_zero, _ties_at_kth, _all_equal],
                         ids=["quantized", "negative_zero", "ties_at_kth", "all_equal"])
def test_ties_every_dtype_and_batched_norms(case, dtype, backend):
    w, n = case(6, 97)
    w = w.to(dtype)
    norms = torch.stack([n, torch.ones_like(n), torch.zeros_like(n)])  # three prompts
    _check(w, norms, 0.5, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ties_long_rows_quantized_bf16(backend):
    # A 4096-long row of 7 distinct values: each radix pass sees whole tie groups in one bucket.
    w = (torch.randint(-3, 4, (8, 4096)) / 2).to(torch.bfloat16)
    for density in (0.2, 0.5, 0.8):
        _check(w, torch.ones(4096), density, backend)
