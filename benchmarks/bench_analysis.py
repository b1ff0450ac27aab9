"""``designspace analyze`` on a 2,000-sample space, and the device features' cost per never-seen network.

Run: python benchmarks/bench_analysis.py [--space mobile] [--samples 2000] [--results DIR]
Goals: issue 31, ``analyze`` on a 2,000-sample space in under a minute here with the counts and the device features
cached; issue 28 item 4, a never-seen network's device features within 10x the cost of its counts once its
components' features are cached.

Every figure is measured in this run, each ``analyze`` as the command a user types (a fresh process, imports
included), in a results folder of its own (a temporary one unless ``--results``):

1. ``analyze`` with an empty cache: every (component, site) of the samples run once on the meta device (the figure
   a first analysis of a space costs; no goal);
2. ``analyze`` again, the components' features read from the evaluation cache: the goal's figure;
3. in this process: networks of the space never seen before (another seed), their features composed from cached
   components, against their analytic counts, per network (milliseconds, median of all), and the whole-network
   trace the features used to cost.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_S = 60.0
GOAL_RATIO = 10.0


def timed_analyze(space: str, samples: int, results: Path) -> float:
    env = {**os.environ, "DESIGNSPACE_RESULTS": str(results)}
    cmd = [sys.executable, "-m", "designspace", "analyze", space, "--space", "--samples", str(samples), "--json"]
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"analyze failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return seconds


def per_network(space_name: str, n: int, results: Path) -> tuple[float, float, float, float, float]:
    """Per never-seen network: features ms at first sight, features ms with every component cached, counts ms,
    whole-network trace ms, and the share of component runs found cached at first sight."""
    os.environ["DESIGNSPACE_RESULTS"] = str(results)
    from designspace.evaluate.counts.analytic import count
    from designspace.evaluate.devices import features
    from designspace.space import load_space

    space = load_space(space_name)
    rng = random.Random(12345)  # not the analysis' seed: networks it never saw
    archs = [space.sample(rng) for _ in range(n)]
    from designspace.evaluate.devices import feature_cache

    feats, counts, traces = [], [], []
    before, pending = features._alone.cache_info(), len(feature_cache._pending)
    for a in archs:
        t = time.perf_counter()
        count(a)
        counts.append(time.perf_counter() - t)
        t = time.perf_counter()
        features.component_features(a)
        feats.append(time.perf_counter() - t)
    after = features._alone.cache_info()
    features._cached.cache_clear()  # forget the networks, keep their components: a network met for the first time
    composed = []
    for a in archs:
        t = time.perf_counter()
        features.component_features(a)
        composed.append(time.perf_counter() - t)
    for a in archs[:10]:
        t = time.perf_counter()
        features.traced_component_features(a)
        traces.append(time.perf_counter() - t)
    calls = (after.hits + after.misses) - (before.hits + before.misses)
    new_runs = len(feature_cache._pending) - pending  # components run on the meta device (not in any cache)
    return (statistics.median(feats) * 1e3, statistics.median(composed) * 1e3, statistics.median(counts) * 1e3,
            statistics.median(traces) * 1e3, 1.0 - new_runs / max(calls, 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--space", default="mobile")
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--networks", type=int, default=200, help="never-seen networks for the per-network figure")
    ap.add_argument("--results", type=Path, help="results folder (default: a new temporary one)")
    args = ap.parse_args()
    results = args.results or Path(tempfile.mkdtemp(prefix="bench-analysis-")) / "results"
    print(f"designspace analyze {args.space} --samples {args.samples} (results in {results}); "
          f"{os.cpu_count()} CPUs here, shared")
    first = timed_analyze(args.space, args.samples, results)
    print(f"  1. empty cache (every component run once on the meta device): {first:.1f} s")
    second = timed_analyze(args.space, args.samples, results)
    verdict = "met" if second < GOAL_S else "NOT met"
    print(f"  2. counts and device features cached:                          {second:.1f} s  "
          f"(goal < {GOAL_S:.0f} s: {verdict})")
    first_ms, f_ms, c_ms, t_ms, share = per_network(args.space, args.networks, results)
    ratio = f_ms / c_ms
    print(f"  3. never-seen networks of {args.space} ({args.networks}, medians per network): counts {c_ms:.2f} ms; "
          f"device features composed from cached components {f_ms:.2f} ms, {ratio:.1f}x the counts "
          f"(goal <= {GOAL_RATIO:.0f}x: {'met' if ratio <= GOAL_RATIO else 'NOT met'}); at first sight, "
          f"{share:.0%} of their component runs cached by the analysis, {first_ms:.2f} ms; "
          f"the whole-network trace {t_ms:.0f} ms")


if __name__ == "__main__":
    main()
