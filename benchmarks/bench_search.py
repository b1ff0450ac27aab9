"""Search throughput and sampler quality on spaces/mobile.yaml.

Run: python benchmarks/bench_search.py [--seeds 3] [--full]

1. A counts-only search (budgets 5M and 0.6G; objectives log10_macs (analytic) and
   parameters) of 1,000 trials with the default sampler and an SQLite study: wall time (goal <= 2 minutes).
2. Default sampler (multivariate TPE) vs random search: hypervolume of the feasible Pareto front after 300
   counts-only trials, for ``--seeds`` seeds, with one fixed reference point (log10_macs 8.0 = log10 of 0.1
   GMACs, parameters 5 M = the budget).
3. With ``--full``: ``search mobile --budget 20ms --trials 200`` measuring latency on this CPU (ONNX Runtime,
   1 thread): wall time (goal <= 15 minutes).
Each search runs in a fresh temporary results folder.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from designspace.results import _minimization, hypervolume, pareto_front, study_rows
from designspace.search import SearchConfig, parse_objective, run_search
from designspace.space import load_space, parse_budget

REFERENCE = [-8.0, 5.0]  # minimization form: (-log10_macs, params_m)


def counts_only(sampler: str, trials: int, seed: int, root: Path) -> tuple[float, float, int]:
    space = load_space("mobile")
    cfg = SearchConfig(space=space, objectives=(parse_objective("log10_macs"), parse_objective("params")),
                       budgets=(parse_budget("5M"), parse_budget("0.6G")), trials=trials, sampler=sampler,
                       study=f"{sampler}_{seed}", seed=seed, results=root, progress=False)
    start = time.perf_counter()
    report = run_search(cfg)
    wall = time.perf_counter() - start
    import optuna

    study = optuna.load_study(study_name=cfg.name, storage=f"sqlite:///{report.folder / 'study.db'}")
    settings = report.summary["settings"]
    rows = study_rows(study.get_trials(deepcopy=False), settings)
    front = pareto_front(rows, settings["objectives"])
    hv = hypervolume([_minimization(r, settings["objectives"]) for r in front], REFERENCE)
    return wall, hv, report.summary["feasible"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--full", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        wall, _hv, feasible = counts_only("tpe", 1000, 0, root / "throughput")
        print(f"1. counts-only search, 1,000 trials, tpe: {wall:.1f} s ({1000 / wall:.1f} trials/s, {feasible} "
              f"feasible)  goal <= 120 s: {'met' if wall <= 120 else 'NOT met'}")
        print(f"\n2. hypervolume after 300 counts-only trials (reference {REFERENCE}, minimization form):")
        tpe, rnd = [], []
        for seed in range(args.seeds):
            _, hv_tpe, _ = counts_only("tpe", 300, seed, root / "hv")
            _, hv_rnd, _ = counts_only("random", 300, seed, root / "hv")
            tpe.append(hv_tpe)
            rnd.append(hv_rnd)
            print(f"   seed {seed}: tpe {hv_tpe:.4f}   random {hv_rnd:.4f}")
        wins = sum(a > b for a, b in zip(tpe, rnd, strict=True))
        print(f"   mean: tpe {statistics.mean(tpe):.4f}   random {statistics.mean(rnd):.4f}   tpe ahead in {wins} of "
              f"{args.seeds} seeds: {'beats random' if wins > args.seeds / 2 else 'does NOT beat random'}")
        if args.full:
            space = load_space("mobile")
            cfg = SearchConfig(space=space, objectives=(parse_objective("log10_macs"), parse_objective("latency")),
                               budgets=(parse_budget("20ms"),), trials=200, results=root / "full", progress=False)
            start = time.perf_counter()
            report = run_search(cfg)
            wall = time.perf_counter() - start
            print(f"\n3. search mobile --budget 20ms --trials 200: {wall / 60:.1f} min, {report.summary['feasible']} "
                  f"feasible of {report.summary['complete']}  goal <= 15 min: {'met' if wall <= 900 else 'NOT met'}")


if __name__ == "__main__":
    main()
