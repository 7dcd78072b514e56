"""Builds mumoe_ext._C with CMake (per-ISA flags per folder; CUDA whenever nvcc + a CUDA torch exist).

`pip install --no-build-isolation -e .` (torch must already be installed: the extension is
compiled against the torch you run). Switches: MUMOE_NO_CUDA=1 builds CPU-only,
MUMOE_CUDA_ARCHS="80;90" picks the GPU targets, MUMOE_BUILD_JOBS the parallel compile jobs,
MUMOE_SANITIZE=address,undefined an ASan/UBSan build (docs/reliability.md).
"""
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


def find_cuda_home():
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var) and (Path(os.environ[var]) / "bin" / "nvcc").exists():
            return Path(os.environ[var])
    if Path("/usr/local/cuda/bin/nvcc").exists():
        return Path("/usr/local/cuda")
    nvcc = shutil.which("nvcc")
    return Path(os.path.realpath(nvcc)).parent.parent if nvcc else None


def cuda_extra_headers(torch_mod, cuda_home, build_dir):
    """The pip CUDA torch ships cuBLAS/cuSPARSE headers in site-packages/nvidia/cu*/include, not in
    the toolkit. Link only the headers the toolkit lacks, so its own runtime headers still win."""
    out = build_dir / "cuda_extra_include"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    site = Path(torch_mod.__file__).resolve().parent.parent
    have = {p.name for p in (cuda_home / "include").iterdir()}
    for inc in sorted(site.glob("nvidia/*/include")):
        for hdr in inc.iterdir():
            if hdr.name not in have and not (out / hdr.name).exists():
                (out / hdr.name).symlink_to(hdr)
    return out


def cmake_exe():
    """The PyPI `cmake` when installed (the system one may be too old for nvcc + C++20)."""
    try:
        import cmake
        return str(Path(cmake.CMAKE_BIN_DIR) / "cmake")
    except ImportError:
        return "cmake"


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        import torch
        from torch.utils import cpp_extension

        out_dir = Path(self.get_ext_fullpath(ext.name)).resolve().parent
        build_dir = Path(self.build_temp).resolve()
        build_dir.mkdir(parents=True, exist_ok=True)
        cfg = os.environ.get("MUMOE_BUILD_TYPE", "Release")
        args = [
            f"-DCMAKE_BUILD_TYPE={cfg}",
            f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={out_dir}",
            f"-DMUMOE_TORCH_INCLUDE_DIRS={';'.join(cpp_extension.include_paths())}",
            f"-DMUMOE_TORCH_LIBRARY_DIR={cpp_extension.library_paths()[0]}",
            f"-DMUMOE_PYTHON_INCLUDE={sysconfig.get_paths()['include']}",
            f"-DMUMOE_EXT_SUFFIX={sysconfig.get_config_var('EXT_SUFFIX')}",
            f"-DMUMOE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}",
            f"-DMUMOE_VERSION={self.distribution.get_version()}",
            f"-DMUMOE_SANITIZE={os.environ.get('MUMOE_SANITIZE', '')}",
        ]
        cuda_home = find_cuda_home()
        with_cuda = (torch.version.cuda is not None and cuda_home is not None
                     and os.environ.get("MUMOE_NO_CUDA", "0") != "1")
        if with_cuda:
            extra = cuda_extra_headers(torch, cuda_home, build_dir)
            args += [
                "-DMUMOE_WITH_CUDA=ON",
                f"-DCMAKE_CUDA_COMPILER={cuda_home / 'bin' / 'nvcc'}",
                f"-DCUDAToolkit_ROOT={cuda_home}",
                f"-DMUMOE_CUDA_EXTRA_INCLUDE={extra}",
                f"-DCMAKE_CUDA_ARCHITECTURES={os.environ.get('MUMOE_CUDA_ARCHS', '80;90')}",
            ]
        else:
            why = ("MUMOE_NO_CUDA=1" if os.environ.get("MUMOE_NO_CUDA") == "1" else
                   "torch is a CPU build" if torch.version.cuda is None else "no nvcc found")
            print(f"mumoe_ext: building CPU-only ({why})", file=sys.stderr)
            args.append("-DMUMOE_WITH_CUDA=OFF")
        if shutil.which("ninja"):
            args.append("-GNinja")
        jobs = os.environ.get("MUMOE_BUILD_JOBS", str(os.cpu_count() or 2))
        subprocess.check_call([cmake_exe(), str(ROOT), *args], cwd=build_dir)
        subprocess.check_call([cmake_exe(), "--build", ".", "-j", jobs], cwd=build_dir)


setup(
    name="mumoe_ext",
    version="0.1.0",
    description="Test-time pruning as a micro-grained mixture of experts (µ-MoE) for PyTorch",
    packages=find_packages(include=["mumoe_ext", "mumoe_ext.*"]),
    ext_modules=[CMakeExtension("mumoe_ext._C")],
    cmdclass={"build_ext": CMakeBuild},
    python_requires=">=3.10",
    install_requires=["torch>=2.13", "numpy", "tqdm"],  # tested: 2.13 and the newest (.ci/run)
    extras_require={"hf": ["transformers>=4.57", "accelerate", "gguf"],  # tested: 4.57.6 and the newest 5.x
                    "test": ["pytest", "pytest-benchmark", "pillow"],
                    "bench": ["pytest-benchmark", "matplotlib"],
                    # `mumoe lm-eval` / mumoe_ext.lm_eval (tested with lm-eval 0.4.13)
                    "lm-eval": ["lm-eval>=0.4.13,<0.5"],
                    # cross-check of `mumoe flops` in the tests (small: torch, accelerate, hub)
                    "flops": ["calflops>=0.3.2"]},
    entry_points={"console_scripts": ["mumoe = mumoe_ext.cli:main"]},
    zip_safe=False,
)
