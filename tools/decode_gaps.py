"""Where a decode step's time goes inside HF `generate`, dense against µ-MoE: each linear's call
time and the time between linears (attention, norms, residuals, transformers' and our Python), per
generated token, and the same step with every linear's product replaced by a cached output (what
the rest costs when the weight stream does not evict it from the caches).

    python3 tools/decode_gaps.py --shape tinyllama-1.1b --threads 2 [--markdown F] [--out F.json]

Timing wrappers add a little to every call, so the step times of the plain runs (no wrappers) are
given beside them; the split is the wrapped run's.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mumoe_ext import restore, sparsify  # noqa: E402
from mumoe_ext.models.hf_cache import cache_in_output  # noqa: E402
from mumoe_ext.models.mumoe_linear import MuMoELinear, cache_weights  # noqa: E402
from mumoe_ext.perf.cli import machine  # noqa: E402
from mumoe_ext.perf.generate_bench import time_generate  # noqa: E402
from mumoe_ext.perf.shapes import SHAPES, random_model  # noqa: E402


@contextlib.contextmanager
def patched(cls, name, make):
    """cls.name replaced by make(original) for the duration."""
    original = getattr(cls, name)
    setattr(cls, name, make(original))
    try:
        yield
    finally:
        setattr(cls, name, original)


def timed(calls: list, names: dict):
    """A wrapper factory recording (linear name, start, end) of every one-token call."""
    def make(original):
        def wrapper(self, x):
            if x.shape[-2] != 1:
                return original(self, x)
            t0 = time.perf_counter()
            y = original(self, x)
            calls.append((names[self], t0, time.perf_counter()))
            return y
        return wrapper
    return make


def cached(store: dict):
    """A wrapper factory that computes each linear's one-token output once, then returns it."""
    def make(original):
        def wrapper(self, x):
            if x.shape[-2] != 1:
                return original(self, x)
            key = (id(self), tuple(x.shape))
            if key not in store:
                store[key] = original(self, x)
            return store[key]
        return wrapper
    return make


def wrappers(model, make) -> contextlib.ExitStack:
    """`make` applied to µ-MoE's decode product and to every plain nn.Linear (lm_head; all of
    them when dense)."""
    stack = contextlib.ExitStack()
    stack.enter_context(patched(nn.Linear, "forward", make))
    stack.enter_context(patched(MuMoELinear, "_decode", make))
    return stack


def decode_ms(model, ids, new_tokens) -> float:
    return statistics.median(time_generate(model, ids, new_tokens).step_s) * 1e3


