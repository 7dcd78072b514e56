"""Offline pruning: magnitude, Wanda and SparseGPT, and the sequential calibration engine."""
from .calibration import LayerInputs, LinearStats, calibration_batches, capture_inputs, prune_sequentially
from .magnitude import magnitude_mask, prune_magnitude
from .offline import OFFLINE_METHODS, all_linears, prune_layers
from .sparsegpt import HessianStats, sparsegpt_weight
from .wanda import WandaStats

__all__ = ["LayerInputs", "LinearStats", "calibration_batches", "capture_inputs",
           "prune_sequentially", "magnitude_mask", "prune_magnitude", "OFFLINE_METHODS",
           "all_linears", "prune_layers", "HessianStats", "sparsegpt_weight", "WandaStats"]
