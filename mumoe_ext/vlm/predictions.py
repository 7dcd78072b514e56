"""Prediction files: JSON lines ``{"id": ..., "prediction": "<raw model text>"}`` (ScienceQA) or
``{"question_id": ..., "prediction": ...}`` (TextVQA). LLaVA's own answer files
(``question_id`` + ``text``) are read too."""
from __future__ import annotations

import json

from .data import check_task, read_jsonl

ID_KEYS = {"scienceqa": ("id", "question_id"), "textvqa": ("question_id", "id")}
TEXT_KEYS = ("prediction", "text")


def read_predictions(path: str, task: str) -> dict:
    """{str(id): text}; a repeated id is an error."""
    check_task(task)
    preds = {}
    for lineno, row in enumerate(read_jsonl(path), 1):
        key = next((k for k in ID_KEYS[task] if k in row), None)
        text_key = next((k for k in TEXT_KEYS if k in row), None)
        if key is None or text_key is None:
            raise ValueError(f"{path}:{lineno}: a prediction needs {ID_KEYS[task][0]!r} and "
                             f"'prediction' fields, got {sorted(row)}")
        ex_id = str(row[key])
        if ex_id in preds:
            raise ValueError(f"{path}:{lineno}: id {ex_id} appears twice")
        preds[ex_id] = str(row[text_key])
    return preds


def write_predictions(path: str, task: str, examples, predictions: dict) -> None:
    """One line per example that has a prediction, in example order."""
    check_task(task)
    id_key = ID_KEYS[task][0]
    with open(path, "w", encoding="utf-8") as f:
        for ex in examples:
            if str(ex.id) in predictions:
                f.write(json.dumps({id_key: ex.id, "prediction": predictions[str(ex.id)]}) + "\n")


def check_known_ids(predictions: dict, examples, path: str = "predictions") -> None:
    known = {str(ex.id) for ex in examples}
    unknown = [k for k in predictions if k not in known]
    if unknown:
        raise ValueError(f"{path}: {len(unknown)} prediction id(s) are not in the data, "
                         f"e.g. {unknown[:3]}")
