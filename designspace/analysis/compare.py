"""Two groups of networks (two spaces, or a parameter's options) compared by their EDFs at matched MACs.

The statement follows the design-space papers' reading: group A *dominates* B on a metric to minimize (latency) when
A's EDF lies at or above B's everywhere (at every value, at least as large a share of A's networks is at or below it),
on a metric to maximize when it lies at or below. "By how much" is the ratio of the weighted medians, and the largest
vertical gap between the EDFs (the Kolmogorov-Smirnov distance); the sampling uncertainty is a bootstrap interval of
the median ratio and the share of bootstrap draws in which the dominance holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from designspace.analysis.distributions import bootstrap, edf_at, matched_weights, weighted_quantile

__all__ = ["EdfComparison", "compare_groups"]

GRID = 128  # points the EDFs are compared (and reported) at


@dataclass(frozen=True)
class EdfComparison:
    """Group ``a`` against group ``b`` on one metric, at matched MACs.

    Attributes:
        metric: the metric's name; ``label`` its axis title (unit, device); ``direction`` minimize or maximize.
        a, b: the groups' names.
        n_a, n_b: networks with weight > 0 (inside the MAC range both cover).
        macs_range: (low, high) GMACs of that range.
        grid: the metric's values the EDFs are given at; ``edf_a``, ``edf_b`` the EDFs there.
        median_a, median_b: weighted medians.
        ratio: ``median_a / median_b``; ``ratio_low``, ``ratio_high`` its bootstrap interval (95%).
        dominates: ``"a"``, ``"b"`` or ``None``.
        share_better: the share of the grid where A's EDF is on its better side of B's (ties count).
        gap: the largest vertical gap |F_A - F_B| and ``gap_at`` the value where it is.
        dominance_support: the share of bootstrap draws in which ``dominates`` holds (0 when None).
        statement: the comparison in one sentence.
    """

    metric: str
    label: str
    direction: str
    a: str
    b: str
    n_a: int
    n_b: int
    macs_range: tuple[float, float]
    grid: tuple[float, ...]
    edf_a: tuple[float, ...]
    edf_b: tuple[float, ...]
    median_a: float
    median_b: float
    ratio: float
    ratio_low: float
    ratio_high: float
    dominates: str | None
    share_better: float
    gap: float
    gap_at: float
    dominance_support: float
    statement: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def _dominance(fa: np.ndarray, fb: np.ndarray, direction: str) -> str | None:
    if direction == "minimize":
        return "a" if np.all(fa >= fb) and np.any(fa > fb) else "b" if np.all(fb >= fa) and np.any(fb > fa) else None
    return "a" if np.all(fa <= fb) and np.any(fa < fb) else "b" if np.all(fb <= fa) and np.any(fb < fa) else None


def compare_groups(values: np.ndarray, macs: np.ndarray, in_a: np.ndarray, in_b: np.ndarray, *, metric: str,
                   label: str, direction: str = "minimize", names: tuple[str, str] = ("A", "B"), reps: int = 200,
                   seed: int = 0, unit: str = "") -> EdfComparison:
    """Compares the metric ``values`` of the networks in ``in_a`` and ``in_b`` (boolean masks) at matched MACs.

    Args:
        values: the metric of every network.
        macs: their MACs in GMACs (the complexity the groups are matched on).
        in_a, in_b: which networks are in each group.
        metric, label, direction: the metric's name, axis title and direction.
        names: the groups' names for the statement.
        reps: bootstrap draws.
        seed: the bootstrap's seed.
        unit: the metric's unit for the statement (``ms``).
    """
    values, macs = np.asarray(values, dtype=float), np.asarray(macs, dtype=float)
    ia, ib = np.flatnonzero(in_a & np.isfinite(values)), np.flatnonzero(in_b & np.isfinite(values))

    def weights(ja: np.ndarray, jb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        idx = np.concatenate([ja, jb])
        mask_a = np.zeros(len(idx), dtype=bool)
        mask_a[: len(ja)] = True
        wa, wb = matched_weights(macs[idx], [mask_a, ~mask_a])
        return values[ja], wa[: len(ja)], values[jb], wb[len(ja):]

    xa, wa, xb, wb = weights(ia, ib)
    used = np.concatenate([ia[wa > 0], ib[wb > 0]])
    lo_m = float(macs[used].min()) if len(used) else float("nan")
    hi_m = float(macs[used].max()) if len(used) else float("nan")
    pooled = np.concatenate([xa[wa > 0], xb[wb > 0]])
    grid = np.unique(np.quantile(pooled, np.linspace(0, 1, GRID))) if len(pooled) else np.array([])
    fa, fb = edf_at(xa, wa, grid), edf_at(xb, wb, grid)
    ma, mb = weighted_quantile(xa, 0.5, wa), weighted_quantile(xb, 0.5, wb)
    ratio = ma / mb if mb else float("nan")

    def ratio_of(drawn: list[np.ndarray]) -> float:
        xa2, wa2, xb2, wb2 = weights(*drawn)
        m2 = weighted_quantile(xb2, 0.5, wb2)
        return weighted_quantile(xa2, 0.5, wa2) / m2 if m2 else float("nan")

    r_lo, r_hi = bootstrap(ratio_of, [ia, ib], reps=reps, seed=seed)
    dom = _dominance(fa, fb, direction) if len(grid) else None
    support = 0.0
    if dom is not None:
        rng = np.random.default_rng(seed + 1)
        hits = 0
        for _ in range(reps):
            xa2, wa2, xb2, wb2 = weights(ia[rng.integers(0, len(ia), len(ia))], ib[rng.integers(0, len(ib), len(ib))])
            hits += _dominance(edf_at(xa2, wa2, grid), edf_at(xb2, wb2, grid), direction) == dom
        support = hits / reps
    better = (fa >= fb) if direction == "minimize" else (fa <= fb)
    share = float(better.mean()) if len(grid) else float("nan")
    diff = np.abs(fa - fb)
    k = int(np.argmax(diff)) if len(grid) else 0
    gap, gap_at = (float(diff[k]), float(grid[k])) if len(grid) else (float("nan"), float("nan"))
    comp = EdfComparison(metric, label, direction, names[0], names[1], int((wa > 0).sum()), int((wb > 0).sum()),
                         (lo_m, hi_m), tuple(float(g) for g in grid), tuple(float(f) for f in fa),
                         tuple(float(f) for f in fb), ma, mb, ratio, r_lo, r_hi, dom, share, gap, gap_at, support, "")
    return _with_statement(comp, unit)


def _with_statement(c: EdfComparison, unit: str) -> EdfComparison:
    from dataclasses import replace

    if not c.grid:
        return replace(c, statement=f"{c.label}: {c.a} and {c.b} share no MAC range; they cannot be compared at "
                                    "matched complexity")
    u = f" {unit}" if unit else ""
    lower = c.ratio < 1
    pct = abs(c.ratio - 1) * 100
    better = (c.a if lower else c.b) if c.direction == "minimize" else (c.b if lower else c.a)
    certain = not (c.ratio_low <= 1 <= c.ratio_high)
    head = (f"{c.label} at matched MACs ({c.macs_range[0]:.3g}-{c.macs_range[1]:.3g} GMACs, {c.n_a} vs {c.n_b} "
            f"networks): median {c.a} {c.median_a:.4g}{u} vs {c.b} {c.median_b:.4g}{u}, {c.a}/{c.b} = {c.ratio:.3f} "
            f"(95% bootstrap interval {c.ratio_low:.3f}-{c.ratio_high:.3f})")
    if c.dominates is not None:
        win = c.a if c.dominates == "a" else c.b
        verdict = (f"{win} dominates: its EDF is on the better side everywhere (largest gap {c.gap:.2f} at "
                   f"{c.gap_at:.4g}{u}; the dominance holds in {c.dominance_support:.0%} of bootstrap draws)")
    else:
        verdict = (f"neither dominates: {c.a}'s EDF is on the better side over {c.share_better:.0%} of the range "
                   f"(largest gap {c.gap:.2f} at {c.gap_at:.4g}{u})")
    size = (f"{better} is better by {pct:.1f}% at the median" if certain
            else f"the medians differ by {pct:.1f}%, within the sampling uncertainty")
    return replace(c, statement=f"{head}; {size}; {verdict}.")
