"""Hostile input (issue 15): every loader and every command-line parser answers bad input with one line and
exit status 2, in bounded time and memory, touching nothing outside the results folder.

The per-class tests run the command line in a fresh process and measure that process: the time of the
command itself (the imports before it are the same for any input) and its peak resident memory. The fuzz
tests are property-based (Hypothesis, derandomized so every run draws the same cases): a few hundred cases
in the default run, thousands under ``-m slow``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from designspace.cli import main
from designspace.exceptions import DesignspaceError

ROOT = Path(__file__).resolve().parent.parent
TINY = (ROOT / "spaces" / "tiny.yaml").read_text(encoding="utf-8")
ZOO_ARCH = (ROOT / "spaces" / "zoo" / "emo_1m.yaml").read_text(encoding="utf-8")

# --------------------------------------------------------------------------------------- one test per class
_RUNNER = """
import json, sys, time
from designspace.cli import main
import designspace.space, designspace.network  # what the command imports anyway
t = time.perf_counter()
rc = main(sys.argv[1:])
seconds = time.perf_counter() - t
# this process's own peak: VmHWM starts anew at exec (ru_maxrss would carry over the parent's, pytest's, peak)
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"rc": rc, "seconds": seconds, "peak_mb": hwm / 1024}), file=sys.stdout)
"""


def _run_cli(tmp_path: Path, *args: str) -> tuple[dict[str, float], str]:
    env = {**os.environ, "DESIGNSPACE_RESULTS": str(tmp_path / "results")}
    proc = subprocess.run([sys.executable, "-c", _RUNNER, *args], capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=120)
    assert proc.stdout.strip(), proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def _bomb() -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 10):  # 10**10 values once expanded
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\nname: bomb\n"


HOSTILE = {
    "alias_bomb": _bomb(),
    "deep_flow": "name: x\nstages: " + "[" * 50_000 + "]" * 50_000 + "\n",
    "deep_block": "".join(" " * (2 * i) + f"k{i}:\n" for i in range(200)) + " " * 400 + "v: 1\n",
    "huge_file": "name: x\nmeta: {note: '" + "x" * (1 << 20) + "'}\n",
    "huge_integer": "name: x\nresolution: " + "9" * 6000 + "\n",
    "recursive_alias": "name: x\nstages: &s [*s]\n",
    "binary_junk": "name: x\n\x00\x01\x02\xff\xfe binary \x00\n",
    "nan": "name: x\nresolution: .nan\n",
    "infinity": "name: x\ndrop_path_rate: 1e999\n",
    "python_tag": "name: !!python/object/apply:os.system [echo pwned]\n",
}


@pytest.mark.parametrize(("kind", "command"), [*((k, "validate") for k in sorted(HOSTILE)),
                                               ("alias_bomb", "show"), ("deep_flow", "show")])
def test_hostile_document_one_line_bounded(tmp_path: Path, kind: str, command: str) -> None:
    path = tmp_path / f"{kind}.yaml"
    data = HOSTILE[kind]
    if kind == "binary_junk":
        path.write_bytes(data.encode("latin-1"))
    else:
        path.write_text(data, encoding="utf-8")
    figures, err = _run_cli(tmp_path, command, str(path))
    assert figures["rc"] == 2, err
    assert err.count("\n") == 1 and err.startswith("error: ") and str(path) in err, err
    assert "Traceback" not in err and "pwned" not in err
    assert figures["seconds"] <= 2.0, figures
    assert figures["peak_mb"] < 300, figures


def test_absurd_network_refused_before_building(tmp_path: Path) -> None:
    path = tmp_path / "absurd.yaml"
    path.write_text("resolution: 4096\nstem: {type: mbv2_stem}\nstages:\n  - width: 4096\n"
                    "    blocks: [{type: mbconv, exp_ratio: 6, repeat: 2}]\nhead: {type: bn_linear_head}\n",
                    encoding="utf-8")
    figures, err = _run_cli(tmp_path, "eval", str(path), "--no-cache")
    assert figures["rc"] == 2 and "too large to build and run here" in err and "GiB" in err, err
    assert err.count("\n") == 1 and figures["peak_mb"] < 600, figures


def test_absurd_repeat_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "repeat.yaml"
    path.write_text(ZOO_ARCH.replace("repeat: 2", "repeat: 1000000000000000000", 1), encoding="utf-8")
    assert "repeat: 1000000000000000000" in path.read_text(encoding="utf-8")
    figures, err = _run_cli(tmp_path, "show", str(path))
    assert figures["rc"] == 2 and "blocks, more than 1000" in err and figures["seconds"] < 2.0, (figures, err)


# ------------------------------------------------------------------------------------------------ fuzzing
def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with a results folder holding one saved study that nothing may change."""
    results = tmp_path / "results"
    (results / "saved").mkdir(parents=True)
    (results / "saved" / "summary.json").write_text('{"settings": {"objectives": []}}\n', encoding="utf-8")
    (results / "saved" / "trials.csv").write_text("number,state\n0,COMPLETE\n", encoding="utf-8")
    monkeypatch.setenv("DESIGNSPACE_RESULTS", str(results))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _check_cli(capsys: pytest.CaptureFixture[str], args: list[str]) -> int:
    rc = main(args)
    err = capsys.readouterr().err
    assert rc in (0, 1, 2), (args, rc, err)
    assert "Traceback" not in err and "internal error" not in err, (args, err)
    if rc == 2:
        assert err.startswith("error: ") and err.count("\n") == 1, (args, err)
    return rc


