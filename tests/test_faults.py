"""Faults without surprises (issue 34): results read back checked, locks per database, full disks, read-only
folders, dead workers, concurrent measurements of one entry."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from designspace.cli import main

TESTS = Path(__file__).parent
COUNTS = ["--objective", "log10_macs", "--objective", "params", "--no-progress"]


def _cli(results: Path, *argv: str, wait: bool = True, env: dict[str, str] | None = None) -> Any:
    env = {**os.environ, "DESIGNSPACE_RESULTS": str(results), "PYTHONPATH": str(TESTS), **(env or {})}
    cmd = [sys.executable, "-m", "designspace", *argv]
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)


# ------------------------------------------------------------------------------------ results read back
@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small counts-only study's results folder (copied by each test that spoils it)."""
    results = tmp_path_factory.mktemp("written") / "results"
    run = _cli(results, "search", "tiny", "--trials", "4", *COUNTS)
    assert run.returncode == 0, run.stderr
    return results


@pytest.fixture
def results(written: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    copy = tmp_path / "results"
    shutil.copytree(written, copy)
    monkeypatch.setenv("DESIGNSPACE_RESULTS", str(copy))
    return copy


def _summary(edit: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def spoil(folder: Path) -> None:
        data = json.loads((folder / "summary.json").read_text())
        edit(data)
        (folder / "summary.json").write_text(json.dumps(data))
    return spoil


def _text(name: str, change: Callable[[str], str]) -> Callable[[Path], None]:
    def spoil(folder: Path) -> None:
        (folder / name).write_text(change((folder / name).read_text()))
    return spoil


def _csv_cell(column: str, value: str) -> Callable[[str], str]:
    def change(text: str) -> str:
        lines = text.splitlines(keepends=True)
        header = lines[0].rstrip("\n").split(",")
        cells = lines[1].rstrip("\n").split(",")  # the first trial's simple cells come before any quoted one
        cells[header.index(column)] = value
        lines[1] = ",".join(cells) + "\n"
        return "".join(lines)
    return change


SPOILS = {
    "summary truncated": ("summary.json", _text("summary.json", lambda t: t[: len(t) // 2])),
    "summary not an object": ("summary.json", _text("summary.json", lambda t: "[1, 2]\n")),
    "summary objectives mistyped": ("summary.json", _summary(lambda d: d["settings"].update(objectives="latency"))),
    "summary best mistyped": ("summary.json", _summary(lambda d: d.update(best=[{"number": "two"}]))),
    "summary trials mistyped": ("summary.json", _summary(lambda d: d.update(trials="4"))),
    "trials header only": ("trials.csv", _text("trials.csv", lambda t: t.splitlines(keepends=True)[0])),
    "trials truncated": ("trials.csv", _text("trials.csv", lambda t: t[: len(t) - 40])),
    "trials empty": ("trials.csv", _text("trials.csv", lambda t: "")),
    "trials state mistyped": ("trials.csv", _text("trials.csv", _csv_cell("state", "DONE"))),
    "trials number mistyped": ("trials.csv", _text("trials.csv", _csv_cell("number", "x1"))),
    "trials objective mistyped": ("trials.csv", _text("trials.csv", _csv_cell("params_m", "small"))),
    "trials row duplicated": ("trials.csv", _text("trials.csv", lambda t: t + t.splitlines(keepends=True)[1])),
    "pareto truncated": ("pareto.csv", _text("pareto.csv", lambda t: t[: len(t) - 40])),
}


@pytest.mark.parametrize("case", sorted(SPOILS))
def test_a_spoiled_results_file_is_one_line_naming_it(results: Path, capsys: pytest.CaptureFixture[str],
                                                      case: str) -> None:
    name, spoil = SPOILS[case]
    spoil(results / "tiny")
    assert main(["pareto", "tiny"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and str(results / "tiny" / name) in lines[0] and "fix: rerun the search" in lines[0], \
        captured.err
    assert "internal error" not in captured.err and "Traceback" not in captured.err


@pytest.mark.parametrize("case", ["summary best mistyped", "trials row duplicated", "trials header only"])
def test_export_and_the_app_refuse_spoiled_results_too(results: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str], case: str) -> None:
    from designspace.app.data import load_study
    from designspace.exceptions import DesignspaceError

    name, spoil = SPOILS[case]
    spoil(results / "tiny")
    assert main(["export", "tiny", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and name in err and "internal error" not in err, err
    with pytest.raises(DesignspaceError, match=name.replace(".", r"\.")):
        load_study(results, "tiny")


def test_intact_results_still_read(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pareto", "tiny"]) == 0
    assert "feasible Pareto-optimal trials of 4" in capsys.readouterr().out
