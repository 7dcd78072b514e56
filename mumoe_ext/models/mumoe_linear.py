"""The µ-MoE linear: an `nn.Linear` that re-prunes itself from every prompt's own activations.

A `PromptContext`, shared by all µ-MoE linears of one model and filled by a forward pre-hook on
the top model, tells each linear (a) the prompt's attention mask, so padding does not count in the
norms, and (b) the phase of the call:

- ``plain``   no KV cache: prune from this call's activations (`mumoe_ext.wanda_linear`).
- ``prefill`` a KV cache is being started: prune from the prompt and remember the mask.
- ``decode``  the cache already holds tokens: reuse the prefill mask (DESIGN §1 "Generation"),
  through `mumoe_ext.sparse_linear` on a compact `RowSparse` weight for short steps when the
  compiled op exists, else the masked dense weight.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..pruning.kernels import has_op, op

PLAIN, PREFILL, DECODE = "plain", "prefill", "decode"
# Decode chunks of at most this many tokens use the compact RowSparse weight; longer ones
# (e.g. scoring a continuation in one call) use the masked dense weight and a GEMM.
SPARSE_DECODE_MAX_T = 8


def cache_length(past_key_values) -> int:
    """Tokens already held by a KV cache (a transformers Cache or the legacy tuple format)."""
    if past_key_values is None:
        return 0
    get = getattr(past_key_values, "get_seq_length", None)
    if callable(get):
        return int(get())
    try:
        return int(past_key_values[0][0].shape[-2])
    except (TypeError, IndexError, AttributeError):
        return 0


class PromptContext:
    """What the current forward call is: its attention mask and its phase."""

    def __init__(self):
        self.attention_mask: torch.Tensor | None = None
        self.batch_shape: tuple[int, int] | None = None  # (prompts, tokens) of this call
        self.phase = PLAIN

    def prompt_view(self, x: torch.Tensor) -> torch.Tensor:
        """x as (B, T, d) when a model flattened its B prompts into (B*T, d) rows (OPT does
        before fc1/fc2), so that each prompt still gets its own norms and mask."""
        if x.dim() == 2 and self.batch_shape is not None:
            b, t = self.batch_shape
            if b > 1 and b * t == x.shape[0]:
                return x.view(b, t, x.shape[-1])
        return x

    def mask_for(self, x: torch.Tensor) -> torch.Tensor | None:
        am = self.attention_mask
        if am is not None and tuple(am.shape) == tuple(x.shape[:-1]) and am.device == x.device:
            return am
        return None

    def pre_hook(self, module, args, kwargs):
        """forward pre-hook (with_kwargs) on the top model."""
        am = kwargs.get("attention_mask")
        if am is None and len(args) > 1 and isinstance(args[1], torch.Tensor):
            am = args[1]  # forward(input_ids, attention_mask, ...) called positionally
        self.attention_mask = am if isinstance(am, torch.Tensor) and am.dim() == 2 else None
        self.batch_shape = self._batch_shape(args, kwargs)
        use_cache = kwargs.get("use_cache")
        if use_cache is None:
            use_cache = bool(getattr(getattr(module, "config", None), "use_cache", False))
        if cache_length(kwargs.get("past_key_values")) > 0:
            self.phase = DECODE
        else:
            self.phase = PREFILL if use_cache else PLAIN

    def post_hook(self, module, args, output):
        # a later direct call of a submodule must not inherit this call's mask or phase
        self.attention_mask = None
        self.batch_shape = None
        self.phase = PLAIN

    def _batch_shape(self, args, kwargs):
        if self.attention_mask is not None:
            return tuple(self.attention_mask.shape)
        ids = kwargs.get("input_ids", args[0] if args else None)
        if isinstance(ids, torch.Tensor) and ids.dim() == 2:
            return tuple(ids.shape)
        embeds = kwargs.get("inputs_embeds")
        if isinstance(embeds, torch.Tensor) and embeds.dim() == 3:
            return tuple(embeds.shape[:2])
        return None


class MuMoELinear(nn.Linear):
    """Keeps the original `weight`/`bias` Parameters (same state_dict keys, same devices) and
    prunes them per prompt in forward; `density` is the fraction of weights kept per row."""

    def __init__(self, linear: nn.Linear, density: float, context: PromptContext):
        nn.Module.__init__(self)  # no fresh weight: share the original Parameters
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.weight = linear.weight
        self.bias = linear.bias
        self.density = float(density)
        self.context = context
        self.clear_prompt_cache()

    def clear_prompt_cache(self):
        self._norms = self._mask = self._rowsparse = None

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, density={self.density}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.density == 1.0:
            return F.linear(x, self.weight, self.bias)
        prompts = self.context.prompt_view(x)
        y = self._forward(prompts)
        return y if prompts is x else y.reshape(*x.shape[:-1], self.out_features)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        phase = self.context.phase
        if phase == DECODE and self._mask is not None:
            return self._decode(x)
        attention_mask = self.context.mask_for(x)
        if phase == PREFILL:
            return self._prefill(x, attention_mask)
        return op("wanda_linear")(x, self.weight, self.bias, self.density, attention_mask)

    def _prefill(self, x, attention_mask):
        self._norms = op("col_norms")(x, attention_mask)
        self._mask = op("wanda_mask")(self.weight, self._norms, self.density)
        self._rowsparse = None
        return op("masked_linear")(x, self.weight, self._mask, self.bias)

    def _decode(self, x):
        if self._mask.dim() == 3 and (x.dim() != 3 or x.shape[0] != self._mask.shape[0]):
            raise ValueError(f"MuMoELinear: decode input of shape {tuple(x.shape)} does not match "
                             f"the {self._mask.shape[0]} prompt(s) of the prefill")
        if x.shape[-2] <= SPARSE_DECODE_MAX_T and has_op("prune_rows") and has_op("sparse_linear"):
            if self._rowsparse is None:
                self._rowsparse = op("prune_rows")(self.weight, self._norms, self.density)
            return op("sparse_linear")(x, self._rowsparse, self.bias)
        return op("masked_linear")(x, self.weight, self._mask, self.bias)
