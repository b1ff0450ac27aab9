"""Every latency names its device and source and carries its interval (issue 29): the search's summary, trials.csv,
``pareto`` and an export (metrics.json, README.md) of a study predicted on the iPhone 13 and of a study measured
here; and the :class:`LatencyEstimate` they all go through."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
from typing import Any

import pytest

from designspace.cli import main
from designspace.evaluate.latency_estimate import LatencyEstimate, budget_verdict
from designspace.exceptions import DesignspaceError

INTERVAL = r"\d+\.\d{3}-\d+\.\d{3}"


def _study(tmp_path_factory: pytest.TempPathFactory, args: list[str]) -> dict[str, Any]:
    """Runs ``search`` then ``pareto`` then ``export`` of the best trial; returns what each printed or wrote."""
    root = tmp_path_factory.mktemp("results")
    mp = pytest.MonkeyPatch()
    mp.setenv("DESIGNSPACE_RESULTS", str(root))

    out: dict[str, Any] = {}
    try:
        for key, argv in (("summary", ["search", *args, "--study", "s", "--no-progress"]), ("pareto", ["pareto", "s"]),
                          ("export", ["export", "s", "--out", str(root / "exp"), "--no-onnx"])):
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                assert main(argv) == 0, key
            out[key] = buf.getvalue()
    finally:
        mp.undo()
    with open(root / "s" / "trials.csv", newline="", encoding="utf-8") as f:
        out["trials"] = list(csv.DictReader(f))
    with open(root / "s" / "pareto.csv", newline="", encoding="utf-8") as f:
        out["pareto_csv"] = list(csv.DictReader(f))
    out["metrics"] = json.loads((root / "exp" / "metrics.json").read_text(encoding="utf-8"))
    out["readme"] = (root / "exp" / "README.md").read_text(encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def device_study(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A study predicted on the iPhone 13 under a 1.1 ms budget (nothing measured in its trials)."""
    return _study(tmp_path_factory, ["mobile", "--device", "iphone13", "--budget", "1.1ms", "--trials", "12",
                                     "--seed", "1"])


