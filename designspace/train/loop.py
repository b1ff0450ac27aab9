"""``train()``: a plain PyTorch training loop with the seed papers' recipe, in one process or under torchrun.

AdamW (no weight decay on norms, biases and layer scales), a per-step schedule of linear warm-up then cosine
decay to ``min_lr``, label-smoothed cross-entropy, stochastic depth at the recipe's rate, an optional EMA of
the weights, validation top-1 after every epoch, a checkpoint after every epoch (written atomically) and
resume from it, ``metrics.csv`` with one row per epoch. Several processes (``torchrun``, DistributedDataParallel)
and the device settings (mixed precision, channels-last, ``torch.compile``, loader workers) are in
:mod:`designspace.train.distributed`; the checkpoint files in :mod:`designspace.train.checkpoint`.

Before each evaluation the BatchNorm statistics are recomputed over up to ``BN_BATCHES`` training batches
(precise BN, as in pycls): the running averages carry the huge activations of the first steps for a long
time, so short runs evaluate badly without it (measured on the texture set of ``tests/textures.py``,
EMO-1M at 64 px after 4 epochs: validation top-1 16.9% with the running averages, 45.6% recomputed).

Shortened runs: with ``epochs`` below the recipe's, the warm-up shrinks in proportion
(``warmup_epochs * epochs / recipe.epochs``); with another batch the learning rates scale linearly.
Every training image is used every epoch: the last batch of an epoch may be smaller, except that a last
batch of a single image is left out (a batch of one breaks BatchNorm after global pooling), which the run says.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import io
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from designspace.arch import Arch
from designspace.exceptions import DesignspaceError, DocumentError
from designspace.recipes import Recipe, load_recipe, recipe_for
from designspace.safe_files import atomic_write
from designspace.train import checkpoint as ckpt
from designspace.train.announce import announce
from designspace.train.data import ImageFolder, Split, scan
from designspace.train.distributed import Dist, amp_dtype, default_workers, setup
from designspace.train.steps import (
    BN_BATCHES,
    Batches,
    autocast,
    ema_update,
    evaluate,
    lr_at,
    param_groups,
    precise_bn,
    progress_bar,
)

__all__ = ["BN_BATCHES", "TrainConfig", "TrainReport", "lr_at", "train"]

log = logging.getLogger("designspace")
CHECKPOINT, STATE = ckpt.CHECKPOINT, ckpt.STATE
BEST, BEST_STATE, METRICS = "best.pt", "best.json", "metrics.csv"
ARCH_FILE, RECIPE_FILE = "arch.yaml", "recipe.yaml"
COLUMNS = ("epoch", "train_loss", "train_top1", "val_loss", "val_top1", "val_top1_ema", "lr", "seconds")


@dataclass(frozen=True)
class TrainConfig:
    """One training run.

    Attributes:
        arch: the Arch, an Arch YAML file or a zoo name (its ``num_classes`` becomes the dataset's).
        data: the ImageFolder directory.
        out: the run folder (checkpoint, metrics, best weights); rerunning with the same folder resumes.
        recipe: a Recipe, a shipped recipe name or a recipe YAML; ``None`` for the family the Arch resembles.
        epochs: epochs (default the recipe's).
        batch_size: images per optimizer step over all processes (the recipe's learning rate is scaled to it).
        lr: peak learning rate at ``batch_size``, replacing the recipe's scaled one.
        resolution: input side in pixels (default: the recipe's, else the Arch's).
        val_fraction: held-out share per class when the data has no ``train``/``val`` folders.
        workers: DataLoader worker processes per training process (``None``: chosen for the device and the CPUs,
            :func:`~designspace.train.distributed.default_workers`).
        device: ``"cpu"`` or ``"cuda"`` (under torchrun: GPU ``LOCAL_RANK``).
        seed: seed of weights, split, order and augmentation.
        progress: show a progress bar.
        split: a scan of ``data`` made beforehand (:func:`designspace.train.data.scan`; a search scans once for
            all its trials), ``None`` to scan here.
        amp: mixed precision (bfloat16 where the device has it, else float16 on a GPU; refused on a CPU without
            bfloat16).
        channels_last: NHWC memory format (``None``: on for CUDA, off on the CPU).
        compile: ``torch.compile`` the training forward.
        nproc: the process count expected from torchrun (``None``: any; above 1 without torchrun is refused).
    """

    arch: Arch | str | Path
    data: str | Path
    out: str | Path
    recipe: Recipe | str | Path | None = None
    epochs: int | None = None
    batch_size: int = 64
    lr: float | None = None
    resolution: int | None = None
    val_fraction: float = 0.2
    workers: int | None = None
    device: str = "cpu"
    seed: int = 0
    progress: bool = True
    split: Split | None = field(default=None, compare=False, repr=False)
    amp: bool = False
    channels_last: bool | None = None
    compile: bool = False
    nproc: int | None = None


@dataclass
class TrainReport:
    """What a run did.

    Attributes:
        out: the run folder.
        classes: class names.
        epochs: epochs completed (in all, resumed ones included).
        resumed_from: the epoch the run resumed after (0 for a fresh run).
        history: one dict per epoch (the ``metrics.csv`` columns).
        best_top1: best validation top-1 (%), model or EMA.
        skipped: unreadable images left out.
        processes: training processes (torchrun's world size; 1 without it).
        replica_difference: the largest difference of any weight between the processes at the end (0.0: equal).
        model: the trained network (last epoch's weights, unwrapped), for use in Python.
    """

    out: Path
    classes: tuple[str, ...]
    epochs: int
    resumed_from: int
    history: list[dict[str, float]] = field(default_factory=list)
    best_top1: float = 0.0
    skipped: int = 0
    processes: int = 1
    replica_difference: float = 0.0
    model: nn.Module | None = field(default=None, repr=False, compare=False)


def _write_metrics(path: Path, history: list[dict[str, float]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS)
    writer.writeheader()
    for row in history:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write(path, buf.getvalue())


def _resolve(cfg: TrainConfig) -> tuple[Arch, Recipe]:
    from designspace.network import load_arch

    arch = load_arch(cfg.arch)
    if cfg.recipe is None:
        recipe = recipe_for(arch)
    elif isinstance(cfg.recipe, Recipe):
        recipe = cfg.recipe
    else:
        recipe = load_recipe(cfg.recipe)
    return arch, recipe


def _check(cfg: TrainConfig) -> None:
    if cfg.batch_size < 1 or (cfg.epochs is not None and cfg.epochs < 1):
        raise DesignspaceError(f"batch size and epochs must be at least 1, got {cfg.batch_size} and {cfg.epochs}")
    if cfg.resolution is not None and cfg.resolution < 1:
        raise DesignspaceError(f"the resolution must be at least 1 pixel, got {cfg.resolution}")
    if cfg.lr is not None and not cfg.lr > 0:
        raise DesignspaceError(f"the learning rate must be > 0, got {cfg.lr}")
    if cfg.workers is not None and cfg.workers < 0:
        raise DesignspaceError(f"--workers must be 0 or more, got {cfg.workers} (fix: --workers 0)")


def train(cfg: TrainConfig, echo: Callable[[str], None] | None = None,
          on_epoch: Callable[[dict[str, float]], None] | None = None) -> TrainReport:
    """Trains ``cfg.arch`` on ``cfg.data`` (see the module docstring); resumes from ``cfg.out`` when it holds a
    checkpoint of the same run. Under torchrun every process calls it; rank 0 alone echoes and writes files.

    Args:
        cfg: the run.
        echo: called with one line per epoch (and on resume); ``None`` for silence.
        on_epoch: called with each epoch's ``metrics.csv`` row (epochs counted from 1; top-1 in %), after that
            epoch's checkpoint is written; on resume first with the rows of the epochs already done. An exception
            it raises stops the run and propagates (the checkpoint stays: a rerun resumes after that epoch).
            The search's pruning (:mod:`designspace.search.trained`) stops trials this way. Under torchrun it is
            called in every process with the same row.

    Raises:
        DataError: a missing or unusable dataset folder.
        DocumentError: an unreadable Arch or recipe; an Arch invalid at the asked resolution.
        CheckpointError: a checkpoint in ``cfg.out`` that is not a plain weights file, or unreadable.
        DesignspaceError: a checkpoint in ``cfg.out`` from another run; bad settings (``--nproc`` without
            torchrun, ``--amp`` on a CPU without bfloat16, a batch the processes cannot share).
    """
    _check(cfg)
    dist = setup(cfg.device, cfg.nproc)
    try:
        return _run(cfg, dist, (echo if dist.main else None) or (lambda _line: None), on_epoch)
    finally:
        dist.close()


def _run(cfg: TrainConfig, dist: Dist, say: Callable[[str], None],
         on_epoch: Callable[[dict[str, float]], None] | None) -> TrainReport:
    device = dist.device
    amp = amp_dtype(device) if cfg.amp else None
    if cfg.batch_size % dist.world:
        fit = cfg.batch_size // dist.world * dist.world or dist.world
        raise DesignspaceError(f"--batch-size {cfg.batch_size} does not split evenly over {dist.world} processes "
                               f"(fix: a multiple of {dist.world}, e.g. --batch-size {fit})")
    arch, recipe = _resolve(cfg)
    split = cfg.split if cfg.split is not None else scan(cfg.data, cfg.val_fraction, cfg.seed)
    resolution = cfg.resolution or recipe.resolution or arch.resolution
    drop_path = recipe.drop_path if recipe.drop_path is not None else arch.drop_path_rate
    arch_resolution = arch.resolution
    try:
        arch = dataclasses.replace(arch, num_classes=len(split.classes), resolution=resolution,
                                   drop_path_rate=drop_path)
    except DocumentError as err:
        raise DocumentError(f"the Arch cannot run at {resolution}x{resolution}: {err}") from None
    epochs = cfg.epochs or recipe.epochs
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)

    from designspace.network import Network

    torch.manual_seed(cfg.seed)
    net = Network(arch).to(device)
    channels_last = cfg.channels_last if cfg.channels_last is not None else device.type == "cuda"
    if channels_last:
        net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    peak = cfg.lr if cfg.lr is not None else recipe.scaled_lr(cfg.batch_size)
    optimizer = torch.optim.AdamW(param_groups(net, recipe.weight_decay), lr=peak, betas=recipe.betas)
    ema = copy.deepcopy(net).eval() if recipe.ema_decay is not None else None
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
    train_set = ImageFolder(split.train, resolution, train=True, crop_scale=recipe.crop_scale, hflip=recipe.hflip,
                            seed=cfg.seed)
    val_set = ImageFolder(split.val, resolution, train=False)
    per = cfg.batch_size // dist.world  # each process's share of a step
    mine = math.ceil(len(train_set) / dist.world)  # the DistributedSampler pads to equal shards
    lone = mine > per and mine % per == 1  # a last batch of one image breaks BatchNorm after pooling: left out
    steps_per_epoch = mine // per if lone else math.ceil(mine / per)
    total = steps_per_epoch * epochs
    warmup = round(recipe.warmup_epochs * min(1.0, epochs / recipe.epochs) * steps_per_epoch)
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", dist.world))
    workers = cfg.workers if cfg.workers is not None else default_workers(device, local_world)
    val_part: Any = val_set if dist.world == 1 else torch.utils.data.Subset(val_set, range(dist.rank, len(val_set),
                                                                                           dist.world))
    val_batches = Batches(torch.utils.data.DataLoader(val_part, batch_size=per, num_workers=workers,
                                                      pin_memory=device.type == "cuda"), device, channels_last)

    history: list[dict[str, float]] = []
    start, best = 0, 0.0
    state_path = out / CHECKPOINT
    if state_path.exists():
        start, best, history = ckpt.resume(out, net, optimizer, ema, scaler, arch, split, epochs, say, lone=lone,
                                       steps=steps_per_epoch, warmup=warmup, peak=peak, recipe=recipe, dist=dist)
        for done in history:
            if on_epoch is not None:
                on_epoch(done)
    if not dist.same(start):
        raise DesignspaceError(f"{out}: the training processes found different checkpoints there (fix: an --out "
                               "folder every process reads, e.g. on a shared file system)")
    if dist.world > 1:  # stochastic depth draws its own masks in each process
        torch.manual_seed(cfg.seed * 1_000_003 + dist.rank * 10_007 + start)
    runner: nn.Module = net
    if dist.world > 1:
        runner = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        runner = torch.compile(runner)  # type: ignore[assignment]
    if dist.main:
        atomic_write(out / ARCH_FILE, arch.to_yaml())
        atomic_write(out / RECIPE_FILE, recipe.to_yaml())
    announce(say, cfg, arch, recipe, split, net, resolution, arch_resolution, peak, epochs, warmup, dist, per,
             steps_per_epoch, lone, amp, channels_last, workers, len(train_set))

    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    for epoch in range(start, epochs):
        began = time.perf_counter()
        train_set.epoch = epoch
        batches = Batches(_train_loader(train_set, epoch, cfg.seed, dist, per, workers, lone), device, channels_last)
        net.train()
        bar = progress_bar(batches, f"epoch {epoch + 1}/{epochs}", cfg.progress and dist.main)
        loss_sum = correct = seen = 0.0
        lr = peak
        for i, (x, y) in enumerate(bar):
            step = epoch * steps_per_epoch + i
            lr = lr_at(step, total, warmup, peak, recipe.warmup_lr, recipe.min_lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with autocast(device, amp):
                logits = runner(x)
                loss = criterion(logits.float(), y)
            finite = bool(torch.isfinite(loss.detach()))
            if dist.world > 1:  # every process stops together (one alone would leave the others waiting)
                finite = dist.sum(float(not finite))[0] == 0
            if not finite:
                raise DesignspaceError(f"the loss became {loss.item()} at epoch {epoch + 1}, step {i} (fix: a lower "
                                       "learning rate: --lr or a smaller batch)")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            if ema is not None:
                ema_update(ema, net, recipe.ema_decay or 0.0)
            loss_sum += loss.item() * len(y)
            correct += float((logits.argmax(1) == y).sum())
            seen += len(y)
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", lr=f"{lr:.2e}")
        loss_sum, correct, seen = dist.sum(loss_sum, correct, seen)
        precise_bn(net, batches, dist, amp)
        if ema is not None:
            precise_bn(ema, batches, dist, amp)
        val_loss, val_top1 = evaluate(net, val_batches, dist, amp)
        ema_top1 = evaluate(ema, val_batches, dist, amp)[1] if ema is not None else float("nan")
        row = {"epoch": epoch + 1, "train_loss": loss_sum / max(seen, 1), "train_top1": 100.0 * correct / max(seen, 1),
               "val_loss": val_loss, "val_top1": val_top1, "val_top1_ema": ema_top1, "lr": lr,
               "seconds": time.perf_counter() - began}
        history.append(row)
        improved = max(val_top1, 0.0 if math.isnan(ema_top1) else ema_top1)
        if dist.main:
            if improved > best or epoch == 0:
                weights = ema if ema is not None and ema_top1 >= val_top1 else net
                ckpt.save_tensors({"model": weights.state_dict()}, out / BEST)
                ckpt.write_state({"arch": arch.to_yaml(), "classes": list(split.classes), "val_top1": improved,
                                  "epoch": epoch + 1}, out / BEST_STATE)
            # the JSON first: a kill between the two writes leaves a state one epoch ahead, which resume trims
            ckpt.write_state({"format": 2, "epoch": epoch + 1, "epochs": epochs, "best_top1": max(best, improved),
                              "history": history, "fingerprint": arch.fingerprint, "classes": list(split.classes),
                              "recipe": recipe.to_dict(), "batch_size": cfg.batch_size, "processes": dist.world,
                              "param_groups": optimizer.state_dict()["param_groups"],
                              "scaler": scaler.state_dict() if scaler.is_enabled() else None}, out / STATE)
            tensors: dict[str, Any] = {"model": net.state_dict(), "optimizer": optimizer.state_dict()["state"],
                                       "rng": torch.get_rng_state(), "epoch": torch.tensor(epoch + 1)}
            if ema is not None:
                tensors["ema"] = ema.state_dict()
            if device.type == "cuda":  # stochastic depth's masks are drawn on the GPU
                tensors["cuda_rng"] = torch.cuda.get_rng_state(device)
            ckpt.save_tensors(tensors, state_path)
            _write_metrics(out / METRICS, history)
        best = max(best, improved)
        dist.barrier()  # the checkpoint is written before any process goes on (or stops in on_epoch)
        if on_epoch is not None:
            on_epoch(row)
        say(f"epoch {epoch + 1}/{epochs}: train loss {row['train_loss']:.3f} top-1 {row['train_top1']:.1f}%  "
            f"val loss {val_loss:.3f} top-1 {val_top1:.1f}%"
            + (f" (EMA {ema_top1:.1f}%)" if ema is not None else "") + f"  lr {lr:.2e}  {row['seconds']:.1f} s")
    difference = dist.max_difference(net)
    if dist.world > 1:
        say(f"weights after training: {'identical' if difference == 0 else f'differ by up to {difference:.3g}'} "
            f"on all {dist.world} processes")
    return TrainReport(out, split.classes, len(history), start, history, best, len(split.skipped), dist.world,
                       difference, net)


def _train_loader(train_set: ImageFolder, epoch: int, seed: int, dist: Dist, per: int, workers: int,
                  lone: bool) -> Any:
    """The epoch's loader: one process shuffles with a generator seeded by (seed, epoch), as it always has;
    several read their shards of a DistributedSampler's shuffle, seeded alike."""
    sampler: torch.utils.data.DistributedSampler[Any] | None = None
    order = torch.Generator().manual_seed(seed * 100_003 + epoch)
    if dist.world > 1:
        sampler = torch.utils.data.DistributedSampler(train_set, num_replicas=dist.world, rank=dist.rank,
                                                      shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
    return torch.utils.data.DataLoader(train_set, batch_size=per, shuffle=sampler is None, sampler=sampler,
                                       generator=order if sampler is None else None, num_workers=workers,
                                       drop_last=lone, pin_memory=dist.device.type == "cuda")
