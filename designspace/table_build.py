"""A space's latency table built (``designspace lut build``: :func:`build_table`), and a table search's Pareto
front measured whole (:func:`remeasure_front`). It sits above the space, which it samples; the table itself is
:mod:`designspace.evaluate.table`'s. Design and evidence: docs/latency.md, "The per-block latency table"."""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from designspace.arch import Arch
from designspace.evaluate.cache import Cache
from designspace.evaluate.measure.latency import Context, MeasurementError, Protocol
from designspace.evaluate.sources import Table
from designspace.evaluate.table.entries import (
    ENTRY_PROTOCOL,
    calibrate_term,
    entry_of,
    entry_protocol,
    measure_entries,
    missing_entries,
    one_process,
    table_latency,
)
from designspace.evaluate.table.term import add_points, fit_summary, table_context_key
from designspace.plan import Placement, plan

__all__ = ["FrontFigures", "build_table", "calibration_archs", "remeasure_front"]

log = logging.getLogger(__name__)


def calibration_archs(space: Any, k: int, *, seed: int = 0, pool: int = 2000) -> list[Arch]:
    """``k`` seeded points of ``space`` that span its range of sizes, for the per-network term: ``pool`` points
    are drawn (seeded by ``seed``), and for ``k`` targets spaced evenly in log MACs from the pool's smallest
    network to its largest the nearest point not yet chosen is taken (the smallest and largest always; ``k = 1``:
    the smallest). Fewer than ``k`` when the pool has fewer distinct networks. Why not uniform draws (a budgeted
    search's front is at the small end): docs/latency.md, "Calibrated across the space's sizes, two passes".
    """
    from designspace.evaluate.counts.analytic import count

    rng = random.Random(seed)
    drawn: dict[str, tuple[float, Arch]] = {}
    for _ in range(pool):
        a = space.sample(rng)
        if a.fingerprint not in drawn:
            drawn[a.fingerprint] = (math.log(max(count(a).macs, 1)), a)
    ranked = sorted(drawn.values(), key=lambda t: (t[0], t[1].fingerprint))
    if k <= 0 or not ranked:
        return []
    lo, hi = ranked[0][0], ranked[-1][0]
    chosen: list[Arch] = []
    for i in range(min(k, len(ranked))):  # each target takes the nearest point left
        target = lo if k == 1 else lo + (hi - lo) * i / (k - 1)
        j = min(range(len(ranked)), key=lambda n: (abs(ranked[n][0] - target), n))
        chosen.append(ranked.pop(j)[1])
    return chosen


def build_table(space: Any, context: Context, cache: Cache, *, samples: int = 2000, batch: int = 200,
                calibrate: int = 6, seed: int = 0, protocol: Protocol = ENTRY_PROTOCOL,
                progress: Callable[[int, int], None] | None = None,
                whole_protocol: Protocol | None = None) -> dict[str, Any]:
    """Measures every distinct (component, site) of ``space`` into the table, then fits the per-network term.

    The entries are those of drawn points (``batch`` at a time, seeded) until a batch adds none or ``samples``
    were drawn, plus the zoo models that are points of the space; each is measured in two passes
    (:func:`measure_entries`), and what the table already holds is not measured again (a build resumes). The term
    is fitted on those zoo models and ``calibrate`` seeded points (:func:`calibration_archs`), measured whole by
    ``whole_protocol`` (default the network protocol). ``progress`` gets (entry passes done, in all).

    Returns:
        The coverage report: ``entries`` (distinct entries found), ``measured`` (now), ``second_pass`` (entries
        given their second pass now), ``cached`` (already there), ``drawn`` (points drawn), ``saturated`` (the last
        batch added no entry), ``new_in_last_batch``, ``fit`` (:func:`fit_summary`, or ``None``), ``seconds``.
    """
    from designspace import zoo
    from designspace.space import match

    began = time.perf_counter()
    rng = random.Random(seed)
    found: dict[str, Placement] = {}
    zoo_archs = [a for a in (zoo.load(n) for n in zoo.names()) if match(space, a).ok]
    picked = calibration_archs(space, calibrate, seed=seed + 1)
    for a in zoo_archs + picked:
        for p in plan(a):
            found.setdefault(entry_of(p).key, p)
    drawn, new_last = 0, -1
    while drawn < samples and new_last != 0:
        before = len(found)
        for _ in range(min(batch, samples - drawn)):
            for p in plan(space.sample(rng)):
                found.setdefault(entry_of(p).key, p)
        drawn += min(batch, samples - drawn)
        new_last = len(found) - before
    # one build of a context at a time on this machine: a second waits, then measures only what is missing
    with cache.claim(f"table build|{table_context_key(context)}", "the latency table of this context"):
        todo = missing_entries(found.values(), context, cache)
        one = one_process(protocol)
        once = len(missing_entries(found.values(), context, cache, again=True))  # measured on demand by a search
        total = 2 * len(todo) + once
        done = [0]

        def step(n: int) -> None:
            done[0] += n
            if progress is not None:
                progress(done[0], total)

        measure_entries(todo, context, cache, one, progress=step)
        second = measure_entries(list(found.values()), context, cache, one, progress=step, again=True)
        calib = list(zoo_archs) + [a for a in picked if a not in zoo_archs]
        fit = None if len(calib) < 2 else calibrate_term(calib, context, cache, protocol, whole_protocol=whole_protocol)
        return {"entries": len(found), "measured": len(todo), "second_pass": second, "cached": len(found) - len(todo),
                "drawn": drawn, "saturated": new_last == 0, "new_in_last_batch": new_last,
                "fit": None if fit is None else fit_summary(fit), "seconds": round(time.perf_counter() - began, 1)}


