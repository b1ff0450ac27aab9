"""``designspace search``: results on disk, constraints, resume, kill -9, Ctrl-C, writers, storages, workers."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from designspace.cli import main

TESTS = Path(__file__).parent
COUNTS = ["--objective", "log10_macs", "--objective", "params", "--no-progress"]


@pytest.fixture
def results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DESIGNSPACE_RESULTS", str(tmp_path / "results"))
    monkeypatch.syspath_prepend(str(TESTS))
    return tmp_path / "results"


def _default_sigint() -> None:
    """In a child before it starts: SIGINT back to its default, so that Python installs its Ctrl-C handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _cli(results: Path, *argv: str, wait: bool = True) -> Any:
    env = {**os.environ, "DESIGNSPACE_RESULTS": str(results), "PYTHONPATH": str(TESTS)}
    cmd = [sys.executable, "-m", "designspace", *argv]
    if not wait:
        # Ctrl-C reaches it even when this test run was started in the background (a shell starts those with
        # SIGINT ignored, which children inherit and Python then keeps)
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=_default_sigint)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)


def _rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "trials.csv", newline="") as f:
        return list(csv.DictReader(f))


def _db_trials(folder: Path) -> list[tuple[int, str]]:
    db = sqlite3.connect(folder / "study.db")
    try:
        return [(n, s) for n, s in db.execute("SELECT number, state FROM trials ORDER BY number")]
    finally:
        db.close()


