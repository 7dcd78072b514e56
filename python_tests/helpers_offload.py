"""Tiny models dispatched by accelerate the ways a real offloaded model is, on a CPU-only machine.

`LAYOUTS` names each way; `dispatched(layout, family, tmp)` saves the seeded tiny model with
save_pretrained and gives it back dispatched that way, with `KINDS[layout]`: the placement kind
each decoder layer's linears must then have (the tests check it, so a change in how accelerate
lays out its hooks shows up as a failure, not as silently skipped code).
"""
from __future__ import annotations

import hashlib
import os

import torch

from helpers_models import tiny_llama, tiny_opt

BUILD = {"llama": tiny_llama, "opt": tiny_opt}
LAYERS = {"llama": "model.layers", "opt": "model.decoder.layers"}

# hf-disk: from_pretrained(device_map=...) layer 0 on the CPU, layer 1 on disk (transformers
#   points the offload index at the checkpoint's safetensors file).
# auto: from_pretrained(device_map="auto", max_memory=...) too small for the decoder layers.
# ram+dat: what dispatch_model does when the main device is a GPU, with the CPU computing: layer 0
#   offloaded to a CPU-RAM state dict, layer 1 to .dat memmaps in the offload folder.
# preload: ram+dat with preload_module_classes=<decoder layer>: one hook per layer loads it whole.
# cpu_offload: accelerate.cpu_offload(model): every module offloaded to one plain dict.
LAYOUTS = ("hf-disk", "auto", "ram+dat", "preload", "cpu_offload")
KINDS = {"hf-disk": ("resident", "disk-offload"), "auto": ("disk-offload", "disk-offload"),
         "ram+dat": ("cpu-offload", "disk-offload"), "preload": ("cpu-offload", "disk-offload"),
         "cpu_offload": ("cpu-offload", "cpu-offload")}


def _device_map(family: str, layer0: str, layer1: str, rest: str = "cpu") -> dict:
    layers, rest_device = LAYERS[family], rest
    if family == "llama":
        rest = ["model.embed_tokens", "model.rotary_emb", "model.norm", "lm_head"]
    else:
        rest = ["model.decoder.embed_tokens", "model.decoder.embed_positions",
                "model.decoder.final_layer_norm", "lm_head"]
    return {**{n: rest_device for n in rest}, f"{layers}.0": layer0, f"{layers}.1": layer1}


def disk_map(family: str) -> dict:
    """Both decoder layers on disk, the rest on the CPU."""
    return _device_map(family, "disk", "disk")


def save_tiny(family: str, folder) -> str:
    path = os.path.join(folder, f"tiny-{family}")
    if not os.path.isdir(path):
        BUILD[family]().save_pretrained(path)
    return path


def _load(path: str, **kw):
    from transformers import AutoModelForCausalLM
    return AutoModelForCausalLM.from_pretrained(path, **kw).eval()


def dispatch_offloaded(model, device_map: dict, offload_dir: str, preload=None):
    """accelerate's dispatch as on a GPU machine (modules mapped to "cpu" offloaded to a RAM state
    dict, "disk" ones to .dat files, "resident" ones staying where they are), with the CPU as the
    execution device of everything: the public accelerate pieces `dispatch_model` uses in its GPU
    branch."""
    from accelerate.hooks import attach_align_device_hook_on_blocks
    from accelerate.utils import OffloadedWeightsLoader, extract_submodules_state_dict, offload_state_dict
    state = model.state_dict()
    names = {d: [n for n, v in device_map.items() if v == d] for d in ("cpu", "disk")}
    offload_state_dict(offload_dir, extract_submodules_state_dict(state, names["disk"]))
    weights_map = OffloadedWeightsLoader(state_dict=extract_submodules_state_dict(state, names["cpu"]),
                                         save_folder=offload_dir)
    cpu = torch.device("cpu")
    attach_align_device_hook_on_blocks(
        model, execution_device={**{n: cpu for n in device_map}, "": cpu},
        offload={n: v in ("cpu", "disk") for n, v in device_map.items()}, weights_map=weights_map,
        skip_keys=getattr(model, "_skip_keys_device_placement", None),
        preload_module_classes=preload)
    return model


def dispatched(layout: str, family: str, folder):
    """(dispatched model, checkpoint folder, offload folder) for `layout` (see LAYOUTS)."""
    path = save_tiny(family, folder)
    offload = os.path.join(folder, f"offload-{layout}-{family}")
    if layout == "hf-disk":
        return _load(path, device_map=_device_map(family, "cpu", "disk"),
                     offload_folder=offload), path, offload
    if layout == "auto":
        return _load(path, device_map="auto", max_memory={"cpu": 60_000},
                     offload_folder=offload), path, offload
    model = _load(path)
    if layout == "cpu_offload":
        from accelerate import cpu_offload
        return cpu_offload(model, execution_device=torch.device("cpu")), path, None
    preload = [type(model.get_submodule(LAYERS[family])[0]).__name__] if layout == "preload" else None
    device_map = _device_map(family, "cpu", "disk", rest="resident")
    return dispatch_offloaded(model, device_map, offload, preload), path, offload


def plain(family: str, folder):
    """The same checkpoint loaded normally (the expectation)."""
    return _load(save_tiny(family, folder))


def read_state(model) -> dict:
    """Every tensor of a dispatched model as accelerate itself reads it: each module's hook loads
    its tensors (`pre_forward`), they are copied, the hook offloads them again (`post_forward`)."""
    out = {}
    for name, module in model.named_modules():
        hook = getattr(module, "_hf_hook", None)
        if hook is not None:
            hook.pre_forward(module)
        try:
            for key, value in module.state_dict().items():
                if not value.is_meta:
                    out.setdefault(f"{name}.{key}" if name else key, value.detach().clone())
        finally:
            if hook is not None:
                hook.post_forward(module, None)
    return out


def tree_digest(folder) -> dict:
    """{file: sha256} of every file under `folder` (None: no folder)."""
    if folder is None or not os.path.isdir(folder):
        return {}
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, folder)] = hashlib.sha256(fh.read()).hexdigest()
    return out


class OffloadedOnDevice(torch.overrides.TorchFunctionMode):
    """Records, at every torch call, how many of `linears`' weights are real (not on meta): the
    peak says how many offloaded weights were ever materialized at once."""

    def __init__(self, linears):
        super().__init__()
        self.linears = list(linears)
        self.peak = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.peak = max(self.peak, sum(not lin.weight.is_meta for lin in self.linears))
        return func(*args, **(kwargs or {}))
