"""Magnitude pruning: one threshold per weight matrix (as Wanda's `prune_magnitude`).

The reference prunes ``|W| <= sorted(|W|)[int(numel * sparsity)]``, which removes one weight more
than asked (plus ties). We keep exactly ``numel - floor(numel * (1 - density))`` weights of largest
magnitude per matrix, ties going to the lower flat index, in line with DESIGN §1's counting rule.

With ``pattern="N:M"`` the reference (``prune_n``/``prune_m``) works per row instead: in every group
of M consecutive columns the M - N smallest |W| go (ties: the higher column index goes first).
"""
from __future__ import annotations

import math

import torch

from .._checks import check_density, parse_pattern
from .kernels import op


def magnitude_mask(weight: torch.Tensor, density: float, pattern: str | None = None) -> torch.Tensor:
    """Bool mask keeping the largest-|W| fraction `density` of the whole matrix, or with pattern
    "N:M" the N largest |W| of every M consecutive columns of each row."""
    if parse_pattern(pattern, "magnitude_mask") is not None:
        ones = torch.ones(weight.shape[1], dtype=torch.float32, device=weight.device)
        return op("wanda_mask")(weight.detach(), ones, density, pattern=pattern)
    check_density(density, "magnitude_mask")
    n = weight.numel()
    keep = n - int(math.floor(n * (1.0 - float(density))))
    order = torch.sort(weight.detach().abs().float().flatten(), descending=True, stable=True).indices
    mask = torch.zeros(n, dtype=torch.bool, device=weight.device)
    mask[order[:keep]] = True
    return mask.view_as(weight)


@torch.no_grad()
def prune_magnitude(linears: dict, density: float, pattern: str | None = None) -> None:
    """Zero the smallest-magnitude weights of every linear in place."""
    for linear in linears.values():
        linear.weight.mul_(magnitude_mask(linear.weight, density, pattern))
