"""Options of the µ-MoE method, `sparsify(model, "mumoe", density, **options)` and
`mumoe eval --mumoe-options k=v,...`; ``mumoe-plus`` is µ-MoE with `PLUS` (docs/mumoe_plus.md).

- ``mean_shift`` (0 ≤ s ≤ 1, default 0): score ‖x_j − s·μ_j‖ instead of ‖x_j‖ and compensate
  each row for the prompt's mean, y = Ŵx + b + s·(W − Ŵ)μ (mumoe_linear.py).
- ``allocation`` ("uniform" | "owl"): the same density in every layer, or OWL's per-layer
  densities from weight outliers with ``owl_m`` (5) and ``owl_lambda`` (0.08) (owl.py).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class MuMoEOptions:
    mean_shift: float = 0.0
    allocation: str = "uniform"
    owl_m: float = 5.0
    owl_lambda: float = 0.08

    def as_dict(self) -> dict:
        return asdict(self)


PLAIN = MuMoEOptions()
PLUS = MuMoEOptions(mean_shift=0.75, allocation="owl")  # the current recommendation
NAMES = tuple(f.name for f in fields(MuMoEOptions))
ALLOCATIONS = ("uniform", "owl")


def _number(name, value, low, high, low_open=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"µ-MoE option {name} must be a number, got {value!r}")
    value = float(value)
    if not (low < value if low_open else low <= value) or not value <= high:
        bound = f"({low:g}, {high:g}]" if low_open else f"[{low:g}, {high:g}]"
        raise ValueError(f"µ-MoE option {name} must be in {bound}, got {value!r}")
    return value


def mumoe_options(method: str, opts: dict) -> MuMoEOptions:
    """Validated options of `method` ("mumoe" or "mumoe-plus"): `opts` override its defaults."""
    unknown = sorted(set(opts) - set(NAMES))
    if unknown:
        raise TypeError(f"sparsify: unexpected options {unknown} for method {method!r} "
                        f"(µ-MoE accepts {list(NAMES)})")
    base = (PLUS if method == "mumoe-plus" else PLAIN).as_dict()
    base.update(opts)
    if base["allocation"] not in ALLOCATIONS:
        raise ValueError(f"µ-MoE option allocation must be one of {ALLOCATIONS}, "
                         f"got {base['allocation']!r}")
    return MuMoEOptions(mean_shift=_number("mean_shift", base["mean_shift"], 0.0, 1.0),
                        allocation=base["allocation"],
                        owl_m=_number("owl_m", base["owl_m"], 0.0, float("inf"), low_open=True),
                        owl_lambda=_number("owl_lambda", base["owl_lambda"], 0.0, 0.5))


def parse_option_string(text: str) -> dict:
    """"mean_shift=0.5,allocation=owl" -> {"mean_shift": 0.5, "allocation": "owl"} (numbers where
    they parse); the option names are checked by `mumoe_options`."""
    out = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"--mumoe-options: expected key=value, got {item!r}")
        value = value.strip()
        try:
            out[key.strip()] = float(value)
        except ValueError:
            out[key.strip()] = value
    return out


def option_label(opts: dict) -> str | None:
    """"allocation=owl,mean_shift=0.75" (sorted), or None for no options."""
    return ",".join(f"{k}={opts[k]:g}" if isinstance(opts[k], float) else f"{k}={opts[k]}"
                    for k in sorted(opts)) or None
