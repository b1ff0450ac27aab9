"""Distributions of a metric over sampled networks, as the design-space papers read them.

Radosavovic et al. ("On Network Design Spaces for Visual Recognition", 2019; "Designing Network Design Spaces",
2020) compare design spaces by the empirical distribution function (EDF) of their sampled models' error,
``F(e) = (1/n) sum_i 1[e_i < e]``, *normalized for complexity*: each model is weighted so that every compared group
has the same distribution of complexity (they bin FLOPs on a log scale), so that a group is not better merely for
holding smaller models. Here the metric is a latency (or an accuracy estimate), the complexity the MAC count, and
the groups are a parameter's options or two spaces:

* :func:`matched_weights`: per-network weights that give each group the pooled log-MAC distribution, on the MAC range
  every group covers (networks outside it weigh 0);
* :func:`edf`: the weighted EDF, a proper distribution function (non-decreasing, 0 below the smallest value, 1 from
  the largest);
* :func:`summary`: weighted median and quartiles;
* :func:`bootstrap`: the sampling uncertainty of any statistic, by resampling each group's networks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["BINS", "Summary", "bootstrap", "edf", "edf_at", "matched_weights", "summary", "weighted_quantile"]

#: log-MAC bins over the common range (the papers bin complexity on a log scale)
BINS = 8


@dataclass(frozen=True)
class Summary:
    """Weighted median and quartiles of a metric over networks, and their count (networks with weight > 0)."""

    n: int
    median: float
    q1: float
    q3: float

    def to_dict(self) -> dict[str, float]:
        """JSON-ready form."""
        return {"n": self.n, "median": self.median, "q1": self.q1, "q3": self.q3}


def weighted_quantile(x: np.ndarray, q: float, w: np.ndarray | None = None) -> float:
    """The ``q``-quantile (0-1) of ``x`` under weights ``w`` (the smallest value whose weighted EDF reaches ``q``);
    NaN for no weight."""
    x = np.asarray(x, dtype=float)
    w = np.ones_like(x) if w is None else np.asarray(w, dtype=float)
    keep = (w > 0) & np.isfinite(x)
    if not keep.any():
        return float("nan")
    order = np.argsort(x[keep], kind="stable")
    xs, cw = x[keep][order], np.cumsum(w[keep][order])
    idx = int(np.searchsorted(cw, q * cw[-1] - 1e-12 * cw[-1], side="left"))
    return float(xs[min(idx, len(xs) - 1)])


def summary(x: np.ndarray, w: np.ndarray | None = None) -> Summary:
    """Weighted median and quartiles of ``x``."""
    x = np.asarray(x, dtype=float)
    n = int(np.sum((np.ones_like(x) if w is None else np.asarray(w)) > 0) if len(x) else 0)
    return Summary(n, weighted_quantile(x, 0.5, w), weighted_quantile(x, 0.25, w), weighted_quantile(x, 0.75, w))


def edf(x: np.ndarray, w: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The weighted EDF of ``x`` as steps: distinct values ascending and ``F`` at each (the weight of values <= it,
    divided by the total weight). Non-finite values and zero weights are left out."""
    x = np.asarray(x, dtype=float)
    w = np.ones_like(x) if w is None else np.asarray(w, dtype=float)
    keep = (w > 0) & np.isfinite(x)
    if not keep.any():
        return np.array([]), np.array([])
    xs, inv = np.unique(x[keep], return_inverse=True)
    mass = np.bincount(inv, weights=w[keep], minlength=len(xs))
    f = np.cumsum(mass) / mass.sum()
    f[-1] = 1.0  # exactly, whatever the rounding
    return xs, f


def edf_at(x: np.ndarray, w: np.ndarray | None, grid: np.ndarray) -> np.ndarray:
    """The weighted EDF of ``x`` evaluated at each point of ``grid`` (right-continuous: ``F(g)`` = weight of values
    <= g over the total)."""
    xs, f = edf(x, w)
    if not len(xs):
        return np.full(len(grid), np.nan)
    idx = np.searchsorted(xs, np.asarray(grid, dtype=float), side="right")
    return np.where(idx > 0, f[np.maximum(idx - 1, 0)], 0.0)


def matched_weights(macs: np.ndarray, groups: Sequence[np.ndarray], bins: int = BINS) -> list[np.ndarray]:
    """Weights that give every group the same MAC distribution: the pooled one over the range all groups cover.

    Args:
        macs: MACs (any unit) of every network; NaN or <= 0 weighs 0.
        groups: one boolean mask (or index array) over ``macs`` per group.
        bins: log-spaced bins over the common range.

    Returns:
        one weight array (over all networks, 0 outside the group) per group, each summing to 1 over its group; a
        group with no network in the common range gets all zeros.
    """
    macs = np.asarray(macs, dtype=float)
    masks = [_mask(g, len(macs)) & np.isfinite(macs) & (macs > 0) for g in groups]
    if not all(m.any() for m in masks):
        return [np.zeros(len(macs)) for _ in masks]
    lo = max(float(macs[m].min()) for m in masks)
    hi = min(float(macs[m].max()) for m in masks)
    if lo > hi:  # no common range: nothing is comparable at matched complexity
        return [np.zeros(len(macs)) for _ in masks]
    edges = np.geomspace(lo, hi, bins + 1) if hi > lo else np.array([lo, hi])
    which = np.clip(np.searchsorted(edges, macs, side="right") - 1, 0, len(edges) - 2)
    inside = (macs >= lo) & (macs <= hi)
    counts = [np.bincount(which[m & inside], minlength=len(edges) - 1).astype(float) for m in masks]
    shared = np.all(np.stack(counts) > 0, axis=0)  # bins every group has networks in
    pooled = np.sum(np.stack(counts), axis=0) * shared
    if pooled.sum() == 0:
        return [np.zeros(len(macs)) for _ in masks]
    target = pooled / pooled.sum()
    out = []
    for m, c in zip(masks, counts, strict=True):
        w = np.zeros(len(macs))
        sel = m & inside
        per = np.divide(target, c, out=np.zeros_like(target), where=c > 0)
        w[sel] = per[which[sel]]
        out.append(w / w.sum() if w.sum() > 0 else w)
    return out


def _mask(g: np.ndarray, n: int) -> np.ndarray:
    g = np.asarray(g)
    if g.dtype == bool:
        return g.copy()
    m = np.zeros(n, dtype=bool)
    m[g.astype(int)] = True
    return m


def bootstrap(stat: Callable[[list[np.ndarray]], float], groups: Sequence[np.ndarray], *, reps: int = 200,
              seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """The ``level`` percentile interval of ``stat`` under resampling: each group's networks (index arrays) drawn
    again with replacement, ``reps`` times, with ``numpy.random.default_rng(seed)``. ``stat`` takes the resampled
    index arrays; NaN results are dropped."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(reps):
        drawn = [g[rng.integers(0, len(g), len(g))] if len(g) else g for g in groups]
        v = stat(drawn)
        if np.isfinite(v):
            values.append(v)
    if not values:
        return float("nan"), float("nan")
    a = (1.0 - level) / 2.0
    return float(np.quantile(values, a)), float(np.quantile(values, 1.0 - a))
