"""Latency protocol: stability of the estimator, wall time, cross-model ratios.

Run: python benchmarks/bench_latency.py [--repeats 5]

1. MobileNetV2-1.0, EMO-1M and iFormer-T measured ``--repeats`` times each in one process at 1 thread
   (ONNX Runtime, default protocol, no cache), repetitions interleaved across the models. Prints every
   estimate, the spread of the estimator per model ((max - min) / mean), and whether the goal (<= 2%) was
   met or the machine was too noisy to meet it: the host counts as too noisy when the median run exceeds
   the minimum by more than the protocol's ``noisy`` threshold on average (most runs were slowed).
2. Wall time of ``evaluate`` on ~1 GMAC models (EMO-6M, 0.96 GMACs; iFormer-S, 1.10) with the default
   protocol, build and ONNX export included; goal <= 5 s.
3. Latency ratios between zoo models from the estimates of part 1 (and iFormer-M).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import designspace as ds
from designspace.evaluate.evaluation import evaluate
from designspace.evaluate.latency import Context, Protocol, measure_model

MODELS = ["mobilenetv2_100", "emo_1m", "iformer_t", "iformer_m"]
STABILITY = MODELS[:3]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    protocol = Protocol()
    ctx = Context.local("onnxruntime", threads=1, batch=1, resolution=224)
    print(f"context: {ctx.describe()}")
    models = {n: ds.build_model(n).eval() for n in MODELS}
    results: dict[str, list] = {n: [] for n in MODELS}
    for rep in range(args.repeats):
        for name in MODELS if rep == 0 else STABILITY:
            results[name].append(measure_model(models[name], ctx, protocol))

    print(f"\n1. estimator stability, {args.repeats} measurements each (minimum over timed runs, ms; "
          "u = unconfirmed, s = slow-host, n = noisy):")
    spreads, excess = [], []
    for name in STABILITY:
        ms = [r.ms for r in results[name]]
        spread = (max(ms) - min(ms)) / statistics.mean(ms)
        spreads.append(spread)
        excess += [r.median_ms / r.ms - 1 for r in results[name]]
        marks = ["".join(f[0] for f in r.flags) for r in results[name]]
        trusted = [r.ms for r in results[name] if not {"unconfirmed", "slow-host"} & set(r.flags)]
        kept = (f"{(max(trusted) - min(trusted)) / statistics.mean(trusted):5.2%} over {len(trusted)}"
                if len(trusted) > 1 else "n/a")
        print(f"   {name:16s} " + " ".join(f"{m:7.3f}{k:<2s}" for m, k in zip(ms, marks, strict=True))
              + f"  spread {spread:5.2%} (without u/s-flagged: {kept})   median/min "
              f"{statistics.mean(r.median_ms / r.ms for r in results[name]):.3f}")
    worst = max(spreads)
    noise = statistics.mean(excess)
    if worst <= 0.02:
        verdict = f"goal <= 2%: met (worst spread {worst:.2%})"
    elif noise > protocol.noisy:
        verdict = (f"goal <= 2%: NOT met (worst spread {worst:.2%}); the machine was too noisy: runs were on average "
                   f"{noise:.0%} slower than the minimum (threshold {protocol.noisy:.0%})")
    else:
        verdict = f"goal <= 2%: NOT met (worst spread {worst:.2%}) although the machine looked quiet ({noise:.0%})"
    print("   " + verdict)

    print("\n2. wall time of evaluate() on ~1 GMAC models with the default protocol (build + export + measure):")
    for name in ("emo_6m", "iformer_s"):
        start = time.perf_counter()
        ev = evaluate(name, cache=False)
        wall = time.perf_counter() - start
        assert ev.latency is not None
        print(f"   {name} ({ev.macs / 1e9:.3f} GMACs): {ev.latency.ms:.2f} ms, {wall:.2f} s wall "
              f"({ev.latency.rounds} rounds, flags {list(ev.latency.flags)})  goal <= 5 s: "
              f"{'met' if wall <= 5 else 'NOT met'}")

    print("\n3. latency ratios (minimum estimates, mean over measurements):")
    mean = {n: statistics.mean(r.ms for r in results[n]) for n in MODELS}
    base = mean["mobilenetv2_100"]
    for name in MODELS[1:]:
        print(f"   {name} / mobilenetv2_100 = {mean[name] / base:.3f}")


if __name__ == "__main__":
    main()
