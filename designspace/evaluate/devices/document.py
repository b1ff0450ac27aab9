"""The device profile document: its classes, parsing (with file:line errors) and YAML form. What a profile is and
how it is fitted: :mod:`designspace.evaluate.devices.profiles` and docs/devices.md, 'Profiles'."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from designspace._yaml import Ctx
from designspace.arch import Arch
from designspace.evaluate.devices.costmodel import LEVEL, CostModel
from designspace.evaluate.devices.features import FEATURES, component_features, network_features
from designspace.evaluate.points import DEVICES, load_points
from designspace.exceptions import DocumentError, did_you_mean

__all__ = ["COLUMNS", "DeviceProfile", "FitSummary", "Prediction", "ProfilePoint", "parse_device", "profile_doc"]

_KEYS = ("name", "description", "source", "column", "features", "groups", "exclude", "prior", "fit", "points")
_FIT_KEYS = ("lambda", "coef", "ranges", "loo_mean", "loo_max", "within_10", "interval", "cov")
#: Latency columns a profile may fit: the published points' devices, or ``user`` (calibrated points).
COLUMNS = (*DEVICES.values(), "user")


@dataclass(frozen=True)
class ProfilePoint:
    """One fitted point: ``ref`` a published point's id (``kind == "id"``) or an Arch file path or zoo name (``kind
    == "arch"``), ``ms`` its latency on the device and ``loo_ms`` that of the model fitted without it (None before
    fitting), milliseconds."""

    ref: str
    kind: str
    ms: float
    loo_ms: float | None = None

    def arch(self) -> Arch:
        """The point's Arch (raises DocumentError for an unknown id or Arch)."""
        if self.kind == "id":
            found = {p.id: p for p in load_points()}
            if self.ref not in found:
                raise DocumentError(f"unknown point {self.ref!r}", path="points",
                                    fix=did_you_mean(self.ref, list(found)) + "see designspace/data/points")
            return found[self.ref].arch
        from designspace.network import load_arch

        return load_arch(self.ref)


@dataclass(frozen=True)
class FitSummary:
    """A device fit in brief: ``form`` ``"cost"`` (:mod:`designspace.evaluate.devices.costmodel`), its ``coef`` in
    the profile's feature order (ms per feature unit), the mean and largest relative leave-one-out errors
    ``loo_mean``, ``loo_max`` (0.08 = 8%) and the number of ``points`` fitted."""

    form: str
    coef: tuple[float, ...]
    loo_mean: float
    loo_max: float
    points: int


@dataclass(frozen=True)
class Prediction:
    """A latency predicted on a device by its cost model.

    Attributes:
        device: the profile name.
        ms: predicted milliseconds (the sum of ``components``).
        low, high: the 90% interval (ms; :mod:`designspace.evaluate.devices.costmodel`); 0 and ``inf`` when refused.
        extrapolated: whether the network's features lie outside what the fit saw.
        outside: which features, with their values and the fitted range.
        components: (component name, ms) in plan order, then ``network`` (the per-network constant).
        fit: the fit's summary (form ``"cost"``, coefficients, leave-one-out error, points).
        local_ms: a local measurement taken alongside, if any (not used by the prediction).
        refusal: why no interval is given, in words ("" when one is): the network uses something none of the
            device's points has, or lies too far from them. ``ms`` is then not a figure to budget on.
    """

    device: str
    ms: float
    low: float
    high: float
    extrapolated: bool
    outside: tuple[str, ...]
    components: tuple[tuple[str, float], ...]
    fit: FitSummary
    local_ms: float | None = None
    refusal: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``label: predicted``)."""
        return {"device": self.device, "ms": self.ms, "low_ms": None if self.refusal else self.low,
                "high_ms": None if self.refusal else self.high, "refusal": self.refusal, "label": "predicted",
                "extrapolated": self.extrapolated, "outside": list(self.outside), "fit": self.fit.form,
                "loo_mean_error": self.fit.loo_mean, "loo_max_error": self.fit.loo_max, "points": self.fit.points,
                "local_ms": self.local_ms, "components": dict(self.components)}


@dataclass(frozen=True)
class DeviceProfile:
    """A device's cost model and how it was fitted: the latency ``column`` of the published points it reads (``user``:
    calibrated points), its ``features``, the point ``groups`` (None: all) less those in ``exclude``, the ``prior``
    profile's name, the fitted ``model`` (None before fitting) and its ``points``, and the ``file`` it was read from."""

    name: str
    description: str
    source: str
    column: str
    features: tuple[str, ...]
    groups: tuple[str, ...] | None
    exclude: tuple[str, ...]
    prior: str | None
    model: CostModel | None
    points: tuple[ProfilePoint, ...]
    file: str = ""

    @property
    def summary(self) -> FitSummary:
        """The fit's summary: leave-one-out errors and points."""
        m = self._model()
        errors = m.loo_errors
        return FitSummary("cost", tuple(m.coef), sum(errors) / len(errors) if errors else 0.0, max(errors, default=0.0),
                          len(self.points))

    def _model(self) -> CostModel:
        if self.model is None:
            raise DocumentError(f"device {self.name!r} has not been fitted", file=self.file or self.name,
                                fix="fit it (designspace fit-devices) or calibrate it (designspace calibrate)")
        return self.model

    def predict(self, arch: Arch, local_ms: float | None = None) -> Prediction:
        """The latency of ``arch`` on this device, per component, with its interval and extrapolation flag."""
        m = self._model()
        parts = m.breakdown(component_features(arch))
        ms = sum(parts.values())
        totals = network_features(arch)
        refusal = m.refusal(totals)
        low, high = (0.0, math.inf) if refusal else m.interval(ms, totals)
        outside = tuple(m.outside(totals))
        return Prediction(self.name, ms, low, high, bool(outside or refusal), outside, tuple(parts.items()),
                          self.summary, local_ms, refusal=refusal)


