"""Write examples (e.g. loaded from the hub) into the local folder layout of `data.py`, so that
machines without network access can run the evaluation from a copied folder."""
from __future__ import annotations

import json
import os
import shutil

from .data import check_task
from .inputs import load_image


def _save_image(image, task_dir: str, rel: str) -> str:
    path = os.path.join(task_dir, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if isinstance(image, str):
        shutil.copyfile(image, path)
    else:
        load_image(image).save(path)
    return rel


def save_examples(task: str, split: str, examples, data_dir: str) -> str:
    """``<data_dir>/<task>/<split>.jsonl`` plus PNG images under ``images/<split>/``; returns
    the jsonl path. Image files keep their extension when the source is a path."""
    check_task(task)
    task_dir = os.path.join(data_dir, task)
    os.makedirs(task_dir, exist_ok=True)
    path = os.path.join(task_dir, f"{split}.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for ex in examples:
            image = None
            if ex.image is not None:
                ext = os.path.splitext(ex.image)[1] if isinstance(ex.image, str) else ".png"
                image = _save_image(ex.image, task_dir, f"images/{split}/{ex.id}{ext or '.png'}")
            if task == "scienceqa":
                row = {"id": ex.id, "question": ex.question, "choices": ex.choices,
                       "answer": ex.answer, "hint": ex.hint, "subject": ex.subject,
                       "grade": ex.grade, "image": image}
            else:
                row = {"question_id": ex.question_id, "question": ex.question,
                       "answers": ex.answers, "ocr_tokens": ex.ocr_tokens, "image": image}
            f.write(json.dumps(row) + "\n")
    return path
