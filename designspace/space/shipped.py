"""The spaces shipped in ``spaces/*.yaml`` (installed as ``designspace.spaces``), loadable by name, and
:func:`load_space`: a Space from a file path or a shipped name."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from designspace._yaml import read_document
from designspace.exceptions import DocumentError, did_you_mean
from designspace.space.core import Space

__all__ = ["load", "load_space", "names"]


def names() -> list[str]:
    """Names of the shipped spaces (file stems), sorted."""
    root = resources.files("designspace.spaces")
    return sorted(e.name[: -len(".yaml")] for e in root.iterdir() if e.name.endswith(".yaml"))


def load(name: str) -> Space:
    """The shipped space ``name`` (``"mobile"``, ``"tiny"``, ...).

    Raises:
        DocumentError: no such file and no such shipped space (the message lists them).
    """
    if name not in names():
        raise DocumentError(f"{name!r} is neither a Space file nor a shipped space", file=name,
                            fix=did_you_mean(name, names())
                            + f"give a path to a .yaml file or one of: {', '.join(names())}")
    entry = resources.files("designspace.spaces") / f"{name}.yaml"
    return Space.from_yaml(entry.read_text(encoding="utf-8"), file=f"spaces/{name}.yaml")


def load_space(path: str | Path) -> Space:
    """Reads a Space YAML file (or a shipped space by name: ``"mobile"``, ``"tiny"``, ...).

    Raises:
        DocumentError: unreadable, malformed or invalid (with file, line, field path and fix).
    """
    p = Path(path)
    if not p.exists() and p.suffix not in (".yaml", ".yml"):
        return load(str(path))
    return Space.from_yaml(read_document(p, "Space file"), file=str(p))
