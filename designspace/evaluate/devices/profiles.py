"""Device profiles: a target device we do not have, as a cost model fitted on published latencies, shipped in
``devices/<name>.yaml`` (a user's own: ``results/devices/<name>.yaml`` or ``$DESIGNSPACE_DEVICES``).
:func:`fit_devices` regenerates the shipped ones from the data files (:mod:`designspace.evaluate.points`);
:func:`calibrate` fits a user's measurements (``ARCH=MS``) with a shipped device as prior. The fields and the
evidence: docs/devices.md, 'Profiles'.
"""

from __future__ import annotations

import os
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

from designspace._yaml import Ctx, dump_yaml, load_yaml, read_document
from designspace.arch import Arch
from designspace.evaluate.cache import results_dir
from designspace.evaluate.devices.costmodel import FitError, fit_cost_model, with_scores
from designspace.evaluate.devices.document import DeviceProfile, Prediction, ProfilePoint, parse_device, profile_doc
from designspace.evaluate.devices.features import FEATURES, network_features
from designspace.exceptions import DocumentError, did_you_mean
from designspace.safe_files import atomic_write

__all__ = ["DeviceProfile", "Prediction", "ProfilePoint", "calibrate", "fit_devices", "fit_profile", "list_devices",
           "load_device", "parse_device", "save_device"]

# ------------------------------------------------------------------------------------------------ fitting
def _prior_coef(profile: DeviceProfile, prior_profile: DeviceProfile | None = None) -> list[float] | None:
    if profile.prior is None:
        return None
    prior = (prior_profile or load_device(profile.prior))._model()
    by = dict(zip(prior.features, prior.coef, strict=True))
    return [by.get(f, 0.0) for f in profile.features]


def _refit(profile: DeviceProfile, points: list[ProfilePoint], archs: list[Arch], where: str,
           prior_profile: DeviceProfile | None = None) -> DeviceProfile:
    design = [[network_features(a)[f] for f in profile.features] for a in archs]
    ms = [p.ms for p in points]
    try:
        model = fit_cost_model(design, ms, profile.features, prior=_prior_coef(profile, prior_profile))
    except FitError as err:
        raise DocumentError(str(err), file=where, path="points",
                            fix="add points, drop features from `features`, or name a `prior` device") from None
    fitted = tuple(replace(p, loo_ms=round(p.ms * (1.0 + r), 4)) for p, r in zip(points, model.residuals, strict=True))
    # the residuals as the file records them (4 decimals), so a loaded profile equals the fitted one
    model = with_scores(replace(model, residuals=tuple((p.loo_ms or p.ms) / p.ms - 1.0 for p in fitted)), design, ms)
    return replace(profile, model=model, points=fitted)


def fit_profile(profile: DeviceProfile, *, exclude: tuple[str, ...] | None = None,
                prior_profile: DeviceProfile | None = None) -> DeviceProfile:
    """Refits a profile from the published points (its column, groups, minus excluded groups), with
    ``prior_profile`` as its fitted prior (default: the profile its ``prior`` names, as loaded). Points with the
    same network and latency (a paper printing one measurement twice) are fitted once.

    Raises:
        DocumentError: an unknown group, too few points for the features, a profile of user points.
    """
    from designspace.evaluate.points import groups, load_points

    if profile.column == "user":
        raise DocumentError(f"{profile.name} is made of a user's points", file=profile.file, path="column",
                            fix="refit it with calibrate, giving the points again")
    ex = profile.exclude if exclude is None else tuple(exclude)
    for g in ex:
        if g not in groups():
            raise DocumentError(f"unknown points group {g!r} in exclude", file=profile.file or profile.name,
                                path="exclude", fix=f"one of: {', '.join(groups())}")
    chosen, seen = [], set()
    for p in load_points(profile.groups):
        ms = p.latency_ms.get(profile.column)
        key = (p.arch.fingerprint, ms)
        if ms is None or p.group in ex or key in seen:
            continue
        seen.add(key)
        chosen.append(p)
    points = [ProfilePoint(p.id, "id", p.latency_ms[profile.column]) for p in chosen]
    return _refit(replace(profile, exclude=ex), points, [p.arch for p in chosen], profile.file or profile.name,
                  prior_profile)


