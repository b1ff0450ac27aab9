"""The per-block latency table: each component at its site timed alone, so that a network's latency is the sum
of its components' entries plus a fitted per-network term, in microseconds once the entries exist.

An **entry** is one component (type and every parameter) at one site (input channels, output channels, stride,
input height and width, input layout) in one measurement context: the component is built alone, exported to
ONNX with an input of its site's shape and layout, and timed by the isolated, interleaved protocol
(:func:`designspace.evaluate.latency.measure_onnx`), many entries per worker process. Entries live in the
results cache (kind ``lut``), keyed by the entry and the identity of the component's code; a corrupt entry is
measured again, never trusted.

A network's **table latency** = ``scale x (sum of its entries) + intercept + per_permute x permutes``, where
``permutes`` counts the layout changes between neighbouring components (the network's own ``permute`` ops)
and the coefficients are fitted by least squares on networks measured whole (:func:`fit_term`, which keeps
the simplest form, and the strongest ridge, whose leave-one-out error is within one standard error of the
lowest; the ``types`` form has one scale per component type); the fit, its points and its leave-one-out
error are stored in the cache (kind ``lut-fit``).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import logging
import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any
from typing import Protocol as Interface

import torch

from designspace.arch import Arch
from designspace.evaluate.cache import Cache, number_problem
from designspace.evaluate.isolated import IsolatedProtocol
from designspace.evaluate.latency import Context, Latency, MeasurementError, Protocol, ReferenceStore, measure_onnx
from designspace.exceptions import DesignspaceError
from designspace.plan import Placement, plan

__all__ = ["ENTRY_PROTOCOL", "FORMS", "Entry", "EntryGuess", "TableFit", "TableLatency", "add_points", "as_point",
           "calibrate_term", "describe_fit", "describe_term", "entry_features",
           "entry_of", "entry_protocol", "fit_term", "load_fit", "measure_entries", "missing_entries", "permutes",
           "placement_of", "stored_features", "table_context_key", "table_latency", "table_latency_of"]

log = logging.getLogger(__name__)
KIND, FIT_KIND = "lut", "lut-fit"
#: the entries' protocol: a component runs for microseconds to a few milliseconds, so 2 processes of 3 short
#: rounds reach its minimum (a whole network keeps :class:`Protocol`'s default)
ENTRY_PROTOCOL = Protocol(isolated=IsolatedProtocol(processes=2, extra_processes=1, rounds=3, round_s=0.05,
                                                    min_runs=3, warmup_s=0.05))
_DEFAULT = ENTRY_PROTOCOL


def entry_protocol(protocol: Protocol) -> Protocol:
    """The protocol for entries measured on behalf of a caller whose ``protocol`` is a whole network's:
    :data:`ENTRY_PROTOCOL` with ``protocol``'s limits (run timeout, noise threshold). An isolated protocol that is
    already lighter than the entries' (a test's fast one) is kept; entries are always timed in isolated workers,
    so an in-process protocol (``isolated=None``) gets the entries' too."""
    light = ENTRY_PROTOCOL.isolated
    assert light is not None
    iso = protocol.isolated
    if iso is not None and iso.processes * iso.rounds * iso.round_s <= light.processes * light.rounds * light.round_s:
        return protocol
    return dataclasses.replace(ENTRY_PROTOCOL, run_timeout_s=protocol.run_timeout_s, noisy=protocol.noisy)


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


def table_context_key(context: Context) -> str:
    """The cache context of entries measured in ``context``: its key without the network's resolution (entries
    carry their own shapes)."""
    return dataclasses.replace(context, resolution=0).key()


def placement_of(entry: dict[str, Any]) -> Placement:
    """A placement of the component an entry row describes (``asdict(Entry)``), alone at its site: what
    :func:`designspace.evaluate.features.placement_features` needs to trace it again.

    Raises:
        KeyError, TypeError, ValueError, DocumentError: a row that does not describe a component.
    """
    from designspace.arch import Layer
    from designspace.blocks import Site

    hw = (int(entry["hw"][0]), int(entry["hw"][1]))
    site = Site(int(entry["in_chs"]), int(entry["out_chs"]), int(entry["stride"]), hw)
    return Placement(str(entry["type"]), (), "entry", Layer(str(entry["type"]), json.loads(entry["params"])), site, hw)


