"""The prompts of the official LLaVA evaluation (haotian-liu/LLaVA, v1.5 scripts).

ScienceQA uses the "CQM-A" question format of ``scripts/convert_sqa_to_llava.py`` plus the
single-prediction instruction of ``llava/eval/model_vqa_science.py``; TextVQA uses the question
with the reference OCR tokens of ``llava_textvqa_val_v051_ocr.jsonl``. Both are wrapped in the
``vicuna_v1`` conversation that LLaVA-1.5's evaluation scripts select (``--conv-mode vicuna_v1``).
"""
from __future__ import annotations

OPTION_LETTERS = ("A", "B", "C", "D", "E")
SCIENCEQA_INSTRUCTION = "Answer with the option's letter from the given choices directly."
TEXTVQA_INSTRUCTION = "Answer the question using a single word or phrase."
IMAGE_PLACEHOLDER = "<image>"

VICUNA_SYSTEM = ("A chat between a curious human and an artificial intelligence assistant. "
                 "The assistant gives helpful, detailed, and polite answers to the human's "
                 "questions.")
TEMPLATES = ("vicuna_v1", "llava_hf", "plain")


def scienceqa_question(example) -> str:
    """Context (the hint, or "N/A"), question and lettered options, then the instruction."""
    if len(example.choices) > len(OPTION_LETTERS):
        raise ValueError(f"scienceqa example {example.id}: {len(example.choices)} choices, "
                         f"at most {len(OPTION_LETTERS)} are supported")
    context = (example.hint or "").strip() or "N/A"
    options = " ".join(f"({OPTION_LETTERS[i]}) {c}" for i, c in enumerate(example.choices))
    body = f"Context: {context}\nQuestion: {example.question}\nOptions: {options}\n"
    # The LLaVA converter collapses double spaces once and strips the block.
    body = body.replace("  ", " ").strip()
    return f"{body}\n{SCIENCEQA_INSTRUCTION}"


def textvqa_question(example) -> str:
    """The question, the reference OCR tokens (when there are any), then the instruction."""
    lines = [example.question]
    if example.ocr_tokens:
        lines.append("Reference OCR token: " + ", ".join(example.ocr_tokens))
    lines.append(TEXTVQA_INSTRUCTION)
    return "\n".join(lines)


def chat_prompt(question: str, has_image: bool, template: str = "vicuna_v1") -> str:
    """Wrap one user turn: the image placeholder goes first, on its own line, as in LLaVA."""
    if template not in TEMPLATES:
        raise ValueError(f"template must be one of {TEMPLATES}, got {template!r}")
    user = f"{IMAGE_PLACEHOLDER}\n{question}" if has_image else question
    if template == "vicuna_v1":
        return f"{VICUNA_SYSTEM} USER: {user} ASSISTANT:"
    if template == "llava_hf":  # the chat template shipped with llava-hf/llava-1.5-*-hf
        return f"USER: {user} ASSISTANT:"
    return user


def task_question(task: str, example) -> str:
    if task == "scienceqa":
        return scienceqa_question(example)
    if task == "textvqa":
        return textvqa_question(example)
    raise ValueError(f"task must be 'scienceqa' or 'textvqa', got {task!r}")


def reference_answer(task: str, example) -> str:
    """The answer text a calibration prompt ends with: the option letter, or the most frequent
    human answer (first seen wins ties)."""
    if task == "scienceqa":
        return OPTION_LETTERS[example.answer]
    if not example.answers:
        return ""
    counts: dict[str, int] = {}
    for a in example.answers:
        counts[a] = counts.get(a, 0) + 1
    return max(counts, key=counts.get)
