"""ScienceQA scoring: the answer-letter rules of LLaVA's ``eval_science_qa.py`` and the breakdown
of ScienceQA's official scorer (Table 2: subject, context modality, grade).

A prediction counts only if the parsed letter names one of the example's choices; anything else
(including a missing prediction) is wrong, as in the latest official script.
"""
from __future__ import annotations

import re

from .prompts import OPTION_LETTERS

COLUMNS = ("NAT", "SOC", "LAN", "TXT", "IMG", "NO", "G1-6", "G7-12", "Avg")
_ANSWER_IS = re.compile(r"The answer is ([A-Z]).")  # the official pattern, "." included verbatim


def extract_letter(prediction: str) -> str | None:
    """The option letter LLaVA's scorer reads from a model output, or None when it fails.

    Rules, in order: the whole (stripped) text is a letter A-E; the text starts with "X. ";
    exactly one "The answer is X" followed by any character. Lower case, "(C)" and several
    "The answer is" sentences all fail, as they do officially.
    """
    text = (prediction or "").strip()
    if text in OPTION_LETTERS:
        return text
    if len(text) >= 3 and text[0] in OPTION_LETTERS and text[1:3] == ". ":
        return text[0]
    found = _ANSWER_IS.findall(text)
    return found[0] if len(found) == 1 else None


def predicted_index(prediction: str, n_choices: int) -> int:
    """Choice index of a prediction, -1 when no valid letter could be read."""
    letter = extract_letter(prediction)
    if letter is None or letter not in OPTION_LETTERS[:n_choices]:
        return -1
    return OPTION_LETTERS.index(letter)


def example_columns(example) -> list[str]:
    cols = list(example.context_categories)
    if example.subject_code:
        cols.append(example.subject_code)
    if example.grade_band:
        cols.append(example.grade_band)
    return cols


def score_scienceqa(examples, predictions: dict) -> dict:
    """Accuracy in percent, overall ("Avg") and by Table 2's columns.

    ``predictions`` maps str(example id) to the raw model text. Returns ``{"accuracy": {col: pct
    or None (no example)}, "count": {col: n}, "correct": {col: n}, "per_example": [...]}``.
    """
    correct = {c: 0 for c in COLUMNS}
    count = {c: 0 for c in COLUMNS}
    per_example = []
    for ex in examples:
        text = predictions.get(str(ex.id))
        idx = -1 if text is None else predicted_index(text, len(ex.choices))
        ok = idx == ex.answer
        for col in example_columns(ex) + ["Avg"]:
            count[col] += 1
            correct[col] += int(ok)
        per_example.append({"id": str(ex.id), "prediction": text,
                            "parsed": OPTION_LETTERS[idx] if idx >= 0 else None,
                            "answer": OPTION_LETTERS[ex.answer], "correct": ok})
    accuracy = {c: (100.0 * correct[c] / count[c] if count[c] else None) for c in COLUMNS}
    return {"task": "scienceqa", "accuracy": accuracy, "count": count, "correct": correct,
            "per_example": per_example}
