"""RowSparse: the compact per-row sparse format of a µ-MoE-pruned weight.

Every row keeps exactly ``k`` weights, so row ``i``'s values start at ``i * k``: no row pointers.

Fields
- ``bitmap``: int32 ``(d_out, ceil(d_in / 32))`` (or ``(B, d_out, ...)`` for a batch of prompts);
  bit ``j % 32`` of word ``j // 32`` is set when column ``j`` is kept (little-endian bit order).
- ``values``: ``(d_out, k)`` (or ``(B, d_out, k)``), the kept weights of each row in column order,
  in the weight's dtype.
- ``d_in``: the dense row length.

Bytes per original weight at density ρ: ``ρ·s + 1/8`` for an ``s``-byte dtype (2ρ + 0.125 in 16-bit).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

WORD_BITS = 32


def words_per_row(d_in: int) -> int:
    return (d_in + WORD_BITS - 1) // WORD_BITS


def pack_bitmap(mask: torch.Tensor) -> torch.Tensor:
    """Bool (..., d_in) -> int32 (..., ceil(d_in/32)), little-endian bits."""
    d_in = mask.shape[-1]
    pad = words_per_row(d_in) * WORD_BITS - d_in
    m = torch.nn.functional.pad(mask.to(torch.int64), (0, pad))
    m = m.reshape(*mask.shape[:-1], -1, WORD_BITS)
    shifts = torch.arange(WORD_BITS, device=mask.device, dtype=torch.int64)
    words = (m << shifts).sum(-1)  # fits in 32 unsigned bits
    return torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)


def unpack_bitmap(bitmap: torch.Tensor, d_in: int) -> torch.Tensor:
    """int32 (..., words) -> bool (..., d_in)."""
    shifts = torch.arange(WORD_BITS, device=bitmap.device, dtype=torch.int32)
    bits = (bitmap.unsqueeze(-1) >> shifts) & 1
    return bits.reshape(*bitmap.shape[:-1], -1)[..., :d_in].bool()


@dataclass(frozen=True)
class RowSparse:
    """A pruned weight with exactly ``k`` kept entries per row (see module docstring)."""

    bitmap: torch.Tensor
    values: torch.Tensor
    d_in: int

    @property
    def k(self) -> int:
        return self.values.shape[-1]

    @property
    def shape(self) -> tuple:
        return (*self.values.shape[:-1], self.d_in)

    @property
    def density(self) -> float:
        return self.k / self.d_in

    @property
    def dtype(self) -> torch.dtype:
        return self.values.dtype

    @property
    def device(self) -> torch.device:
        return self.values.device

    @property
    def nbytes(self) -> int:
        return (self.bitmap.numel() * self.bitmap.element_size()
                + self.values.numel() * self.values.element_size())

    def mask(self) -> torch.Tensor:
        return unpack_bitmap(self.bitmap, self.d_in)

    def to_dense(self) -> torch.Tensor:
        mask = self.mask()
        dense = torch.zeros(mask.shape, dtype=self.values.dtype, device=self.values.device)
        dense[mask] = self.values.reshape(-1)
        return dense

    def to(self, device) -> "RowSparse":
        return RowSparse(self.bitmap.to(device), self.values.to(device), self.d_in)
