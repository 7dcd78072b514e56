"""What the build reports: build_info() keys, the CPU paths, and (in CI) that CUDA was compiled in."""
import os

import pytest
import torch

import mumoe_ext
from mumoe_ext import reference


def test_build_info_keys_and_types():
    info = mumoe_ext.build_info()
    assert {"cuda", "cpu_isa", "cpu_isas", "version"} <= set(info)
    assert isinstance(info["cuda"], bool)
    assert isinstance(info["version"], str) and info["version"] == mumoe_ext.__version__
    assert isinstance(info["cpu_isas"], list) and info["cpu_isas"]
    assert set(info["cpu_isas"]) <= {"scalar", "avx2", "avx512", "neon"}


def test_cpu_isa_is_one_of_the_available_paths():
    info = mumoe_ext.build_info()
    assert info["cpu_isa"] in info["cpu_isas"]
    assert "scalar" in info["cpu_isas"]  # the portable path is always there


def test_cuda_build_when_ci_expects_it():
    # .ci/run sets MUMOE_EXPECT_CUDA_BUILD=1 whenever nvcc exists: CUDA must then be compiled in.
    if os.environ.get("MUMOE_EXPECT_CUDA_BUILD") == "1":
        info = mumoe_ext.build_info()
        assert info["cuda"] is True
        assert {"80", "90"} <= set(info.get("cuda_archs", [])), info.get("cuda_archs")


def test_cuda_ops_registered_when_built():
    if not mumoe_ext.build_info()["cuda"]:
        pytest.skip("this build has no CUDA kernels")
    for op in ("col_norms", "wanda_mask", "wanda_prune", "prune_rows", "masked_linear",
               "sparse_linear"):
        name = f"mumoe::{op}"
        assert torch._C._dispatch_has_kernel_for_dispatch_key(name, "CUDA"), f"{name} has no CUDA kernel"
    # The fused linears are composed from those on CUDA (csrc/wanda_linear.cpp): their CUDA entry is
    # the CompositeExplicitAutograd one, which only the computed dispatch table shows.
    for op in ("wanda_linear", "wanda_linear_compact", "wanda_linear_centered", "prune_rows_centered"):
        name = f"mumoe::{op}"
        assert torch._C._dispatch_has_computed_kernel_for_dispatch_key(name, "CUDA"), f"{name} has no CUDA kernel"


def test_public_api():
    for name in ("col_norms", "wanda_mask", "wanda_prune", "masked_linear", "wanda_linear",
                 "wanda_linear_compact", "wanda_linear_centered", "prune_rows", "prune_rows_centered",
                 "sparse_linear", "RowSparse", "build_info", "set_cpu_isa", "cpu_isa"):
        assert name in mumoe_ext.__all__ and getattr(mumoe_ext, name).__doc__, name
    for name in ("col_norms", "wanda_mask", "masked_linear", "wanda_linear", "wanda_linear_compact",
                 "wanda_linear_centered", "prune_rows", "prune_rows_centered", "sparse_linear"):
        assert callable(getattr(reference, name)), name


def test_selection_ops_take_the_nm_group_size():
    # docs/nm.md: a trailing `int m=0` on every selection op; the CUDA N:M composite is exposed
    # for the CPU tests as mumoe_testing::nm_composite.
    for op in ("wanda_mask", "wanda_prune", "prune_rows", "wanda_linear", "wanda_linear_compact"):
        args = getattr(torch.ops.mumoe, op).default._schema.arguments
        assert args[-1].name == "m" and args[-1].default_value == 0, op
    assert torch._C._dispatch_has_computed_kernel_for_dispatch_key("mumoe_testing::nm_composite", "CPU")
