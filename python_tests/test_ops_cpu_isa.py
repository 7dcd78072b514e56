"""Choosing the CPU instruction-set path: MUMOE_CPU_ISA at import (in a fresh interpreter),
set_cpu_isa / the cpu_isa context manager at run time; an unusable path is a clear error, never
an illegal instruction."""
import json
import os
import pathlib
import subprocess
import sys

import pytest
import torch

import mumoe_ext
from helpers_ops import assert_linear_close

ROOT = pathlib.Path(mumoe_ext.__file__).resolve().parent.parent
ALL_PATHS = ["scalar", "avx2", "avx512", "neon"]

# One fresh interpreter imports torch once, then forks a child per MUMOE_CPU_ISA value; each child
# imports mumoe_ext with that value and runs one op. A signal (SIGILL) shows up as "signal".
DRIVER = """
import json, os, sys
import torch
results = {}
for value in json.loads(sys.argv[1]):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.environ["MUMOE_CPU_ISA"] = value
        try:
            import mumoe_ext
            from mumoe_ext import reference
            w_, n_ = torch.randn(5, 37), torch.rand(37)
            assert torch.equal(mumoe_ext.wanda_mask(w_, n_, 0.5), reference.wanda_mask(w_, n_, 0.5))
            msg, code = "ISA " + mumoe_ext.build_info()["cpu_isa"], 0
        except BaseException as e:
            msg, code = f"{type(e).__name__}: {e}", 1
        os.write(w, msg.encode())
        os._exit(code)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    results[value] = {"msg": b"".join(chunks).decode(),
                      "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                      "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None}
print(json.dumps(results))
"""
ENV_VALUES = [*ALL_PATHS, "bogus", "AVX512", ""]


@pytest.fixture(scope="module")
def imports_with_env():
    env = {k: v for k, v in os.environ.items() if k != "MUMOE_CPU_ISA"}
    env["PYTHONPATH"] = str(ROOT)
    r = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(ENV_VALUES)], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_env_scalar_forces_the_scalar_path(imports_with_env):
    assert imports_with_env["scalar"] == {"msg": "ISA scalar", "exit": 0, "signal": None}


@pytest.mark.parametrize("name", ALL_PATHS)
def test_env_every_path_works_or_fails_cleanly(name, imports_with_env):
    # A path this CPU/build lacks (neon on x86, avx512 on an AVX2-only CPU) must raise at import.
    got = imports_with_env[name]
    assert got["signal"] is None, got
    if name in mumoe_ext.build_info()["cpu_isas"]:
        assert got == {"msg": f"ISA {name}", "exit": 0, "signal": None}
    else:
        assert got["exit"] == 1 and got["msg"].startswith("ImportError"), got
        assert f"MUMOE_CPU_ISA={name}" in got["msg"], got


@pytest.mark.parametrize("value", ["bogus", "AVX512"])
def test_env_bogus_name_is_an_import_error(value, imports_with_env):
    got = imports_with_env[value]
    assert got["exit"] == 1 and got["signal"] is None, got
    assert got["msg"].startswith("ImportError") and f"MUMOE_CPU_ISA={value}" in got["msg"], got


def test_env_empty_means_best(imports_with_env):
    assert imports_with_env[""]["msg"] == f"ISA {mumoe_ext.build_info()['cpu_isas'][0]}"


def test_best_path_is_the_default_and_listed():
    info = mumoe_ext.build_info()
    assert info["cpu_isas"][-1] == "scalar"
    if os.environ.get("MUMOE_CPU_ISA", "") == "":
        assert info["cpu_isa"] == info["cpu_isas"][0]


@pytest.mark.parametrize("name", ["bogus", "neon", "AVX2", *[p for p in ALL_PATHS if p not in
                                                                mumoe_ext.build_info()["cpu_isas"]]])
