"""``results/<study>/``: what a search writes, and what the app and ``export`` read (nothing else is needed).

* ``trials.csv``: one row per trial; columns ``number, state, feasible``, the objectives, ``broken`` (budgets a
  trial breaks, by how much), the metrics, one ``c_<budget>`` column per budget (Optuna's constraint value:
  feasible iff every one is <= 0), the measurement context, ``repairs``, ``reason``, ``zoo``, ``fingerprint``,
  ``arch`` (the YAML file) and one ``param:<name>`` column per flat parameter of the space.
* ``pareto.csv``: the feasible Pareto front (same columns).
* ``summary.json``: the settings, counts by outcome, why trials were infeasible, the hypervolume of the
  front and the best trials.
* ``archs/<fingerprint>.yaml``: every evaluated Arch.
* ``study.db`` (SQLite studies) or ``storage.txt`` (the storage URL, password masked).

Files are replaced atomically (written beside, then renamed), so a reader always sees a whole snapshot.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from designspace._yaml import MAX_JSON_BYTES, load_json, read_document
from designspace.evaluate.latency_estimate import LatencyEstimate
from designspace.exceptions import DesignspaceError
from designspace.pareto import hypervolume, pareto_mask, reference_point

__all__ = ["StudyResults", "hypervolume", "pareto_front", "read_results", "study_rows", "write_results"]

# hypervolume is re-exported: results and summaries are where callers look for it

TRIALS_CSV, PARETO_CSV, SUMMARY_JSON, ARCHS = "trials.csv", "pareto.csv", "summary.json", "archs"
_CONTEXT = ("runtime", "runtime_version", "machine", "threads", "batch", "precision", "resolution", "layout",
            "implementation", "exporter")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def study_rows(trials: Sequence[Any], settings: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per Optuna trial (see the module docstring for the columns)."""
    objectives = settings["objectives"]
    budgets = settings["budgets"]
    rows = []
    for t in trials:
        ds = t.user_attrs.get("ds", {})
        row: dict[str, Any] = {"number": t.number, "state": t.state.name, "feasible": ds.get("feasible", False)
                               if t.state.name == "COMPLETE" else False}
        values = t.values or []
        for i, obj in enumerate(objectives):
            v = values[i] if i < len(values) else None
            row[obj["name"]] = v if v is None or math.isfinite(v) else None
        row["broken"] = "; ".join(ds.get("broken", []))
        for key, value in ds.get("metrics", {}).items():
            row[key] = value
        for b, c in zip(budgets, ds.get("constraints", [None] * len(budgets)), strict=False):
            row[f"c_{b['metric']}"] = c
        for key in _CONTEXT:
            row[f"ctx_{key}"] = ds.get("context", {}).get(key)
        row["device"] = settings.get("device") or "local"
        if row.get("latency_ms") is not None and "latency_device" not in row:  # recorded before LatencyEstimate
            est = LatencyEstimate.from_columns(row, row["device"])
            if est is not None:
                row.update(est.columns())
        row["repairs"] = "; ".join(ds.get("repairs", []))
        row["reason"] = ds.get("reason", "")
        if t.state.name == "FAIL" and not ds.get("counted"):  # not the evaluation's failure: the run stopped
            row["reason"] = ""
        row["zoo"] = t.user_attrs.get("zoo", "")
        row["fingerprint"] = ds.get("fingerprint", "")
        row["arch"] = ds.get("arch", "")
        # the trial's own clock when it recorded one (the same whichever storage is read), else the storage's
        row["duration_s"] = ds.get("duration_s", round(t.duration.total_seconds(), 3) if t.duration is not None
                                   else None)
        for name, value in t.params.items():
            row[f"param:{name}"] = value
        rows.append(row)
    return rows


def _minimization(row: dict[str, Any], objectives: Sequence[dict[str, Any]]) -> list[float]:
    return [float(row[o["name"]]) * (1 if o["direction"] == "minimize" else -1) for o in objectives]


