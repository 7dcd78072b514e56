"""FLOPs and MACs of a forward at each density, from a config alone (`mumoe flops`,
docs/flops.md)."""
from .configs import load_config, opt_13b_config
from .counter import FlopsReport, Line, count_flops, kept_weights, meta_model

__all__ = ["count_flops", "FlopsReport", "Line", "kept_weights", "meta_model", "load_config",
           "opt_13b_config"]
