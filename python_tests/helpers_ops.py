"""Parameter lists, input makers and tolerance checks shared by the op tests (test_ops_*.py).

Every kernel is compared with its pure-torch twin in `mumoe_ext.reference`, computed on the CPU
from the same inputs; masks/bitmaps exactly, products with the bounds in `assert_linear_close`.
"""
import contextlib
import math

import pytest
import torch

import mumoe_ext
from mumoe_ext import reference
from conftest import available_devices, available_isas

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
DTYPE_IDS = ["fp32", "fp16", "bf16"]

# (d_out, d_in): d_in 1, below/above the 8/16/32-lane vector widths, a prime, 1000, 4096.
SHAPES = [(1, 1), (3, 7), (2, 17), (5, 33), (4, 37), (7, 1000), (3, 4096)]
SHAPE_IDS = [f"{o}x{i}" for o, i in SHAPES]

DENSITIES = [0.01, 0.2, 0.5, 0.8, 1.0]
DENSITY_IDS = [f"rho{d}" for d in DENSITIES]

# None: one prompt (x (T, d), norms (d,)); an int B: a batch of B prompts, each with its own mask.
BATCHES = [None, 3]
BATCH_IDS = ["single", "B3"]

ISAS = available_isas()
DEVICES = available_devices()

# Where a kernel runs: every CPU instruction-set path, then the GPU when there is one.
BACKENDS = [pytest.param(("cpu", isa), id=f"cpu-{isa}") for isa in ISAS]
BACKENDS += [pytest.param((dev, None), id=dev) for dev in DEVICES if dev != "cpu"]


@contextlib.contextmanager
def on_backend(backend):
    """Forces the CPU path of `backend` for the block and yields its device."""
    device, isa = backend
    if isa is None:
        yield device
        return
    with mumoe_ext.cpu_isa(isa):
        assert mumoe_ext.build_info()["cpu_isa"] == isa
        yield device


def keep_count(d_in: int, density: float) -> int:
    """DESIGN §1, written out again here rather than imported: k = d_in - floor(d_in*(1-density)),
    with 1 - density taken as the decimal Wanda's sparsity_ratio would be (docs/design.md)."""
    return d_in - math.floor(d_in * round(1.0 - density, 12))


def lead(batch) -> tuple:
    return () if batch is None else (batch,)


def make_x(batch, T, d_in, dtype):
    return torch.randn(*lead(batch), T, d_in).to(dtype)


def make_weight(d_out, d_in, dtype):
    return torch.randn(d_out, d_in).to(dtype)


def make_norms(batch, d_in, T=5):
    """Norms of real (random) activations, in fp32, as the ops receive them."""
    return reference.col_norms(torch.randn(*lead(batch), T, d_in))


def to(device, *ts):
    return tuple(None if t is None else t.to(device) for t in ts)


def assert_exactly_k_per_row(mask: torch.Tensor, k: int):
    counts = mask.sum(dim=-1)
    assert bool((counts == k).all()), f"rows keep {counts.unique().tolist()} weights, expected {k}"


def assert_masks_equal(got: torch.Tensor, want: torch.Tensor):
    got = got.cpu()
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape, want.shape)
    if not torch.equal(got, want):
        diff = (got != want).nonzero()
        raise AssertionError(f"{len(diff)} of {want.numel()} entries differ, first at {diff[:5].tolist()}")


def assert_bitwise_equal(got: torch.Tensor, want: torch.Tensor):
    """torch.equal, but -0.0 and +0.0 differ: copied weights must keep their exact bits."""
    got = got.cpu()
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape, want.shape)
    as_int = {torch.float32: torch.int32, torch.float16: torch.int16, torch.bfloat16: torch.int16}
    if got.dtype in as_int:
        got, want = got.view(as_int[got.dtype]), want.view(as_int[want.dtype])
    assert torch.equal(got, want)


# Tolerances of a product y = x @ W'^T + b compared with the reference (same x, same W', same b):
# - every dtype accumulates in fp32 on both sides, but in another order: a reordered fp32 sum
#   differs by a few ulp of the sum of |terms|, growing like sqrt(d_in) for random signs, hence
#   FP32_REORDER * sqrt(d_in) * (|x| @ |W'|^T + |b|);
# - fp16/bf16 round the fp32 result once to 11/8 mantissa bits: two such roundings may land one
#   ulp apart (2^-10 / 2^-7 relative to |y|), and the reference may round x @ W'^T before adding
#   the bias, one more ulp of that partial product.
FP32_REORDER = 8 * torch.finfo(torch.float32).eps
OUTPUT_ULP = {torch.float32: 0.0, torch.float16: 2.0**-10, torch.bfloat16: 2.0**-7}


def assert_linear_close(got, want, x, w_eff, bias=None, abs_slack=0.0):
    """`w_eff`: the masked weight the reference multiplied with, (d_out, d_in) or (B, d_out, d_in).
    `abs_slack`: an absolute term added to the bound (see helpers_fuzz.daz_slack)."""
    got = got.cpu()
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape, want.shape)
    x, w_eff = x.cpu().float(), w_eff.cpu().float()
    b = torch.zeros(()) if bias is None else bias.cpu().float()
    mag = torch.matmul(x.abs(), w_eff.abs().transpose(-1, -2)) + b.abs()
    want_f, got_f = want.float(), got.float()
    ulp = OUTPUT_ULP[want.dtype]
    bound = (FP32_REORDER * math.sqrt(x.shape[-1]) * mag
             + ulp * (want_f.abs() + (want_f - b).abs()) + abs_slack)
    err = (got_f - want_f).abs()
    bad = ~(err <= bound)  # also catches NaN
    if bool(bad.any()):
        i = bad.nonzero()[0].tolist()
        raise AssertionError(f"{int(bad.sum())} of {bad.numel()} outputs out of tolerance; first at "
                             f"{i}: got {got_f[tuple(i)].item()}, want {want_f[tuple(i)].item()}, "
                             f"bound {bound[tuple(i)].item():.3g}")
