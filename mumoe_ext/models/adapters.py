"""Per-family adapters: where a model keeps the decoder layers whose linears get pruned.

An adapter is only a dotted path to an ``nn.ModuleList``. Families not listed fall back to the
usual paths, then to the largest ``ModuleList`` holding linears; any model can also be driven by
include/exclude name patterns (see `selection.py`).
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

# class name -> dotted paths of the decoder layers, first match wins (transformers 5 layout first).
FAMILY_LAYERS = {
    "OPTForCausalLM": ("model.decoder.layers",),
    "LlamaForCausalLM": ("model.layers",),
    "LlavaForConditionalGeneration": ("model.language_model.layers", "language_model.model.layers"),
}
GENERIC_LAYERS = ("model.layers", "model.decoder.layers", "model.language_model.layers",
                  "language_model.model.layers", "transformer.h", "gpt_neox.layers")


@dataclass(frozen=True)
class Adapter:
    family: str
    layers_path: str

    def layers(self, model: nn.Module) -> nn.ModuleList:
        return model.get_submodule(self.layers_path)


def _is_layer_list(module) -> bool:
    return isinstance(module, nn.ModuleList) and len(module) > 0


def _resolve(model: nn.Module, path: str):
    try:
        return model.get_submodule(path)
    except AttributeError:
        return None


def _largest_linear_list(model: nn.Module) -> str | None:
    best, best_len = None, 0
    for name, module in model.named_modules():
        if _is_layer_list(module) and len(module) > best_len and any(
                isinstance(m, nn.Linear) for m in module.modules()):
            best, best_len = name, len(module)
    return best


def find_adapter(model: nn.Module) -> Adapter:
    """The adapter for `model`: its family's layer path, else a generic one."""
    family = type(model).__name__
    for path in FAMILY_LAYERS.get(family, ()) + GENERIC_LAYERS:
        if _is_layer_list(_resolve(model, path)):
            return Adapter(family, path)
    path = _largest_linear_list(model)
    if path is None:
        raise ValueError(f"model: cannot find the decoder layers of {family}; pass include "
                         f"patterns naming the linears to prune")
    return Adapter(family, path)
