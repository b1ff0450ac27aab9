"""Values of a Space document: a fixed value, a choice (``[3, 5, 7]``) or a range
(``{low: 16, high: 64, step: 8}`` or ``{low: 1e-4, high: 1e-1, log: true}``).

Each parsed value is a :class:`Dist` that can be sampled, tested for membership, counted, turned into
an Optuna distribution, and asked for repair candidates nearest a given value.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from designspace.blocks.registry import ParamSpec
from designspace.exceptions import did_you_mean

if TYPE_CHECKING:
    from designspace.space.document import Ctx

__all__ = ["Choice", "Dist", "Fixed", "FloatRange", "IntRange", "parse_dist"]

_RANGE_KEYS = ("low", "high", "step", "log")
_FLOAT_TOL = 1e-9


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= _FLOAT_TOL * max(1.0, abs(a), abs(b))


@dataclass(frozen=True)
class Fixed:
    """One value."""

    value: Any

    size = 1
    free = False

    def sample(self, rng: random.Random) -> Any:
        return self.value

    def __contains__(self, value: Any) -> bool:
        return _equal(value, self.value)

    def default(self) -> Any:
        return self.value

    def candidates(self, near: Any) -> list[Any]:
        return [self.value]

    def describe(self) -> str:
        return repr(self.value)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return _close(float(a), float(b))
    return bool(a == b)


@dataclass(frozen=True)
class Choice:
    """One of ``options`` (numbers, strings or bools), uniformly."""

    options: tuple[Any, ...]

    free = True

    @property
    def size(self) -> int:
        return len(self.options)

    def sample(self, rng: random.Random) -> Any:
        return self.options[int(rng.random() * len(self.options))]

    def __contains__(self, value: Any) -> bool:
        return any(_equal(value, o) for o in self.options)

    def default(self) -> Any:
        return self.options[0]

    def candidates(self, near: Any) -> list[Any]:
        """Options, the closest to ``near`` first (numbers by distance, others in order)."""
        if isinstance(near, (int, float)) and not isinstance(near, bool):
            return sorted(self.options, key=lambda o: (abs(float(o) - float(near)), float(o)))
        return list(self.options)

    def describe(self) -> str:
        return repr(list(self.options))

    def to_optuna(self) -> Any:
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution(list(self.options))


@dataclass(frozen=True)
class IntRange:
    """An integer in ``[low, high]`` on the grid ``low + k * step`` (log-uniform if ``log``)."""

    low: int
    high: int
    step: int = 1
    log: bool = False

    free = True

    @property
    def size(self) -> int:
        return (self.high - self.low) // self.step + 1

    def sample(self, rng: random.Random) -> int:
        if self.log:
            return min(self.high, int(math.exp(rng.uniform(math.log(self.low), math.log(self.high + 1)))))
        return self.low + self.step * int(rng.random() * self.size)

    def __contains__(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            return False
        return self.low <= value <= self.high and (int(value) - self.low) % self.step == 0

    def default(self) -> int:
        return self.low

    def candidates(self, near: Any) -> list[int]:
        grid = range(self.low, self.high + 1, self.step)
        return sorted(grid, key=lambda v: (abs(v - near), v)) if isinstance(near, (int, float)) else list(grid)

    def describe(self) -> str:
        step = f" step {self.step}" if self.step != 1 else ""
        return f"{{{self.low}..{self.high}{step}{' log' if self.log else ''}}}"

    def to_optuna(self) -> Any:
        from optuna.distributions import IntDistribution

        return IntDistribution(self.low, self.high, step=self.step, log=self.log)


@dataclass(frozen=True)
class FloatRange:
    """A float in ``[low, high]``, on the grid ``low + k * step`` if ``step``, log-uniform if ``log``."""

    low: float
    high: float
    step: float | None = None
    log: bool = False

    free = True

    @property
    def size(self) -> int | None:
        """Grid points, or ``None`` for a continuous range."""
        return None if self.step is None else round((self.high - self.low) / self.step) + 1

    def sample(self, rng: random.Random) -> float:
        if self.step is not None:
            return self.low + self.step * int(rng.random() * (self.size or 1))
        if self.log:
            return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return rng.uniform(self.low, self.high)

    def __contains__(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if not (self.low - _FLOAT_TOL <= value <= self.high + _FLOAT_TOL):
            return False
        if self.step is None:
            return True
        k = (value - self.low) / self.step
        return _close(k, round(k))

    def default(self) -> float:
        return self.low

    def candidates(self, near: Any) -> list[float]:
        n = self.size or 33
        step = self.step or (self.high - self.low) / 32
        grid = [self.low + step * k for k in range(n)]
        return sorted(grid, key=lambda v: abs(v - near)) if isinstance(near, (int, float)) else grid

    def describe(self) -> str:
        step = f" step {self.step:g}" if self.step is not None else ""
        return f"{{{self.low:g}..{self.high:g}{step}{' log' if self.log else ''}}}"

    def to_optuna(self) -> Any:
        from optuna.distributions import FloatDistribution

        return FloatDistribution(self.low, self.high, step=self.step, log=self.log)


Dist = Fixed | Choice | IntRange | FloatRange


def parse_dist(raw: Any, spec: ParamSpec, path: tuple[Any, ...], ctx: Ctx) -> Dist:
    """Parses a value, choice or range for a parameter described by ``spec``.

    Raises:
        DocumentError: an empty or duplicated choice, a value the parameter does not allow, a range on a
            non-numeric parameter, ``low > high``, a step that does not divide the range, ``log`` with a
            step or a non-positive bound, an unknown range key.
    """
    if isinstance(raw, list):
        if not raw:
            raise ctx.error(path, "empty choice", f"list at least one value, e.g. [{spec.default!r}]")
        values = [_coerce(spec, v, path + (i,), ctx) for i, v in enumerate(raw)]
        for i, v in enumerate(values):
            if any(_equal(v, w) for w in values[:i]):
                raise ctx.error(path + (i,), f"{v!r} is listed twice", "list each value once")
        return Fixed(values[0]) if len(values) == 1 else Choice(tuple(values))
    if isinstance(raw, dict):
        return _parse_range(raw, spec, path, ctx)
    return Fixed(_coerce(spec, raw, path, ctx))


def _coerce(spec: ParamSpec, value: Any, path: tuple[Any, ...], ctx: Ctx) -> Any:
    if isinstance(value, (list, dict)):
        raise ctx.error(path, f"expected one {spec.type.__name__}, got a {type(value).__name__}",
                        "a choice is one flat list of values")
    try:
        return spec.coerce(value)
    except ValueError as err:
        problem, fix = err.args
        raise ctx.error(path, problem, fix) from None


def _parse_range(raw: dict[str, Any], spec: ParamSpec, path: tuple[Any, ...], ctx: Ctx) -> Dist:
    for key in raw:
        if key not in _RANGE_KEYS:
            raise ctx.error(path + (key,), f"unknown range key {key!r}",
                            did_you_mean(str(key), _RANGE_KEYS) + "a range has low, high, step, log")
    if spec.type not in (int, float):
        raise ctx.error(path, f"a range needs a numeric parameter; {spec.name} is a {spec.type.__name__}",
                        "list the values instead, e.g. [" + ", ".join(map(repr, spec.choices or (spec.default,)))
                        + "]")
    for key in ("low", "high"):
        if key not in raw:
            raise ctx.error(path, f"a range needs `{key}`", "write {low: ..., high: ...}")
    low = _coerce(spec, raw["low"], path + ("low",), ctx)
    high = _coerce(spec, raw["high"], path + ("high",), ctx)
    if low > high:
        raise ctx.error(path, f"`low <= high` must hold, but got (low={low}, high={high})", "swap them")
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise ctx.error(path + ("log",), f"log must be true or false, got {log!r}", "write log: true")
    step = raw.get("step")
    if step is not None:
        if isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0 or (
                spec.type is int and step != int(step)):
            raise ctx.error(path + ("step",), f"step must be a positive {spec.type.__name__}, got {step!r}",
                            "use e.g. step: 8")
        if log:
            raise ctx.error(path, "a range cannot have both `step` and `log`", "drop one of them")
        span = high - low
        k = span / step
        if not _close(k, round(k)):
            divisors = [d for d in range(1, int(span) + 1) if span % d == 0] if spec.type is int else []
            nearest = sorted(divisors, key=lambda d: (abs(d - step), d))[:2]
            raise ctx.error(path + ("step",), f"step {step} does not divide the range {low}..{high} (span {span})",
                            (f"use a step dividing {span} ({' or '.join(map(str, sorted(nearest)))}), or "
                             if nearest else "") + f"set high to {low + step * math.floor(k)} or "
                                                   f"{low + step * math.ceil(k)}")
    if log and low <= 0:
        raise ctx.error(path, f"a log range needs low > 0, got {low}", "raise low or drop log")
    if low == high:
        return Fixed(low)
    if spec.type is int:
        return IntRange(int(low), int(high), int(step or 1), log)
    return FloatRange(float(low), float(high), float(step) if step is not None else None, log)
