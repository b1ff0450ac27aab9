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

Files are replaced atomically (written beside, then renamed), so a reader always sees a whole snapshot, and never
written through a symbolic link (:mod:`designspace.safe_files`).
"""

from __future__ import annotations

import csv
import json
import math
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
from designspace.safe_files import atomic_write, refuse_links

__all__ = ["StudyResults", "hypervolume", "pareto_front", "read_results", "study_rows", "write_results"]

# hypervolume is re-exported: results and summaries are where callers look for it

TRIALS_CSV, PARETO_CSV, SUMMARY_JSON, ARCHS = "trials.csv", "pareto.csv", "summary.json", "archs"
_CONTEXT = ("runtime", "runtime_version", "machine", "threads", "batch", "precision", "resolution", "layout",
            "implementation", "exporter")


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
    refuse_links(folder, folder.parent)
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
        atomic_write(folder / name, buf)
    summary = summarize(rows, settings)
    atomic_write(folder / SUMMARY_JSON, json.dumps(summary, indent=2, default=str) + "\n")
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
        """The rows of ``pareto.csv``, checked as ``trials.csv`` is (:func:`read_results`); every one a trial of
        ``trials.csv``.

        Raises:
            DesignspaceError: a missing, truncated or mistyped file, naming it, the cause and the fix.
        """
        path = self.folder / PARETO_CSV
        try:
            rows = _read_csv(path, self.settings.get("objectives", []))
            known = {r["number"] for r in self.rows}
            stray = next((r["number"] for r in rows if r["number"] not in known), None)
            if stray is not None:
                raise ValueError(f"trial {stray} is not in {TRIALS_CSV}")
        except (OSError, ValueError, csv.Error) as err:
            raise _unreadable(path, err) from None
        return rows


#: the states a trial row may have (Optuna's)
_STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")
_REPAIR = "rerun the search command with the same study to rewrite it from the study storage"


def _unreadable(path: Path, err: BaseException) -> DesignspaceError:
    """One line: the file, the cause and the fix."""
    if isinstance(err, OSError):
        cause = err.strerror or type(err).__name__
    else:
        cause = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
    return DesignspaceError(f"{path}: cannot be read ({cause}) (fix: {_REPAIR})")


#: the columns that are sizes or times when present: finite and above 0
_POSITIVE = ("params", "macs", "params_m", "macs_g", "latency_ms", "latency_table_ms", "latency_remeasured_ms",
             "latency_table_all_measured_ms")
#: other figures, when present: finite
_FINITE = ("latency_low_ms", "latency_high_ms", "duration_s")


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _read_csv(path: Path, objectives: Sequence[Any] = ()) -> list[dict[str, str]]:
    """The rows of a trials table, each checked: as many fields as the header, a trial number (whole, >= 0,
    not repeated), a known state, the objectives numbers or empty.

    Raises:
        ValueError: the first problem, with its line.
    """
    names = [str(o.get("name")) for o in objectives if isinstance(o, dict)]
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in ("number", "state", "feasible", *names) if c not in header]
        if missing:
            raise ValueError(f"its rows lack the columns {', '.join(missing)} (a truncated or foreign file)")
        rows: list[dict[str, str]] = []
        seen: set[str] = set()
        for row in reader:
            line = reader.line_num
            if None in row or any(v is None for v in row.values()):
                raise ValueError(f"line {line} has {len(row) - (None in row) - sum(v is None for v in row.values())}"
                                 f" fields, the header {len(header)} (a truncated or edited file)")
            number = row["number"]
            if not (number.isascii() and number.isdigit()):
                raise ValueError(f"line {line}: trial number {number[:20]!r} is not a whole number")
            if number in seen:
                raise ValueError(f"line {line}: trial {number} appears twice")
            seen.add(number)
            if row["state"] not in _STATES:
                raise ValueError(f"line {line}: state {row['state'][:20]!r} is not one of {', '.join(_STATES)}")
            if row["feasible"] not in ("True", "False"):
                raise ValueError(f"line {line}: feasible {row['feasible'][:20]!r} is not True or False")
            for name in (*names, *_FINITE, *(c for c in header if c.startswith("c_"))):
                if row.get(name) and not _is_number(row[name]):
                    raise ValueError(f"line {line}: {name} {row[name][:20]!r} is not a finite number")
            for name in _POSITIVE:  # sizes and times: a figure read back is above 0 or it is not one
                if row.get(name) and not (_is_number(row[name]) and float(row[name]) > 0):
                    raise ValueError(f"line {line}: {name} {row[name][:20]!r} is not a finite number above 0")
            rows.append(row)
    return rows


def _summary_problem(summary: Any) -> str | None:
    """What makes ``summary`` not a study summary, or ``None``."""
    if not isinstance(summary, dict) or not isinstance(summary.get("settings"), dict):
        return "not a study summary (no settings)"
    settings = summary["settings"]
    objectives = settings.get("objectives")
    if not isinstance(objectives, list) or not objectives or not all(
            isinstance(o, dict) and isinstance(o.get("name"), str) and o.get("direction") in ("minimize", "maximize")
            for o in objectives):
        return "settings.objectives is not a list of objectives (name, direction)"
    budgets = settings.get("budgets", [])
    if not isinstance(budgets, list) or not all(
            isinstance(b, dict) and isinstance(b.get("metric"), str) and isinstance(b.get("limit"), (int, float))
            and not isinstance(b.get("limit"), bool) for b in budgets):
        return "settings.budgets is not a list of budgets (metric, limit)"
    trials = summary.get("trials")
    if not isinstance(trials, int) or isinstance(trials, bool) or trials < 0:
        return f"trials is {str(trials)[:20]!r}, not a count"
    best = summary.get("best", [])
    if not isinstance(best, list) or not all(isinstance(b, dict) and isinstance(b.get("number"), int)
                                             and not isinstance(b.get("number"), bool) for b in best):
        return "best is not a list of trials with their numbers"
    return None


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
    for attempt in range(2):
        path = folder / SUMMARY_JSON
        try:
            summary = load_json(read_document(path, "results summary", MAX_JSON_BYTES), str(path))
            problem = _summary_problem(summary)
            if problem is not None:
                raise ValueError(problem)
        except DesignspaceError as err:  # the loader's own one line names the file; add the fix for results
            raise DesignspaceError(f"{str(err).split(' (fix:')[0]} (fix: {_REPAIR})") from None
        except (OSError, ValueError) as err:
            raise _unreadable(path, err) from None
        path = folder / TRIALS_CSV
        try:
            rows = _read_csv(path, summary["settings"]["objectives"])
            if len(rows) >= summary["trials"]:
                return StudyResults(folder, summary, rows)
            # trials.csv is written before summary.json, so it is behind only when cut short, or for a moment
            # while several workers write one folder: read once more before calling it truncated
            if attempt:
                raise ValueError(f"{len(rows)} trials where {SUMMARY_JSON} counts {summary['trials']} (a truncated "
                                 "file)")
        except (OSError, ValueError, csv.Error) as err:
            raise _unreadable(path, err) from None
        time.sleep(0.5)
    raise AssertionError("unreachable")
