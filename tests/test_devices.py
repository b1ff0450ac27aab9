"""The device cost model: features read from the network, the non-negative ridge fit, shipped profiles (refit
from the data files reproduces them), predictions with intervals and extrapolation flags, calibration with a
prior, and the one-line errors of bad points and profiles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import designspace as ds
from designspace._yaml import dump_yaml, load_yaml
from designspace.evaluate.costmodel import FitError, fit_cost_model
from designspace.evaluate.devices import calibrate, fit_devices, list_devices, load_device
from designspace.evaluate.devices_report import calibrate_command, device_rows, fit_command
from designspace.evaluate.features import FEATURES, component_features, network_features
from designspace.evaluate.points import load_points
from designspace.evaluate.profile import profile_doc
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
    assert not any(p.ref.startswith("t7_") for p in held.points)
    with pytest.raises(DocumentError, match="unknown points group"):
        fit_command(["iphone13"], exclude=["table8"], out=str(tmp_path))


def test_device_rows() -> None:
    rows = {r["name"]: r for r in device_rows()}
    assert rows["iphone13"]["fit"] == "cost" and 0 <= rows["iphone13"]["loo_mean"] <= rows["iphone13"]["loo_max"]
    assert set(rows["iphone13"]["coef"]) == set(FEATURES)
