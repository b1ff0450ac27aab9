"""Latency sources (issue 28): one interface, ``estimate(arch)``, for a measurement, the per-block table and a device
profile, and ``--latency`` with the same words and meaning on every command."""

from __future__ import annotations

import argparse

import pytest

from designspace import zoo
from designspace.cli import main
from designspace.cli._format import latency_arg
from designspace.evaluate.cache import Cache
from designspace.evaluate.latency_estimate import LATENCY_CHOICES
from designspace.evaluate.sources import Device, Measured, Table, latency_source
from designspace.exceptions import DesignspaceError


def test_the_words_pick_the_sources(tmp_path) -> None:
    cache = Cache(tmp_path / "cache.sqlite")
    assert isinstance(latency_source("measure", cache=cache), Measured)
    table = latency_source("table", cache=cache)
    assert isinstance(table, Table) and table.predict_missing and table.name == "table" and table.measures_front
    exact = latency_source("table-measured", cache=cache)
    assert isinstance(exact, Table) and not exact.predict_missing
    old = latency_source("both", cache=cache)  # eval's older word: the table beside the measurement
    assert isinstance(old, Table) and old.name == "table-measured"
    device = latency_source("table", device="iphone13")  # a device's cost model, whatever the local word
    assert isinstance(device, Device) and device.device == "iphone13" and not device.measures_front
    assert isinstance(latency_source("measure", device="local", cache=cache), Measured)


def test_bad_requests_are_refused_in_words() -> None:
    with pytest.raises(DesignspaceError, match=r"--latency 'lut' is not one of measure, table, table-measured"):
        latency_source("lut")
    with pytest.raises(DesignspaceError, match="measured with ONNX Runtime, not torch"):
        latency_source("table", runtime="torch")
    with pytest.raises(DesignspaceError, match="nonesuch"):
        latency_source("measure", device="nonesuch")


def test_a_device_source_predicts_from_the_arch_alone() -> None:
    got = Device("iphone13").estimate(zoo.load("mobilenetv2_100"))
    est = got.estimate
    assert (est.device, est.source) == ("iphone13", "predicted") and est.value_ms > 0
    assert est.lo_ms is not None and est.lo_ms < est.value_ms < (est.hi_ms or 0)
    assert got.context is None and got.columns["latency_fit_points"] >= 10
    assert got.detail.ms == est.value_ms  # the profile's own Prediction, kept


def test_every_command_takes_the_same_words() -> None:
    assert LATENCY_CHOICES == ("measure", "table", "table-measured")
    p = argparse.ArgumentParser()
    latency_arg(p, "here")
    assert p.parse_args(["--latency", "both"]).latency == "table-measured"
    assert p.parse_args([]).latency == "measure"
    with pytest.raises(SystemExit):
        p.parse_args(["--latency", "fast"])


@pytest.mark.parametrize("argv", [["eval", "emo_1m", "--latency", "lut"], ["search", "tiny", "--latency", "both!"]])
def test_the_cli_refuses_other_words(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "measure, table, table-measured" in capsys.readouterr().err.replace("'", "")


def test_eval_without_a_figure_to_give_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "emo_1m", "--no-measure"]) == 2
    assert "--no-measure leaves nothing to give" in capsys.readouterr().err
