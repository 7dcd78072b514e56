"""The CUDA kernels' index math and tie logic, checked without a GPU: tools/cuda_emu runs the real
csrc/cuda source on the CPU against host references (about a minute on one core)."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CUDA_INCLUDE = Path(os.environ.get("CUDA_HOME", "/usr/local/cuda")) / "include"


@pytest.mark.skipif(shutil.which("g++") is None or not (CUDA_INCLUDE / "cuda_fp16.h").exists(),
                    reason="needs g++ and the CUDA toolkit headers")
def test_cuda_kernels_under_host_emulation(tmp_path):
    run = subprocess.run(["bash", str(REPO / "tools/cuda_emu/run.sh"), str(tmp_path)],
                         capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0 and "ALL OK" in run.stdout, run.stdout[-3000:] + run.stderr[-3000:]
