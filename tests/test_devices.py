"""The device cost model: features read from the network, the non-negative ridge fit, shipped profiles (refit
from the data files reproduces them), predictions with intervals and extrapolation flags, calibration with a
prior, and the one-line errors of bad points and profiles."""

from __future__ import annotations

import csv
import dataclasses
import itertools
import math
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

import designspace as ds
from designspace._yaml import dump_yaml, load_yaml
from designspace.cli import main
from designspace.evaluate.devices.costmodel import FitError, fit_cost_model
from designspace.evaluate.devices.document import Prediction, profile_doc
from designspace.evaluate.devices.features import FEATURES, component_features, network_features
from designspace.evaluate.devices.profiles import calibrate, fit_devices, list_devices, load_device
from designspace.evaluate.devices.report import calibrate_command, device_rows, fit_command
from designspace.evaluate.points import load_points
from designspace.exceptions import DocumentError


@pytest.fixture(autouse=True)
def _results_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESIGNSPACE_RESULTS", str(tmp_path / "results"))


# ---------------------------------------------------------------------------------------------- features
def test_features_follow_the_ops() -> None:
    conv = network_features(ds.load_arch("mobilenetv2_100"))
    assert conv["attn_gmacs"] == conv["softmax_melems"] == conv["heads"] == conv["norm_melems"] == 0.0
    c = ds.count(ds.load_arch("mobilenetv2_100")).by_category()
    assert conv["conv_gmacs"] + conv["pw_gmacs"] + conv["dw_gmacs"] == pytest.approx((c["conv"] + c["linear"]) / 1e9)
    assert conv["weight_mb"] == pytest.approx(2 * ds.count(ds.load_arch("mobilenetv2_100")).params / 1e6, rel=0.01)
    pts = {p.id: p.arch for p in load_points(["iformer_roadmap"])}
    mha, sha = network_features(pts["r6_mha"]), network_features(pts["r7_sha"])
    assert mha["attn_gmacs"] == pytest.approx(sha["attn_gmacs"])  # heads change the reshapes, not the MACs
    assert mha["heads"] == 6 * 4 + 12 * 2 and sha["heads"] == 6
    assert mha["layout_mb"] > sha["layout_mb"]
    ln, bn = network_features(pts["r2_conv_stem"]), network_features(pts["r3_bn_overlap"])
    # LayerNorm does not fold; BatchNorm after a conv does (left: the head's BatchNorm1d on 384 pooled values)
    assert ln["norm_melems"] > 0.5 and bn["norm_melems"] == pytest.approx(384 / 1e6)
    parts = component_features(ds.load_arch("iformer_t"))
    assert next(iter(parts)) == "stem" and parts["network"]["const"] == 1.0
    assert sum(f["ops"] for f in parts.values()) == network_features(ds.load_arch("iformer_t"))["ops"]


@pytest.mark.parametrize("name", ["zoo:" + n for n in ds.zoo.names()] + ["point:" + p.id for p in load_points()
                                                                        if p.group != "zoo"])
def test_feature_macs_and_weights_equal_the_analytic_counts(name: str) -> None:
    """Every block family, through the op trace, gives the MACs and parameters the analytic counter gives."""
    kind, _, ref = name.partition(":")
    arch = ds.load_arch(ref) if kind == "zoo" else {p.id: p.arch for p in load_points()}[ref]
    f, c = network_features(arch), ds.count(arch)
    cat = c.by_category()
    assert f["conv_gmacs"] + f["pw_gmacs"] + f["dw_gmacs"] == pytest.approx((cat["conv"] + cat["linear"]) / 1e9)
    assert f["attn_gmacs"] == pytest.approx(cat.get("matmul", 0) / 1e9, abs=1e-12)
    assert f["weight_mb"] == pytest.approx(2 * c.params / 1e6)


# ---------------------------------------------------------------------------------------------- the fit
def test_fit_recovers_a_non_negative_linear_cost() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 2.0, size=(20, 4))
    theta = np.array([0.3, 0.0, 1.2, 0.5])
    model = fit_cost_model(x, x @ theta, ["a", "b", "c", "d"])
    assert all(c >= 0 for c in model.coef)
    assert max(model.loo_errors) < 0.03
    lo, hi = model.interval(1.0)
    assert lo <= 1.0 <= hi
    with pytest.raises(FitError, match="at least 3"):
        fit_cost_model(x[:2], (x @ theta)[:2], ["a", "b", "c", "d"])
    with pytest.raises(FitError, match="4 features"):
        fit_cost_model(x[:3], (x @ theta)[:3], ["a", "b", "c", "d"])
    with pytest.raises(FitError, match="positive"):
        fit_cost_model(x, -(x @ theta), ["a", "b", "c", "d"])


