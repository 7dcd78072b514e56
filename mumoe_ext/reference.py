"""Pure-PyTorch twins of every `mumoe_ext` op: the spec in code (DESIGN.md §1).

They are the tests' ground truth and the "torch" baseline of the benchmarks, so they favour
clarity over speed: the selection is a full stable sort, exactly as Wanda's reference code does.
`wanda_mask_topk` / `wanda_mask_kthvalue` are the faster torch formulations of the paper's
Figure 3; they agree with `wanda_mask` except where ties straddle the k-th value.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import _checks as C
from .row_sparse import RowSparse, pack_bitmap

__all__ = ["col_norms", "wanda_mask", "masked_linear", "wanda_linear", "wanda_linear_compact", "prune_rows",
           "sparse_linear", "wanda_scores", "wanda_mask_topk", "wanda_mask_kthvalue"]


def col_norms(x: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-prompt column L2 norms in fp32: (T, d) -> (d,), (B, T, d) -> (B, d).
    Tokens with attention_mask == 0 do not count."""
    C.check_activations(x, "col_norms")
    mask = C.check_attention_mask(attention_mask, x, "col_norms")
    xf = x.float()
    if mask is not None:
        xf = torch.where(mask.unsqueeze(-1), xf, torch.zeros((), dtype=xf.dtype, device=xf.device))
    norms = xf.square().sum(dim=-2).sqrt()
    if not bool(torch.isfinite(norms).all()):
        raise ValueError("col_norms: x contains NaN or Inf (or values whose squares overflow float32)")
    return norms


def wanda_scores(weight: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:
    """S_ij = |W_ij| * n_j in fp32; (d_out, d_in) or (B, d_out, d_in) for (B, d_in) norms."""
    return weight.abs().float() * norms.float().abs().unsqueeze(-2)


def _select(weight, norms, density, op, pattern=None):
    C.check_float(weight, "weight", op)
    if weight.dim() != 2:
        raise ValueError(f"{op}: weight must be (d_out, d_in), got shape {tuple(weight.shape)}")
    norms = C.check_norms(norms, weight, op)
    C.check_norms_finite(norms, op)
    if pattern is None:
        k = C.keep_count(weight.shape[1], density, op)
        C.check_weight_finite(weight, op)
        return wanda_scores(weight, norms), k
    C.keep_rule(weight.shape[1], density, pattern, op)  # the pattern's own checks
    C.check_weight_finite(weight, op)
    return wanda_scores(weight, norms), C.parse_pattern(pattern, op)


def _mask_from_indices(scores, idx):
    return torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, idx, True)


def wanda_mask(weight: torch.Tensor, norms: torch.Tensor, density: float | None = None, *,
               pattern: str | None = None) -> torch.Tensor:
    """Keep the k = d_in - floor(d_in*(1-density)) largest scores of every row; ties go to the
    lower column index (the first k of a stable descending sort). pattern="N:M": the same rule
    inside every group of M consecutive columns, keeping N."""
    scores, k = _select(weight, norms, density, "wanda_mask", pattern)
    if pattern is None:
        idx = torch.sort(scores, dim=-1, descending=True, stable=True).indices[..., :k]
        return _mask_from_indices(scores, idx)
    n, m = k
    groups = scores.reshape(*scores.shape[:-1], scores.shape[-1] // m, m)
    idx = torch.sort(groups, dim=-1, descending=True, stable=True).indices[..., :n]
    return _mask_from_indices(groups, idx).reshape(scores.shape)


def wanda_mask_topk(weight, norms, density):
    """torch.topk formulation (Figure 3 of the paper); tie order is unspecified."""
    scores, k = _select(weight, norms, density, "wanda_mask_topk")
    return _mask_from_indices(scores, torch.topk(scores, k, dim=-1, sorted=False).indices)


def wanda_mask_kthvalue(weight, norms, density):
    """torch.kthvalue formulation: keep scores >= the k-th largest (more than k on ties)."""
    scores, k = _select(weight, norms, density, "wanda_mask_kthvalue")
    d_in = scores.shape[-1]
    tau = torch.kthvalue(scores, d_in - k + 1, dim=-1, keepdim=True).values
    return scores >= tau


def _masked_weight(weight, mask):
    return torch.where(mask, weight, torch.zeros((), dtype=weight.dtype, device=weight.device))


def masked_linear(x: torch.Tensor, weight: torch.Tensor, mask: torch.Tensor,
                  bias: torch.Tensor | None = None) -> torch.Tensor:
    """x @ (weight * mask).T + bias; a (B, d_out, d_in) mask applies per sample of x (B, T, d_in)."""
    C.check_activations(x, "masked_linear")
    C.check_weight(weight, x, "masked_linear")
    C.check_mask(mask, weight, x, "masked_linear")
    C.check_bias(bias, weight, "masked_linear")
    if mask.dim() == 2:
        return F.linear(x, _masked_weight(weight, mask), bias)
    return torch.stack([F.linear(x[b], _masked_weight(weight, mask[b]), bias)
                        for b in range(x.shape[0])])


def wanda_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                 density: float | None = C.DEFAULT_DENSITY,
                 attention_mask: torch.Tensor | None = None, *, pattern: str | None = None) -> torch.Tensor:
    """The µ-MoE linear: prune W per prompt with the prompt's own Wanda scores, then apply it."""
    C.check_activations(x, "wanda_linear")
    C.check_weight(weight, x, "wanda_linear")
    C.check_bias(bias, weight, "wanda_linear")
    C.keep_rule(weight.shape[1], density, pattern, "wanda_linear")
    if pattern is None and float(density) == 1.0:
        return F.linear(x, weight, bias)
    norms = col_norms(x, attention_mask)
    if pattern is not None:
        density = None
    return masked_linear(x, weight, wanda_mask(weight, norms, density, pattern=pattern), bias)