def _export(p: Placement, batch: int) -> tuple[bytes, tuple[int, ...]]:
    from designspace.evaluate.onnx import export_onnx

    module = p.component.build(p.site, p.layer.kwargs(), 0.0).eval()
    layout, _ = p.component.layouts(p.layer.kwargs())
    h, w = p.site.hw
    shape = (batch, p.site.in_chs, h, w) if layout == "nchw" else (batch, h, w, p.site.in_chs)
    return export_onnx(module, torch.randn(*shape, generator=torch.Generator().manual_seed(0))), shape


def entry_problem(row: dict[str, Any]) -> str | None:
    """What is wrong with a stored table entry's row, or ``None``: ``ms`` (milliseconds) and ``ratio`` finite and
    above 0, ``passes`` a whole number, the entry an object."""
    problem = number_problem(row, positive=("ms", "ratio"), counts=("passes",), optional=("ratio", "passes"))
    if problem is None and "entry" in row and not isinstance(row["entry"], dict):
        problem = "entry is not an object"
    return problem


def _row(cache: Cache, entry: Entry, context: Context) -> dict[str, Any] | None:
    """The entry's stored row, or ``None``: not there, or corrupt (then dropped, to be measured again)."""
    return cache.get(entry.key, KIND, table_context_key(context), check=entry_problem)


def _get(cache: Cache, entry: Entry, context: Context) -> float | None:
    row = _row(cache, entry, context)
    return float(row["ms"]) if row is not None else None


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
                    progress: Callable[[int], None] | None = None, again: bool = False) -> int:
    """Measures and stores the entries of ``placements`` (those already in the table are skipped), ``chunk``
    per group of worker processes; returns how many were measured. A run stopped half-way keeps every
    finished chunk (rerunning resumes).

    With ``again``, the entries already in the table from one pass only are measured once more and keep the
    smaller of their ratios to the reference (the minimum's argument: a slow stretch of the host only adds
    time); :func:`designspace.table_build.build_table` runs this second pass minutes after the first, so that one
    slow stretch of the host, which lasts seconds, cannot inflate both. Each row records its ``ratio`` and ``passes``.

    Raises:
        MeasurementError: a worker failed.
    """
    if again:
        rows: dict[str, dict[str, Any]] = {}
        todo = []
        for p in placements:
            e = entry_of(p)
            if e.key in rows:
                continue
            row = _row(cache, e, context)
            if row is not None and int(row.get("passes") or 1) < 2:
                rows[e.key] = row
                todo.append(p)
    else:
        rows, todo = {}, missing_entries(placements, context, cache)
    reference = ReferenceStore(cache)
    done = 0
    for start in range(0, len(todo), chunk):
        # one process measures an entry; the others wait, then skip what it stored
        with cache.claim(f"table entries|{table_context_key(context)}", "latency table entries"):
            done += _measure_chunk(todo[start:start + chunk], rows, context, cache, protocol, reference, again)
        if progress is not None:
            progress(len(todo[start:start + chunk]))
    return done


def _measure_chunk(group: list[Placement], rows: dict[str, dict[str, Any]], context: Context, cache: Cache,
                   protocol: Protocol, reference: ReferenceStore, again: bool) -> int:
    """Measures and stores the entries of ``group`` that still need it once this process holds the claim (another
    process may have measured some meanwhile); returns how many it measured."""
    still = []
    for p in group:
        row = _row(cache, entry_of(p), context)
        if again:
            if row is not None and int(row.get("passes") or 1) < 2:
                rows[entry_of(p).key] = row  # its latest figure, which the second pass is compared with
                still.append(p)
        elif row is None:
            still.append(p)
    group = still
    if group:
        models = [_export(p, context.batch) for p in group]
        lats = measure_onnx(models, context, protocol, reference)
        for p, lat in zip(group, lats, strict=True):
            e = entry_of(p)
            ms, ratio, passes = lat.ms, lat.ratio, 1
            old = rows.get(e.key)
            if old is not None:
                passes = int(old.get("passes") or 1) + 1
                if isinstance(old.get("ratio"), (int, float)) and ratio is not None and lat.reference_ms:
                    ratio = min(float(old["ratio"]), ratio)
                    ms = ratio * lat.reference_ms  # both passes scaled by the long-run reference as it is now
                else:
                    ms = min(float(old["ms"]), ms)
            row = {"ms": ms, "ratio": ratio, "passes": passes, "entry": asdict(e), "flags": list(lat.flags)}
            feats = stored_features(old) if old is not None else None
            row["features"] = feats if feats is not None else _features_or_none(p)
            cache.put(e.key, KIND, table_context_key(context), row)
    return len(group)


