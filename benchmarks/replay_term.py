"""The table's per-network term replayed on one kept ``bench_latency.py --parts 3 --keep DIR`` run: the same
measurements, the term fitted by the designspace on the path, scored on the run's test networks.

Run: python benchmarks/replay_term.py DIR

To compare two versions of the term on the same measurements, run it from each checkout
(``PYTHONPATH=/path/to/checkout python benchmarks/replay_term.py DIR``). The first run writes
``DIR/replay_data.json`` (the term's points and each test network's sum of entries, by type, and its two measured
figures), read with the cache keys of the code that ran the bench (so extract with that code); later runs, by any
version, read that file and measure nothing.

Prints, for the term fitted on all of the run's calibration networks and on 60 seeded subsets of each size (3 to
30 networks, as a space's own ``lut build`` gives a few), each subset also with one network slowed by 20% (a slow
stretch of the host met by both passes): the test networks' mean |error| against their two-pass figures, the
share within 10% and 5%, the worst error (mean over the fits), and the forms chosen.
"""

from __future__ import annotations

import collections
import inspect
import json
import random
import statistics
import sys
from pathlib import Path
from typing import Any


def _extract(keep: Path) -> dict[str, Any]:
    from designspace.arch import Arch
    from designspace.evaluate.cache import Cache
    from designspace.evaluate.measure.latency import Context
    from designspace.evaluate.table.entries import table_latency
    from designspace.evaluate.table.term import load_fit

    cache = Cache(keep / "cache.sqlite")
    fit = load_fit(Context.local(resolution=224), cache)
    if fit is None:
        sys.exit(f"error: {keep / 'cache.sqlite'} holds no per-network term for this code's context (fix: extract "
                 "with the code that ran the bench)")
    tests = []
    for row in json.loads((keep / "part3.json").read_text())["networks"]:
        if row["set"] == "test":
            a = Arch.from_dict(row["arch"])
            tab = table_latency(a, Context.local(resolution=a.resolution), cache)
            tests.append({"entries": tab.entries_ms, "by_type": [list(t) for t in tab.by_type],
                          "passes": row["passes_ms"]})
    points = [[p[0], p[1], p[2], [list(t) for t in p[-1]]] for p in fit.points]
    return {"points": points, "tests": tests}


def main() -> None:
    try:
        import designspace.evaluate.table.term as term
        from designspace.evaluate.measure.latency import Context
    except ImportError:  # a checkout from before the rooms of issue 28: the term and the context lived flat
        from designspace.evaluate.latency import Context  # type: ignore[no-redef]

        import designspace.evaluate.table as term  # type: ignore[no-redef]

    keep = Path(sys.argv[1])
    data_file = keep / "replay_data.json"
    if not data_file.exists():
        data_file.write_text(json.dumps(_extract(keep)))
    data = json.loads(data_file.read_text())
    # the term before issue 28 also took each network's count of layout changes: in a file extracted by that code
    # a point is [fingerprint, ms, entries ms, layout changes, sums by type] and a test network has "permutes"
    older = "n_permutes" in inspect.signature(term.TableFit.latency).parameters
    points = [(p[0], p[1], p[2], p[3] if len(p) == 5 else 0, tuple(map(tuple, p[-1]))) if older
              else (p[0], p[1], p[2], tuple(map(tuple, p[-1]))) for p in data["points"]]

    def score(pts: list[Any]) -> tuple[str, list[float]]:
        fit = term.fit_term(pts, Context.local())
        errors = []
        for t in data["tests"]:
            by = tuple(map(tuple, t["by_type"]))
            ms = fit.latency(t["entries"], t.get("permutes", 0), by) if older else fit.latency(t["entries"], by)
            errors.append(ms / min(t["passes"]) - 1)
        return fit.form, errors

    def line(fits: list[tuple[str, list[float]]]) -> str:
        errs = [e for _, es in fits for e in es]
        share = lambda band: statistics.mean(sum(abs(e) <= band for e in es) / len(es) for _, es in fits)  # noqa: E731
        forms = collections.Counter(f for f, _ in fits)
        return (f"mean |e| {statistics.mean(map(abs, errs)):5.2%}, within 10% {share(0.10):5.1%}, within 5% "
                f"{share(0.05):5.1%}, worst {statistics.mean(max(map(abs, es)) for _, es in fits):5.2%}; forms "
                + ", ".join(f"{f} {n}" for f, n in sorted(forms.items())))

    print(f"term of {'before issue 28' if older else 'this checkout'}; {len(points)} calibration networks, "
          f"{len(data['tests'])} test networks")
    print(f"   all {len(points):2d}:           " + line([score(points)]))
    rng = random.Random(7)
    totals: dict[bool, list[tuple[str, list[float]]]] = {False: [], True: []}
    for k in (3, 4, 6, 8, 12, 20, 30):
        fits: dict[bool, list[tuple[str, list[float]]]] = {False: [], True: []}
        for _ in range(60):
            sub = rng.sample(points, min(k, len(points)))
            fits[False].append(score(sub))
            i = rng.randrange(len(sub))
            slowed = [*sub[:i], (sub[i][0], sub[i][1] * 1.2, *sub[i][2:]), *sub[i + 1:]]
            fits[True].append(score(slowed))
        for slow in (False, True):
            totals[slow] += fits[slow]
            print(f"   {k:2d} networks{', one slowed' if slow else '            '}: {line(fits[slow])}")
    for slow in (False, True):
        print(f"   every subset{', one slowed' if slow else '            '}: {line(totals[slow])}")


if __name__ == "__main__":
    main()
