"""No code runs from data (issue 33): code objectives only by the user's own command line, no writes through
links planted in a study folder, credentials kept out of crash reports, storages opened read-only.

Each payload here touches a marker file instead of doing harm; a test passes when the marker is absent. The
checkpoints (pickles) are covered in tests/test_train.py and tests/test_trained_search.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from designspace.cli import main
from designspace.exceptions import DesignspaceError
from designspace.redact import redact
from designspace.search.objectives import load_user_function

TESTS = Path(__file__).parent
COUNTS = ["--objective", "log10_macs", "--objective", "params", "--no-progress"]
SPACE = (TESTS.parent / "spaces" / "tiny.yaml").read_text(encoding="utf-8")


@pytest.fixture
def results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DESIGNSPACE_RESULTS", str(tmp_path / "results"))
    monkeypatch.syspath_prepend(str(TESTS))
    return tmp_path / "results"


def _payload_module(folder: Path, name: str, marker: Path) -> None:
    """A module whose import (not only its call) would leave ``marker``: what a planted file would do."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n\n"
                                       "def score(arch, model):\n    return 1.0\n", encoding="utf-8")


def _space_with_objectives(path: Path, objectives: str) -> Path:
    """spaces/tiny.yaml with its ``search.objectives`` replaced (a space file as shared with a user)."""
    assert "objectives: [estimate, latency]" in SPACE
    path.write_text(SPACE.replace("objectives: [estimate, latency]", f"objectives: {objectives}"), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------------------- code objectives
def test_a_space_files_code_objective_needs_the_users_opt_in(results: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "ran"
    _payload_module(tmp_path / "mods", "evilobj", marker)
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))  # importable: only the opt-in stands in the way
    space = _space_with_objectives(tmp_path / "shared_space.yaml", "[evilobj:score, params]")
    assert main(["search", str(space), "--trials", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "shared_space.yaml" in err and "--trust-space-code" in err
    assert not marker.exists() and not (results / "tiny").exists()
    # the opt-in: the space's code objective is imported and run
    space = _space_with_objectives(tmp_path / "own_space.yaml", "[slow_objective:slow, params]")
    assert main(["search", str(space), "--trials", "1", "--budget", "1G", "--no-progress", "--trust-space-code"]) == 0
    assert "slow_objective:slow" in (results / "tiny" / "trials.csv").read_text(encoding="utf-8").splitlines()[0]


def test_a_builtin_that_is_not_an_objective_is_refused_before_any_trial(results: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "tiny", "--trials", "2", "--objective", "os:system", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "os.system cannot be called as system(arch, model)" in err
    assert not (results / "tiny" / "study.db").exists()  # no trial, not even a study


@pytest.mark.parametrize(("spec", "why"), [("math:pi", "no callable"), ("slow_objective:nothing", "no callable"),
                                           ("json:dumps", "cannot be called as dumps(arch, model)")])
def test_objectives_that_cannot_take_arch_and_model(results: Path, spec: str, why: str) -> None:
    with pytest.raises(DesignspaceError, match=why.replace("(", r"\(").replace(")", r"\)")):
        load_user_function(spec)


def test_the_current_folder_is_not_searched_for_objectives(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    work = tmp_path / "downloaded_study"
    _payload_module(work, "evilobj", marker)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"DESIGNSPACE_RESULTS": str(tmp_path / "r")}
    run = subprocess.run([sys.executable, "-m", "designspace", "search", "tiny", "--trials", "1", "--objective",
                          "evilobj:score", "--no-progress"], cwd=work, env=env, capture_output=True, text=True,
                         timeout=300, check=False)
    assert run.returncode == 2, run.stderr
    assert "cannot import 'evilobj'" in run.stderr and "PYTHONPATH" in run.stderr
    assert not marker.exists()


# ----------------------------------------------------------------------------------------------- links in results/
def test_a_study_folder_whose_files_are_links_out_is_refused(results: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("storage.txt", "study.db.lock"):
        target = outside / f"victim{name}"
        target.write_text("precious\n", encoding="utf-8")
        folder = results / f"s{len(name)}"
        folder.mkdir(parents=True)
        (folder / name).symlink_to(target)
        assert main(["search", "tiny", "--study", folder.name, "--trials", "1", *COUNTS]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "symbolic link" in err and name in err
        assert target.read_text(encoding="utf-8") == "precious\n"
    (results / "linked").symlink_to(outside, target_is_directory=True)  # the study folder itself
    assert main(["search", "tiny", "--study", "linked", "--trials", "1", *COUNTS]) == 2
    assert sorted(p.name for p in outside.iterdir()) == ["victimstorage.txt", "victimstudy.db.lock"]


def test_results_files_and_archs_replace_planted_links_never_write_through(results: Path, tmp_path: Path) -> None:
    assert main(["search", "tiny", "--trials", "2", "--seed", "3", *COUNTS]) == 0
    folder = results / "tiny"
    fingerprints = sorted(p.name for p in (folder / "archs").iterdir())
    for p in folder.iterdir():  # start again from an empty study folder holding only planted links
        if p.is_dir():
            for q in p.iterdir():
                q.unlink()
            p.rmdir()
        else:
            p.unlink()
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("trials.csv", "pareto.csv", "summary.json"):
        (outside / name).write_text("precious\n", encoding="utf-8")
        (folder / name).symlink_to(outside / name)
    (folder / "archs").mkdir()
    for fp in fingerprints:  # dangling: a write through it would create a file outside
        (folder / "archs" / fp).symlink_to(outside / f"created-{fp}")
    assert main(["search", "tiny", "--trials", "2", "--seed", "3", *COUNTS]) == 0
    assert sorted(p.name for p in outside.iterdir()) == ["pareto.csv", "summary.json", "trials.csv"]
    assert all((outside / n).read_text(encoding="utf-8") == "precious\n" for n in ("trials.csv", "summary.json"))
    assert not any(p.is_symlink() for p in folder.rglob("*"))  # replaced by the study's own files
    assert sorted(p.name for p in (folder / "archs").iterdir()) == fingerprints


def test_a_linked_cache_is_not_written_through(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from designspace.evaluate.cache import Cache

    target = tmp_path / "victim.sqlite"
    (tmp_path / "cache.sqlite").symlink_to(target)
    cache = Cache(tmp_path / "cache.sqlite")
    cache.put("key", "latency", "ctx", {"value": 1.0})
    assert cache.get("key", "latency", "ctx") is None and not target.exists()
    assert "symbolic link" in caplog.text


# ----------------------------------------------------------------------------------------------- credentials
def test_a_crash_report_keeps_no_storage_password(results: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import designspace.search

    url = "postgresql+psycopg://alice:Sup3r-s3cret@127.0.0.1:1/optuna"

    def crash(cfg: object) -> None:
        raise RuntimeError(f"an unforeseen fault while opening {url}")

    monkeypatch.setattr(designspace.search, "run_search", crash)
    assert main(["search", "tiny", "--storage", url, "--trials", "1", *COUNTS]) == 3
    err = capsys.readouterr().err
    report = Path(err.split("full report: ", 1)[1].split(";", 1)[0])
    text = report.read_text(encoding="utf-8")
    assert "Sup3r-s3cret" not in err and "Sup3r-s3cret" not in text
    assert "alice:***@127.0.0.1" in text and "RuntimeError" in text
    report.unlink()


@pytest.mark.parametrize(("text", "kept", "gone"), [
    ("postgresql+psycopg://bob:p@ss/w0rd@db:5432/x", "bob:***@", "p@ss"),
    ("host=db user=bob password=hunter2 dbname=x", "password=***", "hunter2"),
    ("sqlite:///x.db?password=abc&mode=ro", "password=***&mode=ro", "abc"),
])
def test_redact(text: str, kept: str, gone: str) -> None:
    out = redact(text)
    assert kept in out and gone not in out


# ----------------------------------------------------------------------------------------------- the app's storages
def test_the_app_opens_allowed_storages_read_only(app_results: Path, tmp_path: Path) -> None:
    from designspace.app import data

    root = tmp_path / "results"
    root.mkdir()
    cache = root / "cache.sqlite"  # a SQLite file that is not a study: Optuna would add its tables to it
    con = sqlite3.connect(cache)
    con.execute("CREATE TABLE results (k TEXT)")
    con.commit()
    con.close()
    before = hashlib.sha256(cache.read_bytes()).hexdigest()
    with pytest.raises(DesignspaceError, match="cannot read the storage 'cache'") as err:
        data.load_storage_study(root, f"sqlite:///{cache}", "x", label="cache")
    assert "readonly" not in str(err.value) and "SQL" not in str(err.value)  # how it failed stays in the log
    assert hashlib.sha256(cache.read_bytes()).hexdigest() == before
    con = sqlite3.connect(cache)
    assert [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")] == ["results"]
    con.close()
    study_db = app_results / "mob" / "study.db"
    before = hashlib.sha256(study_db.read_bytes()).hexdigest()
    study = data.load_storage_study(app_results, f"sqlite:///{study_db}", "mob", label="team")
    assert len(study.trials) and hashlib.sha256(study_db.read_bytes()).hexdigest() == before


def test_the_apps_storages_are_the_operators(tmp_path: Path) -> None:
    from designspace.app.data import allowed_storages

    assert allowed_storages([], None) == {}
    got = allowed_storages(["--storage", "a=sqlite:////x/study.db"],
                           {"storages": {"b": "postgresql+psycopg://u:p@h/db"}})
    assert got == {"a": "sqlite:////x/study.db", "b": "postgresql+psycopg://u:p@h/db"}
    for bad in (["--storage", "sqlite:////x/study.db"], ["--storage", "m=mysql://u:secret@h/db"]):
        with pytest.raises(DesignspaceError) as err:
            allowed_storages(bad, None)
        assert "secret" not in str(err.value)


# ----------------------------------------------------------------------------------------------- stored names, source
def test_objective_names_stored_in_a_study_are_never_imported(results: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from designspace.app import data

    assert main(["search", "tiny", "--trials", "2", *COUNTS]) == 0
    marker = tmp_path / "ran"
    _payload_module(tmp_path / "mods", "evilobj", marker)
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    summary = json.loads((results / "tiny" / "summary.json").read_text(encoding="utf-8"))
    summary["settings"]["objectives"].append({"name": "evilobj:score", "direction": "maximize", "kind": "user",
                                              "arg": "evilobj:score"})
    (results / "tiny" / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    main(["pareto", "tiny"])
    with contextlib.suppress(DesignspaceError):  # the edited summary names a column trials.csv lacks: refused
        data.load_study(results, "tiny")
    assert not marker.exists()


def test_no_eval_exec_or_unpickling_in_the_package() -> None:
    """The paths from data to code are the ones docs/architecture.md lists; none of these calls is among them."""
    import ast

    found = []
    for path in (TESTS.parent / "designspace").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                name = ast.unparse(node.func)
                if name in ("eval", "exec", "compile", "pickle.load", "pickle.loads", "marshal.loads",
                            "yaml.load", "yaml.unsafe_load") or name.endswith("register_custom_ops_library"):
                    found.append(f"{path.name}:{node.lineno}: {name}")
                if name == "torch.load" and not any(k.arg == "weights_only" and ast.unparse(k.value) == "True"
                                                    for k in node.keywords):
                    found.append(f"{path.name}:{node.lineno}: torch.load without weights_only=True")
    assert not found, found


def test_training_runs_under_results_never_write_through_links(tmp_path: Path) -> None:
    from designspace.search.trained import _locked
    from designspace.train.checkpoint import write_state

    outside = tmp_path / "outside"
    outside.mkdir()
    study = tmp_path / "results" / "s"
    (study / "train").mkdir(parents=True)
    (study / "train" / "abc").symlink_to(outside, target_is_directory=True)  # a planted run folder
    with pytest.raises(DesignspaceError, match="symbolic link"), _locked(study / "train" / "abc"):
        pass
    assert list(outside.iterdir()) == []
    run = study / "train" / "def"
    run.mkdir()
    (run / "checkpoint.json").symlink_to(outside / "victim.json")  # dangling: a write through it creates it
    write_state({"epoch": 1}, run / "checkpoint.json")
    assert not (outside / "victim.json").exists() and not (run / "checkpoint.json").is_symlink()
