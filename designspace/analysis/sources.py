"""Where an analysis' networks come from besides a space: a study's completed trials (``results/<study>/``), and
the name a user gives (a study if one has it, else a space). See :mod:`designspace.analysis.samples` for the sample
set and its metrics.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from designspace.analysis.samples import (
    BlockCost,
    ParamInfo,
    SampleSet,
    Target,
    active_names,
    device_source,
    network_metrics,
    param_infos,
    space_samples,
    targets,
)
from designspace.exceptions import DesignspaceError
from designspace.space.core import Space

__all__ = ["load_samples", "study_samples"]


def _parse(text: str, info: ParamInfo | None) -> Any:
    """A ``param:`` cell of trials.csv back to its value (the space's own option where the space is known)."""
    if info is not None and info.kind == "categorical":
        return next((o for o in info.options if str(o) == text), text)
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def _float(text: Any) -> float:
    try:
        v = float(text)
    except (TypeError, ValueError):
        return math.nan
    return v if math.isfinite(v) else math.nan


def study_samples(study: str | Path, *, device: str | None = None) -> SampleSet:
    """A study's completed trials (``results/<study>/``, as :func:`designspace.results.read_results` reads them).

    Latency: each trial's Arch (``archs/``) predicted on ``device``, or on the study's device where that is a
    profile; a study of measured (``local``) latency without ``device`` is read as it recorded them. Targets: the
    latency, its cost per GMAC and the study's other objectives.

    Raises:
        DesignspaceError: an unknown study, fewer than 2 completed trials, a device with no profile.
    """
    from designspace.results import read_results
    from designspace.space import load_space

    res = read_results(study)
    settings = res.settings
    rows = [r for r in res.rows if r.get("state") == "COMPLETE"]
    name = str(settings.get("study") or res.folder.name)
    if len(rows) < 2:
        raise DesignspaceError(f"study {name} ({res.folder}) has {len(rows)} completed trial(s): an analysis compares "
                               "networks and needs at least 2 (fix: designspace search ... --study "
                               f"{res.folder.name} --trials +50, or analyze the space itself)")
    space: Space | None = None
    for ref in (settings.get("space_file"), settings.get("space")):  # the file, else a shipped space of its name
        try:
            space = load_space(str(ref)) if ref else None
        except DesignspaceError:
            continue
        if space is not None and all(f"param:{p.name}" in rows[0] for p in space.params):
            break
        space = None  # the space moved or changed: parameters read as their cells say
    infos = {p.name: p for p in param_infos(space)} if space is not None else {}
    names = sorted({k[len("param:"):] for r in rows for k, v in r.items() if k.startswith("param:") and v != ""})
    values = [{n: _parse(r[f"param:{n}"], infos.get(n)) for n in names if r.get(f"param:{n}", "") != ""} for r in rows]
    params = tuple(infos.get(n) or _infer(n, [v[n] for v in values if n in v]) for n in names)
    active = [active_names(space.doc, v) if space is not None and all(p.name in v for p in space.params)
              else frozenset(v) for v in values]
    metrics: dict[str, np.ndarray] = {}
    for key in ("params_m", "macs_g"):
        metrics[key] = np.array([_float(r.get(key)) for r in rows])
    blocks: list[tuple[BlockCost, ...]] = []
    recorded = str(settings.get("device") or "local")
    if device is not None or recorded != "local":
        from designspace.network import load_arch

        # a profile's prediction from each trial's Arch (archs/<fingerprint>.yaml inside the study: a path written in
        # trials.csv is not followed), which also gives each block's share
        device_latency = device_source(device or recorded, None)
        dev, source = device_latency.name, "predicted"
        lat = []
        for r in rows:
            fp = str(r.get("fingerprint") or "")
            path = res.folder / "archs" / f"{fp}.yaml"
            if not (fp.isalnum() and fp.isascii()) or not path.exists():
                raise DesignspaceError(f"{res.folder}: trial {r.get('number')}'s Arch archs/{fp[:40]}.yaml is missing "
                                       "(fix: rerun the search to rewrite archs/, or analyze its space)")
            row, bl = network_metrics(load_arch(path), device_latency, "log10_macs")
            lat.append(row["latency_ms"])
            blocks.append(bl)
        metrics["latency_ms"] = np.array(lat)
    else:
        dev, source = "local", "measured"
        metrics["latency_ms"] = np.array([_float(r.get("latency_ms")) for r in rows])
    macs = metrics["macs_g"]
    with np.errstate(divide="ignore", invalid="ignore"):
        metrics["latency_ms_per_gmac"] = np.where(macs > 0, metrics["latency_ms"] / macs, np.nan)
    extra = []
    for o in settings.get("objectives", []):
        oname = str(o.get("name"))
        if oname in ("latency_ms", "latency_ms_per_gmac"):
            continue  # already a target
        if oname not in metrics:
            metrics[oname] = np.array([_float(r.get(oname)) for r in rows])
        extra.append(Target(oname, _objective_label(oname), str(o.get("direction", "minimize"))))
    if np.all(np.isnan(metrics["latency_ms"])):
        raise DesignspaceError(f"study {name} recorded no latency (fix: analyze it with --device iphone13)")
    return SampleSet(name, "study", f"{len(rows)} completed trials of study {name} ({res.folder})", dev, source,
                     params, values, active, metrics, targets(dev, source, extra), blocks)


def _objective_label(name: str) -> str:
    """An objective's axis title with its unit (``params_m`` -> ``parameters (M)``, an estimate's description)."""
    from designspace.evaluate.accuracy.estimate import ESTIMATES, description

    known = {"params_m": "parameters (M)", "macs_g": "MACs (G)", "params": "parameters (M)"}
    if name in known:
        return known[name]
    return description(name) if name in ESTIMATES else name


def _infer(name: str, seen: list[Any]) -> ParamInfo:
    """A parameter whose space is unknown: numeric if every value is a number, else categorical."""
    if seen and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in seen):
        kind = "int" if all(isinstance(v, int) for v in seen) else "float"
        return ParamInfo(name, kind, low=float(min(seen)), high=float(max(seen)))
    return ParamInfo(name, "categorical", tuple(dict.fromkeys(seen)))


def load_samples(source: str, *, samples: int = 2000, seed: int = 0, device: str | None = None,
                 estimate: str = "top1", force_space: bool = False) -> SampleSet:
    """A study's trials if ``results/<source>/`` (or the folder ``source``) holds a study and ``force_space`` is
    false, else ``samples`` networks of the space ``source`` (a YAML file or a shipped name).

    Raises:
        DesignspaceError: neither a study nor a space (one line naming both places looked in), or what
            :func:`study_samples` and :func:`space_samples` raise.
    """
    from designspace.evaluate.cache import results_dir
    from designspace.exceptions import DocumentError
    from designspace.space import load_space

    folder = Path(source)
    is_study = (folder / "summary.json").exists() or (results_dir() / source / "summary.json").exists()
    if is_study and not force_space:
        return study_samples(source, device=device)
    try:
        space = load_space(source)
    except DocumentError as err:
        if Path(source).suffix in (".yaml", ".yml") and Path(source).exists():
            raise
        studies = sorted(p.parent.name for p in results_dir().glob("*/summary.json"))
        raise DesignspaceError(f"{source!r} is neither a study in {results_dir()} nor a space ({err.problem}) (fix: "
                               f"a space file or shipped name ({err.fix or 'designspace validate lists them'}), or a "
                               f"study: {', '.join(studies) or 'none here yet'})") from None
    return space_samples(space, samples, seed=seed, device=device, estimate=estimate)
