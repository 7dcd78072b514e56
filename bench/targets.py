"""Issue 4's performance targets, checked on one saved run (same run = same machine state)."""
from __future__ import annotations

from dataclasses import dataclass

from report_data import Run

SIZE = 4096


@dataclass(frozen=True)
class Target:
    label: str
    op: str
    fixed: tuple          # (field, value) pairs selecting the group
    num: str              # ratio = time(num) / time(den)
    den: str
    bound: float
    at_least: bool        # True: ratio >= bound passes (a speedup); False: ratio <= bound passes
    info: bool = False    # shown for comparison only: no PASS/MISS

    def select(self) -> dict:
        return dict(self.fixed, d_out=SIZE, d_in=SIZE, model="")


def _cpu(**kw):
    return tuple(sorted(dict(device="cpu", **kw).items()))


TARGETS = (
    Target("wanda_mask CPU fp32 4096x4096, speedup vs torch.sort reference", "wanda_mask",
           _cpu(dtype="fp32", density=0.5, T=0), "sort", "ours", 40.0, True),
    Target("wanda_mask CPU fp32 4096x4096, speedup vs torch.topk reference", "wanda_mask",
           _cpu(dtype="fp32", density=0.5, T=0), "topk", "ours", 10.0, True),
    Target("sparse_linear CPU fp32 4096x4096 density 0.5 T=1, speedup vs F.linear",
           "sparse_linear", _cpu(dtype="fp32", density=0.5, T=1), "F.linear", "ours", 1.5, True),
    Target("sparse_linear CPU bf16 4096x4096 density 0.5 T=1, speedup vs F.linear",
           "sparse_linear", _cpu(dtype="bf16", density=0.5, T=1), "F.linear", "ours", 1.5, True),
    Target("wanda_linear CPU fp32 4096x4096 density 0.5 T=128, time / F.linear time",
           "wanda_linear", _cpu(dtype="fp32", density=0.5, T=128), "ours", "F.linear", 1.25, False),
    Target("sparse_linear CUDA (H100) bf16 4096x4096 density 0.5 T=1, speedup vs cuBLAS GEMV",
           "sparse_linear", tuple(sorted(dict(device="cuda", dtype="bf16", density=0.5, T=1).items())),
           "F.linear", "ours", 1.5, True),
)
# Measured and shown next to the targets, but not one of issue 4's criteria.
INFO = (
    Target("wanda_linear CPU bf16 4096x4096 density 0.5 T=128, time / F.linear time (info)",
           "wanda_linear", _cpu(dtype="bf16", density=0.5, T=128), "ours", "F.linear", 1.25, False,
           info=True),
)


def evaluate(run: Run, targets=TARGETS + INFO) -> list:
    """[(target, ratio or None, 'PASS' | 'MISS' | 'info' | 'not measured')]."""
    out = []
    for t in targets:
        g = run.find(t.op, **t.select())
        ratio = g.ratio(t.num, t.den) if g else None
        if ratio is None:
            verdict = "not measured"
        elif t.info:
            verdict = "info"
        else:
            verdict = "PASS" if (ratio >= t.bound if t.at_least else ratio <= t.bound) else "MISS"
        out.append((t, ratio, verdict))
    return out


def markdown(results) -> list:
    lines = ["| target | measured | required | result |", "|---|---:|---:|---|"]
    for t, ratio, verdict in results:
        got = "—" if ratio is None else f"{ratio:.2f}×"
        need = "—" if t.info else f"{'≥' if t.at_least else '≤'} {t.bound:g}×"
        lines.append(f"| {t.label} | {got} | {need} | **{verdict}** |")
    return lines


def text(results) -> str:
    rows = []
    for t, ratio, verdict in results:
        got = "     —" if ratio is None else f"{ratio:6.2f}x"
        rows.append(f"{verdict:>12}  {got}  ({'>=' if t.at_least else '<='} {t.bound:g}x)  {t.label}")
    return "\n".join(rows)
