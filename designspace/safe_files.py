"""Writing under ``results/`` without following symbolic links.

A results folder is shared between people and machines (a study copied from a colleague, a network share), so a
file in it may be a symbolic link planted to make a writer overwrite something outside (``storage.txt`` pointing
at ``~/.bashrc``, a dangling ``archs/<fp>.yaml`` pointing where a new file would be created). The rules here:

* a folder designspace writes into, and each folder between it and the results directory, must not be a link
  (:func:`refuse_links`): the user is told once, in one line, and nothing is written;
* a file is written atomically (:func:`atomic_write`): into a new temporary file created exclusively
  (``O_EXCL``, which never follows a link) in the same folder, then renamed over the destination; a rename
  replaces a link at the destination, it never writes through it;
* the results directory itself may be a link (a user's choice, e.g. onto a larger disk).

Reads that must stay inside a study folder resolve their path there (``export``, the app's ``safe_path``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from designspace.exceptions import DesignspaceError

__all__ = ["atomic_write", "make_dirs", "refuse_links"]


def refuse_links(path: str | Path, root: str | Path) -> None:
    """Refuses ``path`` when it, or a folder between it and ``root`` (``root`` excluded), is a symbolic link.

    ``path`` need not exist. A ``path`` outside ``root`` is checked on its own components only.

    Raises:
        DesignspaceError: one line naming the link and the fix.
    """
    p, base = Path(path), Path(root)
    try:
        rel_parts = p.relative_to(base).parts
        current = base
    except ValueError:
        rel_parts, current = (p.name,), p.parent
    for part in rel_parts:
        current = current / part
        if current.is_symlink():
            raise DesignspaceError(f"{current} is a symbolic link (to {os.readlink(current)}): designspace never "
                                   "writes through links under its results folder (fix: replace the link by a real "
                                   "file or folder, or remove it)")


def make_dirs(path: str | Path, root: str | Path) -> Path:
    """Creates ``path`` (and its parents) below ``root`` after :func:`refuse_links`; returns it."""
    p = Path(path)
    refuse_links(p, root)
    p.mkdir(parents=True, exist_ok=True)
    refuse_links(p, root)  # a link swapped in between the check and the mkdir
    return p


def atomic_write(path: str | Path, data: str | bytes) -> None:
    """Writes ``data`` (text as UTF-8) to ``path`` atomically, never through a link.

    The data goes to a temporary file created exclusively beside ``path`` and is renamed over it, so a reader
    sees the old file or the new one, a kill mid-write leaves the old one whole, and a link at ``path`` is
    replaced rather than followed. The parent folder must exist and must not be a link.

    Raises:
        DesignspaceError: the parent folder is a symbolic link.
        OSError: the write failed (disk full, read-only folder); the temporary file is removed.
    """
    p = Path(path)
    if p.parent.is_symlink():
        raise DesignspaceError(f"{p.parent} is a symbolic link (to {os.readlink(p.parent)}): designspace never "
                               "writes through links under its results folder (fix: replace the link by a real "
                               "folder)")
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

