"""Ctrl-C that is never lost.

Python raises the ``KeyboardInterrupt`` of a SIGINT in whatever code runs at that moment; when that is a
finalizer or a weak-reference callback (SQLAlchemy's, during a search's database work), Python prints
"Exception ignored in ..." and the interrupt is gone: the search then ran to its end and exited 0 (seen in the
test suite under load, 1 run in 4). While :func:`latched` is active, a SIGINT still raises at once as by default,
and is also remembered; :func:`check`, called where stopping is safe (between trials, between training
batches), raises it again if it was swallowed. Python's "Exception ignored" report of such a swallowed
interrupt (a traceback on the user's terminal, for a Ctrl-C that is not lost) is kept quiet while latched.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["check", "latched"]

_pending = False


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    global _pending
    _pending = True
    raise KeyboardInterrupt


@contextmanager
def latched() -> Iterator[None]:
    """Remembers each Ctrl-C (SIGINT) while active, for :func:`check`. Does nothing outside the main thread or when
    someone else already handles SIGINT (a host application's own handler is left alone)."""
    global _pending
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    _pending = False
    previous = signal.signal(signal.SIGINT, _on_sigint)
    report = sys.unraisablehook

    def quiet(unraisable: sys.UnraisableHookArgs) -> None:
        # a Ctrl-C raised inside a finalizer or weak-reference callback: remembered (check() raises it again), so
        # Python's "Exception ignored ... Traceback" report of it would only alarm; anything else is reported
        if not (_pending and unraisable.exc_type is KeyboardInterrupt):
            report(unraisable)

    sys.unraisablehook = quiet
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        sys.unraisablehook = report
        _pending = False


def check() -> None:
    """Raises ``KeyboardInterrupt`` when a Ctrl-C came under :func:`latched` (whether or not someone swallowed the
    first one); a no-op otherwise. Cheap: one global read."""
    if _pending:
        raise KeyboardInterrupt
