"""The per-block latency table: each component at its site timed alone, so that a network's latency is the sum
of its components' entries plus a fitted per-network term, in microseconds once the entries exist.

An **entry** is one component (type and every parameter) at one site (input channels, output channels, stride,
input height and width, input layout) in one measurement context: the component is built alone, exported to
ONNX with an input of its site's shape and layout, and timed by the isolated, interleaved protocol
(:func:`designspace.evaluate.latency.measure_onnx`), many entries per worker process. Entries live in the
results cache (kind ``lut``), keyed by the entry and the identity of the component's code; a corrupt entry is
measured again, never trusted.

A network's **table latency** = the sum of its entries + ``intercept + per_permute x permutes``, where
``permutes`` counts the layout changes between neighbouring components (the network's own ``permute`` ops)
and the two coefficients are fitted by least squares on networks measured whole (:func:`fit_term`); the fit,
its points and its leave-one-out error are stored in the cache (kind ``lut-fit``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from designspace.arch import Arch
from designspace.evaluate.cache import Cache
from designspace.evaluate.isolated import IsolatedProtocol
from designspace.evaluate.latency import Context, Latency, Protocol, ReferenceStore, measure_onnx
from designspace.exceptions import DesignspaceError
from designspace.plan import Placement, plan

__all__ = ["Entry", "TableFit", "TableLatency", "build_table", "calibrate_term", "entry_of", "fit_term", "load_fit",
           "measure_entries", "missing_entries", "permutes", "table_latency", "table_latency_of"]

log = logging.getLogger(__name__)
KIND, FIT_KIND = "lut", "lut-fit"
#: the entries' protocol: a component runs for microseconds to a few milliseconds, so 2 processes of 3 short
#: rounds reach its minimum (a whole network keeps :class:`Protocol`'s default)
ENTRY_PROTOCOL = Protocol(isolated=IsolatedProtocol(processes=2, extra_processes=1, rounds=3, round_s=0.05,
                                                    min_runs=3, warmup_s=0.05))
_DEFAULT = ENTRY_PROTOCOL


@dataclass(frozen=True)
class Entry:
    """One component at one site (what a table entry times).

    Attributes:
        type: the component type.
        params: its parameter values, as canonical JSON.
        in_chs, out_chs, stride: the site's channels and stride.
        hw: input height and width.
        layout: input layout, ``"nchw"`` or ``"nhwc"``.
    """

    type: str
    params: str
    in_chs: int
    out_chs: int
    stride: int
    hw: tuple[int, int]
    layout: str

    @property
    def key(self) -> str:
        """A short stable key (16 hex digits) plus the component's code identity."""
        from designspace.evaluate.identity import component_identity

        text = json.dumps([self.type, self.params, self.in_chs, self.out_chs, self.stride, list(self.hw),
                           self.layout])
        return f"{self.type}:{hashlib.sha256(text.encode()).hexdigest()[:16]}@{component_identity(self.type)}"

    def describe(self) -> str:
        """``mbconv 32->64 s2 56x56 nchw {...}``: for progress lines and reports."""
        return f"{self.type} {self.in_chs}->{self.out_chs} s{self.stride} {self.hw[0]}x{self.hw[1]} {self.layout}"


def entry_of(p: Placement) -> Entry:
    """The table entry of a placed component."""
    layout, _ = p.component.layouts(p.layer.kwargs())
    params = json.dumps(p.layer.kwargs(), sort_keys=True, default=str)
    hw = (p.site.hw[0], p.site.hw[1])
    return Entry(p.layer.type, params, p.site.in_chs, p.site.out_chs, p.site.stride, hw, layout)


def permutes(arch: Arch) -> int:
    """Layout changes between neighbouring components of ``arch`` (its network's ``permute`` ops)."""
    current, n = "nchw", 0
    for p in plan(arch):
        lin, lout = p.component.layouts(p.layer.kwargs())
        n += lin != current
        current = lout
    return n


