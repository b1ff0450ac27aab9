"""Latency you can repeat, and the per-block table (issue 11): figures printed against the goals.

Run: python benchmarks/bench_latency.py [--processes 5] [--archs 100] [--trials 300] [--quick]

1. Repeatability: ``--processes`` separate processes (``designspace eval NAME --json``, each with a fresh results
   folder, so a fresh cache) measure MobileNetV2-1.0, EMO-1M and iFormer-T, the models interleaved. Goal: (max -
   min) / min <= 5% per model and <= 10 s wall per measurement. The protocol before issue 11 (rounds timed in
   the measuring process, :func:`_in_process`: it lives here now, for this comparison only) is measured the same
   way in the same run,
   and so is the protocol with the reference's long-run figure kept between the processes (one results folder
   whose whole-network latencies are dropped before each), which shows how much of the spread is the fresh
   cache's reference figure.
2. Faithfulness: ``eval`` ratios of iFormer-T, iFormer-M, EMO-5M, EfficientMod-s and SMT-T to MobileNetV2-1.0
   against a 60 s interleaved measurement of the six in one worker (rounds of 0.3 s). Goal: within 5%.
3. Table: ``--archs`` seeded random Archs from ``mobile`` and the five family spaces, table latency against the
   whole network measured by the network protocol in two passes, each keeping its smaller figure, as the term's
   networks are (the errors against the first pass alone are printed too). The entries of these and of the
   calibration networks are measured first as ``lut build`` does (two passes, minutes apart); the per-network term
   is fitted on each space's zoo models and 3 seeded points spanning the space's sizes
   (``table_build.calibration_archs``; 1 with ``--quick``). Goal: >= 90% within +-10%, >= 70% within +-5%, Kendall tau
   >= 0.9. The table's build time is reported apart. The results folder gets ``part3.json`` (each test network's
   Arch, table figure and two measured figures, and the term's Archs), which ``--keep`` keeps for a look afterwards.
4. Search: ``--trials`` trials of ``mobile --budget 20ms`` with ``--latency table`` on part 3's table (its build
   reported apart): a missing entry is predicted from its type's measured entries where that model holds, else
   measured on demand; the front is re-measured whole (two passes, the smaller figure kept, as the term's
   networks are), its predicted entries measured first so that its table figures are also printed with every
   entry measured. Then ``--measure-trials`` trials with ``--latency measure`` (its cost is per
   trial). Each run's wall time is split into its trials' evaluations and the rest
   (the front measured whole). Goal: the table at least 10x faster per trial, and the re-measured front within
   10% of its table figures.

The machine's load (``os.getloadavg``) is printed beside every part: on a host that other work keeps busy the
figures say more about the host than about the protocol.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from designspace.evaluate.measure.latency import Latency

ROOT = Path(__file__).resolve().parent.parent
REPEAT = ["mobilenetv2_100", "emo_1m", "iformer_t"]
RATIOS = ["iformer_t", "iformer_m", "emo_5m", "efficientmod_s", "smt_t"]
SPACES = ["mobile", "mbconv", "efficientmod", "emo", "iformer", "smt"]


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def _rows(path: Path, drop: tuple[str, ...] = ()) -> int:
    """Drops the results cache's rows of the ``drop`` kinds (so that they are measured again) and returns how
    many table entries it holds."""
    import sqlite3

    db = sqlite3.connect(path)
    try:
        if drop:
            db.execute(f"DELETE FROM results WHERE kind IN ({', '.join('?' * len(drop))})", drop)
            db.commit()
        return int(db.execute("SELECT COUNT(*) FROM results WHERE kind = 'lut'").fetchone()[0])
    finally:
        db.close()


def _eval_process(name: str, mode: str, shared: Path) -> tuple[float, float, list[str], float | None, str]:
    """One ``designspace eval`` in a fresh process: (ms, wall seconds, flags, the fastest process's own minimum,
    the figure's parts: ratio x reference / processes). ``mode``: ``"fresh"`` (a fresh results folder, the
    protocol), ``"old"`` (the same, the protocol before issue 11), ``"known-reference"`` (the results folder
    ``shared``, whose whole-network latencies are dropped first: only the reference's long-run figure
    carries over from the earlier processes)."""
    with contextlib.ExitStack() as stack:
        folder = shared if mode == "known-reference" else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        if (folder / "cache.sqlite").exists():
            _rows(folder / "cache.sqlite", drop=("latency",))
        env = {**os.environ, "DESIGNSPACE_RESULTS": str(folder)}
        code = ("import json, sys, time; from designspace.evaluate.evaluation import evaluate; "
                f"sys.path.insert(0, {str(Path(__file__).parent)!r}); from bench_latency import _in_process; "
                f"t = time.perf_counter(); lat = _in_process({name!r}) if {mode == 'old'} else "
                f"evaluate({name!r}, cache=True).latency; "
                "print(json.dumps({'ms': lat.ms, 'wall': time.perf_counter() - t, "
                "'flags': list(lat.flags), 'direct': lat.direct_ms, 'ratio': lat.ratio, "
                "'ref': lat.reference_ms, 'processes': lat.processes}))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        data = json.loads(out.stdout.strip().splitlines()[-1])
    parts = (f"{data['ratio']:.3f}x{data['ref']:.3f}/{data['processes']}" if data["ratio"] is not None else "")
    return float(data["ms"]), float(data["wall"]), list(data["flags"]), data["direct"], parts


def _in_process(name: str) -> Latency:
    """The protocol before issue 11, for comparison: ``name`` exported to ONNX and timed in this process in rounds
    (:func:`designspace.evaluate.measure.timing.measure`, the protocol's defaults), without the reference network.
    Its host-speed probe (a small ONNX workload timed after each round) was removed from designspace with this
    runner; this comparison runs without it."""
    import time

    import torch

    import designspace as ds
    from designspace.evaluate.measure.latency import Context, Protocol
    from designspace.evaluate.measure.onnx import export_onnx, onnx_session
    from designspace.evaluate.measure.timing import measure, summarize

    began = time.perf_counter()
    model = ds.build_model(name).eval()
    example = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    session = onnx_session(export_onnx(model, example), 1)
    feed = {session.get_inputs()[0].name: example.numpy()}

    def run() -> float:
        t = time.perf_counter_ns()
        session.run(None, feed)
        return (time.perf_counter_ns() - t) / 1e6

    # the in-process protocol's own defaults before issue 28 merged it into the one protocol
    protocol = Protocol(warmup_s=0.15, round_s=0.2, min_runs=2, extra=3)
    rounds, _ = measure(run, protocol)
    return summarize(rounds, protocol, Context.local(), time.perf_counter() - began)


MODES = {"fresh": "isolated + reference", "old": "before (in-process rounds)",
         "known-reference": "isolated + reference, the reference's figure kept between the processes (not the goal's "
                            "fresh cache; latencies dropped)"}


def part1(processes: int) -> dict[str, float]:
    print(f"\n1. repeatability: {processes} separate processes per model, fresh cache each ({_load()})")
    figures: dict[tuple[str, str], list[tuple[float, float, list[str], float | None, str]]] = {}
    with tempfile.TemporaryDirectory() as shared:
        for _ in range(processes):
            for mode in MODES:
                for name in REPEAT:
                    figures.setdefault((name, mode), []).append(_eval_process(name, mode, Path(shared)))
    worst = 0.0
    means = {}
    for mode, label in MODES.items():
        print(f"   {label}:")
        for name in REPEAT:
            ms = [f[0] for f in figures[(name, mode)]]
            walls = [f[1] for f in figures[(name, mode)]]
            spread = max(ms) / min(ms) - 1
            flags = sum(bool(f[2]) for f in figures[(name, mode)])
            if mode == "fresh":
                worst = max(worst, spread)
                means[name] = statistics.median(ms)
            print(f"     {name:16s} " + " ".join(f"{m:7.3f}" for m in ms) + f"  (max-min)/min {spread:6.2%}  "
                  f"wall {max(walls):4.1f} s max  flagged {flags}")
            direct = [f[3] for f in figures[(name, mode)] if f[3] is not None]
            if direct:  # the same measurements without the reference: the fastest process's own minimum
                print(f"     {'  same, direct':16s} " + " ".join(f"{m:7.3f}" for m in direct)
                      + f"  (max-min)/min {max(direct) / min(direct) - 1:6.2%}")
                # why a figure differs: the median ratio, the reference it was scaled by, and the processes
                print(f"     {'  ratio x ref/n':16s} " + " ".join(f[4] for f in figures[(name, mode)]))
    wall = max(f[1] for (n, mode), v in figures.items() if mode == "fresh" for f in v)
    print(f"   goal (max-min)/min <= 5%: {'met' if worst <= 0.05 else 'NOT met'} (worst {worst:.2%}); "
          f"goal <= 10 s per measurement: {'met' if wall <= 10 else 'NOT met'} (worst {wall:.1f} s)")
    return means


def part2(seconds: float) -> None:
    import designspace as ds
    from designspace.evaluate.evaluation import evaluate
    from designspace.evaluate.measure.isolated import time_onnx
    from designspace.evaluate.measure.latency import Protocol
    from designspace.evaluate.measure.onnx import export_onnx

    names = ["mobilenetv2_100", *RATIOS]
    print(f"\n2. faithfulness: eval ratios to MobileNetV2-1.0 vs a {seconds:.0f} s interleaved measurement ({_load()})")
    evals = {n: evaluate(n, cache=False).latency for n in names}
    models = []
    for n in names:
        m = ds.build_model(n).eval()
        models.append((export_onnx(m, m.example_input()), (1, 3, 224, 224)))
    rounds = max(2, int(seconds / (0.3 * (len(names) + 1))))
    long = time_onnx(models, 1, Protocol(rounds=rounds, round_s=0.3, warmup_s=0.5), processes=1)
    base_eval, base_long = evals[names[0]].ms, long[0].minima[0]
    worst = 0.0
    for n, t in zip(names[1:], long[1:], strict=True):
        r_eval, r_long = evals[n].ms / base_eval, t.minima[0] / base_long
        worst = max(worst, abs(r_eval / r_long - 1))
        print(f"   {n:16s} eval {r_eval:6.3f}  long {r_long:6.3f}  difference {r_eval / r_long - 1:+6.2%}")
    print(f"   goal within 5%: {'met' if worst <= 0.05 else 'NOT met'} (worst {worst:.2%})")


def _kendall(a: list[float], b: list[float]) -> float:
    n, s = len(a), 0
    for i in range(n):
        for j in range(i + 1, n):
            s += (a[i] - a[j]) * (b[i] - b[j]) > 0
            s -= (a[i] - a[j]) * (b[i] - b[j]) < 0
    return s / (n * (n - 1) / 2) if n > 1 else float("nan")


def _within(errors: list[float], band: float) -> float:
    """The share of ``errors`` (relative) within +-``band``."""
    return sum(abs(e) <= band for e in errors) / len(errors)


def part3(n_archs: int, cache_dir: Path, quick: bool = False) -> None:
    from designspace import zoo
    from designspace.evaluate.cache import Cache
    from designspace.evaluate.measure.cached import measure_latencies
    from designspace.evaluate.measure.latency import Context, Latency, MeasurementError
    from designspace.evaluate.table.entries import (
        ENTRY_PROTOCOL,
        calibrate_term,
        measure_entries,
        one_process,
        table_latency,
    )
    from designspace.evaluate.table.term import describe_fit
    from designspace.plan import plan
    from designspace.space import load_space, match
    from designspace.table_build import calibration_archs

    print(f"\n3. table vs whole network: {n_archs} seeded random Archs over {', '.join(SPACES)} ({_load()})")
    cache = Cache(cache_dir / "cache.sqlite")
    rng = random.Random(0)
    per = [n_archs // len(SPACES) + (i < n_archs % len(SPACES)) for i in range(len(SPACES))]
    calib, tests = [], []
    for name, k in zip(SPACES, per, strict=True):
        space = load_space(name)
        calib += [a for a in (zoo.load(z) for z in zoo.names()) if match(space, a).ok and a not in calib]
        calib += [a for a in calibration_archs(space, 1 if quick else 3, seed=1000) if a not in calib]
        tests += [space.sample(rng) for _ in range(k)]
    # the entries of every network, as `lut build` measures them: two passes of one worker process, minutes apart
    one = one_process(ENTRY_PROTOCOL)
    ctx = Context.local(resolution=224)
    placements = [p for a in calib + tests for p in plan(a)]
    t0 = time.perf_counter()
    n = measure_entries(placements, ctx, cache, one)
    measure_entries(placements, ctx, cache, one, again=True)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    fit = calibrate_term(calib, ctx, cache)
    print(f"   table: {n} distinct entries in two passes, {build_s:.0f} s; per-network term {describe_fit(fit)}, "
          f"form '{fit.form}' ({time.perf_counter() - t0:.0f} s to measure the {len(calib)} networks whole)")
    contexts = [Context.local(resolution=a.resolution) for a in tests]
    t = time.perf_counter()
    table = [table_latency(arch, c, cache).ms for arch, c in zip(tests, contexts, strict=True)]
    looked_s = time.perf_counter() - t
    # the whole networks as the term's are measured: two passes over all of them (8 to a worker process, the
    # front's protocol), each keeping its smaller figure; the first pass alone is printed too
    t = time.perf_counter()
    passes = []
    for _ in range(2):
        lats = measure_latencies(tests, contexts, cache=None)
        bad = [lat for lat in lats if isinstance(lat, MeasurementError)]
        if bad:
            raise bad[0]
        passes.append([lat.ms for lat in lats if isinstance(lat, Latency)])
    measured_s = time.perf_counter() - t
    whole = [min(a, b) for a, b in zip(*passes, strict=True)]
    once = [tb / w - 1 for tb, w in zip(table, passes[0], strict=True)]
    err = [tb / w - 1 for tb, w in zip(table, whole, strict=True)]
    in10, in5 = _within(err, 0.10), _within(err, 0.05)
    tau = _kendall(table, whole)
    first = 0
    for name, k in zip(SPACES, per, strict=True):  # the test Archs are drawn space by space, ``k`` each
        mine, first = err[first:first + k], first + k
        err_by = f"mean {statistics.mean(mine):+.1%}, |e| max {max(abs(e) for e in mine):.1%}" if mine else "-"
        print(f"   {name:14s} {k:3d} Archs: {err_by}")
    print(f"   errors: mean {statistics.mean(err):+.2%}, mean |e| {statistics.mean(abs(e) for e in err):.2%}, "
          f"max |e| {max(abs(e) for e in err):.2%}")
    print(f"   within +-10%: {in10:.0%} (goal >= 90%: {'met' if in10 >= 0.9 else 'NOT met'}); within +-5%: {in5:.0%} "
          f"(goal >= 70%: {'met' if in5 >= 0.7 else 'NOT met'}); Kendall tau {tau:.3f} (goal >= 0.9: "
          f"{'met' if tau >= 0.9 else 'NOT met'})")
    print(f"   against the first pass alone: mean {statistics.mean(once):+.2%}, within +-10% "
          f"{_within(once, 0.10):.0%}, within +-5% {_within(once, 0.05):.0%}, Kendall tau "
          f"{_kendall(table, passes[0]):.3f}; the "
          f"two passes differ by {statistics.mean(abs(a / b - 1) for a, b in zip(*passes, strict=True)):.1%} mean")
    print(f"   {len(tests)} table figures {looked_s:.2f} s in all (every entry in the table), whole-network "
          f"measurements {measured_s:.0f} s (two passes)")
    # every network's figures, for a look afterwards (``--keep`` keeps the folder)
    rows = [{"set": "test", "arch": a.to_dict(), "table_ms": tb, "passes_ms": [p0, p1]}
            for a, tb, p0, p1 in zip(tests, table, *passes, strict=True)]
    rows += [{"set": "term", "arch": a.to_dict()} for a in calib]
    (cache_dir / "part3.json").write_text(json.dumps({"fit": fit.form, "networks": rows}, indent=1))


def part4(trials: int, measure_trials: int, cache_dir: Path) -> None:
    from designspace.cli import main as cli

    print(f"\n4. search mobile --budget 20ms: {trials} trials with --latency table (missing entries predicted where "
          f"their type's model holds, else measured; the front measured whole), {measure_trials} with --latency "
          f"measure ({_load()})")
    os.environ["DESIGNSPACE_RESULTS"] = str(cache_dir)
    from designspace import zoo
    from designspace.evaluate.cache import Cache
    from designspace.evaluate.measure.latency import Context
    from designspace.evaluate.table.entries import calibrate_term
    from designspace.evaluate.table.term import describe_fit, load_fit
    from designspace.space import load_space, match
    from designspace.table_build import calibration_archs

    cache, ctx = Cache(cache_dir / "cache.sqlite"), Context.local(resolution=224)
    t = time.perf_counter()
    if load_fit(ctx, cache) is None:  # as `lut build mobile` fits it: the space's zoo models and seeded points
        space = load_space("mobile")
        calib = [a for a in (zoo.load(z) for z in zoo.names()) if match(space, a).ok]
        calib += [a for a in calibration_archs(space, 6, seed=1) if a not in calib]  # as lut build (--calibrate 6)
        fit = calibrate_term(calib, ctx, cache)
        print(f"   per-network term fitted first on mobile's {len(calib)} zoo and seeded networks: "
              f"{describe_fit(fit)} ({time.perf_counter() - t:.0f} s)")
    print(f"   the table: {_rows(cache_dir / 'cache.sqlite')} measured entries "
          f"(its build and the term's fit reported apart: part 3, and {time.perf_counter() - t:.0f} s here)")

    walls, evals = {}, {}
    for study, mode, n in (("bench_table", "table", trials), ("bench_measure", "measure", measure_trials)):
        # the measure run pays for every trial: the whole-network figures the table run's front left in the cache
        # (the zoo models, enqueued first in both runs, are on it) are dropped before it
        before = _rows(cache_dir / "cache.sqlite", drop=("latency",) if mode == "measure" else ())
        t = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # the search's own report: the figures below say it
            rc = cli(["search", "mobile", "--device", "local", "--budget", "20ms", "--trials", str(n), "--latency",
                      mode, "--study", study, "--no-progress", "--json"])
        walls[study] = time.perf_counter() - t
        assert rc in (0, 2), rc
        # where the time went: the trials' own evaluations (on-demand entries included) and the rest (the
        # front measured whole, the results written)
        rows = csvrows(cache_dir / study / "trials.csv")
        evals[study] = sum(float(r["duration_s"]) for r in rows if r.get("duration_s"))
        front = len(csvrows(cache_dir / study / "pareto.csv"))
        # the trials' own on-demand entries; the rest of the new rows are the front's predicted entries, measured
        # before it is measured whole
        measured = sum(int(float(r.get("latency_entries_measured") or 0)) for r in rows)
        front_entries = _rows(cache_dir / "cache.sqlite") - before - measured
        predicted = sum(int(float(r.get("latency_entries_predicted") or 0)) for r in rows)
        print(f"   {study}: {walls[study]:.0f} s: the {n} trials' evaluations {evals[study]:.0f} s"
              + (f" ({measured} entries measured on demand, {predicted} predicted)" if mode == "table" else "")
              + f", the rest {walls[study] - evals[study]:.0f} s"
              + (f" (its front of {front} measured whole in two passes, after {front_entries} entries its trials "
                 "had predicted were measured)" if mode == "table" else ""))
    rows = list(csvrows(cache_dir / "bench_table" / "pareto.csv"))
    errs = [_table_ms(r) / float(r["latency_remeasured_ms"]) - 1 for r in rows
            if r.get("latency_remeasured_ms") and _table_ms(r)]
    # like with like: the trials' evaluations of both runs, then both runs' whole wall time
    per_measure, per_eval = evals["bench_measure"] / measure_trials, evals["bench_table"] / trials
    wall_measure, per_table = walls["bench_measure"] / measure_trials, walls["bench_table"] / trials
    speed, whole = per_measure / max(per_eval, 1e-9), wall_measure / per_table
    print(f"   per trial, evaluations: measure {per_measure:.2f} s, the table {per_eval:.3f} s: {speed:.1f}x "
          f"(goal >= 10x: {'met' if speed >= 10 else 'NOT met'}); whole runs (the table's with its front measured "
          f"whole): {wall_measure:.2f} s against {per_table:.3f} s: {whole:.1f}x")
    if errs:
        worst = max(abs(e) for e in errs)
        print(f"   front re-measured: {len(errs)} trials, table vs measured: mean {statistics.mean(errs):+.1%}, "
              f"worst {worst:.1%} (goal within 10%: {'met' if worst <= 0.10 else 'NOT met'})")
        within = sum(abs(e) <= 0.10 for e in errs)
        print(f"     within 10%: {within} of {len(errs)}")
        final = [float(r["latency_table_all_measured_error"]) for r in rows
                 if r.get("latency_table_all_measured_error")]
        if final:  # the same front, its table figures once the entries its trials predicted were measured
            print(f"   the same front's table figures with every entry measured (the search's term): mean "
                  f"{statistics.mean(final):+.1%}, worst {max(abs(e) for e in final):.1%}, within 10%: "
                  f"{sum(abs(e) <= 0.10 for e in final)} of {len(final)}")
        # the predictions' share of the error: the front's trials with every entry measured against the others
        for label, pick in (("no entry predicted", lambda r: not float(r.get("latency_entries_predicted") or 0)),
                            ("some entries predicted", lambda r: float(r.get("latency_entries_predicted") or 0) > 0)):
            sub = [_table_ms(r) / float(r["latency_remeasured_ms"]) - 1 for r in rows
                   if r.get("latency_remeasured_ms") and _table_ms(r) and pick(r)]
            if sub:
                print(f"     {label}: {len(sub)} trials, mean {statistics.mean(sub):+.1%}, "
                      f"worst {max(abs(e) for e in sub):.1%}")


def _table_ms(row: dict[str, str]) -> float:
    """A trial's table latency (ms; 0 without one): its one latency column where its source is the table (older
    studies wrote it twice, as ``latency_table_ms`` too)."""
    text = row.get("latency_table_ms") or (row.get("latency_ms") if row.get("latency_source") == "table" else "")
    return float(text) if text else 0.0


def csvrows(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--archs", type=int, default=100)
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--measure-trials", type=int, default=30,
                        help="trials of the --latency measure search (its cost is per trial; default 30)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--quick", action="store_true",
                        help="3 processes, 6 Archs, 8 trials, 20 s, 1 calibration point a space (CI)")
    parser.add_argument("--parts", default="1234")
    parser.add_argument("--cache", type=Path, help="start from this results cache: its table entries are kept, its "
                                                   "whole-network latencies and per-network term dropped (so "
                                                   "those are measured again); the build times then say little")
    parser.add_argument("--keep", type=Path, help="use this new folder as the results folder and keep it (the cache, "
                                                  "the studies), to look into the figures afterwards")
    args = parser.parse_args()
    if args.keep is not None and args.keep.exists() and any(args.keep.iterdir()):
        parser.error(f"--keep {args.keep}: the folder is not empty (fix: give a new folder)")
    if args.quick:
        args.processes, args.archs, args.trials, args.measure_trials, args.seconds = 3, 6, 8, 4, 20.0
    warnings.simplefilter("ignore")
    from designspace.evaluate.measure.latency import Context

    print(f"context: {Context.local().describe()}; {_load()}")
    with contextlib.ExitStack() as stack:
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            tmp = str(args.keep)
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory())
        os.environ["DESIGNSPACE_RESULTS"] = tmp
        if args.cache is not None:
            import sqlite3

            db = sqlite3.connect(Path(tmp) / "cache.sqlite")
            sqlite3.connect(args.cache).backup(db)
            db.close()
            n = _rows(Path(tmp) / "cache.sqlite", drop=("latency", "lut-fit"))
            print(f"   started from {args.cache}: {n} table entries kept, whole-network latencies and the fit dropped")
        if "1" in args.parts:
            part1(args.processes)
        if "2" in args.parts:
            part2(args.seconds)
        if "3" in args.parts:
            part3(args.archs, Path(tmp), args.quick)
        if "4" in args.parts:
            part4(args.trials, args.measure_trials, Path(tmp))


if __name__ == "__main__":
    main()
