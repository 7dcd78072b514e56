"""`mumoe bench-generate`: HF `generate` tokens/s, dense against µ-MoE, on a real or a shaped model.

    mumoe bench-generate [--model smollm2-135m | --shape tinyllama-1.1b|llama-2-7b [--layers N]]
        [--density 0.5] [--prompt-tokens 256] [--new-tokens 32] [--repeats 3] [--dtype bfloat16]
        [--threads N] [--out F.json] [--markdown F.md] [--plot F.png]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time

from ..cli_args import as_list, choice_list
from ..models.sparsify import ONLINE_METHODS
from ..provenance import versions


def _methods(text):
    return choice_list(text, "--methods", ONLINE_METHODS)


def add_parser(subparsers):
    from ..cli import DTYPES
    from ..cli_args import densities as _densities, positive as _positive
    from .shapes import SHAPES
    p = subparsers.add_parser("bench-generate", help="HF generate speed, dense vs µ-MoE",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--model", default=None,
                     help="smollm2-135m (the default), a local path or a hub id")
    src.add_argument("--shape", choices=sorted(SHAPES), default=None,
                     help="a random model with this real model's shapes instead of --model")
    p.add_argument("--layers", type=_positive, default=None,
                   help="with --shape: keep only the first N decoder layers")
    p.add_argument("--density", type=_densities, default="0.5", help="comma list of densities")
    p.add_argument("--methods", type=_methods,
                   default="mumoe", help="µ-MoE methods to time against dense: mumoe, mumoe-plus")
    p.add_argument("--prompt-tokens", type=_positive, default=256)
    p.add_argument("--new-tokens", type=_positive, default=32)
    p.add_argument("--repeats", type=_positive, default=3, help="timed generate calls per config")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="bfloat16")
    p.add_argument("--threads", type=_positive, default=None, help="torch CPU threads")
    p.add_argument("--out", default=None, help="write the JSON records here")
    p.add_argument("--markdown", default=None, help="write the markdown table here")
    p.add_argument("--plot", default=None, help="write a PNG plot here (needs matplotlib)")
    p.set_defaults(func=run)
    return p


def machine() -> dict:
    import torch
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read().splitlines()
        cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
        flags = next(line.split(":", 1)[1].split() for line in info if line.startswith("flags"))
        if "amx_bf16" in flags:  # the vendor bf16 GEMM then runs on AMX tiles: a much faster dense baseline
            cpu += " (AMX-BF16)"
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": torch.get_num_threads(),
            **versions(), "command": "mumoe " + shlex.join(sys.argv[1:]),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def run(args) -> int:
    import torch

    from ..cli import DTYPES
    from .generate_bench import bench_generate, markdown_table
    if args.plot:  # before the run, not after minutes of it
        from .plot import require_matplotlib
        require_matplotlib()
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, DTYPES[args.dtype])
    if args.shape:
        from .shapes import random_model
        model, name = random_model(args.shape, args.layers, dtype), f"random {args.shape}"
        if args.layers:
            name += f" ({model.config.num_hidden_layers} layers)"
    else:
        from ..models import load_model
        name = args.model or "smollm2-135m"
        model = load_model(name, dtype)[0]

    def progress(method, density, t):
        print(f"  {method} {density:g}: prefill {t.prefill_s * 1e3:.1f} ms, decode "
              f"{t.decode_s * 1e3:.2f} ms/token", file=sys.stderr, flush=True)

    records = bench_generate(model, args.density, prompt_tokens=args.prompt_tokens,
                             new_tokens=args.new_tokens, repeats=args.repeats, progress=progress,
                             methods=as_list(args.methods, _methods))
    info = machine() | {"model": name, "dtype": args.dtype}
    table = markdown_table(records)
    header = (f"{name}, {args.dtype}, prompt {args.prompt_tokens} tokens, {args.new_tokens} new "
              f"tokens, {info['threads']} threads, {info['cpu']}; torch {info['torch']}, "
              f"transformers {info['transformers']}, commit {info['commit']}")
    print(header)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"machine": info, "records": [r.as_dict() for r in records]}, f, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(f"{header}\n\n`{info['command']}`\n\n{table}\n")
    if args.plot:
        from .plot import plot_records
        plot_records(records, f"{name} {args.dtype}", args.plot)
    return 0
