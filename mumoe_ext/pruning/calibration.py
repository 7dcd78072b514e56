"""The sequential calibration engine shared by offline Wanda and SparseGPT.

As in the reference implementations (locuslab/wanda `prepare_calibration_input` + `prune_wanda`,
IST-DASLab/sparsegpt `opt_sequential`), but generic over *any* list of layers:

1. `capture_inputs` runs the model on each calibration batch until the first layer is reached and
   records that layer's input and keyword arguments (attention mask, position embeddings, ...),
   one entry per batch, so batches may differ in length (e.g. LLaVA prompts with images).
2. `prune_sequentially` walks the layers: one pass with hooks collects statistics of every
   selected linear of the layer, the layer is pruned, a second pass computes its outputs *with the
   pruned weights*, and those become the next layer's inputs. Layer i is thus calibrated on
   activations that went through the pruned layers < i.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
from torch import nn
from tqdm.auto import tqdm


class _Captured(Exception):
    """Raised by the capture hook to stop the forward at the first layer."""


@dataclass
class LayerInputs:
    """The inputs of one layer for every calibration batch: hidden states, any further
    positional args (e.g. CLIP passes its attention mask positionally) and keyword args."""
    hidden: list = field(default_factory=list)
    kwargs: list = field(default_factory=list)
    args: list = field(default_factory=list)

    def __len__(self):
        return len(self.hidden)


def _to_device(value, device):
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, (tuple, list)):
        return type(value)(_to_device(v, device) for v in value)
    return value


def _device_of(module: nn.Module, default):
    """Where `module` computes (an accelerate hook's execution device when it has one)."""
    from ..models.accelerate_hooks import execution_device
    return execution_device(module, default)


def calibration_batches(calib) -> Iterable[dict]:
    """Model-forward kwargs from a LongTensor (n, seqlen) of token windows or an iterable of dicts."""
    if isinstance(calib, torch.Tensor):
        if calib.dim() != 2 or calib.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"calib: a tensor must be integer token windows (n, seqlen), got "
                             f"{calib.dtype} of shape {tuple(calib.shape)}")
        return [{"input_ids": row.unsqueeze(0).long()} for row in calib]
    if isinstance(calib, dict):
        raise TypeError("calib: pass an iterable of dicts of model-forward kwargs, not one dict")
    try:
        return iter(calib)
    except TypeError:
        raise TypeError(f"calib must be a dataset name, a LongTensor (n, seqlen) or an iterable of "
                        f"dicts of model-forward kwargs, got {type(calib).__name__}")


@torch.no_grad()
def capture_inputs(model: nn.Module, first_layer: nn.Module, batches: Iterable[dict],
                   progress: bool = True) -> LayerInputs:
    """Inputs of `first_layer` for each batch (model-forward kwargs), without running the rest."""
    captured = LayerInputs()

    def hook(module, args, kwargs):
        kwargs = dict(kwargs)
        hidden = args[0] if args else kwargs.pop("hidden_states")
        captured.hidden.append(hidden.detach())
        captured.args.append(tuple(args[1:]))
        for key in ("past_key_values", "past_key_value", "layer_past"):
            kwargs.pop(key, None)
        if "use_cache" in kwargs:
            kwargs["use_cache"] = False
        captured.kwargs.append(kwargs)
        raise _Captured

    device = _device_of(model, torch.device("cpu"))
    handle = first_layer.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        for batch in tqdm(batches, desc="calibration inputs", disable=not progress, leave=False):
            if not isinstance(batch, dict):
                raise TypeError(f"calib: each batch must be a dict of model-forward kwargs, got "
                                f"{type(batch).__name__}")
            batch = {k: _to_device(v, device) for k, v in batch.items()}
            batch.setdefault("use_cache", False)
            try:
                model(**batch)
            except _Captured:
                continue
            raise RuntimeError("calib: the model finished a forward without reaching the first "
                               "layer to calibrate (wrong layer list?)")
    finally:
        handle.remove()
    if not captured.hidden:
        raise ValueError("calib: no calibration batches were given")
    return captured


def _run_layer(layer, inputs: LayerInputs, device) -> list:
    outs = []
    extra = inputs.args or [()] * len(inputs.hidden)
    for hidden, args, kwargs in zip(inputs.hidden, extra, inputs.kwargs):
        out = layer(hidden.to(device), *_to_device(args, device), **_to_device(kwargs, device))
        outs.append((out[0] if isinstance(out, (tuple, list)) else out).detach())
    return outs


class LinearStats:
    """Base of per-linear statistics: `add(x)` sees every input of the linear."""

    def add(self, x: torch.Tensor) -> None:
        raise NotImplementedError


@torch.no_grad()
def prune_sequentially(layers, inputs: LayerInputs, linears_of: Callable[[int, nn.Module], dict],
                       new_stats: Callable[[str, nn.Linear], LinearStats],
                       prune: Callable[[str, nn.Linear, LinearStats], None],
                       progress: bool = True, desc: str = "pruning") -> LayerInputs:
    """Calibrate and prune `layers` in order; returns the inputs after the last layer.

    `linears_of(i, layer)` gives the {name: linear} to prune in layer i (may be empty),
    `new_stats(name, linear)` a fresh accumulator, `prune(name, linear, stats)` prunes in place.
    """
    for i, layer in enumerate(tqdm(layers, desc=desc, disable=not progress, leave=False)):
        device = _device_of(layer, inputs.hidden[0].device)
        linears = linears_of(i, layer)
        if linears:
            stats = {name: new_stats(name, lin) for name, lin in linears.items()}
            handles = [lin.register_forward_pre_hook(
                lambda mod, args, s=stats[name]: s.add(args[0].detach()))
                for name, lin in linears.items()]
            try:
                _run_layer(layer, inputs, device)
            finally:
                for h in handles:
                    h.remove()
            for name, lin in linears.items():
                prune(name, lin, stats[name])
            del stats
        inputs = LayerInputs(_run_layer(layer, inputs, device), inputs.kwargs, inputs.args)
    return inputs
