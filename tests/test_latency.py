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
from designspace.evaluate.cache import Cache
from designspace.evaluate.evaluation import evaluate
from designspace.evaluate.measure import cached as cached_mod
from designspace.evaluate.measure.latency import Context, Latency, MeasurementError, Protocol
from designspace.evaluate.measure.timing import measure, measure_model, summarize

FAST = Protocol(warmup_s=0.0, rounds=3, round_s=0.0, min_runs=3, extra=2)

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
    # 3 warm-up runs, then 3 rounds of 3: the host slows the second round
    rounds, warm = measure(_scripted([50.0, 40.0, 30.0, 10.2, 10.0, 10.1, 13.0, 12.9, 13.1, 10.1, 10.3, 10.2]), FAST)
    assert warm == 3 and [len(r) for r in rounds] == [3, 3, 3]
    lat = summarize(rounds, FAST, Context.local(), 1.0)
    assert lat.ms == 10.0 and lat.flags == () and lat.spread == pytest.approx(0.01)


def test_disagreeing_rounds_are_remeasured_then_flagged() -> None:
    # one lucky round: the two fastest rounds disagree, two extra rounds are measured, still no agreement
    times = [50.0, 40.0, 30.0, 8.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0] + [10.0] * 6
    rounds, _ = measure(_scripted(times), FAST)
    assert len(rounds) == FAST.rounds + FAST.extra
    lat = summarize(rounds, FAST, Context.local(), 1.0)
    assert lat.ms == 8.0 and "unconfirmed" in lat.flags


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
    outside = torch.get_num_threads()
    torch.set_num_threads(3)  # not the measurement's 1 thread, so a missing restore shows
    try:
        lat = measure_model(ds.build_model(arch), Context.local(runtime, 1, 1, arch.resolution), FAST)
        assert torch.get_num_threads() == 3  # restored to exactly what it was
    finally:
        torch.set_num_threads(outside)
    assert 0 < lat.ms <= lat.median_ms and lat.runs >= 9


def test_cuda_without_gpu_is_a_clear_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(MeasurementError, match="needs a GPU"):
        evaluate(ds.Arch.from_yaml(TINY), runtime="cuda", protocol=FAST)


# ---------------------------------------------------------------------------------------------- evaluate
def test_evaluate_measures_once_then_caches(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = []
    real = cached_mod.measure_model

    def counting(*args: Any, **kwargs: Any) -> Latency:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(cached_mod, "measure_model", counting)
    cache = Cache(tmp_path / "c.sqlite")
    first = evaluate(ds.Arch.from_yaml(TINY), protocol=FAST, cache=cache)
    second = evaluate(ds.Arch.from_yaml(TINY), protocol=FAST, cache=cache)
    assert first.status == "ok" and len(calls) == 1
    assert second.latency == first.latency and second.latency_ms == first.latency_ms
    assert first.params == ds.count(ds.Arch.from_yaml(TINY)).params


def test_failed_export_is_a_failed_evaluation(monkeypatch: pytest.MonkeyPatch) -> None:
    from designspace.evaluate.measure import onnx as onnx_mod

    def broken(*args: Any, **kwargs: Any) -> bytes:
        raise ds.DesignspaceError("ONNX export failed: RuntimeError: unsupported operator")

    monkeypatch.setattr(onnx_mod, "export_onnx", broken)
    ev = evaluate(ds.Arch.from_yaml(TINY), protocol=FAST, cache=False)
    assert ev.status == "failed" and "ONNX export failed" in ev.reason and ev.latency is None
    assert ev.params > 0  # the counts are still there


def test_timeout_is_a_failed_evaluation() -> None:
    ev = evaluate(ds.Arch.from_yaml(TINY), protocol=Protocol(run_timeout_s=1e-9), cache=False)
    assert ev.status == "failed" and ev.reason.startswith("timeout")


def test_bad_device_name_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "emo_1m", "--device", "iphone15"]) == 2
    err = capsys.readouterr().err
    assert "unknown device 'iphone15'" in err and "did you mean 'iphone14'" in err
    assert len(err.strip().splitlines()) == 1