def _context_key(context: Context) -> str:
    # entries carry their own shapes: the network resolution in the context does not apply to them
    return dataclasses.replace(context, resolution=0).key()


def _export(p: Placement, batch: int) -> tuple[bytes, tuple[int, ...]]:
    from designspace.evaluate.onnx import export_onnx

    module = p.component.build(p.site, p.layer.kwargs(), 0.0).eval()
    layout, _ = p.component.layouts(p.layer.kwargs())
    h, w = p.site.hw
    shape = (batch, p.site.in_chs, h, w) if layout == "nchw" else (batch, h, w, p.site.in_chs)
    return export_onnx(module, torch.randn(*shape, generator=torch.Generator().manual_seed(0))), shape


def _get(cache: Cache, entry: Entry, context: Context) -> float | None:
    hit = cache.get(entry.key, KIND, _context_key(context))
    ms = hit.get("ms") if hit is not None else None
    if hit is not None and not (isinstance(ms, (int, float)) and math.isfinite(ms) and ms > 0):
        log.warning("latency table: a corrupt entry for %s is measured again", entry.describe())
        cache.drop(entry.key, KIND, _context_key(context))
        return None
    return float(ms) if ms is not None else None


def missing_entries(placements: Iterable[Placement], context: Context, cache: Cache) -> list[Placement]:
    """The placements whose entry is not in the table yet (one per distinct entry, in first-seen order)."""
    seen: set[str] = set()
    out = []
    for p in placements:
        e = entry_of(p)
        if e.key in seen:
            continue
        seen.add(e.key)
        if _get(cache, e, context) is None:
            out.append(p)
    return out


def measure_entries(placements: Sequence[Placement], context: Context, cache: Cache,
                    protocol: Protocol = _DEFAULT, chunk: int = 12,
                    progress: Callable[[int], None] | None = None) -> int:
    """Measures and stores the entries of ``placements`` (those already in the table are skipped), ``chunk``
    per group of worker processes; returns how many were measured. A run stopped half-way keeps every
    finished chunk (rerunning resumes).

    Raises:
        MeasurementError: a worker failed.
    """
    todo = missing_entries(placements, context, cache)
    reference = ReferenceStore(cache)
    done = 0
    for start in range(0, len(todo), chunk):
        group = todo[start:start + chunk]
        models = [_export(p, context.batch) for p in group]
        lats = measure_onnx(models, context, protocol, reference)
        for p, lat in zip(group, lats, strict=True):
            cache.put(entry_of(p).key, KIND, _context_key(context),
                      {"ms": lat.ms, "entry": asdict(entry_of(p)), "flags": list(lat.flags)})
        done += len(group)
        if progress is not None:
            progress(len(group))
    return done


@dataclass(frozen=True)
class TableFit:
    """The fitted per-network term: ``intercept + per_permute x permutes`` milliseconds.

    Attributes:
        intercept: milliseconds per network (input, output, the session's fixed cost).
        per_permute: milliseconds per layout change.
        points: (network fingerprint, measured ms, sum of entries ms, permutes) the fit used.
        loo_mean, loo_max: leave-one-out relative error of the table latency on those networks.
    """

    intercept: float
    per_permute: float
    points: tuple[tuple[str, float, float, int], ...]
    loo_mean: float
    loo_max: float

    def term(self, n_permutes: int) -> float:
        """The per-network term of a network with ``n_permutes`` layout changes, milliseconds."""
        return self.intercept + self.per_permute * n_permutes


def _solve(points: Sequence[tuple[str, float, float, int]]) -> tuple[float, float]:
    import numpy as np

    y = np.array([m - s for _, m, s, _ in points])
    perms = np.array([n for *_, n in points], dtype=float)
    if len(points) < 3 or np.ptp(perms) == 0:  # the permute cost is not identifiable: intercept only
        return float(y.mean()), 0.0
    a = np.column_stack([np.ones(len(points)), perms])
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    return float(coef[0]), float(coef[1])


