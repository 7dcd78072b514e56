"""One timed measurement per case, with a bounded cost whatever the function's speed.

Warm-up calls size the run: rounds = budget / (fastest warm-up + cache flush), clamped to
[1, max_rounds(budget)] (MAX_ROUNDS per 0.4 s). Slow torch baselines therefore get a single round (plus one warm-up), which
keeps the full CPU sweep within minutes.

Every timed call starts with cold caches (two untimed reads of a buffer twice the last-level
cache; triton's do_bench writes one once): an LLM's layers stream their weights from memory, and a
32 MiB bf16 4096x4096 weight would otherwise sit in this machine's 32 MiB L3 between calls.
"""
from __future__ import annotations

import contextlib
import functools
import math
import os
import time
from pathlib import Path

import pytest
import torch

import mumoe_ext

MAX_ROUNDS = 50  # per 0.4 s of budget: a larger budget (the target points) buys more rounds


def max_rounds(budget_s: float) -> int:
    return max(MAX_ROUNDS, int(MAX_ROUNDS * budget_s / 0.4))
WARMUP_S = 0.1
CUDA_FLUSH_BYTES = 256 << 20  # > the 50 MiB L2 of an H100


def _last_level_cache_bytes() -> int:
    for index in (3, 2):
        try:
            text = Path(f"/sys/devices/system/cpu/cpu0/cache/index{index}/size").read_text().strip()
            return int(text[:-1]) << {"K": 10, "M": 20}[text[-1]]
        except (OSError, ValueError, KeyError):
            continue
    return 32 << 20


@functools.lru_cache(maxsize=None)
def _flush_buffer(device: str) -> torch.Tensor:
    nbytes = 2 * _last_level_cache_bytes() if device == "cpu" else CUDA_FLUSH_BYTES
    return torch.ones(nbytes // 4, dtype=torch.float32, device=device)


def cache_flusher(device: str):
    """Untimed pedantic setup: evicts the inputs from the caches before each round."""
    buf = _flush_buffer(device)

    def flush():
        if device == "cuda":
            buf.zero_()
            torch.cuda.synchronize()
        else:
            # Reads evict clean, so the timed call pays no write-backs. Twice: Zen 4's L3 keeps
            # lines that were hit before (the inputs, every round) over lines seen once, and one
            # pass left ~20% of a 32 MiB weight cached (F.linear bf16 4096² T=1: 1.0 ms after one
            # pass, 1.2 ms after two or after a 4x-LLC buffer, 28 GB/s: DRAM speed).
            buf.sum()
            buf.sum()
    return flush


def cache_note(device: str) -> str:
    how = "written" if device == "cuda" else "read twice"
    return f"cold: {_flush_buffer(device).nbytes >> 20} MiB {how} before each round"


def device_or_skip(device: str) -> None:
    if device == "cuda":
        if not torch.cuda.is_available():
            pytest.skip("no CUDA device")
        if not mumoe_ext.build_info()["cuda"]:
            pytest.skip("mumoe_ext was built without CUDA kernels")


def synchronized(fn, device: str):
    if device != "cuda":
        return fn

    def call():
        out = fn()
        torch.cuda.synchronize()
        return out
    return call


def isa_context(impl: str):
    """'ours@avx2' runs under mumoe_ext.cpu_isa('avx2'); other impls run on the default path."""
    if "@" not in impl:
        return contextlib.nullcontext()
    isa = impl.split("@", 1)[1]
    if isa not in mumoe_ext.build_info()["cpu_isas"]:
        pytest.skip(f"CPU path {isa} not built or not supported by this CPU")
    return mumoe_ext.cpu_isa(isa)


def call_or_skip(fn):
    """fn(), skipping the case when an op has no kernel for this device (yet)."""
    try:
        return fn()
    except NotImplementedError as e:
        pytest.skip(f"not implemented here: {str(e).splitlines()[0]}")
    except RuntimeError as e:
        if "Could not run" in str(e):
            pytest.skip(f"no kernel for this device: {str(e).splitlines()[0]}")
        raise


def _timed_call(fn) -> float:
    start = time.perf_counter()
    call_or_skip(fn)
    return time.perf_counter() - start


def warm_up(fn) -> float:
    """Warm-up calls (one-time setup such as oneDNN primitives, page faults, caches), then the
    fastest of them as the estimate. A call slower than WARMUP_S is its own single warm-up."""
    spent, best, calls = 0.0, math.inf, 0
    while calls < 2 or (spent < WARMUP_S and calls < 20):
        t = _timed_call(fn)
        spent, best, calls = spent + t, min(best, t), calls + 1
        if spent >= WARMUP_S:
            break
    return best


def measure(benchmark, case, fn, budget_s: float, extra: dict | None = None):
    """Time `fn` (a no-argument callable) for `case` with pytest-benchmark's pedantic mode."""
    device_or_skip(case.device)
    fn = synchronized(fn, case.device)
    with isa_context(case.impl):
        first = warm_up(fn)
        flush = cache_flusher(case.device)
        flush_s = _timed_call(flush)
        rounds = int(min(max_rounds(budget_s), max(1, budget_s // (first + flush_s))))
        benchmark.group = case.group()
        benchmark.extra_info.update(case.as_params())
        benchmark.extra_info.update(
            cpu_isa=mumoe_ext.build_info()["cpu_isa"] if case.device == "cpu" else "",
            threads=torch.get_num_threads(), warmup_best_s=first, cache=cache_note(case.device),
            loadavg_1m=os.getloadavg()[0], **(extra or {}))
        return benchmark.pedantic(fn, setup=flush, rounds=rounds, iterations=1)
