"""Where µ-MoE's prefill time goes, per decoder layer of a named shape: the dense GEMM against the
column norms, the selection with each output format, the GEMM on the pruned weight and the fused
op generate runs (wanda_linear_compact), with the bytes each one moves.

    python3 tools/prefill_split.py --shape tinyllama-1.1b --tokens 256 --threads 2 \
        --markdown bench/results/generate/prefill_split_tinyllama-1.1b.md --out ....json
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import mumoe_ext  # noqa: E402
from mumoe_ext.perf.cli import machine  # noqa: E402
from mumoe_ext.perf.shapes import SHAPES  # noqa: E402


def layer_linears(cfg: dict) -> dict[str, tuple[int, int]]:
    h, i = cfg["hidden_size"], cfg["intermediate_size"]
    kv = h // cfg["num_attention_heads"] * cfg["num_key_value_heads"]
    return {"q": (h, h), "k": (kv, h), "v": (kv, h), "o": (h, h), "gate": (i, h), "up": (i, h),
            "down": (h, i)}


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


PARTS = ["dense GEMM", "col_norms", "select + compact (prune_rows)", "select + pruned copy (wanda_prune)",
         "GEMM on pruned weight", "fused prefill (wanda_linear_compact)"]


def measure(shape: str, tokens: int, density: float, dtype: torch.dtype, repeats: int) -> dict:
    rows = {}
    for name, (d_out, d_in) in layer_linears(SHAPES[shape]).items():
        w = torch.randn(d_out, d_in).to(dtype)
        x = torch.randn(tokens, d_in).to(dtype)
        n = mumoe_ext.col_norms(x)
        pruned = mumoe_ext.wanda_prune(w, n, density)
        times = [median_ms(f, repeats) for f in (
            lambda: F.linear(x, w), lambda: mumoe_ext.col_norms(x),
            lambda: mumoe_ext.prune_rows(w, n, density), lambda: mumoe_ext.wanda_prune(w, n, density),
            lambda: F.linear(x, pruned), lambda: mumoe_ext.wanda_linear_compact(x, w, None, density=density))]
        rs = mumoe_ext.prune_rows(w, n, density)
        rows[name] = dict(d_out=d_out, d_in=d_in, ms=dict(zip(PARTS, times)),
                          weight_mib=w.numel() * w.element_size() / 2**20,
                          compact_mib=(rs.values.numel() * rs.values.element_size()
                                       + rs.bitmap.numel() * 4) / 2**20)
    total = {p: sum(r["ms"][p] for r in rows.values()) for p in PARTS}
    return dict(shape=shape, tokens=tokens, density=density, dtype=str(dtype).replace("torch.", ""),
                threads=torch.get_num_threads(), linears=rows, layer_ms=total, env=machine())


def markdown(rec: dict, command: str) -> str:
    env = rec["env"]
    lines = [f"µ-MoE prefill split per decoder layer: {rec['shape']}, {rec['dtype']}, {rec['tokens']} tokens, "
             f"density {rec['density']}, {rec['threads']} threads, {env['cpu']}; torch {env['torch']}, "
             f"commit {env['commit']}", "", f"`{command}`", "",
             "| linear | " + " | ".join(PARTS) + " | fused / dense | weight MiB | compact MiB |",
             "|---|" + "---|" * (len(PARTS) + 3)]
    for name, r in list(rec["linears"].items()) + [("layer", None)]:
        ms = r["ms"] if r else rec["layer_ms"]
        wm = r["weight_mib"] if r else sum(v["weight_mib"] for v in rec["linears"].values())
        cm = r["compact_mib"] if r else sum(v["compact_mib"] for v in rec["linears"].values())
        lines.append(f"| {name} | " + " | ".join(f"{ms[p]:.2f}" for p in PARTS)
                     + f" | {ms[PARTS[-1]] / ms[PARTS[0]]:.2f}× | {wm:.1f} | {cm:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", default="tinyllama-1.1b", choices=sorted(SHAPES))
    p.add_argument("--tokens", type=int, default=256)
    p.add_argument("--density", type=float, default=0.5)
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--out")
    p.add_argument("--markdown")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rec = measure(args.shape, args.tokens, args.density, getattr(torch, args.dtype), args.repeats)
    command = "python3 tools/prefill_split.py " + " ".join(argv if argv is not None else sys.argv[1:])
    rec["command"] = command
    table = markdown(rec, command)
    print(table)
    if args.out:
        Path(args.out).write_text(json.dumps(rec, indent=1))
    if args.markdown:
        Path(args.markdown).write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
