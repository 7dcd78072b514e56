"""Typed wrappers of the compiled ops (`torch.ops.mumoe.*`): argument checks with messages that
name the argument, density -> k, and the fake kernels that let torch.compile/export trace them."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import _C  # noqa: F401  (loading the library registers torch.ops.mumoe)
from . import _checks as C
from .row_sparse import RowSparse, words_per_row

__all__ = ["col_norms", "wanda_mask", "masked_linear", "wanda_linear", "wanda_linear_compact",
           "wanda_linear_centered", "prune_rows_centered",
           "prune_rows", "sparse_linear", "wanda_prune"]

_ops = torch.ops.mumoe


def col_norms(x: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Column L2 norms of one prompt's activations, accumulated in fp32.

    x: (T, d) -> (d,), or (B, T, d) -> (B, d) with one row of norms per prompt.
    attention_mask: (T,) / (B, T), bool or 0/1 ints; tokens where it is 0 do not count.
    Raises ValueError when x holds NaN/Inf (non-finite norms)."""
    C.check_activations(x, "col_norms")
    return _ops.col_norms(x, C.check_attention_mask(attention_mask, x, "col_norms"))


def wanda_mask(weight: torch.Tensor, norms: torch.Tensor, density: float | None = None, *,
               pattern: str | None = None) -> torch.Tensor:
    """Bool mask of the k = d_in - floor(d_in * (1 - density)) largest Wanda scores |W_ij| * n_j
    of every row; ties go to the lower column index. norms (d_in,) -> (d_out, d_in);
    norms (B, d_in) -> (B, d_out, d_in). pattern="N:M" instead keeps the N largest of every M
    consecutive columns (density then omitted or N/M; docs/nm.md)."""
    C.check_weight(weight, None, "wanda_mask")
    norms = C.check_norms(norms, weight, "wanda_mask")
    k, m = C.keep_rule(weight.shape[1], density, pattern, "wanda_mask")
    return _ops.wanda_mask(weight, norms, k, m)


def wanda_prune(weight: torch.Tensor, norms: torch.Tensor, density: float | None = None, *,
                pattern: str | None = None) -> torch.Tensor:
    """`weight` with every entry outside `wanda_mask(weight, norms, density, pattern=)` set to zero."""
    C.check_weight(weight, None, "wanda_prune")
    norms = C.check_norms(norms, weight, "wanda_prune")
    k, m = C.keep_rule(weight.shape[1], density, pattern, "wanda_prune")
    return _ops.wanda_prune(weight, norms, k, True, m)


def masked_linear(x: torch.Tensor, weight: torch.Tensor, mask: torch.Tensor,
                  bias: torch.Tensor | None = None) -> torch.Tensor:
    """x @ (weight * mask).T + bias. A (B, d_out, d_in) mask applies per sample of x (B, T, d_in)."""
    C.check_activations(x, "masked_linear")
    C.check_weight(weight, x, "masked_linear")
    C.check_mask(mask, weight, x, "masked_linear")
    C.check_bias(bias, weight, "masked_linear")
    return _ops.masked_linear(x, weight, mask, bias)


def wanda_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                 density: float | None = C.DEFAULT_DENSITY,
                 attention_mask: torch.Tensor | None = None, *, pattern: str | None = None) -> torch.Tensor:
    """The µ-MoE linear: prune `weight` with this prompt's own Wanda scores, then apply it.

    x (T, d_in) is one prompt; x (B, T, d_in) holds B prompts, each with its own norms and mask.
    attention_mask excludes padding tokens from the norms. density=1.0 returns exactly
    torch.nn.functional.linear(x, weight, bias). density defaults to 0.5; pattern="N:M" prunes
    N:M per prompt instead (density omitted or N/M)."""
    C.check_activations(x, "wanda_linear")
    C.check_weight(weight, x, "wanda_linear")
    C.check_bias(bias, weight, "wanda_linear")
    k, m = C.keep_rule(weight.shape[1], density, pattern, "wanda_linear")
    if C.pattern_density(density, pattern, "wanda_linear") == 1.0:
        return F.linear(x, weight, bias)
    am = C.check_attention_mask(attention_mask, x, "wanda_linear")
    return _ops.wanda_linear(x, weight, bias, k, am, m)


