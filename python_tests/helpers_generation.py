"""Independent expectations for µ-MoE generation: the masks a prompt should get, from the pure-torch
reference on a plain forward of that prompt alone, and a static (dense, never-sparsified) model
carrying those masks in its weights, which a correct µ-MoE generation must reproduce."""
from __future__ import annotations

import torch

from mumoe_ext import reference
from mumoe_ext.models import MuMoELinear


@torch.no_grad()
def linear_inputs(model, prompt_ids: torch.Tensor, **forward_kw) -> dict:
    """{µ-MoE linear name: (T, d) input} in a plain forward of ONE unpadded prompt (1, T)."""
    assert prompt_ids.dim() == 2 and prompt_ids.shape[0] == 1
    inputs, handles = {}, []
    for name, m in model.named_modules():
        if isinstance(m, MuMoELinear):
            handles.append(m.register_forward_pre_hook(
                lambda mod, args, name=name: inputs.__setitem__(
                    name, args[0].reshape(-1, args[0].shape[-1]).clone())))
    try:
        model(input_ids=prompt_ids, use_cache=False, **forward_kw)
    finally:
        for h in handles:
            h.remove()
    return inputs


@torch.no_grad()
def expected_masks(model, prompt_ids: torch.Tensor, density: float, **forward_kw) -> dict:
    """{linear name: bool mask} of a sparsified model for ONE unpadded prompt (1, T), by the
    reference selection on the activations each linear sees in a plain forward of that prompt."""
    inputs = linear_inputs(model, prompt_ids, **forward_kw)
    return {n: reference.wanda_mask(model.get_submodule(n).weight, reference.col_norms(x), density)
            for n, x in inputs.items()}


@torch.no_grad()
def static_model(build, masks: dict):
    """A fresh copy of the model `build()` makes (seeded: the same weights) with `masks` multiplied
    into its weights: the µ-MoE model as it should be once a prompt's masks are fixed."""
    model = build()
    for name, mask in masks.items():
        model.get_submodule(name).weight.mul_(mask)
    return model


@torch.no_grad()
def static_logits(build, masks: dict, sequence: torch.Tensor) -> torch.Tensor:
    """Logits (T, vocab) of the static model on one unpadded sequence (1, T)."""
    return static_model(build, masks)(input_ids=sequence, use_cache=False).logits[0]
