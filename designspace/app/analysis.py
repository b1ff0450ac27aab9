"""What the app computes from a study: axes, budgets re-applied, Pareto fronts, progress over trials, block
mixes, a trial's architecture tables, comparisons, and the zoo and device tables.

Conventions: metric columns carry their unit (``params_m`` millions of parameters, ``macs_g`` billions of
multiply-adds, ``latency_ms`` milliseconds on the study's device, ``accuracy`` the search's accuracy estimate,
higher is better); a trial is feasible iff it completed and every budget metric is known and <= its limit.
Pareto fronts are over feasible trials, with each objective's direction; hypervolume is computed with
:func:`designspace.pareto.hypervolume` on minimized objectives (maximized ones negated); fronts with
:func:`designspace.pareto.pareto_mask`, the implementation results and search use.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from designspace.app.data import Study, finite, safe_path
from designspace.exceptions import DesignspaceError
from designspace.pareto import hypervolume, pareto_mask, reference_point

__all__ = ["axis_metrics", "block_mix_labels", "block_table", "budget_limits", "compare_table", "context_table",
           "default_axes", "device_table", "direction", "display_table", "feasible_under", "history", "metric_label",
           "slider_range", "stage_table", "study_front", "zoo_reference_points", "zoo_table"]

_LABELS = {"params_m": "parameters (M)", "macs_g": "MACs (G)", "latency_ms": "latency (ms)",
           "latency_measured_ms": "measured latency here (ms)",
           "accuracy": "log10 MACs, a size proxy for accuracy: docs/proxies.md (old name: accuracy)",
           "top1": "predicted ImageNet-1K top-1 (%)", "trained_top1": "validation top-1 after training (%)",
           "duration_s": "trial duration (s)", "latency_loo_error": "device fit leave-one-out error",
           "latency_table_ms": "latency from the per-block table (ms)",
           "latency_remeasured_ms": "latency re-measured whole (ms)",
           "latency_table_error": "table vs re-measured",
           "latency_table_all_measured_ms": "table latency, every entry measured (ms)",
           "latency_table_all_measured_error": "table, every entry measured, vs re-measured"}
_KNOWN = ("params_m", "macs_g", "latency_ms", "latency_measured_ms", "latency_table_ms", "latency_remeasured_ms",
          "latency_table_all_measured_ms", "duration_s")
#: Columns that are not an axis of their own: the exact counts beside ``params_m``/``macs_g`` (one name per
#: quantity), the latency's interval (drawn as error bars on ``latency_ms``), flags and bookkeeping.
_NOT_METRICS = ("number", "feasible", "latency_predicted", "params", "macs", "latency_low_ms", "latency_high_ms",
                "latency_extrapolated", "latency_fit_points", "top1_lo", "top1_hi", "top1_std", "top1_extrapolated",
                "latency_entries_measured", "latency_entries_predicted", "latency_loo_error")
#: Columns holding fractions, shown as percentages.
PERCENT_COLUMNS = ("latency_loo_error", "latency_table_error", "latency_table_all_measured_error")


def metric_label(metric: str, study: Study | None = None) -> str:
    """An axis label with the unit, and for the latency its device and source (``"latency (ms) on iphone13,
    predicted"``, ``"parameters (M)"``, ``"log10 MACs, a size proxy for accuracy: docs/proxies.md (higher is
    better)"``)."""
    from designspace.evaluate.accuracy.estimate import ESTIMATES, description

    label = _LABELS.get(metric) or (description(metric) if metric in ESTIMATES else metric)
    if study is not None and metric in ("latency_ms",):
        device, source = study.latency_kind
        label += f" on {device}, {source}"
    if study is not None:
        for o in study.objectives:
            if o["name"] == metric and o.get("kind") == "estimate" and o.get("arg") and metric not in _LABELS:
                label = f"{description(str(o['arg']))} (higher is better)"
    return label


def axis_metrics(study: Study) -> list[str]:
    """The numeric columns that can be plotted: the objectives, then the known metrics, then other numbers
    (constraint, context and parameter columns left out), each with at least one finite value."""
    df = study.trials
    numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c]) and c not in _NOT_METRICS
               and not c.startswith(("c_", "ctx_", "param:")) and np.isfinite(df[c].to_numpy(float)).any()]
    ordered = [o["name"] for o in study.objectives] + list(_KNOWN)
    out = [c for c in ordered if c in numeric]
    return list(dict.fromkeys(out + [c for c in numeric if c not in out]))


