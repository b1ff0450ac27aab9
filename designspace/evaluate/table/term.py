"""The latency table's per-network term: what turns the sum of a network's entries into its latency.

A network's **table latency** = ``scale x (sum of its entries) + intercept + per_permute x permutes`` (or, in the
``types`` form, one scale per component type), the coefficients fitted on networks measured whole by least
squares on relative errors (:func:`fit_term`): the simplest form, and the strongest ridge, whose leave-one-out
error is within one standard error of the lowest; points measured far slower than the fit are left out as slow.
The fit, its points and its leave-one-out error are stored in the results cache (kind ``lut-fit``) under the
table's context (:func:`table_context_key`), which the entries (:mod:`designspace.evaluate.table.entries`) share.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from designspace.evaluate import fitting
from designspace.evaluate.cache import Cache
from designspace.evaluate.measure.latency import Context
from designspace.exceptions import DesignspaceError

__all__ = ["FIT_KIND", "FORMS", "SLOW_OUTLIER", "TYPE_RIDGE", "Point", "TableFit", "TypeSums", "add_points",
           "as_point", "describe_fit", "describe_term", "fit_summary", "fit_term", "load_fit", "table_context_key"]

log = logging.getLogger(__name__)
FIT_KIND = "lut-fit"


def table_context_key(context: Context) -> str:
    """The cache context of entries measured in ``context``: its key without the network's resolution (entries
    carry their own shapes)."""
    return dataclasses.replace(context, resolution=0).key()


#: the forms the per-network term can take, simplest first: the fit keeps the one whose leave-one-out error is
#: lowest on its points (a form is tried only with enough points to leave one out). ``types`` is ``scale`` with
#: one scale per component type, pulled towards the common one (see :func:`_solve_types`)
FORMS = ("intercept", "ratio", "scale", "scale+permutes", "types")
_COEFFICIENTS = {"intercept": 1, "ratio": 1, "scale": 2, "scale+permutes": 3, "types": 2}
#: ridge strengths tried for the ``types`` form, on the least squares of relative errors (each point's squared
#: relative error counts 1): the strongest one whose leave-one-out error is within one standard error of the
#: lowest is kept (:func:`designspace.evaluate.fitting.choose_fit`)
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
    """(scale, intercept, per_permute) by least squares on relative errors (:func:`fitting.relative_rows`: a 2 ms
    and a 20 ms network count alike)."""
    measured = np.array([p[1] for p in points])
    summed = np.array([p[2] for p in points])
    perms = np.array([p[3] for p in points], dtype=float)
    if form == "intercept":  # the entries' sum plus a constant: fit the constant to what the sum leaves
        w = 1.0 / measured  # each point's error relative to its measured ms, as relative_rows weighs it
        return 1.0, float(fitting.solve(w[:, None], (measured - summed) * w)[0]), 0.0
    cols = [summed] + ([np.ones(len(points))] if form != "ratio" else []) + \
        ([perms] if form == "scale+permutes" else [])
    coef = fitting.solve(*fitting.relative_rows(np.column_stack(cols), measured))
    if form == "ratio":
        return float(coef[0]), 0.0, 0.0
    return float(coef[0]), float(coef[1]), float(coef[2]) if form == "scale+permutes" else 0.0


def _solve_types(points: Sequence[Point], ridge: float) -> tuple[float, float, dict[str, float]]:
    """(common scale, intercept, scale per type) of the ``types`` form: the ``scale`` form's least squares on
    relative errors with one scale per component type, each coefficient pulled towards the ``scale`` form's
    (a ridge of strength ``ridge`` on their differences), so that a type seen in few networks stays near the
    common scale."""
    common, intercept, _ = _solve(points, "scale")
    types = sorted({t for p in points for t, _ in p[4]})
    measured = np.array([p[1] for p in points])
    sums = [dict(p[4]) for p in points]
    x = np.array([[by.get(t, 0.0) for t in types] + [1.0] for by in sums])
    prior = np.array([common] * len(types) + [intercept])
    coef = fitting.solve(*fitting.relative_rows(x, measured), ridge=ridge, target=prior)
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
    """Each point's relative error |pred - measured| / measured, predicted by the form fitted without it."""
    def fit_predict(keep: np.ndarray) -> list[float]:
        predict = _predictor([p for p, k in zip(points, keep, strict=True) if k], form, ridge)
        return [predict(p) for p, k in zip(points, keep, strict=True) if not k]

    return [abs(pred - p[1]) / p[1] for pred, p in zip(fitting.held_out(len(points), fit_predict), points,
                                                       strict=True)]


def _select(pts: Sequence[Point]) -> tuple[str, float, list[float]]:
    """(form, ridge, leave-one-out errors) of the form the points prefer (see :func:`fit_term`)."""
    candidates: list[fitting.Candidate[tuple[str, float]]] = []
    for rank, form in enumerate(FORMS):
        if not _usable(pts, form) or _solve(pts, form if form != "types" else "scale")[0] <= 0:
            continue  # a scale <= 0: more work would cost less
        for ridge in TYPE_RIDGE if form == "types" else (0.0,):
            if form == "types" and min(_solve_types(pts, ridge)[2].values()) <= 0:
                continue  # a type whose entries cost nothing, or less than nothing: not a cost model
            # simpler: an earlier form, and within the types form a stronger ridge (nearer one common scale)
            candidates.append(fitting.Candidate(tuple(_loo(pts, form, ridge)), (rank, -ridge), (form, ridge)))
    # candidates: the intercept form fits any two points; one standard error (fitting.choose_fit says why)
    chosen = fitting.choose_fit(candidates, standard_errors=1.0)
    return chosen.fit[0], chosen.fit[1], list(chosen.errors)


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
    kept by the one-standard-error rule (:func:`designspace.evaluate.fitting.choose_fit`: the simplest
    form, and the strongest ridge, whose mean leave-one-out error is within one standard error of the lowest),
    and stores it in ``cache`` for
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


def fit_summary(fit: TableFit) -> dict[str, Any]:
    """The fit as plain figures (a table build's report, ``build_table``'s ``fit``): form, coefficients, points,
    leave-one-out error (relative, not %)."""
    return {"form": fit.form, "scale": fit.scale, "intercept": fit.intercept, "per_permute": fit.per_permute,
            "type_scales": [list(t) for t in fit.type_scales], "ridge": fit.ridge,
            "points": len(fit.points), "slow": len(fit.slow), "loo_mean": fit.loo_mean, "loo_max": fit.loo_max}


def add_points(points: Sequence[Sequence[Any]], context: Context, cache: Cache) -> TableFit | None:
    """Adds ``points`` (:func:`as_point`) to those of the term stored for
    ``context`` (a network's new point replaces its old one), fits the term again and stores it; ``None``, and
    nothing stored, while there are fewer than two points in all."""
    old = load_fit(context, cache)
    new = {p[0] for p in points}
    merged = ([p for p in old.points if p[0] not in new] if old is not None else []) + list(points)
    return fit_term(merged, context, cache) if len(merged) >= 2 else None