# ---------------------------------------------------------------------------------------------- profiles
def test_shipped_profiles_are_fitted_on_the_points() -> None:
    profiles = {p.name: p for p in list_devices()}
    assert {"iphone13", "iphone14", "p100", "xeon-e5-2680-4t"} <= set(profiles)
    ip = profiles["iphone13"]
    refs = {p.ref for p in ip.points}
    assert {"iformer_m", "mobilenetv2_100", "r1_convnext", "t7_baseline", "t6_silu_preln"} <= refs
    assert ip.model is not None and all(c >= 0 for c in ip.model.coef) and ip.summary.loo_mean < 0.2
    assert profiles["iphone14"].prior == "iphone13" and {p.ref for p in profiles["iphone14"].points} == {
        "emo_1m", "emo_2m", "emo_5m"}


def test_refitting_reproduces_the_shipped_profiles() -> None:
    for again in fit_devices(write=False):  # the priors (iphone13) first, then the devices fitted towards them
        assert dump_yaml(profile_doc(again)) == dump_yaml(profile_doc(load_device(again.name))), again.name


def test_prediction_is_a_sum_over_components_with_an_interval() -> None:
    prof = load_device("iphone13")
    pred = prof.predict(ds.load_arch("iformer_m"))
    assert sum(ms for _, ms in pred.components) == pytest.approx(pred.ms)
    assert pred.components[0][0] == "stem" and pred.components[-1][0] == "network"
    assert pred.low <= pred.ms <= pred.high and not pred.extrapolated
    assert abs(pred.ms - 1.10) / 1.10 < 0.1  # a fitted point
    big = prof.predict(ds.load_arch("smt_l"))
    assert big.extrapolated and big.outside


def _bad(tmp_path: Path, text: str) -> str:
    path = tmp_path / "dev.yaml"
    path.write_text(text)
    with pytest.raises(DocumentError) as err:
        load_device(str(path))
    msg = str(err.value)
    assert "\n" not in msg and "fix:" in msg and str(path) in msg
    return msg


@pytest.mark.parametrize(("body", "needle"), [
    ("name: d\nfeatures: [conv_gmacs, flops]\npoints: [{id: iformer_m, ms: 1.1}]\n", "unknown feature 'flops'"),
    ("name: d\npoints: [{id: no_such_point, ms: 1.1}]\n", "unknown point 'no_such_point'"),
    ("name: d\npoints: [{arch: nowhere.yaml, ms: 1.1}]\n", "nowhere.yaml"),
    ("name: d\npoints: [{id: iformer_m, ms: -1}]\n", "ms must be a positive number"),
    ("name: d\nfitt: 1\npoints: []\n", "unknown field 'fitt'"),
    ("name: d\ncolumn: iphone15\npoints: [{id: iformer_m, ms: 1}]\n", "unknown latency column"),
])
def test_bad_profiles(tmp_path: Path, body: str, needle: str) -> None:
    assert needle in _bad(tmp_path, body)


def test_fitted_profile_with_fewer_points_than_features(tmp_path: Path) -> None:
    doc, _ = load_yaml(Path(load_device("iphone13").file).read_text())
    doc["points"] = doc["points"][:5]
    msg = _bad(tmp_path, dump_yaml(doc))
    assert "5 points for" in msg and "prior" in msg


@pytest.mark.parametrize(("field", "value", "needle"), [
    ("ranges", {"conv_gmacs": 5}, "the range of conv_gmacs must be [low, high]"),
    ("ranges", {"conv_gmacs": [1]}, "the range of conv_gmacs must be [low, high]"),
    ("ranges", {"conv_gmacs": ["a", "b"]}, "conv_gmacs's range must be a non-negative number, got 'a'"),
    ("ranges", [[0, 1]], "fit must map"),
    ("lambda", "abc", "lambda must be a non-negative number, got 'abc'"),
])
def test_fitted_profile_with_a_malformed_fit(tmp_path: Path, field: str, value: object, needle: str) -> None:
    # a hand-edited fit is refused in one line, never an internal error
    doc, _ = load_yaml(Path(load_device("p100").file).read_text())
    if isinstance(value, dict):
        doc["fit"][field].update(value)
    else:
        doc["fit"][field] = value
    assert needle in _bad(tmp_path, dump_yaml(doc))