@pytest.fixture(scope="module")
def local_study(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A study measured here (ONNX Runtime, the default), 3 trials."""
    return _study(tmp_path_factory, ["tiny", "--trials", "3", "--seed", "3"])


def _latency_rows(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [r for r in rows if r.get("latency_ms")]


def test_a_device_study_names_its_device_source_and_interval(device_study: dict[str, Any]) -> None:
    s = device_study
    # the summary's table: one latency column whose header names the device and source, its interval beside it
    header = next(line for line in s["summary"].splitlines() if line.startswith("trial"))
    assert header.count("latency") == 1 and "latency ms on iphone13, predicted" in header and "interval ms" in header
    assert re.search(INTERVAL, s["summary"])
    # trials.csv and pareto.csv: the one latency column, its interval, its device and source
    for rows in (s["trials"], s["pareto_csv"]):
        got = _latency_rows(rows)
        assert got and {(r["latency_device"], r["latency_source"]) for r in got} == {("iphone13", "predicted")}
        assert all(float(r["latency_low_ms"]) < float(r["latency_ms"]) < float(r["latency_high_ms"]) for r in got)
        assert not any(k in rows[0] for k in ("latency_measured_ms", "latency_table_ms", "latency_predicted"))
    # pareto: the same header, every latency to 3 decimals, no second latency column
    lines = s["pareto"].splitlines()
    head = next(line for line in lines if line.startswith("trial"))
    assert head.count("latency") == 1 and "latency ms on iphone13, predicted" in head
    assert all(re.search(INTERVAL, line) for line in lines[lines.index(head) + 2:] if line[:1].isdigit())
    # the export: the device's figure with its interval and the budget verdict, beside the local re-measurement
    m = s["metrics"]
    dev = m["latency_device"]
    assert dev["device"] == "iphone13" and dev["source"] == "predicted"
    assert dev["lo_ms"] < dev["value_ms"] < dev["hi_ms"]
    assert dev["budget"]["limit_ms"] == 1.1 and dev["budget"]["meets"] is (dev["value_ms"] <= 1.1)
    assert m["latency_now"]["device"] == "local" and m["latency_now"]["source"] == "measured"
    assert m["recorded"]["latency"]["device"] == "iphone13" and m["recorded"]["latency"]["source"] == "predicted"
    assert m["recorded"]["context"] and "" not in m["recorded"]["context"].values()
    readme = s["readme"]
    assert re.search(rf"latency on iphone13, predicted: \d+\.\d{{3}} ms \(interval {INTERVAL} ms", readme)
    assert re.search(r"(meets|breaks) the study's 1\.1 ms budget", readme)
    assert re.search(rf"latency on local, measured: \d+\.\d{{3}} ms re-measured at export \(interval {INTERVAL} ms",
                     readme)


def test_a_local_study_names_local_measured_and_its_interval(local_study: dict[str, Any]) -> None:
    s = local_study
    header = next(line for line in s["summary"].splitlines() if line.startswith("trial"))
    assert header.count("latency") == 1 and "latency ms on local, measured" in header and "interval ms" in header
    assert re.search(INTERVAL, s["summary"])
    for rows in (s["trials"], s["pareto_csv"]):
        got = _latency_rows(rows)
        assert got and {(r["latency_device"], r["latency_source"]) for r in got} == {("local", "measured")}
        # the repeatability interval: at least the 5% independent measurements differ by on the shared host
        assert all(float(r["latency_low_ms"]) <= 0.95 * float(r["latency_ms"]) + 1e-12 for r in got)
        assert all(float(r["latency_high_ms"]) >= 1.05 * float(r["latency_ms"]) - 1e-12 for r in got)
        assert all(r["ctx_runtime"] == "onnxruntime" for r in got)
    head = next(line for line in s["pareto"].splitlines() if line.startswith("trial"))
    assert "latency ms on local, measured" in head
    m = s["metrics"]
    assert m["latency_device"] is None  # no device: the local figure is the study's
    assert m["recorded"]["latency"]["device"] == "local" and m["recorded"]["latency"]["source"] == "measured"
    assert m["recorded"]["context"]["runtime"] == "onnxruntime"
    assert m["latency_now"]["device"] == "local" and m["latency_now"]["lo_ms"] < m["latency_now"]["latency_ms"]
    assert re.search(rf"latency on local, measured: \d+\.\d{{3}} ms re-measured at export \(interval {INTERVAL} ms",
                     s["readme"])


def test_the_estimate_reads_older_studies_rows() -> None:
    """Rows written before the estimate: a prediction's source was "predicted: DEVICE", a measurement's interval
    the value itself, and the measurement was written twice (latency_measured_ms)."""
    old_pred = {"latency_ms": "1.04", "latency_low_ms": "0.9", "latency_high_ms": "1.2", "latency_extrapolated": "True",
                "latency_predicted": "True", "latency_source": "predicted: iphone13", "device": "iphone13",
                "latency_loo_error": "0.05", "ctx_runtime": ""}
    est = LatencyEstimate.from_columns(old_pred)
    assert est is not None and (est.device, est.source, est.lo_ms, est.hi_ms) == ("iphone13", "predicted", 0.9, 1.2)
    assert est.extrapolated and est.context == {"loo_mean_error": 0.05}
    old_meas = {"latency_ms": "3.5", "latency_low_ms": "3.5", "latency_high_ms": "3.5", "latency_measured_ms": "3.5",
                "latency_predicted": "False", "device": "local", "ctx_runtime": "onnxruntime"}
    est = LatencyEstimate.from_columns(old_meas)
    assert est is not None and (est.device, est.source, est.lo_ms, est.hi_ms) == ("local", "measured", None, None)
    assert est.context == {"runtime": "onnxruntime"}
    old_table = {"latency_ms": "2.0", "latency_table_ms": "2.0", "latency_source": "table", "device": "local"}
    est = LatencyEstimate.from_columns(old_table)
    assert est is not None and (est.device, est.source) == ("local", "table")
    assert LatencyEstimate.from_columns({"latency_ms": ""}) is None
    # a round trip through the new columns and through JSON
    new = LatencyEstimate(1.0, "iphone13", "predicted", 0.9, 1.2, {"points": 35}, (), ("macs 9 > 8",))
    again = LatencyEstimate.from_columns({**new.columns(), "latency_fit_points": 35})
    assert again is not None and again == new
    assert LatencyEstimate.from_dict(new.to_dict()) == new and LatencyEstimate.from_dict(new.to_dict()).context
    assert new.label == "latency on iphone13, predicted" and new.header() == "latency ms on iphone13, predicted"


def test_budget_verdict_and_refusals() -> None:
    est = LatencyEstimate(1.04, "iphone13", "predicted", 0.903, 1.203)
    v = budget_verdict(est, 1.1)
    assert v["meets"] is True and v["interval_within"] is False and "high end 1.203 ms" in v["text"]
    assert budget_verdict(est, 1.0)["meets"] is False and "low end 0.903" in budget_verdict(est, 1.0)["text"]
    assert budget_verdict(LatencyEstimate(1.0, "local", "table"), 2.0)["interval_within"] is None
    with pytest.raises(DesignspaceError, match="latency source must be one of measured, table, predicted"):
        LatencyEstimate(1.0, "local", "guessed")
    with pytest.raises(DesignspaceError, match="needs its device"):
        LatencyEstimate(1.0, "", "measured")