def pareto_front(rows: Sequence[dict[str, Any]], objectives: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The feasible, completed rows that no other such row dominates (duplicates of a point kept once: the
    first row), sorted by the objectives in minimization form (:func:`designspace.pareto.pareto_mask`)."""
    pts = [(tuple(_minimization(r, objectives)), i, r) for i, r in enumerate(rows)
           if r["state"] == "COMPLETE" and r["feasible"] and all(r[o["name"]] is not None for o in objectives)]
    if not pts:
        return []
    mask = pareto_mask(np.array([p for p, _, _ in pts], dtype=float).reshape(len(pts), len(objectives)))
    return [r for _, _, r in sorted((p for p, keep in zip(pts, mask, strict=True) if keep),
                                    key=lambda t: (t[0], t[1]))]


def _reference(rows: Sequence[dict[str, Any]], objectives: Sequence[dict[str, Any]]) -> list[float] | None:
    return reference_point([_minimization(r, objectives) for r in rows if r["state"] == "COMPLETE" and r["feasible"]
                            and all(r[o["name"]] is not None for o in objectives)])


def _violation(row: dict[str, Any], budgets: Sequence[dict[str, Any]]) -> float:
    total = 0.0
    for b in budgets:
        c = row.get(f"c_{b['metric']}")
        total += max(0.0, float(c)) / b["limit"] if c is not None else math.inf
    return total


def summarize(rows: list[dict[str, Any]], settings: dict[str, Any], best: int = 5) -> dict[str, Any]:
    """The summary of a study's rows (what ``summary.json`` holds)."""
    objectives, budgets = settings["objectives"], settings["budgets"]
    states = Counter(r["state"] for r in rows)
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    feasible = [r for r in complete if r["feasible"]]
    broken: Counter[str] = Counter()
    for r in complete:
        for part in filter(None, r["broken"].split("; ")):
            broken[part.split(" ", 1)[0]] += 1
    front = pareto_front(rows, objectives)
    ref = _reference(rows, objectives)
    hv = hypervolume([_minimization(r, objectives) for r in front], ref) if ref is not None else 0.0
    out: dict[str, Any] = {
        "settings": settings, "updated": time.strftime("%Y-%m-%d %H:%M:%S"),
        "trials": len(rows), "states": dict(states), "complete": len(complete), "feasible": len(feasible),
        "infeasible": len(complete) - len(feasible), "broken_budgets": dict(broken),
        "rejected": [r["reason"] for r in rows if r["state"] == "PRUNED"][:10],
        "failed": [r["reason"] for r in rows if r["state"] == "FAIL" and r["reason"]][:10],
        "failed_evaluations": sum(r["state"] == "FAIL" and bool(r["reason"]) for r in rows),
        "rerun": sum(r["state"] == "FAIL" and not r["reason"] for r in rows),
        "pareto_size": len(front), "hypervolume": hv, "hypervolume_reference": ref,
        "best": [_brief(r, objectives) for r in front[:best]],
    }
    if complete and not feasible:
        closest = sorted(complete, key=lambda r: _violation(r, budgets))[:3]
        out["closest"] = [{**_brief(r, objectives), "broken": r["broken"]} for r in closest]
    return out


def _brief(row: dict[str, Any], objectives: Sequence[dict[str, Any]]) -> dict[str, Any]:
    keys = ["number", *[o["name"] for o in objectives], "params", "macs", "params_m", "macs_g", "latency_ms",
            "latency_low_ms", "latency_high_ms", "latency_device", "latency_source", "latency_extrapolated", "zoo",
            "fingerprint", "arch"]
    return {k: row.get(k) for k in keys}


def write_results(trials: Sequence[Any], settings: dict[str, Any], folder: Path,
                  remeasured: dict[str, Any] | None = None,
                  table_all_measured: dict[str, Any] | None = None) -> dict[str, Any]:
    """Writes ``trials.csv``, ``pareto.csv`` and ``summary.json`` for these trials; returns the summary.

    ``remeasured``: trial number (as text) -> the whole network's latency in milliseconds, for a ``--latency
    table`` study whose front was re-measured; written as ``latency_remeasured_ms`` and the table's error
    ``latency_table_error`` (the trial's table latency ``latency_ms`` / re-measured - 1). ``table_all_measured``:
    trial number -> the same trial's table latency once the entries it predicted were measured and every entry
    had its second pass (the search's term), milliseconds; written as ``latency_table_all_measured_ms`` and
    ``latency_table_all_measured_error`` (that / re-measured - 1).
    """
    rows = study_rows(trials, settings)
    for row in rows:
        ms = (remeasured or {}).get(str(row["number"]))
        if isinstance(ms, (int, float)) and ms > 0:
            row["latency_remeasured_ms"] = ms
            # the trial's table figure: its one latency column (studies before the estimate also wrote it twice)
            table = row.get("latency_table_ms", row.get("latency_ms") if row.get("latency_source") == "table"
                            else None)
            if isinstance(table, (int, float)):
                row["latency_table_error"] = table / ms - 1.0
            final = (table_all_measured or {}).get(str(row["number"]))
            if isinstance(final, (int, float)) and final > 0:
                row["latency_table_all_measured_ms"] = final
                row["latency_table_all_measured_error"] = final / ms - 1.0
    columns: list[str] = []
    for r in rows:
        columns.extend(k for k in r if k not in columns)
    params = sorted(c for c in columns if c.startswith("param:"))
    columns = [c for c in columns if not c.startswith("param:")] + params
    for name, data in ((TRIALS_CSV, rows), (PARETO_CSV, pareto_front(rows, settings["objectives"]))):
        buf = _csv(columns, data)
        _atomic_write(folder / name, buf)
    summary = summarize(rows, settings)
    _atomic_write(folder / SUMMARY_JSON, json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def _csv(columns: list[str], rows: Sequence[dict[str, Any]]) -> str:
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in r.items()})
    return buf.getvalue()


