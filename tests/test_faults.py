"""Faults without surprises (issue 34): results read back checked, locks per database, full disks, read-only
folders, dead workers, concurrent measurements of one entry."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_search import postgres_url  # noqa: F401 (its private PostgreSQL cluster, for the dead-worker test)
from test_table import SMALL_SPACE  # the table tests' small space

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
    "trials size negative": ("trials.csv", _text("trials.csv", _csv_cell("macs_g", "-5"))),
    "trials feasible mistyped": ("trials.csv", _text("trials.csv", _csv_cell("feasible", "maybe"))),
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


# ------------------------------------------------------------------------------- the SQLite file's lock
def test_the_lock_belongs_to_the_sqlite_file_not_the_results_folder(tmp_path: Path) -> None:
    from designspace.exceptions import DesignspaceError
    from designspace.search.storage import open_storage

    url = f"sqlite:///{tmp_path / 'shared' / 'study.db'}"
    first = open_storage(url, tmp_path / "a" / "s", "s")
    try:
        for other in (url, f"sqlite:///{tmp_path / 'shared' / '..' / 'shared' / 'study.db'}"):  # two spellings
            with pytest.raises(DesignspaceError) as err:
                open_storage(other, tmp_path / "b" / "s", "s")
            text = str(err.value)
            assert len(text.splitlines()) == 1 and "is being written by another process" in text
            assert str(tmp_path / "a" / "s") in text and "postgresql" in text  # who holds it, and the fix
    finally:
        first.close()
    second = open_storage(url, tmp_path / "b" / "s", "s")  # free once the first writer is done
    assert second.exclusive
    second.close()


def test_two_searches_in_two_folders_on_one_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'one.db'}"
    argv = ["search", "tiny", "--storage", url, "--trials", "30", "--objective", "slow_objective:slow",
            "--no-progress"]
    first = _cli(tmp_path / "a", *argv, wait=False)
    try:
        lock = tmp_path / "one.db.lock"
        for _ in range(600):
            if lock.exists() and lock.read_text().strip():
                break
            time.sleep(0.1)
        second = _cli(tmp_path / "b", *argv)
        assert second.returncode == 2
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and "is being written by another process" in lines[0], second.stderr
    finally:
        first.kill()
        first.wait()


def test_the_lock_and_storage_txt_are_never_written_through_a_link(tmp_path: Path) -> None:
    from designspace.exceptions import DesignspaceError
    from designspace.search.storage import open_storage

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    folder = tmp_path / "results" / "s"
    folder.mkdir(parents=True)
    (folder / "study.db.lock").symlink_to(victim)
    with pytest.raises(DesignspaceError, match="symbolic link"):
        open_storage(None, folder, "s")
    assert victim.read_text() == "keep me\n"
    (folder / "study.db.lock").unlink()
    (folder / "storage.txt").symlink_to(victim)
    store = open_storage(None, folder, "s")
    store.close()
    assert victim.read_text() == "keep me\n"  # the link was replaced, not written through
    assert not (folder / "storage.txt").is_symlink() and "sqlite:///" in (folder / "storage.txt").read_text()


def test_a_corrupt_study_db_is_one_line_about_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESIGNSPACE_RESULTS", str(tmp_path))
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "study.db").write_bytes(b"this is not a database at all" * 200)
    assert main(["search", "tiny", "--trials", "2", *COUNTS]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(tmp_path / "tiny" / "study.db") in err and "not a database" in err
    assert "host, port" not in err and "move it aside" in err


# ----------------------------------------------------------------------- full disks, read-only folders
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (root only; skipped with the reason otherwise)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True,
                           text=True, check=False)
    if mount.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip()[:200]}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True, check=False)


def _remount(disk: Path, options: str) -> None:
    run = subprocess.run(["mount", "-o", f"remount,{options}", str(disk)], capture_output=True, text=True, check=False)
    if run.returncode:
        pytest.skip(f"cannot remount the tmpfs {options}: {run.stderr.strip()[:200]}")


def _states(db: Path) -> dict[int, str]:
    import sqlite3

    con = sqlite3.connect(db)
    try:
        return dict(con.execute("SELECT number, state FROM trials"))
    finally:
        con.close()


def test_a_full_disk_ends_a_search_in_one_line_and_loses_nothing(small_disk: Path) -> None:
    argv = ["search", "tiny", "--trials", "2000", *COUNTS]
    run = _cli(small_disk, *argv)
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "full" in lines[0] and str(small_disk) in lines[0] and "fix: free disk space" in \
        lines[0], run.stderr
    before = _states(small_disk / "tiny" / "study.db")
    done = {n for n, s in before.items() if s == "COMPLETE"}
    assert done
    _remount(small_disk, "size=32m")
    target = len(done) + 3
    again = _cli(small_disk, "search", "tiny", "--trials", str(target), *COUNTS)
    assert again.returncode == 0, again.stderr
    after = _states(small_disk / "tiny" / "study.db")
    assert all(after[n] == "COMPLETE" for n in done)  # every finished trial kept
    assert sum(s == "COMPLETE" for s in after.values()) == target and "RUNNING" not in after.values()


def test_a_read_only_results_folder_is_one_line_for_search_and_lut_build(small_disk: Path,
                                                                         capsys: pytest.CaptureFixture[str],
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    _remount(small_disk, "size=32m")
    assert _cli(small_disk, "search", "tiny", "--trials", "3", *COUNTS).returncode == 0
    _remount(small_disk, "ro")
    for argv, name in ((["search", "tiny", "--trials", "6", *COUNTS], "tiny/study.db.lock"),
                       (["search", "tiny", "--study", "other", "--trials", "6", *COUNTS], "other"),
                       (["lut", "build", "tiny", "--no-progress"], "cache.sqlite")):
        run = _cli(small_disk, *argv)
        lines = run.stderr.strip().splitlines()
        assert run.returncode == 2 and len(lines) == 1, (argv, run.stderr)
        low = lines[0].lower()
        assert str(small_disk / name) in lines[0] and ("read-only" in low or "readonly" in low), lines
        assert "writable" in lines[0], lines
    monkeypatch.setenv("DESIGNSPACE_RESULTS", str(small_disk))
    assert main(["pareto", "tiny"]) == 0  # what is there can still be read
    assert "of 3" in capsys.readouterr().out


def test_lut_build_on_a_full_disk_exits_2_and_a_lenient_cache_warns_once(small_disk: Path,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    from designspace.evaluate.cache import Cache, CacheWriteError

    lenient, strict = Cache(small_disk / "cache.sqlite"), Cache(small_disk / "cache.sqlite", strict=True)
    lenient.put("k", "kind", "ctx", {"ms": 1.0})  # opened while there is room
    strict.put("k", "kind", "ctx", {"ms": 1.0})
    fd = os.open(small_disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    caplog.clear()
    for i in range(50):
        lenient.put(f"k{i}", "kind", "ctx", {"ms": 1.0, "pad": "x" * 20000})
    warned = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1 and "full" in warned[0].getMessage() and lenient.write_error, warned
    with pytest.raises(CacheWriteError, match="full"):
        for i in range(50):
            strict.put(f"s{i}", "kind", "ctx", {"ms": 1.0, "pad": "x" * 20000})
    lenient.close()
    strict.close()
    run = _cli(small_disk, "lut", "build", "tiny", "--no-progress")
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1 and "cache.sqlite" in lines[0] and "full" in lines[0], run.stderr


# ------------------------------------------------------------------------------------ dead workers
def _csv_states(folder: Path) -> dict[int, str]:
    import csv

    with open(folder / "trials.csv", newline="") as f:
        return {int(r["number"]): r["state"] for r in csv.DictReader(f)}


@pytest.mark.slow
def test_a_worker_killed_near_the_end_of_a_postgres_study(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Three workers on one PostgreSQL study, one killed with kill -9 near the end: the others re-run its trial
    (heartbeat 1 s, grace 3 s), and after one more run of the same command the study has its target of COMPLETE
    trials, none RUNNING, no duplicates, and every worker's trials.csv agrees with the database."""
    import optuna

    url = str(request.getfixturevalue("postgres_url"))  # the cluster of the multi-worker test (test_search)
    target = 9
    argv = ["search", "tiny", "--study", "dead", "--storage", url, "--trials", str(target), "--objective",
            "slow_objective:slower", "--objective", "params", "--no-progress"]
    env = {"DESIGNSPACE_HEARTBEAT_S": "1", "DESIGNSPACE_GRACE_S": "3", "SLOW_OBJECTIVE_S": "1.5"}
    folders = [tmp_path / f"worker{i}" for i in range(3)]
    workers = [_cli(f, *argv, wait=False, env=env) for f in folders]
    optuna.logging.set_verbosity(optuna.logging.ERROR)

    def trials() -> list[Any]:
        try:
            return optuna.load_study(study_name="dead", storage=url).get_trials(deepcopy=False)
        except KeyError:
            return []

    deadline = time.time() + 300
    while sum(t.state.name == "COMPLETE" for t in trials()) < target - 3 and time.time() < deadline:
        time.sleep(0.3)
    victim = workers[0]
    victim.kill()  # SIGKILL: no handler runs, its trial is left RUNNING
    victim.wait()
    left_running = sum(t.state.name == "RUNNING" for t in trials())
    for w in workers[1:]:
        _out, err = w.communicate(timeout=300)
        assert w.returncode == 0, err
    again = _cli(folders[0], *argv, env=env)  # one more run of the same command, in the killed one's folder
    assert again.returncode == 0, again.stderr
    final = trials()
    numbers = [t.number for t in final]
    assert len(numbers) == len(set(numbers))  # no duplicates
    states = [t.state.name for t in final]
    # (a retry queued while the last trials ran may stay WAITING: it runs first if the study is extended)
    assert states.count("COMPLETE") == target and "RUNNING" not in states, [(t.number, t.state.name) for t in final]
    assert states.count("FAIL") >= (1 if left_running else 0)  # the dead worker's trial, failed and re-run
    in_db = {t.number: t.state.name for t in final}
    for folder in folders:
        assert _csv_states(folder / "dead") == in_db, folder


