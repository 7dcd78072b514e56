"""wanda_linear_compact (the µ-MoE prefill): the output equals wanda_linear's, the RowSparse equals
prune_rows on the same norms, on every CPU path (fused T <= 8, blocked, composite) and ISA; and a
prompt's results in a padded batch are bit for bit what it gets alone (DESIGN §1 "Batches")."""
import pytest
import torch
import torch.nn.functional as F

import mumoe_ext
from mumoe_ext import reference
from helpers_ops import (BACKENDS, DTYPE_IDS, DTYPES, assert_bitwise_equal, assert_linear_close,
                         make_weight, on_backend, to)

CPU_BACKENDS = [b for b in BACKENDS if b.values[0][0] == "cpu"]

# (batch, T, d_out, d_in) reaching each CPU path: per row (T <= 8), blocks of rows (several, the
# last short), and the composite (x over 8 MiB in every dtype).
PATHS = [(None, 1, 37, 100), (3, 8, 37, 100), (2, 20, 300, 4096), (None, 1100, 24, 4096)]
PATH_IDS = ["fused-T1", "fused-B3xT8", "blocked-B2xT20", "composite-T1100"]


def _integer_x(shape, dtype):
    # small integers: fp32 sums of squares are exact in any order, so masks match the reference
    return torch.randint(-4, 5, shape).to(dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch,T,d_out,d_in", PATHS, ids=PATH_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_compact_matches_reference_and_wanda_linear(dtype, batch, T, d_out, d_in, backend):
    lead = () if batch is None else (batch,)
    x = _integer_x((*lead, T, d_in), dtype)
    w = make_weight(d_out, d_in, dtype)
    b = torch.randn(d_out).to(dtype)
    want_y, want_rs = reference.wanda_linear_compact(x, w, b, 0.5)
    with on_backend(backend) as dev:
        y, rs = mumoe_ext.wanda_linear_compact(*to(dev, x, w, b), density=0.5)
        y_plain = mumoe_ext.wanda_linear(*to(dev, x, w, b), density=0.5)
    assert torch.equal(rs.bitmap.cpu(), want_rs.bitmap)
    assert_bitwise_equal(rs.values, want_rs.values)
    assert_linear_close(y, want_y, x, want_rs.to_dense(), b)
    if dev == "cpu":  # one implementation behind both ops
        assert torch.equal(y, y_plain)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("T", [5, 8, 20, 1100], ids=["fused-T5", "fused-T8", "blocked-T20", "composite-T1100"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_a_prompt_in_a_padded_batch_gets_bit_for_bit_what_it_gets_alone(dtype, T, backend):
    d_out, d_in = (24, 4096) if T == 1100 else (300, 4096) if T == 20 else (37, 100)
    x = torch.randn(3, T, d_in).to(dtype)
    w = make_weight(d_out, d_in, dtype)
    b = torch.randn(d_out).to(dtype)
    am = torch.ones(3, T, dtype=torch.bool)
    am[1, : T // 2] = False          # left padding
    am[2, T - max(1, T // 3):] = False  # right padding
    with on_backend(backend):
        y, rs = mumoe_ext.wanda_linear_compact(x, w, b, 0.5, am)
        y_plain = mumoe_ext.wanda_linear(x, w, b, 0.5, am)
        for i in range(3):
            alone_y, alone_rs = mumoe_ext.wanda_linear_compact(x[i][am[i]].clone(), w, b, 0.5)
            assert_bitwise_equal(y[i][am[i]], alone_y)
            assert torch.equal(rs.bitmap[i], alone_rs.bitmap)
            assert_bitwise_equal(rs.values[i], alone_rs.values)
            # padding rows are still computed, from the same compact weight
            pads = ~am[i]
            if bool(pads.any()):
                want = F.linear(x[i][pads].float(), rs.to_dense()[i].float(), b.float())
                torch.testing.assert_close(y[i][pads].float(), want, rtol=2e-2, atol=2e-2)
    assert torch.equal(y, y_plain)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_density_one_output_is_f_linear_bit_for_bit(dtype, backend):
    x = torch.randn(2, 9, 37).to(dtype)
    w = make_weight(13, 37, dtype)
    b = torch.randn(13).to(dtype)
    with on_backend(backend) as dev:
        xd, wd, bd = to(dev, x, w, b)
        y, rs = mumoe_ext.wanda_linear_compact(xd, wd, bd, density=1.0)
        assert torch.equal(y, F.linear(xd, wd, bd))
    assert rs.k == 37 and bool(rs.mask().all())
    assert_bitwise_equal(rs.values[0], w)


def test_bad_input_names_the_argument():
    x, w = torch.randn(4, 10), torch.randn(6, 10)
    with pytest.raises(ValueError, match="wanda_linear_compact: density"):
        mumoe_ext.wanda_linear_compact(x, w, None, 0.0)
    with pytest.raises(ValueError, match="wanda_linear_compact: x has d_in"):
        mumoe_ext.wanda_linear_compact(torch.randn(4, 11), w)
    with pytest.raises(TypeError, match="wanda_linear_compact: weight has dtype"):
        mumoe_ext.wanda_linear_compact(x, w.half())
    with pytest.raises(ValueError, match="wanda_linear_compact: attention_mask must have shape"):
        mumoe_ext.wanda_linear_compact(x, w, attention_mask=torch.ones(5, dtype=torch.bool))
    with pytest.raises(ValueError, match="NaN or Inf"):
        mumoe_ext.wanda_linear_compact(torch.full((4, 10), float("nan")), w)
    with pytest.raises(ValueError, match="wanda_linear_compact: bias must have shape"):
        mumoe_ext.wanda_linear_compact(x, w, torch.randn(5))


@pytest.mark.parametrize("path", ["blocked", "composite"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_forced_prefill_path_matches_reference(dtype, path, monkeypatch):
    # MUMOE_CPU_PREFILL picks the T > 8 path whatever the size thresholds would pick.
    monkeypatch.setenv("MUMOE_CPU_PREFILL", path)
    x = _integer_x((2, 20, 512), dtype)
    w = make_weight(300, 512, dtype)
    b = torch.randn(300).to(dtype)
    want_y, want_rs = reference.wanda_linear_compact(x, w, b, 0.5)
    y, rs = mumoe_ext.wanda_linear_compact(x, w, b, density=0.5)
    assert torch.equal(rs.bitmap, want_rs.bitmap)
    assert_bitwise_equal(rs.values, want_rs.values)
    assert_linear_close(y, want_y, x, want_rs.to_dense(), b)
    assert_linear_close(mumoe_ext.wanda_linear(x, w, b, density=0.5), want_y, x, want_rs.to_dense(), b)


def test_unknown_prefill_path_is_refused(monkeypatch):
    monkeypatch.setenv("MUMOE_CPU_PREFILL", "fastest")
    x, w = torch.randn(20, 64), torch.randn(48, 64)
    with pytest.raises(ValueError, match="MUMOE_CPU_PREFILL"):
        mumoe_ext.wanda_linear_compact(x, w, None, density=0.5)
