"""Prune a LLaVA model with any `mumoe_ext.sparsify` method: the language model always, the
vision tower and the multimodal projector on request.

`mumoe_ext.sparsify` calibrates Wanda/SparseGPT only inside the language model's decoder layers,
so for those two methods the vision tower (its encoder layers, sequentially) and the projector
(one block) are calibrated and pruned here first, with the same engine
(`mumoe_ext.pruning.prune_layers`) and the same multimodal prompts; the language model is then
calibrated on activations that went through the pruned vision side. Their original weights are
added to the model's sparsify state, so `mumoe_ext.models.restore(model)` undoes everything.
"""
from __future__ import annotations

import inspect
import itertools

import torch

from .._checks import check_density
from .model import llava_parts, part_patterns

METHODS = ("dense", "magnitude", "wanda", "sparsegpt", "mumoe")
OFFLINE_METHODS = ("wanda", "sparsegpt")  # need calibration prompts


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return method


def _keywordize(module, args, kwargs):
    """Forward pre-hook: pass every argument after the hidden states by keyword. CLIP's encoder
    calls its layers with a positional attention mask, which the calibration engine (it keeps
    args[0] and the keyword arguments) would otherwise drop."""
    if len(args) <= 1:
        return None
    params = list(inspect.signature(module.forward).parameters)[1:]
    moved = dict(zip(params, args[1:]))
    return args[:1], {**kwargs, **moved}


def _vision_layers(model, vision_path: str):
    tower = model.get_submodule(vision_path)
    for path in ("vision_model.encoder.layers", "encoder.layers", "layers",
                 "transformer.layers"):
        try:
            layers = tower.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(layers, torch.nn.ModuleList) and len(layers):
            return f"{vision_path}.{path}", layers
    raise TypeError(f"vision tower {type(tower).__name__}: cannot find its encoder layers")


def _group(linears: dict, prefix: str) -> dict:
    """{layer index: {full name: linear}} for names under ``prefix.<i>.``."""
    groups: dict = {}
    for name, lin in linears.items():
        head = name[len(prefix) + 1:].split(".", 1)[0]
        if name.startswith(prefix + ".") and head.isdigit():
            groups.setdefault(int(head), {})[name] = lin
    return groups


def _prune_vision_side(model, method, density, batches, vision_tower, projector, exclude,
                       progress, opts) -> dict:
    """Offline-prune the vision tower, then the projector; returns {name: original weight}."""
    from mumoe_ext.models import select_linears
    from mumoe_ext.pruning import prune_layers

    parts = llava_parts(model)
    originals: dict = {}
    try:
        if vision_tower:
            prefix, layers = _vision_layers(model, parts["vision_tower"])
            chosen = select_linears(model, [f"{prefix}.*"], exclude)
            originals.update({n: l.weight.detach().to("cpu", copy=True) for n, l in chosen.items()})
            groups = _group(chosen, prefix)
            hooks = [layer.register_forward_pre_hook(_keywordize, with_kwargs=True)
                     for layer in layers]
            try:
                prune_layers(model, layers[:max(groups) + 1], method, density, batches,
                             linears_of=lambda i, layer: groups.get(i, {}),
                             progress=progress, **opts)
            finally:
                for h in hooks:
                    h.remove()
        if projector:
            chosen = select_linears(model, [f"{parts['projector']}.*"], exclude)
            originals.update({n: l.weight.detach().to("cpu", copy=True) for n, l in chosen.items()})
            prune_layers(model, [model.get_submodule(parts["projector"])], method, density,
                         batches, linears_of=lambda i, layer: chosen, progress=progress, **opts)
    except BaseException:
        _put_back(model, originals)
        raise
    return originals


@torch.no_grad()
def _put_back(model, originals: dict) -> None:
    for name, weight in originals.items():
        model.get_submodule(name).weight.copy_(weight)


def sparsify_llava(model, method: str, density: float, *, calib=None, vision_tower: bool = False,
                   projector: bool = False, exclude=None, nsamples: int = 128, seed: int = 0,
                   progress: bool = True, **opts):
    """`mumoe_ext.sparsify` on the chosen LLaVA parts; ``dense`` is a no-op.

    ``calib`` (wanda, sparsegpt): forward-kwargs dicts with ``pixel_values``, e.g. from
    `mumoe_ext.vlm.calibration.load_calibration`, so image tokens shape the statistics; at most
    ``nsamples`` are used. Undo with `mumoe_ext.vlm.restore(model)`.
    """
    check_method(method)
    check_density(density, "sparsify_llava")
    if method == "dense":
        return model
    if method in OFFLINE_METHODS and calib is None:
        raise ValueError(f"calib: method {method!r} needs calibration prompts")
    from mumoe_ext.models import sparsify, sparsify_state

    if sparsify_state(model) is not None:
        raise RuntimeError("model is already sparsified; call restore(model) first")
    if method not in OFFLINE_METHODS or not (vision_tower or projector):
        include = part_patterns(model, vision_tower=vision_tower, projector=projector)
        return sparsify(model, method, density, calib=calib, nsamples=nsamples, seed=seed,
                        include=include, exclude=exclude, progress=progress, **opts)

    batches = list(itertools.islice(iter(calib), nsamples))
    originals = _prune_vision_side(model, method, density, batches, vision_tower, projector,
                                   exclude, progress, opts)
    try:
        sparsify(model, method, density, calib=batches, nsamples=nsamples, seed=seed,
                 include=part_patterns(model), exclude=exclude, progress=progress, **opts)
    except BaseException:
        _put_back(model, originals)
        raise
    state = sparsify_state(model)
    state.originals.update(originals)
    state.names.extend(originals)
    return model
