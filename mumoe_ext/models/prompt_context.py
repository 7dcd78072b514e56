"""What a forward call of a µ-MoE model is: its phase, its padding, and the KV cache its masks belong to.

One `PromptContext` serves all µ-MoE linears of a model; a forward pre-hook on the top model fills
it and a forward hook clears it. The phase comes from the KV cache object itself (found by type,
not by keyword), never from a keyword name (DESIGN §1 "Generation"):

- ``plain``   no cache and ``use_cache`` off: each linear prunes from this call's activations.
- ``prefill`` an empty cache, or ``use_cache`` on with none given: each linear prunes from the
  prompt and keeps its compact weight in a `CacheSession` attached to the cache the call fills.
- ``decode``  the cache already holds tokens: each linear reuses the compact weight of that
  cache's session. A cache without one (filled before `sparsify`, by another model, or by
  another `sparsify`) raises: its prompt's masks cannot be recovered.
"""
from __future__ import annotations

import copy
import weakref

import torch

from .hf_cache import cache_in_output, cache_length, find_cache

PLAIN, PREFILL, DECODE = "plain", "prefill", "decode"
SESSION_ATTR = "_mumoe_session"  # our attribute on the transformers Cache object


class CacheSession:
    """µ-MoE's state for one KV cache: the RowSparse weight every µ-MoE linear chose at the prefill
    of the prompt(s) the cache holds. It lives and dies with the cache (it is an attribute of it);
    a deep copy of the cache (prompt caching) shares the same, never-mutated, weights."""

    def __init__(self, owner: "PromptContext", batch: int):
        self._owner = weakref.ref(owner)
        self.batch = batch
        self.weights: dict = {}  # MuMoELinear -> RowSparse
        self.biases: dict = {}   # MuMoELinear -> its decode bias, when the prompt changes it (mean_shift)

    def owned_by(self, context) -> bool:
        return self._owner() is context

    def __deepcopy__(self, memo):
        clone = copy.copy(self)
        clone.weights = dict(self.weights)
        clone.biases = dict(self.biases)
        return clone


def session_of(cache) -> CacheSession | None:
    return getattr(cache, SESSION_ATTR, None)


def _first_tensor_mask(mask):
    """A per-layer-type dict of masks (transformers 5 with mixed attention) -> the full-attention one."""
    if isinstance(mask, dict):
        mask = mask.get("full_attention", next((v for v in mask.values() if v is not None), None))
    return mask


def tokens_mask(attention_mask, batch: int, tokens: int, past: int) -> torch.Tensor | None:
    """(batch, tokens) bool: which of this call's tokens are real (not padding), or None for all.

    2-D masks cover the past tokens too: this call's are the last `tokens` columns. 4-D masks
    (batch, heads, tokens, keys), bool (True = attend) or additive float (0 = attend), are what
    `generate` builds for a StaticCache: a key is a real token when a query that respects causality
    attends it (rows that attend future keys are padding rows some releases unmask)."""
    mask = _first_tensor_mask(attention_mask)
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"µ-MoE cannot read padding from an attention mask of type "
                        f"{type(mask).__name__}; use attn_implementation='sdpa' or 'eager', or pass "
                        f"a 2-D attention_mask")
    if mask.dim() == 2:
        if mask.shape[0] != batch or mask.shape[1] < tokens:
            raise ValueError(f"µ-MoE: attention_mask of shape {tuple(mask.shape)} does not cover "
                             f"the call's {batch} x {tokens} tokens")
        keep = mask[:, mask.shape[1] - tokens:] != 0
    elif mask.dim() == 4:
        if past > 0:
            return None  # a continuation reuses its masks: no norms are taken
        allowed = mask[:, 0] if mask.dtype == torch.bool else mask[:, 0] > torch.finfo(mask.dtype).min / 2
        q = torch.arange(allowed.shape[1], device=mask.device)
        future = torch.arange(allowed.shape[2], device=mask.device).unsqueeze(0) > q.unsqueeze(1)
        causal_rows = ~(allowed & future).any(-1)                       # (batch, tokens)
        keep = (allowed & causal_rows.unsqueeze(-1)).any(1)[:, :tokens]  # (batch, tokens)
    else:
        raise ValueError(f"µ-MoE: attention_mask must be 2-D or 4-D, got shape {tuple(mask.shape)}")
    return None if bool(keep.all()) else keep


