"""A new user's first search (README command 1, ``designspace search tiny``, here with 3 trials) prints objectives
whose names and units are true: no "accuracy" that is not an ImageNet-1K top-1, and each printed value is what
its name says."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import designspace as ds
from designspace.evaluate.accuracy.estimate import DEFAULT, ESTIMATES, estimate


def test_readme_command_1_prints_true_names(tmp_path: Path) -> None:
    env = {**os.environ, "DESIGNSPACE_RESULTS": str(tmp_path / "results")}
    run = subprocess.run([sys.executable, "-m", "designspace", "search", "tiny", "--trials", "3", "--no-progress"],
                         env=env, capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    # no column called "accuracy": the word appears only where the size proxy says what it stands in for
    assert "accuracy" not in out.lower().replace("a size proxy for accuracy: docs/proxies.md", "")
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("trial "))
    columns = lines[header].split("  ")
    columns = [c.strip() for c in columns if c.strip()]
    # the space's search.objectives: the default estimate (a footnote says what a size proxy is), latency named
    # with its device and source, its interval beside it
    assert columns[1].rstrip("*") == DEFAULT and DEFAULT in ESTIMATES
    assert columns[2:4] == ["latency ms on local, measured", "interval ms"]
    with open(tmp_path / "results" / "tiny" / "trials.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["state"] == "COMPLETE"]
    assert rows
    for r in rows:
        if DEFAULT == "log10_macs":
            assert float(r["log10_macs"]) == pytest.approx(math.log10(float(r["macs_g"]) * 1e9), abs=1e-3)
        elif DEFAULT == "top1":
            assert 0 < float(r[DEFAULT]) < 100
        if r["feasible"] == "True":  # infeasible ones are cut by a count budget before latency is measured
            assert 0 < float(r["latency_ms"]) < 1000
    # the printed estimate is the estimate of that network: recompute it from the trial's Arch file
    done = [r for r in rows if r[DEFAULT]]
    arch = ds.load_arch(tmp_path / "results" / "tiny" / done[-1]["arch"])
    assert float(done[-1][DEFAULT]) == pytest.approx(estimate(arch, DEFAULT), rel=1e-4)
