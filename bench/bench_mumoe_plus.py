"""Per-prompt cost of mumoe-plus against plain µ-MoE (issue 10: at most 1.2×), one linear at a time.

Two measurements per shape, bf16, a 256-token prompt, density 0.5:
- ``selection``: what each method computes from the prompt before any product. Plain: column
  norms + row selection (`col_norms`, `prune_rows`). Plus (mean_shift=0.75): `prune_rows_centered`,
  the same selection from the centred norms (column mean + centred norms, two passes over the
  tokens) with each row's compensation s·(W − Ŵ)μ summed while the row is in cache.
- ``prefill``: the whole µ-MoE linear of the prefill (`MuMoELinear` in the prefill phase:
  selection + product + the compact weight kept for decode), mean_shift 0 vs 0.75
  (`wanda_linear_compact` vs `wanda_linear_centered`).
OWL's allocation is fixed at `sparsify` time: no per-prompt cost (the mean density is unchanged).

Plain and plus are timed in alternating rounds in one process, so other load hits both alike;
extra_info["ratio_plus_plain"] is the ratio of the medians. pytest-benchmark times the plus call.

    pytest bench/bench_mumoe_plus.py -q --benchmark-json bench/results/mumoe_plus_cost.json
"""
import statistics
import time

import pytest
import torch
from torch import nn

import mumoe_ext
from mumoe_ext.models import MuMoELinear
from mumoe_ext.models.prompt_context import PREFILL, CacheSession, PromptContext

TOKENS, DENSITY, SHIFT, ROUNDS = 256, 0.5, 0.75, 25
SHAPES = {  # (d_out, d_in) of the linears of one decoder layer
    "smollm2-135m q_proj": (576, 576), "smollm2-135m up_proj": (1536, 576),
    "smollm2-135m down_proj": (576, 1536),
    "tinyllama-1.1b q_proj": (2048, 2048), "tinyllama-1.1b up_proj": (5632, 2048),
    "tinyllama-1.1b down_proj": (2048, 5632),
}


def _plain_selection(x, w):
    return mumoe_ext.prune_rows(w, mumoe_ext.col_norms(x), DENSITY)


def _plus_selection(x, w):
    return mumoe_ext.prune_rows_centered(x, w, DENSITY, mean_shift=SHIFT)


def _prefill(shift, lin):
    ctx = PromptContext()
    m = MuMoELinear(lin, DENSITY, ctx, mean_shift=shift)

    def run(x):
        ctx.phase, ctx.session = PREFILL, CacheSession(ctx, 1)
        return m(x)
    return run


def _timed(fn, x):
    t = time.perf_counter()
    fn(x)
    return time.perf_counter() - t


@pytest.mark.parametrize("part", ["selection", "prefill"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_mumoe_plus_cost(benchmark, shape, part):
    d_out, d_in = SHAPES[shape]
    torch.manual_seed(0)
    lin = nn.Linear(d_in, d_out, bias=False).to(torch.bfloat16)
    x = (torch.randn(TOKENS, d_in) + torch.randn(d_in)).to(torch.bfloat16)
    w = lin.weight.detach()
    if part == "selection":
        plain, plus = (lambda x: _plain_selection(x, w)), (lambda x: _plus_selection(x, w))
    else:
        plain, plus = _prefill(0.0, lin), _prefill(SHIFT, lin)
    with torch.no_grad():
        plain(x), plus(x)
        a, b = [], []
        for _ in range(ROUNDS):
            a.append(_timed(plain, x))
            b.append(_timed(plus, x))
        benchmark.group = f"mumoe_plus {part}"
        benchmark.extra_info.update(
            shape=shape, d_out=d_out, d_in=d_in, part=part, tokens=TOKENS, density=DENSITY,
            mean_shift=SHIFT, threads=torch.get_num_threads(),
            median_plain_s=statistics.median(a), median_plus_s=statistics.median(b),
            ratio_plus_plain=statistics.median(b) / statistics.median(a))
        benchmark.pedantic(plus, args=(x,), rounds=3, iterations=1)


def table(path: str) -> str:
    """The markdown table of a --benchmark-json file of this bench."""
    import json
    data = json.load(open(path))
    rows = {}
    for b in data["benchmarks"]:
        e = b["extra_info"]
        rows.setdefault(e["shape"], {})[e["part"]] = e
    out = ["| linear (d_out×d_in) | selection: plain → plus ms | ratio | whole prefill linear: "
           "plain → plus ms | ratio |", "|---|---|---:|---|---:|"]
    for shape, parts in rows.items():
        s, p = parts["selection"], parts["prefill"]
        out.append(f"| {shape} {s['d_out']}×{s['d_in']} | {s['median_plain_s'] * 1e3:.2f} → "
                   f"{s['median_plus_s'] * 1e3:.2f} | {s['ratio_plus_plain']:.2f}× | "
                   f"{p['median_plain_s'] * 1e3:.2f} → {p['median_plus_s'] * 1e3:.2f} | "
                   f"{p['ratio_plus_plain']:.2f}× |")
    return "\n".join(out)


if __name__ == "__main__":  # python3 bench/bench_mumoe_plus.py bench/results/mumoe_plus_cost.json
    import sys
    print(table(sys.argv[1]))
