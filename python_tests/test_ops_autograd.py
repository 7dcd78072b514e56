"""Gradients of the differentiable ops (masked_linear, sparse_linear, wanda_linear,
wanda_linear_compact's y) w.r.t. x, the kept weights and the bias, the mask held constant.

- the backward formula (mumoe_ext.autograd.masked_linear_grads) is gradchecked in fp64 against
  finite differences of the spec's product x @ (W ⊙ M)ᵀ + b (the ops themselves take no fp64);
- every op's gradients on every backend and dtype equal the reference twin's torch autograd,
  computed in fp32 from the same inputs, within the product tolerances of helpers_ops;
- opcheck with inputs that require grad (autograd registration, AOT dispatch with backward), and
  torch.compile's backward matches eager.
"""
import math

import pytest
import torch

import mumoe_ext
from mumoe_ext import reference
from mumoe_ext.autograd import masked_linear_grads
from helpers_ops import BACKENDS, DTYPES, DTYPE_IDS, FP32_REORDER, OUTPUT_ULP, on_backend

OPS = torch.ops.mumoe


# ---- fp64 gradcheck of the formula --------------------------------------------------------------

class _SpecProduct(torch.autograd.Function):
    """Forward: the spec's product written out in torch (fp64 works); backward: ours."""

    @staticmethod
    def forward(ctx, x, w, b, mask):
        ctx.save_for_backward(x, w, mask)
        wm = torch.where(mask, w, 0.0)
        y = torch.matmul(x, wm.transpose(-1, -2))
        return y + b

    @staticmethod
    def backward(ctx, g):
        x, w, mask = ctx.saved_tensors
        dx, dw, db = masked_linear_grads(g, x, w, mask, ctx.needs_input_grad[:3])
        return dx, dw, db, None


@pytest.mark.parametrize("x_shape,mask_batched", [((5, 9), False), ((3, 4, 9), False), ((3, 4, 9), True)],
                         ids=["2d", "3d-shared-mask", "3d-mask-per-prompt"])
