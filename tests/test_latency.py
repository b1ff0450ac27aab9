"""Latency: the protocol on scripted timings, real runtimes on small models, the cache, failures, devices."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
import torch

import designspace as ds
from designspace.cli import main
from designspace.evaluate import evaluation as evaluation_mod
from designspace.evaluate.cache import Cache
from designspace.evaluate.devices import MIN_POINTS, fit, list_devices, load_device
from designspace.evaluate.evaluation import evaluate
from designspace.evaluate.latency import Context, Latency, MeasurementError, Protocol, measure, measure_model, summarize
from designspace.exceptions import DocumentError

FAST = Protocol(warmup_s=0.0, warmup_runs=1, rounds=3, round_s=0.0, round_runs=3, extra_rounds=2)

TINY = """
name: tiny_net
resolution: 32
num_classes: 10
stem: {type: iformer_stem}
stages:
  - {width: 16, blocks: [mbconv]}
  - {width: 32, downsample: conv_bn, blocks: [{type: msa, num_heads: 2}]}
head: bn_linear_head
"""


@pytest.fixture(autouse=True)
def _results_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESIGNSPACE_RESULTS", str(tmp_path / "results"))


def _scripted(times: list[float]) -> Any:
    it = itertools.chain(times, itertools.repeat(times[-1]))
    return lambda: next(it)


# ---------------------------------------------------------------------------------------------- protocol
def test_minimum_of_agreeing_rounds() -> None:
    # 1 warm-up run, then 3 rounds of 3: the host slows the second round
    rounds, warm, slow = measure(_scripted([50.0, 10.2, 10.0, 10.1, 13.0, 12.9, 13.1, 10.1, 10.3, 10.2]), FAST)
    assert warm == 1 and [len(r) for r in rounds] == [3, 3, 3] and not slow
    lat = summarize(rounds, FAST, Context.local(), 1.0)
    assert lat.ms == 10.0 and lat.flags == () and lat.spread == pytest.approx(0.01)


def test_disagreeing_rounds_are_remeasured_then_flagged() -> None:
    # one lucky round: the two fastest rounds disagree, two extra rounds are measured, still no agreement
    times = [50.0, 8.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0] + [10.0] * 6
    rounds, _, _ = measure(_scripted(times), FAST)
    assert len(rounds) == FAST.rounds + FAST.extra_rounds
    lat = summarize(rounds, FAST, Context.local(), 1.0)
    assert lat.ms == 8.0 and "unconfirmed" in lat.flags


def test_slow_host_is_remeasured_then_flagged() -> None:
    from designspace.evaluate import latency

    latency._PROBE_BEST[0] = 1.0  # the process once saw the probe at 1 ms; now it takes 1.3 ms
    times = [50.0] + [10.0] * 20
    rounds, _, slow = measure(_scripted(times), FAST, probe=lambda: 1.3)
    assert slow and len(rounds) == FAST.rounds + FAST.extra_rounds
    assert "slow-host" in summarize(rounds, FAST, Context.local(), 1.0, slow).flags
    rounds, _, slow = measure(_scripted(times), FAST, probe=lambda: 1.02)  # within the threshold
    assert not slow and len(rounds) == FAST.rounds
    latency._PROBE_BEST[0] = float("inf")


def test_noisy_flag() -> None:
    rounds = [[10.0, 13.0, 13.0], [10.1, 13.0, 13.0], [10.2, 13.0, 13.0]]
    lat = summarize(rounds, FAST, Context.local(), 1.0)
    assert lat.flags == ("noisy",) and lat.median_ms == 13.0


def test_timeout_is_a_measurement_error() -> None:
    with pytest.raises(MeasurementError, match="timeout"):
        measure(_scripted([20_000.0]), Protocol(run_timeout_s=1.0))


def test_context() -> None:
    ctx = Context.local("onnxruntime", threads=1, batch=1, resolution=224)
    assert ctx.key() == Context.local("onnxruntime", 1, 1, 224).key()
    assert ctx.key() != Context.local("onnxruntime", 2, 1, 224).key()
    assert "1 thread" in ctx.describe() and "onnxruntime" in ctx.describe()
    with pytest.raises(MeasurementError, match="unknown runtime"):
        Context.local("tensorrt")
    lat = Latency(1.0, 1.1, 0.01, 10, 3, ("noisy",), 0.5, ctx)
    assert Latency.from_dict(json.loads(json.dumps(lat.to_dict()))) == lat


# ---------------------------------------------------------------------------------------------- runtimes
@pytest.mark.parametrize("runtime", ["onnxruntime", "torch"])
def test_real_runtimes(runtime: str) -> None:
    arch = ds.Arch.from_yaml(TINY)
    lat = measure_model(ds.build_model(arch), Context.local(runtime, 1, 1, arch.resolution), FAST)
    assert 0 < lat.ms <= lat.median_ms and lat.runs >= 9
    assert torch.get_num_threads() >= 1  # restored


def test_cuda_without_gpu_is_a_clear_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(MeasurementError, match="needs a GPU"):
        evaluate(ds.Arch.from_yaml(TINY), runtime="cuda", protocol=FAST)


# ---------------------------------------------------------------------------------------------- evaluate
def test_evaluate_measures_once_then_caches(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = []
    real = evaluation_mod.measure_model

    def counting(*args: Any, **kwargs: Any) -> Latency:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluation_mod, "measure_model", counting)
    cache = Cache(tmp_path / "c.sqlite")
    first = evaluate(ds.Arch.from_yaml(TINY), protocol=FAST, cache=cache)
    second = evaluate(ds.Arch.from_yaml(TINY), protocol=FAST, cache=cache)
    assert first.status == "ok" and len(calls) == 1
    assert second.latency == first.latency and second.latency_ms == first.latency_ms
    assert first.params == ds.count(ds.Arch.from_yaml(TINY)).params


def test_failed_export_is_a_failed_evaluation(monkeypatch: pytest.MonkeyPatch) -> None:
    from designspace.evaluate import onnx as onnx_mod

    def broken(*args: Any, **kwargs: Any) -> bytes:
        raise ds.DesignspaceError("ONNX export failed: RuntimeError: unsupported operator")

    monkeypatch.setattr(onnx_mod, "export_onnx", broken)
    ev = evaluate(ds.Arch.from_yaml(TINY), protocol=FAST, cache=False)
    assert ev.status == "failed" and "ONNX export failed" in ev.reason and ev.latency is None
    assert ev.params > 0  # the counts are still there


def test_timeout_is_a_failed_evaluation() -> None:
    ev = evaluate(ds.Arch.from_yaml(TINY), protocol=Protocol(run_timeout_s=1e-9), cache=False)
    assert ev.status == "failed" and ev.reason.startswith("timeout")


# ---------------------------------------------------------------------------------------------- devices
def test_fit_forms_and_leave_one_out() -> None:
    xs = [1.0, 2.0, 4.0, 8.0]
    f = fit(xs, [2 * x for x in xs])
    assert f.form == "proportional" and f.loo_mean < 1e-9 and f.predict(3.0) == pytest.approx(6.0)
    f = fit(xs, [1 + 2 * x for x in xs])
    assert f.form == "affine" and f.loo_max < 1e-9
    f = fit(xs, [3 * x**0.5 for x in xs])
    assert f.form == "power" and f.predict(16.0) == pytest.approx(12.0)
    noisy = fit(xs, [2.0, 4.4, 7.6, 16.4], form="proportional")
    assert 0.02 < noisy.loo_mean < 0.2
    with pytest.raises(ValueError, match=f"at least {MIN_POINTS}"):
        fit([1.0, 2.0], [1.0, 2.0])


def test_shipped_profiles() -> None:
    names = {d.name for d in list_devices()}
    assert {"iphone13", "iphone14", "p100", "xeon-e5-2680-4t"} <= names
    iphone13 = load_device("iphone13")
    assert dict(iphone13.points)["iformer_m"] == 1.10 and len(iphone13.points) == 8
    for prof in list_devices():
        assert prof.calibration is not None, f"{prof.name} ships without its calibration"
        assert {m for m, _ in prof.points} == {m for m, _ in prof.calibration.local_ms}


def _profile(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "dev.yaml"
    path.write_text(body)
    return path


P2 = "{mobilenetv2_100: 1.0, iformer_t: 2.0"


@pytest.mark.parametrize(("body", "text"), [
    (f"name: d\npoints: {P2}}}\n", "dev.yaml:2: points: 2 point(s): a profile needs at least 3"),
    (f"name: d\npoints: {P2}, mobilenet: 3.0}}\n", "dev.yaml:2: points.mobilenet: 'mobilenet' is not a zoo model"),
    ("name: d\npoints: {mobilenetv2_100: 1.0, iformer_t: -2.0, emo_1m: 3.0}\n",
     "points.iformer_t: latency must be a positive number"),
    ("name: d\nfitt: auto\n", "dev.yaml:2: fitt: unknown field 'fitt'"),
    ("name: d\nlocal: {runtime: tvm}\npoints: {}\n", "local.runtime: unknown runtime 'tvm'"),
])
def test_bad_profiles(tmp_path: Path, body: str, text: str) -> None:
    with pytest.raises(DocumentError) as info:
        load_device(str(_profile(tmp_path, body)))
    assert text in str(info.value)


def test_bad_device_name_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "emo_1m", "--device", "iphone15"]) == 2
    err = capsys.readouterr().err
    assert "unknown device 'iphone15'" in err and "did you mean 'iphone14'" in err
    assert len(err.strip().splitlines()) == 1


def test_too_few_points_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _profile(tmp_path, "name: d\npoints: {mobilenetv2_100: 1.0, iformer_t: 2.0}\n")
    assert main(["eval", "emo_1m", "--device", str(path)]) == 2
    assert "a profile needs at least 3" in capsys.readouterr().err


def _fake_latency(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deterministic local latencies: 10 ms per GMAC."""

    def fake(arch: ds.Arch, context: Context, **kwargs: Any) -> Latency:
        return Latency(ds.count(arch).macs_g * 10.0, 0.0, 0.0, 1, 1, (), 0.0, context)

    monkeypatch.setattr(evaluation_mod, "measure_latency", fake)