# ---------------------------------------------------------------------------------------------- calibration
ZOO10 = ["mobilenetv2_100", "mobilenetv2_140", "efficientmod_xxs", "efficientmod_s", "iformer_t", "iformer_s",
         "iformer_m", "iformer_l", "emo_1m", "mobilenetv3_large_100"]


def test_calibrate_with_a_prior_from_ten_points(tmp_path: Path) -> None:
    ip = load_device("iphone13")
    # a phone exactly 1.6x slower than the iPhone 13 model: the prior's shape, a new scale
    points = [(n, round(1.6 * ip.predict(ds.load_arch(n)).ms, 4)) for n in ZOO10]
    prof = calibrate("phone", points, prior="iphone13")
    assert [p.ref for p in prof.points] == ZOO10 and all(p.loo_ms is not None for p in prof.points)
    assert prof.summary.loo_max < 0.05
    new = prof.predict(ds.load_arch("emo_2m")).ms
    assert new == pytest.approx(1.6 * ip.predict(ds.load_arch("emo_2m")).ms, rel=0.05)
    out = tmp_path / "phone.yaml"
    report = calibrate_command("phone", points=[f"{n}={ms}" for n, ms in points], out=str(out))
    assert report["file"] == str(out) and len(load_device(str(out)).points) == 10
    before = out.read_text()
    with pytest.raises(DocumentError, match="already exists"):
        calibrate_command("phone", points=[f"{n}={ms}" for n, ms in points], out=str(out))
    assert out.read_text() == before


@pytest.mark.parametrize(("points", "needle"), [
    (["iformer_t=0.6", "nowhere.yaml=1.0", "emo_1m=1.0"], "nowhere.yaml"),
    (["iformer_t=0.6", "iformer_m=0", "emo_1m=1.0"], "positive number"),
    (["iformer_t=fast"], "is not ARCH=MS"),
    (["iformer_t=0.6", "iformer_m=1.1"], "at least 3"),
])
def test_bad_calibration_points_write_nothing(tmp_path: Path, points: list[str], needle: str) -> None:
    out = tmp_path / "p.yaml"
    with pytest.raises(DocumentError) as err:
        calibrate_command("p", points=points, out=str(out))
    assert needle in str(err.value) and "fix:" in str(err.value) and "\n" not in str(err.value)
    assert not out.exists()


def test_points_file_and_no_prior(tmp_path: Path) -> None:
    f = tmp_path / "pts.csv"
    f.write_text("arch,ms\niformer_t,0.6\niformer_m,1.1\nemo_1m,0.9\n")
    with pytest.raises(DocumentError, match="3 points for") as err:
        calibrate_command("p", points=[], points_file=str(f), prior=None, out=str(tmp_path / "p.yaml"))
    assert str(f) in str(err.value)


def test_fit_command_exclude(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match="--out"):
        fit_command(["iphone13"], exclude=["iformer_table7"])
    rows = fit_command(["iphone13"], exclude=["iformer_table7"], out=str(tmp_path))
    held = load_device(str(tmp_path / "iphone13.yaml"))
    assert rows[0]["exclude"] == ["iformer_table7"] and held.exclude == ("iformer_table7",)
    assert rows[0]["file"] == str(tmp_path / "iphone13.yaml")  # where it was written, not the shipped file
    assert fit_command(["p100"], dry_run=True)[0]["file"] == ""  # a dry run wrote nothing
    assert not any(p.ref.startswith("t7_") for p in held.points)
    with pytest.raises(DocumentError, match="unknown points group"):
        fit_command(["iphone13"], exclude=["table8"], out=str(tmp_path))


def test_device_rows() -> None:
    rows = {r["name"]: r for r in device_rows()}
    assert rows["iphone13"]["fit"] == "cost" and 0 <= rows["iphone13"]["loo_mean"] <= rows["iphone13"]["loo_max"]
    assert set(rows["iphone13"]["coef"]) == set(FEATURES)


