"""LLaVA model handling: load a checkpoint with its processor, and name the parts that can be
pruned (language-model decoder layers, vision tower, multimodal projector)."""
from __future__ import annotations

import torch
from torch import nn

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _inner(model: nn.Module) -> nn.Module:
    """transformers >= 4.52 keeps the parts under ``model.model``; older releases on the top."""
    inner = getattr(model, "model", None)
    return inner if inner is not None and hasattr(inner, "vision_tower") else model


def _name_of(model: nn.Module, target: nn.Module) -> str:
    for name, module in model.named_modules():
        if module is target:
            return name
    raise ValueError("model: submodule not found")  # unreachable for a child of model


def llava_parts(model: nn.Module) -> dict[str, str]:
    """Dotted module names of "language" (the decoder layer list), "vision_tower", "projector"."""
    inner = _inner(model)
    missing = [a for a in ("vision_tower", "multi_modal_projector", "language_model")
               if getattr(inner, a, None) is None]
    if missing:
        raise TypeError(f"model must be a LlavaForConditionalGeneration-like model; "
                        f"{type(model).__name__} has no {missing}")
    language = inner.language_model
    layers = getattr(language, "layers", None)
    if layers is None:  # old layout: language_model is a *ForCausalLM
        layers = getattr(getattr(language, "model", None), "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise TypeError(f"model: cannot find the decoder layers of {type(language).__name__}")
    return {"language": _name_of(model, layers),
            "vision_tower": _name_of(model, inner.vision_tower),
            "projector": _name_of(model, inner.multi_modal_projector)}


def part_patterns(model: nn.Module, vision_tower: bool = False, projector: bool = False) -> list:
    """``include`` glob patterns for `mumoe_ext.sparsify`: the language model always."""
    parts = llava_parts(model)
    chosen = ["language"] + (["vision_tower"] if vision_tower else []) + \
             (["projector"] if projector else [])
    return [f"{parts[p]}.*" for p in chosen]


def resolve_device(device: str | None) -> torch.device:
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_llava(name: str, dtype: str = "auto", device: str | None = None):
    """(model, processor) for a hub id or a local folder, in eval mode on ``device``.

    ``dtype="auto"``: float16 on CUDA (as LLaVA's evaluation runs), float32 on CPU.
    """
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    if not isinstance(name, str) or not name:
        raise ValueError(f"model must be a non-empty string, got {name!r}")
    dev = resolve_device(device)
    if dtype == "auto":
        torch_dtype = torch.float16 if dev.type == "cuda" else torch.float32
    elif dtype in DTYPES:
        torch_dtype = DTYPES[dtype]
    else:
        raise ValueError(f"dtype must be 'auto' or one of {sorted(DTYPES)}, got {dtype!r}")
    model = LlavaForConditionalGeneration.from_pretrained(name, dtype=torch_dtype)
    processor = AutoProcessor.from_pretrained(name)
    return model.to(dev).eval(), processor


def restore(model):
    """`mumoe_ext.restore`: undo any sparsification (imported lazily: the model layer loads the
    compiled extension)."""
    from mumoe_ext.models import restore as restore_model
    return restore_model(model)
