"""Exceptions raised by designspace.

Every error a user can cause derives from :class:`DesignspaceError`; the command line prints its
``str()`` as one line and exits with status 2.
"""

from __future__ import annotations

__all__ = ["DesignspaceError", "DocumentError", "RegistryError"]


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
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        head = f"{where}: {self.path}: " if self.path else f"{where}: "
        return head + self.problem + (f" (fix: {self.fix})" if self.fix else "")
