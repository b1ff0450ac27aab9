"""The command line, through ``main([...])`` (and once as a real process)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import designspace as ds
from designspace.blocks import KINDS, components
from designspace.cli import main


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> object:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_blocks_json(capsys: pytest.CaptureFixture[str]) -> None:
    data = _json(capsys, ["blocks", "--json"])
    assert isinstance(data, list)
    assert {d["name"] for d in data} == {c.name for k in KINDS for c in components(k)}
    mbconv = next(d for d in data if d["name"] == "mbconv")
    assert {p["name"]: p["default"] for p in mbconv["params"]}["exp_ratio"] == 6.0


def test_blocks_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["blocks", "--kind", "block"]) == 0
    out = capsys.readouterr().out
    for name in ("mbconv", "efficientmod", "irmb", "shma", "iformer_conv", "sam", "msa"):
        assert name in out
    assert "conv_ln" not in out


def test_zoo_json(capsys: pytest.CaptureFixture[str]) -> None:
    rows = _json(capsys, ["zoo", "--json"])
    from designspace import zoo

    assert isinstance(rows, list) and [r["name"] for r in rows] == zoo.names()
    row = next(r for r in rows if r["name"] == "emo_1m")
    assert row["paper"] == "EMO-1M" and row["params_m"] == 1.361 and row["paper_macs_g"] == 0.261
    # exact integers beside the rounded display fields (the authors' code: 1,361,168 parameters)
    assert row["params"] == 1_361_168 and isinstance(row["macs"], int) and round(row["macs"] / 1e9, 4) == row["macs_g"]


def test_zoo_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["zoo"]) == 0
    out = capsys.readouterr().out
    assert "iformer_m" in out and "iFormer-M" in out and "one multiply-add" in out


def test_show(capsys: pytest.CaptureFixture[str]) -> None:
    data = _json(capsys, ["show", "iformer_t", "--json"])
    assert isinstance(data, dict)
    counts = ds.count(ds.load_arch("iformer_t"))
    assert data["params"] == counts.params and data["macs"] == counts.macs
    assert sum(c["params"] for c in data["components"]) == counts.params
    assert data["fingerprint"] == ds.load_arch("iformer_t").fingerprint


def test_show_trace_agrees(capsys: pytest.CaptureFixture[str]) -> None:
    data = _json(capsys, ["show", "emo_1m", "--trace", "--json"])
    assert isinstance(data, dict) and data["method"] == "traced"
    assert data["macs"] == ds.count(ds.load_arch("emo_1m")).macs


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_python_dash_m() -> None:
    proc = subprocess.run([sys.executable, "-m", "designspace", "--version"], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == ds.__version__


def test_import_stays_light() -> None:
    code = ("import sys, designspace; heavy = {'onnxruntime', 'optuna', 'streamlit', 'plotly', 'fvcore', 'onnx'}; "
            "print(sorted(heavy & set(sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


def test_validate(capsys: pytest.CaptureFixture[str]) -> None:
    data = _json(capsys, ["validate", "spaces/tiny.yaml", "--json"])
    assert isinstance(data, dict)
    assert data["name"] == "tiny" and data["free_parameters"] == len(data["parameters"]) > 10
    assert data["log10_size"] > 5 and data["example"]["arch"]["stages"]
    assert main(["validate", "mobile"]) == 0
    out = capsys.readouterr().out
    assert "valid space 'mobile'" in out and "free parameters" in out and "example (seed 0)" in out


def test_sample_to_a_folder_never_overwrites(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    from pathlib import Path

    out = Path(str(tmp_path)) / "samples"
    assert main(["sample", "tiny", "-n", "4", "--seed", "3", "--out", str(out)]) == 0
    files = sorted(out.glob("tiny-*.yaml"))
    assert len(files) == 4
    for f in files:
        assert ds.Arch.from_file(f).fingerprint in f.name
    files[0].write_text("# a user's edit\n" + files[0].read_text())
    assert main(["sample", "tiny", "-n", "4", "--seed", "3", "--out", str(out)]) == 0
    assert files[0].read_text().startswith("# a user's edit")
    capsys.readouterr()
    assert main(["sample", "tiny", "-n", "2"]) == 0
    docs = capsys.readouterr().out.split("\n---\n")
    assert len(docs) == 2 and all(ds.Arch.from_yaml(d) for d in docs)


def test_contains(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["contains", "iformer", "iformer_m"]) == 0
    assert capsys.readouterr().out.startswith("yes: iformer_m is a point of iformer")
    assert main(["contains", "smt", "iformer_m"]) == 1
    assert "no: iformer_m is not a point of smt: stem: type 'iformer_stem'" in capsys.readouterr().out
    data = _json(capsys, ["contains", "emo", "emo_6m", "--json"])
    assert isinstance(data, dict) and data["contains"] and data["values"]["stages.3.width"] == 320
