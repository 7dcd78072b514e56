"""ScienceQA and TextVQA examples, read from a local folder or from the Hugging Face hub.

Local layout (images are paths relative to the task folder, or null)::

    <data_dir>/scienceqa/<split>.jsonl   id, question, choices, answer (index), hint, subject,
                                         grade, image
    <data_dir>/textvqa/<split>.jsonl     question_id, question, answers, ocr_tokens, image

Hub (optional, needs ``pip install datasets`` and network): ``derek-thomas/ScienceQA`` and
``facebook/textvqa``. The hub's ScienceQA rows carry no id, so the row index in the split is used.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

TASKS = ("scienceqa", "textvqa")
HUB_NAMES = {"scienceqa": "derek-thomas/ScienceQA", "textvqa": "facebook/textvqa"}
# The paper evaluates ScienceQA on test (as LLaVA does) and TextVQA on validation (test has no
# answers); calibration draws from the train splits.
DEFAULT_EVAL_SPLIT = {"scienceqa": "test", "textvqa": "validation"}
DEFAULT_CALIB_SPLIT = {"scienceqa": "train", "textvqa": "train"}

SUBJECTS = {"natural science": "NAT", "social science": "SOC", "language science": "LAN"}


@dataclass
class ScienceQAExample:
    id: str
    question: str
    choices: list[str]
    answer: int
    hint: str = ""
    subject: str = ""
    grade: str = ""
    image: Any = None  # a path, a PIL image, or None

    @property
    def has_image(self) -> bool:
        return self.image is not None

    @property
    def has_text_context(self) -> bool:
        return bool(self.hint)  # ScienceQA's scorer: any non-empty hint

    @property
    def context_categories(self) -> list[str]:
        """ScienceQA's context columns: TXT (a hint) and IMG (an image) may both hold; NO is
        neither."""
        cats = [c for c, on in (("TXT", self.has_text_context), ("IMG", self.has_image)) if on]
        return cats or ["NO"]

    @property
    def subject_code(self) -> str | None:
        return SUBJECTS.get(self.subject.strip().lower())

    @property
    def grade_band(self) -> str | None:
        """G1-6 or G7-12 from ScienceQA's "gradeN" strings; None when unknown."""
        digits = "".join(ch for ch in str(self.grade) if ch.isdigit())
        if not digits:
            return None
        return "G1-6" if int(digits) <= 6 else "G7-12"


@dataclass
class TextVQAExample:
    question_id: Any
    question: str
    answers: list[str] = field(default_factory=list)
    ocr_tokens: list[str] = field(default_factory=list)
    image: Any = None

    @property
    def id(self):
        return self.question_id

    @property
    def has_image(self) -> bool:
        return self.image is not None


@dataclass(frozen=True)
class HubImage:
    """The image of row ``index`` of a hub dataset, decoded only when used: a split's images do
    not fit in memory at once (TextVQA train: 34k photos)."""
    dataset: Any
    index: int

    def open(self):
        return self.dataset[self.index]["image"]


def check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    return task


def _require(row: dict, keys, where: str) -> None:
    missing = [k for k in keys if k not in row]
    if missing:
        raise ValueError(f"{where}: missing field(s) {missing}")


def _resolve_image(image, folder: str):
    if image is None or image == "":
        return None
    if isinstance(image, str):
        return image if os.path.isabs(image) else os.path.join(folder, image)
    return image  # already decoded (hub rows give PIL images)


def scienceqa_from_row(row: dict, folder: str = "", where: str = "scienceqa row",
                       default_id: str | None = None) -> ScienceQAExample:
    _require(row, ("question", "choices", "answer"), where)
    choices = [str(c) for c in row["choices"]]
    answer = int(row["answer"])
    if not 0 <= answer < len(choices):
        raise ValueError(f"{where}: answer index {answer} is outside choices (n={len(choices)})")
    ex_id = row.get("id", default_id)
    if ex_id is None:
        raise ValueError(f"{where}: missing field ['id']")
    return ScienceQAExample(
        id=str(ex_id), question=str(row["question"]), choices=choices, answer=answer,
        hint=str(row.get("hint") or ""), subject=str(row.get("subject") or ""),
        grade=str(row.get("grade") or ""), image=_resolve_image(row.get("image"), folder))


def textvqa_from_row(row: dict, folder: str = "", where: str = "textvqa row") -> TextVQAExample:
    _require(row, ("question_id", "question"), where)
    return TextVQAExample(
        question_id=row["question_id"], question=str(row["question"]),
        answers=[str(a) for a in (row.get("answers") or [])],
        ocr_tokens=[str(t) for t in (row.get("ocr_tokens") or [])],
        image=_resolve_image(row.get("image"), folder))


def read_jsonl(path: str) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
    return rows


def _load_local(task: str, split: str, data_dir: str):
    folder = os.path.join(data_dir, task)
    path = os.path.join(folder, f"{split}.jsonl")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"data_dir: no {task} split {split!r} at {path}")
    rows = read_jsonl(path)
    if task == "scienceqa":
        return [scienceqa_from_row(r, folder, f"{path}:{i + 1}") for i, r in enumerate(rows)]
    return [textvqa_from_row(r, folder, f"{path}:{i + 1}") for i, r in enumerate(rows)]


def _load_hub(task: str, split: str, limit: int | None):
    try:
        import datasets  # optional: only for users with network access
    except ImportError:
        raise ImportError(f"no data_dir given and the `datasets` package is not installed: pass "
                          f"data_dir (see docs/vlm.md) or `pip install datasets`") from None
    ds = datasets.load_dataset(HUB_NAMES[task], split=split)
    if limit:
        ds = ds.select(range(min(int(limit), len(ds))))
    if task == "scienceqa":  # many questions have no image: look without decoding
        raw = ds.cast_column("image", datasets.Image(decode=False)).select_columns(["image"])
        has_image = [r["image"] is not None for r in raw]
    else:
        has_image = [True] * len(ds)
    examples = []
    for i, row in enumerate(ds.remove_columns(["image"])):
        row = dict(row, image=HubImage(ds, i) if has_image[i] else None)
        where = f"{HUB_NAMES[task]}[{i}]"
        examples.append(scienceqa_from_row(row, where=where, default_id=str(i))
                        if task == "scienceqa" else textvqa_from_row(row, where=where))
    return examples


def load_examples(task: str, split: str | None = None, data_dir: str | None = None,
                  limit: int | None = None):
    """Examples of one task split, in file order; the first ``limit`` when given."""
    check_task(task)
    split = split or DEFAULT_EVAL_SPLIT[task]
    if limit is not None and (isinstance(limit, bool) or int(limit) < 1):
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
    examples = _load_local(task, split, data_dir) if data_dir else _load_hub(task, split, limit)
    ids = [str(e.id) for e in examples]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{task}/{split}: example ids are not unique")
    return examples[:limit] if limit else examples
