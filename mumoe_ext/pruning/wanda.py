"""Offline Wanda (locuslab/wanda `prune_wanda` + `WrappedGPT`): norms from a calibration set.

The reference accumulates ``scaler_row`` = running mean over samples of the squared column norms
and scores ``|W| * sqrt(scaler_row)``. We accumulate the plain fp32 sum of squares: the scores
differ by one positive factor per matrix, so the per-row order is identical, and the norms are
exactly what `mumoe_ext.col_norms` gives on the concatenated calibration tokens. The mask is
`mumoe_ext.wanda_mask` on those norms, so offline Wanda and µ-MoE share one selection rule
(ties keep the lower column; the reference's ascending stable sort would prune it instead).
``pattern="N:M"`` is the reference's ``prune_n``/``prune_m`` path: the same scores, N kept in
every group of M consecutive columns (`wanda_mask(..., pattern=)`).
"""
from __future__ import annotations

import torch

from .kernels import op
from .calibration import LinearStats


class WandaStats(LinearStats):
    """fp32 sum over calibration tokens of x_j^2, per input column j."""

    def __init__(self, linear):
        self.sum_squares = torch.zeros(linear.in_features, dtype=torch.float32,
                                       device=linear.weight.device)
        self.tokens = 0

    def add(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, x.shape[-1]).float()
        if self.sum_squares.is_meta:  # accelerate offloads the weight: count where the inputs are
            self.sum_squares = torch.zeros_like(self.sum_squares, device=x.device)
        self.sum_squares += x.square().sum(dim=0)
        self.tokens += x.shape[0]

    @property
    def norms(self) -> torch.Tensor:
        return self.sum_squares.sqrt()


@torch.no_grad()
def prune_wanda_linear(linear, stats: WandaStats, density: float,
                       pattern: str | None = None) -> torch.Tensor:
    """Zero the pruned weights of `linear` in place; returns the keep mask."""
    mask = op("wanda_mask")(linear.weight, stats.norms, density, pattern=pattern)
    linear.weight.mul_(mask)
    return mask
