"""Maps from a latency measured here to a target device's: ``proportional``, ``power``, ``affine``.

These were designspace's device model before the cost model (:mod:`designspace.evaluate.devices.costmodel`); they
live here, beside the benchmark that compares the cost model with them (``bench_devices.py``), and nowhere in
the package:

* ``proportional``: target = k * local (fitted in log space, i.e. on relative errors),
* ``power``: log target = a + b * log local,
* ``affine``: target = a + b * local (least squares on relative errors),

``fit(form="auto")`` picks the form with the lowest leave-one-out error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from designspace.evaluate.devices.document import FitSummary

__all__ = ["FORMS", "MIN_POINTS", "Fit", "fit", "loo_predictions"]

FORMS = ("proportional", "power", "affine")
MIN_POINTS = 3


@dataclass(frozen=True)
class Fit(FitSummary):
    """A fitted map from local to target latency, with its leave-one-out error: a device fit's summary
    (:class:`~designspace.evaluate.devices.document.FitSummary`) whose ``form`` is one of :data:`FORMS` and ``coef`` its
    coefficients (k; a, b; a, b), fitted on ``points`` calibration points."""

    def predict(self, local_ms: float) -> float:
        """Target milliseconds for a local measurement in milliseconds."""
        return _predict(self.form, self.coef, local_ms)


def _predict(form: str, coef: tuple[float, ...], x: float) -> float:
    if form == "proportional":
        return coef[0] * x
    if form == "power":
        return math.exp(coef[0]) * x ** coef[1]
    return coef[0] + coef[1] * x


def _fit_form(form: str, xs: list[float], ys: list[float]) -> tuple[float, ...]:
    n = len(xs)
    if form == "proportional":
        return (math.exp(sum(math.log(y / x) for x, y in zip(xs, ys, strict=True)) / n),)
    if form == "power":
        lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
        mx, my = sum(lx) / n, sum(ly) / n
        sxx = sum((v - mx) ** 2 for v in lx)
        b = sum((u - mx) * (v - my) for u, v in zip(lx, ly, strict=True)) / sxx if sxx > 0 else 1.0
        return (my - b * mx, b)
    # affine, least squares on relative errors: weights 1 / y^2
    w = [1.0 / (y * y) for y in ys]
    sw = sum(w)
    swx = sum(wi * x for wi, x in zip(w, xs, strict=True))
    swy = sum(wi * y for wi, y in zip(w, ys, strict=True))
    swxx = sum(wi * x * x for wi, x in zip(w, xs, strict=True))
    swxy = sum(wi * x * y for wi, x, y in zip(w, xs, ys, strict=True))
    det = sw * swxx - swx * swx
    if abs(det) < 1e-18:
        return (0.0, swy / swx if swx else 1.0)
    return ((swy * swxx - swx * swxy) / det, (sw * swxy - swx * swy) / det)


def loo_predictions(local_ms: list[float], target_ms: list[float], form: str) -> list[float]:
    """For each point, the prediction of the ``form`` fitted on all the other points."""
    out = []
    for i in range(len(local_ms)):
        xs, ys = local_ms[:i] + local_ms[i + 1:], target_ms[:i] + target_ms[i + 1:]
        out.append(_predict(form, _fit_form(form, xs, ys), local_ms[i]))
    return out


def fit(local_ms: list[float], target_ms: list[float], form: str = "auto") -> Fit:
    """Fits target = f(local) and computes its leave-one-out error.

    Args:
        local_ms: local latencies of the calibration models.
        target_ms: their published latencies on the target.
        form: ``"auto"`` (the form with the lowest mean leave-one-out error) or one of :data:`FORMS`.

    Raises:
        ValueError: fewer than :data:`MIN_POINTS` points, or a latency that is not positive.
    """
    n = len(local_ms)
    if n < MIN_POINTS or n != len(target_ms):
        raise ValueError(f"a fit needs at least {MIN_POINTS} points with local and target latencies, got {n}")
    if min(local_ms + target_ms) <= 0:
        raise ValueError("latencies must be positive")
    best: Fit | None = None
    for f in (FORMS if form == "auto" else (form,)):
        preds = loo_predictions(local_ms, target_ms, f)
        errors = [abs(p - t) / t if p > 0 else math.inf for p, t in zip(preds, target_ms, strict=True)]
        cand = Fit(f, _fit_form(f, local_ms, target_ms), sum(errors) / n, max(errors), n)
        if best is None or cand.loo_mean < best.loo_mean - 1e-12:
            best = cand
    assert best is not None
    return best
