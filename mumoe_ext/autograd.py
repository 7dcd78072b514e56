"""Backward formulas of the differentiable ops, registered with `torch.library.register_autograd`
so eager autograd, `torch.compile` and `opcheck` all see them.

Every product is y = x @ (W ⊙ M)ᵀ + b with the mask M a constant (the straight-through choice of
Wanda fine-tuning: the selection has no gradient). So, per prompt b when M is batched:

    dx = g @ (W ⊙ M)        dW = Σ_b (gᵀ x) ⊙ M        db = Σ g

`masked_linear_grads` is that formula for any float dtype (fp64 included, so the tests gradcheck
it); the ops' backwards only find their M (given, unpacked from the bitmap, or selected again from
x and W exactly as the forward did) and call it.
"""
from __future__ import annotations

import torch

from .row_sparse import unpack_bitmap

_lib = "mumoe::"


def _masked(weight: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.where(mask, weight, torch.zeros((), dtype=weight.dtype, device=weight.device))


def masked_linear_grads(g, x, weight, mask, needs=(True, True, True)):
    """(dx, dW, db) of y = x @ (weight ⊙ mask)ᵀ + b; mask (d_out, d_in) or (B, d_out, d_in) for
    x (B, T, d_in). Entries not asked for by `needs` are None."""
    need_x, need_w, need_b = needs
    wm = _masked(weight, mask)
    dx = dw = db = None
    if need_x:
        dx = torch.matmul(g, wm)  # (.., T, d_out) @ (B?, d_out, d_in)
    if need_w:
        if mask.dim() == 2:
            dw = g.reshape(-1, g.shape[-1]).t().matmul(x.reshape(-1, x.shape[-1]))
        else:  # one mask per prompt: each prompt's outer product through its own mask
            dw = torch.matmul(g.transpose(-1, -2), x)
        dw = _masked(dw, mask)
        if dw.dim() == 3:
            dw = dw.sum(0)
    if need_b:
        db = g.reshape(-1, g.shape[-1]).sum(0)
    return dx, dw, db


def kept_entries(dense: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """The k entries of each row of `dense` where `mask` is set, in column order (the RowSparse
    values layout), with a static shape (no boolean indexing, so it traces)."""
    cols = torch.argsort((~mask).to(torch.uint8), dim=-1, stable=True)[..., :k]
    return torch.gather(dense, -1, cols)


def _needs(ctx, *idx):
    return tuple(ctx.needs_input_grad[i] for i in idx)


# ---- masked_linear(x, weight, mask, bias) ------------------------------------------------------

def _setup_masked(ctx, inputs, output):
    x, weight, mask, bias = inputs
    ctx.save_for_backward(x, weight, mask)


def _backward_masked(ctx, g):
    x, weight, mask = ctx.saved_tensors
    dx, dw, db = masked_linear_grads(g, x, weight, mask, _needs(ctx, 0, 1, 3))
    return dx, dw, None, db


# ---- sparse_linear(x, bitmap, values, d_in, bias) ----------------------------------------------

def _setup_sparse(ctx, inputs, output):
    x, bitmap, values, d_in, bias = inputs
    ctx.d_in = d_in
    ctx.save_for_backward(x, bitmap, values)


def _backward_sparse(ctx, g):
    x, bitmap, values = ctx.saved_tensors
    need_x, need_v, need_b = _needs(ctx, 0, 2, 4)
    mask = unpack_bitmap(bitmap, ctx.d_in)
    dense = torch.zeros(mask.shape, dtype=values.dtype, device=values.device).masked_scatter(mask, values)
    dx, _, db = masked_linear_grads(g, x, dense, mask, (need_x, False, need_b))
    dv = None
    if need_v:  # dW at the kept entries; a batched RowSparse has its own values per prompt
        if values.dim() == 2:
            outer = g.reshape(-1, g.shape[-1]).t().matmul(x.reshape(-1, x.shape[-1]))
        else:
            outer = torch.matmul(g.transpose(-1, -2), x)
        dv = kept_entries(outer, mask, values.shape[-1])
    return dx, None, dv, None, db


# ---- wanda_linear(x, weight, bias, k, attention_mask, m) and its compact twin -------------------

def _setup_wanda(ctx, inputs, output):
    x, weight, bias, k, attention_mask, m = inputs
    ctx.k, ctx.m = k, m
    ctx.save_for_backward(x, weight, attention_mask)


def _wanda_mask_again(x, weight, attention_mask, k, m):
    """The forward's mask, selected again from the same inputs (the selection is deterministic)."""
    if k == weight.shape[1]:
        return torch.ones(weight.shape, dtype=torch.bool, device=weight.device)
    norms = torch.ops.mumoe.col_norms(x, attention_mask)
    return torch.ops.mumoe.wanda_mask(weight, norms, k, m)


def _backward_wanda(ctx, g):
    x, weight, attention_mask = ctx.saved_tensors
    with torch.no_grad():
        mask = _wanda_mask_again(x, weight, attention_mask, ctx.k, ctx.m)
    dx, dw, db = masked_linear_grads(g, x, weight, mask, _needs(ctx, 0, 1, 2))
    return dx, dw, db, None, None, None


def _setup_wanda_compact(ctx, inputs, output):
    _setup_wanda(ctx, inputs, output)
    ctx.mark_non_differentiable(output[1], output[2])  # the RowSparse is a selection, no gradient


def _backward_wanda_compact(ctx, g, _g_bitmap, _g_values):
    return _backward_wanda(ctx, g)


torch.library.register_autograd(_lib + "masked_linear", _backward_masked, setup_context=_setup_masked)
torch.library.register_autograd(_lib + "sparse_linear", _backward_sparse, setup_context=_setup_sparse)
torch.library.register_autograd(_lib + "wanda_linear", _backward_wanda, setup_context=_setup_wanda)
torch.library.register_autograd(_lib + "wanda_linear_compact", _backward_wanda_compact,
                                setup_context=_setup_wanda_compact)