def fit_term(points: Sequence[tuple[str, float, float, int]], context: Context, cache: Cache | None = None) -> TableFit:
    """Fits the per-network term on ``points`` (fingerprint, measured ms, sum of entries ms, permutes), with its
    leave-one-out error, and stores it in ``cache`` for ``context``.

    Raises:
        DesignspaceError: fewer than two points.
    """
    if len(points) < 2:
        raise DesignspaceError("the latency table's per-network term needs at least 2 networks measured whole "
                               "(fix: designspace lut build SPACE measures them)")
    intercept, per_permute = _solve(points)
    errors = []
    for i, (_, measured, summed, n) in enumerate(points):
        a, b = _solve([q for j, q in enumerate(points) if j != i])
        errors.append(abs(summed + a + b * n - measured) / measured)
    fit = TableFit(intercept, per_permute, tuple(points), float(sum(errors) / len(errors)), float(max(errors)))
    if cache is not None:
        cache.put("table-fit", FIT_KIND, _context_key(context), asdict(fit))
    return fit


def load_fit(context: Context, cache: Cache) -> TableFit | None:
    """The stored per-network term of ``context``, or ``None`` (none yet, or a corrupt one)."""
    hit = cache.get("table-fit", FIT_KIND, _context_key(context))
    if hit is None:
        return None
    try:
        return TableFit(float(hit["intercept"]), float(hit["per_permute"]),
                        tuple((str(f), float(m), float(s), int(n)) for f, m, s, n in hit["points"]),
                        float(hit["loo_mean"]), float(hit["loo_max"]))
    except (KeyError, TypeError, ValueError):
        cache.drop("table-fit", FIT_KIND, _context_key(context))
        return None


