"""Reads a pytest-benchmark JSON of this suite into groups: one group per (op, device, dtype,
shape, density, T), holding every implementation's timing of those same inputs.

Ratios use each implementation's *minimum* over its rounds (the least disturbed run on a shared
machine); medians are kept for the tables.
"""
from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path

KEY_FIELDS = ("op", "device", "dtype", "d_out", "d_in", "density", "T", "model")
DTYPE_ORDER = {"fp32": 0, "bf16": 1, "fp16": 2}


@dataclass
class Timing:
    min_s: float
    median_s: float
    rounds: int
    iterations: int
    extra: dict


@dataclass
class Group:
    op: str
    device: str
    dtype: str
    d_out: int
    d_in: int
    density: float
    T: int
    model: str
    times: dict = field(default_factory=dict)      # impl -> Timing
    skipped: dict = field(default_factory=dict)    # impl -> reason (left out by the sweep)

    @property
    def shape(self) -> str:
        return f"{self.d_out}x{self.d_in}"

    @property
    def square(self) -> bool:
        return self.d_out == self.d_in and not self.model

    def ms(self, impl: str) -> float | None:
        t = self.times.get(impl)
        return None if t is None else t.min_s * 1e3

    def ratio(self, num: str, den: str) -> float | None:
        """time(num) / time(den), from the minima; None when either is missing."""
        a, b = self.times.get(num), self.times.get(den)
        return None if a is None or b is None else a.min_s / b.min_s

    def sort_key(self):
        """Table order: the main sweep (fp32, density 0.5) first, then variations."""
        return (self.device, DTYPE_ORDER.get(self.dtype, 9), self.density != 0.5, self.density,
                self.T, bool(self.model), self.d_out * self.d_in, self.d_out)


@dataclass
class Run:
    path: Path
    machine: dict
    commit: dict
    datetime: str
    groups: list

    def of(self, op: str, **fixed) -> list:
        """Groups of `op` whose fields equal `fixed`, in table order."""
        out = [g for g in self.groups if g.op == op
               and all(getattr(g, k) == v for k, v in fixed.items())]
        return sorted(out, key=Group.sort_key)

    def find(self, op: str, **fixed) -> Group | None:
        found = self.of(op, **fixed)
        return found[0] if found else None


def _groups(data) -> dict:
    groups: dict = {}
    for bench in data["benchmarks"]:
        info = bench.get("extra_info", {})
        if not all(k in info for k in KEY_FIELDS):
            continue  # not one of this suite's cases
        key = tuple(info[k] for k in KEY_FIELDS)
        g = groups.setdefault(key, Group(**dict(zip(KEY_FIELDS, key))))
        st = bench["stats"]
        g.times[info["impl"]] = Timing(st["min"], st["median"], st["rounds"], st["iterations"], info)
        g.skipped.update(info.get("skipped_baselines") or {})
    return groups


def run_name(path: Path) -> str:
    """cpu_full for cpu_full.json or cpu_full.json.gz (committed runs are gzipped)."""
    name = path.name
    for suffix in (".gz", ".json"):
        name = name.removesuffix(suffix)
    return name


def load(*paths) -> Run:
    """One run, or several merged (e.g. a CPU and a CUDA run). A group measured in more than one
    file is taken whole from the last one, so its ratios still come from a single run."""
    groups, first = {}, None
    for path in map(Path, paths):
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        data = json.loads(raw)
        first = first or (path, data)
        groups.update(_groups(data))
    path, data = first
    return Run(path, data.get("machine_info", {}), data.get("commit_info", {}),
               data.get("datetime", ""), sorted(groups.values(), key=Group.sort_key))