def wanda_linear_compact(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                         density: float | None = C.DEFAULT_DENSITY,
                         attention_mask: torch.Tensor | None = None,
                         *, pattern: str | None = None) -> tuple[torch.Tensor, RowSparse]:
    """The µ-MoE prefill: `wanda_linear(x, ...)` and the RowSparse it selected, from ONE selection
    per (prompt, row), so the decode steps (`sparse_linear`) reuse it without selecting again.

    Returns (y, rs): rs is (d_out, k) for 2-D x, batched (B, d_out, k) for 3-D x. Each prompt's y
    and rs do not depend on the other prompts of the batch or on its padding (bit for bit, on the
    CPU), provided its attention mask keeps one contiguous run of tokens. density=1.0 gives y
    exactly torch.nn.functional.linear(x, weight, bias). density defaults to 0.5; with
    pattern="N:M" every row of rs holds k = d_in*N/M values, N in each group of M columns."""
    C.check_activations(x, "wanda_linear_compact")
    C.check_weight(weight, x, "wanda_linear_compact")
    C.check_bias(bias, weight, "wanda_linear_compact")
    am = C.check_attention_mask(attention_mask, x, "wanda_linear_compact")
    k, m = C.keep_rule(weight.shape[1], density, pattern, "wanda_linear_compact")
    y, bitmap, values = _ops.wanda_linear_compact(x, weight, bias, k, am, m)
    return y, RowSparse(bitmap, values, weight.shape[1])


def wanda_linear_centered(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                          density: float | None = C.DEFAULT_DENSITY,
                          attention_mask: torch.Tensor | None = None, *, mean_shift: float,
                          pattern: str | None = None, keep_compact: bool = True
                          ) -> tuple[torch.Tensor, RowSparse | None, torch.Tensor]:
    """µ-MoE with ``mean_shift`` s (docs/mumoe_plus.md), fused: per prompt, μ = the column mean of
    the tokens its attention mask keeps, each row keeps the k largest |W_ij|·‖x_j − s·μ_j‖ (norms
    over those tokens), and y = x·Ŵᵀ + bias + offset with offset = (W − Ŵ)·(s·μ), the part of the
    shifted mean the pruned weights would have carried. One selection per (prompt, row); the offset
    is summed from each row while it is in cache (no extra pass over W).

    Returns (y, rs, offset): rs the RowSparse of the selection (None unless keep_compact), offset
    fp32 (d_out,) for 2-D x or (B, d_out) — decode adds bias + offset to rs's product. Each
    prompt's results do not depend on the rest of its batch or its padding (bit for bit, CPU).
    mean_shift=0 selects exactly like `wanda_linear_compact` (offset 0)."""
    op = "wanda_linear_centered"
    C.check_bias(bias, weight, op)
    am, k, m = _centered_args(x, weight, density, attention_mask, mean_shift, pattern, op)
    y, bitmap, values, offset = _ops.wanda_linear_centered(x, weight, bias, k, float(mean_shift), am,
                                                           m, bool(keep_compact))
    return y, (RowSparse(bitmap, values, weight.shape[1]) if keep_compact else None), offset


def prune_rows_centered(x: torch.Tensor, weight: torch.Tensor, density: float | None = C.DEFAULT_DENSITY,
                        attention_mask: torch.Tensor | None = None, *, mean_shift: float,
                        pattern: str | None = None) -> tuple[RowSparse, torch.Tensor]:
    """The selection of `wanda_linear_centered` alone, from the prompt's tokens x: (rs, offset)."""
    op = "prune_rows_centered"
    am, k, m = _centered_args(x, weight, density, attention_mask, mean_shift, pattern, op)
    bitmap, values, offset = _ops.prune_rows_centered(x, weight, k, float(mean_shift), am, m)
    return RowSparse(bitmap, values, weight.shape[1]), offset


def _centered_args(x, weight, density, attention_mask, mean_shift, pattern, op):
    C.check_activations(x, op)
    C.check_weight(weight, x, op)
    am = C.check_attention_mask(attention_mask, x, op)
    k, m = C.keep_rule(weight.shape[1], density, pattern, op)
    if isinstance(mean_shift, bool) or not isinstance(mean_shift, (int, float)):
        raise TypeError(f"{op}: mean_shift must be a number in [0, 1], got {type(mean_shift).__name__}")
    if not 0.0 <= mean_shift <= 1.0:  # also refuses NaN
        raise ValueError(f"{op}: mean_shift must be in [0, 1], got {mean_shift}")
    return am, k, m


def prune_rows(weight: torch.Tensor, norms: torch.Tensor, density: float | None = None, *,
               pattern: str | None = None) -> RowSparse:
    """The Wanda selection of `weight` (optionally N:M, `pattern=`) in the compact RowSparse format
    (bitmap + packed values)."""
    C.check_weight(weight, None, "prune_rows")
    norms = C.check_norms(norms, weight, "prune_rows")
    k, m = C.keep_rule(weight.shape[1], density, pattern, "prune_rows")
    bitmap, values = _ops.prune_rows(weight, norms, k, m)
    return RowSparse(bitmap, values, weight.shape[1])


