"""Where a decode step's time goes, dense or µ-MoE: torch.profiler over decode steps of a random
model of a named shape (the prompt prefilled first, outside the profile), ops by self time per
generated token, with the step time of the same loop unprofiled.

    python3 tools/decode_split.py --shape tinyllama-1.1b --threads 2 [--dense] [--markdown F]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mumoe_ext import sparsify  # noqa: E402
from mumoe_ext.perf.cli import machine  # noqa: E402
from mumoe_ext.perf.shapes import SHAPES, random_model  # noqa: E402


def decode_steps(model, prompt: torch.Tensor, steps: int, profile: bool = False):
    """(ms per step, profiler or None): `steps` greedy decode calls after one prefill, through
    the model's forward as `generate` calls it (a DynamicCache, use_cache)."""
    from transformers import DynamicCache
    cache = DynamicCache()
    nxt = model(prompt, past_key_values=cache, use_cache=True).logits[:, -1:].argmax(-1)
    prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) if profile else None
    t0 = time.perf_counter()
    if prof:
        prof.__enter__()
    for _ in range(steps):
        nxt = model(nxt, past_key_values=cache, use_cache=True).logits[:, -1:].argmax(-1)
    if prof:
        prof.__exit__(None, None, None)
    return (time.perf_counter() - t0) / steps * 1e3, prof


def table(prof, steps: int, rows: int) -> list[tuple[str, float, int]]:
    """[(op, self ms per step, calls per step)], largest first."""
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    return [(e.key, e.self_cpu_time_total / 1e3 / steps, e.count // steps) for e in events[:rows]]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default="tinyllama-1.1b")
    ap.add_argument("--density", type=float, default=0.5)
    ap.add_argument("--dense", action="store_true", help="the unpruned model instead of µ-MoE")
    ap.add_argument("--prompt-tokens", type=int, default=256)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--markdown", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = random_model(args.shape, None, torch.bfloat16)
    if not args.dense:
        sparsify(model, "mumoe", args.density)
    prompt = torch.randint(0, model.config.vocab_size, (1, args.prompt_tokens))
    with torch.no_grad():
        decode_steps(model, prompt, 2)  # warm-up: pool, oneDNN primitives
        step_ms, _ = decode_steps(model, prompt, args.steps)
        profiled_ms, prof = decode_steps(model, prompt, args.steps, profile=True)
    m = machine()
    what = "dense" if args.dense else f"µ-MoE {args.density}"
    lines = [f"Decode step split: {args.shape}, {what}, bfloat16, {args.prompt_tokens}-token prompt, "
             f"{args.steps} steps, {m['threads']} threads, {m['cpu']}; torch {m['torch']}, "
             f"transformers {m['transformers']}, commit {m['commit']}", "",
             f"`python3 {' '.join(sys.argv)}`", "",
             f"ms per step: {step_ms:.2f} unprofiled, {profiled_ms:.2f} profiled", "",
             "| op | self ms per step | calls per step |", "|---|---:|---:|"]
    lines += [f"| {name} | {ms:.2f} | {calls} |" for name, ms, calls in table(prof, args.steps, args.rows)]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