class StudyResults:
    """A study's results folder, read back: its summary and its trials (CSV rows as strings)."""

    def __init__(self, folder: Path, summary: dict[str, Any], rows: list[dict[str, str]]) -> None:
        self.folder = folder
        self.summary = summary
        self.rows = rows

    @property
    def settings(self) -> dict[str, Any]:
        """The search settings (space, objectives, budgets, device, context)."""
        return dict(self.summary["settings"])

    def pareto(self) -> list[dict[str, str]]:
        """The rows of ``pareto.csv``."""
        return _read_csv(self.folder / PARETO_CSV)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def read_results(study: str | Path) -> StudyResults:
    """Reads ``results/<study>/`` (or a folder path).

    Raises:
        DesignspaceError: no such study, or its files are missing or corrupt.
    """
    from designspace.evaluate.cache import results_dir

    folder = Path(study)
    if not (folder / SUMMARY_JSON).exists():
        folder = results_dir() / str(study)
    if not (folder / SUMMARY_JSON).exists():
        known = sorted(p.parent.name for p in results_dir().glob(f"*/{SUMMARY_JSON}"))
        raise DesignspaceError(f"no study results at {folder} (fix: run designspace search first; studies here: "
                               f"{', '.join(known) or 'none'})")
    try:
        summary = load_json(read_document(folder / SUMMARY_JSON, "results summary", MAX_JSON_BYTES),
                            str(folder / SUMMARY_JSON))
        if not isinstance(summary, dict) or not isinstance(summary.get("settings"), dict):
            raise ValueError("summary.json is not a study summary")
        rows = _read_csv(folder / TRIALS_CSV)
    except (OSError, ValueError, csv.Error) as err:
        raise DesignspaceError(f"the results in {folder} cannot be read ({err}) (fix: rerun the search command to "
                               "rewrite them from the study storage)") from None
    return StudyResults(folder, summary, rows)
