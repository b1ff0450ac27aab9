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