def test_gradcheck_fp64_backward_formula(x_shape, mask_batched):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*x_shape, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(6, 9, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(6, dtype=torch.float64, generator=g, requires_grad=True)
    lead = (x_shape[0],) if mask_batched else ()
    mask = torch.rand(*lead, 6, 9, generator=g) < 0.5
    assert torch.autograd.gradcheck(_SpecProduct.apply, (x, w, b, mask))
    assert torch.autograd.gradgradcheck(_SpecProduct.apply, (x, w, b, mask))


def test_pruned_entries_get_zero_weight_gradient():
    x, w = torch.randn(7, 12), torch.randn(5, 12, requires_grad=True)
    y = mumoe_ext.wanda_linear(x, w, None, 0.25)
    y.square().sum().backward()
    mask = reference.wanda_mask(w.detach(), reference.col_norms(x), 0.25)
    assert bool((w.grad[~mask] == 0).all()) and bool((w.grad[mask] != 0).any())


# ---- every op against the reference's autograd -------------------------------------------------

def _grads(fn, tensors):
    leaves = [t.detach().clone().requires_grad_() if t is not None else None for t in tensors]
    y = fn(*leaves)
    torch.manual_seed(1)
    g = torch.randn(y.shape).to(y.dtype)
    y.backward(g.to(y.device))
    return g, [None if t is None else t.grad for t in leaves]


def _assert_grad_close(got, want, mag, n_terms, dtype, name):
    """want: fp32 reference gradient; mag: the same gradient of |inputs| (a bound on |terms|)."""
    assert got is not None, f"{name}: no gradient"
    assert got.dtype == dtype and got.shape == want.shape, (name, got.dtype, got.shape, want.shape)
    ulp = OUTPUT_ULP[dtype]
    # fp32 reorder of the sums as in assert_linear_close; 16-bit: the op's result is rounded once and
    # its inputs (16-bit g, x) give the same products, but torch may round partial sums: 4 ulp of mag.
    bound = FP32_REORDER * math.sqrt(n_terms) * mag + 4 * ulp * mag + ulp * want.abs()
    err = (got.cpu().float() - want).abs()
    assert bool((err <= bound).all()), f"{name}: max err {err.max().item():.3g} ({dtype})"


CASES = [((None, 6, 20), 7, True), ((3, 5, 33), 4, True), ((2, 12, 17), 9, False), ((None, 1, 40), 5, False)]
CASE_IDS = ["T6", "B3", "B2-T12-nobias", "T1-nobias"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("op", ["masked_linear", "sparse_linear", "wanda_linear", "wanda_linear_compact"])
def test_grads_match_reference_autograd(op, case, dtype, backend):
    (B, T, d_in), d_out, has_bias = case
    torch.manual_seed(0)
    lead = () if B is None else (B,)
    x = torch.randn(*lead, T, d_in).to(dtype)
    w = torch.randn(d_out, d_in).to(dtype)
    b = torch.randn(d_out).to(dtype) if has_bias else None
    density = 0.5
    norms = reference.col_norms(x)
    mask = reference.wanda_mask(w, norms, density)  # (B?, d_out, d_in)
    rs = reference.prune_rows(w, norms, density)

    # what the reference's autograd gives, in fp32 from the same (exactly representable) inputs
    def ref_fn(x_, w_, b_):
        return reference.masked_linear(x_, w_, mask, b_)
    f32 = [t.float() if t is not None else None for t in (x, w, b)]
    g, want = _grads(ref_fn, f32)
    mags = masked_linear_grads(g.float().abs(), x.float().abs(), w.float().abs(), mask)

    with on_backend(backend) as dev:
        xd, wd, bd = (None if t is None else t.to(dev) for t in (x, w, b))
        if op == "masked_linear":
            g_, got = _grads(lambda x_, w_, b_: mumoe_ext.masked_linear(x_, w_, mask.to(dev), b_), (xd, wd, bd))
        elif op == "wanda_linear":
            g_, got = _grads(lambda x_, w_, b_: mumoe_ext.wanda_linear(x_, w_, b_, density), (xd, wd, bd))
        elif op == "wanda_linear_compact":
            g_, got = _grads(lambda x_, w_, b_: mumoe_ext.wanda_linear_compact(x_, w_, b_, density)[0],
                             (xd, wd, bd))
        else:
            bm, vals = rs.bitmap.to(dev), rs.values.to(dev)
            g_, got = _grads(lambda x_, v_, b_: mumoe_ext.sparse_linear(x_, mumoe_ext.RowSparse(bm, v_, d_in), b_),
                             (xd, vals, bd))
    n_tok = x.numel() // d_in
    _assert_grad_close(got[0], want[0], mags[0], d_out, dtype, "dx")
    if op == "sparse_linear":
        # values' gradient: per prompt for a batched RowSparse, the kept entries of dW of that prompt
        if mask.dim() == 2:
            want_v = want[1][mask].reshape(d_out, -1)
            mag_v = mags[1][mask].reshape(d_out, -1)
            n = n_tok
        else:
            per = torch.matmul(g.float().transpose(-1, -2), x.float())
            per_mag = torch.matmul(g.float().abs().transpose(-1, -2), x.float().abs())
            want_v, mag_v, n = per[mask].reshape(B, d_out, -1), per_mag[mask].reshape(B, d_out, -1), T
        _assert_grad_close(got[1], want_v, mag_v, n, dtype, "d values")
    else:
        _assert_grad_close(got[1], want[1], mags[1], n_tok, dtype, "dW")
        assert bool((got[1].cpu()[~mask.reshape(-1, d_out, d_in).any(0)] == 0).all()), "pruned dW not 0"
    if has_bias:
        _assert_grad_close(got[2], want[2], mags[2], n_tok, dtype, "db")


@pytest.mark.parametrize("backend", BACKENDS)
def test_padded_prompts_grads_match_reference(backend):
    torch.manual_seed(0)
    x, w, b = torch.randn(2, 10, 24), torch.randn(6, 24), torch.randn(6)
    am = torch.ones(2, 10, dtype=torch.bool)
    am[0, :4] = False
    g, want = _grads(lambda *t: reference.wanda_linear(*t, 0.5, am), (x, w, b))
    with on_backend(backend) as dev:
        _, got = _grads(lambda *t: mumoe_ext.wanda_linear(*t, 0.5, am.to(dev)), [t.to(dev) for t in (x, w, b)])
    for a, e in zip(got, want):
        torch.testing.assert_close(a.cpu(), e, rtol=1e-5, atol=1e-5)


def test_compact_outputs_are_not_differentiable():
    x, w = torch.randn(4, 16, requires_grad=True), torch.randn(3, 16, requires_grad=True)
    y, rs = mumoe_ext.wanda_linear_compact(x, w, None, 0.5)
    assert y.requires_grad and not rs.values.requires_grad and not rs.bitmap.requires_grad


def test_fp64_is_refused_clearly_even_with_grad():
    x = torch.randn(3, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 8, dtype=torch.float64, requires_grad=True)
    with pytest.raises(TypeError, match="wanda_linear: x must be float32, float16 or bfloat16"):
        mumoe_ext.wanda_linear(x, w, None, 0.5)


def test_no_autograd_warning_on_backward(recwarn):
    x, w = torch.randn(4, 16, requires_grad=True), torch.randn(3, 16, requires_grad=True)
    mumoe_ext.wanda_linear(x, w, None, 0.5).sum().backward()
    assert not [r for r in recwarn if "autograd kernel was not registered" in str(r.message)]


# ---- opcheck and torch.compile with gradients ----------------------------------------------------

def _grad_samples():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 24, requires_grad=True)
    w = torch.randn(6, 24, requires_grad=True)
    b = torch.randn(6, requires_grad=True)
    norms = mumoe_ext.col_norms(x.detach())
    mask = mumoe_ext.wanda_mask(w.detach(), norms, 0.5)
    bitmap, values = OPS.prune_rows(w.detach(), norms, 12)
    values.requires_grad_()
    return [("masked_linear", (x, w, mask, b)), ("masked_linear", (x[0], w, mask[0], None)),
            ("sparse_linear", (x, bitmap, values, 24, b)),
            ("wanda_linear", (x, w, b, 12, None)), ("wanda_linear", (x[0], w, None, 12, None)),
            ("wanda_linear_compact", (x, w, b, 12, None))]


@pytest.mark.parametrize("i", range(6), ids=[n for n, _ in _grad_samples()])
def test_opcheck_with_grad(i):
    name, args = _grad_samples()[i]
    torch.library.opcheck(getattr(OPS, name).default, args)


def test_compile_backward_matches_eager():
    torch._dynamo.reset()
    torch.manual_seed(0)
    x, w, b = torch.randn(2, 9, 32), torch.randn(16, 32), torch.randn(16)

    def loss(x, w, b):
        return mumoe_ext.wanda_linear(x, w, b, 0.5).square().sum()
    _, eager = _grads(loss, (x, w, b))
    _, compiled = _grads(torch.compile(loss, backend="aot_eager", fullgraph=True), (x, w, b))
    for e, c in zip(eager, compiled):
        torch.testing.assert_close(c, e, rtol=1e-5, atol=1e-5)
