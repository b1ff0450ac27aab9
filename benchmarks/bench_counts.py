"""Analytic counting vs fvcore tracing on the zoo: throughput, speed-up, agreement.

Run: python benchmarks/bench_counts.py [--repeat N]
Goal (issue "Blocks, architecture documents and the published zoo"): >= 1,000 Archs/s analytic,
>= 100x fvcore, exact agreement. Both rates are measured in this one run on this machine.
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings

import torch

import designspace as ds
from designspace import zoo
from designspace.evaluate.counts.analytic import _count_one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50, help="analytic passes over the zoo")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    archs = [zoo.load(n) for n in zoo.names()]

    # analytic: several passes over the whole zoo, best pass kept (shared machine). "cold" clears the
    # per-(block, site) cache before each pass, so repeated blocks within a model are the only reuse;
    # "warm" is what a long search sees once its blocks have been met.
    def passes(cold: bool) -> list[float]:
        out = []
        for _ in range(args.repeat):
            if cold:
                _count_one.cache_clear()
            start = time.perf_counter()
            for a in archs:
                ds.count(a)
            out.append(time.perf_counter() - start)
        return out

    cold, warm = passes(cold=True), passes(cold=False)
    analytic = [ds.count(a) for a in archs]
    analytic_rate = len(archs) / min(cold)
    median_rate = len(archs) / sorted(cold)[len(cold) // 2]
    warm_rate = len(archs) / min(warm)

    # fvcore: one trace per model (building the model is not included)
    print(f"{'model':20s} {'analytic MACs':>15s} {'traced MACs':>15s} {'params':>12s} {'trace s':>8s}  agree")
    trace_total, agree_all = 0.0, True
    for arch, a in zip(archs, analytic, strict=True):
        model = ds.build_model(arch)
        start = time.perf_counter()
        t = ds.trace_count(arch, model)
        elapsed = time.perf_counter() - start
        trace_total += elapsed
        agree = a.macs == t.macs and a.params == t.params
        agree_all &= agree
        verdict = "yes" if agree else "NO"
        print(f"{arch.name:20s} {a.macs:>15,d} {t.macs:>15,d} {a.params:>12,d} {elapsed:>8.2f}  {verdict}")
    trace_rate = len(archs) / trace_total

    print()
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread")
    print(f"analytic: {analytic_rate:,.0f} Archs/s cold (best of {args.repeat} passes over {len(archs)} zoo models; "
          f"median pass {median_rate:,.0f}); {warm_rate:,.0f} Archs/s warm  "
          f"goal >= 1,000: {'met' if analytic_rate >= 1000 else 'NOT met'}")
    print(f"fvcore:   {trace_rate:,.2f} Archs/s (trace only, model built beforehand)")
    speedup = analytic_rate / trace_rate
    print(f"speed-up: {speedup:,.0f}x  goal >= 100x: {'met' if speedup >= 100 else 'NOT met'}")
    print(f"agreement: {'exact on every model' if agree_all else 'MISMATCH'}")


if __name__ == "__main__":
    main()
