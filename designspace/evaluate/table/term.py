"""The latency table's per-network term, which turns the sum of a network's entries into its latency: its forms,
their fit on networks measured whole (:func:`fit_term`) and its store (results cache kind ``lut-fit``, under the
entries' :func:`table_context_key`). Evidence: docs/latency.md, "The per-block latency table"."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from designspace.evaluate import fitting
from designspace.evaluate.cache import Cache
from designspace.evaluate.measure.latency import Context
from designspace.exceptions import DesignspaceError

__all__ = ["FIT_KIND", "FORMS", "TYPE_RIDGE", "Point", "TableFit", "TypeSums", "add_points",
           "as_point", "describe_fit", "describe_term", "fit_summary", "fit_term", "load_fit", "table_context_key"]

log = logging.getLogger(__name__)
FIT_KIND = "lut-fit"


def table_context_key(context: Context) -> str:
    """The cache context of entries measured in ``context``: its key without the network's resolution (entries
    carry their own shapes)."""
    return dataclasses.replace(context, resolution=0).key()


#: the forms the per-network term can take, simplest first: ``ratio`` (the scale alone), ``scale`` (scale and
#: intercept) and ``types`` (``scale`` with one scale per component type, pulled towards the common one); why not
#: the forms removed in issue 28: docs/latency.md, "The term's forms, replayed"
FORMS = ("ratio", "scale", "types")
_COEFFICIENTS = {"ratio": 1, "scale": 2, "types": 2}
#: ridge strengths tried for the ``types`` form, on the least squares of relative errors (each point's squared
#: relative error counts 1); :func:`fit_term` says which is kept
TYPE_RIDGE = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)

#: per component type, the sum of a network's entries of that type (ms), by type name
TypeSums = tuple[tuple[str, float], ...]
#: a point of the term: (network fingerprint, measured ms, sum of entries ms, sums by type); points stored before
#: the ``types`` form have no sums by type (``()``), and then only the other forms are tried
Point = tuple[str, float, float, TypeSums]


def as_point(p: Sequence[Any]) -> Point:
    """A term's point from (fingerprint, measured ms, sum of entries ms[, sums by type]); a point without sums by
    type gets ``()``."""
    by_type: TypeSums = tuple((str(t), float(ms)) for t, ms in p[3]) if len(p) > 3 else ()
    return (str(p[0]), float(p[1]), float(p[2]), by_type)


@dataclass(frozen=True)
class TableFit:
    """The fitted per-network term: a network's table latency is ``scale x (sum of entries) + intercept``
    milliseconds; in the ``types`` form, ``sum over component types of scale_t x (sum of that type's entries) +
    intercept``, where a type the fit has not seen takes ``scale``. ``scale`` carries the caches a component timed
    alone keeps warm between runs (by type in the ``types`` form), ``intercept`` the network's fixed cost (input,
    output, the session): docs/latency.md, "Why a scale and two passes".

    Attributes:
        intercept: milliseconds per network (0 in the ``ratio`` form).
        points: the fit's points (:data:`Point`).
        loo_mean, loo_max: leave-one-out relative error of the table latency on those networks.
        scale: the factor on the sum of the entries (``types``: the common scale the type scales are pulled towards).
        form: which of :data:`FORMS` was fitted.
        type_scales: (component type, scale) of the ``types`` form (empty otherwise).
        ridge: the ``types`` form's ridge strength (0 otherwise).
    """

    intercept: float
    points: tuple[Point, ...]
    loo_mean: float
    loo_max: float
    scale: float
    form: str
    type_scales: TypeSums = ()
    ridge: float = 0.0

    def latency(self, entries_ms: float, by_type: TypeSums = ()) -> float:
        """The table latency of a network whose entries sum to ``entries_ms`` (``by_type``: that sum split by
        component type, which the ``types`` form needs; without it, the common scale), milliseconds."""
        if self.form == "types" and by_type:
            scales = dict(self.type_scales)
            return sum(scales.get(t, self.scale) * ms for t, ms in by_type) + self.intercept
        return self.scale * entries_ms + self.intercept


def _solve(points: Sequence[Point], form: str) -> tuple[float, float]:
    """(scale, intercept) of the ``ratio`` or ``scale`` form by least squares on relative errors
    (:func:`fitting.relative_rows`: a 2 ms and a 20 ms network count alike)."""
    measured = np.array([p[1] for p in points])
    cols = [np.array([p[2] for p in points])] + ([np.ones(len(points))] if form == "scale" else [])
    coef = fitting.solve(*fitting.relative_rows(np.column_stack(cols), measured))
    return float(coef[0]), float(coef[1]) if form == "scale" else 0.0


def _solve_types(points: Sequence[Point], ridge: float) -> tuple[float, float, dict[str, float]]:
    """(common scale, intercept, scale per type) of the ``types`` form: one scale per component type, each
    coefficient pulled towards the ``scale`` form's by a ridge of strength ``ridge`` on their differences."""
    common, intercept = _solve(points, "scale")
    types = sorted({t for p in points for t, _ in p[3]})
    measured = np.array([p[1] for p in points])
    x = np.array([[dict(p[3]).get(t, 0.0) for t in types] + [1.0] for p in points])
    prior = np.array([common] * len(types) + [intercept])
    coef = fitting.solve(*fitting.relative_rows(x, measured), ridge=ridge, target=prior)
    return common, float(coef[-1]), {t: float(c) for t, c in zip(types, coef[:-1], strict=True)}


