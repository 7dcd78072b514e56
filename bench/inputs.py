"""Benchmark inputs, built once per group and reused by every implementation in it.

The caches hold only the latest couple of entries: cases of one group are adjacent (sweep.py),
and a 16384x16384 fp32 weight is 1 GiB, so old shapes must be freed.
"""
from __future__ import annotations

import functools

import torch

import mumoe_ext
from mumoe_ext import reference

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
NORM_TOKENS = 128  # the selection benchmarks take their norms from a 128-token prompt


def _generator(device: str, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


@functools.lru_cache(maxsize=1)
def weight(d_out: int, d_in: int, dtype: str, device: str) -> torch.Tensor:
    w = torch.randn(d_out, d_in, device=device, generator=_generator(device, 0))
    return w.mul_(d_in ** -0.5).to(DTYPES[dtype])


@functools.lru_cache(maxsize=2)
def activations(T: int, d_in: int, dtype: str, device: str) -> torch.Tensor:
    return torch.randn(T, d_in, device=device, generator=_generator(device, 1)).to(DTYPES[dtype])


def norms(d_in: int, dtype: str, device: str) -> torch.Tensor:
    """fp32 column norms of a NORM_TOKENS-token prompt (what µ-MoE computes at prefill)."""
    return reference.col_norms(activations(NORM_TOKENS, d_in, dtype, device))


@functools.lru_cache(maxsize=1)
def row_sparse(d_out: int, d_in: int, dtype: str, device: str, density: float):
    """The compact weight that decode reuses for every generated token (built outside the timing)."""
    return mumoe_ext.prune_rows(weight(d_out, d_in, dtype, device), norms(d_in, dtype, device), density)


def clear() -> None:
    for cache in (weight, activations, row_sparse):
        cache.cache_clear()