def direction(study: Study, metric: str) -> str:
    """``"minimize"`` or ``"maximize"``: the objective's direction, else maximize for accuracy estimates and
    proxies, minimize for costs (params, MACs, latency, duration)."""
    for o in study.objectives:
        if o["name"] == metric:
            return str(o["direction"])
    from designspace.evaluate.accuracy.estimate import ESTIMATES

    return "maximize" if metric.startswith("accuracy") or metric in ESTIMATES or metric.startswith(
        ("top1", "trained_top1")) else "minimize"


def default_axes(study: Study) -> tuple[str, str]:
    """The default (x, y): latency on the study's device (else the first minimized objective, else parameters)
    against the accuracy estimate (else the first maximized objective, else MACs)."""
    metrics = axis_metrics(study)
    if not metrics:
        return ("params_m", "accuracy")
    maxed = [o["name"] for o in study.objectives if o["direction"] == "maximize" and o["name"] in metrics]
    preferred = next((m for m in ("trained_top1", "top1", "accuracy") if m in metrics), None)
    y = preferred or (maxed[0] if maxed else ("macs_g" if "macs_g" in metrics else metrics[-1]))
    mins = [o["name"] for o in study.objectives if o["direction"] == "minimize" and o["name"] in metrics]
    candidates = (["latency_ms"] if "latency_ms" in metrics else []) + mins + ["params_m", "macs_g"] + metrics
    x = next(m for m in candidates if m in metrics and m != y) if len(metrics) > 1 else metrics[0]
    return (x, y)


def budget_limits(study: Study) -> dict[str, float]:
    """The study's budgets: metric -> limit (``{"params_m": 5.0, "macs_g": 0.6}``)."""
    return {str(b["metric"]): float(b["limit"]) for b in study.budgets}


def slider_range(study: Study, metric: str) -> tuple[float, float, float]:
    """(low, high, step) for a budget slider on ``metric``: from 0 to the larger of twice the limit and the
    largest value seen, in about 200 steps (rounded to a readable step)."""
    limit = budget_limits(study).get(metric, 0.0)
    col = study.trials[metric] if metric in study.trials.columns else pd.Series(dtype=float)
    values = col.to_numpy(float)
    seen = float(np.nanmax(values)) if np.isfinite(values).any() else 0.0
    high = max(2.0 * limit, seen * 1.05, 1e-3)
    raw = high / 200.0
    step = 10.0 ** math.floor(math.log10(raw))
    step = next(s * step for s in (1, 2, 5, 10) if s * step >= raw)
    high = math.ceil(high / step) * step
    return (0.0, float(round(high, 10)), float(step))


def feasible_under(study: Study, limits: dict[str, float]) -> np.ndarray:
    """Which trials are feasible under these budget limits (metric -> limit; metrics not given keep the
    study's limit): completed, with every budget metric known and <= its limit (bool array, row order)."""
    df = study.trials
    ok = (df["state"] == "COMPLETE").to_numpy(dtype=bool, copy=True)
    for metric, limit in {**budget_limits(study), **limits}.items():
        if metric not in df.columns:
            return np.zeros(len(df), dtype=bool)
        values = df[metric].to_numpy(float)
        with np.errstate(invalid="ignore"):
            ok &= np.isfinite(values) & (values <= limit)
    return ok


def _minimized(df: pd.DataFrame, metrics: Sequence[str], directions: Sequence[str]) -> np.ndarray:
    cols = [df[m].to_numpy(float) * (-1.0 if d == "maximize" else 1.0) for m, d in zip(metrics, directions,
                                                                                         strict=True)]
    return np.column_stack(cols) if cols else np.zeros((len(df), 0))


def study_front(study: Study, limits: dict[str, float], metrics: Sequence[str] | None = None) -> np.ndarray:
    """The feasible Pareto front under ``limits`` (bool array), over ``metrics`` (default: the objectives)
    with their directions."""
    metrics = list(metrics) if metrics else [o["name"] for o in study.objectives]
    pts = _minimized(study.trials, metrics, [direction(study, m) for m in metrics])
    return pareto_mask(pts, feasible_under(study, limits))