def wanda_linear_compact(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                         density: float | None = C.DEFAULT_DENSITY,
                         attention_mask: torch.Tensor | None = None,
                         *, pattern: str | None = None):
    """(wanda_linear(...), the RowSparse of the same selection): the µ-MoE prefill."""
    C.check_activations(x, "wanda_linear_compact")
    C.check_weight(weight, x, "wanda_linear_compact")
    C.keep_rule(weight.shape[1], density, pattern, "wanda_linear_compact")
    y = wanda_linear(x, weight, bias, density, attention_mask, pattern=pattern)
    if pattern is not None and density is C.DEFAULT_DENSITY:
        density = None
    return y, prune_rows(weight, col_norms(x, attention_mask), density, pattern=pattern)


def prune_rows(weight: torch.Tensor, norms: torch.Tensor, density: float | None = None, *,
               pattern: str | None = None) -> RowSparse:
    """The Wanda mask of `weight`, stored compactly as a RowSparse (bitmap + packed values)."""
    _select(weight, norms, density, "prune_rows", pattern)
    mask = wanda_mask(weight, norms, density, pattern=pattern)
    k = C.keep_rule(weight.shape[1], density, pattern, "prune_rows")[0]
    values = weight.expand_as(mask)[mask].reshape(*mask.shape[:-1], k)
    return RowSparse(pack_bitmap(mask), values, weight.shape[1])


def sparse_linear(x: torch.Tensor, rs: RowSparse, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x @ rs.to_dense().T + bias, per sample for a batched RowSparse."""
    dense = rs.to_dense()
    C.check_activations(x, "sparse_linear")
    C.check_weight(dense if dense.dim() == 2 else dense[0], x, "sparse_linear")
    if dense.dim() == 2:
        return F.linear(x, dense, bias)
    if x.dim() != 3 or x.shape[0] != dense.shape[0]:
        raise ValueError(f"sparse_linear: a batched RowSparse of {dense.shape[0]} prompts needs x of "
                         f"shape (B, T, d_in) with B = {dense.shape[0]}, got {tuple(x.shape)}")
    return torch.stack([F.linear(x[b], dense[b], bias) for b in range(dense.shape[0])])


def prompt_mean(x: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-prompt fp32 column mean over the tokens where attention_mask is 1: (T, d) -> (d,)."""
    xf = x.float()
    if attention_mask is None:
        return xf.mean(dim=-2)
    keep = attention_mask.bool().unsqueeze(-1)
    return torch.where(keep, xf, torch.zeros_like(xf)).sum(dim=-2) / keep.sum(dim=-2).clamp_min(1)


def mean_shift_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                      density: float, mean_shift: float,
                      attention_mask: torch.Tensor | None = None):
    """µ-MoE with ``mean_shift`` s (docs/mumoe_plus.md) as its definition, for one prompt (T, d):
    μ = the column mean of the prompt's tokens, the mask keeps the k largest |W_ij|·‖x_j − s·μ_j‖
    of each row (norms over the prompt's tokens), and y = x·(W⊙M)ᵀ + b + s·(W − W⊙M)·μ.
    Returns (y, mask, c) with c = s·(W − W⊙M)·μ, the per-prompt vector decode adds."""
    mu = prompt_mean(x, attention_mask)
    norms = col_norms(x.float() - mean_shift * mu, attention_mask)
    mask = wanda_mask(weight, norms, density)
    kept = _masked_weight(weight, mask).float()
    c = mean_shift * ((weight.float() - kept) @ mu)
    y = x.float() @ kept.T + c
    if bias is not None:
        y = y + bias.float()
    return y.to(x.dtype), mask, c


def wanda_linear_centered(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                          density: float | None = C.DEFAULT_DENSITY,
                          attention_mask: torch.Tensor | None = None, *, mean_shift: float,
                          pattern: str | None = None, keep_compact: bool = True):
    """`mean_shift_linear` prompt by prompt: (y, RowSparse or None, offset fp32), the op's outputs."""
    if pattern is not None:
        raise NotImplementedError("reference.wanda_linear_centered: unstructured density only")
    if x.dim() == 2:
        y, mask, offset = mean_shift_linear(x, weight, bias, density, mean_shift, attention_mask)
        masks = mask
    else:
        outs = [mean_shift_linear(x[b], weight, bias, density, mean_shift,
                                  None if attention_mask is None else attention_mask[b])
                for b in range(x.shape[0])]
        y, masks, offset = (torch.stack(t) for t in zip(*outs))
    if not keep_compact:
        return y, None, offset
    k = C.keep_rule(weight.shape[1], density, None, "wanda_linear_centered")[0]
    values = weight.expand_as(masks)[masks].reshape(*masks.shape[:-1], k)
    return y, RowSparse(pack_bitmap(masks), values, weight.shape[1]), offset


def prune_rows_centered(x: torch.Tensor, weight: torch.Tensor, density: float | None = C.DEFAULT_DENSITY,
                        attention_mask: torch.Tensor | None = None, *, mean_shift: float,
                        pattern: str | None = None):
    """(RowSparse, offset) of `wanda_linear_centered`'s selection."""
    _, rs, offset = wanda_linear_centered(x, weight, None, density, attention_mask,
                                          mean_shift=mean_shift, pattern=pattern)
    return rs, offset
