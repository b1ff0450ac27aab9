"""The ``designspace`` command line. It holds no logic: each command calls the public API and prints.

Errors a user can cause (a malformed file, an unknown name) print one line, ``error: file:line:
path: problem (fix: ...)``, and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from designspace.exceptions import DesignspaceError

__all__ = ["main"]


def _table(rows: list[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """A plain-text table of ``rows``; ``columns`` are (key, header) pairs."""

    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:g}"
        return str(v)

    cells = [[cell(r.get(k)) for k, _ in columns] for r in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, (_, h) in enumerate(columns)]
    lines = ["  ".join(h.ljust(w) for (_, h), w in zip(columns, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=2) if args.json else text)


# ---------------------------------------------------------------------------------------------- commands
def _cmd_blocks(args: argparse.Namespace) -> int:
    from designspace.blocks import KINDS, components

    comps = [c for kind in KINDS for c in components(kind) if args.kind in (None, c.kind)]
    data = [{"name": c.name, "kind": c.kind, "family": c.family, "doc": c.doc,
             "strides": list(c.strides), "changes_width": c.changes_width,
             "params": [p.describe() for p in c.params]} for c in comps]
    lines = []
    for c in comps:
        lines.append(f"{c.kind:10s} {c.name}  ({c.family})")
        lines.append(f"{'':10s} {c.doc}")
        for p in c.params:
            allowed = (f"one of {list(p.choices)}" if p.choices is not None
                       else f"[{p.low if p.low is not None else ''}, {p.high if p.high is not None else ''}]"
                       + (" odd" if p.odd else ""))
            lines.append(f"{'':12s}{p.name:14s} {p.type.__name__:5s} default {p.default!r:10s} {allowed:24s} {p.doc}")
        lines.append("")
    _emit(args, data, "\n".join(lines).rstrip())
    return 0


def _cmd_zoo(args: argparse.Namespace) -> int:
    from designspace import zoo

    rows = zoo.rows()
    cols = [("name", "name"), ("paper", "paper name"), ("params_m", "params M"), ("paper_params_m", "paper M"),
            ("params_diff_pct", "diff %"), ("macs_g", "MACs G"), ("paper_macs_g", "paper G"),
            ("macs_diff_pct", "diff %"), ("macs_no_norm_g", "no-norm G"), ("macs_no_attn_g", "no-attn G"),
            ("top1", "top-1"), ("note", "note")]
    text = _table(rows, cols) + (
        "\n\nMACs: one multiply-add = 1; conv, linear, matmul (attention's QK^T and AV included), norms and "
        "pooling counted (fvcore's convention, batch 1). no-norm / no-attn: the same count without norm "
        "layers / without attention's matrix products, the conventions some papers used. Analytic counts; "
        "`designspace show NAME --trace` cross-checks one model with fvcore.")
    _emit(args, rows, text)
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from designspace.evaluate.counts import count, trace_count
    from designspace.network import load_arch
    from designspace.plan import plan

    arch = load_arch(args.arch)
    counts = trace_count(arch) if args.trace else count(arch)
    placements = {p.name: p for p in plan(arch)}
    rows = []
    for c in counts.components:
        p = placements[c.name]
        rows.append({"name": c.name, "type": c.type, "in": p.site.in_chs, "out": p.site.out_chs,
                     "stride": p.site.stride, "input": f"{p.site.hw[0]}x{p.site.hw[1]}",
                     "params": c.params, "macs_m": round(c.macs / 1e6, 3)})
    data = {"name": arch.name, "fingerprint": arch.fingerprint, "resolution": arch.resolution,
            "params": counts.params, "macs": counts.macs, "method": counts.method,
            "macs_by_category": counts.by_category(), "components": rows, "arch": arch.to_dict()}
    cols = [("name", "component"), ("type", "type"), ("in", "in"), ("out", "out"), ("stride", "s"),
            ("input", "input"), ("params", "params"), ("macs_m", "MACs M")]
    head = (f"{arch.name or args.arch}  fingerprint {arch.fingerprint}  {arch.resolution}x{arch.resolution}\n"
            f"params {counts.params:,} ({counts.params_m:.3f} M)  MACs {counts.macs:,} ({counts.macs_g:.4f} G, "
            f"{counts.method})\n")
    _emit(args, data, head + _table(rows, cols))
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from designspace._yaml import dump_yaml
    from designspace.space import load_space

    summary = load_space(args.space).summary(seed=args.seed)
    size = summary["log10_size"]
    lines = [f"{summary['file']}: valid space {summary['name']!r}" + (f" - {summary['description']}"
                                                                       if summary["description"] else ""),
             f"  {summary['free_parameters']} free parameters ("
             + ", ".join(f"{n} {k}" for k, n in summary["by_kind"].items() if n) + "), "
             + (f"10^{size} points" if size is not None else "continuous")]
    if args.verbose:
        lines += [f"    {p['name']}: {p['values']}" for p in summary["parameters"]]
    if summary["budgets"]:
        lines.append(f"  budgets: {', '.join(summary['budgets'])}")
    if summary["device"]:
        lines.append(f"  device (latency budgets and objectives): {summary['device']}")
    if summary["search"]:
        lines.append("  search defaults: " + ", ".join(f"{k} {v}" for k, v in summary["search"].items()))
    ex = summary["example"]
    lines.append(f"  example (seed {ex['seed']}): fingerprint {ex['fingerprint']}, {ex['params_m']} M parameters, "
                 f"{ex['macs_g']} GMACs")
    lines += ["    " + line for line in dump_yaml(ex["arch"]).splitlines()]
    _emit(args, summary, "\n".join(lines))
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    import random
    from pathlib import Path

    from designspace._yaml import dump_yaml
    from designspace.evaluate.counts import count
    from designspace.space import load_space

    space = load_space(args.space)
    rng = random.Random(args.seed)
    archs = [space.sample(rng) for _ in range(args.n)]
    rows = []
    out = Path(args.out) if args.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    for arch in archs:
        c = count(arch)
        row: dict[str, Any] = {"fingerprint": arch.fingerprint, "params_m": round(c.params_m, 3),
                               "macs_g": round(c.macs_g, 4)}
        if out is not None:
            path = out / f"{space.name}-{arch.fingerprint}.yaml"
            if not path.exists():  # same fingerprint, same network: never overwrite what is there
                path.write_text(arch.to_yaml(), encoding="utf-8")
            row["file"] = str(path)
        rows.append(row)
    if args.json:
        print(json.dumps([{**r, "arch": a.to_dict()} for r, a in zip(rows, archs, strict=True)], indent=2))
    elif out is not None:
        cols = [("file", "file"), ("params_m", "params M"), ("macs_g", "MACs G")]
        print(_table(rows, cols) + f"\n\n{len(archs)} Archs from {space.doc.file} (seed {args.seed}) in {out}")
    else:
        print("\n---\n".join(dump_yaml(a.to_dict()).rstrip() for a in archs))
    return 0


def _cmd_contains(args: argparse.Namespace) -> int:
    from designspace.network import load_arch
    from designspace.space import load_space, match

    space, arch = load_space(args.space), load_arch(args.arch)
    m = match(space, arch)
    label = arch.name or args.arch
    if args.json:
        print(json.dumps({"contains": m.ok, "reason": m.reason, "values": m.values}, indent=2))
    elif m.ok:
        print(f"yes: {label} is a point of {space.name} ({space.doc.file})")
    else:
        print(f"no: {label} is not a point of {space.name}: {m.reason}")
    return 0 if m.ok else 1


def _cmd_eval(args: argparse.Namespace) -> int:
    from designspace.evaluate.evaluation import evaluate
    from designspace.network import load_arch

    arch = load_arch(args.arch)
    ev = evaluate(arch, device=args.device, runtime=args.runtime, threads=args.threads, batch=args.batch,
                  cache=not args.no_cache)
    if args.json:
        print(json.dumps({**ev.to_dict(), "resolution": arch.resolution}, indent=2))
        return 0 if ev.status == "ok" else 1
    lines = [f"{arch.name or args.arch}  fingerprint {ev.fingerprint}  {arch.resolution}x{arch.resolution}",
             f"params {ev.params:,} ({ev.params / 1e6:.3f} M)  MACs {ev.macs:,} ({ev.macs / 1e9:.4f} G)"]
    if ev.status != "ok":
        print("\n".join(lines))
        print(f"failed: {ev.reason}", file=sys.stderr)
        return 1
    lat = ev.latency
    assert lat is not None
    flags = f"  [{', '.join(lat.flags)}]" if lat.flags else ""
    lines += [f"latency {lat.ms:.3f} ms measured{flags}: {lat.context.describe()}",
              f"        minimum of {lat.runs} runs in {lat.rounds} rounds (median {lat.median_ms:.3f} ms; the two "
              f"fastest rounds {lat.spread:.1%} apart), {lat.seconds:.1f} s"]
    if ev.prediction is not None:
        pr = ev.prediction
        lines.append(f"{pr.device} {pr.ms:.3f} ms PREDICTED: {pr.fit.form} fit on {pr.fit.points} published models, "
                     f"leave-one-out error {pr.fit.loo_mean:.1%} mean, {pr.fit.loo_max:.1%} max "
                     f"(calibrated on {pr.calibration_machine})")
    print("\n".join(lines))
    return 0


def _cmd_devices(args: argparse.Namespace) -> int:
    from designspace.evaluate.devices_report import device_rows

    rows = device_rows(measure=args.measure)
    cols = [("name", "device"), ("points", "points"), ("fit", "fit"), ("loo", "leave-one-out error (mean / max)"),
            ("calibration", "calibration"), ("description", "description")]
    text = _table(rows, cols) + ("\n\nPredictions carry the fit's leave-one-out error. A calibration 'shipped' was "
                                 "measured where the profile was made; `designspace devices --measure` or "
                                 "`designspace calibrate --device NAME` measures this machine's.")
    _emit(args, rows, text)
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from designspace.evaluate.devices_report import calibrate_command

    report = calibrate_command(args.name, points=args.point or [], points_file=args.points,
                               description=args.description, source=args.source, form=args.fit,
                               runtime=args.runtime, threads=args.threads, out=args.out, force=args.force)
    cols = [("model", "model"), ("local_ms", "local ms"), ("target_ms", "published ms"), ("loo_pred_ms", "LOO pred"),
            ("loo_error", "LOO error")]
    text = _table(report["points"], cols) + (
        f"\n\n{report['name']}: {report['fit']} fit, leave-one-out error {report['loo_mean']:.1%} mean, "
        f"{report['loo_max']:.1%} max, on {report['machine']}" + (f"\nwritten to {report['file']}" if report["file"]
                                                                   else ""))
    _emit(args, report, text)
    return 0


def _cmd_proxies(args: argparse.Namespace) -> int:
    from designspace.evaluate.estimate import COMBINATIONS, DEFAULT, combined
    from designspace.evaluate.proxies import PROXIES, compute_proxies
    from designspace.network import load_arch

    arch = load_arch(args.arch)
    scores = compute_proxies(arch, tuple(args.proxy) if args.proxy else PROXIES, seed=args.seed, batch=args.batch)
    rows = [{"proxy": k, "value": round(v, 6), "seconds": round(scores.seconds[k], 3)}
            for k, v in scores.values.items()]
    for name, parts in COMBINATIONS.items():
        if all(p in scores.values for p in parts):
            rows.append({"proxy": name, "value": round(combined(scores.values, parts), 6), "seconds": None})
    data = {**scores.to_dict(), "name": arch.name, "default_estimate": DEFAULT, "rows": rows}
    text = (f"{arch.name or args.arch}  fingerprint {arch.fingerprint}  seed {args.seed}, {args.batch} images\n"
            + _table(rows, [("proxy", "proxy"), ("value", "value (higher = more accurate)"), ("seconds", "s")])
            + f"\n\nThe search's default accuracy estimate is {DEFAULT!r}: the best-ranking estimate on the published "
              "models (docs/proxies.md).")
    _emit(args, data, text)
    return 0


def _duration(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    t = text.strip()
    try:
        return float(t[:-1]) * units[t[-1]] if t and t[-1] in units else float(t)
    except ValueError:
        raise DesignspaceError(f"cannot read the duration {text!r} (fix: seconds, or a number with s, m or h: "
                               "600, 10m, 1.5h)") from None


def _cmd_search(args: argparse.Namespace) -> int:
    from designspace.search import SearchConfig, parse_objective, run_search
    from designspace.space import load_space, parse_budget

    space = load_space(args.space)
    defaults = space.doc.search
    budgets = space.doc.budgets
    if args.budget:
        parsed = []
        for text in args.budget:
            try:
                parsed.append(parse_budget(text))
            except ValueError as err:
                raise DesignspaceError(f"--budget {text!r}: {err.args[0]} (fix: {err.args[1]})") from None
        budgets = tuple(parsed)
    more = trials = None
    if args.trials is not None:
        text = args.trials.strip()
        try:
            count = int(text.lstrip("+"))
        except ValueError:
            raise DesignspaceError(f"--trials {text!r} is not a number (fix: --trials 200 for the study's total, "
                                   "--trials +20 for 20 more from this process)") from None
        if count < 1:
            raise DesignspaceError(f"--trials must be at least 1, got {text!r}")
        more, trials = (count, None) if text.startswith("+") else (None, count)
    timeout = _duration(args.timeout) if args.timeout else defaults.get("timeout")
    if trials is None and more is None and timeout is None:
        trials = int(defaults.get("trials", 100))
    device = args.device or space.doc.device
    cfg = SearchConfig(
        space=space, objectives=tuple(parse_objective(o) for o in (args.objective or defaults.get(
            "objectives", ["accuracy", "latency"]))),
        budgets=budgets, device=None if device in (None, "local") else device, trials=trials, more=more,
        timeout_s=timeout, sampler=args.sampler or defaults.get("sampler", "tpe"), study=args.study or "",
        storage=args.storage, seed=args.seed if args.seed is not None else int(defaults.get("seed", 0)),
        invalid=args.invalid or defaults.get("invalid", "repair"), runtime=args.runtime, threads=args.threads,
        batch=args.batch, progress=not args.no_progress and not args.json)
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


def _search_text(report: Any, s: dict[str, Any]) -> str:
    objectives = [o["name"] for o in s["settings"]["objectives"]]
    states = s["states"]
    broken = ", ".join(f"{k} {v}" for k, v in s["broken_budgets"].items())
    lines = [f"study {report.study} ({report.folder}): {s['trials']} trials, {report.ran} in this run "
             f"(stopped: {report.stopped})",
             f"  complete {s['complete']}: feasible {s['feasible']}, infeasible {s['infeasible']}"
             + (f" ({broken})" if broken else "") + f"; rejected {states.get('PRUNED', 0)}; failed "
             f"{s['failed_evaluations']}" + (f"; interrupted or left by a dead worker and queued again {s['rerun']}"
                                             if s["rerun"] else ""),
             f"  Pareto front: {s['pareto_size']} trials, hypervolume {s['hypervolume']:.6g}"]
    if s["best"]:
        extra = [(k, h) for k, h in (("params_m", "params M"), ("macs_g", "MACs G"), ("latency_ms", "latency ms"))
                 if k not in objectives]
        cols = [("number", "trial"), *[(o, o) for o in objectives], *extra, ("zoo", "zoo")]
        rows = [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in s["best"]]
        lines += ["", _table(rows, cols)]
    for reason in s["failed"][:3]:
        lines.append(f"  failed: {reason}")
    lines += ["", f"trials: {report.folder}/trials.csv   front: {report.folder}/pareto.csv   Archs: "
                  f"{report.folder}/archs/",
              "see the trade-offs: streamlit run app.py    resume or extend: rerun this command (--trials N)"]
    return "\n".join(lines)


def _cmd_pareto(args: argparse.Namespace) -> int:
    from designspace.results import read_results

    res = read_results(args.study)
    front = res.pareto()
    objectives = [o["name"] for o in res.settings["objectives"]]
    cols = [("number", "trial"), *[(o, o) for o in objectives], ("params_m", "params M"), ("macs_g", "MACs G"),
            ("latency_ms", "latency ms"), ("zoo", "zoo"), ("arch", "arch")]
    _emit(args, front, f"{res.folder}: {len(front)} feasible Pareto-optimal trials of {len(res.rows)}\n"
          + _table(front, cols))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from designspace.export import export

    report = export(args.source, args.out, latency=not args.no_latency, onnx=not args.no_onnx, force=args.force,
                    weights=args.weights)
    m = report.metrics
    if args.json:
        print(json.dumps({"out": str(report.out), "files": [str(f) for f in report.files], **m}, indent=2,
                         default=str))
        return 0
    c = m["counts"]
    lines = [f"exported {report.arch.name or report.arch.fingerprint} ({m['fingerprint']}) to {report.out}/",
             f"  rebuilt and re-counted: {c['params']:,} params ({c['params_m']:.3f} M), {c['macs_g']:.4f} GMACs"
             + (" = the study's record" if m.get("recorded") else "")]
    if m.get("onnx"):
        lines.append(f"  model.onnx checked with ONNX Runtime: max abs difference {m['onnx']['max_abs_diff']:.2e}")
    now = m.get("latency_now")
    if now and now.get("latency_ms"):
        was = f" (recorded {now['recorded_ms']:.3f} ms, {now['difference']:+.1%})" if "recorded_ms" in now else ""
        lines.append(f"  latency re-measured {now['latency_ms']:.3f} ms{was}")
    lines.append(f"  recipe: {m['family']} (recipe.yaml)   files: {', '.join(f.name for f in report.files)}")
    lines += ["", f"  in Python:  model = designspace.build_model('{report.out / 'arch.yaml'}')",
              f"  train it:   designspace train {report.out / 'arch.yaml'} --data DIR --recipe "
              f"{report.out / 'recipe.yaml'} --out {report.out / 'run'}"]
    print("\n".join(lines))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from designspace.train import TrainConfig, train

    cfg = TrainConfig(arch=args.arch, data=args.data, out=args.out, recipe=args.recipe, epochs=args.epochs,
                      batch_size=args.batch_size, lr=args.lr, resolution=args.resolution,
                      val_fraction=args.val_fraction, workers=args.workers, device=args.device, seed=args.seed,
                      progress=not args.no_progress)
    try:
        report = train(cfg, echo=print)
    except KeyboardInterrupt:
        print(f"interrupted; the last finished epoch is saved in {args.out}/checkpoint.pt (resume: rerun this "
              "command)", file=sys.stderr)
        return 130
    last = report.history[-1] if report.history else {}
    print(f"done: {report.epochs} epochs in {args.out}/ (metrics.csv, checkpoint.pt, best.pt); best val top-1 "
          f"{report.best_top1:.2f}%, last {last.get('val_top1', float('nan')):.2f}% ({len(report.classes)} classes, "
          f"chance {100 / len(report.classes):.1f}%)" + (f"; {report.skipped} unreadable images skipped"
                                                        if report.skipped else ""))
    return 0


# ---------------------------------------------------------------------------------------------- parser
def _runtime_args(p: argparse.ArgumentParser) -> None:
    """The local latency context options that eval and search share."""
    p.add_argument("--runtime", choices=["onnxruntime", "torch", "cuda"], default="onnxruntime",
                   help="local latency runtime (default onnxruntime on CPU); a --device fixes its own")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads for latency (default 1)")
    p.add_argument("--batch", type=int, default=1, help="images per latency run (default 1)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="designspace", description="Design-space explorer for efficient vision "
                                                                      "backbones.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("blocks", help="list block families, stems, downsampling layers, heads and their parameters")
    p.add_argument("--kind", choices=["block", "stem", "downsample", "head"], help="only this kind")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_blocks)

    p = sub.add_parser("zoo", help="the published models: our counts beside the papers' figures")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_zoo)

    p = sub.add_parser("show", help="an Arch (file or zoo name) component by component, with counts")
    p.add_argument("arch", help="an Arch YAML file or a zoo name (designspace zoo lists them)")
    p.add_argument("--trace", action="store_true", help="count by tracing with fvcore instead of analytically")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_show)

    p = sub.add_parser("validate", help="check a Space file; summary: free parameters, size, an example Arch")
    p.add_argument("space", help="a Space YAML file or a shipped space name (tiny, mobile, smt, ...)")
    p.add_argument("--seed", type=int, default=0, help="seed of the example Arch")
    p.add_argument("-v", "--verbose", action="store_true", help="list every free parameter")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("sample", help="draw random Archs from a Space")
    p.add_argument("space", help="a Space YAML file or a shipped space name")
    p.add_argument("-n", type=int, default=5, help="how many (default 5)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", help="write each Arch as DIR/<space>-<fingerprint>.yaml instead of printing YAML")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_sample)

    p = sub.add_parser("contains", help="is an Arch a point of a Space? (exit 0 yes, 1 no)")
    p.add_argument("space", help="a Space YAML file or a shipped space name")
    p.add_argument("arch", help="an Arch YAML file or a zoo name")
    p.add_argument("--json", action="store_true", help="print JSON (with the flat values when it is)")
    p.set_defaults(func=_cmd_contains)

    p = sub.add_parser("eval", help="params, MACs and measured latency of an Arch (and its prediction on a device)")
    p.add_argument("arch", help="an Arch YAML file or a zoo name")
    p.add_argument("--device", help="a device profile (designspace devices): predicts its latency with the error")
    _runtime_args(p)
    p.add_argument("--no-cache", action="store_true", help="measure again even if results/cache.sqlite has it")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("search", help="search a space with Optuna under budgets (resumable; many workers)")
    p.add_argument("space", help="a Space YAML file or a shipped space name (mobile, tiny, ...)")
    p.add_argument("--budget", action="append", metavar="B",
                   help="an upper bound: 1.1ms (latency), 8M (parameters), 1.5G (MACs); repeat; replaces the "
                        "space's budgets")
    p.add_argument("--device", help="device profile for latency (default: the space's, else measured here)")
    p.add_argument("--trials", help="the study's total number of trials (N) or more from this process (+N)")
    p.add_argument("--timeout", help="stop starting trials after this long (600, 10m, 1h)")
    p.add_argument("--objective", action="append",
                   help="accuracy[:ESTIMATE], latency, params, macs, a proxy, or module:function; max:/min: prefix "
                        "sets the direction; repeat (default: the space's, else accuracy and latency)")
    p.add_argument("--sampler", choices=["tpe", "nsga2", "gp", "random"], help="default: the space's, else tpe")
    p.add_argument("--study", help="study name (default: the space's name)")
    p.add_argument("--storage", help="SQLAlchemy URL, e.g. postgresql+psycopg://USER:PW@HOST/DB (default: SQLite "
                                     "in results/STUDY/)")
    p.add_argument("--seed", type=int, help="sampler seed")
    p.add_argument("--invalid", choices=["repair", "reject"], help="invalid combinations (default repair)")
    _runtime_args(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_cmd_search)

    p = sub.add_parser("pareto", help="the feasible Pareto front of a study")
    p.add_argument("study", help="a study name (results/NAME) or its folder")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_pareto)

    p = sub.add_parser("export", help="a study's trial (or an Arch) as arch.yaml, model.onnx, metrics, a recipe")
    p.add_argument("source", help="STUDY (its best feasible trial), STUDY:TRIAL, an Arch YAML file or a zoo name")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--no-latency", action="store_true", help="do not re-measure latency")
    p.add_argument("--no-onnx", action="store_true", help="do not write model.onnx")
    p.add_argument("--weights", help="a checkpoint (designspace train's best.pt) whose weights go into model.onnx")
    p.add_argument("--force", action="store_true", help="replace files already in --out")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("train", help="train an Arch on an ImageFolder directory with the seed papers' recipe")
    p.add_argument("arch", help="an Arch YAML file (e.g. from designspace export) or a zoo name")
    p.add_argument("--data", required=True, help="dataset folder: one sub-folder of images per class, or train/ "
                                                 "and val/ folders of them")
    p.add_argument("--recipe", help="a recipe YAML or a shipped one (efficientmod, emo, iformer, smt); default: "
                                    "the family the Arch most resembles")
    p.add_argument("--epochs", type=int, help="epochs (default: the recipe's)")
    p.add_argument("--batch-size", type=int, default=64, help="images per step (default 64; the recipe's learning "
                                                              "rate is scaled linearly)")
    p.add_argument("--lr", type=float, help="peak learning rate at --batch-size (default: the recipe's, scaled)")
    p.add_argument("--resolution", type=int, help="input side in pixels (default: the Arch's)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="held-out share per class without train/val "
                                                                   "folders (default 0.2)")
    p.add_argument("--workers", type=int, default=0, help="data-loading worker processes (default 0)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/train", help="run folder; rerunning with it resumes (default runs/train)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("proxies", help="training-free accuracy proxies of an Arch (and the combined estimates)")
    p.add_argument("arch", help="an Arch YAML file or a zoo name")
    p.add_argument("--proxy", action="append", choices=["params", "macs", "synflow", "naswot", "zico", "meco"],
                   help="only these proxies (repeat; default all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and images (default 0)")
    p.add_argument("--batch", type=int, default=16, help="images (default 16)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_proxies)

    p = sub.add_parser("devices", help="device profiles and the leave-one-out error of their fits")
    p.add_argument("--measure", action="store_true", help="calibrate every profile on this machine now (slow once)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_devices)

    p = sub.add_parser("calibrate", help="calibrate a device profile on this machine, or make one from your own "
                                        "measurements of zoo models on your device")
    p.add_argument("name", help="an existing profile to calibrate here, or the name of a new one")
    p.add_argument("--point", action="append", metavar="MODEL=MS",
                   help="a zoo model and its latency on your device in ms (repeat; at least 3)")
    p.add_argument("--points", metavar="FILE", help="a CSV (model,latency_ms) or YAML mapping of such points")
    p.add_argument("--description", default="", help="what the device is (hardware, runtime, batch)")
    p.add_argument("--source", default="", help="where the points come from")
    p.add_argument("--fit", choices=["auto", "proportional", "power", "affine"], default="auto")
    p.add_argument("--runtime", choices=["onnxruntime", "torch"], default="onnxruntime",
                   help="local runtime the profile maps from")
    p.add_argument("--threads", type=int, default=1, help="local threads the profile maps from")
    p.add_argument("--out", help="where to write the profile (default results/devices/NAME.yaml)")
    p.add_argument("--force", action="store_true", help="replace an existing profile file")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_calibrate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status (0 ok, 2 bad input, 130 interrupted)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.version:
        from designspace import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    if not logging.getLogger("designspace").handlers:  # progress of long work, on stderr
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logging.getLogger("designspace").addHandler(handler)
        logging.getLogger("designspace").setLevel(logging.INFO)
    try:
        return int(args.func(args))
    except DesignspaceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader (head, less) went away: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
