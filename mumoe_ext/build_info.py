"""What this build of the extension contains, and the CPU instruction-set switch."""
from __future__ import annotations

import contextlib

import torch

from . import _C

__all__ = ["build_info", "set_cpu_isa", "cpu_isa"]


def build_info() -> dict:
    """{'version', 'cuda' (CUDA kernels compiled in), 'cuda_archs', 'cpu_isa' (path in use),
    'cpu_isas' (paths compiled in and supported by this CPU, best first), 'cpu_optional_kernels'
    (extra kernels of that path this CPU runs, e.g. 'sparse_dot_bf16' with AVX512-BF16 + VBMI2;
    MUMOE_CPU_NO_VBMI2_BF16=1 at import turns it off), 'torch'}."""
    return {
        "version": _C.version,
        "cuda": bool(_C.cuda),
        "cuda_archs": [a for a in _C.cuda_archs.split(",") if a],
        "cpu_isa": _C.cpu_isa(),
        "cpu_isas": list(_C.cpu_isas()),
        "cpu_optional_kernels": list(_C.cpu_optional_kernels()),
        "torch": torch.__version__,
    }


def set_cpu_isa(name: str | None) -> None:
    """Force the CPU path ('scalar', 'avx2', 'avx512', 'neon'); None or '' restores the best one.
    Raises ValueError for a path this build or CPU lacks (like MUMOE_CPU_ISA at import)."""
    _C.set_cpu_isa(name or "")


@contextlib.contextmanager
def cpu_isa(name: str):
    """Run a block on one CPU path, then restore the previous one."""
    previous = _C.cpu_isa()
    set_cpu_isa(name)
    try:
        yield
    finally:
        set_cpu_isa(previous)
