"""Greedy generation of one answer per example, one prompt at a time (µ-MoE prunes per prompt)."""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from .inputs import encode, to_model
from .prompts import chat_prompt, task_question


def example_prompt(task: str, example, template: str = "vicuna_v1") -> str:
    return chat_prompt(task_question(task, example), example.has_image, template)


def _pad_token_id(processor):
    tok = getattr(processor, "tokenizer", processor)
    pad = getattr(tok, "pad_token_id", None)
    return pad if pad is not None else getattr(tok, "eos_token_id", None)


@torch.inference_mode()
def generate_answer(model, processor, prompt: str, image=None, *, max_new_tokens: int = 128,
                    pad_to_square: bool = True) -> str:
    """Greedy decoding of one prompt; returns the new text, special tokens skipped, stripped."""
    inputs = to_model(encode(processor, prompt, image, pad_to_square=pad_to_square), model)
    out = model.generate(**inputs, do_sample=False, num_beams=1, max_new_tokens=max_new_tokens,
                         pad_token_id=_pad_token_id(processor))
    new_tokens = out[0, inputs["input_ids"].shape[1]:]
    tok = getattr(processor, "tokenizer", processor)
    return tok.decode(new_tokens, skip_special_tokens=True).strip()


def generate_predictions(model, processor, task: str, examples, *, template: str = "vicuna_v1",
                         max_new_tokens: int = 128, pad_to_square: bool = True,
                         progress: bool = True, desc: str | None = None) -> dict:
    """{str(example id): raw model text} for every example, in order."""
    if isinstance(max_new_tokens, bool) or int(max_new_tokens) < 1:
        raise ValueError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
    preds = {}
    for ex in tqdm(examples, desc=desc or f"{task} generate", disable=not progress):
        prompt = example_prompt(task, ex, template)
        preds[str(ex.id)] = generate_answer(model, processor, prompt, ex.image,
                                            max_new_tokens=max_new_tokens,
                                            pad_to_square=pad_to_square)
    return preds
