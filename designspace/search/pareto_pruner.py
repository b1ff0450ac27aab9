"""``--pruner pareto``: successive halving by Pareto rank, the pruner of trained searches with several objectives.

Optuna's pruners, and ``Trial.report`` itself, work on single-objective studies only. A trained search's other
objectives (latency, parameters, MACs) are known before a candidate trains, so a multi-objective rung can be
judged from the validation top-1 reached so far and those known costs.

The rule. Rungs are at epochs ``min_resource * reduction_factor**k`` (1, 3, 9, ... with the defaults), below the
per-trial epoch cap (a trial that trained all its epochs completes). When a trial finishes a rung's epoch, it is
compared with every other trial that reached that epoch (complete, pruned or still running), each as the point
(validation top-1 at that epoch, maximized; each known cost in its objective's direction). The points are sorted
by non-dominated rank (front 0: no other point is at least as good everywhere and better somewhere; front 1: the
same once front 0 is removed; ...), and within a front by hypervolume contribution (each objective scaled to
[0, 1] over the rung's points, reference 1.1): the volume the front loses without the point, so that the ends of
the front and the points in its gaps rank first. The trial continues if it is on front 0, or if its place in
that order is within the best ``n // reduction_factor`` of the ``n`` points (at least one): a trial that no other
beats in both accuracy and cost at the same epoch is never stopped, and beyond those, a third (with factor 3)
go on, as in successive halving. The first trial at a rung always continues.

Each trial's figures are its user attribute ``pareto_rungs`` (``{"costs": [...], "top1": [...]}``: the known
costs, minimized, and the validation top-1 after each epoch), written by the trainer before it asks
(:mod:`designspace.search.trained`); this pruner reads only that, through Optuna's public API
(:class:`optuna.pruners.BasePruner`, ``study.get_trials``, ``trial.user_attrs``), so it works across workers
sharing a study, and for a single objective too (where it is plain successive halving).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna

from designspace.pareto import hypervolume, pareto_mask

__all__ = ["ATTR", "ParetoHalvingPruner", "order", "rungs"]

ATTR = "pareto_rungs"
_STATES = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.RUNNING)


def rungs(max_resource: int, min_resource: int = 1, reduction_factor: int = 3) -> list[int]:
    """The rung epochs below ``max_resource``: ``min_resource * reduction_factor**k``."""
    out, r = [], min_resource
    while r < max_resource:
        out.append(r)
        r *= reduction_factor
    return out


def _contributions(points: np.ndarray) -> np.ndarray:
    """Each row's exclusive hypervolume within ``points`` (a front; columns minimized and scaled to [0, 1])."""
    ref = [1.1] * points.shape[1]
    total = hypervolume(points.tolist(), ref)
    return np.array([total - hypervolume(np.delete(points, i, axis=0).tolist(), ref) for i in range(len(points))])


def order(points: Sequence[Sequence[float]]) -> tuple[list[int], list[int]]:
    """(indices of ``points`` best first, each point's front number): non-dominated rank, then hypervolume
    contribution within the front, larger first, then index. Every column is minimized; a row with a NaN or
    an infinity goes last."""
    pts = np.asarray(points, dtype=float)
    n = len(pts)
    finite = np.isfinite(pts).all(axis=1)
    scaled = pts.copy()
    if finite.any():
        lo, hi = pts[finite].min(axis=0), pts[finite].max(axis=0)
        scaled[finite] = (pts[finite] - lo) / np.where(hi > lo, hi - lo, 1.0)
    front = np.full(n, n, dtype=int)
    left = finite.copy()
    rank = 0
    ranked: list[int] = []
    while left.any():
        mask = pareto_mask(scaled, left)
        if not mask.any():  # identical points: pareto_mask keeps the first of them
            mask = left.copy()
        idx = np.flatnonzero(mask)
        contrib = _contributions(scaled[idx])
        ranked += [int(i) for _, i in sorted(zip(-contrib, idx, strict=True))]
        front[idx] = rank
        left &= ~mask
        rank += 1
    ranked += [int(i) for i in np.flatnonzero(~finite)]
    return ranked, [int(f) for f in front]


class ParetoHalvingPruner(optuna.pruners.BasePruner):
    """Successive halving by Pareto rank (see the module docstring for the rule).

    Args:
        max_resource: the per-trial epoch cap (no rung at or above it).
        min_resource: the first rung's epoch.
        reduction_factor: a rung keeps ``1 / reduction_factor`` of its trials beyond its first front.
    """

    def __init__(self, max_resource: int, min_resource: int = 1, reduction_factor: int = 3) -> None:
        if min_resource < 1 or reduction_factor < 2:
            raise ValueError(f"min_resource >= 1 and reduction_factor >= 2, got {min_resource}, {reduction_factor}")
        self.max_resource = max_resource
        self.min_resource = min_resource
        self.reduction_factor = reduction_factor
        self.rungs = set(rungs(max_resource, min_resource, reduction_factor))

    def prune(self, study: optuna.study.Study, trial: Any) -> bool:
        """Whether ``trial`` (an :class:`optuna.trial.FrozenTrial` or a running :class:`optuna.trial.Trial`) stops
        at the epoch it has just reported; ``False`` between rungs and without figures."""
        mine = _figures(trial.user_attrs.get(ATTR))
        if mine is None:
            return False
        costs, top1 = mine
        epoch = len(top1)
        if epoch not in self.rungs:
            return False
        points = [[-top1[epoch - 1], *costs]]
        for other in study.get_trials(deepcopy=False, states=_STATES):
            if other.number == trial.number:
                continue
            theirs = _figures(other.user_attrs.get(ATTR))
            if theirs is not None and len(theirs[1]) >= epoch and len(theirs[0]) == len(costs):
                points.append([-theirs[1][epoch - 1], *theirs[0]])
        if len(points) == 1:
            return False
        ranked, front = order(points)
        keep = max(1, len(points) // self.reduction_factor)
        return not (front[0] == 0 or ranked.index(0) < keep)


def _figures(record: Any) -> tuple[list[float], list[float]] | None:
    """(costs, top-1 per epoch) of a ``pareto_rungs`` record, or ``None`` when it is not one."""
    if not isinstance(record, dict):
        return None
    costs, top1 = record.get("costs"), record.get("top1")
    if not isinstance(costs, list) or not isinstance(top1, list):
        return None
    try:
        return [float(c) if c is not None else math.inf for c in costs], [float(v) for v in top1]
    except (TypeError, ValueError):
        return None
