"""Turn a prompt (and its image) into LLaVA forward kwargs with a Hugging Face LLaVA processor."""
from __future__ import annotations

import torch


def load_image(image):
    """A PIL RGB image from a path, a `HubImage` or an already-decoded image."""
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("images need Pillow: pip install pillow") from None
    if hasattr(image, "open") and not isinstance(image, Image.Image):  # HubImage
        image = image.open()
    if isinstance(image, str):
        with Image.open(image) as im:
            return im.convert("RGB")
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    raise TypeError(f"image must be a file path or a PIL image, got {type(image).__name__}")


def expand_to_square(image, fill):
    """Pad the shorter side symmetrically with ``fill`` (LLaVA-1.5's image_aspect_ratio="pad")."""
    from PIL import Image
    w, h = image.size
    if w == h:
        return image
    side = max(w, h)
    canvas = Image.new(image.mode, (side, side), fill)
    canvas.paste(image, ((side - w) // 2, (side - h) // 2))
    return canvas


def _background(processor):
    mean = getattr(getattr(processor, "image_processor", None), "image_mean", None) or (0.5,) * 3
    return tuple(int(m * 255) for m in mean)


def encode(processor, prompt: str, image=None, *, pad_to_square: bool = True) -> dict:
    """Processor outputs for one prompt: input_ids, attention_mask and (with an image)
    pixel_values; the processor expands the ``<image>`` placeholder into the image tokens."""
    if image is None:
        batch = processor(text=prompt, return_tensors="pt")
    else:
        pil = load_image(image)
        if pad_to_square:
            pil = expand_to_square(pil, _background(processor))
        batch = processor(images=pil, text=prompt, return_tensors="pt")
    # token_type_ids: some tokenizers return them (transformers 4.x here), LLaVA takes none
    return {k: v for k, v in batch.items() if isinstance(v, torch.Tensor) and k != "token_type_ids"}


def to_model(inputs: dict, model) -> dict:
    """Move a batch to the model's device; pixel values take the model's floating dtype."""
    param = next(model.parameters())
    out = {}
    for k, v in inputs.items():
        if k == "pixel_values":
            out[k] = v.to(device=param.device, dtype=param.dtype)
        else:
            out[k] = v.to(param.device)
    return out
