"""Argument checks shared by the kernels' wrappers (`ops.py`) and the reference twins.

Every message starts with the public function's name and names the offending argument, so a
user sees ``wanda_mask: density must be in (0, 1], got 1.5`` rather than a C++ stack.
"""
from __future__ import annotations

import math

import torch

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def keep_count(d_in: int, density: float, op: str = "wanda_mask") -> int:
    """Weights kept per row: ``k = d_in - floor(d_in * (1 - density))`` (Wanda's convention with
    ``sparsity = 1 - density``). The sparsity is rounded to 12 decimals first so that density 0.8
    prunes exactly what Wanda's ``sparsity_ratio=0.2`` prunes (1 - 0.8 is 0.19999999999999996 in
    binary, and 1000 * that would floor to 199, not 200)."""
    check_density(density, op)
    sparsity = round(1.0 - float(density), 12)
    return d_in - int(math.floor(d_in * sparsity))


def check_density(density, op: str) -> None:
    if isinstance(density, bool) or not isinstance(density, (int, float)):
        raise TypeError(f"{op}: density must be a float in (0, 1], got {type(density).__name__}")
    d = float(density)
    if not (0.0 < d <= 1.0):  # also rejects NaN
        raise ValueError(f"{op}: density must be in (0, 1], got {density}")


def check_float(t, name: str, op: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: {name} must be float32, float16 or bfloat16, got {t.dtype}")
    if t.numel() == 0:
        raise ValueError(f"{op}: {name} must not be empty, got shape {tuple(t.shape)}")


def check_same(a: torch.Tensor, b: torch.Tensor, a_name: str, b_name: str, op: str,
               dtype: bool = True) -> None:
    if a.device != b.device:
        raise ValueError(f"{op}: {b_name} is on {b.device} but {a_name} is on {a.device}")
    if dtype and a.dtype != b.dtype:
        raise TypeError(f"{op}: {b_name} has dtype {b.dtype} but {a_name} has dtype {a.dtype}")


def check_activations(x, op: str) -> None:
    check_float(x, "x", op)
    if x.dim() not in (2, 3):
        raise ValueError(f"{op}: x must be (T, d_in) or (B, T, d_in), got shape {tuple(x.shape)}")


def check_weight(weight, x: torch.Tensor | None, op: str) -> None:
    check_float(weight, "weight", op)
    if weight.dim() != 2:
        raise ValueError(f"{op}: weight must be (d_out, d_in), got shape {tuple(weight.shape)}")
    if x is not None:
        check_same(x, weight, "x", "weight", op)
        if x.shape[-1] != weight.shape[1]:
            raise ValueError(f"{op}: x has d_in={x.shape[-1]} but weight has "
                             f"d_in={weight.shape[1]} (shape {tuple(weight.shape)})")


def check_bias(bias, weight: torch.Tensor, op: str) -> None:
    if bias is None:
        return
    check_float(bias, "bias", op)
    check_same(weight, bias, "weight", "bias", op)
    if bias.shape != (weight.shape[0],):
        raise ValueError(f"{op}: bias must have shape ({weight.shape[0]},), got {tuple(bias.shape)}")


def check_attention_mask(attention_mask, x: torch.Tensor, op: str) -> torch.Tensor | None:
    """Returns the mask as bool with x's leading shape, or None."""
    if attention_mask is None:
        return None
    if not isinstance(attention_mask, torch.Tensor):
        raise TypeError(f"{op}: attention_mask must be a torch.Tensor or None")
    if attention_mask.device != x.device:
        raise ValueError(f"{op}: attention_mask is on {attention_mask.device} but x is on {x.device}")
    if attention_mask.dtype.is_floating_point or attention_mask.dtype.is_complex:
        raise TypeError(f"{op}: attention_mask must be bool or integer 0/1, got {attention_mask.dtype}")
    if tuple(attention_mask.shape) != tuple(x.shape[:-1]):
        raise ValueError(f"{op}: attention_mask must have shape {tuple(x.shape[:-1])} "
                         f"(x's leading dims), got {tuple(attention_mask.shape)}")
    if attention_mask.dtype != torch.bool:
        attention_mask = attention_mask != 0
    return attention_mask


def check_norms(norms, weight: torch.Tensor, op: str) -> torch.Tensor:
    """Returns norms as contiguous float32; (d_in,) or (B, d_in)."""
    if not isinstance(norms, torch.Tensor):
        raise TypeError(f"{op}: norms must be a torch.Tensor, got {type(norms).__name__}")
    if not norms.dtype.is_floating_point:
        raise TypeError(f"{op}: norms must be a floating tensor, got {norms.dtype}")
    if norms.device != weight.device:
        raise ValueError(f"{op}: norms is on {norms.device} but weight is on {weight.device}")
    if norms.dim() not in (1, 2) or norms.shape[-1] != weight.shape[1]:
        raise ValueError(f"{op}: norms must be (d_in,) or (B, d_in) with the weight's d_in={weight.shape[1]}, "
                         f"got shape {tuple(norms.shape)}")
    if norms.numel() == 0:
        raise ValueError(f"{op}: norms must not be empty")
    return norms.to(torch.float32).contiguous()


def check_norms_finite(norms: torch.Tensor, op: str, what: str = "norms") -> None:
    """Non-finite norms come from NaN/Inf activations (or overflowing squares): an error, never a
    silent mask. Called eagerly only; the C++ kernels check again on their side."""
    if not bool(torch.isfinite(norms).all()):
        raise ValueError(f"{op}: {what} contain NaN or Inf (non-finite activations in x?)")
    if bool((norms < 0).any()):
        raise ValueError(f"{op}: {what} must be non-negative")


def check_weight_finite(weight: torch.Tensor, op: str) -> None:
    """A NaN/Inf weight would give a silent mask (NaN scores sort above every other): refused by
    every op that selects. The kernels check inside their selection loop; this is the twins' check."""
    if not bool(torch.isfinite(weight).all()):
        raise ValueError(f"{op}: weight contains NaN or Inf; Wanda scores need finite weights")


def check_mask(mask, weight: torch.Tensor, x: torch.Tensor, op: str) -> None:
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{op}: mask must be a torch.Tensor, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(f"{op}: mask must be a bool tensor, got {mask.dtype}")
    if mask.device != weight.device:
        raise ValueError(f"{op}: mask is on {mask.device} but weight is on {weight.device}")
    if mask.dim() == 2:
        ok = tuple(mask.shape) == tuple(weight.shape)
    elif mask.dim() == 3:
        ok = tuple(mask.shape[1:]) == tuple(weight.shape) and x.dim() == 3 and mask.shape[0] == x.shape[0]
    else:
        ok = False
    if not ok:
        raise ValueError(f"{op}: mask must be {tuple(weight.shape)} or (B, *{tuple(weight.shape)}) "
                         f"with B = x.shape[0] for 3-D x, got {tuple(mask.shape)}")


class _DefaultDensity(float):
    """The linears' default density 0.5, told apart from an explicit 0.5: a pattern replaces it."""

    def __repr__(self) -> str:
        return "0.5"


DEFAULT_DENSITY = _DefaultDensity(0.5)


def parse_pattern(pattern, op: str) -> tuple[int, int] | None:
    """``"N:M"`` (or an (N, M) pair) -> (N, M) with 0 < N < M; None -> None (unstructured)."""
    if pattern is None:
        return None
    if isinstance(pattern, str):
        parts = pattern.strip().split(":")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"{op}: pattern must be a string 'N:M' such as '2:4', got {pattern!r}")
        n, m = int(parts[0]), int(parts[1])
    elif (isinstance(pattern, (tuple, list)) and len(pattern) == 2
          and all(isinstance(v, int) and not isinstance(v, bool) for v in pattern)):
        n, m = pattern
    else:
        raise TypeError(f"{op}: pattern must be None or a string 'N:M' such as '2:4', "
                        f"got {type(pattern).__name__}")
    if not 0 < n < m:
        raise ValueError(f"{op}: pattern {pattern!r} needs 0 < N < M (N kept of every M), got N={n}, M={m}")
    return n, m


