"""PNG plots of one run (headless: the Agg backend, no display needed).

- selection_<device>.png: Figure-3 style, time vs d for square d×d weights at density 0.5,
  sort / topk / kthvalue / ours, log-log, one panel per dtype measured.
- linear_<device>.png: sparse_linear speedup vs F.linear (T=1, T=128) and wanda_linear time
  relative to F.linear (T=128) vs d, with the issue's target lines.
- tokens_<device>.png: both ratios vs T at 4096x4096 (where the sweep varies T).
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from report_data import Run  # noqa: E402

STYLE = {"sort": ("tab:red", "s"), "topk": ("tab:orange", "^"), "kthvalue": ("tab:purple", "v"),
         "ours": ("tab:blue", "o")}
DTYPE_STYLE = {"fp32": "-", "bf16": "--", "fp16": ":"}
SERIES_COLOR = {("sparse_linear", 1): "tab:blue", ("sparse_linear", 128): "tab:red",
                ("wanda_linear", 128): "tab:green"}


def _square_series(groups, impl, ratio=None):
    xs, ys = [], []
    for g in sorted((g for g in groups if g.square), key=lambda g: g.d_in):
        y = g.ratio(*ratio) if ratio else g.ms(impl)
        if y is not None:
            xs.append(g.d_in)
            ys.append(y)
    return xs, ys


def _log2_x(ax, label="d (weight d×d)"):
    ax.set_xscale("log", base=2)
    ax.set_xlabel(label)
    ax.grid(True, which="both", alpha=0.3)


def selection_plot(run: Run, device: str, path) -> bool:
    dtypes = [dt for dt in ("fp32", "bf16", "fp16")
              if sum(g.square for g in run.of("wanda_mask", device=device, dtype=dt,
                                                density=0.5)) >= 2]
    if not dtypes:
        return False
    fig, axes = plt.subplots(1, len(dtypes), figsize=(6 * len(dtypes), 4.5), squeeze=False)
    for ax, dt in zip(axes[0], dtypes):
        groups = run.of("wanda_mask", device=device, dtype=dt, density=0.5)
        for impl, (color, marker) in STYLE.items():
            xs, ys = _square_series(groups, impl)
            if xs:
                ax.plot(xs, ys, color=color, marker=marker, label=impl)
        ax.set_yscale("log")
        ax.set_ylabel("time per weight matrix (ms, min)")
        ax.set_title(f"wanda_mask {device} {dt}, density 0.5")
        _log2_x(ax)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _ratio_panel(ax, run, device, op, T, ratio, dtypes):
    drawn = False
    for dt in dtypes:
        xs, ys = _square_series(run.of(op, device=device, dtype=dt, density=0.5, T=T),
                                None, ratio)
        if xs:
            ax.plot(xs, ys, DTYPE_STYLE.get(dt, "-"), color=SERIES_COLOR.get((op, T)), marker="o",
                    label=f"{op} T={T} {dt}")
            drawn = True
    return drawn


def linear_plot(run: Run, device: str, path) -> bool:
    dtypes = ("fp32", "bf16", "fp16")
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    drawn = False
    for T in (1, 128):
        drawn |= _ratio_panel(left, run, device, "sparse_linear", T, ("F.linear", "ours"), dtypes)
    left.axhline(1.0, color="gray", lw=1)
    left.axhline(1.5, color="black", ls="--", lw=1, label="target T=1: 1.5×")
    left.set_ylabel("speedup vs F.linear (F.linear time / ours)")
    left.set_title(f"sparse_linear {device}, density 0.5")
    drawn |= _ratio_panel(right, run, device, "wanda_linear", 128, ("ours", "F.linear"), dtypes)
    right.axhline(1.0, color="gray", lw=1)
    right.axhline(1.25, color="black", ls="--", lw=1, label="target: ≤ 1.25×")
    right.set_ylabel("ours time / F.linear time (lower is better)")
    right.set_title(f"wanda_linear {device}, density 0.5, T=128")
    for ax in (left, right):
        _log2_x(ax)
        ax.set_yscale("log")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    if drawn:
        fig.savefig(path, dpi=110)
    plt.close(fig)
    return drawn


def tokens_plot(run: Run, device: str, path, size: int = 4096) -> bool:
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    drawn = False
    for op, color in (("sparse_linear", "tab:blue"), ("wanda_linear", "tab:green")):
        for dt in ("fp32", "bf16"):
            pts = sorted((g.T, g.ratio("F.linear", "ours")) for g in run.of(
                op, device=device, dtype=dt, density=0.5, d_out=size, d_in=size, model=""))
            pts = [(t, r) for t, r in pts if r is not None]
            if len(pts) >= 2:
                ax.plot(*zip(*pts), DTYPE_STYLE[dt], color=color, marker="o", label=f"{op} {dt}")
                drawn = True
    ax.axhline(1.0, color="gray", lw=1)
    ax.axhline(1.5, color="tab:blue", ls=":", lw=1, label="sparse_linear T=1 target")
    ax.axhline(1 / 1.25, color="tab:green", ls=":", lw=1, label="wanda_linear T=128 target")
    ax.set_ylabel("F.linear time / ours (>1: ours faster)")
    ax.set_title(f"{size}x{size}, density 0.5, {device}: ratio vs tokens")
    _log2_x(ax, "T (tokens)")
    ax.set_yscale("log")
    if drawn:
        ax.legend(fontsize=8)
    fig.tight_layout()
    if drawn:
        fig.savefig(path, dpi=110)
    plt.close(fig)
    return drawn


PLOTS = (("selection", selection_plot), ("linear", linear_plot), ("tokens", tokens_plot))


def write_plots(run: Run, out_dir, name: str) -> list:
    written = []
    for device in sorted({g.device for g in run.groups}):
        for kind, plot in PLOTS:
            path = out_dir / f"{name}_{kind}_{device}.png"
            if plot(run, device, path):
                written.append(path)
    return written