_FUZZ = settings(max_examples=60, derandomize=True, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
_FUZZ_SLOW = settings(_FUZZ, max_examples=1500)

_JUNK = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
_TOKENS = st.sampled_from(["&a", "*a", "<<:", "!!int", "!!str", "[", "]", "{", "}", ":", "- ", "\n", "  ", "#",
                           ".nan", ".inf", "-.inf", "1e400", "0x1F", "9" * 40, "~", "null", "'", '"', "\\", "\t",
                           "repeat: 99999999999", "pattern: []", "width: -1", "type: msa", "\x00"])


@st.composite
def _mutated(draw: st.DrawFn, text: str) -> str:
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, max(0, len(lines) - 1)))
        action = draw(st.sampled_from(["insert", "replace", "delete", "splice", "duplicate"]))
        junk = draw(st.one_of(_TOKENS, _JUNK))
        if action == "insert":
            lines.insert(i, junk)
        elif action == "replace" and lines:
            lines[i] = junk
        elif action == "delete" and lines:
            del lines[i]
        elif action == "duplicate" and lines:
            lines.insert(i, lines[i])
        elif lines:
            at = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:at] + junk + lines[i][at:]
    return "\n".join(lines) + "\n"


def _fuzz_documents(sandbox: Path, capsys: pytest.CaptureFixture[str], text: str, command: str) -> None:
    before = _snapshot(sandbox)
    path = sandbox / "doc.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    _check_cli(capsys, [command, str(path)])
    path.unlink()
    after = _snapshot(sandbox)
    assert after == before  # nothing written anywhere, results included


@_FUZZ
@given(text=_mutated(TINY))
def test_fuzz_space_documents(sandbox: Path, capsys: pytest.CaptureFixture[str], text: str) -> None:
    _fuzz_documents(sandbox, capsys, text, "validate")


@_FUZZ
@given(text=_mutated(ZOO_ARCH))
def test_fuzz_arch_documents(sandbox: Path, capsys: pytest.CaptureFixture[str], text: str) -> None:
    _fuzz_documents(sandbox, capsys, text, "show")


@_FUZZ
@given(text=st.one_of(_JUNK, st.lists(_TOKENS, max_size=30).map("".join)))
def test_fuzz_junk_documents(sandbox: Path, capsys: pytest.CaptureFixture[str], text: str) -> None:
    _fuzz_documents(sandbox, capsys, text, "validate")


@pytest.mark.slow
@_FUZZ_SLOW
@given(text=st.one_of(_mutated(TINY), _mutated(ZOO_ARCH)))
def test_fuzz_documents_many(sandbox: Path, capsys: pytest.CaptureFixture[str], text: str) -> None:
    _fuzz_documents(sandbox, capsys, text, "validate" if "budgets" in text or "search" in text else "show")


