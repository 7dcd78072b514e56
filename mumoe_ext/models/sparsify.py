"""`sparsify(model, method, density, ...)` prunes a Hugging Face model in place; `restore` undoes it.

Methods: ``dense`` (no-op, still restorable), ``magnitude``, ``wanda`` and ``sparsegpt`` (offline,
calibrated; they overwrite weights, the originals are kept for `restore` as `keep_originals` says) and
``mumoe`` (online: selected linears become `MuMoELinear`s that re-prune per prompt) and
``mumoe-plus`` (µ-MoE with the recommended options, mumoe_options.py and docs/mumoe_plus.md).
Models dispatched by accelerate (device_map, CPU/disk offload) keep their hooks: docs/offload.md.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import torch
from torch import nn

from .._checks import parse_pattern, pattern_density
from ..pruning.calibration import calibration_batches
from ..pruning.magnitude import prune_magnitude
from ..pruning.offline import OFFLINE_METHODS, prune_layers
from .accelerate_hooks import carry_hook
from .adapters import find_adapter
from .mumoe_linear import MuMoELinear
from .mumoe_options import MuMoEOptions, mumoe_options
from .owl import owl_densities
from .prompt_context import PromptContext
from .pruned_weights import PrunedWeights
from .selection import select_linears

METHODS = ("dense", "magnitude", "wanda", "sparsegpt", "mumoe", "mumoe-plus")
ONLINE_METHODS = ("mumoe", "mumoe-plus")
STATE_ATTR = "_mumoe_sparsified"
OFFLINE_OPTIONS = {"blocksize", "percdamp"}


@dataclass
class SparsifyState:
    method: str
    density: float
    names: list
    pattern: str | None = None                     # "N:M" or None (unstructured)
    originals: dict = field(default_factory=dict)  # name -> CPU copy of the weight (VLM parts)
    weights: PrunedWeights | None = None          # what the offline methods changed, and originals
    swapped: dict = field(default_factory=dict)    # name -> the original nn.Linear
    hooks: list = field(default_factory=list)
    context: PromptContext | None = None
    options: MuMoEOptions | None = None           # mumoe / mumoe-plus


def sparsify_state(model: nn.Module) -> SparsifyState | None:
    return model.__dict__.get(STATE_ATTR)


def _check_args(model, method, density, pattern, nsamples, opts):
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    density = pattern_density(density, pattern, "sparsify")
    if isinstance(nsamples, bool) or not isinstance(nsamples, int) or nsamples < 1:
        raise ValueError(f"nsamples must be a positive int, got {nsamples!r}")
    options = None
    if method in ONLINE_METHODS:
        options = mumoe_options(method, opts)
        if options.allocation != "uniform" and pattern is not None:
            raise ValueError(f"sparsify: allocation={options.allocation!r} varies the density per "
                             f"layer, pattern={pattern!r} fixes it: use one of them")
    elif set(opts) - OFFLINE_OPTIONS or (opts and method != "sparsegpt"):
        raise TypeError(f"sparsify: unexpected options {sorted(opts)} for method {method!r} "
                        f"(sparsegpt accepts {sorted(OFFLINE_OPTIONS)})")
    if sparsify_state(model) is not None:
        raise RuntimeError(f"model is already sparsified with "
                           f"{sparsify_state(model).method!r}; call restore(model) first")
    return density, options


def _check_pattern_fits(linears, pattern):
    nm = parse_pattern(pattern, "sparsify")
    if nm is None:
        return
    bad = [f"{name} (in_features={lin.in_features})" for name, lin in linears.items()
           if lin.in_features % nm[1]]
    if bad:
        raise ValueError(f"sparsify: pattern={pattern!r} needs M={nm[1]} to divide the in_features "
                         f"of every pruned linear; it does not for {', '.join(bad[:3])}"
                         + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
                         + " (exclude them with exclude=)")


def _layer_index(name: str, prefix: str) -> int | None:
    if not name.startswith(prefix + "."):
        return None
    head = name[len(prefix) + 1:].split(".", 1)[0]
    return int(head) if head.isdigit() else None


def _calibration(model, calib, nsamples, seqlen, seed, tokenizer, data_dir):
    if calib is None:
        raise ValueError("calib is required for offline methods: a dataset name (wikitext2, ptb, "
                         "c4 or a text file path), a LongTensor (n, seqlen) or dicts of kwargs")
    if isinstance(calib, str):
        if tokenizer is None:
            raise ValueError(f"tokenizer is required to calibrate on the dataset {calib!r}")
        from ..eval.datasets import calibration_windows
        if seqlen is None:
            seqlen = min(int(getattr(model.config, "max_position_embeddings", 2048)), 2048)
        return calibration_batches(calibration_windows(calib, tokenizer, nsamples, seqlen, seed,
                                                       data_dir=data_dir))
    if isinstance(calib, torch.Tensor):
        return calibration_batches(calib[:nsamples])
    return list(itertools.islice(calibration_batches(calib), nsamples))


def _prune_offline(model, method, density, pattern, linears, batches, progress, opts, edit_weight):
    adapter = find_adapter(model)
    by_layer: dict[int, dict] = {}
    for name, lin in linears.items():
        i = _layer_index(name, adapter.layers_path)
        if i is None:
            raise ValueError(f"include: {name!r} is outside the decoder layers "
                             f"{adapter.layers_path!r}; {method} only calibrates linears inside them")
        by_layer.setdefault(i, {})[name] = lin
    layers = adapter.layers(model)
    last = max(by_layer)  # layers after the last pruned one need no calibration pass
    use_cache = getattr(model.config, "use_cache", None)
    model.config.use_cache = False
    try:
        prune_layers(model, layers[:last + 1], method, density, batches,
                     linears_of=lambda i, layer: by_layer.get(i, {}), progress=progress,
                     edit_weight=edit_weight, pattern=pattern, **opts)
    finally:
        model.config.use_cache = use_cache


def _owl_densities(model, linears, density, options) -> dict:
    """{linear name: density} of OWL's allocation over the decoder layers holding `linears`."""
    prefix = find_adapter(model).layers_path
    index = {name: _layer_index(name, prefix) for name in linears}
    outside = [name for name, i in index.items() if i is None]
    if outside:
        raise ValueError(f"allocation='owl': {outside[0]!r} is outside the decoder layers "
                         f"{prefix!r}; OWL allocates per decoder layer (exclude it, or "
                         f"allocation='uniform')")
    layers: dict[int, list] = {}
    for name, lin in linears.items():
        layers.setdefault(index[name], []).append(lin.weight)
    by_layer = owl_densities(layers, density, options.owl_m, options.owl_lambda)
    return {name: by_layer[i] for name, i in index.items()}


