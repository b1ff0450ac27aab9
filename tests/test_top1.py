"""The top-1 predictor: a known answer recovered, exact leave-one-out, the shipped fit reproducible, sane intervals,
extrapolation flagged, one-line errors for a missing or malformed model file."""

from __future__ import annotations

import importlib.util
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

import designspace as ds
from designspace.evaluate.accuracy import top1
from designspace.evaluate.accuracy.top1 import (
    BASE_FEATURES,
    Top1,
    fit_arrays,
    fit_points,
    load_model,
    predict_top1,
    training_set,
)
from designspace.exceptions import DocumentError

ROOT = Path(__file__).resolve().parent.parent


def _toy(n: int = 40, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 3))
    return x, 70.0 + 3.0 * x[:, 0] - 2.0 * x[:, 1]  # the third feature carries nothing


def test_toy_table_with_a_known_answer_is_recovered() -> None:
    x, y = _toy()
    model = fit_arrays(x, y, names=("a", "b", "c"), bootstrap=50)
    for probe in ([0.5, -0.5, 0.0], [-0.6, 0.6, 0.5], [0.0, 0.0, -0.3]):
        pred = model.predict_vector(np.asarray(probe))
        assert pred.mean == pytest.approx(70 + 3 * probe[0] - 2 * probe[1], abs=0.05)
        assert pred.std < 0.1 and not pred.extrapolated
    assert model.alpha == min(top1._ALPHAS)  # no noise: the weakest ridge wins leave-one-out
    far = model.predict_vector(np.asarray([5.0, 0.0, 0.0]))
    assert far.extrapolated and "a 5 outside the data's" in far.reason


def test_feature_groups_are_chosen_by_leave_one_out() -> None:
    x, y = _toy()
    noise = np.random.default_rng(0).normal(0, 0.3, len(y))
    junk = np.random.default_rng(1).normal(0, 1, (len(y), 2))
    groups = {"size": ("a", "b"), "resolution": (), "junk": ("j1", "j2")}
    model = fit_arrays(np.hstack([x[:, :2], junk]), y + noise, names=("a", "b", "j1", "j2"), groups=groups)
    assert model.groups == ("size", "resolution") and model.used == (True, True, False, False)


