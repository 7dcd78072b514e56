"""Argument types shared by every `mumoe` subcommand: comma lists, method names, densities and
counts, each rejected with the flag's name in argparse's error."""
from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable


def comma_list(text: str, flag: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"{flag}: expected a comma-separated list, got {text!r}")
    return items


def choice_list(text: str, flag: str, allowed: Iterable[str]) -> list[str]:
    allowed = list(allowed)
    items = comma_list(text, flag)
    bad = [m for m in items if m not in allowed]
    if bad:
        raise argparse.ArgumentTypeError(f"{flag}: unknown {bad}; choose from {allowed}")
    return items


def density(text: str, flag: str = "--density") -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{flag}: expected a number like 0.5, got {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"{flag}: values must be in (0, 1], got {value}")
    return value


def densities(text: str, flag: str = "--density") -> list[float]:
    return [density(t, flag) for t in comma_list(text, flag)]


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def as_list(value, parse: Callable[[str], list]):
    """argparse applies `type` to given values but not to string defaults: parse those here."""
    return parse(value) if isinstance(value, str) else value
