"""`mumoe flops`: FLOPs and MACs of one forward at each density, from a config alone.

    mumoe flops --model facebook/opt-13b --density 1,0.8,0.6,0.4,0.2 --tokens 128 \\
        [--method mumoe] [--out F]
"""
from __future__ import annotations

import argparse
import json

from ..cli_args import densities as _densities, positive as _positive


def human(n: float) -> str:
    """Three significant digits with a K/M/G/T/P suffix, as the paper's Table 4 prints them."""
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            value = n / scale
            digits = 2 if value < 10 else 1 if value < 100 else 0
            return f"{value:.{digits}f}{unit}"
    return f"{n:.0f}"


def format_tables(reports) -> str:
    first = reports[0]
    dense = next((r for r in reports if r.density == 1.0), None)
    lines = [f"FLOPs and MACs of one forward: {first.model}, one prompt of {first.tokens} tokens, "
             f"method {first.method}", "",
             "| density | FLOPs | MACs | FLOPs vs dense | MACs vs dense | µ-MoE overhead FLOPs |",
             "|---|---|---|---|---|---|"]
    for r in reports:
        overhead = sum(v.flops for k, v in r.lines.items() if k.startswith("mumoe:"))
        rel = (f"{100 * r.flops / dense.flops:.2f}% | {100 * r.macs / dense.macs:.2f}%"
               if dense else "- | -")
        lines.append(f"| {r.density:g} | {human(r.flops)} | {human(r.macs)} | {rel} | "
                     f"{human(overhead)} |")
    names = list(dict.fromkeys(k for r in reports for k in r.lines))
    lines += ["", "Line by line (FLOPs / MACs):", "",
              "| line | " + " | ".join(f"{r.density:g}" for r in reports) + " |",
              "|---|" + "---|" * len(reports)]
    for name in names:
        cells = []
        for r in reports:
            v = r.lines.get(name)
            cells.append(f"{human(v.flops)} / {human(v.macs)}" if v else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_flops_command(args) -> int:
    from .configs import load_config
    from .counter import count_flops, meta_model

    config = load_config(args.model)
    model = meta_model(config)  # built once, counted at every density
    reports = [count_flops(model, d, args.tokens, args.method, name=args.model)
               for d in args.density]
    print(format_tables(reports))
    if args.out:
        with open(args.out, "w") as f:
            json.dump([r.record() for r in reports], f, indent=1)
        print(f"\nrecords written to {args.out}")
    return 0


def add_flops_parser(subparsers):
    from .counter import METHODS
    p = subparsers.add_parser("flops", help="FLOPs / MACs of a forward at each density "
                                            "(the paper's Table 4), from a config alone",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="smollm2-135m",
                   help="hub id, a folder holding config.json, smollm2-135m, or opt-13b-paper "
                        "(OPT-13B's config built in code)")
    p.add_argument("--density", type=_densities, default="1,0.8,0.6,0.4,0.2")
    p.add_argument("--tokens", type=_positive, default=128, help="prompt length")
    p.add_argument("--method", choices=METHODS, default="mumoe")
    p.add_argument("--out", default=None, help="write JSON records {density, flops, macs, ...}")
    p.set_defaults(func=run_flops_command)
    return p


def register(subparsers):
    add_flops_parser(subparsers)
