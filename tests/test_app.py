"""The app (``streamlit run app.py``): its library (designspace.app) on real search output, and every page and the
main interactions through Streamlit's AppTest."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("streamlit")
pytest.importorskip("plotly")

from streamlit.testing.v1 import AppTest

import designspace
from designspace.app import analysis, data, figures
from designspace.evaluate.accuracy.estimate import DEFAULT
from designspace.exceptions import DesignspaceError
from designspace.results import hypervolume, read_results

APP = str(Path(__file__).resolve().parents[1] / "app.py")


# ----------------------------------------------------------------------------------------------- library
def test_safe_path_refuses_escapes(app_results: Path) -> None:
    assert data.safe_path(app_results, "mob/trials.csv") == (app_results / "mob" / "trials.csv").resolve()
    for bad in ("../x", "mob/../../x", "/etc/passwd", "", "mob/archs/../../../outside.yaml", "escape/summary.json"):
        with pytest.raises(DesignspaceError, match="refusing"):
            data.safe_path(app_results, bad)


def test_list_studies_skips_links_out_and_non_studies(app_results: Path, tmp_path: Path) -> None:
    assert data.list_studies(app_results) == ["corrupt", "empty", "evil", "mob", "tiny"]
    assert data.list_studies(tmp_path / "missing") == []


def test_load_study_types_and_counts(app_results: Path) -> None:
    study = data.load_study(app_results, "mob")
    res = read_results(app_results / "mob")
    assert len(study.trials) == len(res.rows) == 6
    assert study.trials["feasible"].dtype == bool and study.trials["params_m"].dtype == float
    assert int(study.trials["feasible"].sum()) == res.summary["feasible"]
    assert study.trials.loc[0, "zoo"] == "iformer_t"
    assert study.snapshot == data.snapshot_token(app_results, "mob") != (0, 0)


@pytest.mark.parametrize(("name", "match"), [("nope", "no study 'nope'"), ("corrupt", "cannot be read"),
                                             ("escape", "refusing"), ("../mob", "refusing")])
def test_load_study_errors(app_results: Path, name: str, match: str) -> None:
    with pytest.raises(DesignspaceError, match=match):
        data.load_study(app_results, name)


def test_trials_without_the_columns(app_results: Path, tmp_path: Path) -> None:
    shutil.copytree(app_results / "mob", tmp_path / "cut")
    (tmp_path / "cut" / "trials.csv").write_text("number,state\n0,COMPLETE\n", encoding="utf-8")
    with pytest.raises(DesignspaceError, match="lack the columns feasible, log10_macs, params_m"):
        data.load_study(tmp_path, "cut")


def test_feasibility_and_front_match_the_search(app_results: Path) -> None:
    for name in ("mob", "tiny"):
        study = data.load_study(app_results, name)
        limits = analysis.budget_limits(study)
        assert (analysis.feasible_under(study, limits) == study.trials["feasible"].to_numpy()).all()
        front = study.trials.loc[analysis.study_front(study, limits), "number"].tolist()
        pareto = [int(r["number"]) for r in read_results(app_results / name).pareto()]
        assert sorted(front) == sorted(pareto)
    tight = {"params_m": 1.0}
    study = data.load_study(app_results, "mob")
    feas = analysis.feasible_under(study, tight)
    assert feas.sum() == ((study.trials["params_m"] <= 1.0) & study.trials["feasible"]).sum()


def test_history_ends_at_the_summary_hypervolume(app_results: Path) -> None:
    study = data.load_study(app_results, "mob")
    hist = analysis.history(study, analysis.budget_limits(study))
    assert hist["number"].iloc[-1] == study.trials["number"].max()
    assert hist["hypervolume"].iloc[-1] == pytest.approx(study.summary["hypervolume"])
    assert hist["hypervolume"].is_monotonic_increasing
    best = hist["best_log10_macs"].dropna()
    assert best.is_monotonic_increasing and best.iloc[-1] == pytest.approx(
        study.trials.loc[study.trials["feasible"], "log10_macs"].max())
    assert hypervolume([], [1.0, 1.0]) == 0.0


def test_block_mix_reads_the_arch_files(app_results: Path, tmp_path: Path) -> None:
    hybrid = tmp_path / "hybrid.yaml"
    hybrid.write_text("stem: {type: iformer_stem}\nstages:\n  - width: 32\n    blocks: [{type: mbconv, repeat: 2}]\n"
                      "  - width: 64\n    downsample: {type: conv_bn}\n    blocks: [{type: efficientmod}]\n"
                      "  - width: 128\n    downsample: {type: conv_ln}\n    blocks:\n      - pattern: [sam, "
                      "{type: msa, num_heads: 4}, sam]\nhead: {type: bn_linear_head}\n", encoding="utf-8")
    assert analysis.block_mix(hybrid) == (("mbconv",), ("efficientmod",), ("sam", "msa"))  # first use, in order
    files = sorted((app_results / "mob" / "archs").glob("*.yaml")) + sorted((app_results / "tiny" / "archs").glob(
        "*.yaml"))
    assert files
    for f in files:
        mix = analysis.block_mix(f)
        assert len(mix) == len(designspace.load_arch(f).stages) and all(mix)
    labels = analysis.block_mix_labels(data.load_study(app_results, "mob"))
    assert labels.str.startswith("S1 ").all()


def test_arch_tables_add_up(app_results: Path) -> None:
    study = data.load_study(app_results, "mob")
    arch = data.load_arch_of(study, study.trials.iloc[0])
    counts = designspace.count(arch)
    stages, blocks = analysis.stage_table(arch), analysis.block_table(arch)
    assert stages["params_m"].sum() == pytest.approx(counts.params_m)
    assert stages["macs_g"].sum() == pytest.approx(counts.macs_g)
    assert blocks["params_m"].sum() == pytest.approx(counts.params_m)
    assert list(stages["part"]) == ["stem", *[f"stage {i + 1}" for i in range(len(arch.stages))], "head"]
    assert stages["depth"].iloc[1:-1].tolist() == [len(s.blocks) for s in arch.stages]
    dot = figures.diagram_dot(arch)
    assert dot.startswith("digraph") and dot.count("->") == len(arch.stages) + 3
    assert all(f"stage {i + 1}: {s.width} ch" in dot for i, s in enumerate(arch.stages))


def test_downloads_stay_inside_the_results(app_results: Path) -> None:
    study = data.load_study(app_results, "mob")
    row = study.trials.iloc[0]
    assert data.arch_yaml_bytes(study, row) == (app_results / "mob" / row["arch"]).read_bytes()
    assert data.trials_csv_bytes(study) == (app_results / "mob" / "trials.csv").read_bytes()
    evil = data.load_study(app_results, "evil")
    with pytest.raises(DesignspaceError, match="refusing"):
        data.arch_yaml_bytes(evil, evil.trials.iloc[0])


def test_onnx_bytes_run_in_onnxruntime(app_results: Path) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from designspace.evaluate.measure.onnx import run_onnx

    study = data.load_study(app_results, "tiny")
    row = study.trials[study.trials["arch"] != ""].iloc[0]
    model = data.onnx_bytes(data.arch_yaml_bytes(study, row))
    arch = data.load_arch_of(study, row)
    out = run_onnx(model, torch.zeros(1, 3, arch.resolution, arch.resolution))
    assert tuple(out.shape) == (1, arch.num_classes)


def test_tradeoff_figure_layers(app_results: Path) -> None:
    study = data.load_study(app_results, "mob")
    limits = analysis.budget_limits(study)
    feas = analysis.feasible_under(study, limits)
    front = analysis.study_front(study, limits, ["params_m", "log10_macs"])
    zoo = analysis.zoo_reference_points("params_m", "macs_g")
    assert len(zoo) == len(designspace.zoo.names()) and zoo["x"].gt(0).all()
    assert analysis.zoo_reference_points("latency_ms", "log10_macs").empty
    fig = figures.tradeoff_figure(study, "params_m", "log10_macs", feas, front, analysis.block_mix_labels(study),
                                  limits, zoo)
    names = [t.name for t in fig.data]
    assert "Pareto front" in names and "zoo (in study)" in names and "zoo (analytic)" in names
    assert ("infeasible" in names) == bool((~feas).any())
    pareto = next(t for t in fig.data if t.name == "Pareto front")
    assert sorted(pareto.customdata.tolist()) == sorted(study.trials.loc[front, "number"].tolist())
    assert [s.x0 for s in fig.layout.shapes] == [limits["params_m"]]  # the params budget line on x


def test_zoo_and_device_tables_write_nothing(tmp_path: Path) -> None:
    from designspace.evaluate.devices.profiles import list_devices

    zoo = analysis.zoo_table()
    assert set(zoo["name"]) == set(designspace.zoo.names())
    assert {"params_m", "paper_params_m", "macs_g", "paper_macs_g", "top1"} <= set(zoo.columns)
    devices = analysis.device_table()
    assert list(devices["name"]) == [p.name for p in list_devices()]
    assert list(tmp_path.iterdir()) == []


def test_storage_url_study(app_results: Path) -> None:
    url = f"sqlite:///{(app_results / 'mob' / 'study.db').resolve()}"
    study = data.load_storage_study(app_results, url, "mob")
    folder = data.load_study(app_results, "mob")
    assert study.trials["number"].tolist() == folder.trials["number"].tolist()
    assert np.allclose(study.trials["log10_macs"], folder.trials["log10_macs"])
    assert study.folder == (app_results / "mob").resolve() and not study.notes
    with pytest.raises(DesignspaceError, match="no study 'other'"):
        data.load_storage_study(app_results, url, "other")
    outside = f"sqlite:///{(app_results.parent / 'outside_study' / 'study.db').resolve()}"
    with pytest.raises(DesignspaceError, match="refusing"):
        data.load_storage_study(app_results, outside, "mob")


# ----------------------------------------------------------------------------------------------- AppTest
@pytest.fixture
def app(app_results: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("DESIGNSPACE_RESULTS", str(app_results))
    return AppTest.from_file(APP, default_timeout=60)


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def _choose(at: AppTest, study: str) -> AppTest:
    return at.sidebar.selectbox(key="study").set_value(study).run()


def _figure(at: AppTest, index: int = 0) -> dict:
    return json.loads(at.get("plotly_chart")[index].proto.spec)


def test_tradeoffs_page(app: AppTest, app_results: Path) -> None:
    at = _choose(app.run(), "mob")
    _ok(at)
    study = data.load_study(app_results, "mob")
    assert at.selectbox(key="x:mob").value == "params_m" and at.selectbox(key="y:mob").value == "log10_macs"
    assert _metric(at, "trials") == "6"
    assert _metric(at, "feasible under these budgets") == str(int(study.trials["feasible"].sum()))
    fig = _figure(at)
    assert {"Pareto front", "zoo (in study)"} <= {t.get("name") for t in fig["data"]}
    pareto = at.dataframe[0].value
    assert sorted(pareto["number"]) == sorted(int(r["number"]) for r in read_results(app_results / "mob").pareto())
    first = int(pareto["number"].iloc[0])
    zoo_name = study.trials.set_index("number").loc[first].get("zoo")
    title = f"Trial {first}" + (f" ({zoo_name})" if isinstance(zoo_name, str) and zoo_name else "")
    assert [s.value for s in at.subheader][:2] == ["Pareto front", title]
    assert len(at.tabs) == 5 and at.get("graphviz_chart")
    assert {d.label for d in at.get("download_button")} == {"Arch YAML", "trials.csv"}
    stages = at.table[0].value  # per-stage table, then the measurement context
    assert list(stages.index) == ["stem", *[f"stage {i + 1}" for i in range(len(stages) - 2)], "head"]
    assert "runtime" not in set(at.table[1].value["field"])  # a counts-only study: latency not measured


def test_tiny_defaults_to_latency_against_the_estimate(app: AppTest) -> None:
    at = _choose(app.run(), "tiny")
    _ok(at)
    assert at.selectbox(key="x:tiny").value == "latency_ms" and at.selectbox(key="y:tiny").value == DEFAULT
    assert "latency (ms) on local" in json.dumps(_figure(at)["layout"]["xaxis"]["title"])


def test_axes_budgets_and_trial_selection(app: AppTest, app_results: Path) -> None:
    at = _choose(app.run(), "mob")
    at = at.selectbox(key="x:mob").set_value("macs_g").run()
    _ok(at)
    assert "MACs (G)" in json.dumps(_figure(at)["layout"]["xaxis"]["title"])
    study = data.load_study(app_results, "mob")
    _, _, step = analysis.slider_range(study, "params_m")
    smallest = float(study.trials.loc[study.trials["feasible"], "params_m"].min())
    tight = round(np.floor((smallest - 1e-9) / step) * step, 6)  # just below the smallest feasible model
    at = at.sidebar.slider(key="budget:mob:params_m").set_value(tight).run()
    _ok(at)
    limit = at.sidebar.slider(key="budget:mob:params_m").value
    want = analysis.feasible_under(study, {"params_m": limit}).sum()
    assert _metric(at, "feasible under these budgets") == str(int(want))
    assert int(want) < int(study.trials["feasible"].sum())
    assert [sh["x0"] for sh in _figure(at)["layout"]["shapes"]] == [0.6]  # x is MACs: only the MACs budget line

    at = at.number_input(key="typed:mob").set_value(3).run()
    _ok(at)
    assert "Trial 3" in [s.value for s in at.subheader]
    at = at.toggle(key="mix").set_value(False).run()
    _ok(at)


def test_onnx_download(app: AppTest) -> None:
    at = _choose(app.run(), "tiny")
    at = at.button(key="build_onnx").click().run()
    _ok(at)
    assert "ONNX model" in {d.label for d in at.get("download_button")}


def test_compare_page(app: AppTest) -> None:
    at = app.run()
    at = _choose(at.sidebar.radio(key="page").set_value("Compare").run(), "mob")
    _ok(at)
    assert len(at.multiselect(key="compare:mob").value) == 2
    table = at.dataframe[0].value
    assert list(table.columns) == [f"trial {n}" for n in at.multiselect(key="compare:mob").value]
    assert "block mix" in table.index and at.get("plotly_chart")
    at = at.multiselect(key="compare:mob").set_value([0, 1, 2]).run()
    _ok(at)
    assert len(at.dataframe[0].value.columns) == 3
    at = at.multiselect(key="compare:mob").set_value([0]).run()
    assert "Pick two or more" in at.info[0].value


def test_progress_page(app: AppTest) -> None:
    at = _choose(app.run().sidebar.radio(key="page").set_value("Progress").run(), "mob")
    _ok(at)
    fig = _figure(at)
    assert len(fig["data"]) == 3  # best log10_macs, best params, hypervolume
    assert _metric(at, "complete") == "6"


def test_zoo_page(app: AppTest) -> None:
    at = app.run().sidebar.radio(key="page").set_value("Zoo").run()
    _ok(at)
    assert len(at.dataframe[0].value) == len(designspace.zoo.names())
    assert len(at.dataframe[1].value) >= 1


def test_empty_results_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESIGNSPACE_RESULTS", str(tmp_path / "nothing"))
    at = AppTest.from_file(APP, default_timeout=60).run()
    _ok(at)
    assert "No studies" in at.info[0].value and "designspace search" in at.info[0].value


def test_empty_and_corrupt_studies(app: AppTest) -> None:
    at = _choose(app.run(), "empty")
    _ok(at)
    assert "has no trials yet" in at.info[0].value
    for page in ("Compare", "Progress"):
        at = at.sidebar.radio(key="page").set_value(page).run()
        assert not at.exception
    at = _choose(at.sidebar.radio(key="page").set_value("Trade-offs").run(), "corrupt")
    assert not at.exception and at.error and "cannot be read" in at.error[0].value


def test_missing_study_and_path_traversal(app: AppTest, app_results: Path) -> None:
    at = app.run()
    assert all(r.key != "source" for r in at.sidebar.radio)  # storages off until the operator allows some
    app.secrets["designspace"] = {"storages": {"team": f"sqlite:///{(app_results / 'mob' / 'study.db').resolve()}",
                                               "passwd": "sqlite:////etc/passwd"}}
    at = app.run()
    at = at.sidebar.radio(key="source").set_value("allowed storage").run()
    assert "Give the study name" in at.info[0].value
    assert at.sidebar.selectbox(key="storage").options == ["team", "passwd"]  # names only, never a URL field
    assert [t.key for t in at.sidebar.text_input] == ["url_study"]  # no field takes a URL
    at = at.sidebar.text_input(key="url_study").set_value("gone").run()
    assert not at.exception and "no study 'gone'" in at.error[0].value
    at = at.sidebar.text_input(key="url_study").set_value("mob").run()
    _ok(at)
    assert _metric(at, "trials") == "6"
    at = at.sidebar.selectbox(key="storage").set_value("passwd").run()
    assert not at.exception and "refusing" in at.error[0].value and "/etc/passwd" not in at.error[0].value
    at = _choose(at.sidebar.radio(key="source").set_value("results folder").run(), "evil")
    at = at.number_input(key="typed:evil").set_value(0).run()
    assert not at.exception and any("refusing" in i.value for i in at.info)
    assert not at.get("download_button")


def test_refresh_reads_a_new_snapshot(app_results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "results"
    shutil.copytree(app_results / "mob", root / "live")
    full = (root / "live" / "trials.csv").read_text(encoding="utf-8")
    (root / "live" / "trials.csv").write_text("".join(full.splitlines(keepends=True)[:4]), encoding="utf-8")
    summary = json.loads((root / "live" / "summary.json").read_text(encoding="utf-8"))  # the older snapshot's
    (root / "live" / "summary.json").write_text(json.dumps({**summary, "trials": 3}), encoding="utf-8")
    monkeypatch.setenv("DESIGNSPACE_RESULTS", str(root))
    at = AppTest.from_file(APP, default_timeout=60).run()
    _ok(at)
    assert _metric(at, "trials") == "3"
    tmp = root / "live" / ".trials.csv.tmp"  # the search's atomic replacement
    tmp.write_text(full, encoding="utf-8")
    os.replace(tmp, root / "live" / "trials.csv")
    at = at.selectbox(key="x:live").set_value("macs_g").run()
    assert _metric(at, "trials") == "3"  # the snapshot holds until Refresh
    assert "newer results" in at.sidebar.warning[0].value
    at = at.sidebar.button(key="refresh").click().run()
    _ok(at)
    assert _metric(at, "trials") == "6"
    assert not at.sidebar.warning


def test_a_table_trials_context_says_how_many_entries_were_predicted() -> None:
    row = {"latency_source": "table", "latency_table_ms": 12.5, "latency_entries_measured": 1.0,
           "latency_entries_predicted": 3.0, "latency_remeasured_ms": 12.0, "ctx_runtime": "onnxruntime"}
    got = dict(zip(*analysis.context_table(None, row).to_dict("list").values(), strict=True))  # type: ignore[arg-type]
    assert got["table entries predicted for it (not measured)"] == "3"
    assert got["table entries measured for it"] == "1"


def test_a_predicted_trials_context_is_true() -> None:
    """A trial predicted on a device: its context names the device, the source and the interval, the profile's
    fit with the leave-one-out error as a percentage; not "not measured"."""
    row = {"latency_ms": 0.875, "latency_low_ms": 0.759, "latency_high_ms": 1.012, "latency_device": "iphone13",
           "latency_source": "predicted", "latency_extrapolated": False, "latency_loo_error": 0.0514552546,
           "latency_fit_points": 35.0, "ctx_runtime": float("nan"), "device": "iphone13"}
    got = dict(zip(*analysis.context_table(None, row).to_dict("list").values(), strict=True))  # type: ignore[arg-type]
    assert got["latency"] == "0.875 ms on iphone13, predicted (interval 0.759-1.012 ms)"
    assert got["device (latency refers to)"] == "iphone13" and got["source"].startswith("predicted by the device")
    assert got["profile leave-one-out error (mean)"] == "5.1%"
    assert got["profile fitted on (published latencies)"] == "35"
    assert "runtime" not in got and "not measured" not in " ".join(got.values())
    old = {"latency_ms": 1.6, "latency_low_ms": 1.39, "latency_high_ms": 1.85, "latency_source": "predicted: iphone13",
           "latency_predicted": 1.0, "device": "iphone13"}  # a row written before LatencyEstimate
    got = dict(zip(*analysis.context_table(None, old).to_dict("list").values(), strict=True))  # type: ignore[arg-type]
    assert got["latency"] == "1.600 ms on iphone13, predicted (interval 1.390-1.850 ms)"


def test_one_name_per_axis_quantity(app_results: Path) -> None:
    for name in ("tiny", "mob"):
        study = data.load_study(app_results, name)
        metrics = analysis.axis_metrics(study)
        assert not {"params", "macs", "latency_low_ms", "latency_high_ms", "top1_lo"} & set(metrics)
        labels = [analysis.metric_label(m, study) for m in metrics]
        assert len(labels) == len(set(labels)), labels
    tiny = data.load_study(app_results, "tiny")
    assert analysis.metric_label("latency_ms", tiny) == "latency (ms) on local, measured"
    assert "a size proxy for accuracy: docs/proxies.md" in analysis.metric_label("log10_macs", tiny)
    devices = analysis.device_table()
    assert "leave-one-out error, mean (%)" in devices.columns
    assert (devices["leave-one-out error, mean (%)"] > 1).all()  # percentages (every profile is off by > 1%)


def test_latency_axis_error_bars_budget_line_and_every_infeasible_trial(app_results: Path) -> None:
    study = data.load_study(app_results, "tiny")
    limits = {**analysis.budget_limits(study), "latency_ms": 1.0}
    feas = analysis.feasible_under(study, limits)
    front = analysis.study_front(study, limits, ["latency_ms", "log10_macs"])
    fig = figures.tradeoff_figure(study, "latency_ms", "log10_macs", feas, front, None, limits)
    traces = {t.name: t for t in fig.data}
    bars = traces["latency interval (local, measured)"]
    assert bars.error_x.array is not None and len(bars.error_x.array) == int(study.trials["latency_ms"].notna().sum())
    assert [s.name for s in fig.layout.shapes] == ["budget latency_ms"]
    # every completed infeasible trial is drawn: with its latency, or at the edge where a cheaper budget broke first
    df = study.trials
    infeasible = int(((df["state"] == "COMPLETE") & ~feas).sum())
    drawn = sum(len(t.x) for name, t in traces.items() if str(name).startswith("infeasible"))
    assert drawn == infeasible
