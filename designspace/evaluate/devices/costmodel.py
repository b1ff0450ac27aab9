"""The device cost model: latency as a non-negative sum of per-feature costs over a network's components,
``ms = sum_c sum_j coef_j * F_cj`` (``coef`` in ms per feature unit), fitted by non-negative least squares on relative
errors with a ridge towards a scaled prior device's costs, ``lam`` chosen by leave-one-out; and its 90% interval, the
leave-one-out log residuals scaled by the bootstrap uncertainty of the coefficients a prediction leans on and widened
past the fitted range, or a refusal. Formulas and evidence: docs/devices.md, 'Intervals that know their limits'.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from designspace.evaluate import fitting

__all__ = ["LAMBDAS", "LEVEL", "CostModel", "FitError", "fit_cost_model", "loo_predictions", "with_scores"]

#: Ridge strengths tried, chosen by leave-one-out.
LAMBDAS = (1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0)
MARGIN = 1.1  # extrapolation margin on feature ranges
#: The interval's nominal coverage (its ends are the scores' (1 - LEVEL)/2 and (1 + LEVEL)/2 quantiles).
LEVEL = 0.9
#: Bootstrap refits measuring the coefficients' uncertainty (none with ``folds``: thousands of points).
BOOTSTRAP = 200


class FitError(ValueError):
    """The points cannot be fitted (too few, non-positive latencies)."""


@dataclass(frozen=True)
class CostModel:
    """A fitted cost model.

    Attributes:
        features: feature names (:data:`designspace.evaluate.devices.features.FEATURES` or a subset).
        coef: milliseconds per feature unit, one per feature (>= 0).
        lam: the ridge strength chosen.
        ranges: (min, max) of each feature's network total over the fitted points.
        residuals: leave-one-out relative residuals ``pred / y - 1`` of the fitted points, in point order.
        scores: (q_lo, q_hi, tau): the 5th and 95th percentiles of the scaled leave-one-out log residuals
            (``q_lo <= 0 <= q_hi``) and their root mean square, or None (the interval is then the residuals').
        cov: the bootstrap covariance of the coefficients (features x features, (ms per feature unit)^2), or None.
    """

    features: tuple[str, ...]
    coef: tuple[float, ...]
    lam: float
    ranges: tuple[tuple[float, float], ...]
    residuals: tuple[float, ...]
    scores: tuple[float, float, float] | None = None
    cov: tuple[tuple[float, ...], ...] | None = None

    def predict(self, totals: dict[str, float]) -> float:
        """Milliseconds for a network's feature totals."""
        return float(sum(c * totals.get(f, 0.0) for f, c in zip(self.features, self.coef, strict=True)))

    def breakdown(self, components: dict[str, dict[str, float]]) -> dict[str, float]:
        """Milliseconds per component (the prediction is their sum)."""
        return {name: self.predict(f) for name, f in components.items()}

    def variance(self, totals: dict[str, float]) -> float:
        """``v(x)``: the relative variance a prediction inherits from the coefficients' uncertainty (0 without a
        covariance; never negative, whatever the rounding of a stored one)."""
        ms = self.predict(totals)
        if not self.cov or not ms > 0:
            return 0.0
        a = np.array([totals.get(f, 0.0) / ms for f in self.features])
        return max(float(a @ np.asarray(self.cov) @ a), 0.0)

    def interval(self, ms: float, totals: dict[str, float] | None = None) -> tuple[float, float]:
        """(low, high) milliseconds: the 90% interval (:data:`LEVEL`) of a prediction ``ms`` for ``totals``,
        ``ms * exp(q * w) * rho^(+-1)`` for ``q`` = q_lo, q_hi, ``w = sqrt(1 + v / tau^2)`` (``v``: :meth:`variance`)
        and ``rho`` the :meth:`overshoot` (without ``totals``, ``w = rho = 1``). A model without scores (an older
        profile) gives ``ms`` corrected by its 95th and 5th percentile leave-one-out residuals."""
        if self.scores is not None:
            q_lo, q_hi, tau = self.scores
            v = self.variance(totals) if totals is not None else 0.0
            w = math.sqrt(1.0 + v / tau**2) if tau > 0 else 1.0
            rho = math.log(self.overshoot(totals)) if totals is not None else 0.0
            return (ms * math.exp(q_lo * w - rho), ms * math.exp(min(q_hi * w + rho, 700.0)))
        if not self.residuals:
            return (ms, ms)
        r = np.asarray(self.residuals)
        lo, hi = float(np.quantile(r, 0.05)), float(np.quantile(r, 0.95))
        return (ms / (1.0 + hi), ms / (1.0 + lo)) if lo > -1.0 else (ms / (1.0 + hi), math.inf)

    def refusal(self, totals: dict[str, float]) -> str:
        """Why no interval can be given for ``totals`` ("" when one can): a feature no fitted point has, or a
        coefficient uncertainty larger than the prediction itself (relative standard deviation over 1)."""
        none = [f for f, (_, hi) in zip(self.features, self.ranges, strict=True) if hi == 0.0 and totals.get(f, 0) > 0]
        if none:
            return (f"no fitted point has any {', '.join(none)} ({', '.join(f'{totals[f]:.4g}' for f in none)} here): "
                    "the device's data say nothing about what it costs")
        sd = math.sqrt(self.variance(totals))
        if sd > 1.0:
            return (f"the coefficients this network leans on are uncertain by {sd:.0%} of its prediction (bootstrap "
                    "over the device's points): its feature mix is too far from theirs to bound its latency")
        return ""

    def overshoot(self, totals: dict[str, float]) -> float:
        """``rho`` >= 1: the largest factor by which a feature with a positive coefficient lies beyond the fitted
        points' range after the 10% margin, either way (a feature the network does not have does not count)."""
        rho = 1.0
        for f, c, (lo, hi) in zip(self.features, self.coef, self.ranges, strict=True):
            v = totals.get(f, 0.0)
            if c > 0 and v > 0 and hi > 0:
                rho = max(rho, v / (hi * MARGIN), lo / (MARGIN * v))
        return rho

    def outside(self, totals: dict[str, float]) -> list[str]:
        """Features whose total lies outside the fitted range (with a 10% margin), as ``name value [lo, hi]``."""
        out = []
        for f, c, (lo, hi) in zip(self.features, self.coef, self.ranges, strict=True):
            v = totals.get(f, 0.0)
            if hi == 0.0 and v > 0.0:
                out.append(f"{f} {v:.4g} (no fitted point has any)")
            elif c > 0 and (v > hi * MARGIN or v < lo / MARGIN):
                out.append(f"{f} {v:.4g} outside [{lo:.4g}, {hi:.4g}]")
        return out

    @property
    def loo_errors(self) -> list[float]:
        """Absolute relative leave-one-out errors ``|pred - y| / y`` of the fitted points."""
        return [abs(1.0 - 1.0 / (1.0 + r)) for r in self.residuals]


def _solve(x: np.ndarray, y: np.ndarray, lam: float, prior: np.ndarray | None) -> np.ndarray:
    """The coefficients fitted to ``x``, ``y`` at ridge strength ``lam`` (see the module docstring)."""
    scale = x.mean(axis=0)
    used = scale > 0
    coef = np.zeros(x.shape[1])
    if not used.any():
        return coef
    # columns in units of their mean and coefficients in units of the mean latency, so that the ridge weighs
    # milliseconds contributed, whatever a feature's unit
    ybar = float(y.mean())
    a, b = fitting.relative_rows(x[:, used] / scale[used] * ybar, y)
    target = np.zeros(int(used.sum()))
    if prior is not None:
        p = x @ prior
        c = float(np.sum(p / y) / np.sum((p / y) ** 2)) if np.any(p > 0) else 0.0
        target = c * prior[used] * scale[used] / ybar
    u = fitting.solve(a, b, ridge=lam, target=target, nonneg=True)
    coef[used] = u * ybar / scale[used]
    return coef


def _coef_cov(x: np.ndarray, y: np.ndarray, lam: float, prior: np.ndarray | None) -> np.ndarray:
    """The coefficients' covariance over :data:`BOOTSTRAP` seeded refits on points drawn with replacement."""
    rng = np.random.default_rng(0)
    coefs = np.array([_solve(x[idx], y[idx], lam, prior)
                      for idx in (rng.integers(0, len(y), len(y)) for _ in range(BOOTSTRAP))])
    return np.atleast_2d(np.cov(coefs, rowvar=False))


def _scores(model: CostModel, x: np.ndarray) -> tuple[float, float, float]:
    """(q_lo, q_hi, tau) of a model's leave-one-out residuals."""
    logr = -np.log1p(np.asarray(model.residuals))  # residual = loo / y - 1, so this is log(y / loo)
    tau = float(np.sqrt(np.mean(logr**2)))
    v = np.array([model.variance(dict(zip(model.features, row, strict=True))) for row in x])
    s = logr / np.sqrt(1.0 + v / tau**2) if tau > 0 else logr
    tail = (1.0 - LEVEL) / 2.0
    # the order statistics at or beyond the nominal ranks (a finite-sample correction: few points, wider ends)
    return (float(min(np.quantile(s, tail, method="lower"), 0.0)),
            float(max(np.quantile(s, 1.0 - tail, method="higher"), 0.0)), tau)


def loo_predictions(x: np.ndarray, y: np.ndarray, lam: float, prior: np.ndarray | None = None,
                    folds: int | None = None) -> np.ndarray:
    """Each point's prediction by the model fitted on all the others (same ``lam``); with ``folds``, by the
    model fitted without its fold (points dealt to ``folds`` folds in turn: ``i % folds``)."""
    return fitting.held_out(len(y), lambda keep: x[~keep] @ _solve(x[keep], y[keep], lam, prior), folds)


def fit_cost_model(x: Sequence[Sequence[float]], y: Sequence[float], features: Sequence[str], *,
                   prior: Sequence[float] | None = None, folds: int | None = None) -> CostModel:
    """Fits the cost model to feature totals ``x`` (points x features, columns in ``features`` order) and published
    latencies ``y`` (ms, > 0): the ridge strength of :data:`LAMBDAS` with the lowest leave-one-out error, pulled
    towards a scaled copy of the ``prior`` device's coefficients (``features`` order) if
    given. ``folds``: cross-validate by this many folds instead of one point at a time (for thousands of points); the
    residuals are then the out-of-fold ones.

    Raises:
        FitError: fewer than 3 points, fewer points than used features without a prior, a latency <= 0.
    """
    xa, ya = np.asarray(x, dtype=float).reshape(len(y), len(features)), np.asarray(y, dtype=float)
    pa = None if prior is None else np.asarray(prior, dtype=float)
    if np.any(~np.isfinite(ya)) or np.any(ya <= 0):
        raise FitError("every latency must be a positive number of milliseconds")
    if len(ya) < 3:
        raise FitError(f"{len(ya)} point(s): a fit needs at least 3 (one left out at a time measures its error)")
    used = int((xa.mean(axis=0) > 0).sum())
    if pa is None and len(ya) < used:
        raise FitError(f"{len(ya)} points for {used} features: give at least as many points as features, "
                       "fewer features, or a prior device")
    # the lowest mean (a stronger ridge is simpler: nearer the prior; it wins ties)
    lam = fitting.choose_fit([
        fitting.Candidate(tuple(float(e) for e in np.abs(loo_predictions(xa, ya, cand, pa, folds) - ya) / ya),
                          (-cand,), cand) for cand in LAMBDAS], standard_errors=0.0).fit
    coef = _solve(xa, ya, lam, pa)
    residuals = tuple(float(v) for v in loo_predictions(xa, ya, lam, pa, folds) / ya - 1.0)
    ranges = tuple((float(xa[:, j].min()), float(xa[:, j].max())) for j in range(xa.shape[1]))
    model = CostModel(tuple(features), tuple(float(c) for c in coef), float(lam), ranges, residuals)
    if folds is not None:
        return model
    cov = _coef_cov(xa, ya, float(lam), pa)
    return with_scores(replace(model, cov=tuple(tuple(float(v) for v in row) for row in cov)), xa, ya)


def with_scores(model: CostModel, x: Sequence[Sequence[float]] | np.ndarray, y: Sequence[float] | np.ndarray
                ) -> CostModel:
    """``model`` with its scores recomputed from its (possibly rounded) residuals on the points ``x``, ``y``."""
    xa = np.asarray(x, dtype=float).reshape(len(y), len(model.features))
    return replace(model, scores=_scores(model, xa))
