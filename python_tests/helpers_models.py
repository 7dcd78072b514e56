"""Tiny random models and an offline word-level tokenizer for the model-layer tests.

Nothing here touches the network: configs are built in code, the tokenizer from a fixed word list.
The VLM tests may import `tiny_llava`.
"""
from __future__ import annotations

import random

import torch

VOCAB = 128
WORDS = [f"w{i}" for i in range(VOCAB - 4)]  # + [UNK] [PAD] <s> </s>


def tiny_tokenizer():
    """A PreTrainedTokenizerFast over whitespace-separated words w0..w123."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    vocab = {"[UNK]": 0, "[PAD]": 1, "<s>": 2, "</s>": 3}
    vocab.update({w: i + 4 for i, w in enumerate(WORDS)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   bos_token="<s>", eos_token="</s>")


def tiny_text(n_words: int = 800, seed: int = 0) -> str:
    """Random 'sentences' over the tokenizer's words, one per line; a little structure (bigram
    repeats) so a model could learn something, which the tests do not need."""
    rng = random.Random(seed)
    lines, line = [], []
    for _ in range(n_words):
        line.append(rng.choice(WORDS[:40]) if rng.random() < 0.7 else rng.choice(WORDS))
        if len(line) >= rng.randint(5, 12):
            lines.append(" ".join(line))
            line = []
    return "\n".join(lines + [" ".join(line)]) + "\n"


def _seeded(build):
    torch.manual_seed(0)
    model = build()
    return model.eval()


def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=128, pad_token_id=1, bos_token_id=2,
                         eos_token_id=3, tie_word_embeddings=False)
    return _seeded(lambda: LlamaForCausalLM(config))


def tiny_opt():
    from transformers import OPTConfig, OPTForCausalLM
    config = OPTConfig(vocab_size=VOCAB, hidden_size=32, ffn_dim=64, num_hidden_layers=2,
                       num_attention_heads=4, max_position_embeddings=128,
                       word_embed_proj_dim=32, pad_token_id=1, bos_token_id=2, eos_token_id=3)
    return _seeded(lambda: OPTForCausalLM(config))


IMAGE_TOKEN = VOCAB - 1


def tiny_llava():
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration
    text = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64,
                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                       max_position_embeddings=128, pad_token_id=1)
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=4, image_size=16, patch_size=8)
    config = LlavaConfig(text_config=text, vision_config=vision, image_token_index=IMAGE_TOKEN,
                         projector_hidden_act="gelu", vision_feature_layer=-1,
                         vision_feature_select_strategy="default")
    return _seeded(lambda: LlavaForConditionalGeneration(config))


def llava_inputs(batch: int = 1, text_tokens: int = 6, seed: int = 0):
    """input_ids with the image placeholders already expanded (4 patches), plus pixel_values."""
    g = torch.Generator().manual_seed(seed)
    image = torch.full((batch, 4), IMAGE_TOKEN)
    text = torch.randint(4, VOCAB - 2, (batch, text_tokens), generator=g)
    input_ids = torch.cat([text[:, :1], image, text[:, 1:]], dim=1)
    pixel_values = torch.randn(batch, 3, 16, 16, generator=g)
    return {"input_ids": input_ids, "pixel_values": pixel_values,
            "attention_mask": torch.ones_like(input_ids)}


FAMILIES = {"llama": tiny_llama, "opt": tiny_opt, "llava": tiny_llava}


def token_windows(n: int, seqlen: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(4, VOCAB - 2, (n, seqlen), generator=g)


def family_inputs(family: str, seed: int = 0) -> dict:
    if family == "llava":
        return llava_inputs(seed=seed)
    ids = token_windows(1, 10, seed)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def calib_batches(family: str, n: int = 4) -> list:
    """Calibration batches as dicts of forward kwargs (LLaVA: with pixel_values)."""
    if family == "llava":
        return [llava_inputs(seed=i) for i in range(n)]
    return [{"input_ids": w.unsqueeze(0)} for w in token_windows(n, 12)]
