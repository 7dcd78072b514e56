"""SparseGPT (IST-DASLab/sparsegpt `SparseGPT.add_batch` / `fasterprune`), unstructured.

Hessian ``H = (2 / n) Σ X Xᵀ`` over n calibration sequences in fp32, dampened by
``percdamp · mean(diag H)``; columns are processed in blocks of `blocksize`: the block's mask
prunes the smallest ``w² / [H⁻¹]_jj²`` over the *whole block* (all rows together, as the reference
does), then the OBS update spreads each pruned column's error onto the columns to its right.
The reference prunes ``score <= sorted[int(numel·sparsity)]`` (one extra weight plus ties); we
prune exactly ``floor(numel·(1 − density))`` per block, ties pruning the lower flat index first.

``pattern="N:M"`` is the reference's ``prunen``/``prunem`` path: when the sweep reaches the first
column of a group of M, each row prunes the M - N smallest scores of that group, computed from the
weights as the sweep has updated them so far (ties: the higher column goes first, keeping the
lower one as everywhere else in mumoe). `blocksize` must then be a multiple of M.
"""
from __future__ import annotations

import math

import torch

from .._checks import parse_pattern, pattern_density
from .calibration import LinearStats


class HessianStats(LinearStats):
    """fp32 Σ XᵀX over calibration tokens and the number of sequences seen."""

    def __init__(self, linear):
        d = linear.in_features
        self.xtx = torch.zeros(d, d, dtype=torch.float32, device=linear.weight.device)
        self.samples = 0

    def add(self, x: torch.Tensor) -> None:
        self.samples += x.shape[0] if x.dim() == 3 else 1
        x = x.reshape(-1, x.shape[-1]).float()
        if self.xtx.is_meta:  # accelerate offloads the weight: accumulate where the inputs are
            self.xtx = torch.zeros_like(self.xtx, device=x.device)
        self.xtx.addmm_(x.t(), x)

    @property
    def hessian(self) -> torch.Tensor:
        return self.xtx * (2.0 / max(self.samples, 1))


def _block_prune_mask(scores: torch.Tensor, density: float) -> torch.Tensor:
    n = scores.numel()
    n_prune = int(math.floor(n * (1.0 - density)))
    order = torch.sort(scores.flatten(), stable=True).indices
    pruned = torch.zeros(n, dtype=torch.bool, device=scores.device)
    pruned[order[:n_prune]] = True
    return pruned.view_as(scores)


def _group_prune_mask(scores: torch.Tensor, n: int) -> torch.Tensor:
    """Per row of (rows, M) scores: True for all but the n largest (stable: ties keep the lower column)."""
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    return torch.ones_like(scores, dtype=torch.bool).scatter_(1, order[:, :n], False)


@torch.no_grad()
def sparsegpt_weight(weight: torch.Tensor, hessian: torch.Tensor, density: float | None,
                     blocksize: int = 128, percdamp: float = 0.01,
                     pattern: str | None = None) -> torch.Tensor:
    """The pruned and OBS-updated weight (fp32, same shape); inputs are not modified."""
    density = pattern_density(density, pattern, "sparsegpt")
    nm = parse_pattern(pattern, "sparsegpt")
    if blocksize < 1:
        raise ValueError(f"sparsegpt: blocksize must be >= 1, got {blocksize}")
    if nm is not None and (blocksize % nm[1] or weight.shape[1] % nm[1]):
        raise ValueError(f"sparsegpt: pattern={pattern!r} needs M={nm[1]} to divide blocksize="
                         f"{blocksize} and d_in={weight.shape[1]}")
    if not percdamp >= 0:
        raise ValueError(f"sparsegpt: percdamp must be >= 0, got {percdamp}")
    W = weight.detach().float().clone()
    H = hessian.detach().float().clone()
    d_in = W.shape[1]
    if H.shape != (d_in, d_in):
        raise ValueError(f"sparsegpt: hessian must be ({d_in}, {d_in}), got {tuple(H.shape)}")
    dead = torch.diag(H) == 0  # columns never activated: prune-free, weight irrelevant
    H[dead, dead] = 1
    W[:, dead] = 0
    idx = torch.arange(d_in, device=H.device)
    H[idx, idx] += percdamp * torch.mean(torch.diag(H))
    # Upper Cholesky factor of H^-1: row i holds the OBS update for column i given columns < i.
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    for i1 in range(0, d_in, blocksize):
        i2 = min(i1 + blocksize, d_in)
        W1 = W[:, i1:i2].clone()
        Hinv1 = Hinv[i1:i2, i1:i2]
        Err1 = torch.zeros_like(W1)
        diag1 = torch.diag(Hinv1)
        if nm is None:
            pruned = _block_prune_mask(W1.square() / diag1.square().unsqueeze(0), density)
        else:
            pruned = torch.zeros_like(W1, dtype=torch.bool)
        for i in range(i2 - i1):
            if nm is not None and i % nm[1] == 0:
                g = slice(i, i + nm[1])
                pruned[:, g] = _group_prune_mask(W1[:, g].square() / diag1[g].square().unsqueeze(0), nm[0])
            # OBS: zero the pruned entries of column i, move their error onto columns >= i
            err = W1[:, i] * pruned[:, i].to(W1.dtype) / Hinv1[i, i]
            W1[:, i:].addr_(err, Hinv1[i, i:], alpha=-1.0)
            Err1[:, i] = err
        W1.masked_fill_(pruned, 0.0)  # exact zeros (the update leaves rounding residue there)
        W[:, i1:i2] = W1
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    return W


@torch.no_grad()
def prune_sparsegpt_linear(linear, stats: HessianStats, density: float, blocksize: int = 128,
                           percdamp: float = 0.01, pattern: str | None = None) -> None:
    new = sparsegpt_weight(linear.weight, stats.hessian, None if pattern else density, blocksize,
                           percdamp, pattern)
    linear.weight.copy_(new.to(linear.weight.dtype))
