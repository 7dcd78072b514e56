"""Independent expectations for µ-MoE with mean_shift / OWL (mumoe-plus): each linear's mask and
mean compensation from the reference definition (`reference.mean_shift_linear`) on the
activations of one prompt alone, and a static model carrying them as weights and biases."""
from __future__ import annotations

import torch
from torch import nn

from mumoe_ext import reference

from helpers_generation import linear_inputs


@torch.no_grad()
def expected_plus(model, prompt_ids: torch.Tensor) -> dict:
    """{linear name: (mask, c)} for ONE unpadded prompt (1, T) of a sparsified model, each linear
    at its own density (OWL) and mean_shift."""
    inputs = linear_inputs(model, prompt_ids)
    out = {}
    for name, x in inputs.items():
        m = model.get_submodule(name)
        _, mask, c = reference.mean_shift_linear(x, m.weight, None, m.density, m.mean_shift)
        out[name] = (mask, c)
    return out


@torch.no_grad()
def static_plus_model(build, expected: dict):
    """A fresh `build()` with each mask multiplied into its weight and c added to its bias."""
    model = build()
    for name, (mask, c) in expected.items():
        lin = model.get_submodule(name)
        lin.weight.mul_(mask)
        c = c.to(lin.weight.dtype)
        if lin.bias is None:
            lin.bias = nn.Parameter(c.clone())
        else:
            lin.bias.add_(c)
    return model
