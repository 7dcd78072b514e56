"""A NaN or Inf in the weight raises ValueError naming `weight` from every op that selects, on every
CPU path (and the GPU when there is one), for every dtype and every product path of wanda_linear
(small T, blocked, full GEMM, batched, padded); an overflowing score of finite inputs is no error."""
import pytest
import torch

import mumoe_ext
from mumoe_ext import reference
from helpers_ops import BACKENDS, DTYPES, DTYPE_IDS, assert_masks_equal, on_backend

nan, inf = float("nan"), float("inf")
POISONS = [nan, inf, -inf]
POISON_IDS = ["nan", "inf", "-inf"]
# T = 1 / 5: small-T kernels; 40: the blocked prefill; 700 x 300: past the blocked size, full GEMM.
LINEAR_CASES = [((1, 33), None), ((5, 33), None), ((40, 65), None), ((700, 300), None),
                ((3, 9, 33), None), ((2, 12, 40), "padded")]
LINEAR_IDS = ["T1", "T5", "T40", "T700", "B3", "B2-padded"]


def _poisoned(d_out, d_in, dtype, value, where):
    w = torch.randn(d_out, d_in).to(dtype)
    w[where] = value
    return w


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("poison", POISONS, ids=POISON_IDS)
@pytest.mark.parametrize("op", ["wanda_mask", "wanda_prune", "prune_rows"])
def test_selection_ops_refuse_non_finite_weight(op, poison, dtype, backend):
    # last row, last column: the check must cover every row and the vector tails
    w = _poisoned(7, 37, dtype, poison, (6, 36))
    norms = torch.rand(37) + 0.5
    twin = "wanda_mask" if op == "wanda_prune" else op  # the twin of wanda_prune is wanda_mask
    with pytest.raises(ValueError, match="weight contains NaN or Inf"):
        getattr(reference, twin)(w, norms, 0.5)
    with on_backend(backend) as dev:
        with pytest.raises(ValueError, match=f"{op}: weight contains NaN or Inf"):
            getattr(mumoe_ext, op)(w.to(dev), norms.to(dev), 0.5)
        with pytest.raises(ValueError, match="weight contains NaN or Inf"):  # batched norms
            getattr(mumoe_ext, op)(w.to(dev), torch.stack([norms, norms]).to(dev), 0.5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("poison", POISONS, ids=POISON_IDS)
@pytest.mark.parametrize("shape,kind", LINEAR_CASES, ids=LINEAR_IDS)
@pytest.mark.parametrize("op", ["wanda_linear", "wanda_linear_compact"])
def test_wanda_linear_refuses_non_finite_weight(op, shape, kind, poison, dtype, backend):
    d_in = shape[-1]
    x = torch.randn(*shape).to(dtype)
    w = _poisoned(9, d_in, dtype, poison, (4, d_in // 2))
    am = None
    if kind == "padded":
        am = torch.ones(shape[:-1], dtype=torch.bool)
        am[0, :3] = False
    with on_backend(backend) as dev:
        args = (x.to(dev), w.to(dev), None, 0.5, None if am is None else am.to(dev))
        with pytest.raises(ValueError, match=f"{op}: weight contains NaN or Inf"):
            getattr(mumoe_ext, op)(*args)
        with pytest.raises(ValueError, match=f"{op}: weight contains NaN or Inf"):
            getattr(torch.ops.mumoe, op)(*args[:3], 5, args[4])  # the C++ op behind it, too


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_finite_weight_with_zero_norm_is_refused(backend):
    # inf * 0 = NaN score: still the weight's fault, still refused
    w = torch.randn(3, 20)
    w[1, 4] = inf
    norms = torch.rand(20) + 0.5
    norms[4] = 0.0
    with on_backend(backend) as dev, pytest.raises(ValueError, match="wanda_mask: weight"):
        mumoe_ext.wanda_mask(w.to(dev), norms.to(dev), 0.5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_overflowing_scores_of_finite_inputs_select_like_the_reference(dtype, backend):
    # |w| * n > FLT_MAX: the score is +Inf in fp32 on both sides, ties broken by column as usual
    w = torch.randn(4, 50).to(dtype) * 1e30
    w[:, ::3] = 3e38
    norms = torch.rand(50) * 1e10 + 1.0
    want = reference.wanda_mask(w, norms, 0.5)
    with on_backend(backend) as dev:
        assert_masks_equal(mumoe_ext.wanda_mask(w.to(dev), norms.to(dev), 0.5), want)


def test_density_one_is_f_linear_even_with_non_finite_weight():
    # documented rule: density 1 selects nothing, so it is F.linear exactly (NaN propagates)
    x, w = torch.randn(3, 8), torch.randn(4, 8)
    w[0, 0] = nan
    y = mumoe_ext.wanda_linear(x, w, None, 1.0)
    assert torch.isnan(y[:, 0]).all() and torch.isfinite(y[:, 1:]).all()


def test_masked_out_non_finite_weight_does_not_leak_into_masked_linear():
    x, w = torch.randn(3, 8), torch.randn(4, 8)
    w[1, 2] = nan
    mask = torch.ones(4, 8, dtype=torch.bool)
    mask[1, 2] = False
    for T in (3, 20):  # small-T kernel and the GEMM path
        xt = torch.randn(T, 8)
        y = mumoe_ext.masked_linear(xt, w, mask)
        assert torch.isfinite(y).all()
        torch.testing.assert_close(y, reference.masked_linear(xt, w, mask))
