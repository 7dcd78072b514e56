"""Benchmark session setup: the sweep to run, the devices, torch threads, and the machine record
that goes into the saved JSON (so every result says where and on what build it was measured)."""
from __future__ import annotations

import hashlib
import os
import platform
import shlex
import subprocess
from pathlib import Path

import pytest
import torch

import sweep
from timing import device_or_skip

THREADS = 2  # the dev/CI machine's two cores; every benchmark process runs with both


def pytest_addoption(parser):
    group = parser.getgroup("mumoe bench")
    group.addoption("--sweep", default=os.environ.get("MUMOE_BENCH_SWEEP", "quick"),
                    choices=sweep.SWEEPS, help="quick (default), targets or full "
                    "(env MUMOE_BENCH_SWEEP)")
    group.addoption("--devices", default=os.environ.get("MUMOE_BENCH_DEVICES", "cpu,cuda"),
                    help="comma-separated devices; cuda cases skip without a GPU "
                    "(env MUMOE_BENCH_DEVICES)")
    group.addoption("--budget", type=float, default=None,
                    help="seconds of timed rounds per case (default: 0.2 quick, 0.4 otherwise)")


def pytest_configure(config):
    torch.set_num_threads(THREADS)
    config._mumoe_loadavg_at_start = os.getloadavg()


def pytest_generate_tests(metafunc):
    """Each bench module names its OP; the sweep decides its cases. Parameters are plain dicts so
    the saved JSON holds them readably."""
    if "case_params" not in metafunc.fixturenames:
        return
    devices = [d.strip() for d in metafunc.config.getoption("devices").split(",") if d.strip()]
    cases = sweep.cases(metafunc.module.OP, metafunc.config.getoption("sweep"), devices)
    metafunc.parametrize("case_params", [c.as_params() for c in cases], ids=[c.id for c in cases])


@pytest.fixture
def case(case_params) -> sweep.Case:
    device_or_skip(case_params["device"])  # before any input is built on a missing device
    return sweep.Case(**case_params)


@pytest.fixture
def budget(request, case) -> float:
    return budget_s(request.config, case)


TARGET_BUDGET_FACTOR = 10


def budget_s(config, case=None) -> float:
    """Seconds of timed rounds for one case. The issue-4 target points get 10x: on the shared VM
    slow phases of a few seconds come and go (F.linear at 72 ms for 8 rounds, then 33 ms), and
    rounds spread over ~4 s give each implementation's minimum a quiet stretch."""
    given = config.getoption("budget")
    base = given if given is not None else 0.2 if config.getoption("sweep") == "quick" else 0.4
    return base * (TARGET_BUDGET_FACTOR if case is not None and case.is_target_point() else 1)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> list:
    wanted = ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16",
              "avx512_vnni", "avx512_vbmi2", "avx512_vpopcntdq", "amx_tile", "asimd", "sve")
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            have = set(line.split(":", 1)[1].split())
            return [f for f in wanted if f in have]
    return []


def _extension_file() -> dict:
    import mumoe_ext
    so = Path(mumoe_ext._C.__file__)
    stat = so.stat()
    return {"path": str(so), "bytes": stat.st_size, "mtime": int(stat.st_mtime),
            "sha256": hashlib.sha256(so.read_bytes()).hexdigest()}


def pytest_benchmark_update_machine_info(config, machine_info):
    import mumoe_ext
    machine_info["mumoe"] = {
        "cpu_model": _cpu_model(),
        "cpu_flags": _cpu_flags(),
        "logical_cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_parallel_info": torch.__config__.parallel_info().splitlines()[:6],
        "build_info": mumoe_ext.build_info(),
        "extension_file": _extension_file(),
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "pytest_args": shlex.join(config.invocation_params.args),
        "cwd": str(config.invocation_params.dir),
        "sweep": config.getoption("sweep"),
        "devices": config.getoption("devices"),
        "budget_s": budget_s(config),
        "loadavg_at_start": getattr(config, "_mumoe_loadavg_at_start", None),
        "loadavg_at_save": os.getloadavg(),
    }


def pytest_benchmark_generate_commit_info(config):
    """HEAD only: pytest-benchmark's default runs `git describe --dirty`, which may rewrite the
    index while colleagues work in the same checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        head = ""
    return {"id": head or "unknown", "dirty": "not checked", "project": "mumoe"}
