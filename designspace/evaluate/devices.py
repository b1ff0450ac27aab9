"""Device profiles: carry a latency measured here to a target device we do not have.

A profile (``devices/<name>.yaml``, shipped; ``results/devices/<name>.yaml`` or ``$DESIGNSPACE_DEVICES``
for a user's own) lists published latencies of zoo models on the target and the local context that is
mapped onto them. The local latencies of those models are measured on *this* machine (once, then cached);
the fit between the two is one of

* ``proportional``: target = k * local (fitted in log space, i.e. on relative errors),
* ``power``: log target = a + b * log local,
* ``affine``: target = a + b * local (least squares on relative errors),

chosen (``fit: auto``) by the lowest leave-one-out error, which the profile reports with every figure it
produces: a prediction is labelled as such, with that error. Profiles also carry the calibration measured
when they were made (its machine named), shown by ``designspace devices`` until this machine has its own.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from designspace._yaml import Ctx, dump_yaml, load_yaml
from designspace.blocks.registry import closest
from designspace.evaluate.cache import results_dir
from designspace.exceptions import DocumentError

__all__ = ["FORMS", "Calibration", "DeviceProfile", "Fit", "Prediction", "fit", "list_devices", "load_device",
           "loo_predictions", "parse_device", "save_device"]

FORMS = ("proportional", "power", "affine")
MIN_POINTS = 3
_KEYS = ("name", "description", "source", "local", "fit", "points", "calibration")
_LOCAL_KEYS = ("runtime", "threads", "batch")
_CAL_KEYS = ("machine", "runtime_version", "measured", "local_ms")


@dataclass(frozen=True)
class Fit:
    """A fitted map from local to target latency, with its leave-one-out error.

    Attributes:
        form: one of :data:`FORMS`.
        coef: its coefficients (k; a, b; a, b).
        loo_mean: mean relative leave-one-out error (0.08 = 8%).
        loo_max: largest relative leave-one-out error.
        points: number of calibration points.
    """

    form: str
    coef: tuple[float, ...]
    loo_mean: float
    loo_max: float
    points: int

    def predict(self, local_ms: float) -> float:
        """Target milliseconds for a local measurement in milliseconds."""
        return _predict(self.form, self.coef, local_ms)


def _predict(form: str, coef: tuple[float, ...], x: float) -> float:
    if form == "proportional":
        return coef[0] * x
    if form == "power":
        return math.exp(coef[0]) * x ** coef[1]
    return coef[0] + coef[1] * x


def _fit_form(form: str, xs: list[float], ys: list[float]) -> tuple[float, ...]:
    n = len(xs)
    if form == "proportional":
        return (math.exp(sum(math.log(y / x) for x, y in zip(xs, ys, strict=True)) / n),)
    if form == "power":
        lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
        mx, my = sum(lx) / n, sum(ly) / n
        sxx = sum((v - mx) ** 2 for v in lx)
        b = sum((u - mx) * (v - my) for u, v in zip(lx, ly, strict=True)) / sxx if sxx > 0 else 1.0
        return (my - b * mx, b)
    # affine, least squares on relative errors: weights 1 / y^2
    w = [1.0 / (y * y) for y in ys]
    sw = sum(w)
    swx = sum(wi * x for wi, x in zip(w, xs, strict=True))
    swy = sum(wi * y for wi, y in zip(w, ys, strict=True))
    swxx = sum(wi * x * x for wi, x in zip(w, xs, strict=True))
    swxy = sum(wi * x * y for wi, x, y in zip(w, xs, ys, strict=True))
    det = sw * swxx - swx * swx
    if abs(det) < 1e-18:
        return (0.0, swy / swx if swx else 1.0)
    return ((swy * swxx - swx * swxy) / det, (sw * swxy - swx * swy) / det)


def loo_predictions(local_ms: list[float], target_ms: list[float], form: str) -> list[float]:
    """For each point, the prediction of the ``form`` fitted on all the other points."""
    out = []
    for i in range(len(local_ms)):
        xs, ys = local_ms[:i] + local_ms[i + 1:], target_ms[:i] + target_ms[i + 1:]
        out.append(_predict(form, _fit_form(form, xs, ys), local_ms[i]))
    return out


def fit(local_ms: list[float], target_ms: list[float], form: str = "auto") -> Fit:
    """Fits target = f(local) and computes its leave-one-out error.

    Args:
        local_ms: local latencies of the calibration models.
        target_ms: their published latencies on the target.
        form: ``"auto"`` (the form with the lowest mean leave-one-out error) or one of :data:`FORMS`.

    Raises:
        ValueError: fewer than :data:`MIN_POINTS` points, or a latency that is not positive.
    """
    n = len(local_ms)
    if n < MIN_POINTS or n != len(target_ms):
        raise ValueError(f"a fit needs at least {MIN_POINTS} points with local and target latencies, got {n}")
    if min(local_ms + target_ms) <= 0:
        raise ValueError("latencies must be positive")
    best: Fit | None = None
    for f in (FORMS if form == "auto" else (form,)):
        preds = loo_predictions(local_ms, target_ms, f)
        errors = [abs(p - t) / t if p > 0 else math.inf for p, t in zip(preds, target_ms, strict=True)]
        cand = Fit(f, _fit_form(f, local_ms, target_ms), sum(errors) / n, max(errors), n)
        if best is None or cand.loo_mean < best.loo_mean - 1e-12:
            best = cand
    assert best is not None
    return best


@dataclass(frozen=True)
class Calibration:
    """Local latencies of a profile's models, as measured on one machine."""

    machine: str
    runtime_version: str
    measured: str
    local_ms: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class DeviceProfile:
    """A target device and how local measurements map onto it.

    Attributes:
        name: the device name (``--device NAME``).
        description: what the target is (hardware, runtime, batch).
        source: where its published latencies come from.
        runtime: the local runtime measured and mapped (``onnxruntime``, ``torch``, ``cuda``).
        threads: local threads.
        batch: local batch (the published figures' batch).
        form: ``auto`` or one of :data:`FORMS`.
        points: (zoo model, published target milliseconds).
        calibration: the local measurements the profile was made with, if recorded.
        file: where it was loaded from.
    """

    name: str
    description: str
    source: str
    runtime: str
    threads: int
    batch: int
    form: str
    points: tuple[tuple[str, float], ...]
    calibration: Calibration | None
    file: str

    def fit_with(self, local_ms: dict[str, float]) -> Fit:
        """The fit for these local latencies (one per point model)."""
        models = [m for m, _ in self.points]
        return fit([local_ms[m] for m in models], [t for _, t in self.points], self.form)