def entry_features(p: Placement) -> list[float]:
    """The cost features of ``p`` run alone (:func:`designspace.evaluate.features.placement_features`), in
    :data:`designspace.evaluate.features.FEATURES` order: what an entry's row stores for the entry models of
    :mod:`designspace.evaluate.entry_model`."""
    from designspace.evaluate.features import FEATURES, placement_features

    f = placement_features(p)
    return [float(f[k]) for k in FEATURES]


def stored_features(row: dict[str, Any]) -> list[float] | None:
    """The features an entry's row stores, or ``None`` where it has none or they are not one finite number per
    feature (a corrupt row's features are computed again, never trusted)."""
    from designspace.evaluate.features import FEATURES

    stored = row.get("features")
    if not isinstance(stored, list) or len(stored) != len(FEATURES):
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in stored):
        return None
    return [float(v) for v in stored]


def _features_or_none(p: Placement) -> list[float] | None:
    """:func:`entry_features`, or ``None`` where the component cannot be traced on the meta device (the entry is
    kept; it only fits no model)."""
    try:
        return entry_features(p)
    except Exception as err:
        log.debug("latency table: no features for %s (%s)", entry_of(p).describe(), err)
        return None


#: the forms the per-network term can take, simplest first: the fit keeps the one whose leave-one-out error is
#: lowest on its points (a form is tried only with enough points to leave one out). ``types`` is ``scale`` with
#: one scale per component type, pulled towards the common one (see :func:`_solve_types`)
FORMS = ("intercept", "ratio", "scale", "scale+permutes", "types")
_COEFFICIENTS = {"intercept": 1, "ratio": 1, "scale": 2, "scale+permutes": 3, "types": 2}
#: ridge strengths tried for the ``types`` form, on the least squares of relative errors (each point's squared
#: relative error counts 1): the strongest one whose leave-one-out error is within one standard error of the
#: lowest is kept (:func:`_one_standard_error`)
TYPE_RIDGE = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
#: a point of the term is left out as measured slow only where its in-sample error is below the median by more
#: than this (and by more than 3 robust standard deviations): within it, the host's drift between two
#: measurements (2-6% mean between passes minutes apart, docs/latency.md) is not told from a slow stretch
SLOW_OUTLIER = 0.10

#: per component type, the sum of a network's entries of that type (ms), by type name
TypeSums = tuple[tuple[str, float], ...]
#: a point of the term: (network fingerprint, measured ms, sum of entries ms, permutes, sums by type); points
#: stored before the ``types`` form have no sums by type (``()``), and then only the other forms are tried
Point = tuple[str, float, float, int, TypeSums]


def as_point(p: Sequence[Any]) -> Point:
    """A term's point from (fingerprint, measured ms, sum of entries ms, permutes[, sums by type]): a point
    without sums by type gets ``()``."""
    by_type: TypeSums = tuple((str(t), float(ms)) for t, ms in p[4]) if len(p) > 4 else ()
    return (str(p[0]), float(p[1]), float(p[2]), int(p[3]), by_type)


