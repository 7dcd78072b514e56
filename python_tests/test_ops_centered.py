"""wanda_linear_centered / prune_rows_centered (µ-MoE's mean_shift, docs/mumoe_plus.md) against
`reference.mean_shift_linear`, the definition written out in torch: every CPU instruction-set
path, every dtype, the three CPU product paths (T <= 8, blocked, composite), odd sizes, T = 1,
ties, batches with padding (bit for bit the prompt alone), the CUDA composite run on the CPU
(mumoe_testing), and the argument errors."""
import pytest
import torch

import mumoe_ext
from mumoe_ext import reference
from mumoe_ext.row_sparse import RowSparse
from helpers_ops import BACKENDS, DTYPES, DTYPE_IDS, assert_exactly_k_per_row, keep_count, on_backend

SHIFTS = [0.0, 0.75, 1.0]
# (T, d_out, d_in, path): the per-row path, the blocked one, the composite (forced).
PATHS = [(1, 5, 37, None), (7, 6, 33, None), (40, 70, 129, "blocked"), (40, 70, 129, "composite")]
PATH_IDS = ["T1", "T7", "blocked", "composite"]


def _inputs(T, d_out, d_in, dtype, batch=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    lead = () if batch is None else (batch,)
    # a per-column mean the shift can take out, as real activations have
    x = (torch.randn(*lead, T, d_in, generator=g) + 2 * torch.randn(d_in, generator=g)).to(dtype)
    w = torch.randn(d_out, d_in, generator=g).to(dtype)
    b = torch.randn(d_out, generator=g).to(dtype)
    return x, w, b


def _check(got, want, x, w, b):
    y, rs, off = got
    y_ref, rs_ref, off_ref = want
    assert torch.equal(rs.bitmap, rs_ref.bitmap) and torch.equal(rs.values, rs_ref.values)
    assert off.dtype == torch.float32 and off.shape == off_ref.shape
    torch.testing.assert_close(off, off_ref, rtol=1e-4, atol=1e-4 * (1 + off_ref.abs().max().item()))
    tol = {torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 6e-2}[x.dtype]
    scale = (x.float().abs() @ w.float().abs().T).max().item()
    assert y.dtype == x.dtype and y.shape == y_ref.shape
    assert (y.float() - y_ref.float()).abs().max().item() <= tol * (1 + scale)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shift", SHIFTS)
@pytest.mark.parametrize("T,d_out,d_in,path", PATHS, ids=PATH_IDS)
def test_matches_the_definition_fp32(backend, shift, T, d_out, d_in, path, monkeypatch):
    if path:
        monkeypatch.setenv("MUMOE_CPU_PREFILL", path)
    x, w, b = _inputs(T, d_out, d_in, torch.float32)
    with on_backend(backend) as device:
        got = mumoe_ext.wanda_linear_centered(x.to(device), w.to(device), b.to(device), 0.5,
                                              mean_shift=shift)
    got = tuple(t.cpu() if isinstance(t, torch.Tensor) else t for t in got)
    got = (got[0], RowSparse(got[1].bitmap.cpu(), got[1].values.cpu(), d_in), got[2])
    _check(got, reference.wanda_linear_centered(x, w, b, 0.5, mean_shift=shift), x, w, b)
    assert_exactly_k_per_row(got[1].to_dense() != 0, keep_count(d_in, 0.5))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("T,d_out,d_in,path", PATHS, ids=PATH_IDS)
def test_every_dtype(dtype, T, d_out, d_in, path, monkeypatch):
    if path:
        monkeypatch.setenv("MUMOE_CPU_PREFILL", path)
    x, w, b = _inputs(T, d_out, d_in, dtype, seed=1)
    y, rs, off = mumoe_ext.wanda_linear_centered(x, w, b, 0.3, mean_shift=0.75)
    _check((y, rs, off), reference.wanda_linear_centered(x, w, b, 0.3, mean_shift=0.75), x, w, b)


def test_ties_keep_the_lower_columns_and_exactly_k():
    # all weights equal and every token equal: all scores tie, the first k columns are kept
    x = torch.ones(6, 40)
    w = torch.ones(3, 40)
    y, rs, off = mumoe_ext.wanda_linear_centered(x, w, None, 0.25, mean_shift=0.5)
    want = reference.wanda_linear_centered(x, w, None, 0.25, mean_shift=0.5)
    assert torch.equal(rs.bitmap, want[1].bitmap)
    dense = rs.to_dense()
    assert bool((dense[:, :10] != 0).all()) and bool((dense[:, 10:] == 0).all())
    torch.testing.assert_close(off, torch.full((3,), 30 * 0.5))  # 30 dropped weights x 0.5 x 1
    torch.testing.assert_close(y, torch.full((6, 3), 10.0 + 15.0))


@pytest.mark.parametrize("T,d_out,d_in,path", PATHS, ids=PATH_IDS)
def test_a_padded_batch_gives_each_prompt_what_it_gets_alone(T, d_out, d_in, path, monkeypatch):
    if path:
        monkeypatch.setenv("MUMOE_CPU_PREFILL", path)
    x, w, b = _inputs(T + 3, d_out, d_in, torch.bfloat16, batch=3, seed=2)
    am = torch.ones(3, T + 3, dtype=torch.long)
    am[0, :3] = 0  # left padding
    am[2, T:] = 0  # right padding
    y, rs, off = mumoe_ext.wanda_linear_centered(x, w, b, 0.5, am, mean_shift=0.75)
    want = reference.wanda_linear_centered(x.float(), w.float(), b.float(), 0.5, am, mean_shift=0.75)
    assert torch.equal(rs.bitmap, want[1].bitmap)
    for i in range(3):
        keep = am[i].bool()
        y1, rs1, off1 = mumoe_ext.wanda_linear_centered(x[i][keep], w, b, 0.5, mean_shift=0.75)
        assert torch.equal(y[i][keep], y1)
        assert torch.equal(rs.bitmap[i], rs1.bitmap) and torch.equal(rs.values[i], rs1.values)
        assert torch.equal(off[i], off1)
    # padding tokens: the prompt's compact weight, bias and offset
    pad = x[0, :3].float() @ rs.to_dense()[0].float().T + b.float() + off[0]
    torch.testing.assert_close(y[0, :3].float(), pad, rtol=2e-2, atol=2e-2 * (1 + pad.abs().max().item()))


@pytest.mark.parametrize("batch", [None, 2])
def test_prune_rows_centered_is_the_op_selection(batch):
    x, w, _ = _inputs(20, 9, 50, torch.bfloat16, batch=batch, seed=3)
    _, rs, off = mumoe_ext.wanda_linear_centered(x, w, None, 0.4, mean_shift=0.75)
    rs2, off2 = mumoe_ext.prune_rows_centered(x, w, 0.4, mean_shift=0.75)
    assert torch.equal(rs.bitmap, rs2.bitmap) and torch.equal(rs.values, rs2.values)
    assert torch.equal(off, off2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_keep_compact_false_returns_no_weight_and_the_same_product(backend):
    # the plain phase (pruned_dot) and the prefill (emit_compact_dot) sum the offsets alike
    x, w, b = _inputs(30, 8, 40, torch.float32, seed=4)
    with on_backend(backend):
        y, rs, off = mumoe_ext.wanda_linear_centered(x, w, b, 0.5, mean_shift=0.75)
        y2, none, off2 = mumoe_ext.wanda_linear_centered(x, w, b, 0.5, mean_shift=0.75,
                                                         keep_compact=False)
    assert none is None and torch.equal(y, y2) and torch.equal(off, off2)


def test_mean_shift_zero_selects_like_wanda_linear_compact():
    x, w, b = _inputs(30, 8, 40, torch.bfloat16, seed=5)
    _, rs, off = mumoe_ext.wanda_linear_centered(x, w, b, 0.5, mean_shift=0.0)
    _, rs0 = mumoe_ext.wanda_linear_compact(x, w, b, 0.5)
    assert torch.equal(rs.bitmap, rs0.bitmap) and torch.equal(rs.values, rs0.values)
    assert bool((off == 0).all())


@pytest.mark.parametrize("batch", [None, 2])
def test_the_cuda_composite_agrees(batch):
    x, w, b = _inputs(12, 7, 45, torch.float32, batch=batch, seed=6)
    am = None if batch is None else torch.ones(batch, 12, dtype=torch.bool)
    if am is not None:
        am[1, :4] = False
    k = keep_count(45, 0.5)
    got = torch.ops.mumoe_testing.centered_composite(x, w, b, k, 0.75, am)
    want = torch.ops.mumoe.wanda_linear_centered(x, w, b, k, 0.75, am)
    assert torch.equal(got[1], want[1]) and torch.equal(got[2], want[2])
    torch.testing.assert_close(got[0], want[0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got[3], want[3], rtol=1e-4, atol=1e-4)
    sel = torch.ops.mumoe_testing.prune_rows_centered_composite(x, w, k, 0.75, am)
    assert torch.equal(sel[0], want[1]) and torch.equal(sel[1], want[2])
    torch.testing.assert_close(sel[2], want[3], rtol=1e-4, atol=1e-4)
    none = torch.ops.mumoe_testing.centered_composite(x, w, b, k, 0.75, am, 0, False)
    assert none[1].numel() == 0 and torch.equal(none[0], got[0])


@pytest.mark.parametrize("fn", ["wanda_linear_centered", "prune_rows_centered"])
def test_bad_arguments_raise_naming_them(fn):
    x, w = torch.randn(4, 8), torch.randn(3, 8)
    call = getattr(mumoe_ext, fn)
    args = (x, w, None) if fn == "wanda_linear_centered" else (x, w)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="mean_shift"):
            call(*args, 0.5, mean_shift=bad)
    with pytest.raises(TypeError, match="mean_shift"):
        call(*args, 0.5, mean_shift=True)
    with pytest.raises(ValueError, match="NaN"):
        call(x.clone().index_fill_(0, torch.tensor([1]), float("nan")), *args[1:], 0.5, mean_shift=0.5)
    with pytest.raises(ValueError, match="attention_mask"):
        call(*args, 0.5, torch.ones(5, dtype=torch.bool), mean_shift=0.5)
    # the compiled op checks too (Python wrapper bypassed)
    with pytest.raises(ValueError, match="mean_shift"):
        torch.ops.mumoe.prune_rows_centered(x, w, 4, 2.0, None)
    with pytest.raises(ValueError, match="NaN"):
        torch.ops.mumoe.prune_rows_centered(torch.full((4, 8), float("inf")), w, 4, 0.5, None)