def calibrate(name: str, points: list[tuple[str, float]], *, prior: str | None = "iphone13", description: str = "",
              source: str = "", where: str = "<command line>") -> DeviceProfile:
    """Profile ``name`` fitted to a user's own ``points`` ((Arch file path or zoo name, measured milliseconds), e.g.
    from Xcode's performance report), pulled towards the ``prior`` device's features and costs (None: no prior; then
    at least as many points as features are needed). ``description``: what the device is; ``source``: where the
    points come from; ``where``: the file they came from, for error messages.

    Raises:
        DocumentError: an unknown Arch, a latency <= 0, too few points (one line naming ``where`` and the fix).
    """
    archs = []
    for ref, ms in points:
        if not ms > 0:
            raise DocumentError(f"{ref}={ms:g}: a latency must be a positive number of milliseconds", file=where,
                                fix="write ARCH=MS with MS > 0, e.g. iformer_t=0.62")
        try:
            archs.append(ProfilePoint(ref, "arch", ms).arch())
        except DocumentError as err:
            raise DocumentError(f"{ref}: not an Arch file or zoo model ({err.problem})", file=where,
                                fix=err.fix or "give an Arch YAML path or a zoo name") from None
    features = load_device(prior).features if prior else FEATURES
    refs = [ProfilePoint(str(Path(r).resolve()) if Path(r).suffix in (".yaml", ".yml") else r, "arch", ms)
            for r, ms in points]
    profile = DeviceProfile(name, description, source or "user measurements", "user", features, None, (), prior,
                            None, ())
    return _refit(profile, refs, archs, where)


def fit_devices(names: list[str] | None = None, *, exclude: tuple[str, ...] = (), out: Path | None = None,
                write: bool = True) -> list[DeviceProfile]:
    """Refits the shipped profiles ``names`` (default all) from the data files, the ones with a prior after their
    prior, and writes them (if ``write``; else only returns them) into ``out`` (default the shipped ``devices/``; give
    another with ``exclude``: point groups held out, e.g. ``("iformer_table7",)``, recorded in the profiles)."""
    shipped = {n: _read(n, f) for n, f in _shipped().items()}
    for n in names or ():
        if n not in shipped:
            raise DocumentError(f"unknown shipped device {n!r}", file="devices", fix=f"one of: {', '.join(shipped)}")
    order = sorted(names or shipped, key=lambda n: (shipped[n].prior is not None, n))
    folder = out or Path(str(resources.files("designspace.devices")))
    done: list[DeviceProfile] = []
    fitted: dict[str, DeviceProfile] = {}
    for n in order:
        # a prior refitted in this run is used as fitted (not a user's profile of the same name)
        prof = fit_profile(shipped[n], exclude=exclude or shipped[n].exclude,
                           prior_profile=fitted.get(shipped[n].prior or "") or shipped.get(shipped[n].prior or ""))
        fitted[n] = _parse_text(dump_yaml(profile_doc(prof)), f"devices/{n}.yaml")  # the prior as its file reads
        if write:
            save_device(prof, folder / f"{n}.yaml", overwrite=True)
        # the file it was written to (nothing in a dry run), not the shipped one it was fitted from
        done.append(replace(prof, file=str(folder / f"{n}.yaml") if write else ""))
    return done


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


def _parse_text(text: str, label: str) -> DeviceProfile:
    data, lines = load_yaml(text, label)
    return parse_device(data, Ctx(label, lines))


def _read(name: str, source: Any) -> DeviceProfile:
    """Profile ``name`` from its file: a user's (a Path) under the safe loader's limits, or a shipped resource."""
    if isinstance(source, Path):
        return _parse_text(read_document(source, "device profile"), str(source))
    return _parse_text(source.read_text(encoding="utf-8"), f"devices/{name}.yaml")


def load_device(name: str) -> DeviceProfile:
    """The profile called ``name`` (or read from a ``.yaml`` path).

    Raises:
        DocumentError: no such profile (the message lists them), or a malformed profile.
    """
    if Path(name).suffix in (".yaml", ".yml"):
        return _read(name, Path(name))
    files = _all_files()
    if name not in files:
        raise DocumentError(f"unknown device {name!r}", file=name, fix=did_you_mean(name, list(files))
                            + f"devices: local, {', '.join(sorted(files))} (designspace devices lists them)")
    return _read(name, files[name])


def list_devices() -> list[DeviceProfile]:
    """Every profile (shipped and the user's), by name."""
    return [load_device(n) for n in sorted(_all_files())]


def save_device(profile: DeviceProfile, path: Path, *, overwrite: bool = False) -> Path:
    """Writes a profile as YAML (whole or not at all).

    Raises:
        DocumentError: the file exists and ``overwrite`` is false (nothing saved is ever lost).
    """
    if path.exists() and not overwrite:
        raise DocumentError("a profile already exists here", file=str(path),
                            fix="choose another --name or --out, or pass --force to replace it")
    if path.is_symlink():
        raise DocumentError("the profile's path is a symbolic link, which designspace never writes through",
                            file=str(path), fix="remove the link, or choose another --name or --out")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, dump_yaml(profile_doc(profile)))
    return path
