"""Shared pytest setup for every suite: seeding, the device and CPU-path lists, and a guard that
puts the CPU instruction-set path back after each test.

Kept generic on purpose (model, pruning and VLM suites use it too): nothing here imports the
compiled extension unless a test already did.
"""
import os
import sys

import pytest
import torch


def cuda_devices() -> list:
    """["cuda"] when a GPU is visible and the CUDA kernels were compiled in, else []."""
    if not torch.cuda.is_available():
        return []
    import mumoe_ext
    return ["cuda"] if mumoe_ext.build_info()["cuda"] else []


def available_devices() -> list:
    return ["cpu", *cuda_devices()]


def available_isas() -> list:
    """CPU paths compiled in and supported by this CPU, best first (e.g. avx512, avx2, scalar)."""
    import mumoe_ext
    return list(mumoe_ext.build_info()["cpu_isas"])


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _restore_cpu_isa():
    """A test that forces a path (set_cpu_isa / cpu_isa(...)) must not leak it into the next."""
    ext = sys.modules.get("mumoe_ext")
    before = ext.build_info()["cpu_isa"] if ext is not None else None
    yield
    ext = sys.modules.get("mumoe_ext")
    if ext is None:
        return
    if before is None:  # first import happened inside the test: back to MUMOE_CPU_ISA / the best
        before = os.environ.get("MUMOE_CPU_ISA", "")
    if ext.build_info()["cpu_isa"] != before:
        ext.set_cpu_isa(before)
