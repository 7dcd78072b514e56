"""mumoe_ext: test-time pruning as a micro-grained mixture of experts (µ-MoE) for PyTorch.

Every op has a pure-torch twin in `mumoe_ext.reference`. Set MUMOE_CPU_ISA=scalar|avx2|avx512|neon
to force a CPU path.
"""
import os as _os

import torch as _torch  # noqa: F401  (loads libtorch before our library)

from . import _C

try:  # a bad MUMOE_CPU_ISA fails here, at import, with the reason, not with SIGILL later
    _C.set_cpu_isa(_os.environ.get("MUMOE_CPU_ISA", ""))
except ValueError as _e:
    raise ImportError(f"mumoe_ext: {_e}") from None

from .build_info import build_info, cpu_isa, set_cpu_isa
from .memory import empty_cache, memory_stats
from .ops import (col_norms, masked_linear, prune_rows, prune_rows_centered, sparse_linear,
                  wanda_linear, wanda_linear_centered, wanda_linear_compact, wanda_mask,
                  wanda_prune)
from .row_sparse import RowSparse
from . import autograd as _autograd  # noqa: F401  (registers the ops' backward formulas)

__version__ = _C.version
__all__ = ["col_norms", "wanda_mask", "wanda_prune", "masked_linear", "wanda_linear",
           "wanda_linear_compact", "wanda_linear_centered", "prune_rows", "prune_rows_centered",
           "sparse_linear", "RowSparse", "build_info", "set_cpu_isa", "cpu_isa", "empty_cache",
           "memory_stats", "sparsify",
           "restore", "load_model", "MuMoELinear", "perplexity"]

# The model layer and the harness import transformers: load them on first use, not with the kernels.
_LAZY = {"sparsify": "models", "restore": "models", "load_model": "models",
         "MuMoELinear": "models", "perplexity": "eval"}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'mumoe_ext' has no attribute {name!r}")
