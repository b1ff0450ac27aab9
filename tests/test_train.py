"""designspace train: data folders, the schedule, checkpoints and resume, errors; the training loss falls (fast) and
it learns (slow)."""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
from pathlib import Path

import pytest
import torch
from textures import CLASSES, make_imagefolder

import designspace as ds
from designspace.cli import main
from designspace.train import TrainConfig, lr_at, scan, train


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_imagefolder(tmp_path_factory.mktemp("tex"), per_class=6, size=40, classes=CLASSES[:3])


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_schedule_warms_up_then_decays_to_min() -> None:
    lrs = [lr_at(s, 100, 10, 1e-3, 1e-6, 1e-5) for s in range(101)]
    assert lrs[0] == pytest.approx(1e-6) and lrs[10] == pytest.approx(1e-3) and lrs[100] == pytest.approx(1e-5)
    assert all(a < b for a, b in itertools.pairwise(lrs[:11]))  # warm-up rises
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:]))  # cosine falls
    assert lrs[55] == pytest.approx(1e-5 + 0.5 * (1e-3 - 1e-5))  # half-way down at the middle


def test_scan_splits_every_class(data: Path) -> None:
    split = scan(data, val_fraction=0.2, seed=0)
    assert split.classes == tuple(sorted(CLASSES[:3]))
    assert len(split.train) == 15 and len(split.val) == 3
    assert {label for _, label in split.val} == {0, 1, 2}
    assert not set(split.train) & set(split.val)
    assert scan(data, 0.2, seed=0) == split  # seeded


