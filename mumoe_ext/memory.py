"""The CPU ops' buffer pool: large outputs (the compact weights a prefill keeps, ≥ 128 KiB) come from
reused buffers, because a fresh one pays its first-touch page faults (on the VMs we measured, a
1.1B model's compact weights cost ~200 ms of faults per prompt, a fifth of its prefill).

Like PyTorch's CUDA caching allocator, the pool keeps what is freed for the next prompt: by default
up to the most bytes that were ever live at once (at least 256 MiB), so a process never holds more
than its own peak; ``MUMOE_CPU_POOL_MB`` sets a fixed cap instead (0 turns the pool off).
"""
from __future__ import annotations

from . import _C

__all__ = ["empty_cache", "memory_stats"]


def empty_cache() -> None:
    """Free the pool's idle buffers (back to the OS) and restart its peak from the bytes live now.
    Tensors in use are not touched."""
    _C.empty_cache()


def memory_stats() -> dict:
    """{'live_bytes': held by tensors now, 'idle_bytes': kept for reuse, 'peak_live_bytes': the
    most live at once since the start or the last empty_cache(), 'idle_cap_bytes': the idle cap in
    force}."""
    return dict(_C.memory_stats())
