"""Perplexity harness: datasets with the published joining rules, windows, tables, the main job."""
from .datasets import DATASETS, DataNotFoundError, calibration_windows, eval_tokens, load_text
from .perplexity import MODES, perplexity, split_windows
from .runner import run_eval
from .tables import format_table, markdown_report, markdown_table

__all__ = ["DATASETS", "DataNotFoundError", "calibration_windows", "eval_tokens", "load_text",
           "MODES", "perplexity", "split_windows", "run_eval", "format_table", "markdown_report",
           "markdown_table"]
