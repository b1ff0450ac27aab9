"""Which latency estimator survives a noisy host? The evidence behind the protocol (docs/latency.md).

Run: python benchmarks/study_latency_estimators.py [--seconds 40] [--window 3]

For each model, single-thread ONNX Runtime runs back to back for ``--seconds``; the trace is then cut
into windows of ``--window`` seconds (what one measurement may spend), and each estimator is computed
per window. The spread of an estimator is (max - min) / mean over the windows: what repeated
measurements of the same model would disagree by. Also printed: how much of the time the host ran slow
and how long its slow and fast stretches lasted.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np

import designspace as ds
from designspace.evaluate.measure.onnx import export_onnx, onnx_session

MODELS = ["mobilenetv2_100", "emo_1m", "iformer_t"]


def trace(name: str, seconds: float) -> np.ndarray:
    model = ds.build_model(name).eval()
    x = model.example_input()
    session = onnx_session(export_onnx(model, x), threads=1)
    feed = {"input": x.numpy()}
    for _ in range(20):
        session.run(None, feed)
    times, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter_ns()
        session.run(None, feed)
        times.append((time.perf_counter_ns() - t) / 1e6)
    return np.array(times)


def estimators(window: np.ndarray, k: int = 5) -> dict[str, float]:
    rounds = [window[i:i + k] for i in range(0, len(window) - k + 1, k)]
    medians = [float(np.median(r)) for r in rounds]
    return {"mean": float(window.mean()), "median": float(np.median(window)), "p10": float(np.percentile(window, 10)),
            "p5": float(np.percentile(window, 5)), "min of round medians": min(medians),
            "minimum": float(window.min())}


def stretches(times: np.ndarray) -> tuple[float, float, float]:
    """Fraction of runs in a slow stretch, longest fast and longest slow stretch (seconds)."""
    floor = np.percentile(times, 10)
    smooth = np.array([np.median(times[max(0, i - 2):i + 3]) for i in range(len(times))])
    slow = smooth > 1.15 * floor
    longest = {True: 0.0, False: 0.0}
    current, acc = bool(slow[0]), 0.0
    for s, t in zip(slow, times, strict=True):
        if bool(s) != current:
            longest[current] = max(longest[current], acc)
            current, acc = bool(s), 0.0
        acc += t / 1000
    longest[current] = max(longest[current], acc)
    return float(slow.mean()), longest[False], longest[True]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--window", type=float, default=3.0)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    for name in MODELS:
        times = trace(name, args.seconds)
        slow, fast_s, slow_s = stretches(times)
        per = int(args.window * 1000 / float(np.median(times)))
        windows = [times[i:i + per] for i in range(0, len(times) - per + 1, per)]
        values = [estimators(w) for w in windows]
        print(f"{name}: {len(times)} runs in {args.seconds:g} s; slow {slow:.0%} of the time; longest fast stretch "
              f"{fast_s:.1f} s, longest slow stretch {slow_s:.1f} s; {len(windows)} windows of {args.window:g} s")
        for key in values[0]:
            v = [e[key] for e in values]
            print(f"   {key:22s} mean {statistics.mean(v):8.3f} ms   spread over windows "
                  f"{(max(v) - min(v)) / statistics.mean(v):6.1%}")


if __name__ == "__main__":
    main()
