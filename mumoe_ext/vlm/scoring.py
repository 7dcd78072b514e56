"""One entry point for both tasks' scorers."""
from __future__ import annotations

from .data import check_task
from .scienceqa import score_scienceqa
from .textvqa import score_textvqa


def score(task: str, examples, predictions: dict) -> dict:
    """Accuracy breakdown of ``predictions`` ({str(id): raw text}) on ``examples``."""
    check_task(task)
    if task == "scienceqa":
        return score_scienceqa(examples, predictions)
    return score_textvqa(examples, predictions)