def _bench() -> object:
    spec = importlib.util.spec_from_file_location("bench_accuracy", ROOT / "benchmarks" / "bench_accuracy.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_benchmark_leave_one_out_and_table_out_are_computed() -> None:
    bench = _bench()
    x = np.asarray([[1.0], [2.0], [3.0], [4.0], [5.0], [6.0]])
    y = np.asarray([1.0, 2.5, 2.9, 4.2, 5.0, 6.4])
    groups = [("t1",), ("t1",), ("t2",), ("t2",), ("zoo",), ("zoo",)]
    got = bench.evaluate("line", list("abcdef"), x, y, groups, bench._line_fit, x[:, 0])  # type: ignore[attr-defined]
    loo = [abs(np.polyval(np.polyfit(np.delete(x[:, 0], i), np.delete(y, i), 1), x[i, 0]) - y[i]) for i in range(6)]
    assert got["loo_mae"] == pytest.approx(np.mean(loo))
    held = []
    for t in ("t1", "t2"):
        inside = [i for i, g in enumerate(groups) if t in g]
        rest = [i for i in range(6) if i not in inside]
        line = np.polyfit(x[rest, 0], y[rest], 1)
        held.extend(abs(np.polyval(line, x[inside, 0]) - y[inside]))
    assert got["loto_mae"] == pytest.approx(np.mean(held))
    assert got["pairs_right"] == 1.0 and got["tables"]["t1"]["tau"] == pytest.approx(1.0)


def test_fit_is_reproducible_and_the_shipped_model_is_current() -> None:
    a, b = fit_points().to_dict(), fit_points().to_dict()
    assert a == b
    shipped = load_model()
    assert [tuple(d) for d in a["data"]] == list(shipped.data), \
        "the points changed: regenerate with designspace.evaluate.accuracy.top1.write_model()"
    assert np.allclose(a["coefs"], shipped.coefs) and a["alpha"] == shipped.alpha
    ids = [r[0] for r in training_set()]
    assert len(ids) == len(set(ids)) and len(ids) >= 40


def test_intervals_are_sane_on_the_data() -> None:
    rows = training_set()
    inside = 0
    for rid, arch, published, _ in rows:
        p = predict_top1(arch)
        assert 0 < p.lo < p.mean < p.hi < 100 and 0.2 < p.std < 5, rid
        assert not p.extrapolated, (rid, p.reason)
        inside += p.lo <= published <= p.hi
    assert inside >= 0.85 * len(rows)
    assert abs(predict_top1(ds.load_arch("smt_t")).mean - 82.2) < 1.5


def test_an_absurd_arch_is_flagged() -> None:
    doc = ds.load_arch("iformer_t").to_dict()
    doc["resolution"] = 512
    for s in doc["stages"]:
        s["width"] = s["width"] * 8
    p = predict_top1(ds.Arch.from_dict(doc))
    assert p.extrapolated and "outside the data's" in p.reason and "log10_resolution" in p.reason


def test_printing_and_fields_say_what_they_are() -> None:
    p = Top1(78.94, 0.87, 77.2, 80.6, False)
    assert str(p) == "78.9 +- 0.9 %"
    assert str(Top1(78.94, 0.87, 77.2, 80.6, True, "x")) == "78.9 +- 0.9 % (extrapolated)"
    assert set(p.to_dict()) == {"top1_mean", "top1_std", "top1_lo", "top1_hi", "extrapolated", "reason"}
    assert re.fullmatch(r"\d+\.\d \+- \d+\.\d %", str(predict_top1(ds.load_arch("emo_5m"))))
    names = load_model().features
    assert names[:len(BASE_FEATURES)] == BASE_FEATURES and len(names) == len(set(names))
    assert {"mix_sam", "mix_msa", "mix_irmb", "mix_shma"} <= set(names)


def test_prediction_is_cheap() -> None:
    arch = ds.load_arch("smt_s")
    predict_top1(arch)
    best = min(_timed(arch) for _ in range(5))
    assert best < 5e-3, f"{best * 1e3:.2f} ms per prediction"


def _timed(arch: ds.Arch) -> float:
    start = time.perf_counter()
    for _ in range(20):
        predict_top1(arch)
    return (time.perf_counter() - start) / 20


@pytest.mark.parametrize(("text", "needle"), [
    (None, "cannot read the top-1 model: No such file"),
    ("{not json", "not valid JSON"),
    ('{"format": 2}', "unknown format 2"),
    ('{"format": 1, "features": ["a"]}', "malformed top-1 model"),
])
def test_missing_or_malformed_model_file_is_one_line(tmp_path: Path, text: str | None, needle: str) -> None:
    path = tmp_path / "model.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(DocumentError) as err:
        load_model(path)
    msg = str(err.value)
    assert needle in msg and str(path) in msg and "fix: regenerate it with" in msg and "\n" not in msg


def test_a_model_for_other_features_is_refused(tmp_path: Path) -> None:
    body = json.loads((ROOT / "designspace" / "data" / "top1_model.json").read_text())
    body["features"] = body["features"][:-1] + ["log2_resolution"]
    path = tmp_path / "m.json"
    path.write_text(json.dumps(body))
    with pytest.raises(DocumentError, match="are not this version's"):
        load_model(path)


@pytest.mark.parametrize(("text", "name", "direction"), [
    ("top1", "top1", "maximize"),
    ("log10_macs", "log10_macs", "maximize"),
    ("log10_params", "log10_params", "maximize"),
    ("zico", "zico", "maximize"),
    ("latency", "latency_ms", "minimize"),
    ("params", "params_m", "minimize"),
    ("macs_g", "macs_g", "minimize"),
    ("accuracy", "log10_macs", "maximize"),  # the old name: the default estimate, under its own name
    ("accuracy:zico", "zico", "maximize"),
    ("accuracy:macs", "log10_macs", "maximize"),
])
def test_objectives_are_named_for_what_they_measure(text: str, name: str, direction: str) -> None:
    from designspace.evaluate.accuracy.estimate import DEFAULT
    from designspace.search.objectives import parse_objective

    o = parse_objective(text)
    assert (o.name, o.direction) == ((DEFAULT if text == "accuracy" else name), direction)
    assert "accuracy" not in o.name


def test_old_studies_map_to_todays_names() -> None:
    from designspace.search.objectives import LEGACY_COLUMNS, legacy_column, upgrade_objective

    old = {"name": "accuracy", "direction": "maximize", "kind": "estimate", "arg": "macs"}
    assert upgrade_objective(old) == {**old, "name": "log10_macs", "arg": "log10_macs"}
    assert upgrade_objective({**old, "name": "accuracy_zico", "arg": "zico"})["name"] == "zico"
    latency = {"name": "latency_ms", "direction": "minimize", "kind": "latency", "arg": "latency_ms"}
    assert upgrade_objective(latency) == latency
    assert legacy_column("accuracy") == "log10_macs" and legacy_column("latency_ms") == "latency_ms"
    assert all("accuracy" not in v for v in LEGACY_COLUMNS.values())


def test_export_metrics_carry_the_prediction(tmp_path: Path) -> None:
    from designspace.export import export

    export("emo_1m", tmp_path / "out", latency=False, onnx=False)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    p = metrics["top1_predicted"]
    want = predict_top1(ds.load_arch("emo_1m"))
    assert p["top1_mean"] == pytest.approx(want.mean, abs=1e-3) and p["top1_lo"] < p["top1_mean"] < p["top1_hi"]
    assert metrics["estimate"]["name"] != "accuracy"
    readme = (tmp_path / "out" / "README.md").read_text()
    assert f"predicted ImageNet-1K top-1: {want.mean:.1f} +- {want.std:.1f} %" in readme


def test_app_draws_intervals_and_published_top1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from designspace.app import data, figures
    from designspace.cli import main

    monkeypatch.setenv("DESIGNSPACE_RESULTS", str(tmp_path / "results"))
    assert main(["search", "tiny", "--trials", "4", "--objective", "top1", "--objective", "params",
                 "--no-progress"]) == 0
    study = data.load_study(tmp_path / "results", "tiny")
    assert [o["name"] for o in study.objectives] == ["top1", "params_m"]
    intervals = figures.top1_intervals(study)
    assert len(intervals) == 4
    merged = study.trials.merge(intervals, on="number")
    assert ((merged["lo"] < merged["top1"]) & (merged["top1"] < merged["hi"])).all()
    feasible = np.ones(len(study.trials), bool)
    published = figures.published_top1_points("params_m")
    assert {"smt_t", "iformer_m"} <= set(published["name"]) and published["y"].between(60, 90).all()
    fig = figures.tradeoff_figure(study, "params_m", "top1", feasible, ~feasible, None, {}, None, intervals,
                                  published)
    names = [t.name for t in fig.data]
    bars = fig.data[names.index("predicted top-1, 95% interval")]
    assert len(bars.error_y.array) == 4 and (np.asarray(bars.error_y.array) > 0).all()
    assert "published top-1 (zoo)" in names
