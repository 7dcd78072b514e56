"""Prefill and decode time of Hugging Face `generate`, dense against µ-MoE, in one process.

Each generate call is timed from the inside: a stopping criterion that never stops records the
time of every generated token, so one call gives the prefill (time to the first token, generate's
own setup included) and every decode step. Memory: the peak resident set above the level before
the call (sampled every 2 ms, in calls that are not timed), and the bytes of the compact weights
µ-MoE keeps with the cache.
"""
from __future__ import annotations

import contextlib
import statistics
import threading
import time
from dataclasses import asdict, dataclass, field

import torch

from ..models import restore, sparsify
from ..models.hf_cache import cache_in_output
from ..models.prompt_context import session_of


def _token_clock():
    """A StoppingCriteria that never stops: it records when each new token was produced."""
    from transformers import StoppingCriteria

    class TokenClock(StoppingCriteria):
        def __init__(self):
            self.times: list[float] = []

        def __call__(self, input_ids, scores, **kwargs):
            self.times.append(time.perf_counter())
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    return TokenClock()


class _PeakRSS:
    """Peak resident memory of this process during a `with` block, above its level at entry."""

    def __enter__(self):
        import psutil
        self._proc = psutil.Process()
        self.start = self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)

    @property
    def extra_mib(self) -> float:
        return (self.peak - self.start) / 2**20


@dataclass
class GenerateTiming:
    prefill_s: float
    step_s: list = field(repr=False)
    peak_extra_mib: float | None  # None unless the call measured memory
    kept_mib: float  # compact weights µ-MoE holds for the prompt (0 for dense)

    @property
    def decode_s(self) -> float:
        """Median decode step."""
        return statistics.median(self.step_s)


@torch.no_grad()
def time_generate(model, input_ids: torch.Tensor, new_tokens: int, *,
                  measure_memory: bool = False) -> GenerateTiming:
    """One greedy `generate` of exactly `new_tokens` tokens, timed token by token. With
    `measure_memory`, a thread samples the process's resident memory every 2 ms for the peak; it
    costs the timed work a share of the CPU and the GIL (prefill 259.5 -> 280.0 ms, decode 32.25 ->
    34.83 ms a token, 8 layers of the TinyLlama shape, 2 threads), so timed calls leave it off."""
    if new_tokens < 2:
        raise ValueError(f"new_tokens must be >= 2 (a prefill and a decode step), got {new_tokens}")
    from transformers import StoppingCriteriaList
    clock = _token_clock()
    attention_mask = torch.ones_like(input_ids)
    with (_PeakRSS() if measure_memory else contextlib.nullcontext()) as rss:
        start = time.perf_counter()
        out = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens, do_sample=False, num_beams=1,
                             stopping_criteria=StoppingCriteriaList([clock]), return_dict_in_generate=True,
                             pad_token_id=model.config.pad_token_id or 0)
    times = [start] + clock.times
    session = session_of(cache_in_output(out)) if cache_in_output(out) is not None else None
    kept = sum(rs.nbytes for rs in session.weights.values()) if session else 0
    return GenerateTiming(prefill_s=times[1] - times[0],
                          step_s=[b - a for a, b in zip(times[1:], times[2:])],
                          peak_extra_mib=rss.extra_mib if measure_memory else None,
                          kept_mib=kept / 2**20)


@dataclass
class Record:
    """One configuration's medians over the repeats (times in ms)."""
    method: str
    density: float
    prompt_tokens: int
    new_tokens: int
    prefill_ms: float
    decode_ms: float
    decode_tokens_per_s: float
    end_to_end_tokens_per_s: float
    peak_extra_mib: float
    kept_mib: float
    repeats: int
    prefill_ms_all: list
    decode_ms_all: list
    # vs the dense model of the same run
    decode_speedup: float | None = None
    prefill_overhead: float | None = None
    end_to_end_speedup: float | None = None
    break_even_tokens: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def _record(method, density, prompt_tokens, new_tokens, timings, peak_extra_mib: float) -> Record:
    prefill = statistics.median(t.prefill_s for t in timings) * 1e3
    decode = statistics.median(t.decode_s for t in timings) * 1e3
    total_s = (prefill + (new_tokens - 1) * decode) / 1e3
    return Record(method, density, prompt_tokens, new_tokens, prefill, decode, 1e3 / decode,
                  new_tokens / total_s, peak_extra_mib,
                  max(t.kept_mib for t in timings), len(timings),
                  [t.prefill_s * 1e3 for t in timings], [t.decode_s * 1e3 for t in timings])