def _positional(args, kwargs, name, index):
    value = kwargs.get(name)
    if value is None and len(args) > index and isinstance(args[index], torch.Tensor):
        value = args[index]
    return value


class PromptContext:
    """The current forward call of one µ-MoE model (see the module docstring)."""

    def __init__(self):
        self._clear()

    def _clear(self):
        self.phase = PLAIN
        self.token_mask: torch.Tensor | None = None     # (B, T) bool, None when no padding
        self._masks_on: dict = {}                        # device -> token_mask there
        self.batch_shape: tuple[int, int] | None = None  # (prompts, tokens) of this call
        self.session: CacheSession | None = None
        self._cache = None
        self._active = False

    # ---- hooks on the top model ------------------------------------------------------------
    def pre_hook(self, module, args, kwargs):
        if self._active:  # a nested call of the top model: the outer call decides
            return
        self._clear()
        self._active = True
        cache = find_cache(args, kwargs)
        self.batch_shape = _batch_shape(args, kwargs)
        past = cache_length(cache)
        use_cache = kwargs.get("use_cache")
        if use_cache is None:
            use_cache = bool(getattr(getattr(module, "config", None), "use_cache", False))
        if past > 0:
            self.phase = DECODE
            self.session = self._session_for(cache, past)
        else:
            self.phase = PREFILL if (cache is not None or use_cache) else PLAIN
            if self.batch_shape is not None:
                b, t = self.batch_shape
                self.token_mask = tokens_mask(_positional(args, kwargs, "attention_mask", 1), b, t, 0)
            if self.phase == PREFILL:
                self.session = CacheSession(self, self.batch_shape[0] if self.batch_shape else 1)
                self._cache = cache

    def post_hook(self, module, args, output):
        """Forward hook registered with always_call=True: it also runs when the forward raised."""
        if not self._active:
            return
        try:
            if self.phase == PREFILL:
                cache = self._cache if self._cache is not None else cache_in_output(output)
                if cache is not None and output is not None:
                    setattr(cache, SESSION_ATTR, self.session)
        finally:
            self._clear()  # a later direct call of a submodule inherits nothing

    def _session_for(self, cache, past) -> CacheSession:
        session = session_of(cache)
        if session is None:
            raise ValueError(f"µ-MoE: the KV cache holds {past} tokens that this µ-MoE model did not "
                             f"prefill (filled before sparsify, by another model, or rebuilt from "
                             f"tensors), so the prompt's masks are unknown; start from an empty cache")
        if not session.owned_by(self):
            raise ValueError("µ-MoE: the KV cache was filled by another µ-MoE model (or before this "
                             "model was sparsified again); its masks belong to that model")
        return session

    # ---- queries of the linears ------------------------------------------------------------
    def prompt_view(self, x: torch.Tensor) -> torch.Tensor:
        """x as (B, T, d) when a model flattened its B prompts into (B*T, d) rows (OPT does
        before fc1/fc2), so that each prompt still gets its own norms and mask."""
        if x.dim() == 2 and self.batch_shape is not None:
            b, t = self.batch_shape
            if b > 1 and b * t == x.shape[0]:
                return x.view(b, t, x.shape[-1])
        return x

    def mask_for(self, x: torch.Tensor) -> torch.Tensor | None:
        am = self.token_mask
        if am is None or tuple(am.shape) != tuple(x.shape[:-1]):
            return None
        if am.device != x.device:  # layers dispatched to other devices than the inputs (accelerate)
            if x.device not in self._masks_on:
                self._masks_on[x.device] = am.to(x.device)
            am = self._masks_on[x.device]
        return am


def _batch_shape(args, kwargs):
    ids = _positional(args, kwargs, "input_ids", 0)
    if isinstance(ids, torch.Tensor) and ids.dim() == 2:
        return tuple(ids.shape)
    embeds = kwargs.get("inputs_embeds")
    if isinstance(embeds, torch.Tensor) and embeds.dim() == 3:
        return tuple(embeds.shape[:2])
    return None
