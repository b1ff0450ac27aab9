"""The app's responsiveness with 10,000 trials: seconds per interaction through Streamlit's AppTest (goal <= 2 s).

The study is made as follows (documented, not hidden): a real counts-only search of ``mobile`` (``--trials N``,
default 300, budgets 5M and 0.6G, objectives log10_macs and params), whose ``trials.csv`` rows are then replicated
up to 10,000 rows with new trial numbers and metrics perturbed by up to +-10% (params_m, macs_g, log10_macs;
feasibility and constraint columns recomputed against the budgets). Replicated rows point at the real search's
Arch files, so the block-mix labels come from a few hundred distinct files.

    python benchmarks/bench_app.py [--trials 300] [--rows 10000] [--keep DIR]

Times (wall seconds, one AppTest run each, after the first load which is reported separately): select the
study, change the x axis, move a budget slider, open a trial, the Compare page with three trials, the Progress
page.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 2.0


def make_study(root: Path, trials: int, rows: int) -> Path:
    """A real counts-only search, its trials.csv replicated (perturbed) to ``rows`` rows."""
    from designspace.cli import main

    os.environ["DESIGNSPACE_RESULTS"] = str(root)
    t = time.monotonic()
    assert main(["search", "mobile", "--budget", "5M", "--budget", "0.6G", "--objective", "log10_macs", "--objective",
                 "params", "--trials", str(trials), "--study", "big", "--seed", "0", "--no-progress"]) == 0
    print(f"real search: {trials} trials in {time.monotonic() - t:.0f} s")
    folder = root / "big"
    with open(folder / "trials.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header, real = list(reader.fieldnames or []), list(reader)
    limits = {b["metric"]: b["limit"] for b in json.loads((folder / "summary.json").read_text())["settings"]["budgets"]}
    rng = random.Random(0)
    out = [dict(r) for r in real]
    while len(out) < rows:
        r = dict(rng.choice(real))
        r["number"] = str(len(out))
        r["zoo"] = ""
        if r["state"] == "COMPLETE":
            for key in ("params_m", "macs_g", "log10_macs"):
                if r.get(key):
                    r[key] = repr(float(r[key]) * rng.uniform(0.9, 1.1))
            broken = []
            for metric, limit in limits.items():
                value = float(r[metric])
                r[f"c_{metric}"] = repr(value - limit)
                if value > limit:
                    broken.append(f"{metric} {value:.4g} > {limit:g}")
            r["broken"], r["feasible"] = "; ".join(broken), str(not broken)
        out.append(r)
    tmp = folder / ".trials.csv.tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows(out)
    os.replace(tmp, folder / "trials.csv")
    return folder


def timed(label: str, action: object, results: list[tuple[str, float]]) -> object:
    t = time.perf_counter()
    at = action()  # type: ignore[operator]
    dt = time.perf_counter() - t
    if at.exception or at.error:  # type: ignore[attr-defined]
        raise SystemExit(f"{label}: the page failed: {[e.value for e in [*at.exception, *at.error]]}")  # type: ignore
    results.append((label, dt))
    print(f"  {label:<34} {dt:6.2f} s  {'ok' if dt <= GOAL_S else 'OVER the 2 s goal'}")
    return at


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300, help="real search trials (default 300)")
    parser.add_argument("--rows", type=int, default=10_000, help="rows after replication (default 10000)")
    parser.add_argument("--keep", help="make the study in this results folder and keep it")
    args = parser.parse_args()
    from streamlit.testing.v1 import AppTest

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_app_"))
    try:
        if not (root / "big" / "summary.json").exists():
            make_study(root, args.trials, args.rows)
        os.environ["DESIGNSPACE_RESULTS"] = str(root)
        (root / "aaa").mkdir(exist_ok=True)  # a second (empty) study listed first, so selecting "big" is a change
        shutil.copy(root / "big" / "summary.json", root / "aaa" / "summary.json")
        (root / "aaa" / "trials.csv").write_text((root / "big" / "trials.csv").open().readline())
        results: list[tuple[str, float]] = []
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        t = time.perf_counter()
        at.run()
        print(f"app start (empty study shown): {time.perf_counter() - t:.2f} s")
        t = time.perf_counter()
        at.sidebar.selectbox(key="study").set_value("big").run()
        print(f"first load of the {args.rows}-trial study (uncached: CSV, block mixes): "
              f"{time.perf_counter() - t:.2f} s")
        at.sidebar.selectbox(key="study").set_value("aaa").run()
        print("interactions (study loaded once, as in a session):")
        at = timed("select the study", lambda: at.sidebar.selectbox(key="study").set_value("big").run(), results)
        at = timed("change the x axis (MACs)", lambda: at.selectbox(key="x:big").set_value("macs_g").run(), results)
        at = timed("move the params budget slider", lambda: at.sidebar.slider(key="budget:big:params_m")
                   .set_value(4.0).run(), results)
        at = timed("move it back", lambda: at.sidebar.slider(key="budget:big:params_m").set_value(5.0).run(), results)
        number = int(at.dataframe[0].value["number"].iloc[-1])
        at = timed("open a trial", lambda: at.number_input(key="typed:big").set_value(number).run(), results)
        at = timed("Compare page (2 trials)", lambda: at.sidebar.radio(key="page").set_value("Compare").run(), results)
        at = timed("compare 3 trials", lambda: at.multiselect(key="compare:big").set_value(
            [*at.multiselect(key="compare:big").value, 0][:3]).run(), results)
        at = timed("Progress page", lambda: at.sidebar.radio(key="page").set_value("Progress").run(), results)
        at = timed("back to Trade-offs", lambda: at.sidebar.radio(key="page").set_value("Trade-offs").run(), results)
        worst = max(results, key=lambda r: r[1])
        print(f"{args.rows} trials: worst interaction {worst[0]!r} {worst[1]:.2f} s (goal <= {GOAL_S:g} s): "
              f"{'met' if worst[1] <= GOAL_S else 'NOT met'}")
        return 0 if worst[1] <= GOAL_S else 1
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
