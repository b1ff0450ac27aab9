"""The installed package holds every subpackage: pyproject.toml lists them by hand (package-dir maps spaces/ and
devices/ in), so a new folder not listed would be missing from a wheel while an editable install still works."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _listed() -> set[str]:
    # read by pattern, not tomllib: Python 3.10 is supported and has none
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    block = re.search(r"^packages = \[(.*?)\]", text, re.M | re.S)
    assert block is not None, "pyproject.toml has no packages = [...] list"
    return set(re.findall(r'"([\w.]+)"', block.group(1)))


def _on_disk() -> set[str]:
    return {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "designspace").rglob("__init__.py")}


def test_every_package_folder_is_listed_in_pyproject() -> None:
    missing = _on_disk() - _listed()
    assert not missing, f"add {sorted(missing)} to [tool.setuptools] packages in pyproject.toml"


def test_the_check_sees_the_rooms_of_evaluate() -> None:
    assert {"designspace.evaluate.measure", "designspace.evaluate.table", "designspace.analysis"} <= _on_disk()
