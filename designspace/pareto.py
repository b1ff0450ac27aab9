"""Pareto fronts and hypervolume: the one implementation that results, search and the app use.

Every objective is minimized here (callers negate maximized ones). A point is dominated when another is <= in
every objective and differs; of identical points the first is kept; points with a NaN or an infinity are never
on a front. Fronts by sort and sweep: sorted lexicographically, a point can only be dominated by an earlier one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["hypervolume", "pareto_mask", "reference_point"]


def pareto_mask(points: np.ndarray, candidates: np.ndarray | None = None) -> np.ndarray:
    """The non-dominated rows of ``points`` (n x k, every column minimized), among ``candidates``.

    A row is dominated when another is <= in every column and differs; rows with a NaN are never on the
    front; of identical points the first is kept.

    Args:
        points: n x k array, all objectives minimized.
        candidates: bool mask of rows allowed on the front (default all).

    Returns:
        A bool array of length n.
    """
    n = len(points)
    mask = np.zeros(n, dtype=bool)
    allowed = np.isfinite(points).all(axis=1) if points.size else np.ones(n, dtype=bool)
    if candidates is not None:
        allowed &= candidates
    idx = np.flatnonzero(allowed)
    if idx.size == 0:
        return mask
    pts = points[idx]
    order = np.lexsort(pts.T[::-1])  # sorted by column 0, then 1, ...
    pts, idx = pts[order], idx[order]
    if pts.shape[1] == 1:
        mask[idx[0]] = True
        return mask
    if pts.shape[1] == 2:  # sweep: a point is on the front iff its y beats every earlier (smaller-x) point's
        best = np.minimum.accumulate(pts[:, 1])
        keep = np.empty(len(pts), dtype=bool)
        keep[0] = True
        keep[1:] = pts[1:, 1] < best[:-1]
        mask[idx[keep]] = True
        return mask
    front: list[int] = []
    for i in range(len(pts)):  # a dominator (or a duplicate) always sorts earlier
        if front and (pts[front] <= pts[i]).all(axis=1).any():
            continue
        front.append(i)
    mask[idx[front]] = True
    return mask


def hypervolume(points: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """Hypervolume dominated by ``points`` (all objectives minimized) up to ``reference`` (exact slicing)."""
    pts = [list(p) for p in points if all(a < b for a, b in zip(p, reference, strict=True))]
    if not pts:
        return 0.0
    if len(reference) == 1:
        return reference[0] - min(p[0] for p in pts)
    pts.sort(key=lambda p: p[-1])
    total = 0.0
    for i, p in enumerate(pts):
        upper = pts[i + 1][-1] if i + 1 < len(pts) else reference[-1]
        if upper > p[-1]:
            total += (upper - p[-1]) * hypervolume([q[:-1] for q in pts[: i + 1]], reference[:-1])
    return total


def reference_point(points: Sequence[Sequence[float]]) -> list[float] | None:
    """The hypervolume reference of a set of (minimized) points: per objective the worst value plus a tenth of
    the range (or of the value's magnitude, at least 1, when all are equal); ``None`` without points."""
    pts = [list(p) for p in points]
    if not pts:
        return None
    ref = []
    for k in range(len(pts[0])):
        lo, hi = min(p[k] for p in pts), max(p[k] for p in pts)
        ref.append(hi + 0.1 * (hi - lo if hi > lo else max(abs(hi), 1.0)))
    return ref
