"""User objectives for the search tests (imported as ``slow_objective:...``)."""

from __future__ import annotations

import time
from typing import Any


def slow(arch: Any, model: Any) -> float:
    """A stand-in for a short training run: takes a while, returns a score."""
    time.sleep(0.4)
    return float(sum(p.numel() for p in model.parameters())) / 1e6


def broken(arch: Any, model: Any) -> float:
    """A user objective that fails."""
    raise RuntimeError("out of patience")


def slower(arch: Any, model: Any) -> float:
    """:func:`slow` taking ``$SLOW_OBJECTIVE_S`` seconds (default 2): a worker is almost always inside a trial."""
    import os

    time.sleep(float(os.environ.get("SLOW_OBJECTIVE_S", "2")))
    return float(sum(p.numel() for p in model.parameters())) / 1e6
