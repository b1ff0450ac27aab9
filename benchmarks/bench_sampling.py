"""Sampling throughput and family coverage of the shipped spaces.

Run: python benchmarks/bench_sampling.py [-n 10000]
Goal (issue "Search spaces in YAML"): 5,000 Archs/s from spaces/mobile.yaml. Every figure is measured in
this run: Archs/s is the best of three timed passes (a shared machine is noisy; the best pass is the
least disturbed), and each Arch is a validated ``Arch`` (decoded, repaired if needed, placement-checked).
"""

from __future__ import annotations

import argparse
import collections
import random
import time

from designspace.space import load_space, shipped


def rate(space_name: str, n: int) -> tuple[float, float, float]:
    space = load_space(space_name)
    rng = random.Random(0)
    for _ in range(200):  # warm the caches
        space.sample(rng)
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            space.sample(rng)
        best = max(best, n / (time.perf_counter() - start))
    repaired = rejected = 0
    for _ in range(2000):
        d = space.decode(space.sample_values(rng))
        repaired += bool(d.repairs)
        rejected += d.arch is None
    return best, repaired / 2000, rejected / 2000


def coverage(space_name: str, n: int) -> list[dict[str, int]]:
    space = load_space(space_name)
    rng = random.Random(2026)
    seen: list[collections.Counter[str]] = [collections.Counter() for _ in space.doc.stages]
    for _ in range(n):
        for i, stage in enumerate(space.sample(rng).stages):
            seen[i].update({b.type for b in stage.blocks})
    return [{t: seen[i][t] for t in sorted(types)} for i, types in enumerate(space.stage_types())]


def macs_percentiles(space_name: str, n: int = 1000) -> tuple[float, float, float]:
    """5th, 50th and 95th percentile of GMACs over ``n`` samples (seed 0)."""
    from designspace import count

    space = load_space(space_name)
    rng = random.Random(0)
    macs = sorted(count(space.sample(rng)).macs_g for _ in range(n))
    return macs[n // 20], macs[n // 2], macs[n - n // 20]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10_000, help="samples per space for coverage (default 10000)")
    args = parser.parse_args()
    print(f"{'space':14s} {'params':>6s} {'log10 n':>7s} {'Archs/s':>9s} {'repaired':>9s} {'rejected':>9s} "
          f"{'GMACs 5%':>9s} {'50%':>7s} {'95%':>7s}")
    for name in shipped.names():
        space = load_space(name)
        r, rep, rej = rate(name, 3000)
        lo, mid, hi = macs_percentiles(name)
        goal = "  (goal 5,000 Archs/s: " + ("met)" if r >= 5000 else "NOT met)") if name == "mobile" else ""
        print(f"{name:14s} {len(space.params):6d} {space.size_log10():7.1f} {r:9,.0f} {rep:9.1%} {rej:9.1%} "
              f"{lo:9.3g} {mid:7.3g} {hi:7.3g}{goal}")
    print(f"\nblocks drawn per stage in {args.n:,} samples (samples whose stage holds the type / allowed types):")
    for name in shipped.names():
        print(f"{name}:")
        for i, counts in enumerate(coverage(name, args.n)):
            missing = [t for t, c in counts.items() if c == 0]
            cells = ", ".join(f"{t} {c}" for t, c in counts.items())
            print(f"  stage {i + 1}: {cells}" + (f"   NEVER: {missing}" if missing else ""))


if __name__ == "__main__":
    main()
