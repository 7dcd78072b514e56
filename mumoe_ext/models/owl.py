"""OWL's per-layer density allocation (luuyin/OWL, `prune_wanda_outlier`), for µ-MoE.

Each decoder layer's outlier ratio is the fraction of its scores above `m` times their mean,
over all pruned linears of the layer together. The ratios are mapped linearly onto
[0, 2·lam], shifted so that their mean is the target density, and layer i keeps that density in
every one of its matrices (each row still exactly k). Layers with more outliers keep more.

µ-MoE's per-prompt score is |W_ij|·‖x_j‖; the allocation has to be fixed before the prompt
runs (layer i's inputs depend on layers < i), so its score here is the prompt-free part |W_ij|
(docs/mumoe_plus.md shows this did better than activation-weighted ratios from calibration text).
"""
from __future__ import annotations

import torch


@torch.no_grad()
def outlier_ratio(weights, m: float) -> float:
    """Fraction of the entries of |W| (all `weights` together) above m times their mean."""
    total = sum(w.numel() for w in weights)
    mean = sum(float(w.float().abs().sum()) for w in weights) / total
    return sum(int((w.float().abs() > m * mean).sum()) for w in weights) / total


def owl_densities(layers: dict, density: float, m: float = 5.0, lam: float = 0.08) -> dict:
    """{layer index: density} for {layer index: [weights of its pruned linears]}; the mean over
    layers is `density`. Raises ValueError when a layer's density would leave (0, 1]."""
    keys = sorted(layers)
    ratios = torch.tensor([outlier_ratio(layers[i], m) for i in keys], dtype=torch.float64)
    spread = float(ratios.max() - ratios.min())
    scaled = (ratios - ratios.min()) / spread * (2 * lam) if spread > 0 else torch.zeros_like(ratios)
    out = scaled - scaled.mean() + density
    if float(out.min()) <= 0 or float(out.max()) > 1:
        raise ValueError(f"owl_lambda={lam} spreads the layer densities over "
                         f"[{float(out.min()):.3f}, {float(out.max()):.3f}] around density={density}; "
                         f"they must stay in (0, 1]: lower owl_lambda")
    return {i: float(d) for i, d in zip(keys, out)}
