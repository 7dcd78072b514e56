"""How far batching and thread count move µ-MoE's masks and scores (docs/generation.md).

Prompts of different lengths from WikiText-2 are run (a) each alone, (b) together in one
left-padded batch (with its padding mask, so each prompt still gets its own norms), and (c) alone
with another thread count. Our ops give a prompt in a batch bit for bit what it gets alone, so
what differs is noise from attention over padded keys and the vendor GEMMs on other shapes; the
hard top-k of the next layer turns some of it into swapped mask entries, which then grow.

    python tools/batch_noise.py [--model smollm2-135m] [--dtype bfloat16] [--prompts 8]
        [--density 0.5] [--data-dir ../shared/data] [--out docs/results/batch_noise.md]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections import defaultdict

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from mumoe_ext.eval.datasets import eval_tokens  # noqa: E402
from mumoe_ext.models import cache_weights, load_model, restore, sparsify  # noqa: E402
from mumoe_ext.models.hf_cache import cache_in_output  # noqa: E402


def _layer_of(name: str) -> int:
    parts = name.split(".")
    return next(int(p) for p in parts if p.isdigit())


@torch.no_grad()
def prefill(model, ids, mask=None):
    out = model(input_ids=ids, attention_mask=mask, use_cache=True)
    return out.logits.float(), cache_weights(model, cache_in_output(out))


def flips(a, b) -> int:
    """Mask entries kept by one and not the other (a swap counts twice)."""
    return int((a.mask() ^ b.mask()).sum())


def nll(logits, ids) -> float:
    return float(F.cross_entropy(logits[:-1], ids[1:]))


def run(args):
    dtype = getattr(torch, args.dtype)
    model, tok = load_model(args.model, dtype)
    stream, _ = eval_tokens("wikitext2", tok, 512, args.data_dir)
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(args.min_len, args.max_len + 1, (args.prompts,), generator=g).tolist()
    starts = torch.randint(0, stream.numel() - args.max_len, (args.prompts,), generator=g).tolist()
    prompts = [stream[s:s + n].unsqueeze(0) for s, n in zip(starts, lengths)]
    width = max(lengths)
    pad = tok.pad_token_id
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    am = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - p.shape[1]:] = p[0]
        am[i, width - p.shape[1]:] = 1
    report = {"model": args.model, "dtype": args.dtype, "density": args.density,
              "prompt_lengths": lengths, "torch": torch.__version__}

    # dense: the noise floor batching adds before any top-k sees it
    dense_alone = [prefill(model, p)[0][0] for p in prompts]
    dense_batch = prefill(model, ids, am)[0]
    report["dense_max_logit_diff"] = max(
        float((dense_batch[i, width - p.shape[1]:] - dense_alone[i]).abs().max())
        for i, p in enumerate(prompts))

    sparsify(model, "mumoe", args.density)
    threads = torch.get_num_threads()
    alone = [prefill(model, p) for p in prompts]
    batch_logits, batch_w = prefill(model, ids, am)
    torch.set_num_threads(args.other_threads)
    other = [prefill(model, p) for p in prompts]
    torch.set_num_threads(threads)
    restore(model)

    by_layer = {"batch": defaultdict(list), "threads": defaultdict(list)}
    entries = defaultdict(int)
    for name in alone[0][1]:
        layer = _layer_of(name)
        for i in range(len(prompts)):
            rs_alone = alone[i][1][name]
            rs_batch = type(rs_alone)(batch_w[name].bitmap[i], batch_w[name].values[i], rs_alone.d_in)
            by_layer["batch"][layer].append(flips(rs_alone, rs_batch))
            by_layer["threads"][layer].append(flips(rs_alone, other[i][1][name]))
        entries[layer] += rs_alone.mask().numel()
    rows = []
    for layer in sorted(entries):
        n = entries[layer]
        rows.append({"layer": layer, "entries_per_prompt": n,
                     "batch_flips_mean": sum(by_layer["batch"][layer]) / len(prompts),
                     "threads_flips_mean": sum(by_layer["threads"][layer]) / len(prompts)})
    report["layers"] = rows
    per_prompt = []
    for i, p in enumerate(prompts):
        la, lb, lt = alone[i][0][0], batch_logits[i, width - p.shape[1]:], other[i][0][0]
        per_prompt.append({"tokens": p.shape[1], "nll_alone": nll(la, p[0]), "nll_batch": nll(lb, p[0]),
                           "nll_threads": nll(lt, p[0]),
                           "max_logit_diff_batch": float((la - lb).abs().max()),
                           "max_logit_diff_threads": float((la - lt).abs().max())})
    report["prompts"] = per_prompt
    report["threads"] = [threads, args.other_threads]
    mean = lambda k: sum(r[k] for r in per_prompt) / len(per_prompt)
    report["ppl"] = {k: math.exp(mean(k)) for k in ("nll_alone", "nll_batch", "nll_threads")}
    return report


def markdown(r) -> str:
    lines = [f"Model {r['model']} ({r['dtype']}), µ-MoE density {r['density']}, torch {r['torch']}; "
             f"{len(r['prompt_lengths'])} WikiText-2 prompts of {min(r['prompt_lengths'])}–"
             f"{max(r['prompt_lengths'])} tokens; threads {r['threads'][0]} vs {r['threads'][1]}.",
             "",
             f"- dense model, batched vs alone: max |Δ logit| = {r['dense_max_logit_diff']:.2e}",
             f"- µ-MoE perplexity over the prompts: alone {r['ppl']['nll_alone']:.4f}, in the batch "
             f"{r['ppl']['nll_batch']:.4f}, alone with {r['threads'][1]} thread(s) "
             f"{r['ppl']['nll_threads']:.4f}",
             f"- µ-MoE max |Δ logit| vs alone: batched {max(p['max_logit_diff_batch'] for p in r['prompts']):.3g}, "
             f"other thread count {max(p['max_logit_diff_threads'] for p in r['prompts']):.3g}",
             "", "| layer | mask entries per prompt | flipped, batched vs alone | flipped, "
             f"{r['threads'][1]} vs {r['threads'][0]} threads |", "|---|---|---|---|"]
    for row in r["layers"]:
        lines.append(f"| {row['layer']} | {row['entries_per_prompt']:,} | {row['batch_flips_mean']:.1f} | "
                     f"{row['threads_flips_mean']:.1f} |")
    lines += ["", "Flipped = mask entries kept in one run and not in the other, mean over prompts "
              "(a swap of two entries counts 2)."]
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    p.add_argument("--density", type=float, default=0.5)
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--min-len", type=int, default=64)
    p.add_argument("--max-len", type=int, default=256)
    p.add_argument("--other-threads", type=int, default=1)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default=None, help="markdown report (and .json beside it)")
    args = p.parse_args()
    r = run(args)
    text = markdown(r)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
        with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
            json.dump(r, f, indent=1)


if __name__ == "__main__":
    main()
