"""The public `mumoe_ext` ops, looked up at call time: `mumoe_ext/__init__.py` loads the model
layer lazily, and a lookup at import time would be a cycle."""
from __future__ import annotations

import importlib
import sys


def op(name: str):
    """`mumoe_ext.<name>` (the compiled op's typed wrapper)."""
    module = sys.modules.get("mumoe_ext") or importlib.import_module("mumoe_ext")
    return getattr(module, name)


def has_op(name: str) -> bool:
    return hasattr(importlib.import_module("mumoe_ext"), name)