def test_set_cpu_isa_refuses_unusable_paths(name):
    before = mumoe_ext.build_info()["cpu_isa"]
    if name in mumoe_ext.build_info()["cpu_isas"]:
        pytest.skip(f"{name} is usable here")
    with pytest.raises(ValueError, match=f"MUMOE_CPU_ISA={name}"):
        mumoe_ext.set_cpu_isa(name)
    assert mumoe_ext.build_info()["cpu_isa"] == before


def test_cpu_isa_context_manager_restores_even_on_error():
    before = mumoe_ext.build_info()["cpu_isa"]
    with pytest.raises(RuntimeError, match="boom"):
        with mumoe_ext.cpu_isa("scalar"):
            assert mumoe_ext.build_info()["cpu_isa"] == "scalar"
            raise RuntimeError("boom")
    assert mumoe_ext.build_info()["cpu_isa"] == before


def test_every_path_gives_the_same_mask_and_product():
    # One cross-path check in a single process (the parametrized suites compare each to the reference).
    w = torch.randn(33, 1000).to(torch.bfloat16)
    n = torch.rand(2, 1000)
    x = torch.randn(2, 3, 1000).to(torch.bfloat16)
    masks, products = {}, {}
    for isa in mumoe_ext.build_info()["cpu_isas"]:
        with mumoe_ext.cpu_isa(isa):
            masks[isa] = mumoe_ext.wanda_mask(w, n, 0.5)
            products[isa] = mumoe_ext.masked_linear(x, w, masks[isa])
    first = next(iter(masks.values()))
    for isa in masks:
        assert torch.equal(masks[isa], first), isa
        assert_linear_close(products[isa], products["scalar"], x, torch.where(first, w, 0).to(w.dtype))


def _cpu_flags() -> set:
    try:
        text = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


AVX512_FLAGS = {"avx512f", "avx512bw", "avx512vl", "avx512dq"}
VBMI2_BF16_FLAGS = AVX512_FLAGS | {"avx512_vbmi2", "avx512_bf16"}
AMX_FLAGS = AVX512_FLAGS | {"amx_tile", "amx_bf16"}


def _amx_on() -> bool:
    return os.environ.get("MUMOE_CPU_NO_AMX", "0") in ("", "0")
# The avx512 table's fused prefill kernels (every AVX-512 CPU).
AVX512_FUSED = ["score_select", "emit_pruned_compact"]


def test_optional_kernels_run_exactly_where_the_cpu_has_them():
    # The optional AVX512-BF16 + VBMI2 decode kernel and the VBMI2 emit kernels belong to the
    # avx512 path only, and must be picked up on CPUs that report the extensions (a table that
    # drops them still passes every accuracy test, just slower).
    if os.environ.get("MUMOE_CPU_NO_VBMI2_BF16", "0") not in ("", "0"):
        pytest.skip("MUMOE_CPU_NO_VBMI2_BF16 is set")
    flags = _cpu_flags()
    for isa in mumoe_ext.build_info()["cpu_isas"]:
        with mumoe_ext.cpu_isa(isa):
            got = mumoe_ext.build_info()["cpu_optional_kernels"]
        want = []
        if isa == "avx512":
            want = (["sparse_dot_bf16"] if VBMI2_BF16_FLAGS <= flags else []) + AVX512_FUSED
            want += ["emit_compact_vbmi2"] if "avx512_vbmi2" in flags else []
            want += ["block_gemm_amx"] if AMX_FLAGS <= flags and _amx_on() else []
        assert got == want, isa