@_FUZZ
@given(text=_mutated(ROOT.joinpath("designspace", "data", "recipes.yaml").read_text(encoding="utf-8")))
def test_fuzz_recipe_files(sandbox: Path, text: str) -> None:
    from designspace.recipes import load_recipe

    path = sandbox / "recipe.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    try:
        load_recipe(path)
    except DesignspaceError as err:
        assert "\n" not in str(err)


@_FUZZ
@given(text=st.one_of(_JUNK, st.builds(lambda n, u: f"{n}{u}", st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr), st.integers().map(str), _JUNK),
    st.sampled_from(["ms", "M", "G", "", "us", "s", "GMACs", "m"]))))
def test_fuzz_budgets(text: str) -> None:
    from designspace.search.request import parse_budgets

    try:
        (budget,) = parse_budgets([text])
    except DesignspaceError as err:
        assert "\n" not in str(err) and "--budget" in str(err)
        return
    assert math.isfinite(budget.limit) and budget.limit > 0


@_FUZZ
@given(text=st.one_of(_JUNK, st.integers().map(str), st.integers().map(lambda n: f"+{n}"),
                      st.just("9" * 6000), st.just("+" + "9" * 6000), st.just("1e3"), st.just("٣")))
def test_fuzz_trials(text: str) -> None:
    from designspace.search.request import MAX_TRIALS, parse_trials

    try:
        total, more = parse_trials(text)
    except DesignspaceError as err:
        assert "\n" not in str(err) and "--trials" in str(err)
        return
    n = total if total is not None else more
    assert n is not None and 1 <= n <= MAX_TRIALS


@_FUZZ
@given(name=st.one_of(_JUNK, st.sampled_from(["../../escape", "..", ".", "/abs", "a/b", "a\\b", ".hidden", "-x",
                                               "ok-name_1.v2", "x" * 101, "con\x00trol", "é"])))
def test_fuzz_study_names(sandbox: Path, name: str) -> None:
    from designspace.search.config import check_study_name

    try:
        check_study_name(name)
    except DesignspaceError as err:
        assert "\n" not in str(err)
        return
    # an accepted name is one plain folder name under the results folder
    results = (sandbox / "results").resolve()
    assert (results / name).resolve().parent == results and name not in (".", "..")


@_FUZZ
@given(url=st.one_of(_JUNK, st.builds(lambda s, r: f"{s}://{r}", st.sampled_from(
    ["sqlite", "postgresql+psycopg", "mysql", "oracle", "http", "file", ""]), _JUNK)))
def test_fuzz_storage_urls(url: str) -> None:
    from designspace.search.storage import check_storage_url

    try:
        check_storage_url(url)  # parses only: nothing is connected to
    except DesignspaceError as err:
        assert "\n" not in str(err)


@_FUZZ
@given(text=st.one_of(_JUNK, st.sampled_from(["accuracy", "latency", "params", "macs", "max:latency", "min:",
                                               "os:system", "designspace.cli:main", "no_such_module_x:f", ":",
                                               "max:max:params", "zico", "top1"])))
def test_fuzz_objectives(text: str) -> None:
    from designspace.search.objectives import parse_objective

    try:
        parse_objective(text)
    except DesignspaceError as err:
        assert "\n" not in str(err)


@_FUZZ
@given(name=st.one_of(_JUNK, st.sampled_from(["iphone13", "iphone 13", "../../etc/passwd", "/dev/zero", "local"])))
def test_fuzz_devices(sandbox: Path, name: str) -> None:
    from designspace.evaluate.devices.profiles import load_device

    try:
        load_device(name)
    except DesignspaceError as err:
        assert "\n" not in str(err)


@_FUZZ
@given(args=st.lists(st.one_of(_JUNK, st.sampled_from(
    ["--budget", "--trials", "--study", "--storage", "--objective", "--device", "--sampler", "--timeout", "--seed",
     "1e309ms", "+0", "../x", "nan", "-1", "--threads", "0", "--batch"])), max_size=6))
def test_fuzz_search_command_line(sandbox: Path, capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    # ends with an invalid --trials so that no accepted combination starts a real search; everything before it
    # is parsed and checked first
    before = _snapshot(sandbox)
    rc = _check_cli(capsys, ["search", "tiny", *args, "--trials", "0"])
    assert rc == 2
    assert _snapshot(sandbox) == before
