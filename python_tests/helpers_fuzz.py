"""Hypothesis setup of the fuzz suites (test_fuzz_*.py): settings profiles, input strategies, and
a per-(test, path) example counter.

Profiles (HYPOTHESIS_PROFILE, default "ci"): "ci" is derandomized (a fixed seed: the same examples
every run) with a bounded count per test; "long" draws 25x more examples, randomly, for a
development run:  HYPOTHESIS_PROFILE=long python3 -m pytest python_tests/test_fuzz_ops.py -q
MUMOE_FUZZ_COUNTS=FILE appends one JSON line {test: examples} per test module to FILE.
"""
from __future__ import annotations

import atexit
import collections
import json
import os

import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

_slow_ok = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture]
settings.register_profile("ci", max_examples=60, derandomize=True, deadline=None,
                          suppress_health_check=_slow_ok, print_blob=True)
settings.register_profile("long", max_examples=1500, derandomize=False, deadline=None,
                          suppress_health_check=_slow_ok, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

COUNTS: collections.Counter = collections.Counter()


def count(key: str) -> None:
    COUNTS[key] += 1


@atexit.register
def _dump_counts():
    path = os.environ.get("MUMOE_FUZZ_COUNTS")
    if path and COUNTS:
        with open(path, "a") as f:
            f.write(json.dumps(dict(sorted(COUNTS.items()))) + "\n")


DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

# Value families, mixed per element: heavy ties, subnormals, signed zeros, large magnitudes.
KINDS = ["normal", "ties", "subnormal", "zeros", "huge", "mixed"]


def _family(kind: str, n: int, dtype: torch.dtype, g: torch.Generator) -> torch.Tensor:
    fi = torch.finfo(dtype)
    if kind == "normal":
        return torch.randn(n, generator=g)
    if kind == "ties":  # few distinct magnitudes: most of a row ties with the k-th score
        return torch.tensor([0.0, 1.0, -1.0, 2.0, -2.0, 0.5])[torch.randint(0, 6, (n,), generator=g)]
    if kind == "subnormal":  # the dtype's subnormals (fp32's for bf16: same exponent range)
        return (torch.rand(n, generator=g) * fi.smallest_normal).to(dtype).float() * \
            torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    if kind == "zeros":
        return torch.where(torch.rand(n, generator=g) < 0.5, -0.0, 0.0)
    if kind == "huge":  # near the dtype's max (finite)
        return (torch.rand(n, generator=g) * 0.5 + 0.5) * fi.max * \
            torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    parts = torch.stack([_family(k, n, dtype, g) for k in KINDS[:-1]])
    return parts[torch.randint(0, len(KINDS) - 1, (n,), generator=g), torch.arange(n)]


def values(shape, kind: str, dtype: torch.dtype, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    n = 1
    for s in shape:
        n *= s
    return _family(kind, n, dtype, g).reshape(shape).to(dtype)


LAYOUTS = ["contiguous", "transposed", "sliced", "expanded"]


def laid_out(t: torch.Tensor, layout: str) -> torch.Tensor:
    """The same values as `t` (2-D or 3-D) in a non-contiguous layout (expanded: every row of the
    last two dims a copy of the first, with stride 0)."""
    if layout == "transposed":
        return t.transpose(-1, -2).contiguous().transpose(-1, -2)
    if layout == "sliced":
        big = torch.zeros(*t.shape[:-1], 2 * t.shape[-1] + 1, dtype=t.dtype)
        big[..., 1::2] = t
        return big[..., 1::2]
    if layout == "expanded":
        return t[..., :1, :].expand(t.shape)
    return t


def d_in_strategy():
    """1 .. 5000, weighted towards the small and odd sizes where vector tails live."""
    return st.one_of(st.integers(1, 70), st.integers(1, 5000), st.sampled_from([4096, 4097, 5000]))


def density_strategy(d_in_key=None):
    """Densities including those that give k = 1 and k = d_in through the selection (not the
    density-1 shortcut of wanda_linear), and plain ones."""
    return st.one_of(st.sampled_from([1e-9, 0.9999999, 1.0, 0.5]),
                     st.floats(0.001, 1.0, exclude_min=False))


def daz_slack(x, w_eff, dtype, backend) -> float:
    """An absolute slack for bf16 products, where subnormals may count as zero: VDPBF16PS flushes
    denormal inputs and outputs by definition (DAZ/FTZ), and both our AVX512-BF16 sparse_dot and
    oneDNN's bf16 GEMM behind the reference's F.linear use it. Each term then loses at most
    FLT_MIN * (|x| + |w|), and the sum its subnormal tail. fp16 subnormals are normal in fp32."""
    if dtype != torch.bfloat16:
        return 0.0
    tiny = torch.finfo(torch.float32).smallest_normal
    return tiny * (float(x.float().abs().sum()) + float(w_eff.float().abs().sum()) + x.shape[-1] + 1)