@dataclass(frozen=True)
class TableFit:
    """The fitted per-network term: a network's table latency is ``scale x (sum of entries) + intercept +
    per_permute x permutes`` milliseconds; in the ``types`` form, ``sum over component types of scale_t x
    (sum of that type's entries) + intercept``, where a type the fit has not seen takes ``scale``.

    ``scale`` carries what timing a component alone cannot see: alone, its weights and activations stay in the
    caches between runs; inside a network they stream in after the previous component's (measured on the
    ``emo`` space: whole networks 9-18% slower than the sum of their entries, alike in two repeats). How much a
    component loses depends on its type and on the host's caches (one host: ``mbconv`` networks 0.96-1.07x their
    entries, ``efficientmod`` ones 1.16-1.36x; docs/latency.md), hence the ``types`` form.
    ``intercept`` is the network's fixed cost (input, output, the session); ``per_permute`` a layout change
    between families.

    Attributes:
        intercept: milliseconds per network.
        per_permute: milliseconds per layout change.
        points: the fit's points (:data:`Point`).
        loo_mean, loo_max: leave-one-out relative error of the table latency on those networks.
        scale: the factor on the sum of the entries (1 for the ``intercept`` form; the ``ratio`` form is the
            scale alone, without intercept; in the ``types`` form the common scale the type scales are pulled
            towards, and the scale of a type it has not seen).
        form: which of :data:`FORMS` was fitted.
        type_scales: (component type, scale) of the ``types`` form (empty otherwise).
        ridge: the ``types`` form's ridge strength (0 otherwise).
        slow: fingerprints of the points left out of the fit as measured far slower than it predicts them
            (:func:`fit_term`); the leave-one-out errors are those of the other points.
    """

    intercept: float
    per_permute: float
    points: tuple[Point, ...]
    loo_mean: float
    loo_max: float
    scale: float = 1.0
    form: str = "intercept"
    type_scales: TypeSums = ()
    ridge: float = 0.0
    slow: tuple[str, ...] = ()

    def term(self, n_permutes: int) -> float:
        """The additive part of the term (``intercept + per_permute x permutes``), milliseconds."""
        return self.intercept + self.per_permute * n_permutes

    def latency(self, entries_ms: float, n_permutes: int, by_type: TypeSums = ()) -> float:
        """The table latency of a network whose entries sum to ``entries_ms`` (``by_type``: that sum split by
        component type, which the ``types`` form needs; without it, the common scale), milliseconds."""
        if self.form == "types" and by_type:
            scales = dict(self.type_scales)
            return sum(scales.get(t, self.scale) * ms for t, ms in by_type) + self.term(n_permutes)
        return self.scale * entries_ms + self.term(n_permutes)


def _solve(points: Sequence[Point], form: str) -> tuple[float, float, float]:
    """(scale, intercept, per_permute) by least squares on relative errors (each point weighted by 1 / its
    measured ms, so that a 2 ms and a 20 ms network count alike)."""
    import numpy as np

    measured = np.array([p[1] for p in points])
    summed = np.array([p[2] for p in points])
    perms = np.array([p[3] for p in points], dtype=float)
    w = 1.0 / measured
    if form == "intercept":
        y = (measured - summed) * w
        return 1.0, float(np.sum(y * w) / np.sum(w * w)), 0.0
    cols = [summed] + ([np.ones(len(points))] if form != "ratio" else []) + \
        ([perms] if form == "scale+permutes" else [])
    a = np.column_stack(cols) * w[:, None]
    coef, *_ = np.linalg.lstsq(a, measured * w, rcond=None)
    if form == "ratio":
        return float(coef[0]), 0.0, 0.0
    return float(coef[0]), float(coef[1]), float(coef[2]) if form == "scale+permutes" else 0.0


def _solve_types(points: Sequence[Point], ridge: float) -> tuple[float, float, dict[str, float]]:
    """(common scale, intercept, scale per type) of the ``types`` form: the ``scale`` form's least squares on
    relative errors with one scale per component type, each coefficient pulled towards the ``scale`` form's
    (a ridge of strength ``ridge`` on their differences), so that a type seen in few networks stays near the
    common scale."""
    import numpy as np

    common, intercept, _ = _solve(points, "scale")
    types = sorted({t for p in points for t, _ in p[4]})
    measured = np.array([p[1] for p in points])
    w = 1.0 / measured
    sums = [dict(p[4]) for p in points]
    x = np.array([[by.get(t, 0.0) for t in types] + [1.0] for by in sums]) * w[:, None]
    prior = np.array([common] * len(types) + [intercept])
    lhs = x.T @ x + ridge * np.eye(len(prior))
    rhs = x.T @ (measured * w) + ridge * prior
    coef = np.linalg.solve(lhs, rhs)
    return common, float(coef[-1]), {t: float(c) for t, c in zip(types, coef[:-1], strict=True)}