# With the optional kernels switched off, bf16 decode and the bf16/f16 compact outputs run the
# plain AVX-512 (or lower) kernels.
NO_VBMI2_DRIVER = """
import os, sys, torch
sys.path.insert(0, sys.argv[1])
import mumoe_ext
from mumoe_ext import reference
from helpers_ops import assert_linear_close
fused = ["score_select", "emit_pruned_compact"] if mumoe_ext.build_info()["cpu_isa"] == "avx512" else []
fused += [k for k in mumoe_ext.build_info()["cpu_optional_kernels"] if k == "block_gemm_amx"]
assert mumoe_ext.build_info()["cpu_optional_kernels"] == fused, mumoe_ext.build_info()
torch.manual_seed(0)
for d_out, d_in in [(7, 37), (33, 300), (16, 1024)]:
    w = torch.randn(d_out, d_in).to(torch.bfloat16)
    norms = torch.rand(d_in) + 0.1
    rs = mumoe_ext.prune_rows(w, norms, 0.5)
    ref = reference.prune_rows(w, norms, 0.5)
    assert torch.equal(rs.bitmap, ref.bitmap) and torch.equal(rs.values, ref.values)
    dense = ref.to_dense()
    for T in range(1, 9):
        x = torch.randn(T, d_in).to(torch.bfloat16)
        assert_linear_close(mumoe_ext.sparse_linear(x, rs), reference.sparse_linear(x, rs), x, dense)
    for dtype in (torch.bfloat16, torch.float16):  # the compact outputs of the prefill, each path
        for T, path in [(4, ""), (40, "blocked"), (40, "composite")]:
            os.environ["MUMOE_CPU_PREFILL"] = path
            x, wd = torch.randn(T, d_in).to(dtype), w.to(dtype)
            _, got = mumoe_ext.wanda_linear_compact(x, wd, None, 0.5)
            want = reference.prune_rows(wd, reference.col_norms(x), 0.5)
            assert torch.equal(got.bitmap, want.bitmap) and torch.equal(got.values, want.values)
            _, got, off = mumoe_ext.wanda_linear_centered(x, wd, None, 0.5, mean_shift=0.75)
            _, want, off_ref = reference.wanda_linear_centered(x, wd, None, 0.5, mean_shift=0.75)
            assert torch.equal(got.bitmap, want.bitmap) and torch.equal(got.values, want.values)
            torch.testing.assert_close(off, off_ref, rtol=1e-4, atol=1e-4 * (1 + off_ref.abs().max().item()))
print("ok", mumoe_ext.build_info()["cpu_isa"])
"""


def _run_driver(driver: str, **switches: str) -> None:
    """Runs `driver` in a fresh interpreter with the import-time switches set (best CPU path)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), **switches)
    env.pop("MUMOE_CPU_ISA", None)
    r = subprocess.run([sys.executable, "-c", driver, str(ROOT / "python_tests")], env=env,
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.startswith("ok")


def test_plain_avx512_kernels_when_vbmi2_bf16_is_switched_off():
    _run_driver(NO_VBMI2_DRIVER, MUMOE_CPU_NO_VBMI2_BF16="1")


# On an AMX machine the bf16 blocked prefill runs our AMX block GEMM; MUMOE_CPU_NO_AMX=1 gives the
# vendor GEMM path instead. Both must give the reference's product and compact weight (the suite
# itself runs whichever this machine has).
NO_AMX_DRIVER = """
import os, sys, torch
sys.path.insert(0, sys.argv[1])
import mumoe_ext
from mumoe_ext import reference
from helpers_ops import assert_linear_close
assert "block_gemm_amx" not in mumoe_ext.build_info()["cpu_optional_kernels"], mumoe_ext.build_info()
torch.manual_seed(0)
os.environ["MUMOE_CPU_PREFILL"] = "blocked"
for T, d_out, d_in in [(9, 7, 37), (40, 33, 300), (100, 70, 1024)]:
    x, w, b = torch.randn(T, d_in).bfloat16(), torch.randn(d_out, d_in).bfloat16(), torch.randn(d_out).bfloat16()
    y, rs = mumoe_ext.wanda_linear_compact(x, w, b, 0.5)
    want = reference.prune_rows(w, reference.col_norms(x), 0.5)
    assert torch.equal(rs.bitmap, want.bitmap) and torch.equal(rs.values, want.values)
    assert_linear_close(y, reference.wanda_linear(x, w, b, 0.5), x, want.to_dense(), bias=b)
print("ok")
"""


def test_vendor_gemm_prefill_when_amx_is_switched_off():
    _run_driver(NO_AMX_DRIVER, MUMOE_CPU_NO_AMX="1")
