"""Finding a Hugging Face KV cache and its length, whatever the release calls it.

transformers passes the cache as ``past_key_values`` (to 4.x, deprecated from 5.x), as ``cache``
(5.x) or positionally, and returns it under either name. Nothing here depends on those names: a
cache is any `transformers.cache_utils.Cache` among a call's arguments or an output's fields.
The tests in python_tests/test_models_hf_cache.py pin each assumption on every supported release.
"""
from __future__ import annotations

import inspect

import torch


def _cache_class():
    from transformers.cache_utils import Cache
    return Cache


def _is_legacy_cache(value) -> bool:
    """The pre-Cache format: a tuple of (key, value) tensor pairs per layer."""
    return (isinstance(value, (tuple, list)) and len(value) > 0 and isinstance(value[0], (tuple, list))
            and len(value[0]) >= 2 and all(isinstance(t, torch.Tensor) for t in value[0][:2]))


def find_cache(args, kwargs):
    """The Cache among a forward call's arguments, or None. A legacy tuple cache raises: µ-MoE
    cannot tie its masks to it."""
    cache_cls = _cache_class()
    for value in list(kwargs.values()) + list(args):
        if isinstance(value, cache_cls):
            return value
        if _is_legacy_cache(value):
            raise TypeError("µ-MoE: the model was given a legacy tuple KV cache; pass a "
                            "transformers Cache (e.g. DynamicCache()) so the prompt's masks can be "
                            "tied to it")
    return None


def cache_in_output(output):
    """The Cache a forward returned (a ModelOutput field or a tuple element), or None."""
    cache_cls = _cache_class()
    values = output.values() if hasattr(output, "values") else output if isinstance(output, tuple) else ()
    for value in values:
        if isinstance(value, cache_cls):
            return value
    return None


def cache_length(cache) -> int:
    """Tokens the cache already holds. Only `> 0` is relied on: on transformers 4.57 a StaticCache
    counts the non-zero key slots of the first sequence, which undercounts left padding."""
    if cache is None:
        return 0
    return int(cache.get_seq_length())


def cache_kwarg(model) -> str:
    """The name `model.forward` takes its cache under: ``cache`` (transformers >= 5.x) or
    ``past_key_values``."""
    params = inspect.signature(model.forward).parameters
    for name in ("cache", "past_key_values"):
        if name in params:
            return name
    raise TypeError(f"{type(model).__name__}.forward takes no cache argument (neither 'cache' nor "
                    f"'past_key_values')")