# ------------------------------------------------------------------------------------------------ document
def _sig(x: float) -> float:
    return float(f"{x:.6g}")


def profile_doc(profile: DeviceProfile) -> dict[str, Any]:
    """The YAML document of a profile (coefficients to 6 significant digits, so a refit writes the same file)."""
    doc: dict[str, Any] = {"name": profile.name, "description": profile.description, "source": profile.source,
                           "column": profile.column, "features": list(profile.features),
                           "groups": "all" if profile.groups is None else list(profile.groups),
                           "exclude": list(profile.exclude), "prior": profile.prior}
    m = profile.model
    if m is not None:
        errors = m.loo_errors
        doc["fit"] = {"lambda": m.lam, "coef": {f: _sig(c) for f, c in zip(m.features, m.coef, strict=True)},
                      "ranges": {f: [_sig(lo), _sig(hi)] for f, (lo, hi) in zip(m.features, m.ranges, strict=True)},
                      "loo_mean": round(sum(errors) / len(errors), 4), "loo_max": round(max(errors), 4),
                      "within_10": round(sum(e <= 0.1 for e in errors) / len(errors), 4)}
        if m.scores is not None and m.cov is not None:
            doc["fit"]["interval"] = {"level": LEVEL, "q_lo": _sig(m.scores[0]), "q_hi": _sig(m.scores[1]),
                                      "tau": _sig(m.scores[2])}
            doc["fit"]["cov"] = {f: [_sig(v) for v in row] for f, row in zip(m.features, m.cov, strict=True)}
    doc["points"] = [{p.kind: p.ref, "ms": p.ms, **({"loo_ms": p.loo_ms} if p.loo_ms is not None else {})}
                     for p in profile.points]
    return doc


def _number(ctx: Ctx, path: tuple[Any, ...], value: Any, what: str, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (positive and not value > 0) or value < 0:
        raise ctx.error(path, f"{what} must be a {'positive' if positive else 'non-negative'} number, got {value!r}",
                        "write e.g. 0.73" if positive else "write e.g. 0.0")
    return float(value)


def _str_list(ctx: Ctx, data: dict[str, Any], key: str) -> tuple[str, ...]:
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ctx.error((key,), f"{key} must be a list of names", f"write {key}: [name, ...]")
    return tuple(value)


def _points(ctx: Ctx, raw: Any, fitted: bool) -> tuple[ProfilePoint, ...]:
    if not isinstance(raw, list) or not raw:
        raise ctx.error(("points",), "missing `points`: the measured networks and their latencies",
                        "write points: [{id: iformer_m, ms: 1.1}, {arch: my.yaml, ms: 2.0}]")
    out = []
    for i, item in enumerate(raw):
        where = ("points", i)
        if not isinstance(item, dict) or len({"id", "arch"} & set(item)) != 1:
            raise ctx.error(where, "a point is {id: POINT, ms: MS} or {arch: FILE-OR-ZOO-NAME, ms: MS}",
                            "write e.g. {id: iformer_m, ms: 1.1}")
        kind = "id" if "id" in item else "arch"
        for key in item:
            if key not in ("id", "arch", "ms", "loo_ms"):
                raise ctx.error((*where, key), f"unknown field {key!r} in a point", "fields: id or arch, ms, loo_ms")
        ms = _number(ctx, (*where, "ms"), item.get("ms"), "ms")
        loo = None if item.get("loo_ms") is None else _number(ctx, (*where, "loo_ms"), item["loo_ms"], "loo_ms")
        if fitted and loo is None:
            raise ctx.error(where, "a fitted profile's point needs loo_ms", "refit the profile")
        point = ProfilePoint(str(item[kind]), kind, ms, loo)
        try:
            point.arch()
        except DocumentError as err:
            raise ctx.error((*where, kind), f"{point.ref!r}: {err.problem}", err.fix or "give a known point id, an "
                            "Arch file or a zoo name") from None
        out.append(point)
    return tuple(out)


def _interval(ctx: Ctx, fit: dict[str, Any], features: tuple[str, ...]
              ) -> tuple[tuple[float, float, float] | None, tuple[tuple[float, ...], ...] | None]:
    """The fit's interval scores and the coefficients' covariance, or (None, None) for a profile fitted before them."""
    iv, cov = fit.get("interval"), fit.get("cov")
    if iv is None and cov is None:
        return None, None
    fix = "refit the profile (designspace fit-devices, or calibrate again)"
    if not isinstance(iv, dict) or set(iv) != {"level", "q_lo", "q_hi", "tau"} or iv["level"] != LEVEL:
        raise ctx.error(("fit", "interval"), f"interval must be {{level: {LEVEL}, q_lo: Q, q_hi: Q, tau: T}}", fix)
    for key in ("q_lo", "q_hi", "tau"):
        if isinstance(iv[key], bool) or not isinstance(iv[key], (int, float)) or not math.isfinite(iv[key]):
            raise ctx.error(("fit", "interval", key), f"{key} must be a number, got {iv[key]!r}", fix)
    q_lo, q_hi, tau = (float(iv[key]) for key in ("q_lo", "q_hi", "tau"))
    if q_lo > 0 or q_hi < 0 or tau < 0:
        raise ctx.error(("fit", "interval"), f"q_lo {q_lo:g} <= 0 <= q_hi {q_hi:g} and tau {tau:g} >= 0 must hold", fix)
    if not isinstance(cov, dict) or set(cov) != set(features):
        raise ctx.error(("fit", "cov"), "cov must give one row per feature", fix)
    rows = [cov[f] for f in features]
    width = len(features)
    for f, row in zip(features, rows, strict=True):
        if (not isinstance(row, list) or len(row) != width
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in row)):
            raise ctx.error(("fit", "cov", f), f"the cov row of {f} must be {width} numbers", fix)
    return (q_lo, q_hi, tau), tuple(tuple(float(v) for v in row) for row in rows)


