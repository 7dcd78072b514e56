"""`mumoe eval --resume`: which jobs of a grid an earlier, interrupted run already finished.

A cell is one record: (job, dataset, mode) plus every setting that changes its number (model,
seqlen, max_windows, seed, dtype, nsamples of a calibrated method, the text's source). A job
(method, calib, density or N:M pattern) is finished when all its cells are in the file with the same settings;
its records are kept and it is skipped. Records of unfinished jobs of the grid are dropped (the job
runs again); records of cells outside the grid are kept as they are.
"""
from __future__ import annotations

import json
import os

from ..models.sparsify import ONLINE_METHODS
from .datasets import dataset_label

_KEYS = ("model", "method", "calib", "density", "pattern", "dataset", "mode", "seqlen", "max_windows", "seed",
         "dtype", "nsamples", "source", "options")


def cell_key(settings: dict, method, calib, sparsity, nsamples, dataset, source, mode) -> tuple:
    """sparsity: a density, or an "N:M" pattern (its record holds density N/M and the pattern)."""
    if isinstance(sparsity, str):
        n, m = (int(t) for t in sparsity.split(":"))
        density, pattern = n / m, sparsity
    else:
        density, pattern = float(sparsity), None
    return (settings["model"], method, dataset_label(calib) if calib else None, density, pattern,
            dataset, mode, settings["seqlen"], settings["max_windows"], settings["seed"],
            settings["dtype"], nsamples if calib else None, source,
            settings.get("options") if method in ONLINE_METHODS else None)


def record_key(record: dict) -> tuple:
    return tuple(float(record[k]) if k == "density" else record.get(k) for k in _KEYS)


def _identity(key: tuple) -> tuple:  # the cell without its settings: (model, method, calib, density, pattern, dataset, mode, options)
    return key[:7] + key[-1:]


def load_finished(out: str | None, cells: dict) -> tuple[list, set]:
    """(records to keep, finished jobs) from `out`; cells: {job: [cell_key, ...]}."""
    if not out or not os.path.exists(out):
        return [], set()
    with open(out) as f:
        old = json.load(f)
    if not isinstance(old, list):
        raise ValueError(f"--resume: {out} does not hold a list of records")
    by_key = {record_key(r): r for r in old}
    done = {job for job, keys in cells.items() if keys and all(k in by_key for k in keys)}
    ours = {_identity(k) for keys in cells.values() for k in keys}
    keep_keys = {k for job in done for k in cells[job]}
    records = [r for r in old if record_key(r) in keep_keys or _identity(record_key(r)) not in ours]
    return records, done


def save_records(records: list, out: str | None) -> None:
    """Writes the records to `out` (if given) atomically: an interrupted run leaves the previous
    file whole, so `--resume` always reads a complete one."""
    if out:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        tmp = out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(records, f, indent=1)
        os.replace(tmp, out)