def _usable(points: Sequence[Point], form: str) -> bool:
    # two more points than coefficients, so that every leave-one-out fit is still over-determined (a
    # one-coefficient form: one more, so that 2 networks fit it); the permute cost needs at least two networks
    # away from the commonest permute count (else leaving one out loses it); the type scales need every
    # point's sums by type
    if len(points) < _COEFFICIENTS[form] + (1 if _COEFFICIENTS[form] == 1 else 2):
        return False
    if form == "types":
        return all(p[4] for p in points)
    if form != "scale+permutes":
        return True
    counts = [p[3] for p in points]
    return len(counts) - max(counts.count(n) for n in set(counts)) >= 2


def _predictor(points: Sequence[Point], form: str, ridge: float) -> Callable[[Point], float]:
    """The ``form`` fitted once on ``points``: a point -> its table latency, milliseconds."""
    if form == "types":
        common, intercept, scales = _solve_types(points, ridge)
        return lambda p: sum(scales.get(t, common) * ms for t, ms in p[4]) + intercept
    scale, a, b = _solve(points, form)
    return lambda p: scale * p[2] + a + b * p[3]


def _loo(points: Sequence[Point], form: str, ridge: float = 0.0) -> list[float]:
    return [abs(_predictor([q for j, q in enumerate(points) if j != i], form, ridge)(p) - p[1]) / p[1]
            for i, p in enumerate(points)]


#: a fit the term may take: (mean leave-one-out error, complexity, form, ridge, leave-one-out errors); complexity
#: is (the form's place in :data:`FORMS`, minus the ridge): lower is simpler
_Candidate = tuple[float, tuple[int, float], str, float, list[float]]


def _select(pts: Sequence[Point]) -> tuple[str, float, list[float]]:
    """(form, ridge, leave-one-out errors) of the form the points prefer (see :func:`fit_term`)."""
    candidates: list[_Candidate] = []
    for rank, form in enumerate(FORMS):
        if not _usable(pts, form) or _solve(pts, form if form != "types" else "scale")[0] <= 0:
            continue  # a scale <= 0: more work would cost less
        for ridge in TYPE_RIDGE if form == "types" else (0.0,):
            if form == "types" and min(_solve_types(pts, ridge)[2].values()) <= 0:
                continue  # a type whose entries cost nothing, or less than nothing: not a cost model
            errors = _loo(pts, form, ridge)
            # simpler: an earlier form, and within the types form a stronger ridge (nearer one common scale)
            candidates.append((sum(errors) / len(errors), (rank, -ridge), form, ridge, errors))
    assert candidates  # the intercept form fits any two points
    _, _, form, ridge, errors = _one_standard_error(candidates)
    return form, ridge, errors


def _one_standard_error(candidates: Sequence[_Candidate]) -> _Candidate:
    """Of the candidates (:data:`_Candidate`), the simplest (lowest
    complexity) whose mean is within one standard error of the best mean (the standard error of the best's
    per-point errors; the one-standard-error rule of cross-validation, Hastie, Tibshirani and Friedman, *The
    Elements of Statistical Learning*, 7.10).

    Why not the lowest mean alone: with 19 type scales on 36 networks the lowest mean is often a weak ridge
    that fits the host's noise (2026-12-04, Intel host: scales 0.52-2.41 with one point left out, against
    1.08-1.37 before), which a search's front, outside the fit's points, then pays for.
    """
    best = min(candidates, key=lambda c: c[0])
    errs = best[4]
    se = statistics.stdev(errs) / math.sqrt(len(errs)) if len(errs) > 1 else 0.0
    return min((c for c in candidates if c[0] <= best[0] + se + 1e-12), key=lambda c: c[1])