def history(study: Study, limits: dict[str, float], checkpoints: int = 200) -> pd.DataFrame:
    """Best-so-far of each objective and the hypervolume of the feasible front, over trial numbers.

    The hypervolume's reference point is the one ``summary.json`` uses (the worst feasible value of each
    minimized objective plus 10% of its range), computed over all trials feasible under ``limits``.

    Args:
        study: the study.
        limits: budget limits (metric -> limit) deciding feasibility.
        checkpoints: at most this many trial numbers evaluated (evenly spread, the last one included).

    Returns:
        Columns ``number`` (trial number), ``feasible_so_far`` (count), ``best_<objective>`` per objective (NaN
        before the first feasible trial) and ``hypervolume`` (objective units multiplied; 0 before).
    """
    df = study.trials
    names = [o["name"] for o in study.objectives]
    if df.empty or not names:
        return pd.DataFrame(columns=["number", "feasible_so_far", *[f"best_{n}" for n in names], "hypervolume"])
    feas = feasible_under(study, limits)
    pts = _minimized(df, names, [o["direction"] for o in study.objectives])
    feas &= np.isfinite(pts).all(axis=1)
    out = pd.DataFrame({"number": df["number"].to_numpy(int), "feasible_so_far": np.cumsum(feas)})
    for k, o in enumerate(study.objectives):
        col = np.where(feas, pts[:, k], np.inf)
        best = np.minimum.accumulate(col)
        best = np.where(np.isfinite(best), best, np.nan)
        out[f"best_{o['name']}"] = -best if o["direction"] == "maximize" else best
    feasible_pts = pts[feas]
    ref = reference_point(feasible_pts[np.isfinite(feasible_pts).all(axis=1)].tolist())
    n = len(df)
    at = np.unique(np.linspace(0, n - 1, min(checkpoints, n)).round().astype(int))
    hv = np.full(n, np.nan)
    for i in at:
        if ref is None:
            hv[i] = 0.0
            continue
        upto = feas.copy()
        upto[i + 1:] = False
        front = pts[pareto_mask(pts, upto)]
        hv[i] = hypervolume(front.tolist(), ref) if len(front) else 0.0
    out["hypervolume"] = hv
    return out.iloc[at].reset_index(drop=True)


# ----------------------------------------------------------------------------------------------- block mixes
_MIX_MEMO: dict[tuple[str, int], tuple[tuple[str, ...], ...]] = {}
_MIX_LOCK = threading.Lock()
def block_mix(path: Path) -> tuple[tuple[str, ...], ...]:
    """The block types in each stage of the Arch file at ``path`` (memoized by path and modification time).

    Returns:
        One tuple per stage, the stage's block types in order of first appearance.

    Raises:
        OSError: the file cannot be read.
        DocumentError: it is not a valid Arch file.
    """
    from designspace.arch import Arch

    key = (str(path), path.stat().st_mtime_ns)
    hit = _MIX_MEMO.get(key)
    if hit is not None:
        return hit
    arch = Arch.from_file(path)  # the one Arch reader (about 1 ms a file), with the safe loader's limits
    mix = tuple(tuple(dict.fromkeys(layer.type for layer in stage.blocks)) for stage in arch.stages)
    with _MIX_LOCK:
        _MIX_MEMO[key] = mix
    return mix


def mix_label(mix: Sequence[Sequence[str]]) -> str:
    """``"S1 mbconv | S2 sam | S3 iformer_conv+msa"``: stages numbered from 1, a stage's types joined by ``+``."""
    return " | ".join(f"S{i + 1} {'+'.join(types)}" for i, types in enumerate(mix))


