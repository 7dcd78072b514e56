"""Ops called from several Python threads on shared weights give the results of serial calls
(the pooled output buffers and the per-thread selection buffers included), and 10,000 calls keep
the process's resident memory bounded."""
import threading

import pytest
import torch

import mumoe_ext

# 1024 x 1024: the fp32 pruned weight (4 MiB) is a pooled output (>= 4 MiB), the mask is not
D_OUT, D_IN = 1024, 1024


def _calls(w, b):
    """name -> fn(x) of every op on the shared weight, small-T and GEMM paths."""
    return {
        "wanda_mask": lambda x: mumoe_ext.wanda_mask(w, mumoe_ext.col_norms(x), 0.5),
        "wanda_prune": lambda x: mumoe_ext.wanda_prune(w, mumoe_ext.col_norms(x), 0.4),
        "prune_rows+sparse_linear": lambda x: mumoe_ext.sparse_linear(
            x[:3], mumoe_ext.prune_rows(w, mumoe_ext.col_norms(x), 0.5), b),
        "wanda_linear_T4": lambda x: mumoe_ext.wanda_linear(x[:4], w, b, 0.5),
        "wanda_linear_T64": lambda x: mumoe_ext.wanda_linear(x, w, b, 0.5),
        "wanda_linear_compact": lambda x: mumoe_ext.wanda_linear_compact(x[:16], w, b, 0.3)[1].values,
        "masked_linear": lambda x: mumoe_ext.masked_linear(x[:2], w, w.abs() > 1.0, b),
    }


def test_threads_on_shared_weights_match_serial_results():
    torch.manual_seed(0)
    w, b = torch.randn(D_OUT, D_IN), torch.randn(D_OUT)
    calls = _calls(w, b)
    prompts = [torch.randn(64, D_IN) for _ in range(4)]
    want = {(name, i): fn(x) for name, fn in calls.items() for i, x in enumerate(prompts)}
    errors, mismatches = [], []

    def worker(tid):
        try:
            for rnd in range(2):
                for name, fn in calls.items():
                    i = (tid + rnd) % len(prompts)  # threads use different prompts at the same time
                    if not torch.equal(fn(prompts[i]), want[(name, i)]):
                        mismatches.append((tid, rnd, name))
        except Exception as e:  # noqa: BLE001  (reported below, with the thread)
            errors.append((tid, repr(e)))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors
    assert not mismatches, mismatches


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


# Resident memory may grow by at most this much over 10,000 calls after a warm-up: the pool keeps
# at most its peak of live bytes idle (>= 256 MiB) and the warm-up fills it; what is left is allocator noise.
RSS_BUDGET = 24 * 2**20


def test_ten_thousand_calls_keep_resident_memory_bounded(record_property):
    torch.manual_seed(0)
    w, b = torch.randn(128, 256), torch.randn(128)
    big = torch.randn(1024, 1024)  # pooled outputs (4 MiB) now and then
    xs = [torch.randn(6, 256) for _ in range(8)]

    def step(i):  # 4 op calls (6 every 25th step)
        x = xs[i % len(xs)]
        y, rs = mumoe_ext.wanda_linear_compact(x, w, b, 0.5)
        mumoe_ext.sparse_linear(x[:1], rs, b)
        mumoe_ext.wanda_linear(x, w, b, 0.3)
        mumoe_ext.col_norms(x)
        if i % 25 == 0:
            mumoe_ext.wanda_mask(big, mumoe_ext.col_norms(big[:8]), 0.5)
            mumoe_ext.wanda_prune(big, mumoe_ext.col_norms(big[:8]), 0.5)
            return 8
        return 4

    calls = 0
    for i in range(200):
        step(i)
    before = peak = _rss_bytes()
    i = 0
    while calls < 10_000:
        calls += step(i)
        i += 1
        if i % 100 == 0:
            peak = max(peak, _rss_bytes())
    after = _rss_bytes()
    growth = max(after, peak) - before
    record_property("rss_before_mib", before / 2**20)
    record_property("rss_growth_mib", growth / 2**20)
    print(f"\nRSS {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB (peak {peak / 2**20:.1f}) "
          f"over {calls} op calls")
    assert growth <= RSS_BUDGET, f"RSS grew by {growth / 2**20:.1f} MiB"
