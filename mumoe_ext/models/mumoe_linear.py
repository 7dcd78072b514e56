"""The µ-MoE linear: an `nn.Linear` that re-prunes itself from every prompt's own activations.

Its `PromptContext` (prompt_context.py) says what the current forward call is:

- ``plain``   prune from this call's activations (`mumoe_ext.wanda_linear`), keep nothing.
- ``prefill`` prune from the prompt with ONE selection that yields both this call's output and the
  compact RowSparse weight (`mumoe_ext.wanda_linear_compact`), which goes to the session of the KV
  cache the call fills.
- ``decode``  the cache already holds tokens: multiply by that cache's RowSparse
  (`mumoe_ext.sparse_linear`: a sparse GEMV for short steps, expanded for a GEMM for long ones).

Variants override `select` (how a prompt's mask is chosen and applied); the phases stay as they are.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..pruning.kernels import op
from .prompt_context import DECODE, PREFILL, PromptContext


class MuMoELinear(nn.Linear):
    """Keeps the original `weight`/`bias` Parameters (same state_dict keys, same devices) and
    prunes them per prompt in forward; `density` is the fraction of weights kept per row, or with
    `pattern` "N:M" the N largest of every M consecutive columns are kept (density N/M)."""

    def __init__(self, linear: nn.Linear, density: float, context: PromptContext,
                 pattern: str | None = None):
        nn.Module.__init__(self)  # no fresh weight: share the original Parameters
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.weight = linear.weight
        self.bias = linear.bias
        self.density = float(density)
        self.pattern = pattern
        self.context = context

    def extra_repr(self) -> str:
        extra = f", pattern={self.pattern!r}" if self.pattern else ""
        return f"{super().extra_repr()}, density={self.density}{extra}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.density == 1.0:
            return F.linear(x, self.weight, self.bias)
        prompts = self.context.prompt_view(x)
        y = self._forward(prompts)
        return y if prompts is x else y.reshape(*x.shape[:-1], self.out_features)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        ctx = self.context
        if ctx.phase == DECODE:
            return self._decode(x)
        attention_mask = ctx.mask_for(x)
        if ctx.phase == PREFILL:
            y, rs = self.select(x, attention_mask, keep_compact=True)
            ctx.session.weights[self] = rs
            return y
        return self.select(x, attention_mask, keep_compact=False)[0]

    def select(self, x: torch.Tensor, attention_mask: torch.Tensor | None, keep_compact: bool):
        """(y, RowSparse or None): this prompt's pruned product and, when `keep_compact`, the
        compact weight decode will reuse. x is (T, d) or (B, T, d), one mask per prompt."""
        density = None if self.pattern else self.density
        if keep_compact:
            return op("wanda_linear_compact")(x, self.weight, self.bias, density, attention_mask,
                                              pattern=self.pattern)
        return op("wanda_linear")(x, self.weight, self.bias, density, attention_mask,
                                  pattern=self.pattern), None

    def _decode(self, x: torch.Tensor) -> torch.Tensor:
        rs = self.context.session.weights.get(self)
        if rs is None:
            raise RuntimeError("MuMoELinear: this KV cache's prefill did not run this linear, so it "
                               "has no mask for it")
        if rs.values.dim() == 3 and (x.dim() != 3 or x.shape[0] != rs.values.shape[0]):
            raise ValueError(f"MuMoELinear: decode input of shape {tuple(x.shape)} does not match "
                             f"the {rs.values.shape[0]} prompt(s) of the prefill")
        # Straight to the op: it checks its arguments in C++, and the Python wrapper's checks would
        # run for every linear at every generated token.
        return torch.ops.mumoe.sparse_linear(x, rs.bitmap, rs.values, rs.d_in, self.bias)


def cache_weights(model: nn.Module, cache) -> dict:
    """{linear name: RowSparse} that µ-MoE chose for the prompt(s) `cache` holds (empty when
    µ-MoE did not fill it)."""
    from .prompt_context import session_of
    session = session_of(cache)
    if session is None:
        return {}
    return {name: session.weights[m] for name, m in model.named_modules()
            if isinstance(m, MuMoELinear) and m in session.weights}
