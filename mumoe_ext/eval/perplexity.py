"""Perplexity over non-overlapping windows (the Wanda/SparseGPT protocol, DESIGN §2).

Modes (every result records its mode):
- ``window``: each window is one prompt; all seqlen-1 next-token predictions are scored. For µ-MoE
  the mask then also sees the tokens it predicts.
- ``prefix``: leakage-free. The first half of the window is run as the prompt (with a KV cache):
  that prefill chooses µ-MoE's masks; the second half is then run against the cache with the masks
  fixed (the decode path) and only its tokens, h .. seqlen-1, are scored.

For models whose weights do not depend on the prompt (dense and the offline methods) both modes
come out of one full-window forward: causal attention makes prefix + cached continuation equal to
the full forward, so the prefix-mode NLL is the second-half slice of the same token losses.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..models.hf_cache import cache_in_output, cache_kwarg

MODES = ("window", "prefix")


def split_windows(ids: torch.Tensor, seqlen: int, max_windows: int | None = None) -> torch.Tensor:
    """(n, seqlen) non-overlapping windows of a 1-D token stream; the tail is dropped."""
    if seqlen < 2:
        raise ValueError(f"seqlen must be >= 2, got {seqlen}")
    if max_windows is not None and max_windows < 1:
        raise ValueError(f"max_windows must be >= 1, got {max_windows}")
    ids = ids.reshape(-1)
    n = ids.numel() // seqlen
    if max_windows is not None:
        n = min(n, max_windows)
    if n == 0:
        raise ValueError(f"the text has {ids.numel()} tokens, fewer than one window of seqlen={seqlen}")
    return ids[:n * seqlen].view(n, seqlen)


def _token_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           reduction="none")


def _model_device(model):
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _full_window_nll(model, window):
    logits = model(input_ids=window, use_cache=False).logits
    return _token_nll(logits[:, :-1], window[:, 1:])  # (seqlen-1,): NLL of tokens 1..L-1


def _prefix_nll(model, window, half):
    prompt, rest = window[:, :half], window[:, half:]
    out = model(input_ids=prompt, use_cache=True)
    first = _token_nll(out.logits[:, -1:], rest[:, :1])  # token h, predicted from the prompt
    if rest.shape[1] == 1:
        return first
    cache = {cache_kwarg(model): cache_in_output(out)}
    cont = model(input_ids=rest[:, :-1], use_cache=True, **cache)
    return torch.cat([first, _token_nll(cont.logits, rest[:, 1:])])


@torch.no_grad()
def window_nlls(model, windows: torch.Tensor, modes=("window",), prompt_dependent: bool = False,
                progress: bool = True, desc: str = "perplexity") -> dict:
    """Per-mode list of per-token NLL tensors, one entry per window."""
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    device = _model_device(model)
    seqlen = windows.shape[1]
    half = seqlen // 2
    nlls = {mode: [] for mode in modes}
    for window in tqdm(windows, desc=desc, disable=not progress, leave=False):
        window = window.unsqueeze(0).to(device)
        full = None
        if "window" in modes or not prompt_dependent:
            full = _full_window_nll(model, window)
        if "window" in modes:
            nlls["window"].append(full)
        if "prefix" in modes:
            # full[t] is the NLL of token t+1, so tokens half..L-1 are full[half-1:]
            nlls["prefix"].append(_prefix_nll(model, window, half) if prompt_dependent
                                  else full[half - 1:])
    return nlls


def perplexity_from_nlls(nlls: list) -> float:
    """exp(mean token NLL), accumulated in float64."""
    total = sum(float(n.double().sum()) for n in nlls)
    count = sum(n.numel() for n in nlls)
    return math.exp(total / count)


def perplexity(model, ids: torch.Tensor, seqlen: int, max_windows: int | None = None,
               modes=("window",), prompt_dependent: bool = False, progress: bool = True,
               desc: str = "perplexity") -> dict:
    """{mode: (ppl, windows)} for a 1-D token stream cut into windows of `seqlen`."""
    windows = split_windows(ids, seqlen, max_windows)
    nlls = window_nlls(model, windows, modes, prompt_dependent, progress, desc)
    return {mode: (perplexity_from_nlls(v), len(v)) for mode, v in nlls.items()}
