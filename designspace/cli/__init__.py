"""The ``designspace`` command line: one module per command group, each owning its subparsers and handlers;
:func:`main` only assembles them and turns errors into one line.

Errors a user can cause (a malformed file, an unknown name) print one line, ``error: file:line: path: problem
(fix: ...)``, and exit with status 2. Anything else is a bug: one line says so and where the full report was
written, and the exit status is 3; no traceback reaches the terminal.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence

from designspace import interrupts
from designspace.cli import analyze, catalog, deliver, lut, measure, search, spaces
from designspace.exceptions import DesignspaceError
from designspace.redact import redact

__all__ = ["main"]

#: the command groups, in the order ``designspace --help`` lists them
GROUPS = (catalog, spaces, measure, lut, search, analyze, deliver)


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error and exit status 2 (argparse's own status, without the usage block)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        line = " ".join(message.split())
        print(f"error: {self.prog}: {line[:500]} (fix: {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def parser() -> argparse.ArgumentParser:
    """The ``designspace`` argument parser, every command group's subparsers included."""
    p = _Parser(prog="designspace", description="Design-space explorer for efficient vision backbones.")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for group in GROUPS:
        group.register(sub)
    return p


def _crash_report(err: BaseException, argv: Sequence[str]) -> str:
    """Writes the traceback of an unexpected error to a file in the temporary folder; returns its path.

    The report is meant to be attached to a bug report, so credentials (a ``--storage`` password) are redacted.
    """
    fd, path = tempfile.mkstemp(prefix=f"designspace-error-{time.strftime('%Y%m%d-%H%M%S')}-", suffix=".txt")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(redact(f"designspace {' '.join(argv)}\n\n"))
        f.write(redact("".join(traceback.format_exception(type(err), err, err.__traceback__))))
    return path


def _one_line(text: str) -> str:
    return redact(" ".join(str(text).split()))


class _Redacting(logging.Filter):
    """Redacts credentials in every record the command line's log handler prints."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        return True


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status (0 ok, 1 a negative answer or a failed evaluation, 2 bad
    input, 3 an internal error, 130 interrupted). A process that trained among several torchrun processes ends
    here with that status instead (:func:`designspace.train.distributed.end_process` says why)."""
    code = _main(argv)
    dist = sys.modules.get("designspace.train.distributed")  # loaded only when this command trained
    if dist is not None:
        dist.end_process(code)
    return code


def _main(argv: Sequence[str] | None) -> int:
    p = parser()
    try:
        args = p.parse_args(argv)
    except SystemExit as stop:  # --help (0) or a usage error already printed as one line (2)
        return int(stop.code or 0)
    if args.version:
        from designspace import __version__

        print(__version__)
        return 0
    if args.command is None:
        p.print_help()
        return 2
    if not logging.getLogger("designspace").handlers:  # progress of long work, on stderr
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.addFilter(_Redacting())
        logging.getLogger("designspace").addHandler(handler)
        logging.getLogger("designspace").setLevel(logging.INFO)
    try:
        with interrupts.latched():  # a Ctrl-C that Python swallows in a finalizer still stops the command
            return int(args.func(args))
    except DesignspaceError as err:
        print(f"error: {_one_line(str(err))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader (head, less) went away: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except RecursionError:
        print("error: the input nests too deeply to process (fix: flatten the document)", file=sys.stderr)
        return 2
    except MemoryError:
        print("error: out of memory (fix: a smaller network, resolution or batch)", file=sys.stderr)
        return 2
    except Exception as err:  # last resort: a bug, never a traceback on the terminal
        where = _crash_report(err, sys.argv[1:] if argv is None else argv)
        print(f"error: internal error {type(err).__name__}: {_one_line(str(err))[:300]} (full report: {where}; "
              "please file it with the command that caused it)", file=sys.stderr)
        return 3