def sparse_linear(x: torch.Tensor, rs: RowSparse, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x @ rs.to_dense().T + bias without materialising the dense weight for small T (decode)."""
    C.check_activations(x, "sparse_linear")
    if not isinstance(rs, RowSparse):
        raise TypeError(f"sparse_linear: rs must be a RowSparse, got {type(rs).__name__}")
    C.check_same(x, rs.values, "x", "rs.values", "sparse_linear")
    if x.shape[-1] != rs.d_in:
        raise ValueError(f"sparse_linear: x has d_in={x.shape[-1]} but rs has d_in={rs.d_in}")
    if rs.values.dim() == 3 and (x.dim() != 3 or x.shape[0] != rs.values.shape[0]):
        raise ValueError(f"sparse_linear: a batched RowSparse of {rs.values.shape[0]} prompts needs "
                         f"x of shape (B, T, d_in) with B = {rs.values.shape[0]}, got {tuple(x.shape)}")
    if bias is not None:
        C.check_float(bias, "bias", "sparse_linear")
        C.check_same(x, bias, "x", "bias", "sparse_linear")
        if bias.shape != (rs.values.shape[-2],):
            raise ValueError(f"sparse_linear: bias must have shape ({rs.values.shape[-2]},), "
                             f"got {tuple(bias.shape)}")
    return _ops.sparse_linear(x, rs.bitmap, rs.values, rs.d_in, bias)


# ---- fake kernels: shapes and dtypes only, for torch.compile / export / opcheck ----------------

def _batch(norms):
    return tuple(norms.shape[:-1])


@torch.library.register_fake("mumoe::col_norms")
def _(x, attention_mask):
    return x.new_empty((*x.shape[:-2], x.shape[-1]), dtype=torch.float32)


@torch.library.register_fake("mumoe::wanda_mask")
def _(weight, norms, k, m=0):
    return weight.new_empty((*_batch(norms), *weight.shape), dtype=torch.bool)


@torch.library.register_fake("mumoe::wanda_prune")
def _(weight, norms, k, check_norms=True, m=0):
    return weight.new_empty((*_batch(norms), *weight.shape))


@torch.library.register_fake("mumoe::prune_rows")
def _(weight, norms, k, m=0):
    lead = (*_batch(norms), weight.shape[0])
    return (weight.new_empty((*lead, words_per_row(weight.shape[1])), dtype=torch.int32),
            weight.new_empty((*lead, k)))


@torch.library.register_fake("mumoe::masked_linear")
def _(x, weight, mask, bias):
    return x.new_empty((*x.shape[:-1], weight.shape[0]))


@torch.library.register_fake("mumoe::sparse_linear")
def _(x, bitmap, values, d_in, bias):
    return x.new_empty((*x.shape[:-1], values.shape[-2]))


@torch.library.register_fake("mumoe::wanda_linear_compact")
def _(x, weight, bias, k, attention_mask, m=0):
    lead = (*x.shape[:-2], weight.shape[0])
    return (x.new_empty((*x.shape[:-1], weight.shape[0])),
            weight.new_empty((*lead, words_per_row(weight.shape[1])), dtype=torch.int32),
            weight.new_empty((*lead, k)))


@torch.library.register_fake("mumoe::wanda_linear_centered")
def _(x, weight, bias, k, mean_shift, attention_mask, m=0, keep_compact=True):
    lead = (*x.shape[:-2], weight.shape[0])
    if keep_compact:
        bitmap = weight.new_empty((*lead, words_per_row(weight.shape[1])), dtype=torch.int32)
        values = weight.new_empty((*lead, k))
    else:
        bitmap, values = weight.new_empty((0,), dtype=torch.int32), weight.new_empty((0,))
    return (x.new_empty((*x.shape[:-1], weight.shape[0])), bitmap, values,
            x.new_empty(lead, dtype=torch.float32))


@torch.library.register_fake("mumoe::prune_rows_centered")
def _(x, weight, k, mean_shift, attention_mask, m=0):
    lead = (*x.shape[:-2], weight.shape[0])
    return (weight.new_empty((*lead, words_per_row(weight.shape[1])), dtype=torch.int32),
            weight.new_empty((*lead, k)), x.new_empty(lead, dtype=torch.float32))


@torch.library.register_fake("mumoe::wanda_linear")
def _(x, weight, bias, k, attention_mask, m=0):
    return x.new_empty((*x.shape[:-1], weight.shape[0]))
