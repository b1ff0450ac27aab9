"""Predicted ImageNet-1K top-1 of an Arch, fitted on the published (Arch, top-1) points.

The points (:mod:`designspace.evaluate.points`: the zoo and the seed papers' ablation rows, every one trained
from scratch under its paper's recipe, without distillation) give about fifty networks with a published top-1.
Each Arch becomes a few features computed from the Arch alone (:data:`BASE_FEATURES`: size, MACs, depth and width
profile, block-type mix, attention share, resolution). The model is a bootstrap ensemble of ridge regressions
on the standardized features: the ridge strength is chosen by exact leave-one-out error, each member is fitted
on a resample of the networks, and a prediction's standard deviation combines the members' spread with the
leave-one-out residual scatter, so it never claims more precision than the fit showed on unseen points.

The fitted model ships as ``designspace/data/top1_model.json``, written by :func:`write_model` (deterministic:
seeded resampling over the sorted points) and read once; :func:`predict_top1` costs well under a millisecond
beyond the counting. A prediction is flagged ``extrapolated`` when a feature lies outside the range of the
data, a block type is one the data never saw, or the features' combination is farther from the data (ridge
leverage) than any data point.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from designspace._yaml import MAX_JSON_BYTES, read_document
from designspace.arch import Arch
from designspace.evaluate import fitting
from designspace.exceptions import DocumentError

__all__ = ["BASE_FEATURES", "MODEL_FILE", "Top1", "Top1Model", "data_block_types", "feature_groups", "feature_names",
           "features", "fit_arrays", "fit_points", "load_model", "predict_top1", "training_set", "write_model"]

#: The features every model has, in order (see :func:`features`); then one ``mix_<type>`` per block type that
#: occurs in the data (a block-type mix; a type the data never saw flags extrapolation).
BASE_FEATURES = ("log10_params", "log10_macs", "log10_blocks", "log10_width_first", "log10_width_last",
                 "late_block_share", "attention_block_share", "attention_macs_share", "norm_macs_share",
                 "log10_resolution")

#: Feature groups; the fit keeps ``size`` and ``resolution`` and chooses the others (every subset tried) by
#: exact leave-one-out error, so that a group that does not generalize across networks is left out.
_BASE_GROUPS: dict[str, tuple[str, ...]] = {
    "size": ("log10_params", "log10_macs"),
    "profile": ("log10_blocks", "log10_width_first", "log10_width_last", "late_block_share"),
    "attention": ("attention_block_share", "attention_macs_share"),
    "categories": ("norm_macs_share",),
    "resolution": ("log10_resolution",),
}
_ALWAYS = ("size", "resolution")
#: Published points left out of the fit: a recipe beyond the paper's standard one.
_NOT_STANDARD = re.compile(r"distill|advanced strateg", re.IGNORECASE)


def feature_names(mix_types: Sequence[str]) -> tuple[str, ...]:
    """:data:`BASE_FEATURES` and ``mix_<type>`` for each block type."""
    return BASE_FEATURES + tuple(f"mix_{t}" for t in mix_types)


def feature_groups(names: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """The groups the fit chooses among, for these feature names (``mix``: every ``mix_<type>``)."""
    return {**_BASE_GROUPS, "mix": tuple(n for n in names if n.startswith("mix_"))}

#: The shipped model, relative to the package.
MODEL_FILE = "data/top1_model.json"

_ALPHAS = tuple(float(a) for a in np.logspace(-2, 3, 26))  # ridge strengths tried (standardized features)
_BOOTSTRAP = 200
_Z95 = 1.959964


@dataclass(frozen=True)
class Top1:
    """A predicted ImageNet-1K top-1, in percent.

    Attributes:
        mean: the ensemble's mean prediction (%).
        std: its standard deviation (%): the members' spread and the leave-one-out residual scatter combined.
        lo, hi: the 95% interval ``mean -+ 1.96 std``, clipped to [0, 100] (%).
        extrapolated: whether the Arch lies outside the data the model was fitted on.
        reason: why it is extrapolated (empty otherwise).
    """

    mean: float
    std: float
    lo: float
    hi: float
    extrapolated: bool
    reason: str = ""

    def __str__(self) -> str:
        return f"{self.mean:.1f} +- {self.std:.1f} %" + (" (extrapolated)" if self.extrapolated else "")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``top1_mean``, ``top1_std``, ``top1_lo``, ``top1_hi`` (%), ``extrapolated``, ``reason``."""
        return {"top1_mean": round(self.mean, 3), "top1_std": round(self.std, 3), "top1_lo": round(self.lo, 3),
                "top1_hi": round(self.hi, 3), "extrapolated": self.extrapolated, "reason": self.reason}


