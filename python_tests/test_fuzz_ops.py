"""Property-based fuzzing (hypothesis) of every op on every CPU path (and the GPU when present)
against its reference twin: random shapes (d_in 1..5000), layouts (transposed, sliced,
expanded), dtypes, densities (k = 1 and k = d_in included), values with heavy ties, subnormals,
signed zeros and large magnitudes. Masks, bitmaps and copied weights must equal the reference
exactly, products stay within helpers_ops.assert_linear_close, and where the reference refuses
the input (overflowing norms) the kernel raises the same exception type.

Settings and example counts: helpers_fuzz.py (profile "ci" by default, "long" for a long run).
"""
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import mumoe_ext
from mumoe_ext import reference
from helpers_fuzz import (DTYPES, KINDS, LAYOUTS, count, daz_slack, d_in_strategy, density_strategy,
                          laid_out, values)
from helpers_ops import (BACKENDS, assert_bitwise_equal, assert_linear_close, assert_masks_equal,
                         on_backend)

SEED = st.integers(0, 2**31 - 1)


@st.composite
def problems(draw, with_x=True, max_cells=60_000):
    """A random (x?, weight, norms, bias?, density) with its layouts; d_out * d_in is bounded so
    the reference's full sort stays cheap."""
    d_in = draw(d_in_strategy())
    d_out = draw(st.integers(1, max(1, min(9, max_cells // d_in))))
    batch = draw(st.sampled_from([None, 1, 2, 3]))
    T = draw(st.sampled_from([1, 2, 5, 8, 9, 17, 40]))
    dtype = DTYPES[draw(st.sampled_from(sorted(DTYPES)))]
    w_kind, x_kind = draw(st.sampled_from(KINDS)), draw(st.sampled_from(KINDS))
    lead = () if batch is None else (batch,)
    w = laid_out(values((d_out, d_in), w_kind, dtype, draw(SEED)), draw(st.sampled_from(LAYOUTS)))
    x = laid_out(values((*lead, T, d_in), x_kind, dtype, draw(SEED)), draw(st.sampled_from(LAYOUTS)))
    bias = values((d_out,), "normal", dtype, draw(SEED)) if draw(st.booleans()) else None
    # norms straight from a value family (non-negative, finite), or from x
    norm_kind = draw(st.sampled_from(KINDS + ["from_x"]))
    if norm_kind == "from_x" or not with_x:
        norms = values((*lead, d_in), "normal", torch.float32, draw(SEED)).abs()
    else:
        norms = values((*lead, d_in), norm_kind, torch.float32, draw(SEED)).abs()
    norms = norms.clamp(max=torch.finfo(torch.float32).max)
    return dict(x=x, w=w, norms=norms, bias=bias, density=draw(density_strategy()),
                tag=f"{w_kind}/{x_kind}")


def _same_refusal(ref_call, ext_call):
    """Runs the reference; if it refuses the input, the kernel must refuse it the same way.
    Returns the reference's result, or None when both refused."""
    try:
        want = ref_call()
    except ValueError as e:
        with pytest.raises(ValueError, match=str(e).split(":", 1)[-1].split("(")[0].strip()[:20]):
            ext_call()
        return None
    return want


def _check_selection(op, p, dev):
    w, norms, density = p["w"], p["norms"], p["density"]
    if op == "wanda_mask":
        want = reference.wanda_mask(w, norms, density)
        assert_masks_equal(mumoe_ext.wanda_mask(w.to(dev), norms.to(dev), density), want)
    elif op == "wanda_prune":
        mask = reference.wanda_mask(w, norms, density)
        want = torch.where(mask, w, torch.zeros((), dtype=w.dtype))
        assert_bitwise_equal(mumoe_ext.wanda_prune(w.to(dev), norms.to(dev), density), want)
    else:
        want = reference.prune_rows(w, norms, density)
        got = mumoe_ext.prune_rows(w.to(dev), norms.to(dev), density)
        assert torch.equal(got.bitmap.cpu(), want.bitmap)
        assert_bitwise_equal(got.values, want.values)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", ["wanda_mask", "wanda_prune", "prune_rows"])
@given(p=problems(with_x=False))
def test_fuzz_selection(op, backend, p):
    count(f"valid:{op}[{backend[1] or backend[0]}]")
    with on_backend(backend) as dev:
        _check_selection(op, p, dev)


@pytest.mark.parametrize("backend", BACKENDS)
@given(p=problems())
def test_fuzz_col_norms(backend, p):
    count(f"valid:col_norms[{backend[1] or backend[0]}]")
    x = p["x"]
    with on_backend(backend) as dev:
        want = _same_refusal(lambda: reference.col_norms(x), lambda: mumoe_ext.col_norms(x.to(dev)))
        if want is not None:
            T = x.shape[-2]
            torch.testing.assert_close(mumoe_ext.col_norms(x.to(dev)).cpu(), want,
                                       rtol=2 * T * torch.finfo(torch.float32).eps, atol=0)


def _finite_product_inputs(p):
    """Products of huge values overflow in any order: the fuzz keeps the product finite by scaling
    x and w to moderate magnitudes (their ties, zeros and subnormals stay)."""
    x, w = p["x"], p["w"]
    scale = lambda t: torch.where(t.float().abs() > 1e3, torch.sign(t.float()) * 7.0, t.float()).to(t.dtype)  # noqa: E731
    return scale(x), scale(w)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", ["masked_linear", "sparse_linear"])
@given(p=problems())
def test_fuzz_fixed_mask_products(op, backend, p):
    count(f"valid:{op}[{backend[1] or backend[0]}]")
    x, w = _finite_product_inputs(p)
    b, density = p["bias"], p["density"]
    norms = p["norms"] if x.dim() == 3 and p["norms"].dim() == 2 and p["norms"].shape[0] == x.shape[0] \
        else p["norms"].reshape(-1, w.shape[1])[0]
    mask = reference.wanda_mask(w, norms, density)
    with on_backend(backend) as dev:
        if op == "masked_linear":
            got = mumoe_ext.masked_linear(x.to(dev), w.to(dev), mask.to(dev), None if b is None else b.to(dev))
        else:
            rs = reference.prune_rows(w, norms, density)
            rs_dev = mumoe_ext.RowSparse(rs.bitmap.to(dev), rs.values.to(dev), rs.d_in)
            got = mumoe_ext.sparse_linear(x.to(dev), rs_dev, None if b is None else b.to(dev))
    want = reference.masked_linear(x, w, mask, b)
    w_eff = torch.where(mask, w, torch.zeros((), dtype=w.dtype))
    assert_linear_close(got, want, x, w_eff, b, daz_slack(x, w_eff, x.dtype, backend))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", ["wanda_linear", "wanda_linear_compact"])
@given(p=problems(), padded=st.booleans())
def test_fuzz_wanda_linear(op, backend, p, padded):
    count(f"valid:{op}[{backend[1] or backend[0]}]")
    x, w = _finite_product_inputs(p)
    b, density = p["bias"], p["density"]
    am = None
    if padded and x.dim() == 3:  # left padding of a random length per prompt (at least one token kept)
        g = torch.Generator().manual_seed(x.shape[-1])
        lengths = torch.randint(1, x.shape[-2] + 1, (x.shape[0],), generator=g)
        am = torch.arange(x.shape[-2]) >= (x.shape[-2] - lengths).unsqueeze(1)
    with on_backend(backend) as dev:
        def run():
            args = (x.to(dev), w.to(dev), None if b is None else b.to(dev), density,
                    None if am is None else am.to(dev))
            return getattr(mumoe_ext, op)(*args)
        if _same_refusal(lambda: reference.col_norms(x, am), run) is None:
            return
        out = run()
        # the kernel's norms may differ from the reference's in the last bit: the mask is the
        # reference's selection from the kernel's own norms, and those norms are checked
        norms = mumoe_ext.col_norms(x.to(dev), None if am is None else am.to(dev)).cpu()
    torch.testing.assert_close(norms, reference.col_norms(x, am),
                               rtol=2 * x.shape[-2] * torch.finfo(torch.float32).eps, atol=0)
    y = out[0] if op == "wanda_linear_compact" else out
    if float(density) == 1.0:
        mask = torch.ones((*norms.shape[:-1], *w.shape), dtype=torch.bool)
    else:
        mask = reference.wanda_mask(w, norms, density)
    assert y.shape == (*x.shape[:-1], w.shape[0])
    w_eff = torch.where(mask, w, torch.zeros((), dtype=w.dtype))
    assert_linear_close(y, reference.masked_linear(x, w, mask, b), x, w_eff, b,
                        daz_slack(x, w_eff, x.dtype, backend))
    if op == "wanda_linear_compact":
        rs = out[1]
        want = reference.prune_rows(w, norms, density)
        assert torch.equal(rs.bitmap.cpu(), want.bitmap)
        assert_bitwise_equal(rs.values, want.values)
