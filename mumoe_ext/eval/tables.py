"""The paper's Table 1 layout from result records, as plain text or markdown.

Rows: methods (offline ones once per calibration set), columns: datasets + Avg grouped by
density (active weights) or N:M pattern, a dense line on top; one table per mode.
"""
from __future__ import annotations


from .datasets import dataset_label

SHORT = {"wikitext2": "WT2", "ptb": "PTB", "c4": "C4*"}
METHOD_LABEL = {"magnitude": "Magnitude", "wanda": "Wanda", "sparsegpt": "SparseGPT",
                "mumoe": "µ-MoE", "mumoe-plus": "µ-MoE+", "dense": "Dense"}
C4_FOOTNOTE = ("C4* = documents 0-499 of the C4 en train shard 00000 excerpt, the validation "
               "stand-in of shared/data; C4 calibration uses documents 500-999.")


def _short(dataset: str) -> str:
    return SHORT.get(dataset, dataset_label(dataset))


def _row_label(method: str, calib, options=None) -> str:
    label = METHOD_LABEL.get(method, method)
    if options:
        label += f" ({options.replace(',', ', ')})"
    return f"{label} ({_short(calib).rstrip('*')} calib)" if calib else label


def _fmt(v) -> str:
    if v is None:
        return "-"
    return f"{v:.1f}" if v < 1000 else f"{v:.0f}"


def _avg(values):
    return None if any(v is None for v in values) or not values else sum(values) / len(values)


def _ordered(values):
    seen = []
    for v in values:
        if v not in seen:
            seen.append(v)
    return seen


def _sparsity(r) -> tuple:
    return r["density"], r.get("pattern")


def _sparsity_order(key) -> tuple:
    density, pattern = key  # unstructured first, then patterns, each by decreasing density
    return -density, pattern is not None, pattern or ""


def _sparsity_label(key) -> str:
    density, pattern = key
    return pattern if pattern else f"{density:.0%}"


def table_rows(records: list, mode: str):
    """(header, dense_line, rows) with rows = [(label, [cells...])], cells per density group
    (a group per density, and one per N:M pattern)."""
    recs = [r for r in records if r["mode"] == mode]
    datasets = _ordered(r["dataset"] for r in recs)
    densities = sorted(_ordered(_sparsity(r) for r in recs if r["method"] != "dense"),
                       key=_sparsity_order)
    ppl = {(r["method"], r["calib"], r.get("options"), _sparsity(r), r["dataset"]): r["ppl"]
           for r in recs}
    dense = [ppl.get(("dense", None, None, (1.0, None), d)) for d in datasets]
    dense_line = None
    if any(v is not None for v in dense):
        parts = [f"{_short(d)}: {_fmt(v)}" for d, v in zip(datasets, dense)]
        dense_line = f"dense ({', '.join(parts)}, Avg: {_fmt(_avg(dense))})"
    header = [(_sparsity_label(key), [_short(d) for d in datasets] + ["Avg"]) for key in densities]
    rows = []
    pairs = _ordered((r["method"], r["calib"], r.get("options")) for r in recs
                     if r["method"] != "dense")
    rank, calib_rank = list(METHOD_LABEL), ["wikitext2", "ptb", "c4"]
    pairs.sort(key=lambda mc: (rank.index(mc[0]) if mc[0] in rank else len(rank),
                               calib_rank.index(mc[1]) if mc[1] in calib_rank else 3))  # stable
    for method, calib, options in pairs:
        cells = []
        for density in densities:
            vals = [ppl.get((method, calib, options, density, d)) for d in datasets]
            cells += vals + [_avg(vals)]
        rows.append((_row_label(method, calib, options), cells))
    return header, dense_line, rows


def _has_c4(records) -> bool:
    return any(r["dataset"] == "c4" for r in records)


def format_table(records: list, mode: str, model: str = "") -> str:
    header, dense_line, rows = table_rows(records, mode)
    width = max([len(label) for label, _ in rows] + [len("Active weights")]) + 2
    group = lambda cells: "".join(f"{c:>8}" for c in cells)
    lines = [f"{model} — perplexity (lower is better), mode={mode}".strip(" —")]
    if dense_line:
        lines.append(dense_line)
    lines.append("Active weights".ljust(width) + " | ".join(
        density.center(8 * len(names)) for density, names in header))
    lines.append("Test dataset".ljust(width) + " | ".join(group(names) for _, names in header))
    n = len(header[0][1]) if header else 0
    for label, cells in rows:
        chunks = [group(_fmt(c) for c in cells[i:i + n]) for i in range(0, len(cells), n)]
        lines.append(label.ljust(width) + " | ".join(chunks))
    if _has_c4(records):
        lines.append(C4_FOOTNOTE)
    return "\n".join(lines)


def markdown_table(records: list, mode: str, model: str = "") -> str:
    header, dense_line, rows = table_rows(records, mode)
    out = [f"**{model}**, mode `{mode}`" + (f": {dense_line}" if dense_line else ""), ""]
    out.append("| Active weights | " + " | ".join(
        " | ".join([density] + [""] * (len(names) - 1)) for density, names in header) + " |")
    out.append("|---|" + "---|" * sum(len(names) for _, names in header))
    out.append("| Test dataset | " + " | ".join(" | ".join(names) for _, names in header) + " |")
    for label, cells in rows:
        out.append(f"| {label} | " + " | ".join(_fmt(c) for c in cells) + " |")
    if _has_c4(records):
        out += ["", C4_FOOTNOTE]
    return "\n".join(out)


def markdown_report(records: list) -> str:
    models = _ordered(r["model"] for r in records)
    parts = []
    for model in models:
        for mode in _ordered(r["mode"] for r in records if r["model"] == model):
            parts.append(markdown_table([r for r in records if r["model"] == model], mode, model))
    return "\n\n".join(parts) + "\n"