def features(arch: Arch, mix_types: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """The feature vector of ``arch`` (order ``feature_names(mix_types)``) and its block types not in ``mix_types``.

    log10 of parameters, MACs (the fvcore convention of :func:`designspace.count`), number of blocks, first and
    last stage width, and input resolution (pixels); ``late_block_share``: blocks in the second half of the
    stages / blocks; ``attention_block_share``: self-attention blocks / blocks; ``attention_macs_share`` and
    ``norm_macs_share``: attention matrix-product and normalization MACs / all MACs; ``mix_<type>``: blocks of
    that type / blocks.
    """
    from designspace.evaluate.counts.analytic import count
    from designspace.plan import plan

    counts = count(arch)
    cat = counts.by_category()
    blocks = [p for p in plan(arch) if p.role == "block"]
    n = max(len(blocks), 1)
    half = len(arch.stages) // 2
    late = sum(1 for p in blocks if int(p.where[1]) >= half)
    attn = sum(1 for p in blocks if p.component.is_attention(p.layer.kwargs()))
    types = [p.layer.type for p in blocks]
    mix = [types.count(t) / n for t in mix_types]
    unknown = sorted({t for t in types if t not in mix_types})
    macs = max(counts.macs, 1)
    vec = [np.log10(max(counts.params, 1)), np.log10(macs), np.log10(n), np.log10(arch.stages[0].width),
           np.log10(arch.stages[-1].width), late / n, attn / n, cat.get("matmul", 0) / macs, cat.get("norm", 0) / macs,
           np.log10(arch.resolution), *mix]
    return np.asarray(vec, dtype=float), unknown


# ---------------------------------------------------------------------------------------------- fitting
def _ridge(z: np.ndarray, y: np.ndarray, alpha: float) -> tuple[float, np.ndarray]:
    """Ridge on standardized ``z`` with an unpenalized intercept: (intercept, coefficients)."""
    zm, ym = z.mean(axis=0), y.mean()
    coef = fitting.solve(z - zm, y - ym, ridge=alpha)
    return float(ym - zm @ coef), coef


@dataclass(frozen=True)
class Top1Model:
    """A fitted predictor (see the module docstring); plain numbers, so it round-trips through JSON.

    Attributes:
        features: feature names, in order.
        mean, scale: per-feature standardization (``scale`` 1 and the feature unused where the data's is constant).
        used: whether each feature varies in the data (constant ones get no weight).
        alpha: the ridge strength chosen by leave-one-out error.
        intercepts, coefs: the bootstrap members (``B`` intercepts, ``B x F`` coefficients on standardized features).
        sigma: root-mean-square leave-one-out residual at ``alpha`` (top-1 points).
        low, high: the data's range of each feature.
        gram_inv: ``(Zc^T Zc + alpha I)^-1`` of the centered standardized data, for leverage.
        center: the data's mean standardized feature vector.
        max_leverage: the largest leverage of a data point.
        groups: the feature groups the fit chose (empty when fitted without groups).
        data: ``[id, fingerprint, top1]`` of each network fitted on.
    """

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    used: tuple[bool, ...]
    alpha: float
    intercepts: tuple[float, ...]
    coefs: tuple[tuple[float, ...], ...]
    sigma: float
    low: tuple[float, ...]
    high: tuple[float, ...]
    gram_inv: tuple[tuple[float, ...], ...]
    center: tuple[float, ...]
    max_leverage: float
    groups: tuple[str, ...] = ()
    data: tuple[tuple[str, str, float], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (:func:`load_model` reads it back)."""
        return {"format": 1, "features": list(self.features), "mean": list(self.mean), "scale": list(self.scale),
                "used": list(self.used), "alpha": self.alpha, "intercepts": list(self.intercepts),
                "coefs": [list(c) for c in self.coefs], "sigma": self.sigma, "low": list(self.low),
                "high": list(self.high), "gram_inv": [list(r) for r in self.gram_inv], "center": list(self.center),
                "max_leverage": self.max_leverage, "groups": list(self.groups), "data": [list(d) for d in self.data]}

    @functools.cached_property
    def _arrays(self) -> tuple[np.ndarray, ...]:
        return (np.asarray(self.mean), np.asarray(self.scale), np.asarray(self.used, dtype=float),
                np.asarray(self.intercepts), np.asarray(self.coefs), np.asarray(self.gram_inv), np.asarray(self.center),
                np.asarray(self.low), np.asarray(self.high))

    def predict_vector(self, x: np.ndarray, unknown: Sequence[str] = ()) -> Top1:
        """The prediction for one feature vector (order :attr:`features`); ``unknown``: unseen block types."""
        mean, scale, used, b0, coefs, ginv, center, low, high = self._arrays
        z = (x - mean) / scale * used
        preds = b0 + coefs @ z
        mu = float(preds.mean())
        std = float(np.sqrt(preds.var() + self.sigma ** 2))
        reasons = [f"block type {t!r} is not in the data" for t in unknown]
        span = np.maximum(high - low, 1e-12)
        # features the fit uses, and those constant in the data (an unseen resolution); not unused varying ones
        watch = (used > 0) | (high - low <= 1e-12)
        for i in np.flatnonzero(watch & ((x < low - 1e-9 * span) | (x > high + 1e-9 * span))):
            reasons.append(f"{self.features[i]} {x[i]:.4g} outside the data's {low[i]:.4g}..{high[i]:.4g}")
        d = z - center
        leverage = float(d @ ginv @ d)
        if not reasons and leverage > self.max_leverage * (1 + 1e-9):
            reasons.append(f"feature combination farther from the data than any data point (leverage {leverage:.3g}"
                           f" > {self.max_leverage:.3g})")
        # a linear model far outside its data can leave [0, 100]: a top-1 is a percentage (the flag says why)
        mu = min(100.0, max(0.0, mu))
        return Top1(mu, std, max(0.0, mu - _Z95 * std), min(100.0, mu + _Z95 * std), bool(reasons), "; ".join(reasons))

    @functools.cached_property
    def mix_types(self) -> tuple[str, ...]:
        """The block types of the mix features."""
        return tuple(n[len("mix_"):] for n in self.features if n.startswith("mix_"))

    def predict(self, arch: Arch) -> Top1:
        """The prediction for ``arch``."""
        x, unknown = features(arch, self.mix_types)
        return self.predict_vector(x, unknown)


def _candidates(groups: Mapping[str, Sequence[str]] | None) -> list[tuple[str, ...]]:
    if groups is None:
        return [()]
    optional = [g for g in groups if g not in _ALWAYS]
    always = tuple(g for g in groups if g in _ALWAYS)
    return [always + tuple(g for k, g in enumerate(optional) if mask >> k & 1) for mask in range(1 << len(optional))]


def fit_arrays(x: np.ndarray, y: np.ndarray, *, names: Sequence[str],
               groups: Mapping[str, Sequence[str]] | None = None, seed: int = 0, bootstrap: int = _BOOTSTRAP,
               data: Iterable[tuple[str, str, float]] = ()) -> Top1Model:
    """Fits the model on an ``n x F`` feature matrix and ``n`` top-1 values (%); deterministic for a given seed.

    ``groups`` (feature group -> names, e.g. :func:`feature_groups`): choose the groups used, with the ridge
    strength, by leave-one-out error (groups in ``_ALWAYS`` always kept); ``None``: use every feature.

    Raises:
        ValueError: fewer than 3 rows, or shapes that disagree.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.ndim != 2 or len(x) != len(y) or len(y) < 3 or x.shape[1] != len(names):
        raise ValueError(f"need an n x {len(names)} feature matrix and n >= 3 targets, got {x.shape} and {y.shape}")
    mean, sd = x.mean(axis=0), x.std(axis=0)
    varies = sd > 1e-12
    scale = np.where(varies, sd, 1.0)
    candidates = []
    for chosen in _candidates(groups):
        keep = set(names) if groups is None else {f for g in chosen for f in groups[g]}
        used = varies & np.asarray([n in keep for n in names])
        z = (x - mean) / scale * used
        for a in _ALPHAS:
            # simpler: fewer feature groups, then a stronger ridge
            candidates.append(fitting.Candidate(tuple(map(float, fitting.ridge_loo_residuals(z, y, a) ** 2)),
                                                (len(chosen), -a), (a, used, chosen)))
    best = fitting.choose_fit(candidates, standard_errors=0.0)  # the lowest (fitting.choose_fit: measured)
    sigma = float(np.sqrt(np.mean(best.errors)))
    alpha, used, chosen = best.fit
    z = (x - mean) / scale * used
    rng = np.random.default_rng(seed)
    b0s, coefs = [], []
    for _ in range(bootstrap):
        idx = rng.integers(0, len(y), len(y))
        b0, coef = _ridge(z[idx], y[idx], alpha)
        b0s.append(b0)
        coefs.append(coef * used)
    center = z.mean(axis=0)
    zc = z - center
    ginv = np.linalg.inv(zc.T @ zc + alpha * np.eye(z.shape[1]))
    max_lev = float(np.max(np.einsum("ij,jk,ik->i", zc, ginv, zc)))
    return Top1Model(tuple(names), tuple(map(float, mean)), tuple(map(float, scale)), tuple(map(bool, used)), alpha,
                     tuple(map(float, b0s)), tuple(tuple(map(float, c)) for c in coefs), sigma,
                     tuple(map(float, x.min(axis=0))), tuple(map(float, x.max(axis=0))),
                     tuple(tuple(map(float, r)) for r in ginv), tuple(map(float, center)), max_lev, tuple(chosen),
                     tuple(data))


def training_set(points: Iterable[Any] | None = None) -> list[tuple[str, Arch, float, tuple[str, ...]]]:
    """The networks to fit on: ``(id, arch, top1, groups)``, one per distinct Arch (fingerprint), sorted by id.

    A network that appears in several tables (SMT-T is a row of three) is one data point; its top-1 is the
    mean of the published figures (they agree in the seeds) and ``groups`` lists every table it is in. Points
    whose source or notes say distillation or "advanced strategies" are left out (not the standard recipe).
    """
    from designspace.evaluate.points import load_points

    pts = load_points() if points is None else list(points)
    by_fp: dict[str, list[Any]] = {}
    for p in pts:
        if p.top1 is not None and not _NOT_STANDARD.search(f"{p.source} {p.notes}"):
            by_fp.setdefault(p.arch.fingerprint, []).append(p)
    out = []
    for same in by_fp.values():
        first = min(same, key=lambda p: (p.group != "zoo", p.id))
        groups = tuple(sorted({p.group for p in same}))
        out.append((first.id, first.arch, float(np.mean([p.top1 for p in same])), groups))
    return sorted(out, key=lambda r: r[0])


def fit_points(points: Iterable[Any] | None = None, *, seed: int = 0) -> Top1Model:
    """Fits the model on the published points (all of them by default; see :func:`training_set`)."""
    rows = training_set(points)
    mix = data_block_types([a for _, a, _, _ in rows])
    x = np.stack([features(a, mix)[0] for _, a, _, _ in rows])
    y = np.asarray([t for _, _, t, _ in rows])
    names = feature_names(mix)
    return fit_arrays(x, y, names=names, groups=feature_groups(names), seed=seed,
                      data=[(i, a.fingerprint, t) for i, a, t, _ in rows])


def data_block_types(archs: Iterable[Arch]) -> tuple[str, ...]:
    """The block types that occur in ``archs``, sorted."""
    return tuple(sorted({layer.type for a in archs for s in a.stages for layer in s.blocks}))


def write_model(path: Path | str | None = None) -> Path:
    """Refits on the package's points and writes the model JSON (default: the shipped ``data/top1_model.json``)."""
    target = Path(path) if path is not None else Path(str(resources.files("designspace") / MODEL_FILE))
    body = fit_points().to_dict()
    body["data_sha256"] = hashlib.sha256(json.dumps(body["data"]).encode()).hexdigest()[:16]
    target.write_text(json.dumps(body, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return target


def _parse(text: str, file: str) -> Top1Model:
    fix = "regenerate it with designspace.evaluate.accuracy.top1.write_model()"
    try:
        body = json.loads(text)
    except json.JSONDecodeError as err:
        raise DocumentError(f"not valid JSON ({err.msg})", file=file, line=err.lineno, fix=fix) from None
    try:
        if body.get("format") != 1:
            raise DocumentError(f"unknown format {body.get('format')!r}", file=file, path="format", fix=fix)
        f = len(body["features"])
        model = Top1Model(tuple(body["features"]), tuple(body["mean"]), tuple(body["scale"]), tuple(body["used"]),
                          float(body["alpha"]), tuple(body["intercepts"]), tuple(tuple(c) for c in body["coefs"]),
                          float(body["sigma"]), tuple(body["low"]), tuple(body["high"]),
                          tuple(tuple(r) for r in body["gram_inv"]), tuple(body["center"]),
                          float(body["max_leverage"]), tuple(body.get("groups", ())),
                          tuple(tuple(d) for d in body.get("data", ())))
        shapes_ok = (all(len(v) == f for v in (model.mean, model.scale, model.used, model.low, model.high,
                                                model.center))
                     and len(model.coefs) == len(model.intercepts) > 0 and all(len(c) == f for c in model.coefs)
                     and len(model.gram_inv) == f)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise DocumentError(f"malformed top-1 model ({type(err).__name__}: {err})", file=file, fix=fix) from None
    if not shapes_ok:
        raise DocumentError("array lengths disagree with the feature list", file=file, path="features", fix=fix)
    base, mix = model.features[:len(BASE_FEATURES)], model.features[len(BASE_FEATURES):]
    if base != BASE_FEATURES or not all(n.startswith("mix_") for n in mix):
        raise DocumentError(f"features {list(model.features)} are not this version's", file=file, path="features",
                            fix=fix)
    return model


def load_model(path: Path | str | None = None) -> Top1Model:
    """Reads a model JSON (default: the shipped one, read once).

    Raises:
        DocumentError: the file is missing or malformed (one line naming the file and how to regenerate it).
    """
    if path is None:
        return _shipped()
    if not Path(path).is_file():
        raise DocumentError("cannot read the top-1 model: No such file", file=str(path),
                            fix="regenerate it with designspace.evaluate.accuracy.top1.write_model(path)")
    return _parse(read_document(path, "top-1 model", MAX_JSON_BYTES), str(path))


@functools.cache
def _shipped() -> Top1Model:
    file = f"designspace/{MODEL_FILE}"
    try:
        text = (resources.files("designspace") / MODEL_FILE).read_text(encoding="utf-8")
    except OSError:
        raise DocumentError("the top-1 model is missing", file=file,
                            fix="regenerate it with designspace.evaluate.accuracy.top1.write_model()") from None
    return _parse(text, file)


def predict_top1(arch: Arch, model: Top1Model | None = None) -> Top1:
    """Predicted ImageNet-1K top-1 (%) of ``arch`` with its interval; ``str()`` prints ``78.9 +- 0.9 %``.

    Raises:
        DocumentError: the shipped model file is missing or malformed.
    """
    return (model or _shipped()).predict(arch)
