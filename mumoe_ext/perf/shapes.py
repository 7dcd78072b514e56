"""Random models with the shapes of real ones, for speed measurements without their weights.

The weights are random (speed does not depend on their values, only µ-MoE's masks do); `layers`
keeps only the first N decoder layers, so a 7B shape fits a small machine and its per-layer time
is still the real one.
"""
from __future__ import annotations

import torch

# Llama-family shapes, as in each model's config.json on the hub.
SHAPES = {
    "tinyllama-1.1b": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                           num_attention_heads=32, num_key_value_heads=4, vocab_size=32000,
                           max_position_embeddings=2048, rms_norm_eps=1e-5),
    "llama-2-7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=32, vocab_size=32000,
                       max_position_embeddings=4096, rms_norm_eps=1e-5),
    "smollm2-135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, vocab_size=49152,
                         max_position_embeddings=8192, rms_norm_eps=1e-5, tie_word_embeddings=True),
}


def random_model(shape: str, layers: int | None = None, dtype=torch.bfloat16, seed: int = 0):
    """A LlamaForCausalLM of a named shape with random weights, eval mode, in `dtype`."""
    from transformers import LlamaConfig, LlamaForCausalLM
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {sorted(SHAPES)}, got {shape!r}")
    kw = dict(SHAPES[shape])
    if layers is not None:
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        kw["num_hidden_layers"] = min(layers, kw["num_hidden_layers"])
    config = LlamaConfig(**kw, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    torch.manual_seed(seed)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # built in `dtype` directly: no fp32 copy of a 7B shape
    try:
        model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(default)
    return model.eval()
