"""Validation of the training-free proxies against the published ImageNet-1K top-1 of the zoo models.

Run: python benchmarks/bench_proxies.py [--seed 0] [--write-reference]

Computes every proxy (and the combined estimate) for the 17 zoo models with a published top-1 (SMT-L has
none), then prints Kendall tau and Spearman rho against top-1 overall and within MAC bands, with the
parameter count and MACs as baselines, and the seconds per proxy per model. ``--write-reference`` stores
the proxies' mean and standard deviation over these models in ``designspace/data/proxy_reference.json``
(the combined estimate standardizes each proxy with them).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

from scipy.stats import kendalltau, spearmanr

from designspace import zoo
from designspace.evaluate.accuracy.estimate import COMBINATIONS, DEFAULT, combined, estimate
from designspace.evaluate.accuracy.proxies import PROXIES, compute_proxies
from designspace.evaluate.counts.analytic import count

BANDS = ((0.0, 0.7), (0.7, 1.7), (1.7, math.inf))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write-reference", action="store_true")
    args = parser.parse_args()
    rows = []
    for name in zoo.names():
        arch = zoo.load(name)
        pub = zoo.published_for(arch)
        if pub is None or pub.top1 is None:
            continue
        scores = compute_proxies(arch, seed=args.seed)
        rows.append({"name": name, "top1": pub.top1, "macs_g": count(arch).macs_g, **scores.values,
                     "seconds": scores.seconds})
        print(f"  {name:20s} top-1 {pub.top1:5.1f}  " + "  ".join(f"{k} {v:9.3f}" for k, v in scores.values.items())
              + "   s: " + " ".join(f"{v:.2f}" for v in scores.seconds.values()), flush=True)

    if args.write_reference:
        ref = {"models": [r["name"] for r in rows], "seed": args.seed,
               "proxies": {p: {"mean": statistics.mean(r[p] for r in rows),
                               "std": statistics.stdev(r[p] for r in rows)} for p in PROXIES}}
        path = Path(__file__).resolve().parent.parent / "designspace" / "data" / "proxy_reference.json"
        path.write_text(json.dumps(ref, indent=2) + "\n")
        print(f"\nwrote {path}")

    for key, proxies in COMBINATIONS.items():
        for r in rows:
            r[key] = combined({p: r[p] for p in proxies}, proxies)

    names = list(PROXIES) + list(COMBINATIONS)
    print(f"\nrank correlation with published top-1 ({len(rows)} models; seed {args.seed}):")
    header = f"{'proxy':22s} {'tau':>6s} {'rho':>6s}" + "".join(
        f"   {lo:g}-{hi:g} G (n, tau)" for lo, hi in BANDS)
    print(header)
    results = {}
    for p in names:
        top, val = [r["top1"] for r in rows], [r[p] for r in rows]
        tau, rho = kendalltau(val, top)[0], spearmanr(val, top)[0]
        line = f"{p:22s} {tau:6.3f} {rho:6.3f}"
        for lo, hi in BANDS:
            band = [r for r in rows if lo <= r["macs_g"] < hi]
            bt = kendalltau([r[p] for r in band], [r["top1"] for r in band])[0] if len(band) > 2 else float("nan")
            line += f"   {len(band):2d} {bt:6.3f}        "
        results[p] = (tau, rho)
        print(line)
    best = max(results, key=lambda p: (results[p][0], results[p][1]))
    base = results["params"]
    print(f"\nbest by Kendall tau: {best} (tau {results[best][0]:.3f}, rho {results[best][1]:.3f}); "
          f"parameter count: tau {base[0]:.3f}, rho {base[1]:.3f}")
    if results[best][0] <= base[0]:
        print("no proxy beats the parameter count on these models")
    print("\nseconds per proxy (mean over models; max):")
    for p in PROXIES:
        times = [r["seconds"][p] for r in rows]
        print(f"   {p:10s} mean {statistics.mean(times):6.2f}   max {max(times):6.2f}")
    arch = zoo.load("emo_6m")
    for name in (DEFAULT, best if best != DEFAULT else "zico"):
        start = time.perf_counter()
        estimate(arch, name, seed=args.seed)
        took = time.perf_counter() - start
        goal = f"  goal <= 2 s: {'met' if took <= 2 else 'NOT met'}" if name == DEFAULT else ""
        print(f"estimate {name!r} of emo_6m ({count(arch).macs_g:.2f} GMACs): {took:.4f} s"
              + (" (the default)" if name == DEFAULT else "") + goal)


if __name__ == "__main__":
    main()
