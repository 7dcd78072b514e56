"""The public `mumoe_ext` ops, looked up at call time.

Looking them up lazily avoids an import cycle (`mumoe_ext/__init__.py` imports this package) and
lets the compiled kernels be used as soon as they are built. While the compiled library is missing
(a source checkout before the build) the pure-torch twins of `mumoe_ext.reference` stand in, with a
one-time warning.
"""
from __future__ import annotations

import importlib
import warnings

_warned: set[str] = set()


def op(name: str):
    """`mumoe_ext.<name>`, or its reference twin when the compiled op is not available."""
    package = importlib.import_module("mumoe_ext")
    fn = getattr(package, name, None)
    if fn is not None:
        return fn
    reference = importlib.import_module("mumoe_ext.reference")
    if name not in _warned:
        _warned.add(name)
        warnings.warn(f"mumoe_ext.{name} is not available (extension not built?); "
                      f"using the pure-torch reference", RuntimeWarning, stacklevel=2)
    return getattr(reference, name)


def has_op(name: str) -> bool:
    return getattr(importlib.import_module("mumoe_ext"), name, None) is not None