def _fake_latency(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deterministic local latencies: 10 ms per GMAC."""

    def fake(arch: ds.Arch, context: Context, **kwargs: Any) -> Latency:
        return Latency(ds.count(arch).macs_g * 10.0, 0.0, 0.0, 1, 1, (), 0.0, context)

    monkeypatch.setattr(cached_mod, "measure_latency", fake)


def test_eval_cli_with_device(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _fake_latency(monkeypatch)
    assert main(["eval", "iformer_m", "--device", "iphone13"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    predicted = next(i for i, line in enumerate(lines) if line.startswith("latency on iphone13, predicted: "))
    measured = next(i for i, line in enumerate(lines) if line.startswith("latency on local, measured: "))
    assert predicted < measured and "interval" in lines[predicted] and "leave-one-out error" in lines[predicted]
    # iFormer-M is a published point of the iPhone 13 (1.10 ms, iFormer's Table 3) and its profile's fit
    assert "latency on iphone13, published: 1.100 ms" in out and "in the fit" in out
    assert main(["eval", "iformer_m", "--device", "iphone13", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["prediction"]["label"] == "predicted" and data["prediction"]["points"] >= 30
    assert data["latency_ms"] == data["prediction"]["ms"]
    assert data["latency_low_ms"] < data["latency_ms"] < data["latency_high_ms"]
    assert data["latency_extrapolated"] is False


def test_eval_no_measure_gives_the_device_figure_alone(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Latency:
        raise AssertionError("--no-measure measured")

    monkeypatch.setattr(cached_mod, "measure_latency", refuse)
    assert main(["eval", "iformer_m", "--device", "iphone13", "--no-measure"]) == 0
    out = capsys.readouterr().out
    assert "latency on iphone13, predicted: " in out and "latency on local" not in out
    assert main(["eval", "iformer_m", "--device", "iphone13", "--no-measure", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["estimate"]["device"] == "iphone13" and data["estimate"]["source"] == "predicted"
    assert data["measured"] is None and data["published"]["in_fit"] is True
    assert main(["eval", "iformer_m", "--no-measure"]) == 2  # nothing to give without a device


def test_eval_cli_measures(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    assert main(["eval", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == "ok" and data["latency"]["ms"] > 0 and data["latency"]["context"]["threads"] == 1


@pytest.mark.parametrize("poison", ["-5", "NaN", '"fast"'])
def test_a_poisoned_cached_latency_is_dropped_and_measured_again(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture, poison: str) -> None:
    import sqlite3

    calls = []
    real = cached_mod.measure_model

    def counting(*args: Any, **kwargs: Any) -> Latency:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(cached_mod, "measure_model", counting)
    cache = Cache(tmp_path / "c.sqlite")
    arch = ds.Arch.from_yaml(TINY)
    evaluate(arch, protocol=FAST, cache=cache)
    db = sqlite3.connect(cache.path)  # a row of valid structure whose latency is not a latency
    (data,) = db.execute("SELECT data FROM results WHERE kind = 'latency'").fetchone()
    db.execute("UPDATE results SET data = ? WHERE kind = 'latency'",
               (data.replace(f'"ms": {json.loads(data)["ms"]}', f'"ms": {poison}', 1),))
    db.commit()
    db.close()
    caplog.clear()
    again = evaluate(arch, protocol=FAST, cache=cache)
    assert len(calls) == 2  # measured again, never trusted
    assert again.status == "ok" and again.latency_ms is not None and again.latency_ms > 0
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1 and "ms is" in warned[0] and "measured again" in warned[0], warned
    third = evaluate(arch, protocol=FAST, cache=cache)  # the new row replaced the bad one
    assert len(calls) == 2 and third.latency_ms == again.latency_ms


def test_number_problem_names_the_key_and_the_rule() -> None:
    from designspace.evaluate.cache import number_problem

    assert number_problem({"ms": 1.5, "runs": 3}, positive=("ms",), counts=("runs",)) is None
    assert "ms is '-5'" in str(number_problem({"ms": -5}, positive=("ms",)))
    assert "above 0" in str(number_problem({"ms": float("nan")}, positive=("ms",)))
    assert "a finite number" in str(number_problem({"value": "x"}, finite=("value",)))
    assert number_problem({"value": -3.0}, finite=("value",)) is None  # a score may be negative
    assert "whole number" in str(number_problem({"runs": True}, counts=("runs",)))
    assert number_problem({}, positive=("ratio",), optional=("ratio",)) is None
