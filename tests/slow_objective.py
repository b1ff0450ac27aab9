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


class _SwallowsCtrlC:
    """An object whose finalizer is running when Ctrl-C arrives: Python prints "Exception ignored in" and drops
    the ``KeyboardInterrupt``, as it does when the signal lands in a library's weak-reference callback."""

    def __del__(self) -> None:
        import os
        import signal

        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)  # the handler runs here, inside the finalizer


def ctrl_c_swallowed(arch: Any, model: Any) -> float:
    """:func:`slow`, but the first trial of the process gets a Ctrl-C that a finalizer swallows."""
    global _swallowed
    if not _swallowed:
        _swallowed = True
        _SwallowsCtrlC()  # dropped at once: its finalizer runs now
    return slow(arch, model)


_swallowed = False
