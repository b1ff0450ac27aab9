"""The one fitting routine: a linear least-squares fit with a ridge, its held-out errors, and the rule that picks
among candidate fits.

Every fitted model of designspace is a linear one fitted here: the device cost model
(:mod:`designspace.evaluate.devices.costmodel`, and through it the latency table's entry models), the latency
table's per-network term (:mod:`designspace.evaluate.table.term`) and the top-1 predictor
(:mod:`designspace.evaluate.accuracy.top1`). Each chooses its candidates (ridge strengths, forms, feature groups)
and its error measure; the fitting, the leave-one-out and the choice are these:

* :func:`solve`: ``argmin ||A c - b||^2 + ridge * ||c - target||^2``, with ``c >= 0`` where asked. The latency
  models fit *relative* errors, each row of ``A`` and ``b`` divided by the point's measured latency
  (:func:`relative_rows`), so that a 2 ms and a 20 ms network count alike.
* :func:`held_out`: each point's prediction by the model fitted without it (or without its fold), for any fit;
  :func:`ridge_loo_residuals` gives the same exactly, without refits, for an unconstrained ridge with an
  intercept (the hat-matrix identity).
* :func:`choose_fit`: of the candidate fits, the simplest whose mean held-out error is within a stated number
  of standard errors of the lowest (1 for the table term, the one-standard-error rule; 0, the lowest, for the
  cost model and the top-1 predictor, as their benchmarks measured).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

__all__ = ["Candidate", "choose_fit", "held_out", "relative_rows", "ridge_loo_residuals", "solve"]

T = TypeVar("T")


def solve(a: np.ndarray, b: np.ndarray, *, ridge: float = 0.0, target: np.ndarray | None = None,
          nonneg: bool = False) -> np.ndarray:
    """The coefficients ``c`` minimizing ``||a c - b||^2 + ridge * ||c - target||^2`` (``target`` zero where
    ``None``), non-negative with ``nonneg``.

    Args:
        a: the design, points x coefficients (already weighted: see :func:`relative_rows`).
        b: the targets, one per point (same weighting).
        ridge: the penalty's strength (>= 0), in the units of the squared residuals.
        target: what the coefficients are pulled towards.
        nonneg: constrain every coefficient to be >= 0 (non-negative least squares on the stacked system).

    Without a ridge this is the least-squares solution (the minimum-norm one where ``a`` is rank-deficient);
    with one and without ``nonneg``, the normal equations' solution.
    """
    n = a.shape[1]
    if nonneg:
        from scipy.optimize import nnls

        root = math.sqrt(ridge)
        rhs = root * target if target is not None else np.zeros(n)
        c, _ = nnls(np.vstack([a, root * np.eye(n)]), np.concatenate([b, rhs]), maxiter=5000)
        return np.asarray(c)
    if ridge == 0.0:
        c, *_ = np.linalg.lstsq(a, b, rcond=None)
        return np.asarray(c)
    rhs = a.T @ b
    if target is not None:
        rhs = rhs + ridge * target
    return np.asarray(np.linalg.solve(a.T @ a + ridge * np.eye(n), rhs))


def relative_rows(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(a, b)`` of least squares on relative errors: ``x``'s rows and ``y`` each divided by ``y`` (> 0), so that
    ``||a c - b||^2`` is the sum of the squared relative errors ``(x_i . c - y_i) / y_i``."""
    w = 1.0 / y
    return x * w[:, None], y * w


def held_out(n: int, fit_predict: Callable[[np.ndarray], np.ndarray | Sequence[float]],
             folds: int | None = None) -> np.ndarray:
    """Each of ``n`` points' prediction by a model fitted without it.

    Args:
        n: the number of points.
        fit_predict: given ``keep`` (a boolean mask of the points to fit on), fits on them and returns its
            predictions of the others (where ``keep`` is False), in their order.
        folds: fit without a fold of points at a time instead of one point (points dealt to ``folds`` folds in
            turn, ``i % folds``; for thousands of points); ``folds >= n`` is leave-one-out.
    """
    out = np.empty(n)
    if folds is not None and folds < n:
        fold = np.arange(n) % folds
        for k in range(folds):
            keep = fold != k
            out[~keep] = fit_predict(keep)
        return out
    for i in range(n):
        keep = np.arange(n) != i
        out[i] = fit_predict(keep)[0]
    return out


def ridge_loo_residuals(z: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    """The exact leave-one-out residuals ``y_i - pred_i`` of the ridge fit of ``y`` on ``z`` with an unpenalized
    intercept (:func:`solve` on centred data, ridge ``alpha``), from the hat-matrix identity: no refit."""
    n = len(y)
    zc = z - z.mean(axis=0)
    hat = zc @ np.linalg.solve(zc.T @ zc + alpha * np.eye(z.shape[1]), zc.T) + 1.0 / n
    resid = y - hat @ y
    return np.asarray(resid / np.clip(1.0 - np.diag(hat), 1e-9, None))


@dataclass(frozen=True)
class Candidate(Generic[T]):
    """A fit :func:`one_standard_error` may choose.

    Attributes:
        errors: its held-out error on each point (the measure is the caller's: relative, squared, ...).
        complexity: orders the candidates, lower is simpler (compared as tuples).
        fit: what the caller needs back (a ridge strength, a form, a set of features).
    """

    errors: tuple[float, ...]
    complexity: tuple[Any, ...]
    fit: T

    @property
    def mean(self) -> float:
        """The mean held-out error."""
        return sum(self.errors) / len(self.errors)


def choose_fit(candidates: Sequence[Candidate[T]], *, standard_errors: float) -> Candidate[T]:
    """Of ``candidates``, the simplest (lowest complexity; the first of equals) whose mean error is within
    ``standard_errors`` standard errors of the lowest mean (the standard error of the best candidate's per-point
    errors). With 1 this is the one-standard-error rule of cross-validation (Hastie, Tibshirani and Friedman,
    *The Elements of Statistical Learning*, 7.10); with 0, the lowest mean (the simplest of equals).

    Why a width and not one for all: each model's benchmark measured it (docs/latency.md, "Choosing a fit").
    The table term needs 1: with 19 type scales on 36 networks the lowest mean is often a weak ridge that fits
    the host's noise (2026-12-04, Intel host: type scales 0.52-2.41 with one point left out, against 1.08-1.37
    before), which a search's front, outside the fit's points, then pays for. The device cost model and the
    top-1 predictor measured worse with 1 than with 0 (2026-12-05: the iPhone 13's Kendall tau within Table 7
    held out 0.66 -> 0.20, the top-1's 95% interval held 96% -> 88% of networks left out).

    Raises:
        ValueError: no candidate, or a negative width.
    """
    if not candidates:
        raise ValueError("no candidate fit to choose from")
    if standard_errors < 0:
        raise ValueError(f"standard_errors {standard_errors} < 0")
    best = min(candidates, key=lambda c: c.mean)
    errs = best.errors
    se = statistics.stdev(errs) / math.sqrt(len(errs)) if len(errs) > 1 and standard_errors else 0.0
    return min((c for c in candidates if c.mean <= best.mean + standard_errors * se + 1e-12),
               key=lambda c: c.complexity)
