"""masked_linear and wanda_linear vs the reference: small-T (own GEMV, T <= 8) and large-T (masked
weight + vendor GEMM) paths, per-prompt masks for batches, bias, and density = 1 bit-identical to
F.linear. The CPU wanda_linear has three paths (fused per row for T <= 8, blocks of rows for x up
to 8 MiB, the composite above): test_wanda_linear_cpu_paths reaches each with several blocks."""
import pytest
import torch
import torch.nn.functional as F

import mumoe_ext
from mumoe_ext import reference
from helpers_ops import (BACKENDS, DENSITIES, DENSITY_IDS, DTYPE_IDS, DTYPES, SHAPE_IDS, SHAPES,
                         assert_linear_close, make_weight, on_backend, to)

# (batch, T): T = 1 (decode) and T = 8 (the last small-T GEMV size), T = 9 (the first vendor-GEMM
# size) and 33; one prompt or a batch with a mask per prompt.
TOKENS = [(None, 1), (3, 8), (None, 9), (2, 33)]
TOKEN_IDS = ["T1", "B3xT8", "T9", "B2xT33"]


def _lead(batch):
    return () if batch is None else (batch,)


def _masked(w, mask):
    return torch.where(mask, w, torch.zeros((), dtype=w.dtype))


def _integer_x(batch, T, d_in, dtype):
    # Small integers: every token's squares sum exactly in fp32 whatever the order, so the kernel's
    # norms equal the reference's bit for bit and so do the masks.
    return torch.randint(-4, 5, (*_lead(batch), T, d_in)).to(dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch,T", TOKENS, ids=TOKEN_IDS)
@pytest.mark.parametrize("density", DENSITIES, ids=DENSITY_IDS)
@pytest.mark.parametrize("d_out,d_in", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_masked_linear_matches_reference(dtype, d_out, d_in, density, batch, T, backend):
    x = torch.randn(*_lead(batch), T, d_in).to(dtype)
    w = make_weight(d_out, d_in, dtype)
    b = torch.randn(d_out).to(dtype)
    mask = reference.wanda_mask(w, reference.col_norms(x), density)  # per prompt when batched
    want = reference.masked_linear(x, w, mask, b)
    with on_backend(backend) as dev:
        got = mumoe_ext.masked_linear(*to(dev, x, w, mask, b))
    assert_linear_close(got, want, x, _masked(w, mask), b)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch,T", TOKENS, ids=TOKEN_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_masked_linear_without_bias_and_shared_mask(dtype, batch, T, backend):
    x = torch.randn(*_lead(batch), T, 37).to(dtype)
    w = make_weight(11, 37, dtype)
    mask = torch.rand(11, 37) < 0.4  # any bool mask, one for every prompt
    want = reference.masked_linear(x, w, mask)
    with on_backend(backend) as dev:
        got = mumoe_ext.masked_linear(*to(dev, x, w, mask))
    assert_linear_close(got, want, x, _masked(w, mask))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("T", [1, 8, 9, 64], ids=["T1", "T8", "T9", "T64"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_masked_linear_ignores_non_finite_pruned_weights(dtype, T, backend):
    # Pruned weights are absent, not multiplied by zero: Inf/NaN there must not reach y.
    x = torch.randn(T, 40).to(dtype)
    w = make_weight(6, 40, dtype)
    mask = torch.rand(6, 40) < 0.5
    w_poisoned = w.clone()
    w_poisoned[~mask] = float("nan")
    w_poisoned[~mask & (torch.rand(6, 40) < 0.5)] = float("inf")
    want = reference.masked_linear(x, w, mask)
    with on_backend(backend) as dev:
        got = mumoe_ext.masked_linear(*to(dev, x, w_poisoned, mask))
    assert_linear_close(got, want, x, _masked(w, mask))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("T", [1, 9], ids=["T1", "T9"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_masked_linear_non_contiguous_inputs(dtype, T, backend):
    x = torch.randn(2, 2 * T, 90).to(dtype)[:, ::2, ::3]  # (2, T, 30), strided
    w = make_weight(30, 13, dtype).t()                     # (13, 30), column-major
    mask = (torch.rand(2, 30, 13) < 0.5).transpose(1, 2)   # (2, 13, 30), strided
    b = torch.randn(26).to(dtype)[::2]
    want = reference.masked_linear(x.contiguous(), w.contiguous(), mask.contiguous(), b.contiguous())
    with on_backend(backend) as dev:
        got = mumoe_ext.masked_linear(*to(dev, x, w, mask, b))
    assert_linear_close(got, want, x, _masked(w, mask), b)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch,T", TOKENS, ids=TOKEN_IDS)
@pytest.mark.parametrize("density", DENSITIES, ids=DENSITY_IDS)
@pytest.mark.parametrize("d_out,d_in", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_wanda_linear_matches_reference(dtype, d_out, d_in, density, batch, T, backend):
    # The kernel's norms may differ from the reference's in the last bit (another summation order,
    # another sqrt), which can flip a near-tie: the expected product is the reference's under the
    # kernel's own norms, and those norms are checked against the reference's.
    x = torch.randn(*_lead(batch), T, d_in).to(dtype)
    w = make_weight(d_out, d_in, dtype)
    b = torch.randn(d_out).to(dtype)
    with on_backend(backend) as dev:
        norms = mumoe_ext.col_norms(x.to(dev)).cpu()
        got = mumoe_ext.wanda_linear(*to(dev, x, w, b), density=density)
    torch.testing.assert_close(norms, reference.col_norms(x), rtol=2 * T * 2**-23, atol=0)
    mask = reference.wanda_mask(w, norms, density)
    assert_linear_close(got, reference.masked_linear(x, w, mask, b), x, _masked(w, mask), b)


CPU_BACKENDS = [p for p in BACKENDS if p.values[0][0] == "cpu"]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("batch,T", [(None, 1), (2, 33)], ids=["T1", "B2xT33"])
@pytest.mark.parametrize("density", [0.01, 0.5, 0.8], ids=["rho0.01", "rho0.5", "rho0.8"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_wanda_linear_equals_reference_twin_on_exact_norms(dtype, density, batch, T, backend):
    # Small-integer x: squares sum exactly in any order, so on the CPU the kernel's norms are the
    # twin's up to the final fp32 sqrt; the target is reference.wanda_linear itself.
    x = _integer_x(batch, T, 257, dtype)
    w = make_weight(19, 257, dtype)
    b = torch.randn(19).to(dtype)
    want = reference.wanda_linear(x, w, b, density)
    mask = reference.wanda_mask(w, reference.col_norms(x), density)
    with on_backend(backend) as dev:
        got = mumoe_ext.wanda_linear(*to(dev, x, w, b), density=density)
    assert_linear_close(got, want, x, _masked(w, mask), b)


# (batch, T, d_out, d_in): many rows fused per row; several blocks of rows (64 fp32 / 128 16-bit
# rows per block at d_in = 4096), the last one short, with a mask per prompt; x over 8 MiB in every
# dtype (the composite path).
CPU_PATHS = [(None, 5, 150, 4096), (2, 20, 300, 4096), (None, 1100, 24, 4096)]
CPU_PATH_IDS = ["fused-T5", "blocked-B2xT20", "composite-T1100"]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("batch,T,d_out,d_in", CPU_PATHS, ids=CPU_PATH_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_wanda_linear_cpu_paths(dtype, batch, T, d_out, d_in, backend):
    x = _integer_x(batch, T, d_in, dtype)
    w = make_weight(d_out, d_in, dtype)
    b = torch.randn(d_out).to(dtype)
    want = reference.wanda_linear(x, w, b, 0.5)
    mask = reference.wanda_mask(w, reference.col_norms(x), 0.5)
    with on_backend(backend):
        got = mumoe_ext.wanda_linear(x, w, b, density=0.5)
    assert got.shape == want.shape
    assert_linear_close(got, want, x, _masked(w, mask), b)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("T", [1, 6, 12], ids=["T1", "T6", "T12"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_wanda_linear_attention_mask(dtype, T, backend):
    # Padding must not vote in the norms (hence in the mask); its rows are still computed.
    x = _integer_x(2, T, 48, dtype)
    w = make_weight(9, 48, dtype)
    am = torch.ones(2, T, dtype=torch.int64)
    am[1, : T // 2] = 0  # left padding in the second prompt
    x[1, : T // 2] = 100.0  # loud padding: would dominate the norms if it counted
    want = reference.wanda_linear(x, w, None, 0.5, am)
    mask = reference.wanda_mask(w, reference.col_norms(x, am), 0.5)
    with on_backend(backend) as dev:
        got = mumoe_ext.wanda_linear(*to(dev, x, w), density=0.5, attention_mask=am.to(dev))
    assert_linear_close(got, want, x, _masked(w, mask))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch,T", TOKENS, ids=TOKEN_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
def test_wanda_linear_density_one_is_f_linear_bit_for_bit(with_bias, dtype, batch, T, backend):
    x = torch.randn(*_lead(batch), T, 37).to(dtype)
    w = make_weight(13, 37, dtype)
    b = torch.randn(13).to(dtype) if with_bias else None
    with on_backend(backend) as dev:
        xd, wd, bd = to(dev, x, w, b)
        want = F.linear(xd, wd, bd)
        got = mumoe_ext.wanda_linear(xd, wd, bd, density=1.0)
        got_op = torch.ops.mumoe.wanda_linear(xd, wd, bd, 37, None)  # k = d_in through the op
    assert torch.equal(got, want)
    assert torch.equal(got_op, want)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_wanda_linear_large_layer(dtype, backend):
    # One 4096-wide layer with a 128-token prompt (prefill) and one decode token through masked_linear.
    x = _integer_x(None, 128, 4096, dtype)
    w = make_weight(64, 4096, dtype)
    mask = reference.wanda_mask(w, reference.col_norms(x), 0.5)
    want = reference.wanda_linear(x, w, None, 0.5)
    with on_backend(backend) as dev:
        got = mumoe_ext.wanda_linear(*to(dev, x, w), density=0.5)
        got_decode = mumoe_ext.masked_linear(*to(dev, x[:1], w, mask))
    assert_linear_close(got, want, x, _masked(w, mask))
    assert_linear_close(got_decode, reference.masked_linear(x[:1], w, mask), x[:1], _masked(w, mask))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("T", [1, 12], ids=["T1", "T12"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_wanda_linear_non_contiguous_inputs(dtype, T, backend):
    x = _integer_x(None, 50, T, dtype).t()     # (T, 50), column-major
    w = make_weight(50, 14, dtype).t()          # (14, 50), column-major
    b = torch.randn(28).to(dtype)[::2]
    am = torch.ones(T, 2, dtype=torch.bool)[:, 0]
    want = reference.wanda_linear(x.contiguous(), w.contiguous(), b.contiguous(), 0.5)
    mask = reference.wanda_mask(w, reference.col_norms(x.contiguous()), 0.5)
    with on_backend(backend) as dev:
        got = mumoe_ext.wanda_linear(*to(dev, x, w, b), density=0.5, attention_mask=am.to(dev))
    assert_linear_close(got, want, x, _masked(w, mask), b)