def _swap_in_mumoe(model, linears, density, state):
    state.context = PromptContext()
    options = state.options
    densities = (_owl_densities(model, linears, density, options)
                 if options.allocation == "owl" else {})
    for name, lin in linears.items():
        mumoe = MuMoELinear(lin, densities.get(name, density), state.context, pattern=state.pattern,
                            mean_shift=options.mean_shift)
        carry_hook(lin, mumoe)  # an accelerate-dispatched linear: same devices, same offloading
        model.set_submodule(name, mumoe)
        state.swapped[name] = lin
    state.hooks.append(model.register_forward_pre_hook(state.context.pre_hook, with_kwargs=True))
    state.hooks.append(model.register_forward_hook(state.context.post_hook, always_call=True))


@torch.no_grad()
def sparsify(model: nn.Module, method: str, density: float | None = None, *, pattern=None,
             calib=None, nsamples: int = 128,
             seqlen: int | None = None, seed: int = 0, include=None, exclude=None,
             progress: bool = True, tokenizer=None, data_dir: str | None = None,
             keep_originals=True, offload_folder=None, **opts) -> nn.Module:
    """Prune `model` in place with `method` keeping `density` of the weights; returns `model`.

    pattern="N:M" (e.g. "2:4"): N:M sparsity instead, N kept in every M consecutive input columns
    of each row (per prompt for mumoe; magnitude/wanda/sparsegpt as their reference code does);
    density is then omitted or N/M. M must divide the in_features of every pruned linear.

    calib (wanda, sparsegpt): a dataset name (``wikitext2``, ``ptb``, ``c4`` or a text file path;
    needs `tokenizer`), a LongTensor (n, seqlen) of token windows, or an iterable of dicts of
    model-forward kwargs (e.g. LLaVA batches with ``pixel_values``); at most `nsamples` are used.
    include/exclude: glob patterns over module names (default: all linears of the decoder layers).
    opts: ``blocksize`` (128) and ``percdamp`` (0.01) for sparsegpt; for mumoe and mumoe-plus
    ``mean_shift``, ``allocation``, ``owl_m``, ``owl_lambda`` (mumoe_options.py, docs/mumoe_plus.md).
    keep_originals (offline methods): True keeps what `restore` needs in CPU RAM, a folder path
    keeps it in files there, False keeps nothing (`restore` raises). offload_folder: where the
    pruned weights of disk-offloaded layers go (default: the model's offload folder). Both are
    described in docs/offload.md with what is kept where for each kind of placement.
    """
    density, options = _check_args(model, method, density, pattern, nsamples, opts)
    linears = select_linears(model, include, exclude)
    if method != "dense":
        _check_pattern_fits(linears, pattern)
    state = SparsifyState(method, float(density), list(linears), pattern=pattern, options=options)
    if method in ("magnitude",) + OFFLINE_METHODS:
        batches = (_calibration(model, calib, nsamples, seqlen, seed, tokenizer, data_dir)
                   if method in OFFLINE_METHODS else None)
        state.weights = PrunedWeights(model, keep_originals, offload_folder)
        state.weights.prepare(linears)
        model.__dict__[STATE_ATTR] = state
        try:
            if method == "magnitude":
                for name, lin in linears.items():
                    with state.weights.editing(name, lin):
                        prune_magnitude({name: lin}, density, pattern)
            else:
                _prune_offline(model, method, density, pattern, linears, batches, progress, opts,
                               state.weights.editing)
        except BaseException:
            restore(model)
            raise
    else:
        model.__dict__[STATE_ATTR] = state
        if method in ONLINE_METHODS:
            try:
                _swap_in_mumoe(model, linears, density, state)
            except BaseException:
                restore(model)
                raise
    return model


@torch.no_grad()
def restore(model: nn.Module) -> nn.Module:
    """Undo `sparsify`: original weights and modules back, hooks removed. No-op if not sparsified."""
    state = model.__dict__.pop(STATE_ATTR, None)
    if state is None:
        return model
    for handle in state.hooks:
        handle.remove()
    for name, linear in state.swapped.items():
        model.set_submodule(name, linear)
    if state.weights is not None:
        state.weights.restore()
    for name, weight in state.originals.items():
        model.get_submodule(name).weight.copy_(weight)
    return model