def split(model, ids, new_tokens, weight_bytes: dict) -> dict:
    names = {m: n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    calls: list = []
    with wrappers(model, timed(calls, names)):
        timing = time_generate(model, ids, new_tokens)
    steps = len(timing.step_s)
    step_ms = statistics.median(timing.step_s) * 1e3
    per_kind = defaultdict(lambda: {"calls": [], "gaps": []})
    prev_end = None
    for name, start, end in calls:
        per_kind[name]["calls"].append(end - start)
        if prev_end is not None and name != "lm_head":
            per_kind[name]["gaps"].append(start - prev_end)
        prev_end = end
    rows = []
    for name, v in per_kind.items():
        mib = weight_bytes.get(name, 0) / 2**20
        call_us = statistics.median(v["calls"]) * 1e6
        rows.append({"linear": name, "calls_per_step": len(v["calls"]) // steps, "call_us": call_us,
                     "gap_before_us": statistics.median(v["gaps"]) * 1e6 if v["gaps"] else None,
                     "mib_per_call": mib, "gb_per_s": mib * 2**20 / call_us / 1e3 if mib else None,
                     "ms_per_step": sum(v["calls"]) / steps * 1e3})
    linears = sum(r["ms_per_step"] for r in rows if r["linear"] != "lm_head")
    head = sum(r["ms_per_step"] for r in rows if r["linear"] == "lm_head")
    return {"step_ms_wrapped": step_ms, "linears_ms": linears, "lm_head_ms": head,
            "between_ms": step_ms - linears - head, "rows": rows}


def bytes_per_kind(model, cache_rs: dict | None) -> dict:
    """{linear name: bytes one call of it reads}: the dense weight, or µ-MoE's compact one."""
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            kind = name.rsplit(".", 1)[-1]
            rs = (cache_rs or {}).get(name)
            out[kind] = rs.nbytes if rs is not None else m.weight.numel() * m.weight.element_size()
    return out


def measure(model, ids, new_tokens, repeats, kept: dict | None) -> dict:
    plain = [decode_ms(model, ids, new_tokens) for _ in range(repeats)]
    store: dict = {}
    with wrappers(model, cached(store)):
        floor = [decode_ms(model, ids, new_tokens) for _ in range(repeats)]
    out = split(model, ids, new_tokens, bytes_per_kind(model, kept))
    out.update(step_ms=statistics.median(plain), step_ms_all=plain, floor_ms=statistics.median(floor),
               floor_ms_all=floor)
    return out


def dense_and_mumoe(model, ids, new_tokens: int, repeats: int, density: float) -> dict:
    """{"dense": split, "mumoe <density>": split} of one model, left dense afterwards."""
    decode_ms(model, ids, 4)  # warm-up: pools, oneDNN primitives
    results = {"dense": measure(model, ids, new_tokens, repeats, None)}
    sparsify(model, "mumoe", density)
    try:
        decode_ms(model, ids, 4)
        out = model.generate(ids, max_new_tokens=1, do_sample=False, return_dict_in_generate=True,
                             pad_token_id=model.config.pad_token_id)
        kept = cache_weights(model, cache_in_output(out))  # the compact weights the prefill chose
        results[f"mumoe {density:g}"] = measure(model, ids, new_tokens, repeats, kept)
    finally:
        restore(model)
    return results


def markdown(results: dict, header: str) -> str:
    lines = [header, "",
             "| method | decode ms/token | linears (pruned or dense) | lm_head | between linears "
             "| step with cached linear outputs |", "|---|---:|---:|---:|---:|---:|"]
    for method, r in results.items():
        lines.append(f"| {method} | {r['step_ms']:.2f} | {r['linears_ms']:.2f} | {r['lm_head_ms']:.2f} "
                     f"| {r['between_ms']:.2f} | {r['floor_ms']:.2f} |")
    lines += ["", "(the split columns come from a run with timing wrappers, step "
              + ", ".join(f"{m} {r['step_ms_wrapped']:.2f} ms" for m, r in results.items()) + ")", "",
              "| method | linear | calls/step | µs per call | MiB per call | GB/s | gap before, µs |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for method, r in results.items():
        for row in r["rows"]:
            gbs = f"{row['gb_per_s']:.1f}" if row["gb_per_s"] else ""
            gap = f"{row['gap_before_us']:.1f}" if row["gap_before_us"] is not None else ""
            lines.append(f"| {method} | {row['linear']} | {row['calls_per_step']} | {row['call_us']:.1f} "
                         f"| {row['mib_per_call']:.2f} | {gbs} | {gap} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default="tinyllama-1.1b")
    ap.add_argument("--layers", type=int, default=None)
    ap.add_argument("--density", type=float, default=0.5)
    ap.add_argument("--prompt-tokens", type=int, default=256)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--markdown", default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = random_model(args.shape, args.layers, torch.bfloat16)
    ids = torch.randint(3, model.config.vocab_size, (1, args.prompt_tokens),
                        generator=torch.Generator().manual_seed(0))
    results = dense_and_mumoe(model, ids, args.new_tokens, args.repeats, args.density)
    m = machine()
    header = (f"Decode step inside HF generate: random {args.shape}"
              f"{f' ({args.layers} layers)' if args.layers else ''}, bfloat16, {args.prompt_tokens}-token "
              f"prompt, {args.new_tokens} new tokens, medians of {args.repeats} generate calls, "
              f"{m['threads']} threads, {m['cpu']}; torch {m['torch']}, transformers {m['transformers']}, "
              f"commit {m['commit']}\n\n`python3 {' '.join(sys.argv)}`")
    text = markdown(results, header)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text)
    if args.out:
        Path(args.out).write_text(json.dumps({"machine": m, "args": vars(args), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
