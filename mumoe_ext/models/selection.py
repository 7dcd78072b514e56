"""Which `nn.Linear`s of a model get pruned.

Default: every linear inside the adapter's decoder layers. `include` / `exclude` are glob patterns
(`fnmatch`) matched against full module names, e.g. ``"model.layers.*.mlp.*"``; `include` replaces
the default set. `lm_head` and the embeddings are never selected.
"""
from __future__ import annotations

import fnmatch

from torch import nn

from .adapters import find_adapter


def _patterns(value, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    try:
        out = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be a glob pattern or a list of them, got {type(value).__name__}")
    if not all(isinstance(p, str) and p for p in out):
        raise TypeError(f"{name} must contain non-empty strings, got {value!r}")
    return out


def _matches(name: str, patterns) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _protected_ids(model: nn.Module) -> set[int]:
    """lm_head and embeddings (by identity, so tied or renamed heads are caught too)."""
    ids = set()
    for getter in ("get_output_embeddings", "get_input_embeddings"):
        fn = getattr(model, getter, None)
        module = fn() if callable(fn) else None
        if module is not None:
            ids.add(id(module))
    return ids


def select_linears(model: nn.Module, include=None, exclude=None) -> dict[str, nn.Linear]:
    """Full name -> linear, in module order."""
    include = _patterns(include, "include")
    exclude = _patterns(exclude, "exclude")
    if not include:
        prefix = find_adapter(model).layers_path + "."
    protected = _protected_ids(model)
    chosen = {}
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear) or id(module) in protected:
            continue
        if name == "lm_head" or name.endswith(".lm_head") or "embed" in name.rsplit(".", 1)[-1]:
            continue
        wanted = _matches(name, include) if include else name.startswith(prefix)
        if wanted and not _matches(name, exclude):
            chosen[name] = module
    if not chosen:
        raise ValueError(f"include/exclude select no nn.Linear in {type(model).__name__} "
                         f"(include={list(include)}, exclude={list(exclude)})")
    return chosen
