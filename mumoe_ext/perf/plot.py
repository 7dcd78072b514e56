"""A PNG of a bench-generate run: prefill ms and decode ms/token per configuration."""
from __future__ import annotations

from ..eval.tables import METHOD_LABEL


def require_matplotlib():
    """The matplotlib module, or a RuntimeError saying how to get it (the `bench` extra)."""
    try:
        import matplotlib
    except ImportError:
        raise RuntimeError("--plot needs matplotlib: pip install matplotlib "
                           "(the 'bench' extra)") from None
    return matplotlib


def plot_records(records, title: str, path: str) -> None:
    matplotlib = require_matplotlib()
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels = [METHOD_LABEL.get(r.method, r.method) + ("" if r.method == "dense" else f" {r.density:g}")
              for r in records]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, key, unit in ((axes[0], "prefill_ms", "prefill (ms)"),
                          (axes[1], "decode_ms", "decode (ms / token)")):
        values = [getattr(r, key) for r in records]
        bars = ax.bar(labels, values, color=["#888"] + ["#2a7"] * (len(records) - 1))
        for bar, r in zip(bars, records):
            ratio = (r.prefill_overhead if key == "prefill_ms" else r.decode_speedup)
            if ratio is not None:
                text = f"{ratio:.2f}× dense" if key == "prefill_ms" else f"{ratio:.2f}× faster"
                ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                            ha="center", va="bottom", fontsize=8)
        ax.set_ylabel(unit)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