def test_calibrate_a_new_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    _fake_latency(monkeypatch)
    out = tmp_path / "phone.yaml"
    argv = ["calibrate", "phone", "--point", "mobilenetv2_100=3.0", "--point", "iformer_t=5.0", "--point",
            "emo_1m=2.5", "--point", "iformer_m=15.0", "--out", str(out), "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["file"] == str(out) and len(report["points"]) == 4
    prof = load_device(str(out))
    assert prof.calibration is not None
    assert dict(prof.calibration.local_ms)["iformer_t"] == pytest.approx(5.38, abs=1e-3)
    before = out.read_text()
    assert main(argv) == 2  # never replaces a saved profile without --force
    assert "already exists" in capsys.readouterr().err and out.read_text() == before
    ev = evaluate("emo_2m", device=str(out))
    assert ev.prediction is not None and ev.prediction.fit.points == 4


def test_eval_cli_with_device(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _fake_latency(monkeypatch)
    assert main(["eval", "iformer_m", "--device", "iphone13"]) == 0
    out = capsys.readouterr().out
    assert "iphone13" in out and "PREDICTED" in out and "leave-one-out error" in out
    assert main(["eval", "iformer_m", "--device", "iphone13", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["prediction"]["label"] == "predicted" and data["prediction"]["points"] == 8
    assert data["latency_ms"] == data["prediction"]["ms"]


def test_devices_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["devices", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} >= {"iphone13", "p100"}
    for row in rows:  # the shipped calibration gives every profile an error without measuring
        assert row["loo_mean"] >= 0 and row["calibration"].startswith("shipped")


def test_eval_cli_measures(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    assert main(["eval", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == "ok" and data["latency"]["ms"] > 0 and data["latency"]["context"]["threads"] == 1