# ---------------------------------------------------------------------------------------------- intervals
def _width(pred: Prediction) -> float:
    return (pred.high - pred.low) / pred.ms


def test_interval_widens_monotonically_as_resolution_grows_past_the_data() -> None:
    ip = load_device("iphone13")
    conv = ds.load_arch("mobilenetv2_100")
    preds = [ip.predict(dataclasses.replace(conv, resolution=r)) for r in (224, 320, 384, 512, 640, 768, 1024)]
    assert not any(p.refusal for p in preds)
    widths = [_width(p) for p in preds]
    assert all(a < b for a, b in itertools.pairwise(widths)), widths
    assert widths[-1] > 2 * widths[0]  # a conv net at 1024 px: over twice as uncertain as at 224
    # EfficientMod-S on the iPhone 13 (fitted without iFormer's 512-px points, which it holds out as a check): wider
    # and wider, then refused where its 1024-token attention matrices (2.1 MB a head) exceed every fitted point's
    assert ip.exclude == ("iformer_table5",)
    emod = ds.load_arch("efficientmod_s")
    preds = [ip.predict(dataclasses.replace(emod, resolution=r)) for r in (224, 288, 320, 384, 448, 512)]
    given = [p for p in preds if not p.refusal]
    assert len(given) == 4 and all(p.low < p.ms < p.high for p in given)
    widths = [_width(p) for p in given]
    assert all(a < b for a, b in itertools.pairwise(widths)), widths
    assert all(p.refusal for p in preds[len(given):])


def test_efficientmod_s_at_512_px_gets_the_published_figure_or_a_refusal() -> None:
    point = {p.id: p for p in load_points(["iformer_table5"])}["t5_efficientmod_s_512"]
    assert point.latency_ms == {"iphone13": 24.3} and point.arch.resolution == 512  # iFormer's Table 5
    held = load_device("iphone13").predict(point.arch)  # the shipped profile holds Table 5 out: a check, not data
    assert held.refusal and "softmax_spill_melems" in held.refusal and "say nothing" in held.refusal
    assert held.low == 0.0 and math.isinf(held.high) and held.extrapolated
    assert held.to_dict()["high_ms"] is None and held.to_dict()["refusal"] == held.refusal


def test_interval_in_range_is_the_leave_one_out_residuals() -> None:
    ip = load_device("iphone13")
    m = ip.model
    assert m is not None and m.scores is not None
    q_lo, q_hi, tau = m.scores
    pred = ip.predict(ds.load_arch("iformer_m"))
    assert pred.low < pred.ms < pred.high and not pred.refusal
    # in range the coefficients' spread adds little: the interval is within 25% of the bare residual band
    bare_lo, bare_hi = pred.ms * math.exp(q_lo), pred.ms * math.exp(q_hi)
    assert bare_lo >= pred.low and bare_hi <= pred.high
    assert (pred.high - pred.low) < 1.25 * (bare_hi - bare_lo)
    assert tau == pytest.approx(math.sqrt(np.mean(np.log1p(np.array(m.residuals)) ** 2)), rel=1e-3)


def test_spill_feature_tells_1024_tokens_from_196() -> None:
    emod = ds.load_arch("efficientmod_s")
    small, big = (network_features(dataclasses.replace(emod, resolution=r)) for r in (224, 512))
    assert small["softmax_melems"] > 0 and small["softmax_spill_melems"] == 0.0  # 196 x 196 = 0.08 MB a head
    assert big["softmax_spill_melems"] == pytest.approx(4 * 8 * 1024 * 1024 / 1e6)  # 4 blocks x 8 heads x 1024^2
    assert network_features(ds.load_arch("mobilenetv4_hybrid_large"))["softmax_spill_melems"] == 0.0  # 576 x 144


# ---------------------------------------------------------------------------------------------- MobileNetV4 phones
MNV4 = ("pixel6-cpu", "pixel8-edgetpu", "pixel4-dsp", "pixel7-gpu", "s23-cpu", "s23-gpu")


