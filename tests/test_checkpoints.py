"""Checkpoints are data: a planted pickle that names code is refused, and its payload does not run, in every place
the project reads one (``train``'s resume, ``export --weights``, a trained study's ``best.pt`` in ``export``, a trained
search's resume); runs written in the earlier one-file layout still resume."""

from __future__ import annotations

import json
import pathlib
from pathlib import Path
from typing import Any

import pytest
import torch
from test_train import TINY  # the tiny Arch the training tests share
from textures import CLASSES, make_imagefolder

import designspace as ds
from designspace.cli import main
from designspace.search.trained import TrialTrainer, trained_settings
from designspace.train import CheckpointError, TrainConfig, train

TESTS = Path(__file__).parent


class Payload:
    """A pickle whose loading touches ``marker`` (a harmless stand-in for a command): ``__reduce__`` names
    ``pathlib.Path.touch``, which an unrestricted unpickler calls."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def plant(path: Path, marker: Path) -> Path:
    """Writes a checkpoint-shaped pickle with the payload at ``path``; checks that it is live (an unrestricted
    load of a copy with another marker runs it), so that a refusal below is not a dud's."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": {"weight": Payload(marker)}, "epoch": 1}, path)
    control = marker.with_name(marker.name + ".control")
    torch.save({"model": Payload(control)}, path.with_name(".control.pt"))
    torch.load(path.with_name(".control.pt"), weights_only=False)  # the project never does this
    assert control.exists()
    path.with_name(".control.pt").unlink()
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_imagefolder(tmp_path_factory.mktemp("tex"), per_class=6, size=32, classes=CLASSES[:3])


@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch) -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    yield
    torch.set_num_threads(threads)


def _one_line(err: str, path: Path) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "not a plain weights file" in lines[0], err
    assert "fix:" in lines[0] and "Traceback" not in err


def test_train_refuses_a_planted_checkpoint(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "tiny.yaml").write_text(TINY)
    marker = tmp_path / "ran"
    bad = plant(tmp_path / "run" / "checkpoint.pt", marker)
    code = main(["train", str(tmp_path / "tiny.yaml"), "--data", str(data), "--epochs", "1", "--batch-size", "8",
                 "--out", str(tmp_path / "run"), "--no-progress"])
    assert code == 2
    _one_line(capsys.readouterr().err, bad)
    assert not marker.exists()


def test_export_refuses_planted_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "ran"
    bad = plant(tmp_path / "best.pt", marker)
    assert main(["export", "emo_1m", "--out", str(tmp_path / "x"), "--no-latency", "--weights", str(bad)]) == 2
    _one_line(capsys.readouterr().err, bad)
    assert not marker.exists() and not (tmp_path / "x" / "model.onnx").exists()


def test_trained_study_best_pt_and_resume_refuse_planted_pickles(data: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results"
    monkeypatch.setenv("DESIGNSPACE_RESULTS", str(results))
    argv = ["search", "tiny", "--objective", "trained", "--data", str(data), "--trials", "2", "--seed", "0",
            "--epochs", "1", "--resolution", "32", "--train-batch", "8", "--lr", "2e-3", "--no-progress"]
    assert main(argv) == 0
    capsys.readouterr()
    summary = json.loads((results / "tiny" / "summary.json").read_text())
    best = summary["best"][0]
    run = results / "tiny" / "train" / best["fingerprint"]
    assert (run / "best.pt").is_file() and (run / "best.json").is_file()
    assert main(["export", f"tiny:{best['number']}", "--out", str(tmp_path / "ok"), "--no-latency", "--no-onnx"]) == 0
    assert torch.load(tmp_path / "ok" / "best.pt", weights_only=True)["model"]  # what export copied: weights only
    capsys.readouterr()

    marker = tmp_path / "ran"
    bad = plant(run / "best.pt", marker)
    assert main(["export", "tiny", "--out", str(tmp_path / "x"), "--no-latency", "--no-onnx"]) == 2
    _one_line(capsys.readouterr().err, bad)
    assert not marker.exists() and not (tmp_path / "x" / "best.pt").exists()

    # the trained search's resume path: a trial of the same Arch resumes from the run folder's checkpoint.pt
    bad = plant(run / "checkpoint.pt", marker)
    settings = trained_settings(data, epochs=2, resolution=32, pruner="none", batch_size=8, lr=2e-3)
    trainer = TrialTrainer(settings, results / "tiny", seed=0, n_objectives=1, progress=False)
    import optuna

    trial = optuna.create_study(direction="maximize").ask()
    arch = ds.load_arch(results / "tiny" / "archs" / f"{best['fingerprint']}.yaml")
    with pytest.raises(CheckpointError, match="not a plain weights file") as caught:
        trainer(trial, arch, {"metrics": {}}, True)
    assert str(bad) in str(caught.value) and len(str(caught.value).splitlines()) == 1
    assert not marker.exists()


def test_a_run_in_the_one_file_layout_still_resumes(data: Path, tmp_path: Path) -> None:
    """Runs written before checkpoint.json held their state in checkpoint.pt as plain values: weights_only reads
    them, and they resume."""
    out = tmp_path / "run"
    cfg = TrainConfig(arch=ds.Arch.from_yaml(TINY), data=data, out=out, epochs=1, batch_size=8, lr=1e-2,
                      progress=False)
    first = train(cfg)
    tensors = torch.load(out / "checkpoint.pt", weights_only=True)
    state = json.loads((out / "checkpoint.json").read_text())
    old = {"model": tensors["model"], "ema": None, "epoch": 1, "best_top1": state["best_top1"],
           "optimizer": {"state": tensors["optimizer"], "param_groups": state["param_groups"]},
           "history": state["history"], "fingerprint": state["fingerprint"], "classes": state["classes"],
           "rng": tensors["rng"], "recipe": state["recipe"]}
    torch.save(old, out / "checkpoint.pt")
    (out / "checkpoint.json").unlink()
    lines: list[str] = []
    report = train(TrainConfig(**{**cfg.__dict__, "epochs": 2}), echo=lines.append)
    assert report.resumed_from == 1 and report.epochs == 2 and report.history[0] == pytest.approx(
        {k: v if v is not None else report.history[0][k] for k, v in first.history[0].items()}, nan_ok=True)
    assert lines[0].startswith(f"resuming {out} after epoch 1 of 2")


def test_a_checkpoint_that_is_not_weights_is_refused(tmp_path: Path) -> None:
    from designspace.export import ExportError, export

    (tmp_path / "list.pt").write_bytes(b"")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(ExportError, match="holds a list, not a mapping of weights"):
        export("emo_1m", tmp_path / "x", latency=False, onnx=False, weights=tmp_path / "list.pt")
    torch.save({"conv.weight": "text"}, tmp_path / "text.pt")
    with pytest.raises(ExportError, match="is a str, not a tensor"):
        export("emo_1m", tmp_path / "y", latency=False, onnx=False, weights=tmp_path / "text.pt")