def block_mix_labels(study: Study, top: int = 10) -> pd.Series:
    """A block-mix label per trial (which block families in which stages), for colouring.

    The ``top`` most frequent mixes keep their label; the others read ``"other mixes"``; trials without an Arch
    file (rejected, failed, or a study without its folder) read ``"no Arch"``.
    """
    df = study.trials
    labels = pd.Series("no Arch", index=df.index, dtype=object)
    if study.folder is None or "arch" not in df.columns:
        return labels
    by_file: dict[str, str] = {}
    for rel in df["arch"].unique():
        if not rel:
            continue
        try:
            by_file[rel] = mix_label(block_mix(safe_path(study.folder, rel)))
        except (OSError, DesignspaceError, ValueError, AttributeError, TypeError):
            by_file[rel] = "no Arch"
    labels = df["arch"].map(by_file).fillna("no Arch")
    counts = Counter(labels[labels != "no Arch"])
    keep = {label for label, _ in counts.most_common(top)}
    return labels.where(labels.isin(keep) | (labels == "no Arch"), "other mixes")


# ----------------------------------------------------------------------------------------------- one trial
def stage_table(arch: Any) -> pd.DataFrame:
    """One row per part of the network: stem, each stage, head.

    Columns: ``part``, ``width`` (output channels), ``stride`` (the stage's downsampling), ``depth`` (blocks),
    ``blocks`` (``"2x sam, 1x irmb"``), ``downsample`` (type), ``params_m``, ``macs_g`` (analytic counts of
    the part, downsampling included).
    """
    from designspace.evaluate.counts.analytic import count

    counts = count(arch)
    params: Counter[str] = Counter()
    macs: Counter[str] = Counter()
    for c in counts.components:
        parts = c.name.split(".")
        part = f"stage {int(parts[1]) + 1}" if parts[0] == "stages" else parts[0]
        params[part] += c.params
        macs[part] += c.macs
    rows: list[dict[str, Any]] = [{"part": "stem", "width": None, "stride": None, "depth": None,
                                   "blocks": arch.stem.type, "downsample": "", "params_m": params["stem"] / 1e6,
                                   "macs_g": macs["stem"] / 1e9}]
    for i, st in enumerate(arch.stages):
        types = Counter(b.type for b in st.blocks)
        rows.append({"part": f"stage {i + 1}", "width": st.width, "stride": st.stride, "depth": len(st.blocks),
                     "blocks": ", ".join(f"{n}x {t}" for t, n in types.items()),
                     "downsample": st.downsample.type if st.downsample is not None else "",
                     "params_m": params[f"stage {i + 1}"] / 1e6, "macs_g": macs[f"stage {i + 1}"] / 1e9})
    rows.append({"part": "head", "width": None, "stride": None, "depth": None, "blocks": arch.head.type,
                 "downsample": "", "params_m": params["head"] / 1e6, "macs_g": macs["head"] / 1e9})
    table = pd.DataFrame(rows)
    table[["width", "stride", "depth"]] = table[["width", "stride", "depth"]].astype("Int64")
    return table


def block_table(arch: Any) -> pd.DataFrame:
    """One row per component (``stem``, ``stages.0.downsample``, ``stages.0.blocks.0``, ..., ``head``).

    Columns: ``name``, ``type``, ``params_m`` (millions), ``macs_m`` (millions of multiply-adds, batch 1).
    """
    from designspace.evaluate.counts.analytic import count

    return pd.DataFrame([{"name": c.name, "type": c.type, "params_m": c.params / 1e6, "macs_m": c.macs / 1e6}
                         for c in count(arch).components])


