"""Cost of the NaN/Inf weight check (issue 13): the selection and the µ-MoE layer with the check on
and off (mumoe_ext._C._set_weight_check, for benchmarks only), 4096 x 4096, density 0.5.

On and off are timed in alternating rounds in one process, so load from other processes hits both
alike; the ratio of the medians (on / off) goes into extra_info["ratio_on_off"]. pytest-benchmark
times the checked call, as users run it.

    pytest bench/bench_weight_check.py -q --benchmark-json bench/results/weight_check.json
"""
import statistics
import time

import pytest
import torch

import mumoe_ext

D = 4096
ROUNDS = 15
CALLS = {
    "wanda_mask": lambda x, w, n: mumoe_ext.wanda_mask(w, n, 0.5),
    "prune_rows": lambda x, w, n: mumoe_ext.prune_rows(w, n, 0.5),
    "wanda_linear_T1": lambda x, w, n: mumoe_ext.wanda_linear(x[:1], w, None, 0.5),
    "wanda_linear_T128": lambda x, w, n: mumoe_ext.wanda_linear(x, w, None, 0.5),
}


def _timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


@pytest.mark.parametrize("isa", mumoe_ext.build_info()["cpu_isas"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("op", list(CALLS))
def test_weight_check_cost(benchmark, op, dtype, isa):
    torch.manual_seed(0)
    x = torch.randn(128, D).to(dtype)
    w = torch.randn(D, D).to(dtype)
    n = mumoe_ext.col_norms(x)
    fn = lambda: CALLS[op](x, w, n)  # noqa: E731
    with mumoe_ext.cpu_isa(isa):
        fn()
        on, off = [], []
        try:
            for _ in range(ROUNDS):
                mumoe_ext._C._set_weight_check(False)
                off.append(_timed(fn))
                mumoe_ext._C._set_weight_check(True)
                on.append(_timed(fn))
        finally:
            mumoe_ext._C._set_weight_check(True)
        benchmark.group = f"weight_check {op}"
        benchmark.extra_info.update(
            op=op, dtype=str(dtype), isa=isa, d=D, density=0.5, threads=torch.get_num_threads(),
            median_on_s=statistics.median(on), median_off_s=statistics.median(off),
            min_on_s=min(on), min_off_s=min(off),
            ratio_on_off=statistics.median(on) / statistics.median(off))
        benchmark.pedantic(fn, rounds=5, iterations=1)
