"""col_norms vs reference.col_norms: per-prompt fp32 column norms, attention masks, padding."""
import pytest
import torch

import mumoe_ext
from mumoe_ext import reference
from helpers_ops import (BACKENDS, BATCH_IDS, BATCHES, DTYPE_IDS, DTYPES, lead, make_x, on_backend,
                         to)

# (T, d): one token, a few, more than a vector width of tokens; d as in SHAPES.
NORM_SHAPES = [(1, 1), (1, 7), (5, 17), (3, 33), (9, 37), (4, 1000), (2, 4096), (40, 65)]
NORM_SHAPE_IDS = [f"T{t}xd{d}" for t, d in NORM_SHAPES]


def assert_norms_close(got, want, T):
    # A sum of T non-negative fp32 squares in another order: at most ~T ulp apart, and the inputs
    # are exact in fp32 whatever their dtype, so no dtype-dependent term.
    got = got.cpu()
    assert got.dtype == torch.float32 and got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=2 * T * torch.finfo(torch.float32).eps, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch", BATCHES, ids=BATCH_IDS)
@pytest.mark.parametrize("T,d", NORM_SHAPES, ids=NORM_SHAPE_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_col_norms_matches_reference(dtype, T, d, batch, backend):
    x = make_x(batch, T, d, dtype)
    want = reference.col_norms(x)
    with on_backend(backend) as dev:
        got = mumoe_ext.col_norms(x.to(dev))
    assert got.shape == (*lead(batch), d)
    assert_norms_close(got, want, T)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_col_norms_exact_on_small_integers(dtype, backend):
    # Squares of small integers sum exactly in fp32 in any order, so the norms are bit-exact up to
    # the final sqrt: the correctly rounded one, or torch's own fp32 sqrt on that device (its CPU
    # sqrt is not always correctly rounded: sqrt(162) comes out one ulp low).
    x = torch.randint(-6, 7, (3, 11, 45)).to(dtype)
    sumsq = (x.double() ** 2).sum(-2)
    assert torch.equal(reference.col_norms(x), sumsq.float().sqrt())
    exact = sumsq.sqrt().float()  # a double sqrt rounded to fp32 is the correctly rounded fp32 sqrt
    with on_backend(backend) as dev:
        got = mumoe_ext.col_norms(x.to(dev)).cpu()
        torch_sqrt = sumsq.float().to(dev).sqrt().cpu()
    assert bool(((got == exact) | (got == torch_sqrt)).all())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_col_norms_accumulate_in_fp32(dtype, backend):
    # 300^2 * 40 = 3.6e6 overflows fp16 (max 65504): the sum must not be kept in the input dtype.
    x = torch.full((40, 9), 300.0, dtype=dtype)
    with on_backend(backend) as dev:
        got = mumoe_ext.col_norms(x.to(dev)).cpu()
    torch.testing.assert_close(got, torch.full((9,), 300.0 * 40**0.5), rtol=1e-6, atol=0)


MASK_KINDS = ["bool", "int64", "int32", "uint8"]


def _attention_mask(kind, shape, valid):
    m = torch.zeros(shape, dtype=torch.bool)
    for idx, n in valid:
        m[idx][:n] = True
    return m if kind == "bool" else m.to(getattr(torch, kind))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_col_norms_attention_mask_1d(dtype, kind, backend):
    T, d = 7, 37
    x = make_x(None, T, d, dtype)
    am = (torch.tensor([1, 1, 0, 1, 1, 0, 0]) != 0)
    am = am if kind == "bool" else am.to(getattr(torch, kind))
    want = reference.col_norms(x, am)
    assert_norms_close(reference.col_norms(x[am.bool()]), want, T)
    with on_backend(backend) as dev:
        got = mumoe_ext.col_norms(*to(dev, x, am))
    assert_norms_close(got, want, T)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_col_norms_attention_mask_batched_right_and_left_padding(dtype, kind, backend):
    B, T, d = 3, 6, 33
    x = make_x(B, T, d, dtype)
    am = torch.tensor([[1, 1, 1, 1, 1, 1],     # no padding
                       [1, 1, 1, 0, 0, 0],     # right padding
                       [0, 0, 0, 0, 1, 1]])    # left padding (generation-style)
    am = am.bool() if kind == "bool" else am.to(getattr(torch, kind))
    want = reference.col_norms(x, am)
    for b in range(B):  # each prompt's norms only see its own valid tokens
        assert_norms_close(reference.col_norms(x[b][am[b].bool()]), want[b], T)
    with on_backend(backend) as dev:
        got = mumoe_ext.col_norms(*to(dev, x, am))
    assert_norms_close(got, want, T)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("poison", [float("nan"), float("inf"), -float("inf"), "max"],
                         ids=["nan", "inf", "-inf", "dtype_max"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_col_norms_ignores_whatever_padding_holds(dtype, poison, backend):
    B, T, d = 2, 5, 40
    x = make_x(B, T, d, dtype)
    am = torch.tensor([[1, 1, 1, 0, 0], [0, 1, 1, 1, 1]], dtype=torch.bool)
    clean = reference.col_norms(x, am)
    # padded positions may hold anything: NaN, Inf, values whose squares overflow fp32
    x[~am] = torch.finfo(dtype).max if poison == "max" else poison
    want = reference.col_norms(x, am)
    assert torch.equal(want, clean)
    with on_backend(backend) as dev:
        got = mumoe_ext.col_norms(*to(dev, x, am))
    assert bool(torch.isfinite(got).all())
    assert_norms_close(got, want, T)


@pytest.mark.parametrize("backend", BACKENDS)
def test_col_norms_fully_masked_prompt_gives_zero_norms(backend):
    x = make_x(2, 4, 19, torch.float32)
    am = torch.tensor([[0, 0, 0, 0], [1, 1, 0, 1]])
    with on_backend(backend) as dev:
        got = mumoe_ext.col_norms(*to(dev, x, am)).cpu()
    assert torch.equal(got[0], torch.zeros(19))
    assert_norms_close(got, reference.col_norms(x, am), 4)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_col_norms_non_contiguous_x(dtype, backend):
    base = make_x(None, 37, 12, dtype)
    x = base.t()  # (12 tokens, 37 features), column-major
    assert not x.is_contiguous()
    strided = make_x(2, 8, 70, dtype)[:, ::2, ::3]
    with on_backend(backend) as dev:
        got_t = mumoe_ext.col_norms(x.to(dev))
        got_s = mumoe_ext.col_norms(strided.to(dev))
    assert_norms_close(got_t, reference.col_norms(x.contiguous()), 12)
    assert_norms_close(got_s, reference.col_norms(strided.contiguous()), 4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_col_norms_zero_and_negative_zero_columns(backend):
    x = torch.randn(5, 10)
    x[:, 3] = 0.0
    x[:, 7] = -0.0
    with on_backend(backend) as dev:
        got = mumoe_ext.col_norms(x.to(dev)).cpu()
    assert got[3].item() == 0.0 and got[7].item() == 0.0
    assert not torch.signbit(got).any()