def context_table(study: Study | None, row: pd.Series | dict[str, Any]) -> pd.DataFrame:
    """The latency of a trial and where it comes from: ``field``, ``value`` rows. First the figure as one phrase
    (``0.875 ms on iphone13, predicted (interval 0.759-1.012 ms)``), its device, source and interval; then for a
    prediction the profile's fit (points, leave-one-out error as a percentage, extrapolation), for a measurement or
    a table figure the local context (runtime and version, machine, threads, batch, precision, resolution, layout,
    implementation), flags and the table's entries. Studies written before :class:`LatencyEstimate` read too.
    """
    from designspace.evaluate.latency_estimate import LatencyEstimate

    clean = {k: v for k, v in dict(row).items() if not (isinstance(v, float) and math.isnan(v))}
    est = LatencyEstimate.from_columns(clean, study.device if study is not None else None)
    out: list[dict[str, str]] = []
    if est is None and clean.get("latency_table_ms") not in (None, ""):  # an old table row without latency_ms
        est = LatencyEstimate.from_columns({**clean, "latency_ms": clean["latency_table_ms"]})
    if est is not None:
        out += [{"field": "latency", "value": est.text(extrapolation=False)},
                {"field": "device (latency refers to)", "value": est.device},
                {"field": "source", "value": {"predicted": "predicted by the device profile's cost model (nothing "
                                                            "measured)",
                                              "table": "the per-block table (entries measured here)",
                                              "measured": "measured on this machine"}[est.source]},
                {"field": "interval (ms)", "value": est.interval_text() if est.lo_ms is not None else "none"}]
        if est.extrapolated:
            out.append({"field": "extrapolated", "value": "; ".join(est.extrapolation)})
    fields = [("latency_fit_points", "profile fitted on (published latencies)"),
              ("latency_loo_error", "profile leave-one-out error (mean)"), ("latency_flags", "measurement flags"),
              ("latency_entries_measured", "table entries measured for it"),
              ("latency_entries_predicted", "table entries predicted for it (not measured)"),
              ("latency_remeasured_ms", "re-measured whole (ms)"), ("latency_table_error", "table vs re-measured"),
              ("latency_table_all_measured_ms", "table latency, every entry measured (ms)"),
              ("latency_table_all_measured_error", "table, every entry measured, vs re-measured"),
              ("ctx_exporter", "ONNX exporter"),
              ("ctx_runtime", "runtime"), ("ctx_runtime_version", "runtime version"), ("ctx_machine", "machine"),
              ("ctx_threads", "threads"), ("ctx_batch", "batch"), ("ctx_precision", "precision"),
              ("ctx_resolution", "resolution"), ("ctx_layout", "layout"), ("ctx_implementation", "implementation")]
    for key, label in fields:
        value = clean.get(key)
        if value is None or value == "":
            continue
        if key in PERCENT_COLUMNS and isinstance(value, (int, float)):
            value = f"{value:+.1%}" if key != "latency_loo_error" else f"{value:.1%}"
        elif isinstance(value, float) and value.is_integer() and key.startswith(("ctx_", "latency_entries",
                                                                                 "latency_fit")):
            value = int(value)
        elif isinstance(value, float) and key.endswith("_ms"):
            value = f"{value:.3f}"
        out.append({"field": label, "value": str(value)})
    if est is None:
        out.append({"field": "latency", "value": "not measured or predicted (a counts-only study, or a cheaper "
                                                 "budget broke first)"})
    return pd.DataFrame(out)


def display_table(study: Study, table: pd.DataFrame) -> pd.DataFrame:
    """``table`` (trial columns) for the page: each column under its label with unit (and for the latency its
    device and source), fractions as percentages, milliseconds to 3 decimals."""
    out = table.copy()
    if {"latency_low_ms", "latency_high_ms"} <= set(out.columns):  # one interval column beside the latency
        lo, hi = out.pop("latency_low_ms"), out.pop("latency_high_ms")
        text = [f"{a:.3f}-{b:.3f}" if np.isfinite(a) and np.isfinite(b) else "" for a, b in zip(lo, hi, strict=True)]
        out.insert(list(out.columns).index("latency_ms") + 1 if "latency_ms" in out.columns else len(out.columns),
                   "latency interval (ms)", text)
    for col in out.columns:
        if col in PERCENT_COLUMNS:
            out[col] = out[col] * 100
        elif col.endswith("_ms") and pd.api.types.is_numeric_dtype(out[col]):
            out[col] = out[col].round(3)
    keep = ("number", "zoo", "fingerprint", "latency interval (ms)")
    return out.rename(columns={c: metric_label(c, study) + (" (%)" if c in PERCENT_COLUMNS else "")
                               for c in out.columns if c not in keep})


