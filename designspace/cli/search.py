"""``search``, ``pareto``: Optuna studies over a space and their fronts."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from designspace.cli._format import emit, front_table, json_arg, latency_arg, runtime_args


def _search(args: argparse.Namespace) -> int:
    from designspace.search import run_search
    from designspace.search.request import build_config
    from designspace.space import load_space

    cfg = build_config(load_space(args.space), budgets=args.budget, trials=args.trials, timeout=args.timeout,
                       objectives=args.objective, device=args.device, sampler=args.sampler, study=args.study,
                       storage=args.storage, seed=args.seed, invalid=args.invalid, runtime=args.runtime,
                       threads=args.threads, batch=args.batch, progress=not args.no_progress and not args.json,
                       trained=_trained(args), latency=args.latency,
                       trust_space_code=args.trust_space_code)
    try:
        report = run_search(cfg)
        interrupted = False
    except KeyboardInterrupt as stop:
        if not stop.args:
            raise
        report, interrupted = stop.args[0], True
    summary = report.summary
    if args.json:
        print(json.dumps({"study": report.study, "folder": str(report.folder), "ran": report.ran,
                          "stopped": report.stopped, **summary}, indent=2, default=str))
    else:
        print(_search_text(report, summary))
    if interrupted:
        return 130
    if summary["complete"] and not summary["feasible"]:
        closest = "; ".join(f"trial {c['number']}: {c['broken']}" for c in summary.get("closest", []))
        print(f"error: no feasible point under the budgets in {summary['complete']} trials; closest: {closest} "
              "(fix: relax a budget or widen the space)", file=sys.stderr)
        return 2
    return 0


def _trained(args: argparse.Namespace) -> Any:
    """--objective trained's settings (the dataset is scanned here, before any trial), or None."""
    if args.data is None and args.epochs is None and args.pruner is None:
        return None
    from designspace.search.trained import trained_settings

    return trained_settings(args.data, epochs=args.epochs, resolution=args.resolution, pruner=args.pruner,
                            train_device=args.train_device, recipe=args.recipe, batch_size=args.train_batch,
                            lr=args.lr, seed=args.seed or 0)


def _search_text(report: Any, s: dict[str, Any]) -> str:
    states = s["states"]
    from designspace.evaluate.latency_estimate import study_latency

    device, source = study_latency(s["settings"])
    names = {"latency_ms": f"latency on {device}, {source}", "params_m": "params", "macs_g": "MACs"}
    broken = ", ".join(f"{names.get(k, k)}: {v}" for k, v in s["broken_budgets"].items())
    lines = [f"study {report.study} ({report.folder}): {s['trials']} trials, {report.ran} in this run "
             f"(stopped: {report.stopped})",
             f"  complete {s['complete']}: feasible {s['feasible']}, infeasible {s['infeasible']}"
             + (f" ({broken})" if broken else "") + f"; rejected or pruned {states.get('PRUNED', 0)}; failed "
             f"{s['failed_evaluations']}" + (f"; interrupted or left by a dead worker and queued again {s['rerun']}"
                                             if s["rerun"] else ""),
             f"  Pareto front: {s['pareto_size']} trials, hypervolume {s['hypervolume']:.6g}"]
    from designspace.search.trained_results import trained_summary

    lines += filter(None, [trained_summary(report.folder)])  # --objective trained: epochs, pruned, best
    if s["best"]:
        lines += ["", front_table(s["best"], s["settings"], shown=len(s["best"]), total=s["pareto_size"],
                                  study=report.study)]
    for reason in s["failed"][:3]:
        lines.append(f"  failed: {reason}")
    lines += ["", f"trials: {report.folder}/trials.csv   front: {report.folder}/pareto.csv   Archs: "
                  f"{report.folder}/archs/",
              "see the trade-offs: streamlit run app.py    resume or extend: rerun this command (--trials N)"]
    return "\n".join(lines)


def _pareto(args: argparse.Namespace) -> int:
    from designspace.results import read_results

    res = read_results(args.study)
    front = res.pareto()
    emit(args, front, f"{res.folder}: {len(front)} feasible Pareto-optimal trials of {len(res.rows)}\n"
         + front_table(front, res.settings, arch=True))
    return 0


def register(sub: Any) -> None:
    """Adds the commands of this group to the ``designspace`` subparsers."""
    p = sub.add_parser("search", help="search a space with Optuna under budgets (resumable; many workers)")
    p.add_argument("space", help="a Space YAML file or a shipped space name (mobile, tiny, ...)")
    p.add_argument("--budget", action="append", metavar="B",
                   help="an upper bound: 1.1ms (latency), 8M (parameters), 1.5G (MACs); repeat; replaces the "
                        "space's budgets")
    p.add_argument("--device", help="device profile for latency (default: the space's, else measured here)")
    p.add_argument("--trials", help="the study's total number of trials (N) or more from this process (+N)")
    p.add_argument("--timeout", help="stop starting trials after this long (600, 10m, 1h)")
    p.add_argument("--objective", action="append",
                   help="top1 (predicted ImageNet-1K top-1 %%), log10_macs, log10_params, a proxy (zico, ...), "
                        "estimate (the default estimate), latency, params, macs, trained (with --data), or "
                        "module:function (imported from PYTHONPATH or installed packages); max:/min: prefix sets "
                        "the direction; repeat (default: the space's)")
    p.add_argument("--trust-space-code", action="store_true",
                   help="allow the space file's search.objectives to name code (module:function) to import and run")
    p.add_argument("--sampler", choices=["tpe", "nsga2", "gp", "random"], help="default: the space's, else tpe")
    p.add_argument("--study", help="study name (default: the space's name): letters, digits, . _ -; a folder "
                                   "under the results folder")
    p.add_argument("--storage", help="SQLAlchemy URL, e.g. postgresql+psycopg://USER:PW@HOST/DB (default: SQLite "
                                     "in results/STUDY/)")
    p.add_argument("--seed", type=int, help="sampler seed")
    p.add_argument("--invalid", choices=["repair", "reject"], help="invalid combinations (default repair)")
    runtime_args(p)
    latency_arg(p, "each trial's; with a table the final Pareto front is measured whole")
    g = p.add_argument_group("--objective trained (train every feasible candidate on your data, with pruning)")
    g.add_argument("--data", help="ImageFolder dataset: DIR/<class>/*.png, or DIR/train|val/<class>/")
    g.add_argument("--epochs", type=int, help="the per-trial epoch cap and schedule length (default 10)")
    g.add_argument("--resolution", type=int, help="training input side in pixels (default: the recipe's/Arch's)")
    g.add_argument("--pruner", help="hyperband (default with one objective), sha, median: Optuna's, single-objective "
                                    "only; pareto (default with several: successive halving by Pareto rank over "
                                    "top-1 and the known latency/counts); none")
    g.add_argument("--train-device", help="cpu (default), cuda or cuda:N (--device is the latency profile)")
    g.add_argument("--recipe", help="efficientmod|emo|iformer|smt|FILE (default: the family the Arch resembles)")
    g.add_argument("--train-batch", type=int, help="images per training step (default 64; the lr scales to it)")
    g.add_argument("--lr", type=float, help="peak learning rate at --train-batch (default: the recipe's, scaled)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    json_arg(p, "print the summary as JSON")
    p.set_defaults(func=_search)

    p = sub.add_parser("pareto", help="the feasible Pareto front of a study")
    p.add_argument("study", help="a study name (results/NAME) or its folder")
    json_arg(p)
    p.set_defaults(func=_pareto)
