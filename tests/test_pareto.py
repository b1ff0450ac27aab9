"""The one Pareto front and hypervolume (designspace/pareto.py), against brute force and hand-computed values,
and the results' front built on it."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from designspace.pareto import hypervolume, pareto_mask, reference_point
from designspace.results import pareto_front


def _brute(points: list[tuple[float, ...]]) -> list[int]:
    """Indices on the front by definition: no other point <= everywhere and different; first of duplicates."""
    keep = []
    for i, p in enumerate(points):
        if not all(np.isfinite(p)):
            continue
        dominated = any(all(a <= b for a, b in zip(q, p, strict=True)) and q != p for q in points
                        if all(np.isfinite(q)))
        duplicate = any(q == p for q in points[:i])
        if not dominated and not duplicate:
            keep.append(i)
    return keep


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_front_equals_the_definition(k: int) -> None:
    rng = random.Random(k)
    for _ in range(30):
        pts = [tuple(float(rng.randint(0, 6)) for _ in range(k)) for _ in range(rng.randint(1, 40))]
        if rng.random() < 0.3:
            pts[0] = (float("nan"),) * k
        mask = pareto_mask(np.array(pts))
        assert list(np.flatnonzero(mask)) == _brute(pts)


def test_front_by_hand_and_candidates() -> None:
    pts = np.array([[1.0, 5.0], [2.0, 3.0], [2.0, 3.0], [3.0, 4.0], [4.0, 1.0], [0.5, 9.0]])
    assert list(np.flatnonzero(pareto_mask(pts))) == [0, 1, 4, 5]  # (3, 4) is dominated by (2, 3); one (2, 3)
    allowed = np.array([True, False, False, True, True, False])
    assert list(np.flatnonzero(pareto_mask(pts, allowed))) == [0, 3, 4]


def test_hypervolume_by_hand() -> None:
    # two points in 2-D, reference (4, 4): the union of [1,4]x[3,4] (3) and [3,4]x[1,4] (3), overlap 1x1 -> 5
    assert hypervolume([[1.0, 3.0], [3.0, 1.0]], [4.0, 4.0]) == pytest.approx(5.0)
    # a 3-D box [1,2]^3 up to (2,2,2) is 1; a point outside the reference adds nothing
    assert hypervolume([[1.0, 1.0, 1.0], [5.0, 0.0, 0.0]], [2.0, 2.0, 2.0]) == pytest.approx(1.0)
    assert hypervolume([], [1.0]) == 0.0
    # against a Monte-Carlo-free grid count on integer points
    pts = [[0.0, 2.0, 1.0], [1.0, 0.0, 2.0], [2.0, 1.0, 0.0]]
    ref = [3.0, 3.0, 3.0]
    cells = sum(any(all(c >= p for c, p in zip(cell, q, strict=True)) for q in pts)
                for cell in itertools.product(range(3), repeat=3))
    assert hypervolume(pts, ref) == pytest.approx(cells)


def test_reference_point() -> None:
    assert reference_point([[1.0, 10.0], [3.0, 10.0]]) == pytest.approx([3.2, 11.0])
    assert reference_point([]) is None


def test_results_front_uses_directions_and_feasibility() -> None:
    objectives = [{"name": "acc", "direction": "maximize"}, {"name": "ms", "direction": "minimize"}]
    rows = [{"state": "COMPLETE", "feasible": True, "acc": 70.0, "ms": 1.0},
            {"state": "COMPLETE", "feasible": True, "acc": 75.0, "ms": 2.0},
            {"state": "COMPLETE", "feasible": True, "acc": 72.0, "ms": 3.0},   # dominated by the second
            {"state": "COMPLETE", "feasible": False, "acc": 90.0, "ms": 0.5},  # infeasible
            {"state": "FAIL", "feasible": True, "acc": 99.0, "ms": 0.1},      # not complete
            {"state": "COMPLETE", "feasible": True, "acc": None, "ms": 0.1}]  # no value
    front = pareto_front(rows, objectives)
    assert [(r["acc"], r["ms"]) for r in front] == [(75.0, 2.0), (70.0, 1.0)]  # sorted by -acc, then ms
