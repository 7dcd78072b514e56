"""The µ-MoE linear: an `nn.Linear` that re-prunes itself from every prompt's own activations.

Its `PromptContext` (prompt_context.py) says what the current forward call is:

- ``plain``   prune from this call's activations (`mumoe_ext.wanda_linear`), keep nothing.
- ``prefill`` prune from the prompt with ONE selection that yields both this call's output and the
  compact RowSparse weight (`mumoe_ext.wanda_linear_compact`), which goes to the session of the KV
  cache the call fills.
- ``decode``  the cache already holds tokens: multiply by that cache's RowSparse
  (`mumoe_ext.sparse_linear`: a sparse GEMV for short steps, expanded for a GEMM for long ones).

Variants override `select` (how a prompt's mask is chosen and applied); the phases stay as they are.

``mean_shift`` s (0 = the paper's µ-MoE; docs/mumoe_plus.md): the score uses the norms of the
prompt's activations with s times their column mean μ taken out, ‖x_j − s·μ_j‖, and each row is
compensated for the mean its pruned weights would have seen: y = Ŵx + b + s·(W − Ŵ)μ. One fused op
(`wanda_linear_centered`) computes μ and the centred norms in two passes over the prompt's tokens
and sums each row's s·(W − Ŵ)μ while the row is in cache for its selection; decode adds the kept
vector b + s·(W − Ŵ)μ through the op's bias.
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
                 pattern: str | None = None, mean_shift: float = 0.0):
        nn.Module.__init__(self)  # no fresh weight: share the original Parameters
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.weight = linear.weight
        self.bias = linear.bias
        self.density = float(density)
        self.pattern = pattern
        self.context = context
        self.mean_shift = float(mean_shift)

    def extra_repr(self) -> str:
        extra = f", pattern={self.pattern!r}" if self.pattern else ""
        extra += f", mean_shift={self.mean_shift:g}" if self.mean_shift else ""
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
        if self.mean_shift:
            return self._forward_shifted(x, attention_mask)
        if ctx.phase == PREFILL:
            y, rs = self.select(x, attention_mask, keep_compact=True)
            ctx.session.weights[self] = rs
            return y
        return self.select(x, attention_mask, keep_compact=False)[0]

    def select(self, x: torch.Tensor, attention_mask: torch.Tensor | None, keep_compact: bool,
               bias: torch.Tensor | None = None):
        """(y, RowSparse or None): this prompt's pruned product and, when `keep_compact`, the
        compact weight decode will reuse. x is (T, d) or (B, T, d), one mask per prompt."""
        density = None if self.pattern else self.density
        bias = self.bias if bias is None else bias
        if keep_compact:
            return op("wanda_linear_compact")(x, self.weight, bias, density, attention_mask,
                                              pattern=self.pattern)
        return op("wanda_linear")(x, self.weight, bias, density, attention_mask,
                                  pattern=self.pattern), None

    def _forward_shifted(self, x: torch.Tensor, attention_mask: torch.Tensor | None):
        keep = self.context.phase == PREFILL
        density = None if self.pattern else self.density
        y, rs, offset = op("wanda_linear_centered")(x, self.weight, self.bias, density, attention_mask,
                                                    mean_shift=self.mean_shift, pattern=self.pattern,
                                                    keep_compact=keep)
        if keep:
            # decode multiplies x by rs: its bias carries bias + s·(W − Ŵ)μ
            add = (offset if self.bias is None else offset + self.bias).to(x.dtype)
            session = self.context.session
            session.weights[self] = rs
            session.biases[self] = add if x.dim() == 2 else add.unsqueeze(-2)
        return y

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
        shifted = self.context.session.biases.get(self)
        if shifted is None:
            return torch.ops.mumoe.sparse_linear(x, rs.bitmap, rs.values, rs.d_in, self.bias)
        if shifted.dim() == 1:  # one prompt: bias + s·(W − Ŵ)μ as the op's bias
            return torch.ops.mumoe.sparse_linear(x, rs.bitmap, rs.values, rs.d_in, shifted)
        return torch.ops.mumoe.sparse_linear(x, rs.bitmap, rs.values, rs.d_in, None) + shifted


def prompt_mean(x: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """fp32 column mean over a prompt's tokens, (T, d) -> (d,) or (B, T, d) -> (B, d); tokens where
    attention_mask is 0 do not count."""
    if attention_mask is None:
        return x.mean(dim=-2, dtype=torch.float32)
    w = attention_mask.to(torch.float32).unsqueeze(-1)
    return (x.float() * w).sum(dim=-2) / w.sum(dim=-2).clamp_min(1.0)


def cache_weights(model: nn.Module, cache) -> dict:
    """{linear name: RowSparse} that µ-MoE chose for the prompt(s) `cache` holds (empty when
    µ-MoE did not fill it)."""
    from .prompt_context import session_of
    session = session_of(cache)
    if session is None:
        return {}
    return {name: session.weights[m] for name, m in model.named_modules()
            if isinstance(m, MuMoELinear) and m in session.weights}