def pattern_density(density, pattern, op: str, default: float | None = None) -> float:
    """The density in force: N/M when `pattern` is given (density must then be omitted or equal
    N/M), else `density` (or `default` when it is None)."""
    nm = parse_pattern(pattern, op)
    if nm is None:
        if density is None:
            if default is None:
                raise TypeError(f"{op}: density must be a float in (0, 1] (or give pattern='N:M'), "
                                "got None")
            density = default
        check_density(density, op)
        return float(density)
    n, m = nm
    if density is not None and density is not DEFAULT_DENSITY:
        check_density(density, op)
        if abs(float(density) - n / m) > 1e-9:
            raise ValueError(f"{op}: density={density} conflicts with pattern={pattern!r}, which keeps "
                             f"{n}/{m} = {n / m:g}; give density=None (or {n / m:g}) with a pattern")
    return n / m


def keep_rule(d_in: int, density, pattern, op: str, default: float | None = None) -> tuple[int, int]:
    """(k, m) for the compiled ops: k weights kept per row, m the N:M group size (0 = unstructured).
    With pattern 'N:M', M must divide d_in and k = d_in * N / M."""
    nm = parse_pattern(pattern, op)
    d = pattern_density(density, pattern, op, default)
    if nm is None:
        return keep_count(d_in, d, op), 0
    n, m = nm
    if d_in % m:
        raise ValueError(f"{op}: pattern={pattern!r} needs M={m} to divide d_in={d_in}")
    return d_in // m * n, m
