"""Malformed Arch files: one line naming the file, the line, the field path and the fix; exit 2.

Each file in ``data/bad_archs/`` starts with ``# expect: LINE: TEXT | FIX``: the error must read
``FILE:LINE: TEXT...`` and its fix must contain ``FIX``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from designspace import Arch, DocumentError
from designspace.cli import main

BAD = sorted((Path(__file__).parent / "data" / "bad_archs").glob("*.yaml"))


def _expectation(path: Path) -> tuple[int, str, str]:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} lacks its expectation line"
    line, rest = first[len("# expect: "):].split(": ", 1)
    text, fix = (part.strip() for part in rest.split(" | "))
    return int(line), text, fix


def test_there_are_many_cases() -> None:
    assert len(BAD) >= 20


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_arch_message(path: Path) -> None:
    line, text, fix = _expectation(path)
    with pytest.raises(DocumentError) as info:
        Arch.from_file(path)
    err = info.value
    message = str(err)
    assert message.startswith(f"{path}:{line}: {text}"), message
    assert fix in err.fix, message
    assert "\n" not in message


@pytest.mark.parametrize("path", BAD[:6], ids=[p.stem for p in BAD[:6]])
def test_cli_exits_2_with_one_line(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}:"), captured.err
    assert "Traceback" not in captured.err


def test_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "no/such/arch.yaml"]) == 2
    assert "cannot read the Arch file: No such file" in capsys.readouterr().err


def test_unknown_zoo_name_suggests(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "iformer_mm"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'iformer_m'" in err and "mobilenetv2_100" in err


def test_python_constructed_arch_is_validated() -> None:
    from designspace import Layer, Stage

    with pytest.raises(DocumentError, match=r"stages\.0\.blocks\.0\.heads: 4 heads do not divide the width 30"):
        Arch(stem=Layer("smt_stem"), stages=(Stage(width=30, stride=1, blocks=(Layer("sam"),)),),
             head=Layer("norm_pool_head"))
    with pytest.raises(DocumentError, match="has no parameter 'kernal'"):
        Layer.of("mbconv", kernal=3)
    with pytest.raises(DocumentError, match="unknown component 'mbcon'"):
        Layer("mbcon")


@pytest.mark.parametrize(("content", "text"), [(b"\xff\xfe\x00bad", "not UTF-8"), (b"", "the document is empty"),
                                               (b"# only a comment\n", "the document is empty")])
def test_unreadable_or_empty(tmp_path: Path, content: bytes, text: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "a.yaml"
    path.write_bytes(content)
    assert main(["show", str(path)]) == 2
    err = capsys.readouterr().err
    assert text in err and len(err.strip().splitlines()) == 1
