"""Readable tables of VLM results: one row per (method, density), Table 2 / Table 3 columns."""
from __future__ import annotations

from .scienceqa import COLUMNS as SCIENCEQA_COLUMNS

TEXTVQA_COLUMNS = ("VQA",)


def task_columns(task: str):
    return SCIENCEQA_COLUMNS if task == "scienceqa" else TEXTVQA_COLUMNS


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_table(task: str, rows) -> str:
    """rows: dicts with "method", "density" and "accuracy" (column -> percent or None)."""
    cols = task_columns(task)
    header = ["method", "active"] + list(cols)
    body = []
    for r in rows:
        density = r.get("density")
        active = "-" if density is None else f"{100 * density:.0f}%"
        body.append([str(r.get("method", "")), active] + [_fmt(r["accuracy"].get(c)) for c in cols])
    widths = [max(len(h), *(len(line[i]) for line in body)) if body else len(h)
              for i, h in enumerate(header)]

    def line(cells):
        return " | ".join(c.ljust(w) if i < 2 else c.rjust(w)
                          for i, (c, w) in enumerate(zip(cells, widths)))

    sep = "-+-".join("-" * w for w in widths)
    title = "ScienceQA accuracy (%)" if task == "scienceqa" else "TextVQA accuracy (%)"
    return "\n".join([title, line(header), sep] + [line(b) for b in body])


def format_score(task: str, score: dict, label: str = "predictions") -> str:
    """The table for one standalone scoring run, with the example counts."""
    table = format_table(task, [{"method": label, "density": None,
                                 "accuracy": score["accuracy"]}])
    counts = ", ".join(f"{c}={n}" for c, n in score["count"].items() if n)
    return f"{table}\nexamples: {counts}"