@dataclass(frozen=True)
class FrontFigures:
    """A front network's figures after :func:`remeasure_front`, milliseconds (``None``: not obtained):
    ``measured_ms``, measured whole (the smaller of two passes), and ``table_ms``, its table latency with every
    entry measured, under the term the search used."""

    measured_ms: float | None
    table_ms: float | None


def remeasure_front(archs: Sequence[Arch], source: Table) -> list[FrontFigures]:
    """Measures a table search's front networks whole (the source's full protocol, two passes each keeping its
    smaller figure, as the term's networks) after their entries (the ones the trials predicted, then every entry's
    second pass), so that each network's table figure is also given with every entry measured; the networks
    become points of the term for the next search. An entry or a network that cannot be measured is said in a
    warning; nothing else is lost; this search's figures stay as its trials saw them. Why: docs/latency.md.

    Returns:
        Per Arch, in order, its :class:`FrontFigures`.
    """
    from designspace.evaluate.measure.cached import measure_latencies

    cache = source.cache
    contexts = [source.context(a) for a in archs]
    plans = [plan(a) for a in archs]
    by_context: dict[str, tuple[Context, list[Placement]]] = {}
    for placements, context in zip(plans, contexts, strict=True):
        by_context.setdefault(context.key(), (context, []))[1].extend(placements)
    # the entries the trials predicted, found once: for the log line and the first pass
    todo = {k: missing_entries(ps, c, cache) for k, (c, ps) in by_context.items()}
    if archs:  # minutes on a large front: say what is coming
        log.info("the Pareto front: measuring the %d table entries its trials predicted, then its %d networks "
                 "whole in two passes", sum(map(len, todo.values())), len(archs))
    light = entry_protocol(source.protocol)
    for k, (context, placements) in by_context.items():
        try:
            measure_entries(todo[k], context, cache, light)
            # the second pass also reaches the entries the trials measured on demand (one pass each)
            measure_entries(placements, context, cache, light, again=True)
        except MeasurementError as err:  # the front's table figures stay the trials' own; nothing is lost
            log.warning("the Pareto front's predicted table entries could not all be measured: %s", err)
    # the full protocol, several networks to a worker process; the second pass keeps each network's smaller figure
    lats = measure_latencies(archs, contexts, protocol=source.protocol, cache=cache)
    again = measure_latencies(archs, contexts, protocol=source.protocol, cache=cache, again=True)
    out: list[FrontFigures] = []
    points: dict[str, Any] = {}  # by network: a network given twice is one point
    for arch, placed, context, first, second in zip(archs, plans, contexts, lats, again, strict=True):
        figures = [lat.ms for lat in (first, second) if not isinstance(lat, MeasurementError)]
        if not figures:
            log.warning("%s of the Pareto front could not be measured whole: %s", arch.name or arch.fingerprint,
                        second)
            out.append(FrontFigures(None, None))
            continue
        # a point of the term needs every entry measured: a network whose entries could not all be measured is
        # left out, so that the term does not absorb the predictions' errors
        if missing_entries(placed, context, cache):
            out.append(FrontFigures(min(figures), None))
            continue
        tab = table_latency(arch, context, cache)
        out.append(FrontFigures(min(figures), tab.ms))
        points.setdefault(arch.fingerprint, (arch.fingerprint, min(figures), tab.entries_ms, tab.by_type))
    if points:
        add_points(list(points.values()), contexts[0], cache)
    return out