def compare_table(study: Study, numbers: Sequence[int], mixes: pd.Series | None = None) -> pd.DataFrame:
    """The trials side by side: one column per trial (``"trial 12"``), one row per quantity (objectives,
    params_m, macs_g, latency_ms, feasible, budgets broken, block mix, zoo name, fingerprint).

    Raises:
        DesignspaceError: a trial number not in the study.
    """
    df = study.trials.set_index("number", drop=False)
    quantities = list(dict.fromkeys([o["name"] for o in study.objectives] + ["params_m", "macs_g", "latency_ms"]))
    quantities = [q for q in quantities if q in df.columns]
    cols = {}
    for n in numbers:
        if n not in df.index:
            raise DesignspaceError(f"trial {n} is not in study {study.name!r} (fix: pick one from the list)")
        r = df.loc[n]
        col: dict[str, Any] = {}
        for q in quantities:  # under its label with unit; milliseconds to 3 decimals with the interval
            v = finite(r[q])
            label = metric_label(q, study)
            if q == "latency_ms" and v is not None:
                lo, hi = finite(r.get("latency_low_ms")), finite(r.get("latency_high_ms"))
                col[label] = f"{v:.3f}" + (f" ({lo:.3f}-{hi:.3f})" if lo is not None and hi is not None else "")
            else:
                col[label] = None if v is None else f"{v:.4g}"
        col["feasible"] = bool(r["feasible"])
        col["budgets broken"] = r.get("broken", "") or "none"
        if mixes is not None:
            col["block mix"] = mixes.loc[study.trials.index[study.trials["number"] == n][0]]
        col["zoo"] = r.get("zoo", "")
        col["fingerprint"] = r.get("fingerprint", "")
        cols[f"trial {n}"] = col
    return pd.DataFrame(cols).astype(str).replace({"None": "", "nan": ""})


# ----------------------------------------------------------------------------------------------- zoo, devices
def zoo_table() -> pd.DataFrame:
    """The published models: our analytic counts beside the papers' figures (``designspace zoo``), plus the
    papers' latencies (``paper_<device>_ms`` columns, milliseconds)."""
    from designspace import zoo
    from designspace.evaluate.counts.zoo_report import rows as zoo_rows

    rows = zoo_rows()
    for r in rows:
        pub = zoo.published_for(zoo.load(str(r["name"])))
        for device, ms in (pub.latency_ms if pub else ()):
            r[f"paper_{device}_ms"] = ms
    return pd.DataFrame(rows)


def zoo_reference_points(x: str, y: str) -> pd.DataFrame:
    """The zoo models as (x, y) points where both axes are analytic counts or the papers' top-1.

    Args:
        x: x metric; only ``params_m`` and ``macs_g`` can be computed for models outside the study.
        y: y metric, likewise.

    Returns:
        Columns ``name``, ``x``, ``y``; empty when an axis is something else (latency, an estimate).
    """
    computable = ("params_m", "macs_g")
    if x not in computable or y not in computable:
        return pd.DataFrame(columns=["name", "x", "y"])
    table = zoo_table()
    return pd.DataFrame({"name": table["name"], "x": table[x].astype(float), "y": table[y].astype(float)})


def device_table() -> pd.DataFrame:
    """The device profiles (shipped and the user's) with their fit and leave-one-out error (``designspace
    devices``). Nothing is measured or written."""
    from designspace.evaluate.devices.report import device_rows

    rows = device_rows()
    cols = ["name", "points", "fit", "loo_mean", "loo_max", "within_10", "prior", "description"]
    table = pd.DataFrame([{c: r.get(c) for c in cols} for r in rows], columns=cols)
    for c in ("loo_mean", "loo_max", "within_10"):  # fractions -> percentages, under a header that says so
        table[c] = (table[c].astype(float) * 100).round(1)
    return table.rename(columns={"loo_mean": "leave-one-out error, mean (%)",
                                 "loo_max": "leave-one-out error, max (%)",
                                 "within_10": "leave-one-out within 10% (% of points)"})


def device_names() -> list[str]:
    """The device profiles a latency can be predicted on (shipped and the user's), by name: the app's device
    selector."""
    from designspace.evaluate.devices.profiles import list_devices

    return [p.name for p in list_devices() if p.model is not None]


def device_prediction(device: str, arch: str) -> dict[str, object]:
    """A zoo model's (or Arch file's) latency predicted on ``device``: ``ms``, ``low_ms``/``high_ms`` (the 90%
    interval, None when refused), ``refusal`` (why no interval, in words), ``outside`` and the fit's error."""
    from designspace.evaluate.sources import Device
    from designspace.network import load_arch

    return dict(Device(device).estimate(load_arch(arch)).detail.to_dict())
