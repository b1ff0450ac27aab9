"""Budgets: ``1.1ms`` (latency), ``8M`` (parameters), ``1.5G`` (MACs), as the CLI and Space files write them."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = ["METRICS", "UNITS", "Budget", "parse_budget"]

#: unit -> metric. Latency in milliseconds, parameters in millions, MACs in billions.
UNITS = {"ms": "latency_ms", "M": "params_m", "G": "macs_g"}
METRICS = tuple(UNITS.values())
_HINTS = {"s": "ms (1.1ms)", "us": "ms (0.9ms)", "µs": "ms (0.9ms)", "m": "M for parameters or ms for latency",
          "K": "M (0.5M)", "k": "M (0.5M)", "g": "G", "GMACs": "G", "GFLOPs": "G", "GMAC": "G", "MB": "M",
          "B": "G for MACs or M for parameters", "Mparams": "M", "mb": "M"}
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([^\s0-9.][^\s]*)?\s*$")


@dataclass(frozen=True)
class Budget:
    """An upper bound on one metric.

    Attributes:
        metric: ``"latency_ms"``, ``"params_m"`` or ``"macs_g"``.
        limit: the bound in the metric's unit (milliseconds, millions, billions).
    """

    metric: str
    limit: float

    def __str__(self) -> str:
        return f"{self.metric} <= {self.limit:g}"

    @property
    def text(self) -> str:
        """The CLI form: ``1.1ms``, ``8M``, ``1.5G``."""
        unit = next(u for u, m in UNITS.items() if m == self.metric)
        return f"{self.limit:g}{unit}"


def parse_budget(text: str) -> Budget:
    """``"1.1ms"`` -> ``Budget("latency_ms", 1.1)``; ``"8M"`` -> params; ``"1.5G"`` -> MACs.

    Raises:
        ValueError: ``(problem, fix)`` for a missing number, a missing or unknown unit, a bound <= 0.
    """
    m = _PATTERN.match(str(text))
    if not m:
        raise ValueError(f"cannot read the budget {text!r}", "write a number and a unit: 1.1ms, 8M or 1.5G")
    number, unit = float(m.group(1)), m.group(2)
    if not math.isfinite(number):  # 1e309 reads as inf: no bound at all, never what a user means
        raise ValueError(f"the budget {text!r} is not a finite number", "write a bound such as 1.1ms, 8M or 1.5G")
    if not unit:
        raise ValueError(f"the budget {text!r} has no unit", "add ms (latency), M (parameters) or G (MACs)")
    if unit not in UNITS:
        hint = _HINTS.get(unit)
        raise ValueError(f"unknown budget unit {unit!r} in {text!r}",
                         (f"use {hint}; " if hint else "") + "units: ms (latency), M (parameters), G (MACs)")
    if number <= 0:
        raise ValueError(f"a budget must be positive, got {text!r}", "use a bound > 0")
    return Budget(UNITS[unit], number)
