"""Multimodal calibration prompts for the offline methods (Wanda, SparseGPT).

Each calibration sample is one example of the chosen task as a full conversation turn (the
evaluation prompt followed by the reference answer) with its image; only examples that have an
image are drawn, so every sample is multimodal and its image tokens reach the norms/Hessians.
"""
from __future__ import annotations

import random
import warnings

from .data import DEFAULT_CALIB_SPLIT, load_examples
from .generate import example_prompt
from .inputs import encode
from .prompts import reference_answer


def draw_calibration_examples(examples, nsamples: int, seed: int = 0):
    """``nsamples`` examples with images, drawn without replacement with ``seed``."""
    if isinstance(nsamples, bool) or int(nsamples) < 1:
        raise ValueError(f"nsamples must be a positive integer, got {nsamples!r}")
    pool = [ex for ex in examples if ex.has_image]
    if not pool:
        raise ValueError("calibration needs examples with an image; the calibration split has none")
    if len(pool) < nsamples:
        warnings.warn(f"only {len(pool)} calibration examples with images (nsamples={nsamples})")
        nsamples = len(pool)
    return random.Random(seed).sample(pool, int(nsamples))


def calibration_batches(processor, task: str, examples, *, nsamples: int = 128, seed: int = 0,
                        template: str = "vicuna_v1", with_answer: bool = True,
                        pad_to_square: bool = True) -> list[dict]:
    """A list of forward-kwargs dicts (input_ids, attention_mask, pixel_values), one prompt each,
    as ``mumoe_ext.sparsify(..., calib=...)`` takes them."""
    batches = []
    for ex in draw_calibration_examples(examples, nsamples, seed):
        text = example_prompt(task, ex, template)
        if with_answer:
            text = f"{text} {reference_answer(task, ex)}"
        batches.append(encode(processor, text, ex.image, pad_to_square=pad_to_square))
    return batches


def load_calibration(processor, task: str, *, split: str | None = None,
                     data_dir: str | None = None, **kwargs) -> list[dict]:
    """Calibration batches drawn from a task split (train by default)."""
    examples = load_examples(task, split or DEFAULT_CALIB_SPLIT[task], data_dir)
    return calibration_batches(processor, task, examples, **kwargs)
