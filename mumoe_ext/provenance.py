"""Where a result came from: the library versions and the commit, for every saved record."""
from __future__ import annotations

import functools
import os
import subprocess


@functools.lru_cache(maxsize=None)
def git_commit() -> str:
    """Short commit of the checkout this package runs from ("unknown" outside a git tree);
    a "+dirty" suffix when tracked files differ from it."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here,
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def versions() -> dict:
    """{"torch", "transformers", "commit"} of this process."""
    import torch
    import transformers
    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "commit": git_commit()}
