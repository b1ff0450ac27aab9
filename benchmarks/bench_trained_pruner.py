"""The pareto pruner of multi-objective trained searches: epochs spent and the final front, with and without it.

Run: python benchmarks/bench_trained_pruner.py [--seeds 3] [--trials 15] [--epochs 9]

For each seed, two searches of the ``tiny`` space with the same data, seed and trial budget: objectives
``trained`` (validation top-1 after training on the data) and ``latency`` predicted on the ``xeon-e5-2680-4t``
device profile (known before a candidate trains, as a latency is), ``--epochs 9`` (rungs at epochs 1 and 3),
once with ``--pruner none`` and once with ``--pruner pareto``. The data: 4 procedural texture classes
(``tests/textures.py``) x 30 images of 32 px (96 training, 24 validation), trained at 32 px, batch 16, lr 2e-3,
one thread.

Figures: the epochs trained (summed once per run folder: a repeated Arch resumes, it does not train again), and
the hypervolume of the final front (complete trials; minimization form (-top-1 %, latency ms)) against one
reference per seed: top-1 at chance (25%) and 1.1 x the largest latency of a trained candidate in either search.
Goal: at least 2x fewer epochs with the pruner, for a front within 5% of the hypervolume without it (the ratio
over the seeds' sum, and the worst seed's).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from designspace.cli import main as cli
from designspace.pareto import hypervolume

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from textures import CLASSES, make_imagefolder

DEVICE = "xeon-e5-2680-4t"
CHANCE = 25.0


def search(root: Path, data: Path, pruner: str, seed: int, trials: int, epochs: int) -> tuple[list[dict[str, str]],
                                                                                                float]:
    """Runs one search in its own results folder; (its trials.csv rows, wall seconds)."""
    os.environ["DESIGNSPACE_RESULTS"] = str(root / f"{pruner}_{seed}")
    argv = ["search", "tiny", "--objective", "trained", "--objective", "latency", "--device", DEVICE,
            "--data", str(data), "--trials", str(trials), "--seed", str(seed), "--epochs", str(epochs),
            "--resolution", "32", "--train-batch", "16", "--lr", "2e-3", "--pruner", pruner, "--no-progress"]
    began = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = cli(argv)
    wall = time.perf_counter() - began
    if code != 0:
        raise SystemExit(f"search {pruner} seed {seed} exited {code}")
    with open(root / f"{pruner}_{seed}" / "tiny" / "trials.csv", newline="") as f:
        return list(csv.DictReader(f)), wall


def epochs_spent(rows: list[dict[str, str]]) -> int:
    """Epochs trained, once per run folder (the largest count any trial of that Arch reached)."""
    runs: dict[str, int] = {}
    for r in rows:
        if r.get("epochs_trained"):
            runs[r["fingerprint"]] = max(runs.get(r["fingerprint"], 0), int(float(r["epochs_trained"])))
    return sum(runs.values())


def front_points(rows: list[dict[str, str]]) -> list[list[float]]:
    """(-top-1, latency) of the complete, trained trials."""
    return [[-float(r["trained_top1"]), float(r["latency_ms"])] for r in rows
            if r["state"] == "COMPLETE" and r.get("trained_top1") not in (None, "")]


def main() -> None:
    """Runs the comparison and prints the figures against the goal."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=15)
    parser.add_argument("--epochs", type=int, default=9)
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    print(f"{args.trials} trials a search, --epochs {args.epochs}, objectives trained + latency ({DEVICE}, "
          f"predicted); {args.seeds} seeds; CPU, 1 thread")
    print(f"{'seed':>4}  {'epochs none':>11}  {'epochs pareto':>13}  {'ratio':>5}  {'HV none':>9}  {'HV pareto':>9}  "
          f"{'HV ratio':>8}  {'front':>5}  {'pruned':>6}  {'wall none/pareto s':>18}")
    totals = {"none": 0, "pareto": 0}
    hv_sum = {"none": 0.0, "pareto": 0.0}
    worst = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = make_imagefolder(root / "tex", per_class=30, size=32, classes=CLASSES[:4], seed=0)
        for seed in range(args.seeds):
            got = {p: search(root, data, p, seed, args.trials, args.epochs) for p in ("none", "pareto")}
            pts = {p: front_points(rows) for p, (rows, _) in got.items()}
            lat = max((q[1] for p in pts.values() for q in p), default=1.0)
            ref = [-CHANCE, 1.1 * lat]
            hv = {p: hypervolume(pts[p], ref) for p in pts}
            spent = {p: epochs_spent(rows) for p, (rows, _) in got.items()}
            pruned = sum(r["state"] == "PRUNED" and bool(r.get("epochs_trained")) for r in got["pareto"][0])
            ratio = hv["pareto"] / hv["none"] if hv["none"] > 0 else float("nan")
            worst = min(worst, ratio)
            for p in totals:
                totals[p] += spent[p]
                hv_sum[p] += hv[p]
            print(f"{seed:>4}  {spent['none']:>11}  {spent['pareto']:>13}  "
                  f"{spent['none'] / max(spent['pareto'], 1):>5.2f}  {hv['none']:>9.4g}  {hv['pareto']:>9.4g}  "
                  f"{ratio:>8.3f}  {len(pts['pareto']):>2}/{len(pts['none']):<2}  {pruned:>6}  "
                  f"{got['none'][1]:>8.0f}/{got['pareto'][1]:<8.0f}")
    fewer = totals["none"] / max(totals["pareto"], 1)
    hv_ratio = hv_sum["pareto"] / hv_sum["none"] if hv_sum["none"] > 0 else float("nan")
    print(f"\nepochs: {totals['none']} without the pruner, {totals['pareto']} with it: {fewer:.2f}x fewer  "
          f"goal >= 2x: {'met' if fewer >= 2 else 'NOT met'}")
    print(f"front hypervolume with the pruner / without: {hv_ratio:.3f} over the seeds, worst seed {worst:.3f}  "
          f"goal >= 0.95: {'met' if hv_ratio >= 0.95 else 'NOT met'} (worst seed: "
          f"{'met' if worst >= 0.95 else 'NOT met'})")


if __name__ == "__main__":
    main()