def test_train_smoke_then_resume(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    argv = ["train", "mobilenetv2_100", "--data", str(data), "--resolution", "32", "--batch-size", "8",
            "--out", str(out), "--no-progress"]
    assert main([*argv, "--epochs", "1"]) == 0
    text = capsys.readouterr().out
    assert "recipe emo" in text and "epoch 1/1" in text and "3 classes" in text
    assert {"checkpoint.pt", "best.pt", "metrics.csv", "arch.yaml", "recipe.yaml"} <= {p.name for p in out.iterdir()}
    first = _rows(out / "metrics.csv")
    assert len(first) == 1 and 0 <= float(first[0]["val_top1"]) <= 100 and math.isfinite(float(first[0]["train_loss"]))
    state = json.loads((out / "checkpoint.json").read_text())
    assert state["epoch"] == 1 and state["classes"] == sorted(CLASSES[:3]) and state["epochs"] == 1
    tensors = torch.load(out / "checkpoint.pt", weights_only=True)  # tensors only: loads without unpickling code
    assert int(tensors["epoch"]) == 1 and set(tensors) == {"model", "optimizer", "rng", "epoch"}
    assert main([*argv, "--epochs", "2"]) == 0
    text = capsys.readouterr().out
    assert "resuming" in text and "after epoch 1" in text and "epoch 2/2" in text and "epoch 1/2" not in text
    assert "started with --epochs 1, now 2: the cosine schedule is stretched" in text  # said, not silent
    rows = _rows(out / "metrics.csv")
    assert len(rows) == 2 and rows[0] == first[0]  # the first epoch kept, not re-run
    # the trained model is what build_model + the checkpoint give
    model = ds.build_model(out / "arch.yaml")
    model.load_state_dict(torch.load(out / "best.pt", weights_only=True)["model"])
    assert model.arch.num_classes == 3 and model.arch.resolution == 32


def test_interrupted_run_resumes_from_its_last_checkpoint(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = TrainConfig(arch="mobilenetv2_100", data=data, out=out, epochs=3, batch_size=8, resolution=32,
                      progress=False)

    def stop_after_first_epoch(line: str) -> None:
        if line.startswith("epoch 1/3"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, echo=stop_after_first_epoch)
    assert len(_rows(out / "metrics.csv")) == 1
    lines: list[str] = []
    report = train(cfg, echo=lines.append)
    assert report.resumed_from == 1 and report.epochs == 3
    assert lines[0].startswith(f"resuming {out} after epoch 1 of 3")
    assert [r["epoch"] for r in _rows(out / "metrics.csv")] == ["1", "2", "3"]


def test_checkpoint_of_another_run_is_refused(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    base = ["--data", str(data), "--resolution", "32", "--batch-size", "8", "--epochs", "1", "--out", str(out),
            "--no-progress"]
    assert main(["train", "mobilenetv2_100", *base]) == 0
    saved = (out / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    assert main(["train", "emo_1m", *base]) == 2
    assert "a checkpoint of another run" in capsys.readouterr().err
    assert (out / "checkpoint.pt").read_bytes() == saved  # nothing lost


def test_corrupt_image_is_skipped_with_a_warning(data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import shutil

    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    (copy / CLASSES[0] / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    truncated = (copy / CLASSES[1] / "0000.png").read_bytes()
    (copy / CLASSES[1] / "cut.png").write_bytes(truncated[: len(truncated) // 2])
    with caplog.at_level("WARNING", logger="designspace"):
        report = train(TrainConfig(arch="mobilenetv2_100", data=copy, out=tmp_path / "run", epochs=1, batch_size=8,
                                   resolution=32, progress=False))
    assert report.skipped == 2 and report.epochs == 1
    assert "broken.png" in caplog.text and "cut.png" in caplog.text


@pytest.mark.parametrize("setup, message", [
    ("missing", "no such dataset folder"),
    ("empty_class", "class 'zzz' has no readable images"),
    ("one_class", "only one class"),
    ("no_classes", "no class folders"),
    ("bad_recipe", "unknown recipe key"),
    ("bad_resolution", "cannot run at"),
])
def test_bad_inputs_exit_2(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], setup: str,
                           message: str) -> None:
    import shutil

    root = tmp_path / "data"
    extra: list[str] = []
    arch = "mobilenetv2_100"
    if setup == "missing":
        root = tmp_path / "nope"
    elif setup == "empty_class":
        shutil.copytree(data, root)
        (root / "zzz").mkdir()
    elif setup == "one_class":
        shutil.copytree(data / CLASSES[0], root / CLASSES[0])
    elif setup == "no_classes":
        root.mkdir()
    elif setup == "bad_recipe":
        shutil.copytree(data, root)
        (tmp_path / "r.yaml").write_text("lr: 1.0e-3\nlabel_smothing: 0.1\n")
        extra = ["--recipe", str(tmp_path / "r.yaml")]
    else:
        shutil.copytree(data, root)
        arch, extra = "smt_t", ["--resolution", "2"]  # SMT's stem would output 0x0 pixels
    code = main(["train", arch, "--data", str(root), "--epochs", "1", "--out", str(tmp_path / "run"),
                 "--no-progress", *(["--resolution", "32"] if setup != "bad_resolution" else []), *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and "Traceback" not in err


# 1,531 parameters with 3 classes (mbv2_stem, one MBConv, a 32-wide head), 32 px
TINY = """
resolution: 32
num_classes: 3
stem: {type: mbv2_stem, width: 8}
stages:
- width: 16
  blocks: [{type: mbconv, exp_ratio: 2.0}]
head: {type: mbv2_head, width: 32}
"""


def test_training_loss_falls(tmp_path: Path) -> None:
    """The full loop (AdamW, warm-up and cosine, label smoothing, precise BN) on 3 texture classes, 24 images
    each (57 train), 6 epochs of 7 steps at batch 8: the last epoch's training loss is 0.25 below the first's and
    0.25 below chance (ln 3, the loss of a uniform prediction, label smoothing or not). Measured with seeds 0-4
    (data and run): first 1.10-1.37, last 0.66-0.74; about 4 s on one thread."""
    from designspace import Arch

    data = make_imagefolder(tmp_path / "tex", per_class=24, size=32, classes=CLASSES[:3], seed=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a network this small runs fastest on one thread, and a busy host slows it least
    try:
        report = train(TrainConfig(arch=Arch.from_yaml(TINY), data=data, out=tmp_path / "run", epochs=6,
                                   batch_size=8, lr=1e-2, resolution=32, progress=False, seed=0))
    finally:
        torch.set_num_threads(threads)
    losses = [h["train_loss"] for h in report.history]
    assert len(losses) == 6 and all(math.isfinite(v) for v in losses), losses
    assert losses[-1] <= losses[0] - 0.25, losses
    assert losses[-1] <= math.log(3) - 0.25, losses


@pytest.mark.slow
def test_training_learns_textures(tmp_path: Path) -> None:
    """EMO-1M at 64 px on 10 procedural texture classes (640 train / 160 val images): well above the 10% of
    chance after 5 CPU epochs (measured 49% after 4 epochs)."""
    data = make_imagefolder(tmp_path / "tex", per_class=80, size=48)
    report = train(TrainConfig(arch="emo_1m", data=data, out=tmp_path / "run", epochs=5, batch_size=64, lr=1e-3,
                               resolution=64, progress=False))
    assert report.history[-1]["val_top1"] >= 30.0, report.history
    assert report.history[-1]["train_loss"] < report.history[0]["train_loss"]


# --------------------------------------------------------------- several processes, device settings, the traps
def test_torchrun_two_processes_train_alike_and_resume_in_one(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """torchrun --nproc_per_node 2 (gloo, CPU), 2 epochs: both processes train, rank 0 alone prints and writes,
    the two processes end with identical weights; the run then resumes in one process for a third epoch, and its
    training loss falls; then ``designspace train`` under torchrun resumes it in two processes again. About 20 s on
    the 2-core development machine (processes importing torch)."""
    import subprocess
    import sys

    data = make_imagefolder(tmp_path / "tex", per_class=24, size=32, classes=CLASSES[:3], seed=0)
    (tmp_path / "tiny.yaml").write_text(TINY)
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(Path(__file__).parent / "ddp_train.py"), str(tmp_path / "tiny.yaml"), str(data),
                           str(out), "2"], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("[rank")]
    assert "[rank 0] processes 2 epochs 2" in lines and "[rank 1] processes 2 epochs 2" in lines  # both trained
    said = [ln for ln in lines if "processes 2 epochs" not in ln]
    assert said and all(ln.startswith("[rank 0]") for ln in said)  # rank 0 alone prints
    assert any("over 2 processes" in ln for ln in said) and any("identical on all 2 processes" in ln for ln in said)
    assert [r["epoch"] for r in _rows(out / "metrics.csv")] == ["1", "2"]
    assert json.loads((out / "checkpoint.json").read_text())["processes"] == 2
    w0, w1 = torch.load(out / "rank0.pt", weights_only=True), torch.load(out / "rank1.pt", weights_only=True)
    assert w0.keys() == w1.keys() and all(torch.equal(w0[k], w1[k]) for k in w0)
    saved = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(saved[k], w0[k]) for k in w0)  # rank 0's checkpoint holds them
    torch.manual_seed(0)
    init = ds.build_model(ds.Arch.from_yaml(TINY)).state_dict()
    assert any(not torch.equal(init[k], w1[k]) for k in w1)  # rank 1's weights moved from the initialization

    first = _rows(out / "metrics.csv")
    assert main(["train", str(tmp_path / "tiny.yaml"), "--data", str(data), "--epochs", "3", "--batch-size", "8",
                 "--lr", "1e-2", "--resolution", "32", "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "after epoch 2 of 3" in text and "2 processes before, 1 now" in text and "epoch 3/3" in text
    three = _rows(out / "metrics.csv")
    assert three[:2] == first and len(three) == 3

    # designspace train itself under torchrun, resuming the one-process run in two: one process speaks
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "designspace", "train", str(tmp_path / "tiny.yaml"), "--data", str(data), "--epochs",
                           "4", "--batch-size", "8", "--lr", "1e-2", "--resolution", "32", "--out", str(out),
                           "--no-progress"], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    said = proc.stdout.splitlines()
    assert sum(ln.startswith("resuming") for ln in said) == 1 and "1 process before, 2 now" in proc.stdout
    assert sum(ln.startswith("epoch 4/4") for ln in said) == 1 and sum(ln.startswith("done:") for ln in said) == 1
    rows = _rows(out / "metrics.csv")
    assert rows[:3] == three and len(rows) == 4
    losses = [float(r["train_loss"]) for r in rows]
    assert losses[-1] < losses[0], losses


def test_bad_flags_exit_2_with_one_line(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    base = ["train", "mobilenetv2_100", "--data", str(data), "--epochs", "1", "--out", str(tmp_path / "run"),
            "--no-progress"]
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    for extra, text in ((["--nproc", "2"], "torchrun --standalone --nproc_per_node 2"),
                        (["--nproc_per_node", "4"], "designspace train does not start processes"),
                        (["--workers", "-1"], "--workers must be 0 or more")):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and text in err, err
    from designspace.train import distributed

    monkeypatch.setattr(distributed, "cpu_has_bf16", lambda: False)  # a CPU without AVX-512 BF16 or AMX
    assert main([*base, "--amp"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--amp on this CPU: it has no native bfloat16" in err, err
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_amp_channels_last_and_the_partial_batch(tmp_path: Path) -> None:
    """bf16 autocast where the CPU has it, channels-last: the run trains, its losses are finite; every training
    image is used (the last batch smaller, said), a lone last image is left out (said); a resolution above the
    images' size is said once."""
    from designspace import Arch
    from designspace.train.distributed import cpu_has_bf16

    data = make_imagefolder(tmp_path / "tex", per_class=12, size=24, classes=CLASSES[:3], seed=0)  # 30 train
    lines: list[str] = []
    report = train(TrainConfig(arch=Arch.from_yaml(TINY), data=data, out=tmp_path / "a", epochs=1, batch_size=8,
                               lr=1e-2, resolution=32, progress=False, amp=cpu_has_bf16(), channels_last=True),
                   echo=lines.append)
    assert math.isfinite(report.history[0]["train_loss"])
    text = "\n".join(lines)
    assert "4 steps an epoch of 8 images, the last of 6 (kept)" in text and "channels-last" in text
    assert ("bfloat16 autocast" in text) == cpu_has_bf16()
    assert text.count("median short side 24px, upscaled to 32px") == 1
    lines.clear()
    train(TrainConfig(arch=Arch.from_yaml(TINY), data=data, out=tmp_path / "b", epochs=1, batch_size=29,
                      lr=1e-2, resolution=24, progress=False), echo=lines.append)
    text = "\n".join(lines)
    assert "1 step an epoch of 29 images; the last image of each epoch's shuffle is left out" in text
    assert "upscaled" not in text


@pytest.mark.slow
def test_compile_trains_and_its_checkpoint_fits_build_model(tmp_path: Path) -> None:
    """--compile (inductor; about 45 s of compilation on the 2-core development machine): the run trains, and its
    checkpoint holds the plain module's weights (no torch.compile prefix), which build_model loads."""
    from designspace import Arch

    data = make_imagefolder(tmp_path / "tex", per_class=12, size=24, classes=CLASSES[:3], seed=0)
    lines: list[str] = []
    report = train(TrainConfig(arch=Arch.from_yaml(TINY), data=data, out=tmp_path / "run", epochs=2, batch_size=8,
                               lr=1e-2, resolution=24, progress=False, compile=True), echo=lines.append)
    assert "torch.compile" in lines[1] and report.epochs == 2
    assert all(math.isfinite(h["train_loss"]) for h in report.history)
    model = ds.build_model(tmp_path / "run" / "arch.yaml")
    model.load_state_dict(torch.load(tmp_path / "run" / "best.pt", weights_only=True)["model"])