# ------------------------------------------------------------------ concurrent measurements of one thing


def test_two_lut_builds_at_once_measure_each_entry_once(tmp_path: Path) -> None:
    space = tmp_path / "small.yaml"
    space.write_text(SMALL_SPACE)
    argv = ["lut", "build", str(space), "--calibrate", "0", "--samples", "200", "--json"]
    builds = [_cli(tmp_path / "results", *argv, wait=False) for _ in range(2)]
    reports, errs = [], []
    for b in builds:
        out, err = b.communicate(timeout=600)
        assert b.returncode == 0, err
        reports.append(json.loads(out))
        errs.append(err)
    entries = reports[0]["entries"]
    assert entries > 0 and all(r["entries"] == entries for r in reports)
    # each entry measured once in each of its two passes, by one build or the other
    assert sum(r["measured"] for r in reports) == entries and sum(r["second_pass"] for r in reports) == entries
    assert any("waiting for another process on this machine" in e for e in errs), errs  # they did overlap


TINY_NET = """
name: tiny_net
resolution: 32
num_classes: 10
stem: {type: iformer_stem}
stages:
  - {width: 16, blocks: [mbconv]}
  - {width: 32, downsample: conv_bn, blocks: [mbconv]}
head: bn_linear_head
"""


def test_two_evals_of_one_network_at_once_measure_it_once(tmp_path: Path) -> None:
    arch = tmp_path / "net.yaml"
    arch.write_text(TINY_NET)
    evals = [_cli(tmp_path / "results", "eval", str(arch), "--json", wait=False) for _ in range(2)]
    figures, errs = [], []
    for e in evals:
        out, err = e.communicate(timeout=600)
        assert e.returncode == 0, err
        figures.append(json.loads(out)["latency"])
        errs.append(err)
    assert figures[0] == figures[1]  # one measurement, read by the other: the same figure, not two
    assert any("waiting for another process on this machine" in e and "tiny_net" in e for e in errs), errs