@dataclass(frozen=True)
class Prediction:
    """A latency carried to a target device: always a prediction, with the profile's error.

    Attributes:
        device: the profile name.
        ms: predicted target milliseconds.
        local_ms: the local measurement it came from.
        fit: the fit used (its leave-one-out error is the figure's error).
        calibration_machine: the machine the calibration was measured on.
    """

    device: str
    ms: float
    local_ms: float
    fit: Fit
    calibration_machine: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``label: predicted``)."""
        return {"device": self.device, "ms": self.ms, "label": "predicted", "local_ms": self.local_ms,
                "fit": self.fit.form, "coef": list(self.fit.coef), "loo_mean_error": self.fit.loo_mean,
                "loo_max_error": self.fit.loo_max, "points": self.fit.points,
                "calibration_machine": self.calibration_machine}


# ------------------------------------------------------------------------------------------------ files
def _search_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("DESIGNSPACE_DEVICES", "").split(os.pathsep) if p]
    return [*dirs, results_dir() / "devices"]


def _shipped() -> dict[str, Any]:
    root = resources.files("designspace.devices")
    return {e.name[: -len(".yaml")]: e for e in root.iterdir() if e.name.endswith(".yaml")}


def _all_files() -> dict[str, Any]:
    found: dict[str, Any] = dict(_shipped())
    for d in reversed(_search_dirs()):  # a user's profile of the same name wins
        if d.is_dir():
            found.update({p.stem: p for p in sorted(d.glob("*.yaml"))})
    return found


def parse_device(data: Any, ctx: Ctx) -> DeviceProfile:
    """Validates a profile document. Raises :class:`DocumentError` with file, line, path and fix."""
    from designspace import zoo

    if not isinstance(data, dict):
        raise ctx.error((), "a device profile must be a mapping", f"write its fields: {', '.join(_KEYS)}")
    for key in data:
        if key not in _KEYS:
            near = closest(str(key), _KEYS)
            raise ctx.error((key,), f"unknown field {key!r} in a device profile",
                            (f"did you mean {near!r}? " if near else "") + f"fields: {', '.join(_KEYS)}")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ctx.error(("name",), "missing `name`", "add name: my-device")
    local = data.get("local") or {}
    if not isinstance(local, dict) or any(k not in _LOCAL_KEYS for k in local):
        raise ctx.error(("local",), "local must map runtime, threads and batch", "write local: {runtime: onnxruntime, "
                                                                                "threads: 1, batch: 1}")
    runtime = local.get("runtime", "onnxruntime")
    if runtime not in ("onnxruntime", "torch", "cuda"):
        raise ctx.error(("local", "runtime"), f"unknown runtime {runtime!r}", "use onnxruntime, torch or cuda")
    threads, batch = local.get("threads", 1), local.get("batch", 1)
    for key, value in (("threads", threads), ("batch", batch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ctx.error(("local", key), f"{key} must be a positive integer, got {value!r}", f"write {key}: 1")
    form = data.get("fit", "auto")
    if form not in ("auto", *FORMS):
        raise ctx.error(("fit",), f"unknown fit {form!r}", f"use auto or one of {', '.join(FORMS)}")
    points = data.get("points")
    if not isinstance(points, dict):
        raise ctx.error(("points",), "missing `points`: published latencies of zoo models on the device",
                        "write points: {mobilenetv2_100: 0.73, iformer_t: 0.60, ...} (milliseconds)")
    if len(points) < MIN_POINTS:
        raise ctx.error(("points",), f"{len(points)} point(s): a profile needs at least {MIN_POINTS} (two to fit, "
                                     "one more to measure the fit's leave-one-out error)",
                        "add published latencies of more zoo models")
    known = zoo.names()
    for model, ms in points.items():
        if model not in known:
            near = closest(str(model), known)
            raise ctx.error(("points", model), f"{model!r} is not a zoo model",
                            (f"did you mean {near!r}? " if near else "") + "designspace zoo lists them")
        if isinstance(ms, bool) or not isinstance(ms, (int, float)) or ms <= 0:
            raise ctx.error(("points", model), f"latency must be a positive number of milliseconds, got {ms!r}",
                            "write e.g. 0.73")
    cal = data.get("calibration")
    calibration = None
    if cal is not None:
        if not isinstance(cal, dict) or any(k not in _CAL_KEYS for k in cal) or not isinstance(cal.get("local_ms"),
                                                                                                dict):
            raise ctx.error(("calibration",), "calibration must give machine, runtime_version, measured, local_ms",
                            "let designspace calibrate write it")
        calibration = Calibration(str(cal.get("machine", "")), str(cal.get("runtime_version", "")),
                                  str(cal.get("measured", "")),
                                  tuple((str(k), float(v)) for k, v in cal["local_ms"].items()))
    return DeviceProfile(name, str(data.get("description", "")), str(data.get("source", "")), runtime, threads,
                         batch, form, tuple((str(k), float(v)) for k, v in points.items()), calibration, ctx.file)


def load_device(name: str) -> DeviceProfile:
    """The profile called ``name`` (or read from a ``.yaml`` path).

    Raises:
        DocumentError: no such profile (the message lists them), or a malformed profile.
    """
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        source: Any = path
        label = str(path)
    else:
        files = _all_files()
        if name not in files:
            near = closest(name, list(files))
            raise DocumentError(f"unknown device {name!r}", file=name,
                                fix=(f"did you mean {near!r}? " if near else "")
                                + f"devices: local, {', '.join(sorted(files))} (designspace devices lists them)")
        source = files[name]
        label = str(source) if isinstance(source, Path) else f"devices/{name}.yaml"
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as err:
        raise DocumentError(f"cannot read the file: {err.strerror}", file=label, fix="check the path") from None
    data, lines = load_yaml(text, label)
    return parse_device(data, Ctx(label, lines))


def list_devices() -> list[DeviceProfile]:
    """Every profile (shipped and the user's), by name."""
    return [load_device(n) for n in sorted(_all_files())]


def save_device(profile: DeviceProfile, path: Path, *, overwrite: bool = False) -> Path:
    """Writes a profile as YAML.

    Raises:
        DocumentError: the file exists and ``overwrite`` is false (nothing saved is ever lost).
    """
    if path.exists() and not overwrite:
        raise DocumentError("a profile already exists here", file=str(path),
                            fix="choose another --name or --out, or pass --force to replace it")
    doc: dict[str, Any] = {"name": profile.name, "description": profile.description, "source": profile.source,
                           "local": {"runtime": profile.runtime, "threads": profile.threads, "batch": profile.batch},
                           "fit": profile.form, "points": dict(profile.points)}
    if profile.calibration is not None:
        c = profile.calibration
        doc["calibration"] = {"machine": c.machine, "runtime_version": c.runtime_version, "measured": c.measured,
                              "local_ms": {k: round(v, 4) for k, v in c.local_ms}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_yaml(doc), encoding="utf-8")
    return path