def _usable(points: Sequence[Point], form: str) -> bool:
    # two more points than coefficients, so that every leave-one-out fit is still over-determined (the
    # one-coefficient form: one more, so that 2 networks fit it); the type scales need every point's sums by type
    k = _COEFFICIENTS[form]
    return len(points) >= k + (1 if k == 1 else 2) and (form != "types" or all(p[3] for p in points))


def _fit(points: Sequence[Point], form: str, ridge: float) -> TableFit:
    """The ``form`` (at ``ridge``) fitted once on ``points``, without its leave-one-out errors (0)."""
    if form == "types":
        common, intercept, scales = _solve_types(points, ridge)
        return TableFit(intercept, tuple(points), 0.0, 0.0, common, form, tuple(sorted(scales.items())), ridge)
    scale, intercept = _solve(points, form)
    return TableFit(intercept, tuple(points), 0.0, 0.0, scale, form)


def _loo(points: Sequence[Point], form: str, ridge: float = 0.0) -> list[float]:
    """Each point's relative error |pred - measured| / measured, predicted by the form fitted without it."""
    def fit_predict(keep: np.ndarray) -> list[float]:
        fit = _fit([p for p, k in zip(points, keep, strict=True) if k], form, ridge)
        return [fit.latency(p[2], p[3]) for p, k in zip(points, keep, strict=True) if not k]

    return [abs(pred - p[1]) / p[1] for pred, p in zip(fitting.held_out(len(points), fit_predict), points,
                                                       strict=True)]


def fit_term(points: Sequence[Sequence[Any]], context: Context, cache: Cache | None = None) -> TableFit:
    """Fits the per-network term on ``points`` (:func:`as_point`) and stores it in ``cache`` for ``context``.

    Candidates: each form of :data:`FORMS` the points allow (two more points than its coefficients, one more for
    ``ratio``; ``types`` where every point has its sums by type, with each of :data:`TYPE_RIDGE` that keeps every
    type scale above 0). The simplest form, and strongest ridge, whose mean leave-one-out error is within one
    standard error of the lowest is kept (:func:`designspace.evaluate.fitting.choose_fit` says why).

    Raises:
        DesignspaceError: fewer than two points.
    """
    pts = [as_point(p) for p in points]
    if len(pts) < 2:
        raise DesignspaceError("the latency table's per-network term needs at least 2 networks measured whole "
                               "(fix: designspace lut build SPACE measures them)")
    candidates: list[fitting.Candidate[tuple[str, float]]] = []
    for rank, form in enumerate(FORMS):
        if not _usable(pts, form) or _solve(pts, "ratio" if form == "ratio" else "scale")[0] <= 0:
            continue  # a scale <= 0: more work would cost less
        for ridge in TYPE_RIDGE if form == "types" else (0.0,):
            if form == "types" and min(_solve_types(pts, ridge)[2].values()) <= 0:
                continue  # a type whose entries cost nothing, or less than nothing: not a cost model
            # simpler: an earlier form, and within the types form a stronger ridge (nearer one common scale)
            candidates.append(fitting.Candidate(tuple(_loo(pts, form, ridge)), (rank, -ridge), (form, ridge)))
    # candidates: the ratio form fits any two points of positive figures; one standard error (choose_fit says why)
    chosen = fitting.choose_fit(candidates, standard_errors=1.0)
    fit = dataclasses.replace(_fit(pts, *chosen.fit), loo_mean=chosen.mean, loo_max=max(chosen.errors))
    if cache is not None:
        cache.put("table-fit", FIT_KIND, table_context_key(context), asdict(fit))
    return fit


