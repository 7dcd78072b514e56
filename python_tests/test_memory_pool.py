"""The CPU buffer pool (mumoe_ext.memory): what a prefill frees is kept for the next prompt, up to
the most bytes ever live at once, and empty_cache() gives it back."""
import os
import pathlib
import subprocess
import sys

import torch

import mumoe_ext
from mumoe_ext import reference

ROOT = pathlib.Path(__file__).resolve().parents[1]
MiB = 2**20


def _compact_bytes(rs) -> int:  # bitmap and values, both pooled here (>= 128 KiB, 4 KiB multiples)
    return sum(t.numel() * t.element_size() for t in (rs.bitmap, rs.values))


def test_freed_compact_weights_are_reused_by_the_next_prompt():
    torch.manual_seed(0)
    w = torch.randn(2048, 4096).bfloat16()  # values 2048 x 2048 bf16 = 8 MiB, pooled
    x1, x2 = torch.randn(16, 4096).bfloat16(), torch.randn(16, 4096).bfloat16()
    mumoe_ext.empty_cache()
    _, rs = mumoe_ext.wanda_linear_compact(x1, w, None, 0.5)
    size = _compact_bytes(rs)
    live = mumoe_ext.memory_stats()
    assert live["live_bytes"] >= size and live["idle_bytes"] == 0
    del rs
    idle = mumoe_ext.memory_stats()
    assert idle["idle_bytes"] >= size and idle["live_bytes"] == live["live_bytes"] - idle["idle_bytes"]
    _, rs2 = mumoe_ext.wanda_linear_compact(x2, w, None, 0.5)  # same sizes: the same buffer again
    again = mumoe_ext.memory_stats()
    assert again["idle_bytes"] == idle["idle_bytes"] - size
    assert again["peak_live_bytes"] == live["peak_live_bytes"]  # nothing new was allocated
    # the reused buffer holds this prompt's selection, not the last one's
    want = reference.prune_rows(w, reference.col_norms(x2), 0.5)
    assert torch.equal(rs2.values, want.values) and torch.equal(rs2.bitmap, want.bitmap)
    del rs2
    mumoe_ext.empty_cache()
    stats = mumoe_ext.memory_stats()
    assert stats["idle_bytes"] == 0 and stats["peak_live_bytes"] == stats["live_bytes"]


def test_default_cap_keeps_up_to_the_peak_above_256_mib():
    # Five prompts' compact weights live at once (5 x 64 MiB): once freed, all of them stay for
    # reuse (a fixed 256 MiB cap would free one), and empty_cache() returns them.
    if os.environ.get("MUMOE_CPU_POOL_MB"):
        import pytest
        pytest.skip("MUMOE_CPU_POOL_MB sets a fixed cap")
    torch.manual_seed(0)
    w = torch.randn(4096, 16384).bfloat16()
    norms = torch.rand(16384) + 0.1
    mumoe_ext.empty_cache()
    kept = [mumoe_ext.prune_rows(w, norms, 0.5) for _ in range(5)]
    size = sum(_compact_bytes(rs) for rs in kept)
    assert size > 256 * MiB
    del kept
    stats = mumoe_ext.memory_stats()
    assert stats["idle_bytes"] >= size and stats["idle_cap_bytes"] >= size
    mumoe_ext.empty_cache()
    assert mumoe_ext.memory_stats()["idle_bytes"] == 0


POOL_DRIVER = """
import torch, mumoe_ext
w = torch.randn(2048, 8192).bfloat16()  # values 16 MiB per call
rs = [mumoe_ext.prune_rows(w, torch.rand(8192) + 0.1, 0.5) for _ in range(2)]
del rs
s = mumoe_ext.memory_stats()
print(s["idle_bytes"], s["idle_cap_bytes"])
"""


def _run_with_cap(mb: str):
    env = dict(os.environ, MUMOE_CPU_POOL_MB=mb, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-c", POOL_DRIVER], env=env, cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return [int(v) for v in r.stdout.split()]


def test_pool_mb_sets_a_fixed_cap_and_zero_turns_the_pool_off():
    idle, cap = _run_with_cap("20")
    assert cap == 20 * MiB and 0 < idle <= 20 * MiB  # one 16 MiB buffer kept, the other freed
    idle, cap = _run_with_cap("0")
    assert cap == 0 and idle == 0



def _smaps_field(ptr: int, field: str) -> int | None:
    """`field` (e.g. THPeligible) of the mapping holding address ptr in /proc/self/smaps, or None."""
    try:
        lines = pathlib.Path("/proc/self/smaps").read_text().splitlines()
    except OSError:
        return None
    inside = False
    for line in lines:
        parts = line.split()
        if parts and "-" in parts[0] and not parts[0].endswith(":"):
            lo, hi = (int(v, 16) for v in parts[0].split("-"))
            inside = lo <= ptr < hi
        elif inside and parts and parts[0] == field + ":":
            return int(parts[1])
    return None


def test_large_pool_buffers_start_on_a_2_mib_boundary_and_ask_for_huge_pages():
    torch.manual_seed(0)
    w = torch.randn(2048, 4096).bfloat16()  # values 8 MiB; bitmap 2048 x 128 int32 = 1 MiB
    x = torch.randn(16, 4096).bfloat16()
    mumoe_ext.empty_cache()
    _, rs = mumoe_ext.wanda_linear_compact(x, w, None, 0.5)
    assert rs.values.data_ptr() % (2 * MiB) == 0
    assert rs.bitmap.data_ptr() % 4096 == 0  # under 2 MiB: page-aligned, no huge-page advice
    mode = pathlib.Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if mode.exists() and "[never]" not in mode.read_text():
        # the mapping carries the advice (THPeligible: 1 needs it under THP `madvise`); the small
        # bitmap's does not under `madvise`
        assert _smaps_field(rs.values.data_ptr(), "THPeligible") == 1
        if "[madvise]" in mode.read_text():
            assert _smaps_field(rs.bitmap.data_ptr(), "THPeligible") == 0
    want = reference.prune_rows(w, reference.col_norms(x), 0.5)
    assert torch.equal(rs.values, want.values) and torch.equal(rs.bitmap, want.bitmap)
    # freed and taken again (the trimmed mapping unmaps and maps back cleanly), holding the new
    # prompt's selection
    x2 = torch.randn(16, 4096).bfloat16()
    del rs
    mumoe_ext.empty_cache()
    _, rs2 = mumoe_ext.wanda_linear_compact(x2, w, None, 0.5)
    want = reference.prune_rows(w, reference.col_norms(x2), 0.5)
    assert torch.equal(rs2.values, want.values) and torch.equal(rs2.bitmap, want.bitmap)
