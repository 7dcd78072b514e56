"""What each sweep measures: one flat, ordered list of cases per op.

A case is one (op, impl, device, dtype, shape, density, T) point. Cases that differ only in `impl`
form a *group* (same inputs, ours vs the torch baselines); they sit next to each other so the
cached inputs are reused and the ratios in the report come from back-to-back measurements.

Sweeps: "quick" (default: seconds), "targets" (issue 4's 4096x4096 target points), "full".
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

SWEEPS = ("quick", "targets", "full")
DEVICES = ("cpu", "cuda")

# Weight shapes (d_out, d_in) of real MLP layers: nn.Linear(in, out).weight is (out, in).
MODEL_SHAPES = {
    "OPT-125M fc1": (3072, 768),
    "OPT-125M fc2": (768, 3072),
    "Llama-7B up/gate": (11008, 4096),
    "Llama-7B down": (4096, 11008),
}
SQUARE = (512, 1024, 2048, 4096, 8192, 16384)
TARGET = 4096
TARGET_POINTS = {("wanda_mask", 0): ("fp32",), ("sparse_linear", 1): ("fp32", "bf16"),
                 ("wanda_linear", 128): ("fp32", "bf16")}  # (op, T) -> dtypes

# On CPU these torch baselines take 15-60 s per call above this many weights (measured on the
# 2 shared cores), so the sweep leaves them out there; topk, the fastest, stays as the reference.
SLOW_BASELINE_MAX_NUMEL = 8192 * 8192
SLOW_BASELINES = {"wanda_mask": ("sort", "kthvalue"), "wanda_linear": ("torch_topk",)}

IMPLS = {
    "wanda_mask": ("ours", "sort", "topk", "kthvalue"),
    "sparse_linear": ("ours", "F.linear"),
    "wanda_linear": ("ours", "F.linear", "torch_topk"),
}
# Our kernel on a forced CPU instruction-set path (mumoe_ext.cpu_isa), at the target size only.
ISA_IMPLS = ("ours@avx2", "ours@scalar")


@dataclass(frozen=True)
class Case:
    op: str
    impl: str
    device: str
    dtype: str
    d_out: int
    d_in: int
    density: float
    T: int = 0            # tokens of x; 0 for the selection (norms come from 128 tokens)
    model: str = ""       # "Llama-7B down" for a real layer shape, "" for a square one

    @property
    def shape(self) -> str:
        return f"{self.d_out}x{self.d_in}"

    @property
    def id(self) -> str:
        t = f"-T{self.T}" if self.T else ""
        return f"{self.device}-{self.dtype}-{self.shape}-d{self.density}{t}-{self.impl}"

    def group(self) -> str:
        """pytest-benchmark group: everything but the implementation."""
        t = f" T={self.T}" if self.T else ""
        return f"{self.op} {self.device} {self.dtype} {self.shape} density={self.density}{t}"

    def is_target_point(self) -> bool:
        """One of issue 4's target groups (4096x4096, density 0.5; see targets.py)."""
        if self.d_out != TARGET or self.d_in != TARGET or self.density != 0.5 or self.model:
            return False
        return (self.op, self.T) in TARGET_POINTS and self.dtype in TARGET_POINTS[self.op, self.T]

    def as_params(self) -> dict:
        return asdict(self)


def skipped_baselines(op: str, device: str, d_out: int, d_in: int) -> dict:
    """{impl: reason} for the baselines this sweep leaves out of a group (shown in the report)."""
    if device != "cpu" or d_out * d_in <= SLOW_BASELINE_MAX_NUMEL:
        return {}
    return {impl: f"{impl}: skipped on CPU above 8192x8192 weights (15-60 s per call on 2 cores)"
            for impl in SLOW_BASELINES.get(op, ())}


def _shapes(square, models=()):
    return [(d, d, "") for d in square] + [(*MODEL_SHAPES[m], m) for m in models]


def _group(op, device, dtype, shape, density, T=0, isa=False):
    d_out, d_in, model = shape
    skip = skipped_baselines(op, device, d_out, d_in)
    impls = [i for i in IMPLS[op] if i not in skip]
    if isa and device == "cpu":
        impls += ISA_IMPLS
    return [Case(op, i, device, dtype, d_out, d_in, density, T, model) for i in impls]


def _quick(op, device):
    shape = _shapes([1024])[0]
    if op == "wanda_mask":
        return _group(op, device, "fp32", shape, 0.5)
    if op == "sparse_linear":
        return [c for T in (1, 128) for c in _group(op, device, "fp32", shape, 0.5, T)]
    return _group(op, device, "fp32", shape, 0.5, 128)


def _targets(op, device):
    shape = _shapes([TARGET])[0]
    if op == "wanda_mask":
        return _group(op, device, "fp32", shape, 0.5)
    if op == "sparse_linear":
        return [c for dt in ("fp32", "bf16") for c in _group(op, device, dt, shape, 0.5, 1)]
    return [c for dt in ("fp32", "bf16") for c in _group(op, device, dt, shape, 0.5, 128)]


def _full(op, device):
    every = _shapes(SQUARE, MODEL_SHAPES)
    target = _shapes([TARGET])[0]
    out = []
    if op == "wanda_mask":
        for s in every:  # Figure 3: time vs size
            out += _group(op, device, "fp32", s, 0.5, isa=s == target)
        for dens in (0.2, 0.8):
            out += _group(op, device, "fp32", target, dens)
        for dt in ("bf16", "fp16"):
            out += _group(op, device, dt, target, 0.5)
    elif op == "sparse_linear":
        for dt in ("fp32", "bf16"):
            for s in every:
                for T in (1, 128):
                    out += _group(op, device, dt, s, 0.5, T, isa=s == target and T == 1)
            for T in (4, 8, 32):
                out += _group(op, device, dt, target, 0.5, T)
            for dens in (0.2, 0.8):
                out += _group(op, device, dt, target, dens, 1)
        for T in (1, 128):
            out += _group(op, device, "fp16", target, 0.5, T)
    else:  # wanda_linear
        for dt in ("fp32", "bf16"):
            for s in every:
                out += _group(op, device, dt, s, 0.5, 128, isa=dt == "fp32" and s == target)
            for T in (1, 8, 32, 512, 2048):
                out += _group(op, device, dt, target, 0.5, T)
        for dens in (0.2, 0.8):
            out += _group(op, device, "fp32", target, dens, 128)
        out += _group(op, device, "fp16", target, 0.5, 128)
    return out


def cases(op: str, sweep: str, devices=DEVICES) -> list:
    if sweep not in SWEEPS:
        raise ValueError(f"unknown sweep {sweep!r}; choose one of {', '.join(SWEEPS)}")
    make = {"quick": _quick, "targets": _targets, "full": _full}[sweep]
    return [c for dev in devices for c in make(op, dev)]
