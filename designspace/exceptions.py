"""Exceptions raised by designspace.

Every error a user can cause derives from :class:`DesignspaceError`; the command line prints its
``str()`` as one line and exits with status 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["DesignspaceError", "DocumentError", "RegistryError", "closest", "did_you_mean"]


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate nearest to ``name`` by edit similarity, or ``None`` if none is close."""
    match = difflib.get_close_matches(str(name), [str(c) for c in candidates], n=1, cutoff=0.5)
    return match[0] if match else None


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """``"did you mean 'x'? "`` for the closest candidate to ``name``, or ``""``: the start of a fix."""
    near = closest(name, candidates)
    return f"did you mean {near!r}? " if near else ""


class DesignspaceError(Exception):
    """Base class of every error designspace raises on bad input."""


class RegistryError(DesignspaceError):
    """A registry lookup or registration failed (unknown or duplicate name).

    Attributes:
        problem: what is wrong.
        fix: how to repair it (the closest known name, the known names).
    """

    def __init__(self, problem: str, fix: str = "") -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(problem + (f" (fix: {fix})" if fix else ""))


class DocumentError(DesignspaceError):
    """A YAML document (an Arch file, later a Space file) is malformed.

    The message has the form ``file:line: path: problem (fix: ...)`` so that editors and terminals
    can jump to the offending line.

    Attributes:
        file: the document's path, or ``"<string>"`` when it was given as text.
        line: 1-based line of the offending node, or ``None`` when unknown.
        path: dotted path of the field (``stages.2.blocks.0.kernel_size``), ``""`` for the root.
        problem: what is wrong, stating the rule and the value received.
        fix: how to repair it.
    """

    def __init__(
        self, problem: str, *, file: str = "<string>", line: int | None = None, path: str = "",
        fix: str = "",
    ) -> None:
        self.file = file
        self.line = line
        self.path = path
        self.problem = problem
        self.fix = fix
        super().__init__(self._format())

    def _format(self) -> str:
        file = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in self.file[:300])  # one line, always
        where = file if self.line is None else f"{file}:{self.line}"
        head = f"{where}: {self.path}: " if self.path else f"{where}: "
        return head + self.problem + (f" (fix: {self.fix})" if self.fix else "")