def test_mobilenetv4_paper_profiles() -> None:
    pts = load_points(["mnv4_table6"])
    assert not any("iphone13" in p.latency_ms for p in pts)  # the paper's iPhone 13 column is a reserved check
    assert {p.arch.name for p in pts} >= {"mobilenetv2_050", "mobilenetv2_150", "mobilenetv2_200", "mobilenetv1_100",
                                          "mobileone_s0", "mobilenetv3_large_050", "convnext_s",
                                          "mobilenetv4_hybrid_large"}
    for name in MNV4:
        prof = load_device(name)
        assert prof.column == name and prof.groups == ("mnv4_table6",) and "Table 6" in prof.source
        assert ("INT8" in prof.description) != ("FP16" in prof.description) and "TFLite" in prof.description
        assert len(prof.points) >= 8 and all(p.ref.startswith("mnv4_t6_") for p in prof.points)
        assert prof.model is not None and prof.model.scores is not None and prof.summary.loo_mean < 0.5
        pred = prof.predict(ds.load_arch("mobilenetv4_conv_medium"))
        assert pred.low <= pred.ms <= pred.high and not pred.refusal
    # the Hexagon DSP column prints no hybrid and no ConvNeXt: 10 points of 13
    assert len(load_device("pixel4-dsp").points) == 10 and len(load_device("s23-gpu").points) == 13
    assert load_device("pixel8-edgetpu").predict(ds.load_arch("mobilenetv4_hybrid_large")).ms == pytest.approx(
        3.8, rel=0.15)


def test_search_on_a_new_device(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "tiny", "--trials", "3", "--device", "pixel8-edgetpu", "--objective", "latency",
                 "--objective", "params", "--no-progress"]) == 0
    with (tmp_path / "results" / "tiny" / "trials.csv").open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["latency_ms"]]
    assert rows and all(r["latency_device"] == "pixel8-edgetpu" and r["latency_source"] == "predicted" for r in rows)


def _shipped_bytes() -> dict[str, bytes]:
    root = resources.files("designspace.devices")
    return {e.name: e.read_bytes() for e in root.iterdir() if e.name.endswith(".yaml")}


@pytest.mark.parametrize(("argv", "needle"), [
    (["fit-devices", "pixel9-tpu"], "unknown shipped device 'pixel9-tpu'"),
    (["fit-devices", "--exclude", "mnv4_table7", "--dry-run"], "unknown points group 'mnv4_table7'"),
    (["search", "tiny", "--trials", "2", "--device", "pixel8-tpu", "--objective", "latency"],
     "unknown device 'pixel8-tpu'"),
    (["calibrate", "phone", "--point", "mobilenetv2_100=0.7", "--point", "nowhere.yaml=1", "--point",
      "iformer_t=0.6", "--prior", "pixel8-edgetpu"], "nowhere.yaml"),
    (["calibrate", "phone", "--point", "mobilenetv2_100=0.7", "--point", "iformer_m=-1", "--point", "iformer_t=0.6",
      "--prior", "s23-gpu"], "positive number"),
])
def test_bad_points_or_devices_one_line_exit_2_nothing_written(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                               argv: list[str], needle: str) -> None:
    before = _shipped_bytes()
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "fix" in err
    assert _shipped_bytes() == before
    assert not (tmp_path / "results" / "devices").exists()


def test_the_benchmarks_local_map_baseline_fits_its_forms() -> None:
    """The local-latency maps the cost model replaced, kept beside ``bench_devices.py`` as its baseline."""
    import importlib.util
    import sys

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "local_map.py"
    spec = importlib.util.spec_from_file_location("local_map", path)
    assert spec is not None and spec.loader is not None
    local_map = importlib.util.module_from_spec(spec)
    sys.modules["local_map"] = local_map  # its dataclass looks its module up there
    try:
        spec.loader.exec_module(local_map)
    finally:
        del sys.modules["local_map"]
    fit = local_map.fit
    xs = [1.0, 2.0, 4.0, 8.0]
    f = fit(xs, [2 * x for x in xs])
    assert f.form == "proportional" and f.loo_mean < 1e-9 and f.predict(3.0) == pytest.approx(6.0)
    f = fit(xs, [1 + 2 * x for x in xs])
    assert f.form == "affine" and f.loo_max < 1e-9
    f = fit(xs, [3 * x**0.5 for x in xs])
    assert f.form == "power" and f.predict(16.0) == pytest.approx(12.0)
    noisy = fit(xs, [2.0, 4.4, 7.6, 16.4], form="proportional")
    assert 0.02 < noisy.loo_mean < 0.2
    with pytest.raises(ValueError, match=f"at least {local_map.MIN_POINTS}"):
        fit([1.0, 2.0], [1.0, 2.0])