def load_fit(context: Context, cache: Cache) -> TableFit | None:
    """The stored per-network term of ``context``, or ``None`` (none yet, or a corrupt one, which is dropped, as is
    one of a form not in :data:`FORMS`). A fit stored before issue 28 in a form removed then (``intercept``,
    ``scale+permutes``) is not found: the context names the measurement code (:class:`Context`'s
    ``implementation``), which has changed since."""
    hit = cache.get("table-fit", FIT_KIND, table_context_key(context))
    if hit is None:
        return None
    try:
        points = tuple(as_point(p) for p in hit["points"])
        # its networks' figures: times above 0 (a poisoned point would bend every later fit)
        if not all(math.isfinite(v) and v > 0 for p in points for v in (p[1], p[2])) \
                or not all(math.isfinite(v) and v >= 0 for p in points for _, v in p[3]):
            raise ValueError("a point is not a figure")
        fit = TableFit(float(hit["intercept"]), points, float(hit["loo_mean"]), float(hit["loo_max"]),
                       float(hit["scale"]), str(hit["form"]),
                       tuple((str(t), float(k)) for t, k in hit.get("type_scales", ())), float(hit.get("ridge", 0.0)))
        values = (fit.intercept, fit.scale, fit.loo_mean, fit.loo_max, *(k for _, k in fit.type_scales))
        if not all(math.isfinite(v) for v in values) or fit.scale <= 0 or fit.form not in FORMS \
                or (fit.form == "types") != bool(fit.type_scales):
            raise ValueError(fit.form)
        return fit
    except (KeyError, TypeError, ValueError):
        log.warning("latency table: a corrupt per-network term is dropped (lut build fits it again)")
        cache.drop("table-fit", FIT_KIND, table_context_key(context))
        return None


def describe_fit(fit: TableFit) -> str:
    """One line: the fitted term's formula and its leave-one-out error."""
    return (f"{describe_term(fit_summary(fit))} (fitted on {len(fit.points)} networks measured whole; leave-one-out "
            f"error {fit.loo_mean:.1%} mean, {fit.loo_max:.1%} max)")


def describe_term(summary: dict[str, Any]) -> str:
    """The formula of a fit's summary (:func:`fit_summary`, ``build_table``'s ``fit``), without its error: one line."""
    scale, intercept = summary["scale"], summary["intercept"]
    if summary["form"] == "types":
        ks = [float(k) for _, k in summary.get("type_scales", ())]
        return (f"{min(ks):.3f}-{max(ks):.3f} x entries by component type ({len(ks)} types; {scale:.3f} for "
                f"others) {intercept:+.3f} ms")
    return f"{scale:.3f} x entries {intercept:+.3f} ms"


def fit_summary(fit: TableFit) -> dict[str, Any]:
    """The fit as plain figures (a table build's report, ``build_table``'s ``fit``): form, coefficients, points,
    leave-one-out error (relative, not %)."""
    return {"form": fit.form, "scale": fit.scale, "intercept": fit.intercept,
            "type_scales": [list(t) for t in fit.type_scales], "ridge": fit.ridge, "points": len(fit.points),
            "loo_mean": fit.loo_mean, "loo_max": fit.loo_max}


def add_points(points: Sequence[Sequence[Any]], context: Context, cache: Cache) -> TableFit | None:
    """Adds ``points`` (:func:`as_point`) to those of the term stored for ``context`` (a network's new point
    replaces its old one), fits the term again and stores it; ``None``, and nothing stored, under two points."""
    old = load_fit(context, cache)
    new = {p[0] for p in points}
    merged = ([p for p in old.points if p[0] not in new] if old is not None else []) + list(points)
    return fit_term(merged, context, cache) if len(merged) >= 2 else None
