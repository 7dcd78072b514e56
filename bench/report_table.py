"""Markdown tables of one run: one table per op, one row per group (same inputs), ours first,
then each torch baseline, then the ratios computed from those same-run minima."""
from __future__ import annotations

from report_data import Group, Run

BASELINES = {
    "wanda_mask": ("sort", "topk", "kthvalue"),
    "sparse_linear": ("F.linear",),
    "wanda_linear": ("F.linear", "torch_topk"),
}


def _ms(g: Group, impl: str) -> str:
    if impl in g.skipped:
        return "skipped¹"
    v = g.ms(impl)
    if v is None:
        return "—"
    return f"{v:.3g}" if v < 100 else f"{v:.0f}"


def _x(r: float | None) -> str:
    return "—" if r is None else f"{r:.2f}×"


def _gbs(g: Group, impl: str) -> str:
    t = g.times.get(impl)
    if t is None or "weight_bytes" not in t.extra or g.T > 8:
        return "—"  # only meaningful where the product is bandwidth-bound (decode)
    return f"{t.extra['weight_bytes'] / t.min_s / 1e9:.3g}"


def _lead(g: Group) -> list:
    return [g.shape, g.model or "square", f"{g.density:g}", g.dtype, g.device]


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _header(names, right_from: int) -> list:
    align = ["---"] * right_from + ["---:"] * (len(names) - right_from)
    return [_row(names), _row(align)]


def selection_table(groups) -> list:
    base = BASELINES["wanda_mask"]
    lines = _header(["shape (d_out×d_in)", "layer", "density", "dtype", "device", "ours ms",
                     *[f"{b} ms" for b in base], *[f"speedup vs {b}" for b in base]], 5)
    for g in groups:
        lines.append(_row(_lead(g) + [_ms(g, "ours"), *[_ms(g, b) for b in base],
                                      *[_x(g.ratio(b, "ours")) for b in base]]))
    return lines


def sparse_linear_table(groups) -> list:
    lines = _header(["shape (d_out×d_in)", "layer", "density", "dtype", "device", "T", "ours ms",
                     "F.linear ms", "speedup vs F.linear", "ours weight GB/s (T≤8)",
                     "F.linear weight GB/s (T≤8)"], 6)
    for g in groups:
        lines.append(_row(_lead(g) + [g.T, _ms(g, "ours"), _ms(g, "F.linear"),
                                      _x(g.ratio("F.linear", "ours")), _gbs(g, "ours"),
                                      _gbs(g, "F.linear")]))
    return lines


def wanda_linear_table(groups) -> list:
    lines = _header(["shape (d_out×d_in)", "layer", "density", "dtype", "device", "T", "ours ms",
                     "F.linear ms", "torch_topk ms", "ours / F.linear (time)",
                     "speedup vs torch_topk"], 6)
    for g in groups:
        lines.append(_row(_lead(g) + [g.T, _ms(g, "ours"), _ms(g, "F.linear"),
                                      _ms(g, "torch_topk"), _x(g.ratio("ours", "F.linear")),
                                      _x(g.ratio("torch_topk", "ours"))]))
    return lines


def isa_table(run: Run) -> list:
    """Our kernels on each forced CPU path, where the sweep measured them."""
    rows = []
    for g in run.groups:
        paths = sorted(i for i in g.times if i.startswith("ours@"))
        if not paths:
            continue
        best = g.times["ours"].extra.get("cpu_isa", "?") if "ours" in g.times else "?"
        cells = [f"{i.split('@')[1]} {_ms(g, i)} ms" for i in paths]
        T = f" T={g.T}" if g.T else ""
        rows.append(_row([f"{g.op}{T}", g.shape, g.dtype, f"{g.density:g}",
                          f"{best} {_ms(g, 'ours')} ms", ", ".join(cells)]))
    if not rows:
        return []
    return _header(["op", "shape", "dtype", "density", "default path", "forced paths"], 6) + rows


TABLES = (
    ("wanda_mask", "Selection: `mumoe_ext.wanda_mask` vs the torch formulations (Figure 3)",
     selection_table,
     "Each implementation scores |W|·n in fp32 and returns the bool mask; `sort` is "
     "`reference.wanda_mask` (stable sort, exact ties), `topk`/`kthvalue` their torch "
     "counterparts. Speedup = baseline time / ours."),
    ("sparse_linear", "Decode: `mumoe_ext.sparse_linear` (RowSparse from `prune_rows`) vs "
     "`F.linear`", sparse_linear_table,
     "The RowSparse weight is built once outside the timing (it is reused for every generated "
     "token). Weight GB/s = bytes of the weight each implementation reads (RowSparse bitmap + "
     "values, or the dense weight) / time. Speedup = F.linear time / ours."),
    ("wanda_linear", "Prefill: `mumoe_ext.wanda_linear` vs `F.linear` and the plain-torch pipeline",
     wanda_linear_table,
     "ours = norms + selection + pruned GEMM of this prompt; F.linear = the unpruned layer (the "
     "floor); torch_topk = `reference.col_norms` + `wanda_mask_topk` + masked `F.linear`. "
     "Target: ours / F.linear ≤ 1.25× at T=128."),
)


def op_sections(run: Run) -> list:
    lines = []
    for op, title, table, note in TABLES:
        groups = run.of(op)
        if not groups:
            continue
        lines += ["", f"## {title}", "", note, ""] + table(groups)
        reasons: dict = {}  # "skipped on CPU above ..." -> {impl, ...}
        for g in groups:
            for impl, r in g.skipped.items():
                reasons.setdefault(r.split(": ", 1)[-1], set()).add(impl)
        if reasons:
            lines += [""] + [f"¹ {', '.join(sorted(impls))}: {r}." for r, impls in reasons.items()]
    isa = isa_table(run)
    if isa:
        lines += ["", "## Our kernels per CPU instruction-set path", "",
                  "Same inputs, same run; `mumoe_ext.cpu_isa(name)` forces a path.", ""] + isa
    return lines
