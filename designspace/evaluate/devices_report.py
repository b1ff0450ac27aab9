"""What ``designspace devices`` and ``designspace calibrate`` report (the CLI only prints it)."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import Any

from designspace._yaml import Ctx, load_yaml
from designspace.evaluate.cache import Cache, results_dir
from designspace.evaluate.devices import (
    DeviceProfile,
    list_devices,
    load_device,
    loo_predictions,
    parse_device,
    save_device,
)
from designspace.evaluate.evaluation import _KIND, _calibration_context, calibrate
from designspace.exceptions import DocumentError

__all__ = ["calibrate_command", "device_rows"]


def _cached_local(profile: DeviceProfile, cache: Cache) -> dict[str, float] | None:
    """This machine's local latencies of the profile's models, if all are in the cache."""
    from designspace import zoo

    key = _calibration_context(profile).key()
    out = {}
    for model, _ in profile.points:
        hit = cache.get(zoo.load(model), _KIND, key)
        if hit is None:
            return None
        out[model] = float(hit["ms"])
    return out


def device_rows(measure: bool = False, cache: Cache | None = None) -> list[dict[str, Any]]:
    """One row per profile: its fit and leave-one-out error on this machine's calibration if known (or measured
    with ``measure``), else on the calibration shipped with the profile."""
    cache = cache or Cache()
    rows = []
    for prof in list_devices():
        local, label = _cached_local(prof, cache), "this machine"
        if local is None and measure:
            local = dict(calibrate(prof, cache=cache).local_ms)
        if local is None and prof.calibration is not None:
            local = dict(prof.calibration.local_ms)
            label = f"shipped: {prof.calibration.machine}, {prof.calibration.measured}"
        row: dict[str, Any] = {"name": prof.name, "points": len(prof.points), "description": prof.description,
                               "source": prof.source, "file": prof.file, "calibration": label if local else
                               "none (designspace calibrate --device " + prof.name + ")"}
        if local is not None:
            f = prof.fit_with(local)
            row.update(fit=f.form, loo=f"{f.loo_mean:.1%} / {f.loo_max:.1%}", loo_mean=f.loo_mean, loo_max=f.loo_max,
                       coef=list(f.coef))
        rows.append(row)
    return rows


def _read_points(points: list[str], points_file: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if points_file:
        path = Path(points_file)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise DocumentError(f"cannot read the file: {err.strerror}", file=points_file,
                                fix="check the path") from None
        if path.suffix in (".yaml", ".yml"):
            data, _ = load_yaml(text, points_file)
            if not isinstance(data, dict):
                raise DocumentError("points must be a mapping of zoo model to milliseconds", file=points_file,
                                    fix="write mobilenetv2_100: 12.3 lines")
            out.update(data)
        else:
            for i, row in enumerate(csv.reader(text.splitlines())):
                if not row or row[0].strip().lower() in ("model", ""):
                    continue
                try:
                    out[row[0].strip()] = float(row[1])
                except (IndexError, ValueError):
                    raise DocumentError(f"expected `model,latency_ms`, got {','.join(row)!r}", file=points_file,
                                        line=i + 1, fix="write e.g. mobilenetv2_100,12.3") from None
    for item in points:
        model, _, ms = item.partition("=")
        try:
            out[model.strip()] = float(ms)
        except ValueError:
            raise DocumentError(f"--point {item!r} is not MODEL=MS", file="<command line>",
                                fix="write e.g. --point mobilenetv2_100=12.3") from None
    return out


def calibrate_command(name: str, *, points: list[str], points_file: str | None, description: str = "",
                      source: str = "", form: str = "auto", runtime: str = "onnxruntime", threads: int = 1,
                      out: str | None = None, force: bool = False) -> dict[str, Any]:
    """Calibrates an existing profile on this machine, or makes a new one from measurements on a device.

    Without points, ``name`` is an existing profile: its models are measured here (cached) and the fit is
    reported; with ``out`` the profile is written there with this calibration. With points, a new profile is
    made, measured and written (default ``results/devices/<name>.yaml``); an existing file is never replaced
    without ``force``.
    """
    given = _read_points(points, points_file)
    path: Path | None
    if given:
        doc = {"name": name, "description": description, "source": source or "user measurements",
               "local": {"runtime": runtime, "threads": threads, "batch": 1}, "fit": form, "points": given}
        profile = parse_device(doc, Ctx("<command line>"))
        path = Path(out) if out else results_dir() / "devices" / f"{name}.yaml"
    else:
        try:
            profile = load_device(name)
        except DocumentError as err:
            raise DocumentError(err.problem, file=err.file,
                                fix=f"{err.fix}; to make a new profile give --point MODEL=MS (at least 3)") from None
        path = Path(out) if out else None
    if path is not None and path.exists() and not force:  # refuse before measuring anything
        raise DocumentError("a profile already exists here", file=str(path),
                            fix="choose another name or --out, or pass --force to replace it")
    cal = calibrate(profile, cache=Cache())
    local = dict(cal.local_ms)
    models = [m for m, _ in profile.points]
    targets = [t for _, t in profile.points]
    fitted = profile.fit_with(local)
    preds = loo_predictions([local[m] for m in models], targets, fitted.form)
    written = None
    if path is not None:
        written = str(save_device(dataclasses.replace(profile, calibration=cal), path, overwrite=force))
    return {"name": profile.name, "machine": cal.machine, "runtime_version": cal.runtime_version, "fit": fitted.form,
            "coef": list(fitted.coef), "loo_mean": fitted.loo_mean, "loo_max": fitted.loo_max, "file": written,
            "points": [{"model": m, "local_ms": round(local[m], 3), "target_ms": t, "loo_pred_ms": round(p, 3),
                        "loo_error": f"{abs(p - t) / t:.1%}"} for m, t, p in zip(models, targets, preds, strict=True)]}