def test_counts_only_search_writes_results(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the iformer space contains iFormer-T/S/M/L: they are the first trials
    assert main(["search", "iformer", "--trials", "12", "--budget", "10M", "--budget", "1.5G", *COUNTS]) == 0
    out = capsys.readouterr().out
    assert "study iformer" in out and "Pareto front" in out and "streamlit run app.py" in out
    folder = results / "iformer"
    rows = _rows(folder)
    assert len(rows) == 12 and [r["number"] for r in rows] == [str(i) for i in range(12)]
    assert [r["zoo"] for r in rows[:4]] == ["iformer_l", "iformer_m", "iformer_s", "iformer_t"]
    columns = set(rows[0])
    assert {"log10_macs", "params_m", "macs_g", "c_params_m", "c_macs_g", "broken", "feasible", "fingerprint",
            "arch", "param:stages.2.width", "param:stages.2.segments.1.depth"} <= columns
    by_zoo = {r["zoo"]: r for r in rows if r["zoo"]}
    assert by_zoo["iformer_l"]["feasible"] == "False"
    assert by_zoo["iformer_l"]["broken"].startswith("params_m 14.78 > 10")
    assert float(by_zoo["iformer_l"]["c_params_m"]) == pytest.approx(14.7798 - 10, abs=1e-3)
    assert by_zoo["iformer_t"]["feasible"] == "True" and float(by_zoo["iformer_t"]["c_macs_g"]) < 0
    for r in rows:
        assert (folder / r["arch"]).exists()
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["trials"] == 12 and summary["broken_budgets"]["params_m"] >= 1 and summary["hypervolume"] > 0
    with open(folder / "pareto.csv", newline="") as f:
        front = list(csv.DictReader(f))
    assert front and all(r["feasible"] == "True" for r in front)
    assert main(["pareto", "iformer", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == len(front)


def test_resume_continues_to_the_requested_count(results: Path) -> None:
    assert main(["search", "tiny", "--trials", "6", *COUNTS]) == 0
    first = _rows(results / "tiny")
    assert main(["search", "tiny", "--trials", "10", *COUNTS]) == 0
    rows = _rows(results / "tiny")
    assert len(rows) == 10 and rows[:6] == first
    assert main(["search", "tiny", "--trials", "+3", *COUNTS]) == 0
    assert len(_rows(results / "tiny")) == 13


def test_other_settings_need_another_study(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "tiny", "--trials", "3", *COUNTS]) == 0
    capsys.readouterr()
    assert main(["search", "tiny", "--trials", "5", "--budget", "1M", *COUNTS]) == 2
    err = capsys.readouterr().err
    assert "exists with other settings (budgets" in err and "--study NEW_NAME" in err
    assert main(["search", "tiny", "--trials", "3", "--budget", "1M", "--study", "tiny_small", *COUNTS]) == 0


def test_user_objective_and_failures(results: Path) -> None:
    assert main(["search", "tiny", "--trials", "3", "--objective", "slow_objective:slow", "--objective", "params",
                 "--no-progress"]) == 0
    rows = _rows(results / "tiny")
    assert all(float(r["slow_objective:slow"]) > 0 for r in rows)
    assert main(["search", "tiny", "--study", "broken", "--trials", "2", "--objective", "slow_objective:broken",
                 "--no-progress"]) == 0
    rows = _rows(results / "broken")
    assert [r["state"] for r in rows] == ["FAIL", "FAIL"]
    assert "RuntimeError: out of patience" in rows[0]["reason"]


@pytest.mark.parametrize(("argv", "text"), [
    (["--budget", "900us"], "unknown budget unit 'us'"),
    (["--storage", "notadb://x"], "bad storage URL"),
    (["--storage", "postgresql+psycopg://u:secret@127.0.0.1:1/db"], "cannot reach the study storage"),
    (["--objective", "acuracy"], "did you mean 'accuracy'"),
    (["--device", "iphone15", "--objective", "latency"], "unknown device 'iphone15'"),
    (["--trials", "ten"], "is not a trial count"),
    # a device's prediction gives the latency: the table word would do nothing, so it is refused, not ignored
    (["--device", "iphone13", "--objective", "latency", "--latency", "table"], "add --device local"),
])
def test_bad_requests_exit_2(results: Path, capsys: pytest.CaptureFixture[str], argv: list[str], text: str) -> None:
    assert main(["search", "tiny", "--trials", "2", *COUNTS[:-1], *argv]) == 2
    err = capsys.readouterr().err
    assert text in err and len(err.strip().splitlines()) == 1 and "secret" not in err


def test_a_table_search_on_a_space_whose_device_is_a_profile_is_refused(
        results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "mobile", "--trials", "2", "--latency", "table"]) == 2
    err = capsys.readouterr().err
    assert "`device: iphone13`" in err and "mobile.yaml" in err and "--device local" in err
    assert not (results / "mobile").exists()  # refused before any study was made


def test_a_device_study_recorded_with_a_table_word_resumes_without_it(results: Path) -> None:
    """A study made before the word was refused beside a device (its trials were the device's predictions
    whatever the word said) is resumed by the command that now makes such a study."""
    from designspace.search import objectives
    from designspace.search.config import SearchConfig
    from designspace.search.runner import run_search
    from designspace.space import load_space

    space = load_space("tiny")
    cfg = SearchConfig(space, (objectives.parse_objective("log10_macs"), objectives.parse_objective("latency")),
                       budgets=space.doc.budgets, device="iphone13", trials=2, latency="table", results=results,
                       progress=False)
    run_search(cfg)
    assert main(["search", "tiny", "--device", "iphone13", "--objective", "log10_macs", "--objective", "latency",
                 "--trials", "3", "--no-progress"]) == 0
    rows = _rows(results / "tiny")
    assert len(rows) == 3 and {r["latency_device"] for r in rows if r["latency_ms"]} == {"iphone13"}


def test_no_feasible_point_reports_the_closest(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "tiny", "--trials", "4", "--budget", "0.01M", *COUNTS]) == 2
    err = capsys.readouterr().err
    assert "no feasible point under the budgets in 4 trials; closest: trial" in err and "params_m" in err
    assert len(_rows(results / "tiny")) == 4  # nothing lost


def test_second_sqlite_writer_is_refused(results: Path) -> None:
    first = _cli(results, "search", "tiny", "--trials", "30", "--objective", "slow_objective:slow", "--no-progress",
                 wait=False)
    try:
        _wait_for(lambda: (results / "tiny" / "study.db").exists() and _db_trials(results / "tiny"))
        second = _cli(results, "search", "tiny", "--trials", "30", "--objective", "slow_objective:slow")
        assert second.returncode == 2
        assert "is being written by another process" in second.stderr and "postgresql" in second.stderr
    finally:
        first.kill()
        first.wait()


