"""The one fitting routine (designspace.evaluate.fitting): the solver, the held-out predictions, the rule."""

from __future__ import annotations

import numpy as np
import pytest

from designspace.evaluate.fitting import (
    Candidate,
    choose_fit,
    held_out,
    relative_rows,
    ridge_loo_residuals,
    solve,
)


def _data(n: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.1, 2.0, size=(n, 3))
    return x, x @ np.array([1.0, 0.5, 2.0]) * rng.uniform(0.97, 1.03, n)


def test_without_a_ridge_it_is_least_squares() -> None:
    x, y = _data()
    assert np.allclose(solve(x, y), np.linalg.lstsq(x, y, rcond=None)[0])


def test_a_ridge_pulls_towards_its_target_and_minimizes_the_penalized_sum() -> None:
    x, y = _data()
    target = np.array([3.0, 3.0, 3.0])
    weak, strong = solve(x, y, ridge=1e-6, target=target), solve(x, y, ridge=1e6, target=target)
    assert np.allclose(weak, solve(x, y), atol=1e-4) and np.allclose(strong, target, atol=1e-3)
    c = solve(x, y, ridge=2.0, target=target)

    def loss(v: np.ndarray) -> float:
        return float(np.sum((x @ v - y) ** 2) + 2.0 * np.sum((v - target) ** 2))

    rng = np.random.default_rng(1)
    assert all(loss(c) <= loss(c + rng.normal(0, 1e-3, 3)) for _ in range(50))
    # non-negative on the same problem agrees where the optimum is already positive
    assert np.allclose(solve(x, y, ridge=2.0, target=target, nonneg=True), c, atol=1e-8)


def test_nonneg_keeps_every_coefficient_at_or_above_zero() -> None:
    x, _ = _data()
    y = x @ np.array([2.0, -1.0, 1.0])  # the unconstrained fit wants a negative coefficient
    assert solve(x, y)[1] < 0
    c = solve(x, y, nonneg=True)
    assert (c >= 0).all() and c[1] == 0.0 and np.sum((x @ c - y) ** 2) < np.sum((x @ (c + [0, 0.1, 0]) - y) ** 2)


def test_relative_rows_weigh_each_point_by_its_own_size() -> None:
    x, y = _data()
    a, b = relative_rows(x, y)
    c = np.array([1.0, 0.5, 2.0])
    assert np.allclose(b, 1.0) and np.allclose(a @ c - b, (x @ c - y) / y)
    # scaling one point's row and target by 1000 leaves the relative fit unchanged
    x2, y2 = x.copy(), y.copy()
    x2[0] *= 1000
    y2[0] *= 1000
    assert np.allclose(solve(*relative_rows(x2, y2)), solve(a, b))


@pytest.mark.parametrize("folds", [None, 4, 100])
def test_held_out_predicts_each_point_without_it_or_its_fold(folds: int | None) -> None:
    x, y = _data(13)

    def fit_predict(keep: np.ndarray) -> np.ndarray:
        return x[~keep] @ solve(x[keep], y[keep])

    pred = held_out(len(y), fit_predict, folds)
    for i in range(len(y)):
        keep = (np.arange(len(y)) % folds != i % folds) if folds is not None and folds < len(y) \
            else np.arange(len(y)) != i
        assert pred[i] == pytest.approx(float(x[i] @ solve(x[keep], y[keep])))


def test_closed_form_leave_one_out_equals_refitting() -> None:
    x, y = _data(25)
    z = (x - x.mean(0)) / x.std(0)
    for alpha in (0.01, 1.0, 30.0):
        def fit_predict(keep: np.ndarray, a: float = alpha) -> np.ndarray:
            zm, ym = z[keep].mean(0), y[keep].mean()
            coef = solve(z[keep] - zm, y[keep] - ym, ridge=a)
            return ym + (z[~keep] - zm) @ coef

        assert np.allclose(ridge_loo_residuals(z, y, alpha), y - held_out(len(y), fit_predict))


def _cand(mean: float, complexity: int, spread: float, n: int = 36) -> Candidate[int]:
    return Candidate((mean - spread, mean + spread) * (n // 2), (complexity,), complexity)


def test_the_rule_keeps_the_simplest_within_one_standard_error_of_the_best() -> None:
    # 36 points spread 0.02: standard error 0.02 / 5.92 = 0.0034
    best, near, far = _cand(0.040, 3, 0.02), _cand(0.042, 2, 0.02), _cand(0.050, 1, 0.02)
    assert choose_fit([best, near, far], standard_errors=1.0).fit == 2
    assert choose_fit([best, far], standard_errors=1.0).fit == 3
    assert choose_fit([best, _cand(0.050, 1, 0.08)], standard_errors=1.0).fit == 3  # the best's errors set the band
    assert choose_fit([_cand(0.040, 3, 0.08), _cand(0.050, 1, 0.02)], standard_errors=1.0).fit == 1
    assert choose_fit([_cand(0.04, 2, 0.0), _cand(0.04, 1, 0.0)], standard_errors=1.0).fit == 1  # ties: the simpler
    # three standard errors reach the far one
    assert choose_fit([best, near, far], standard_errors=3.0).fit == 1


def test_with_no_width_the_rule_keeps_the_lowest_mean_and_the_simplest_of_equals() -> None:
    best, near = _cand(0.040, 3, 0.02), _cand(0.042, 2, 0.02)
    assert choose_fit([best, near], standard_errors=0.0).fit == 3
    assert choose_fit([_cand(0.04, 2, 0.01), _cand(0.04, 1, 0.03)], standard_errors=0.0).fit == 1
    with pytest.raises(ValueError, match="no candidate"):
        choose_fit([], standard_errors=0.0)
    with pytest.raises(ValueError, match="< 0"):
        choose_fit([best], standard_errors=-1.0)
