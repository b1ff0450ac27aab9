"""Malformed Space files: one line with the file, line, field path and fix; exit 2; no traceback.

Each file in ``data/bad_spaces/`` starts with ``# expect: LINE: TEXT | FIX``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from designspace import DocumentError
from designspace.cli import main
from designspace.space import load_space

BAD = sorted((Path(__file__).parent / "data" / "bad_spaces").glob("*.yaml"))


def _expectation(path: Path) -> tuple[int, str, str]:
    first = path.read_text().splitlines()[0]
    line, rest = first[len("# expect: "):].split(": ", 1)
    text, fix = (part.strip() for part in rest.split(" | "))
    return int(line), text, fix


def test_there_are_at_least_25_cases() -> None:
    assert len(BAD) >= 25


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_space_message(path: Path) -> None:
    line, text, fix = _expectation(path)
    with pytest.raises(DocumentError) as info:
        load_space(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: {text}"), message
    assert fix in info.value.fix, message
    assert "\n" not in message


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_validate_exits_2_with_one_line(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}:"), captured.err
    assert "Traceback" not in captured.err


def test_unknown_shipped_space(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "mobil"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'mobile'" in err and "tiny" in err
