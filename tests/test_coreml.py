"""Core ML conversion (ML program, fp16, iOS 16): every registered component and every zoo model converts;
a small network's op inventory equals a list written by hand. Running the packages needs a Mac."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from designspace import zoo
from designspace.arch import Arch
from designspace.blocks import KINDS, Component, Site, components
from designspace.evaluate.coreml import convert, op_inventory, save

pytest.importorskip("coremltools")

WIDTH, HW = 24, (8, 8)  # 24: divisible by every default head count; 8x8: windows and strides tile it


def _cases() -> list[Any]:
    return [pytest.param(c, id=c.name) for kind in KINDS for c in components(kind)]


@pytest.mark.parametrize("comp", _cases())
def test_every_component_converts(comp: Component) -> None:
    import torch

    params = comp.defaults()
    if comp.kind == "stem":
        site, shape = Site(3, WIDTH, 1, (32, 32)), (1, 3, 32, 32)
    else:
        stride = max(comp.strides)
        out = WIDTH + 8 if comp.changes_width else WIDTH
        site = Site(WIDTH, 10 if comp.kind == "head" else out, stride, HW)
        layout = comp.layouts(params)[0]
        shape = (1, WIDTH, *HW) if layout == "nchw" else (1, *HW, WIDTH)
    torch.manual_seed(0)
    module = comp.build(site, params, 0.0)
    ops = op_inventory(convert(module, input_shape=shape))
    assert ops, f"{comp.name}: empty program"


FAST = ["mobilenetv2_100", "emo_1m", "efficientmod_xxs"]  # EMO and EfficientMod failed before the int-cast fix


@pytest.mark.parametrize("name", [pytest.param(n, marks=[] if n in FAST else [pytest.mark.slow]) for n in zoo.names()])
def test_every_zoo_model_converts(name: str) -> None:
    ops = op_inventory(convert(zoo.load(name)))
    assert ops["conv"] > 0 and (ops["linear"] > 0 or ops["matmul"] > 0)


TINY = """name: tiny
resolution: 32
num_classes: 10
stem: {type: iformer_stem}
stages:
  - width: 16
    stride: 1
    blocks: [{type: iformer_conv}]
  - width: 32
    downsample: {type: conv_bn}
    blocks: [{type: shma}]
head: {type: bn_linear_head}
"""


def test_small_network_op_inventory_by_hand(tmp_path: Path) -> None:
    mlmodel = convert(Arch.from_yaml(TINY))
    expected = {
        # BatchNorm2d folds into the conv before it: stem 3, iformer_conv 3 (DW7, PW, PW), conv_bn 1,
        # shma 7 (CPE DW3, q, k, v_gate, proj, FFN 2)
        "conv": 14,
        "gelu": 4,  # stem 2, iformer_conv 1, shma FFN 1
        "add": 4,  # residuals: iformer_conv, CPE, SHMA, FFN
        "sigmoid": 1, "split": 1,  # sigmoid(v_gate) then chunk into v and gate
        "matmul": 2, "softmax": 1,  # q k^T and attn v (SDPA), transposes folded into the matmuls
        "mul": 2,  # SDPA's 1/sqrt(d) scale, the gate
        "reshape": 5, "transpose": 1,  # flatten q, k, v; attention out back to NCHW (one transpose); pool flatten
        "reduce_mean": 1,  # global average pool
        "expand_dims": 1, "batch_norm": 1, "squeeze": 1,  # BatchNorm1d on (1, C) runs as a 3-D batch_norm
        "linear": 1,
    }
    assert dict(op_inventory(mlmodel)) == expected
    path = save(mlmodel, tmp_path / "model.mlpackage")
    assert (path / "Manifest.json").is_file()


def test_export_writes_mlpackage(tmp_path: Path) -> None:
    import json

    from designspace.export import ExportError, export

    arch_file = tmp_path / "tiny.yaml"
    arch_file.write_text(TINY)
    report = export(arch_file, tmp_path / "out", latency=False, onnx=False, coreml=True)
    assert (tmp_path / "out" / "model.mlpackage" / "Manifest.json").is_file()
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["coreml"]["ops"]["conv"] == 14 and metrics["coreml"]["precision"] == "fp16"
    assert tmp_path / "out" / "model.mlpackage" in report.files
    with pytest.raises(ExportError, match=r"model\.mlpackage already there"):
        (tmp_path / "out2").mkdir()
        (tmp_path / "out2" / "model.mlpackage").mkdir()
        export(arch_file, tmp_path / "out2", latency=False, onnx=False, coreml=True)


def test_export_coreml_says_one_line_about_coremltools(tmp_path: Path) -> None:
    """A fresh process (coremltools not yet imported, as in a clean venv): the library's import notes and
    progress bars are gone, designspace's one line says what coremltools supports and that running needs a Mac."""
    import os
    import subprocess
    import sys

    arch_file = tmp_path / "tiny.yaml"
    arch_file.write_text(TINY)
    done = subprocess.run([sys.executable, "-m", "designspace", "export", str(arch_file), "--out",
                           str(tmp_path / "out"), "--coreml", "--no-latency", "--no-onnx"], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "DESIGNSPACE_RESULTS": str(tmp_path / "r")})
    assert done.returncode == 0, done.stderr
    text = (done.stdout + done.stderr).replace("\r", "\n").replace(str(tmp_path), "TMP")  # its name says coreml
    about = [line for line in text.splitlines() if any(w in line.lower() for w in (
        "coreml", "core ml", "mlmodel", "mil ", "proxy", "has not been tested"))]
    about = [line for line in about if "model.mlpackage" not in line or "coremltools" in line.lower()]
    assert len(about) == 1, about
    assert "coremltools" in about[0] and "macOS" in about[0]
    assert (tmp_path / "out" / "model.mlpackage" / "Manifest.json").is_file()
