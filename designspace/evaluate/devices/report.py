"""What ``designspace devices``, ``designspace calibrate`` and the device fit report (the CLI only prints it)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from designspace._yaml import load_yaml, read_document
from designspace.evaluate.cache import results_dir
from designspace.evaluate.devices.document import DeviceProfile
from designspace.evaluate.devices.profiles import calibrate, fit_devices, list_devices, load_device, save_device
from designspace.exceptions import DocumentError

__all__ = ["calibrate_command", "device_rows", "fit_command", "profile_rows", "published_latency"]


def _row(prof: DeviceProfile) -> dict[str, Any]:
    row: dict[str, Any] = {"name": prof.name, "points": len(prof.points), "description": prof.description,
                           "source": prof.source, "file": prof.file, "prior": prof.prior or ""}
    if prof.model is not None:
        s = prof.summary
        errors = prof.model.loo_errors
        row.update(fit="cost", loo=f"{s.loo_mean:.1%} / {s.loo_max:.1%}", loo_mean=s.loo_mean, loo_max=s.loo_max,
                   within_10=sum(e <= 0.1 for e in errors) / len(errors), coef=dict(zip(prof.features, s.coef,
                                                                                       strict=True)))
    return row


def device_rows() -> list[dict[str, Any]]:
    """One row per profile: points, fit, leave-one-out error (mean / max, share within 10%), coefficients."""
    return [_row(prof) for prof in list_devices()]


def profile_rows(name: str) -> list[dict[str, Any]]:
    """One row per fitted point of a profile: its reference, latency, leave-one-out prediction and error."""
    prof = load_device(name)
    return [{"point": p.ref, "ms": p.ms, "loo_pred_ms": p.loo_ms,
             "loo_error": f"{abs(p.loo_ms - p.ms) / p.ms:.1%}" if p.loo_ms is not None else ""} for p in prof.points]


def _read_points(points: list[str], points_file: str | None) -> tuple[list[tuple[str, float]], str]:
    """(ARCH, MS) pairs from ``--point ARCH=MS`` and a CSV (``arch,ms``) or YAML mapping file."""
    out: list[tuple[str, float]] = []
    where = f"{points_file} and the command line" if points and points_file else points_file or "<command line>"
    if points_file:
        path = Path(points_file)
        text = read_document(path, "points file")
        if path.suffix in (".yaml", ".yml"):
            data, _ = load_yaml(text, points_file)
            if not isinstance(data, dict):
                raise DocumentError("points must be a mapping of Arch (file or zoo name) to milliseconds",
                                    file=points_file, fix="write lines such as iformer_t: 0.62")
            for k, v in data.items():
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise DocumentError(f"{k}: {v!r} is not a number of milliseconds", file=points_file,
                                        fix="write e.g. iformer_t: 0.62")
                out.append((str(k), float(v)))
        else:
            for i, row in enumerate(csv.reader(text.splitlines())):
                if not row or row[0].strip().lower() in ("arch", "model", ""):
                    continue
                try:
                    out.append((row[0].strip(), float(row[1])))
                except (IndexError, ValueError):
                    raise DocumentError(f"expected `arch,ms`, got {','.join(row)!r}", file=points_file, line=i + 1,
                                        fix="write e.g. iformer_t,0.62") from None
    for item in points:
        ref, _, ms = item.partition("=")
        try:
            out.append((ref.strip(), float(ms)))
        except ValueError:
            raise DocumentError(f"--point {item!r} is not ARCH=MS", file="<command line>",
                                fix="write e.g. --point iformer_t=0.62 or --point my_arch.yaml=1.3") from None
    return out, where


def calibrate_command(name: str, *, points: list[str], points_file: str | None = None, description: str = "",
                      source: str = "", prior: str | None = "iphone13", out: str | None = None, force: bool = False
                      ) -> dict[str, Any]:
    """Fits a new profile to your own measurements (``ARCH=MS``), with ``prior`` as the prior device, and writes it
    to ``out`` (default ``results/devices/<name>.yaml``) only after the fit succeeds, never over an existing file
    without ``force``.

    Returns:
        ``name``, ``prior``, ``file``, ``fit``, ``loo_mean``, ``loo_max``, ``coef`` and ``points`` (``model``,
        ``target_ms``, ``loo_pred_ms``, ``loo_error``).

    Raises:
        DocumentError: bad points (an unknown Arch, ms <= 0, too few), an unknown prior, a file in the way.
    """
    given, where = _read_points(points, points_file)
    if not given:
        raise DocumentError("no points given", file=where,
                            fix="give --point ARCH=MS (about 10: an Arch file or zoo name, its ms) or --points FILE")
    path = Path(out) if out else results_dir() / "devices" / f"{name}.yaml"
    if path.exists() and not force:  # refuse before fitting anything
        raise DocumentError("a profile already exists here", file=str(path),
                            fix="choose another name or --out, or pass --force to replace it")
    profile = calibrate(name, given, prior=prior, description=description, source=source, where=where)
    written = str(save_device(profile, path, overwrite=force))
    s = profile.summary
    return {"name": name, "prior": prior, "file": written, "fit": "cost", "loo_mean": s.loo_mean, "loo_max": s.loo_max,
            "coef": dict(zip(profile.features, s.coef, strict=True)),
            "points": [{"model": p.ref, "target_ms": p.ms, "loo_pred_ms": p.loo_ms,
                        "loo_error": f"{abs((p.loo_ms or p.ms) - p.ms) / p.ms:.1%}"} for p in profile.points]}


def fit_command(names: list[str] | None = None, *, exclude: list[str] | None = None, out: str | None = None,
                dry_run: bool = False) -> list[dict[str, Any]]:
    """Refits the shipped device ``names`` (default all) from the data files (``designspace fit-devices``), into
    ``out`` instead of the shipped ``devices/`` if given; ``exclude`` holds point groups out (``iformer_table7`` ...)
    and then needs ``out`` or ``dry_run`` (fit and report, write nothing), so the shipped profiles keep every group.
    """
    if exclude and not out and not dry_run:
        raise DocumentError("--exclude writes profiles fitted without some points", file="<command line>",
                            fix="give --out DIR (the shipped profiles keep every group) or --dry-run")
    profiles = fit_devices(names, exclude=tuple(exclude or ()), out=Path(out) if out else None, write=not dry_run)
    return [_row(p) | {"exclude": list(p.exclude)} for p in profiles]


def published_latency(arch: Any, device: str) -> dict[str, Any] | None:
    """The latency a paper published for ``arch`` on ``device`` and whether the device's profile was fitted on it:
    ``{"point", "ms", "source", "in_fit", "loo_ms"}`` (milliseconds; ``loo_ms``: the profile's prediction of it from
    a fit without it, when it was in the fit), or None where ``arch`` is no published point with a figure there."""
    from designspace.evaluate.points import load_points

    for p in load_points():
        if device in p.latency_ms and p.arch.fingerprint == arch.fingerprint:
            prof = load_device(device)
            fitted = next((q for q in prof.points if q.kind == "id" and q.ref == p.id), None)
            return {"point": p.id, "ms": p.latency_ms[device], "source": p.source, "in_fit": fitted is not None,
                    "loo_ms": fitted.loo_ms if fitted is not None else None}
    return None
