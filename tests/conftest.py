"""Shared test fixtures: the app's results folder (real searches)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest


def make_app_results(root: Path) -> Path:
    """A results directory made by real searches, plus the broken studies the app must survive.

    * ``tiny``: ``designspace search tiny --trials 4`` (the default estimate and latency, latency measured here).
    * ``mob``: a counts-only ``mobile`` search (log10_macs and params, budgets 5M and 0.6G), 6 trials; its first
      trial is the zoo model iformer_t.
    * ``corrupt``: ``mob``'s summary with a ``trials.csv`` that is not a trials table.
    * ``evil``: ``mob`` with its first Arch path rewritten to ``../../outside.yaml`` (path traversal).
    * ``empty``: ``mob``'s settings with no trials yet.
    * ``escape``: a symbolic link to a study outside the results directory (must not be listed or read).
    """
    from designspace.cli import main

    old = os.environ.get("DESIGNSPACE_RESULTS")
    os.environ["DESIGNSPACE_RESULTS"] = str(root)
    try:
        assert main(["search", "tiny", "--trials", "4", "--seed", "0", "--no-progress"]) == 0
        assert main(["search", "mobile", "--budget", "5M", "--budget", "0.6G", "--objective", "log10_macs",
                     "--objective", "params", "--trials", "6", "--study", "mob", "--seed", "1", "--no-progress"]) == 0
    finally:
        if old is None:
            os.environ.pop("DESIGNSPACE_RESULTS", None)
        else:
            os.environ["DESIGNSPACE_RESULTS"] = old
    mob = root / "mob"
    for name in ("corrupt", "evil", "empty"):
        (root / name).mkdir()
        shutil.copy(mob / "summary.json", root / name / "summary.json")
    (root / "corrupt" / "trials.csv").write_bytes(b"\x89PNG not,a\ntrials\x00table\n")
    lines = (mob / "trials.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    (root / "empty" / "trials.csv").write_text(lines[0], encoding="utf-8")
    empty = json.loads((root / "empty" / "summary.json").read_text(encoding="utf-8"))  # as a study with none yet
    empty.update(trials=0, states={}, complete=0, feasible=0, infeasible=0, pareto_size=0, best=[], hypervolume=0.0)
    (root / "empty" / "summary.json").write_text(json.dumps(empty), encoding="utf-8")
    shutil.copytree(mob / "archs", root / "evil" / "archs")
    first = lines[1].split(",")
    header = lines[0].strip().split(",")
    first[header.index("arch")] = "../../outside.yaml"
    (root / "evil" / "trials.csv").write_text(lines[0] + ",".join(first) + "".join(lines[2:]), encoding="utf-8")
    outside = root.parent / "outside_study"
    shutil.copytree(mob, outside)
    (root.parent / "outside.yaml").write_text("secret: do not serve\n", encoding="utf-8")
    (root / "escape").symlink_to(outside, target_is_directory=True)
    return root


@pytest.fixture(scope="session")
def app_results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The results directory of :func:`make_app_results` (made once per test session)."""
    root = tmp_path_factory.mktemp("app") / "results"
    root.mkdir()
    yield make_app_results(root)
