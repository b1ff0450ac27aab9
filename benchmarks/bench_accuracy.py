"""Validation of the top-1 predictor and of every other accuracy estimate on the published (Arch, top-1) points.

Run: python benchmarks/bench_accuracy.py [--proxy-seconds 1200] [--no-proxies] [--seeds 0 1] [--proxy NAME] [--json OUT]

The points are the zoo and the seed papers' ablation tables (``designspace/data/points/``), one data point per
distinct network (``designspace.evaluate.accuracy.top1.training_set``). For each estimate it prints:

* leave-one-out MAE: each network predicted by a model refitted without it (top-1 points);
* leave-one-table-out MAE: each ablation table predicted by a model refitted without every network of that
  table (the table's reference model too, wherever else it appears), over the tables' networks;
* Kendall tau within each ablation table, of the held-out-table predictions against the published top-1, their
  mean over tables, and the share of the tables' ordered pairs ranked right (ties in either count half);
* tau over the zoo (the cross-family ranking ``bench_proxies.py`` reports).

The predictor is the whole pipeline of ``top1.fit_arrays`` (ridge strength chosen inside each refit). Baselines:
log10 MACs, log10 parameters and each training-free proxy; for their MAE a one-variable least-squares line
is refitted the same way (their taus need no fit). Proxies of networks are cached in
``results/bench_accuracy_proxies.json``; networks are computed smallest first until ``--proxy-seconds`` is
spent, and the ones left out are listed (a proxy's figures are then over the networks it has).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import kendalltau

from designspace.evaluate.accuracy.top1 import (
    data_block_types,
    feature_groups,
    feature_names,
    features,
    fit_arrays,
    predict_top1,
    training_set,
)
from designspace.evaluate.counts.analytic import count

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "results" / "bench_accuracy_proxies.json"
PROXY_NAMES = ("synflow", "naswot", "zico", "meco")

Fit = Callable[[np.ndarray, np.ndarray], Callable[[np.ndarray], np.ndarray]]


def _predictor(names: tuple[str, ...]) -> Fit:
    def fit(x: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        model = fit_arrays(x, y, names=names, groups=feature_groups(names))
        return lambda xs: np.asarray([model.predict_vector(row).mean for row in xs])
    return fit


def _line_fit(x: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    slope, icept = np.polyfit(x[:, 0], y, 1)
    return lambda xs: slope * xs[:, 0] + icept


def _proxies(rows: list[tuple], budget: float, seed: int = 0,
             names: tuple[str, ...] = PROXY_NAMES) -> tuple[dict[str, dict[str, float]], list[str]]:
    """Proxy values per fingerprint (cached; seed 0 under the bare fingerprint, others under ``FP:sSEED``)."""
    from designspace.evaluate.accuracy.proxies import compute_proxies

    cache = json.loads(CACHE.read_text()) if CACHE.is_file() else {}
    left: list[str] = []
    start = time.perf_counter()

    def key(arch: Any) -> str:
        return arch.fingerprint if seed == 0 else f"{arch.fingerprint}:s{seed}"

    for rid, arch, _, _ in sorted(rows, key=lambda r: count(r[1]).macs):
        if key(arch) in cache and all(p in cache[key(arch)] for p in names):
            continue
        if time.perf_counter() - start > budget:
            left.append(rid)
            continue
        t0 = time.perf_counter()
        cache[key(arch)] = {**cache.get(key(arch), {}), **compute_proxies(arch, names, seed=seed).values}
        print(f"  proxies of {rid}: {time.perf_counter() - t0:.1f} s", flush=True)
        CACHE.parent.mkdir(exist_ok=True)
        CACHE.write_text(json.dumps(cache, indent=1, sort_keys=True))
    return {r[1].fingerprint: cache[key(r[1])] for r in rows
            if key(r[1]) in cache and all(p in cache[key(r[1])] for p in names)}, left


def _pairs(pred: list[float], top: list[float]) -> tuple[float, int]:
    """(pairs ranked right, counting ties as half; pairs with different published top-1)."""
    right, n = 0.0, 0
    for i in range(len(top)):
        for j in range(i + 1, len(top)):
            if top[i] == top[j]:
                continue
            n += 1
            d = (pred[i] - pred[j]) * (top[i] - top[j])
            right += 1.0 if d > 0 else 0.5 if d == 0 else 0.0
    return right, n


def evaluate(name: str, ids: list[str], x: np.ndarray, y: np.ndarray, groups: list[tuple[str, ...]],
             fit: Fit, raw: np.ndarray | None) -> dict:
    """LOO and leave-one-table-out MAE, within-table taus of one estimate (``raw``: its values, for taus)."""
    n = len(y)
    loo = np.array([fit(np.delete(x, i, 0), np.delete(y, i))(x[i:i + 1])[0] for i in range(n)])
    tables = sorted({g for gs in groups for g in gs if g != "zoo"})
    out: dict = {"name": name, "n": n, "loo_mae": float(np.mean(np.abs(loo - y))), "tables": {}}
    errs, taus, right, pairs = [], [], 0.0, 0
    for t in tables:
        inside = [i for i in range(n) if t in groups[i]]
        if len(inside) < 2:
            continue
        keep = [i for i in range(n) if i not in inside]
        pred = fit(x[keep], y[keep])(x[inside])
        errs.extend(np.abs(pred - y[inside]))
        score = pred if raw is None else raw[inside]
        tau = kendalltau(score, y[inside])[0]
        r, p = _pairs(list(score), list(y[inside]))
        right, pairs = right + r, pairs + p
        out["tables"][t] = {"n": len(inside), "tau": None if np.isnan(tau) else float(tau), "mae": float(
            np.mean(np.abs(pred - y[inside])))}
        if not np.isnan(tau):
            taus.append(tau)
    zoo = [i for i in range(n) if "zoo" in groups[i]]
    zoo_score = loo[zoo] if raw is None else raw[zoo]
    out.update(loto_mae=float(np.mean(errs)), tau_mean=float(np.mean(taus)), pairs_right=right / max(pairs, 1),
               pairs=pairs, zoo_tau=float(kendalltau(zoo_score, y[zoo])[0]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxy-seconds", type=float, default=1200.0, help="time cap for uncached proxies")
    parser.add_argument("--no-proxies", action="store_true")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1],
                        help="seeds of the proxies' inputs and weights (a proxy ranks by its mean over them)")
    parser.add_argument("--proxy", action="append", choices=PROXY_NAMES, help="only these proxies (repeat)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    rows = training_set()
    ids = [r[0] for r in rows]
    y = np.asarray([r[2] for r in rows])
    groups = [r[3] for r in rows]
    mix = data_block_types([r[1] for r in rows])
    names = feature_names(mix)
    x = np.stack([features(r[1], mix)[0] for r in rows])
    print(f"{len(rows)} distinct networks with a published top-1, "
          f"{len({g for gs in groups for g in gs if g != 'zoo'})} ablation tables")
    results = _counts_and_predictor(ids, x, y, groups, names)
    subset: list[dict] = []
    if not args.no_proxies:
        chosen = tuple(args.proxy or PROXY_NAMES)
        per_seed, left = {}, set()
        for seed in args.seeds:
            per_seed[seed], missed = _proxies(rows, args.proxy_seconds / len(args.seeds), seed, chosen)
            left.update(missed)
        if left:
            print(f"proxies not computed within {args.proxy_seconds:g} s for: {', '.join(sorted(left))}")
        have = [i for i, r in enumerate(rows) if all(r[1].fingerprint in v for v in per_seed.values())]
        sub = ([ids[i] for i in have], x[have], y[have], [groups[i] for i in have])
        if left:  # the same networks for every estimate, so that the proxies' figures compare
            subset = _counts_and_predictor(*sub, names)
        for p in chosen:
            runs = []
            for seed, values in per_seed.items():
                col = np.asarray([[values[rows[i][1].fingerprint][p]] for i in have])
                runs.append(evaluate(f"{p} (seed {seed})", sub[0], col, sub[2], sub[3], _line_fit, col[:, 0]))
            subset.extend(runs)
            if len(runs) > 1:  # a proxy is ranked by its mean over seeds: one seed's luck is not its merit
                subset.append({"name": f"{p} (mean)", "n": runs[0]["n"], "tables": {}, "pairs": runs[0]["pairs"],
                               **{k: float(np.mean([r[k] for r in runs]))
                                  for k in ("loo_mae", "loto_mae", "tau_mean", "pairs_right", "zoo_tau")}})
        if not left:
            results, subset = results + subset, []
    _print(results, f"all {len(rows)} networks")
    if subset:
        _print(subset, f"the {subset[0]['n']} networks with proxies (predictor and lines refitted on them)")
    best = max(_rankable(results), key=lambda r: (r["pairs_right"], r["tau_mean"]))
    print(f"best within tables over all networks (pairs ranked right, then mean tau): {best['name']} "
          f"({best['pairs_right']:.3f}, tau {best['tau_mean']:.3f})")
    if subset:
        sbest = max(_rankable(subset), key=lambda r: (r["pairs_right"], r["tau_mean"]))
        print(f"best within tables over the networks with proxies: {sbest['name']} ({sbest['pairs_right']:.3f}, "
              f"tau {sbest['tau_mean']:.3f})")
    loo_cov, loto_cov, extra = _coverage(x, y, groups, names)
    print(f"predictor's 95% interval holds the published top-1 of {loo_cov:.0%} of networks left out one at a "
          f"time, {loto_cov:.0%} of networks of a left-out table ({extra} of those predictions flagged extrapolated)")
    arch = rows[ids.index("smt_t")][1] if "smt_t" in ids else rows[0][1]
    predict_top1(arch)
    t0 = time.perf_counter()
    for _ in range(200):
        predict_top1(arch)
    took = (time.perf_counter() - t0) / 200 * 1e3
    print(f"predict_top1 of {arch.name}: {took:.3f} ms per call (goal < 5 ms: {'met' if took < 5 else 'NOT met'})")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "subset": subset, "best": best["name"]}, indent=1))


def _coverage(x: np.ndarray, y: np.ndarray, groups: list[tuple[str, ...]],
              names: tuple[str, ...]) -> tuple[float, float, int]:
    """Share of held-out networks whose published top-1 lies in the predictor's 95% interval: leave-one-out,
    leave-one-table-out; and how many held-out-table predictions were flagged extrapolated."""
    n = len(y)
    loo = []
    for i in range(n):
        m = fit_arrays(np.delete(x, i, 0), np.delete(y, i), names=names, groups=feature_groups(names))
        p = m.predict_vector(x[i])
        loo.append(p.lo <= y[i] <= p.hi)
    loto, flagged = [], 0
    for t in sorted({g for gs in groups for g in gs if g != "zoo"}):
        inside = [i for i in range(n) if t in groups[i]]
        keep = [i for i in range(n) if i not in inside]
        m = fit_arrays(x[keep], y[keep], names=names, groups=feature_groups(names))
        for i in inside:
            p = m.predict_vector(x[i])
            loto.append(p.lo <= y[i] <= p.hi)
            flagged += p.extrapolated
    return float(np.mean(loo)), float(np.mean(loto)), flagged


def _rankable(results: list[dict]) -> list[dict]:
    """The rows that compete for the default: deterministic estimates, and each proxy's mean over seeds (or its
    only seed)."""
    means = {r["name"].split(" (")[0] for r in results if r["name"].endswith("(mean)")}
    return [r for r in results if not (" (seed " in r["name"] and r["name"].split(" (")[0] in means)]


def _counts_and_predictor(ids: list[str], x: np.ndarray, y: np.ndarray, groups: list[tuple[str, ...]],
                          names: tuple[str, ...]) -> list[dict]:
    out = [evaluate("top1 (predictor)", ids, x, y, groups, _predictor(names), None)]
    for base in ("log10_macs", "log10_params"):
        col = x[:, [names.index(base)]]
        out.append(evaluate(base, ids, col, y, groups, _line_fit, col[:, 0]))
    return out


def _print(results: list[dict], title: str) -> None:
    tables = sorted({t for r in results for t in r["tables"]})
    print(f"\n{title}:")
    print(f"{'estimate':18s} {'n':>3s} {'LOO MAE':>8s} {'LOTO MAE':>8s} {'tau/table':>9s} {'pairs':>6s} "
          f"{'zoo tau':>7s}  " + " ".join(f"{t[:14]:>14s}" for t in tables))
    for r in results:
        cells = " ".join(f"{r['tables'][t]['tau']:14.2f}" if t in r["tables"] and r["tables"][t]["tau"] is not None
                         else f"{'-':>14s}" for t in tables)
        print(f"{r['name']:18s} {r['n']:3d} {r['loo_mae']:8.2f} {r['loto_mae']:8.2f} {r['tau_mean']:9.3f} "
              f"{r['pairs_right']:6.3f} {r['zoo_tau']:7.3f}  {cells}")
    print("(table sizes: " + ", ".join(f"{t} {results[0]['tables'][t]['n']}" for t in tables) + "; "
          f"{results[0]['pairs']} ordered pairs with different top-1)")


if __name__ == "__main__":
    main()
