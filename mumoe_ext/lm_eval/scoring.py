"""Per-request scoring for prompt-dependent (µ-MoE) models: every request is its own unpadded
forward, so its masks come from its own tokens only and no batch neighbour or padding can change
them (lm-eval's batched path right-pads with token 0 and passes no attention mask; even with a
mask, float noise of batched GEMMs flips mask entries). Pure torch: no lm-eval import here.

A request is `(context_tokens, continuation_tokens)` as lm-eval tokenizes it. The model input is
what lm-eval's `HFLM` builds: `(context + continuation)[-(max_length + 1):][:-1]` (the last
continuation token predicts nothing and is never fed). The mask is chosen from

- ``input``   (default) that whole input: context and all but the last continuation token, one
  plain forward (`use_cache=False`), the lm-eval analogue of `mumoe eval --mode window`;
- ``context`` the context part only (leakage-free, the analogue of ``--mode prefix``): a prefill
  of the context chooses the masks, and the continuation runs against its KV cache with the masks
  fixed (DESIGN §1 "Generation"). Two forwards per request.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..models.hf_cache import cache_in_output, cache_kwarg

MASK_SOURCES = ("input", "context")


def check_mask_from(mask_from) -> str:
    if mask_from not in MASK_SOURCES:
        raise ValueError(f"mask_from must be one of {MASK_SOURCES}, got {mask_from!r}")
    return mask_from


def model_input(context: list, continuation: list, max_length: int) -> tuple[list, int]:
    """(input tokens, n_context): the tokens fed to the model and how many of them precede the
    continuation part (the left-truncated context)."""
    if not context or not continuation:
        raise ValueError("model_input: context and continuation must be non-empty token lists")
    if len(continuation) > max_length:
        raise ValueError(f"model_input: continuation of {len(continuation)} tokens is longer than "
                         f"max_length={max_length}")
    inp = (list(context) + list(continuation))[-(max_length + 1):][:-1]
    return inp, len(inp) - (len(continuation) - 1)


def _logits_input(model, ids):
    return model(input_ids=ids, use_cache=False).logits[0]


def _logits_context(model, ids, n_context):
    prefill = model(input_ids=ids[:, :n_context], use_cache=True)
    first = prefill.logits[0, -1:]  # predicts the first continuation token
    if ids.shape[1] == n_context:
        return first
    cache = {cache_kwarg(model): cache_in_output(prefill)}
    rest = model(input_ids=ids[:, n_context:], use_cache=True, **cache)
    return torch.cat([first, rest.logits[0]])


@torch.no_grad()
def score_requests(model, requests, max_length: int, mask_from: str = "input", device=None,
                   softmax_dtype=None, progress: bool = True) -> list[tuple[float, bool]]:
    """[(sum of continuation log-probs, continuation is the greedy choice)], one per request, in
    order. Requests whose model input (and, for ``context``, split) is identical share one forward:
    the same tokens give the same masks and logits, so that sharing is exact."""
    check_mask_from(mask_from)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    keyed = []
    for context, continuation in requests:
        inp, n_context = model_input(context, continuation, max_length)
        keyed.append((tuple(inp), n_context if mask_from == "context" else 0, continuation))
    groups: dict = {}
    for i, (inp, split, _) in enumerate(keyed):
        groups.setdefault((inp, split), []).append(i)
    results: list = [None] * len(requests)
    for (inp, split), members in tqdm(groups.items(), desc="µ-MoE requests (one forward each)",
                                      disable=not progress, leave=False):
        ids = torch.tensor([inp], dtype=torch.long, device=device)
        logits = _logits_context(model, ids, split) if split else _logits_input(model, ids)
        logprobs = F.log_softmax(logits, dim=-1, dtype=softmax_dtype)
        for i in members:
            cont = torch.tensor(keyed[i][2], dtype=torch.long, device=device)
            picked = logprobs[-cont.numel():]
            greedy = bool((picked.argmax(dim=-1) == cont).all())
            results[i] = (float(picked.gather(1, cont[:, None]).sum()), greedy)
    return results