def _wait_for(cond: Any, timeout: float = 120.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        try:
            if cond():
                return
        except sqlite3.Error:
            pass
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_kill_9_then_resume_loses_nothing(results: Path) -> None:
    argv = ["search", "tiny", "--trials", "12", "--objective", "slow_objective:slow", "--objective", "params",
            "--no-progress"]
    proc = _cli(results, *argv, wait=False)
    folder = results / "tiny"
    _wait_for(lambda: sum(s == "COMPLETE" for _, s in _db_trials(folder)) >= 4)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {n: s for n, s in _db_trials(folder)}
    done_before = {n for n, s in before.items() if s == "COMPLETE"}
    assert len(done_before) >= 4
    again = _cli(results, *argv)
    assert again.returncode == 0, again.stderr
    after = _db_trials(folder)
    numbers = [n for n, _ in after]
    assert len(numbers) == len(set(numbers))  # none duplicated
    states = dict(after)
    assert all(states[n] == "COMPLETE" for n in done_before)  # every completed trial is still there
    assert sum(s == "COMPLETE" for s in states.values()) == 12  # the study reached the requested count
    assert sum(s == "RUNNING" for s in states.values()) == 0


def test_ctrl_c_stops_cleanly_and_requeues(results: Path) -> None:
    argv = ["search", "tiny", "--trials", "20", "--objective", "slow_objective:slow", "--no-progress"]
    proc = _cli(results, *argv, wait=False)
    folder = results / "tiny"
    _wait_for(lambda: sum(s == "COMPLETE" for _, s in _db_trials(folder)) >= 2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "stopped: interrupted" in out and "Traceback" not in err
    trials = _db_trials(folder)
    states = [s for _, s in trials]
    assert "RUNNING" not in states and (folder / "trials.csv").exists()
    # The signal lands in a trial (almost always: the objective takes most of each trial's time) or between
    # two. A trial it stopped is FAIL and queued again as one WAITING trial numbered after it; nothing else
    # fails (the objective never does), and at least the two trials waited for are COMPLETE.
    failed = [n for n, s in trials if s == "FAIL"]
    waiting = [n for n, s in trials if s == "WAITING"]
    assert len(failed) == len(waiting) <= 1, trials
    assert set(states) <= {"COMPLETE", "PRUNED", "FAIL", "WAITING"} and states.count("COMPLETE") >= 2, trials
    assert "failed 0" in out
    if failed:
        assert waiting[0] > failed[0] and "queued again 1" in out, (trials, out)
    else:
        assert "queued again" not in out, (trials, out)


# ------------------------------------------------------------------------------------------- PostgreSQL
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def postgres_url() -> Any:
    """A PostgreSQL server on loopback: $DESIGNSPACE_TEST_POSTGRES, else a private cluster started here."""
    url = os.environ.get("DESIGNSPACE_TEST_POSTGRES")
    if url:
        yield url
        return
    bin_dir = next((Path(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None) \
        if Path("/usr/lib/postgresql").exists() else None
    initdb = shutil.which("initdb") or (str(bin_dir / "initdb") if bin_dir else None)
    pg_ctl = shutil.which("pg_ctl") or (str(bin_dir / "pg_ctl") if bin_dir else None)
    if not initdb or not pg_ctl:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) and no $DESIGNSPACE_TEST_POSTGRES")
    # outside pytest's root-only temporary tree, so that the postgres user can reach it
    root = Path(tempfile.mkdtemp(prefix="designspace-pg-"))
    data, port = root / "data", _free_port()
    runas: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the cluster as the postgres user
        if not shutil.which("runuser"):
            pytest.skip("running as root without runuser to start PostgreSQL as another user")
        runas = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
    init = subprocess.run([*runas, initdb, "-D", str(data), "-A", "trust", "-U", "postgres"], capture_output=True,
                          text=True, check=False)
    if init.returncode:
        pytest.skip(f"initdb failed: {init.stderr.strip()[:300]}")
    start = subprocess.run([*runas, pg_ctl, "-D", str(data), "-w", "-l", str(root / "log"), "-o",
                            f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"], capture_output=True,
                           text=True, check=False)
    if start.returncode:
        pytest.skip(f"PostgreSQL did not start: {start.stderr.strip()[:300]}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*runas, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


def test_three_workers_share_one_postgres_study(results: Path, postgres_url: str) -> None:
    argv = ["search", "tiny", "--study", "shared", "--storage", postgres_url, "--trials", "+6", "--objective",
            "slow_objective:slow", "--objective", "params", "--no-progress"]
    workers = [_cli(results, *argv, wait=False) for _ in range(3)]
    for w in workers:
        _out, err = w.communicate(timeout=600)
        assert w.returncode == 0, err
    import optuna

    study = optuna.load_study(study_name="shared", storage=postgres_url)
    trials = study.get_trials(deepcopy=False)
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))  # no duplicates
    assert sum(t.state.name == "COMPLETE" for t in trials) == 18  # the sum requested, none lost
    assert all(t.state.name == "COMPLETE" for t in trials)
