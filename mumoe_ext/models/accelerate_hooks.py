"""Where accelerate keeps a dispatched model's weights, and how its hooks follow a swapped module.

`from_pretrained(device_map=..., max_memory=..., offload_folder=...)` calls `accelerate.dispatch_model`,
which wraps module forwards with hooks (`accelerate.hooks.add_hook_to_module`, kept as
`module._hf_hook`). An `AlignDevicesHook` moves a call's inputs to its `execution_device`; with
`offload=True` it keeps the module's own tensors on `meta`, loads them from its `weights_map` onto
the execution device before the forward and puts them back on `meta` after it. A hook with
`place_submodules=True` does that for its whole subtree (`preload_module_classes`).

`weights_map` (accelerate 1.x) is a `PrefixedDataset(dataset, prefix)` (key = prefix + "weight")
over the model-wide map, which is an `OffloadedWeightsLoader` — its `state_dict` holds tensors in
CPU RAM (modules mapped to "cpu" while the main device is a GPU), its `index` describes weights on
disk (a safetensors file, often the checkpoint itself, or a `.dat` memmap in `save_folder`) — or a
plain dict (`accelerate.cpu_offload`). A layout other than these raises `TypeError` rather than
pruning a copy accelerate never reads; `python_tests/test_models_offload.py` pins the layout on the
installed accelerate. accelerate is only imported for a model that carries hooks.
"""
from __future__ import annotations

import copy
from collections.abc import MutableMapping
from dataclasses import dataclass

import torch
from torch import nn

RESIDENT, CPU_RAM, DISK = "resident", "cpu-offload", "disk-offload"
HOOK_ATTR = "_hf_hook"  # accelerate's attribute for a module's hook (add_hook_to_module)


def align_hooks(module: nn.Module) -> list:
    """The `AlignDevicesHook`s accelerate put on `module` itself (a `SequentialHook` unwrapped)."""
    hook = getattr(module, HOOK_ATTR, None)
    if hook is None:
        return []
    from accelerate.hooks import AlignDevicesHook, SequentialHook
    pending, found = [hook], []
    while pending:
        h = pending.pop(0)
        if isinstance(h, SequentialHook):
            pending[:0] = list(h.hooks)
        elif isinstance(h, AlignDevicesHook):
            found.append(h)
    return found


def _device(value) -> torch.device:
    return torch.device(value) if not isinstance(value, torch.device) else value


def execution_device(module: nn.Module, default=None):
    """Where `module` computes: the execution device of the first accelerate hook in it (itself
    first), else the device of its first parameter not on `meta`, else `default`."""
    for m in module.modules():
        for hook in align_hooks(m):
            if hook.execution_device is not None:
                return _device(hook.execution_device)
    for p in module.parameters():
        if not p.is_meta:
            return p.device
    return default


@dataclass(frozen=True)
class WeightHome:
    """Where one parameter of a linear lives and where its forward computes with it.

    kind: RESIDENT (a real tensor on the module: GPU or CPU), CPU_RAM (on `meta`, loaded from a
    tensor in CPU RAM) or DISK (on `meta`, loaded from a file). For the offloaded kinds, `store` is
    the dict that maps `key` to the tensor (CPU_RAM) or to the index entry naming the file (DISK),
    and `loader` the mapping accelerate reads `key` through."""
    name: str
    kind: str
    device: torch.device
    store: MutableMapping | None = None
    loader: object = None
    key: str | None = None

    def load(self) -> torch.Tensor:
        """The stored tensor (offloaded kinds), as accelerate reads it, before any cast."""
        return self.loader[self.key]


def _covering_hooks(model: nn.Module, module_name: str):
    """(hook, path of the tensor relative to the hooked module) for the hooks that handle the
    tensors of `module_name`: its own, then those of ancestors with place_submodules, nearest first."""
    parts = module_name.split(".") if module_name else []
    for depth in range(len(parts), -1, -1):
        owner = model.get_submodule(".".join(parts[:depth]))
        for hook in align_hooks(owner):
            if depth == len(parts) or hook.place_submodules:
                yield hook, parts[depth:]


def _offload_store(name: str, weights_map, key: str):
    """(kind, store, loader, full key) of an offloaded tensor; TypeError for an unknown layout."""
    from accelerate.utils import OffloadedWeightsLoader, PrefixedDataset
    mapping = weights_map
    while isinstance(mapping, PrefixedDataset):
        key, mapping = mapping.prefix + key, mapping.dataset
    if isinstance(mapping, OffloadedWeightsLoader):
        for kind, store in ((CPU_RAM, mapping.state_dict), (DISK, mapping.index)):
            if key in store:
                if not isinstance(store, MutableMapping):
                    break
                return kind, store, mapping, key
    elif isinstance(mapping, MutableMapping) and key in mapping:
        return CPU_RAM, mapping, mapping, key
    raise TypeError(f"sparsify: accelerate keeps {name} in a {type(mapping).__name__} this version of "
                    f"mumoe cannot update (key {key!r}); offline pruning would change a copy that "
                    f"accelerate never reads. Load the model without offloading that layer")


def weight_home(model: nn.Module, module_name: str, tensor: str = "weight") -> WeightHome:
    """Where `<module_name>.<tensor>` of `model` lives (see `WeightHome`)."""
    name = f"{module_name}.{tensor}" if module_name else tensor
    param = getattr(model.get_submodule(module_name), tensor)
    device, offload = None, None
    for hook, rel in _covering_hooks(model, module_name):
        if device is None and hook.execution_device is not None:
            device = _device(hook.execution_device)
        if offload is None and hook.offload:
            offload = (hook, ".".join(rel + [tensor]))
    if offload is None:
        if param.is_meta:
            raise ValueError(f"sparsify: {name} is on the meta device and no accelerate offload hook "
                             f"loads it; load the model's weights before sparsifying")
        return WeightHome(name, RESIDENT, device if device is not None else param.device)
    hook, rel = offload
    if hook.weights_map is None:
        raise TypeError(f"sparsify: the accelerate hook that offloads {name} has no weights_map")
    kind, store, loader, key = _offload_store(name, hook.weights_map, rel)
    if device is None:
        raise TypeError(f"sparsify: the accelerate hook that offloads {name} has no execution device")
    return WeightHome(name, kind, device, store, loader, key)


def placements(model: nn.Module, names) -> dict:
    """{linear name: (kind, execution device)} for the linears `names` of `model`."""
    return {n: (h.kind, h.device) for n, h in ((n, weight_home(model, n)) for n in names)}


def _copy_hook(hook):
    from accelerate.hooks import SequentialHook
    if isinstance(hook, SequentialHook):
        return SequentialHook(*(_copy_hook(h) for h in hook.hooks))
    return copy.copy(hook)  # shares weights_map and execution device, nothing the forward mutates


def carry_hook(old: nn.Module, new: nn.Module) -> None:
    """Put a copy of `old`'s accelerate hook on `new`, which replaces `old` in the model: `new`'s
    tensors then come to the execution device for its forward and go back after it, exactly as
    `old`'s did. `old` keeps its own hook untouched, so putting `old` back restores the model."""
    hook = getattr(old, HOOK_ATTR, None)
    if hook is None:
        return
    from accelerate.hooks import add_hook_to_module
    add_hook_to_module(new, _copy_hook(hook))
