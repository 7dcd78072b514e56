"""A tiny randomly initialised LLaVA (CLIP vision tower + Llama language model), a byte-level
tokenizer built offline, and a generated ScienceQA/TextVQA data folder with PNG images."""
from __future__ import annotations

import json
import os

import torch

IMAGE_SIDE = 28  # 2x2 patches of 14 pixels -> 4 image tokens per image
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]


def build_tokenizer():
    """Byte-level BPE without merges: every byte is a token, so any text encodes offline."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import BPE
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    core = Tokenizer(BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.post_processor = processors.TemplateProcessing(single="<s> $A",
                                                        special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", bos_token="<s>",
                                   eos_token="</s>", pad_token="<pad>",
                                   additional_special_tokens=["<image>"])


def build_processor():
    from transformers import LlavaProcessor
    try:  # transformers 5: the PIL backend has its own class (the default one needs torchvision)
        from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil as Images
    except ImportError:  # transformers 4: the PIL/numpy one is the default
        from transformers import LlavaImageProcessor as Images

    image_processor = Images(size={"shortest_edge": IMAGE_SIDE},
                                             crop_size={"height": IMAGE_SIDE, "width": IMAGE_SIDE})
    return LlavaProcessor(image_processor=image_processor, tokenizer=build_tokenizer(),
                          patch_size=14, vision_feature_select_strategy="default",
                          num_additional_image_tokens=1)


def build_tiny_llava(seed: int = 0, vision_layers: int = 3):
    """(model, processor): a LlavaForConditionalGeneration of ~0.2M parameters, eval mode."""
    from transformers import (CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration)

    processor = build_processor()
    vocab = len(processor.tokenizer)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64,
                                       num_hidden_layers=vision_layers, num_attention_heads=2,
                                       image_size=IMAGE_SIDE, patch_size=14, projection_dim=32),
        text_config=LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128,
                                num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                                max_position_embeddings=2048, bos_token_id=1, eos_token_id=2,
                                pad_token_id=3),
        image_token_id=SPECIAL_TOKENS.index("<image>"), vision_feature_select_strategy="default",
        vision_feature_layer=-2)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    return model, processor


def _write_png(path: str, width: int, height: int, seed: int) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)


def _write_jsonl(path: str, rows) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


SCIENCEQA_TEST = [
    # id, question, choices, answer, hint, subject, grade, has image
    ("s1", "Which animal is a mammal?", ["dog", "trout"], 0, "", "natural science", "grade2", True),
    ("s2", "Which city is the capital?", ["Paris", "Lyon", "Nice"], 0, "Look at the map.",
     "social science", "grade5", True),
    ("s3", "Which word is a noun?", ["run", "table"], 1, "", "language science", "grade8", False),
    ("s4", "What does the force do?", ["push", "pull", "none"], 2, "A magnet is near.",
     "natural science", "grade10", False),
]
SCIENCEQA_TRAIN = [
    (f"t{i}", f"Training question {i}?", ["yes", "no"], i % 2, "Some context." if i % 2 else "",
     "natural science", "grade3", i != 3) for i in range(5)
]
TEXTVQA_VALIDATION = [
    (101, "what is written on the sign?", ["stop"] * 8 + ["stop sign"] * 2, ["STOP", "ahead"]),
    (102, "how many bottles are there?", ["two"] * 5 + ["2"] * 5, []),
    (103, "what brand is the camera?", ["dakota"] * 10, ["dakota", "digital"]),
]
TEXTVQA_TRAIN = [
    (200 + i, f"what number is shown {i}?", [str(i)] * 10, [str(i), "label"]) for i in range(4)
]


def write_vlm_fixture(root: str) -> str:
    """Write ``root/scienceqa/{test,train}.jsonl`` and ``root/textvqa/{validation,train}.jsonl``
    with non-square PNG images; returns ``root``."""
    rows = {}
    for split, table in (("test", SCIENCEQA_TEST), ("train", SCIENCEQA_TRAIN)):
        out = []
        for n, (ex_id, q, choices, ans, hint, subject, grade, has_img) in enumerate(table):
            image = None
            if has_img:
                image = f"images/{split}/{ex_id}/image.png"
                _write_png(os.path.join(root, "scienceqa", image), 30 + n, 20, seed=n)
            out.append({"id": ex_id, "question": q, "choices": choices, "answer": ans,
                        "hint": hint, "subject": subject, "grade": grade, "image": image})
        rows[("scienceqa", split)] = out
    for split, table in (("validation", TEXTVQA_VALIDATION), ("train", TEXTVQA_TRAIN)):
        out = []
        for n, (qid, q, answers, ocr) in enumerate(table):
            image = f"images/{qid}.png"
            _write_png(os.path.join(root, "textvqa", image), 20, 26 + n, seed=100 + n)
            out.append({"question_id": qid, "question": q, "answers": answers,
                        "ocr_tokens": ocr, "image": image})
        rows[("textvqa", split)] = out
    for (task, split), out in rows.items():
        os.makedirs(os.path.join(root, task), exist_ok=True)
        _write_jsonl(os.path.join(root, task, f"{split}.jsonl"), out)
    return root
