"""lm-evaluation-harness integration (optional extra: ``pip install -e .[lm-eval]``).

`MuMoELM` (an `HFLM` subclass, lm-eval model type ``mumoe``) and `run_lm_eval` (the grid behind
``mumoe lm-eval``) need the `lm_eval` package and import it on first use; importing this package
alone does not, so the command line can list ``lm-eval`` without it. See docs/lm_eval.md.
"""
import importlib

WANDA_TASKS = ("boolq", "rte", "hellaswag", "winogrande", "arc_easy", "arc_challenge",
               "openbookqa")
INSTALL_HINT = "pip install 'lm-eval>=0.4.13,<0.5' (or pip install -e .[lm-eval])"

_LAZY = {"MuMoELM": "model", "is_prompt_dependent": "model", "prepare_model": "model",
         "run_lm_eval": "runner", "score_requests": "scoring", "model_input": "scoring",
         "MASK_SOURCES": "scoring"}
__all__ = ["WANDA_TASKS", "require_lm_eval", *_LAZY]


def require_lm_eval():
    """The `lm_eval` module, or an ImportError that says how to install it."""
    try:
        return importlib.import_module("lm_eval")
    except ImportError as e:
        raise ImportError(f"mumoe_ext.lm_eval needs lm-evaluation-harness: {INSTALL_HINT}") from e


def __getattr__(name):
    if name in _LAZY:
        if _LAZY[name] != "scoring":
            require_lm_eval()
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'mumoe_ext.lm_eval' has no attribute {name!r}")