def _slow_outliers(pts: Sequence[Point], form: str, ridge: float) -> set[str]:
    """The fingerprints of the points measured far slower than the fit predicts them: an in-sample relative
    error (prediction / measured - 1) below the median by more than 3 robust standard deviations (1.4826 x the
    median absolute deviation) and by more than :data:`SLOW_OUTLIER`; at most a tenth of the points, the worst
    first.

    Why one-sided: interference only adds time, and a network whose two passes both met a slow stretch of the
    host reads slower than it is (2026-12-04, Intel host: a point measured 18% above its fit, leave-one-out max
    26%); a network faster than the fit predicts is the model's error, not the host's, and stays.
    """
    predict = _predictor(pts, form, ridge)  # one fit for every point's in-sample error
    errors = [(predict(p) / p[1] - 1.0, p[0]) for p in pts]
    mid = statistics.median(e for e, _ in errors)
    spread = 1.4826 * statistics.median(abs(e - mid) for e, _ in errors)
    slow = sorted((e, fp) for e, fp in errors if mid - e > max(3.0 * spread, SLOW_OUTLIER))
    return {fp for _, fp in slow[:len(pts) // 10]}


def fit_term(points: Sequence[Sequence[Any]], context: Context, cache: Cache | None = None) -> TableFit:
    """Fits the per-network term on ``points`` (:func:`as_point`): each form of :data:`FORMS` that the points
    allow (two more points than its coefficients; one more for the one-coefficient forms, ``intercept`` and
    ``ratio``; ``types`` only where every point has its sums by type, with each of :data:`TYPE_RIDGE`), the one
    kept by the one-standard-error rule (:func:`_one_standard_error`: the simplest form, and the strongest ridge,
    whose mean leave-one-out error is within one standard error of the lowest), and stores it in ``cache`` for
    ``context``. The points measured far slower than that fit predicts (:func:`_slow_outliers`) are then left
    out and the form chosen again on the rest; they stay among the fit's ``points`` (listed in ``slow``), so that
    a later fit, with more points, judges them again.

    Raises:
        DesignspaceError: fewer than two points.
    """
    pts = [as_point(p) for p in points]
    if len(pts) < 2:
        raise DesignspaceError("the latency table's per-network term needs at least 2 networks measured whole "
                               "(fix: designspace lut build SPACE measures them)")
    form, ridge, errors = _select(pts)
    slow = _slow_outliers(pts, form, ridge)
    kept = [p for p in pts if p[0] not in slow]
    if slow:
        form, ridge, errors = _select(kept)
    if form == "types":
        scale, intercept, scales = _solve_types(kept, ridge)
        per_permute, type_scales = 0.0, tuple(sorted(scales.items()))
    else:
        scale, intercept, per_permute = _solve(kept, form)
        type_scales = ()
    fit = TableFit(intercept, per_permute, tuple(pts), float(sum(errors) / len(errors)), float(max(errors)),
                   scale, form, type_scales, ridge, tuple(sorted(slow)))
    if cache is not None:
        cache.put("table-fit", FIT_KIND, table_context_key(context), asdict(fit))
    return fit


def load_fit(context: Context, cache: Cache) -> TableFit | None:
    """The stored per-network term of ``context``, or ``None`` (none yet, or a corrupt one). A fit stored before
    the ``scale`` form existed reads with scale 1; points stored before the ``types`` form, without sums by
    type."""
    hit = cache.get("table-fit", FIT_KIND, table_context_key(context))
    if hit is None:
        return None
    try:
        fit = TableFit(float(hit["intercept"]), float(hit["per_permute"]),
                       tuple(as_point(p) for p in hit["points"]),
                       float(hit["loo_mean"]), float(hit["loo_max"]), float(hit.get("scale", 1.0)),
                       str(hit.get("form", "intercept")),
                       tuple((str(t), float(k)) for t, k in hit.get("type_scales", ())),
                       float(hit.get("ridge", 0.0)), tuple(str(f) for f in hit.get("slow", ())))
        values = (fit.intercept, fit.per_permute, fit.scale, *(k for _, k in fit.type_scales))
        if not all(math.isfinite(v) for v in values) or fit.scale <= 0 or fit.form not in FORMS \
                or (fit.form == "types") != bool(fit.type_scales):
            raise ValueError(fit.form)
        # its networks' figures: times above 0 (a poisoned point would bend every later fit), counts whole
        if not all(math.isfinite(v) and v > 0 for p in fit.points for v in (p[1], p[2])) \
                or any(p[3] < 0 for p in fit.points) or not all(math.isfinite(v) and v >= 0 for p in fit.points
                                                                for _, v in p[4]) \
                or not (math.isfinite(fit.loo_mean) and math.isfinite(fit.loo_max)):
            raise ValueError("a point or an error is not a figure")
        return fit
    except (KeyError, TypeError, ValueError):
        log.warning("latency table: a corrupt per-network term is dropped (lut build fits it again)")
        cache.drop("table-fit", FIT_KIND, table_context_key(context))
        return None


@dataclass(frozen=True)
class TableLatency:
    """A network's latency from the table.

    Attributes:
        ms: the table latency, ``fit.latency(entries_ms, permutes, by_type)`` (the sum of the entries without a fit),
            milliseconds.
        entries_ms: the sum of the entries.
        term_ms: what the fitted per-network term adds to the sum, ``ms - entries_ms`` (0 without a fit).
        components: (component name, entry ms) in forward order.
        measured_now: distinct entries that were missing and measured for this figure.
        fit: the fit used, or ``None``.
        predicted: distinct entries that were missing and predicted for this figure (not measured; see
            :mod:`designspace.evaluate.entry_model`).
        by_type: ``entries_ms`` split by component type, (type, ms) sorted by type.
    """

    ms: float
    entries_ms: float
    term_ms: float
    components: tuple[tuple[str, float], ...]
    measured_now: int
    fit: TableFit | None
    predicted: int = 0
    by_type: TypeSums = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the fit as its coefficients and leave-one-out error)."""
        out: dict[str, Any] = {"ms": self.ms, "entries_ms": self.entries_ms, "term_ms": self.term_ms,
                               "components": [list(c) for c in self.components], "measured_now": self.measured_now,
                               "predicted": self.predicted, "by_type": dict(self.by_type)}
        if self.fit is not None:
            out["fit"] = _fit_summary(self.fit)
        return out


class EntryGuess(Interface):
    """What :func:`table_latency` asks of a predictor of missing entries
    (:class:`designspace.evaluate.entry_model.EntryPredictor`)."""

    def predict(self, p: Placement) -> float | None:
        """Milliseconds for ``p``'s entry, or ``None`` where it must be measured."""


def table_latency(arch: Arch, context: Context, cache: Cache, protocol: Protocol = _DEFAULT,
                  predictor: EntryGuess | None = None) -> TableLatency:
    """The table latency of ``arch`` in ``context``. A missing entry is predicted by ``predictor`` where its
    type's model holds (:class:`designspace.evaluate.entry_model.EntryPredictor`; not stored), else measured on
    demand (and stored).

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
    predicted: dict[str, float] = {}
    if predictor is not None:
        for p, e in keyed:
            if found[e.key] is None and e.key not in predicted:
                guess = predictor.predict(p)
                if guess is not None:
                    predicted[e.key] = guess
    missing = [p for p, e in keyed if found[e.key] is None and e.key not in predicted]
    measured = measure_entries(missing, context, cache, protocol) if missing else 0
    comps: list[tuple[str, float]] = []
    by_type: dict[str, float] = collections.defaultdict(float)
    for p, e in keyed:
        if found[e.key] is None and e.key not in predicted:
            found[e.key] = _get(cache, e, context)
        ms = predicted[e.key] if e.key in predicted else found[e.key]
        if ms is None:  # measured a moment ago but unreadable: the cache is not writable
            raise DesignspaceError(f"the latency table in {cache.path} cannot store entries (fix: check that the "
                                   "results folder is writable)")
        comps.append((p.name, ms))
        by_type[p.layer.type] += ms
    fit = load_fit(context, cache)
    entries = sum(ms for _, ms in comps)
    sums = tuple(sorted(by_type.items()))
    ms = fit.latency(entries, permutes(arch), sums) if fit is not None else entries
    return TableLatency(ms, entries, ms - entries, tuple(comps), measured, fit, len(predicted), sums)


def describe_fit(fit: TableFit) -> str:
    """One line: the fitted term's formula and its leave-one-out error."""
    slow = f", {len(fit.slow)} more left out as measured slow" if fit.slow else ""
    return (f"{_formula(fit.form, fit.scale, fit.intercept, fit.per_permute, fit.type_scales)} (fitted on "
            f"{len(fit.points) - len(fit.slow)} networks measured whole{slow}; leave-one-out error "
            f"{fit.loo_mean:.1%} mean, {fit.loo_max:.1%} max)")


def _formula(form: str, scale: float, intercept: float, per_permute: float, type_scales: Sequence[Any]) -> str:
    if form == "types":
        ks = [float(k) for _, k in type_scales]
        return (f"{min(ks):.3f}-{max(ks):.3f} x entries by component type ({len(ks)} types; {scale:.3f} for "
                f"others) {intercept:+.3f} ms")
    perm = f" {per_permute:+.3f} ms per layout change" if form == "scale+permutes" else ""
    return f"{scale:.3f} x entries {intercept:+.3f} ms{perm}"


def describe_term(summary: dict[str, Any]) -> str:
    """The formula of a fit's summary (``build_table``'s ``fit``), without its error: one line."""
    return _formula(summary["form"], summary["scale"], summary["intercept"], summary["per_permute"],
                    summary.get("type_scales", ()))


def _fit_summary(fit: TableFit) -> dict[str, Any]:
    return {"form": fit.form, "scale": fit.scale, "intercept": fit.intercept, "per_permute": fit.per_permute,
            "type_scales": [list(t) for t in fit.type_scales], "ridge": fit.ridge,
            "points": len(fit.points), "slow": len(fit.slow), "loo_mean": fit.loo_mean, "loo_max": fit.loo_max}


def calibrate_term(archs: Sequence[Arch], context: Context, cache: Cache, protocol: Protocol = _DEFAULT,
                   measure_whole: Callable[[Sequence[Arch]], Sequence[Latency]] | None = None,
                   whole_protocol: Protocol | None = None, passes: int = 2) -> TableFit:
    """Measures ``archs`` whole and from the table, then fits and stores the per-network term on them and on the
    points of the term already stored for ``context`` (so that tables built for several spaces share one fit;
    a network measured again replaces its old point). ``protocol`` times missing entries, ``whole_protocol``
    (default: the network protocol) the networks measured whole.

    Each network is measured whole in ``passes`` passes over all of ``archs`` and its smallest figure kept, as
    the entries are (two passes minutes apart: a slow stretch of the host inflates one at most), so that the
    term relates like to like. The default measurement is the one a ``--latency table`` search re-measures its
    Pareto front with (:func:`~designspace.evaluate.evaluation.measure_latencies`, several networks to a worker
    process); its first pass reads and fills the cache, later passes measure again and keep the smaller figure
    there too. ``measure_whole`` (Archs -> their latencies, in order) replaces it in every pass.

    Raises:
        MeasurementError: a network could not be measured whole.
    """
    def default(batch: Sequence[Arch], again: bool) -> list[Latency]:
        from designspace.evaluate.evaluation import measure_latencies

        # each network at its own resolution
        lats = measure_latencies(batch, [dataclasses.replace(context, resolution=a.resolution) for a in batch],
                                 protocol=whole_protocol, cache=cache, again=again)
        for lat in lats:
            if isinstance(lat, MeasurementError):
                raise lat
        return [lat for lat in lats if isinstance(lat, Latency)]

    best: list[float] = [math.inf] * len(archs)
    for n in range(max(1, passes)):
        lats = measure_whole(archs) if measure_whole is not None else default(archs, again=n > 0)
        best = [min(b, lat.ms) for b, lat in zip(best, lats, strict=True)]
    points = []
    for a, ms in zip(archs, best, strict=True):
        tab = table_latency(a, dataclasses.replace(context, resolution=a.resolution), cache, protocol)
        points.append((a.fingerprint, ms, tab.entries_ms, permutes(a), tab.by_type))
    if len(points) < 2 and load_fit(context, cache) is None:
        return fit_term(points, context, cache)  # raises: one network cannot fit a term
    fit = add_points(points, context, cache)
    assert fit is not None
    return fit


def add_points(points: Sequence[Sequence[Any]], context: Context, cache: Cache) -> TableFit | None:
    """Adds ``points`` (:func:`as_point`) to those of the term stored for
    ``context`` (a network's new point replaces its old one), fits the term again and stores it; ``None``, and
    nothing stored, while there are fewer than two points in all."""
    old = load_fit(context, cache)
    new = {p[0] for p in points}
    merged = ([p for p in old.points if p[0] not in new] if old is not None else []) + list(points)
    return fit_term(merged, context, cache) if len(merged) >= 2 else None


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
