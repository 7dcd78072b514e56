"""Does torch.compile make µ-MoE generation faster? Eager vs `model.forward = torch.compile(...)`,
dense and µ-MoE, HF generate on SmolLM2-135M (docs/generation.md "torch.compile").

    python tools/compile_generate.py [--density 0.5] [--prompt-tokens 256] [--new-tokens 32]
        [--threads 2] [--out docs/results/compile_generate.md]

For each configuration: the first generate (compiling), the second on the same prompt length
(steady state), and one on another prompt length (recompiles?), each timed token by token.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from mumoe_ext.models import load_model, restore, sparsify  # noqa: E402
from mumoe_ext.perf.generate_bench import time_generate  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--density", type=float, default=0.5)
    p.add_argument("--prompt-tokens", type=int, default=256)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model, _ = load_model("smollm2-135m", torch.bfloat16)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, model.config.vocab_size, (1, args.prompt_tokens), generator=g)
    other = torch.randint(3, model.config.vocab_size, (1, args.prompt_tokens // 2), generator=g)
    rows = []
    eager_forward = model.forward
    for method in ("dense", "mumoe"):
        for compiled in (False, True):
            torch._dynamo.reset()
            if method == "mumoe":
                sparsify(model, "mumoe", args.density)
            model.forward = torch.compile(eager_forward) if compiled else eager_forward
            try:
                t0 = time.perf_counter()
                first = time_generate(model, ids, args.new_tokens)
                first_total = time.perf_counter() - t0
                steady = time_generate(model, ids, args.new_tokens)
                t0 = time.perf_counter()
                new_len = time_generate(model, other, args.new_tokens)
                new_len_total = time.perf_counter() - t0
            finally:
                model.forward = eager_forward
                restore(model)
            rows.append((method, compiled, first_total, steady.prefill_s * 1e3, steady.decode_s * 1e3,
                         new_len_total))
            print(rows[-1], flush=True)
    from mumoe_ext.perf.cli import machine
    env = machine()
    lines = [f"SmolLM2-135M bf16, prompt {args.prompt_tokens} tokens, {args.new_tokens} new tokens, "
             f"{args.threads} threads, {env['cpu']}; torch {env['torch']}, transformers "
             f"{env['transformers']}, commit {env['commit']}, µ-MoE density {args.density}", "",
             "`python3 tools/compile_generate.py " + " ".join(sys.argv[1:]) + "`", "", "| model | forward | first generate (s) | prefill ms | decode ms/token | "
             f"generate at {args.prompt_tokens // 2} tokens (s) |", "|---|---|---|---|---|---|"]
    for m, c, first, pre, dec, other_s in rows:
        lines.append(f"| {m} | {'compiled' if c else 'eager'} | {first:.1f} | {pre:.1f} | {dec:.2f} | "
                     f"{other_s:.1f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
