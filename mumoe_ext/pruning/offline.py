"""Offline (calibrated) pruning of any list of layers: Wanda or SparseGPT through the engine.

`prune_layers` is the reusable entry point: give it the model to run, the ModuleList of layers to
prune (an LLM's decoder layers, or e.g. a vision tower's encoder layers), calibration batches and,
optionally, which linears of each layer to prune.
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Callable, Iterable

from torch import nn

from .calibration import capture_inputs, prune_sequentially
from .sparsegpt import HessianStats, prune_sparsegpt_linear
from .wanda import WandaStats, prune_wanda_linear

OFFLINE_METHODS = ("wanda", "sparsegpt")


def all_linears(i: int, layer: nn.Module) -> dict:
    return {name: m for name, m in layer.named_modules() if isinstance(m, nn.Linear)}


def prune_layers(model: nn.Module, layers, method: str, density: float, batches: Iterable[dict],
                 linears_of: Callable[[int, nn.Module], dict] = all_linears, progress: bool = True,
                 on_pruned: Callable | None = None, blocksize: int = 128,
                 percdamp: float = 0.01, edit_weight: Callable | None = None,
                 pattern: str | None = None) -> None:
    """Sequentially calibrate and prune `layers` of `model` in place.

    `batches`: dicts of model-forward kwargs. `on_pruned(name, linear, stats)` is called after each
    linear is pruned (tests use it to see the accumulated norms / Hessians).
    `pattern` "N:M": N:M sparsity as the references' prune_n/prune_m (density must be N/M).
    `edit_weight(name, linear)`: a context manager around each linear's pruning that makes
    `linear.weight` real and keeps the result (`models.pruned_weights`: accelerate offloading).
    """
    if method not in OFFLINE_METHODS:
        raise ValueError(f"method must be one of {OFFLINE_METHODS} here, got {method!r}")
    if len(layers) == 0:
        raise ValueError("layers: nothing to prune (empty layer list)")
    if method == "wanda":
        new_stats = lambda name, lin: WandaStats(lin)
        prune_one = lambda lin, st: prune_wanda_linear(lin, st, density, pattern)
    else:
        new_stats = lambda name, lin: HessianStats(lin)
        prune_one = lambda lin, st: prune_sparsegpt_linear(lin, st, density, blocksize, percdamp,
                                                           pattern)

    def prune(name, linear, stats):
        with edit_weight(name, linear) if edit_weight is not None else nullcontext():
            prune_one(linear, stats)
            if on_pruned is not None:
                on_pruned(name, linear, stats)

    inputs = capture_inputs(model, layers[0], batches, progress=progress)
    prune_sequentially(layers, inputs, linears_of, new_stats, prune, progress=progress,
                       desc=f"{method} {pattern or f'{density:g}'}")