def test_a_claim_is_reentrant_and_released(tmp_path: Path) -> None:
    from designspace.evaluate.cache import Cache

    cache = Cache(tmp_path / "cache.sqlite")
    with cache.claim("k", "k"), cache.claim("k", "k"):  # a measurement inside a claimed build
        pass
    probe = subprocess.run([sys.executable, "-c", (
        "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR); fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)"),
        str(next((tmp_path / "cache.sqlite.locks").iterdir()))], capture_output=True, text=True, check=False)
    assert probe.returncode == 0, probe.stderr  # free once the block is left


def test_heartbeat_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from designspace.exceptions import DesignspaceError
    from designspace.search.storage import GRACE_S, HEARTBEAT_S, heartbeat

    monkeypatch.delenv("DESIGNSPACE_HEARTBEAT_S", raising=False)
    monkeypatch.delenv("DESIGNSPACE_GRACE_S", raising=False)
    assert heartbeat() == (HEARTBEAT_S, GRACE_S)
    monkeypatch.setenv("DESIGNSPACE_HEARTBEAT_S", "2")
    monkeypatch.setenv("DESIGNSPACE_GRACE_S", "1")
    assert heartbeat() == (2, 4)  # the grace is at least two beats
    monkeypatch.setenv("DESIGNSPACE_GRACE_S", "soon")
    with pytest.raises(DesignspaceError, match="DESIGNSPACE_GRACE_S"):
        heartbeat()


@pytest.mark.parametrize("poison", [-5.0, float("nan"), "fast"])
def test_a_poisoned_point_of_the_table_term_drops_the_term(tmp_path: Path, poison: Any,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    import dataclasses

    from designspace.evaluate.cache import Cache
    from designspace.evaluate.measure.latency import Context
    from designspace.evaluate.table.term import fit_term, load_fit

    cache, ctx = Cache(tmp_path / "cache.sqlite"), Context.local()
    fit = fit_term([("a", 2.0, 1.0), ("b", 4.0, 2.5), ("c", 6.0, 4.1)], ctx, cache)
    assert load_fit(ctx, cache) == fit
    stored = dataclasses.asdict(fit)
    stored["points"] = [list(p) for p in stored["points"]]
    stored["points"][1] = ["b", poison, 2.5, []]
    cache.put("table-fit", "lut-fit", dataclasses.replace(ctx, resolution=0).key(), stored)
    caplog.clear()
    assert load_fit(ctx, cache) is None  # never applied
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) == 1
    assert load_fit(ctx, cache) is None and not cache.get("table-fit", "lut-fit",
                                                         dataclasses.replace(ctx, resolution=0).key())