@dataclass(frozen=True)
class TableLatency:
    """A network's latency from the table.

    Attributes:
        ms: the sum of the entries plus the fitted term, milliseconds.
        entries_ms: the sum of the entries.
        term_ms: the fitted per-network term (0 without a fit).
        components: (component name, entry ms) in forward order.
        measured_now: entries that were missing and measured for this figure.
        fit: the fit used, or ``None``.
    """

    ms: float
    entries_ms: float
    term_ms: float
    components: tuple[tuple[str, float], ...]
    measured_now: int
    fit: TableFit | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the fit as its coefficients and leave-one-out error)."""
        out: dict[str, Any] = {"ms": self.ms, "entries_ms": self.entries_ms, "term_ms": self.term_ms,
                               "components": [list(c) for c in self.components], "measured_now": self.measured_now}
        if self.fit is not None:
            out["fit"] = {"intercept": self.fit.intercept, "per_permute": self.fit.per_permute,
                          "points": len(self.fit.points), "loo_mean": self.fit.loo_mean, "loo_max": self.fit.loo_max}
        return out


def table_latency(arch: Arch, context: Context, cache: Cache, protocol: Protocol = _DEFAULT) -> TableLatency:
    """The table latency of ``arch`` in ``context``; missing entries are measured on demand (and stored).

    Raises:
        MeasurementError: a missing entry could not be measured.
    """
    placements = plan(arch)
    # one cache read per distinct entry (a search calls this every trial); only the missing ones are measured
    keyed = [(p, entry_of(p)) for p in placements]
    found: dict[str, float | None] = {}
    for _, e in keyed:
        if e.key not in found:
            found[e.key] = _get(cache, e, context)
    missing = [p for p, e in keyed if found[e.key] is None]
    measured = measure_entries(missing, context, cache, protocol) if missing else 0
    comps = []
    for p, e in keyed:
        if found[e.key] is None:
            found[e.key] = _get(cache, e, context)
        ms = found[e.key]
        if ms is None:  # measured a moment ago but unreadable: the cache is not writable
            raise DesignspaceError(f"the latency table in {cache.path} cannot store entries (fix: check that the "
                                   "results folder is writable)")
        comps.append((p.name, ms))
    fit = load_fit(context, cache)
    entries = sum(ms for _, ms in comps)
    term = fit.term(permutes(arch)) if fit is not None else 0.0
    return TableLatency(entries + term, entries, term, tuple(comps), measured, fit)


def calibrate_term(archs: Sequence[Arch], context: Context, cache: Cache, protocol: Protocol = _DEFAULT,
                   measure_whole: Callable[[Arch], Latency] | None = None) -> TableFit:
    """Measures ``archs`` whole and from the table, then fits and stores the per-network term."""
    if measure_whole is None:
        from designspace.evaluate.evaluation import measure_latency

        def measure_whole(a: Arch) -> Latency:  # each network at its own resolution, by the default protocol
            return measure_latency(a, dataclasses.replace(context, resolution=a.resolution), cache=cache)

    points = []
    for a in archs:
        whole = measure_whole(a)
        tab = table_latency(a, dataclasses.replace(context, resolution=a.resolution), cache, protocol)
        points.append((a.fingerprint, whole.ms, tab.entries_ms, permutes(a)))
    return fit_term(points, context, cache)


def build_table(space: Any, context: Context, cache: Cache, *, samples: int = 2000, batch: int = 200,
                calibrate: int = 6, seed: int = 0, protocol: Protocol = _DEFAULT,
                progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Measures every distinct (component, site) of ``space`` into the table, then fits the per-network term.

    The distinct entries are found by drawing points (``batch`` at a time, seeded) until a batch adds none or
    ``samples`` points were drawn, plus the zoo models that are points of the space; a space's points number
    10^8 to 10^20, its distinct entries hundreds to thousands. Entries already in the table are not measured
    again, so an interrupted build resumes. The term is fitted on the space's zoo models and ``calibrate``
    seeded points, measured whole.

    Returns:
        The coverage report: ``entries`` (distinct entries found), ``measured`` (now), ``cached`` (already
        there), ``drawn`` (points drawn), ``saturated`` (the last batch added no entry), ``new_in_last_batch``,
        ``fit`` (intercept, per_permute, points, loo_mean, loo_max), ``seconds``.
    """
    import random
    import time

    from designspace import zoo
    from designspace.space import match

    began = time.perf_counter()
    rng = random.Random(seed)
    found: dict[str, Placement] = {}
    zoo_archs = [a for a in (zoo.load(n) for n in zoo.names()) if match(space, a).ok]
    for a in zoo_archs:
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
    todo = missing_entries(found.values(), context, cache)
    total = len(todo)
    done = [0]

    def step(n: int) -> None:
        done[0] += n
        if progress is not None:
            progress(done[0], total)

    measure_entries(todo, context, cache, protocol, progress=step)
    calib = list(zoo_archs) + [space.sample(random.Random(seed + 1 + i)) for i in range(calibrate)]
    fit = calibrate_term(calib, context, cache, protocol) if len(calib) >= 2 else None
    return {"entries": len(found), "measured": total, "cached": len(found) - total, "drawn": drawn,
            "saturated": new_last == 0, "new_in_last_batch": new_last,
            "fit": None if fit is None else {"intercept": fit.intercept, "per_permute": fit.per_permute,
                                             "points": len(fit.points), "loo_mean": fit.loo_mean,
                                             "loo_max": fit.loo_max},
            "seconds": round(time.perf_counter() - began, 1)}


def table_latency_of(arch: Arch, *, runtime: str = "onnxruntime", threads: int = 1, batch: int = 1,
                     cache: Cache | None = None) -> TableLatency:
    """:func:`table_latency` in this machine's context for ``runtime`` (ONNX Runtime only: the table's entries are
    exported components), with the default results cache.

    Raises:
        DesignspaceError: another runtime.
    """
    if runtime != "onnxruntime":
        raise DesignspaceError(f"the latency table is measured with ONNX Runtime, not {runtime} (fix: --runtime "
                               "onnxruntime, or --latency measure)")
    context = Context.local(runtime, threads, batch, resolution=arch.resolution)
    return table_latency(arch, context, cache or Cache())