def parse_device(data: Any, ctx: Ctx) -> DeviceProfile:
    """Validates a profile document. Raises :class:`DocumentError` (file, line, field and fix) on bad input."""
    if not isinstance(data, dict):
        raise ctx.error((), "a device profile must be a mapping", f"write its fields: {', '.join(_KEYS)}")
    for key in data:
        if key not in _KEYS:
            raise ctx.error((key,), f"unknown field {key!r} in a device profile",
                            did_you_mean(str(key), _KEYS) + f"fields: {', '.join(_KEYS)}")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ctx.error(("name",), "missing `name`", "add name: my-device")
    column = data.get("column", "user")
    if column not in COLUMNS:
        raise ctx.error(("column",), f"unknown latency column {column!r}", f"one of: {', '.join(COLUMNS)}")
    features = _str_list(ctx, data, "features") or FEATURES
    for i, f in enumerate(features):
        if f not in FEATURES:
            raise ctx.error(("features", i), f"unknown feature {f!r}",
                            did_you_mean(f, FEATURES) + f"features: {', '.join(FEATURES)}")
    groups = None if data.get("groups", "all") == "all" else _str_list(ctx, data, "groups")
    prior = data.get("prior")
    if prior is not None and (not isinstance(prior, str) or prior == name):
        raise ctx.error(("prior",), f"prior must name another device profile, got {prior!r}",
                        "write prior: iphone13, or leave it out")
    fit = data.get("fit")
    points = _points(ctx, data.get("points"), fit is not None)
    model = None
    if fit is not None:
        if (not isinstance(fit, dict) or any(k not in _FIT_KEYS for k in fit) or not isinstance(fit.get("coef"), dict)
                or not isinstance(fit.get("ranges") or {}, dict)):
            raise ctx.error(("fit",), f"fit must map {', '.join(_FIT_KEYS)}", "let the device fit write it")
        coef, ranges = fit["coef"], fit.get("ranges") or {}
        if set(coef) != set(features) or set(ranges) != set(features):
            extra = sorted(set(coef) ^ set(features))
            raise ctx.error(("fit", "coef"), f"coefficients and features differ ({', '.join(extra) or 'ranges'})",
                            "refit the profile after changing its features")
        for f in features:
            if not isinstance(ranges[f], list) or len(ranges[f]) != 2:
                raise ctx.error(("fit", "ranges", f), f"the range of {f} must be [low, high]", "refit the profile")
        bounds = {f: tuple(_number(ctx, ("fit", "ranges", f, i), ranges[f][i], f"{f}'s range", False) for i in (0, 1))
                  for f in features}
        used = sum(1 for f in features if bounds[f][1] > 0)
        if prior is None and len(points) < used:
            raise ctx.error(("points",), f"{len(points)} points for {used} features",
                            "give at least as many points as features, fewer features, or a prior device")
        scores, leverage = _interval(ctx, fit, features)
        model = CostModel(tuple(features), tuple(_number(ctx, ("fit", "coef", f), coef[f], f, False) for f in features),
                          _number(ctx, ("fit", "lambda"), fit.get("lambda", 0.0), "lambda", False),
                          tuple((bounds[f][0], bounds[f][1]) for f in features),
                          tuple((p.loo_ms or p.ms) / p.ms - 1.0 for p in points), scores, leverage)
    return DeviceProfile(name, str(data.get("description", "")), str(data.get("source", "")), column, tuple(features),
                         groups, _str_list(ctx, data, "exclude"), prior, model, points, ctx.file)
