"""Ctrl-C that is never lost (designspace/interrupts.py): an interrupt that Python swallows in a finalizer
(as it did in SQLAlchemy's weak-reference callback during a search, which then ran to its end and exited 0)
still stops the command at the next safe point."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from slow_objective import _SwallowsCtrlC
from test_search import _default_sigint

from designspace import interrupts

TESTS = Path(__file__).parent


@pytest.fixture(autouse=True)
def python_handles_ctrl_c() -> Any:
    """Python's own SIGINT handler, as in a foreground terminal (a test run started in the background inherits
    SIGINT ignored, and then nothing here would see a signal)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_ctrl_c_swallowed_by_a_finalizer_is_raised_at_the_next_check(monkeypatch: pytest.MonkeyPatch) -> None:
    reported: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: reported.append(u.exc_type))
    with interrupts.latched():
        _SwallowsCtrlC()  # swallowed in the finalizer: without the latch the interrupt would be gone
        with pytest.raises(KeyboardInterrupt):
            interrupts.check()
    interrupts.check()  # outside the latch: forgotten, the default handler is back
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert reported == []  # remembered, so Python's "Exception ignored" traceback is not printed
    assert sys.unraisablehook is not None and sys.unraisablehook.__name__ == "<lambda>"  # the hook is given back


class _FailsInFinalizer:
    def __del__(self) -> None:
        raise ValueError("a finalizer's own error")


def test_other_errors_in_finalizers_are_still_reported_under_the_latch(monkeypatch: pytest.MonkeyPatch) -> None:
    reported: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: reported.append(u.exc_type))
    with interrupts.latched():
        _FailsInFinalizer()
    assert reported == [ValueError]


def test_a_ctrl_c_raises_at_once_under_the_latch() -> None:
    with interrupts.latched(), pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)
    interrupts.check()


def test_another_handler_is_left_alone() -> None:
    seen: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
    try:
        with interrupts.latched():
            assert signal.getsignal(signal.SIGINT) is not interrupts._on_sigint
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)
            interrupts.check()  # not latched: the host's handler took it
        assert seen == [signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_search_whose_ctrl_c_was_swallowed_stops_after_that_trial(tmp_path: Path) -> None:
    results = tmp_path / "results"
    env = {**os.environ, "DESIGNSPACE_RESULTS": str(results), "PYTHONPATH": str(TESTS)}
    proc = subprocess.run([sys.executable, "-m", "designspace", "search", "tiny", "--trials", "6", "--objective",
                           "slow_objective:ctrl_c_swallowed", "--no-progress"], env=env, capture_output=True,
                          text=True, timeout=600, check=False, preexec_fn=_default_sigint)
    # the interrupt was swallowed in the first trial's finalizer, and Python's report of it is kept quiet
    assert proc.returncode == 130 and "stopped: interrupted" in proc.stdout, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
    assert (results / "tiny" / "trials.csv").exists()