def _compare(rec: Record, dense: Record) -> Record:
    rec.decode_speedup = dense.decode_ms / rec.decode_ms
    rec.prefill_overhead = rec.prefill_ms / dense.prefill_ms
    rec.end_to_end_speedup = rec.end_to_end_tokens_per_s / dense.end_to_end_tokens_per_s
    saved = dense.decode_ms - rec.decode_ms
    # generated tokens after which the slower prefill has been paid back by faster decoding
    rec.break_even_tokens = (max(0.0, rec.prefill_ms - dense.prefill_ms) / saved
                             if saved > 0 else float("inf"))
    return rec


def _generate_as(model, method, density, ids, new_tokens, measure_memory=False) -> GenerateTiming:
    """time_generate with the model sparsified by `method` (dense: as it is), restored after."""
    if method != "dense":
        sparsify(model, method, density)
    try:
        return time_generate(model, ids, new_tokens, measure_memory=measure_memory)
    finally:
        restore(model)


def bench_generate(model, densities, *, prompt_tokens: int = 256, new_tokens: int = 32,
                   repeats: int = 3, seed: int = 0, progress=None,
                   methods=("mumoe",)) -> list[Record]:
    """Dense and each of `methods` (mumoe, mumoe-plus) at each density on the same prompt: one
    warm-up round, then `repeats` rounds of one timed generate per configuration, then one untimed
    round that measures peak memory (its sampler would slow the timed ones). Returns one Record per
    configuration, dense first; times are medians over the rounds."""
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (1, prompt_tokens), generator=g)
    ids = ids.to(next(model.parameters()).device)
    configs = [("dense", 1.0)] + [(m, float(d)) for m in methods for d in densities]
    timings = {c: [] for c in configs}
    # Rounds interleave the configurations, so a slow phase of a shared machine hits all of them.
    for round_ in range(repeats + 1):  # round 0 warms up (first-touch allocations, thread pool)
        for method, density in configs:
            t = _generate_as(model, method, density, ids, new_tokens if round_ else 2)
            if round_:
                timings[(method, density)].append(t)
                if progress:
                    progress(method, density, t)
    peaks = {c: _generate_as(model, *c, ids, new_tokens, measure_memory=True).peak_extra_mib
             for c in configs}
    records = [_record(m, d, prompt_tokens, new_tokens, timings[(m, d)], peaks[(m, d)])
               for m, d in configs]
    dense = records[0]
    return [dense] + [_compare(r, dense) for r in records[1:]]


def markdown_table(records) -> str:
    head = ("| method | density | prefill ms | decode ms/token | decode tok/s | decode speedup | "
            "prefill overhead | end-to-end speedup | break-even tokens | peak extra MiB | "
            "kept MiB |")
    lines = [head, "|" + "---|" * 11]
    for r in records:
        def f(v, fmt):
            return "—" if v is None else ("∞" if v == float("inf") else format(v, fmt))
        lines.append(f"| {r.method} | {r.density:g} | {r.prefill_ms:.1f} | {r.decode_ms:.2f} | "
                     f"{r.decode_tokens_per_s:.1f} | {f(r.decode_speedup, '.2f')}× | "
                     f"{f(r.prefill_overhead, '.2f')}× | {f(r.end_to_end_speedup, '.2f')}× | "
                     f"{f(r.break_even_tokens, '.1f')} | {r.peak_extra_mib:.0f} | {r.kept_mib:.0f} |")
    return "\n".join(lines)
