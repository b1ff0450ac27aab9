"""``train()``: a plain PyTorch training loop with the seed papers' recipe.

AdamW (no weight decay on norms, biases and layer scales), a per-step schedule of linear warm-up then cosine
decay to ``min_lr``, label-smoothed cross-entropy, stochastic depth at the recipe's rate, an optional EMA of
the weights, validation top-1 after every epoch, a checkpoint after every epoch (written atomically) and
resume from it, ``metrics.csv`` with one row per epoch.

Before each evaluation the BatchNorm statistics are recomputed over up to ``BN_BATCHES`` training batches
(precise BN, as in pycls): the running averages carry the huge activations of the first steps for a long
time, so short runs evaluate badly without it (measured on the texture set of ``tests/textures.py``,
EMO-1M at 64 px after 4 epochs: validation top-1 16.9% with the running averages, 45.6% recomputed).

Shortened runs: with ``epochs`` below the recipe's, the warm-up shrinks in proportion
(``warmup_epochs * epochs / recipe.epochs``); with another batch the learning rates scale linearly.
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
from designspace.train.data import ImageFolder, Split, scan

__all__ = ["TrainConfig", "TrainReport", "lr_at", "train"]

log = logging.getLogger("designspace")
CHECKPOINT, BEST, METRICS = "checkpoint.pt", "best.pt", "metrics.csv"
ARCH_FILE, RECIPE_FILE = "arch.yaml", "recipe.yaml"
BN_BATCHES = 20
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
        batch_size: images per step (the recipe's learning rate is scaled to it).
        lr: peak learning rate at ``batch_size``, replacing the recipe's scaled one.
        resolution: input side in pixels (default: the recipe's, else the Arch's).
        val_fraction: held-out share per class when the data has no ``train``/``val`` folders.
        workers: DataLoader worker processes.
        device: ``"cpu"`` or ``"cuda"``.
        seed: seed of weights, split, order and augmentation.
        progress: show a progress bar.
        split: a scan of ``data`` made beforehand (:func:`designspace.train.data.scan`; a search scans once for
            all its trials), ``None`` to scan here.
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
    workers: int = 0
    device: str = "cpu"
    seed: int = 0
    progress: bool = True
    split: Split | None = field(default=None, compare=False, repr=False)


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
    """

    out: Path
    classes: tuple[str, ...]
    epochs: int
    resumed_from: int
    history: list[dict[str, float]] = field(default_factory=list)
    best_top1: float = 0.0
    skipped: int = 0


def lr_at(step: int, total: int, warmup: int, peak: float, warmup_lr: float, min_lr: float) -> float:
    """Learning rate at optimizer step ``step`` (0-based) of ``total``: linear warm-up over ``warmup`` steps from
    ``warmup_lr`` to ``peak``, then half-cosine from ``peak`` to ``min_lr`` at ``total``."""
    if step < warmup:
        return warmup_lr + (peak - warmup_lr) * step / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return min_lr + 0.5 * (peak - min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        # norms, biases and layer scales (1-d) are not decayed, as in timm/DeiT
        (no_decay if p.ndim <= 1 or name.endswith((".gamma", "layer_scale")) else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _save(obj: Any, path: Path) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, path)  # a kill mid-write leaves the previous checkpoint whole


def _write_metrics(path: Path, history: list[dict[str, float]]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for row in history:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    os.replace(tmp, path)


@torch.no_grad()
def _precise_bn(model: nn.Module, loader: Any, device: torch.device, batches: int = BN_BATCHES) -> None:
    """Replaces every BatchNorm's running mean and variance by their average over ``batches`` training batches."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches seen
    model.train()
    for i, (x, _) in enumerate(loader):
        if i >= batches:
            break
        model(x.to(device))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum


@torch.no_grad()
def _evaluate(model: nn.Module, loader: Any, device: torch.device) -> tuple[float, float]:
    """(mean cross-entropy, top-1 %) over ``loader``."""
    model.eval()
    loss = correct = seen = 0.0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        logits = model(x)
        loss += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
        correct += float((logits.argmax(1) == y).sum())
        seen += len(y)
    return loss / max(seen, 1), 100.0 * correct / max(seen, 1)


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


def train(cfg: TrainConfig, echo: Callable[[str], None] | None = None,
          on_epoch: Callable[[dict[str, float]], None] | None = None) -> TrainReport:
    """Trains ``cfg.arch`` on ``cfg.data`` (see the module docstring); resumes from ``cfg.out`` when it holds a
    checkpoint of the same run.

    Args:
        cfg: the run.
        echo: called with one line per epoch (and on resume); ``None`` for silence.
        on_epoch: called with each epoch's ``metrics.csv`` row (epochs counted from 1; top-1 in %), after that
            epoch's checkpoint is written; on resume first with the rows of the epochs already done. An exception
            it raises stops the run and propagates (the checkpoint stays: a rerun resumes after that epoch).
            The search's pruning (:mod:`designspace.search.trained`) stops trials this way.

    Raises:
        DataError: a missing or unusable dataset folder.
        DocumentError: an unreadable Arch or recipe; an Arch invalid at the asked resolution.
        DesignspaceError: a checkpoint in ``cfg.out`` from another run; bad settings.
    """
    say = echo or (lambda _line: None)
    if cfg.batch_size < 1 or (cfg.epochs is not None and cfg.epochs < 1):
        raise DesignspaceError(f"batch size and epochs must be at least 1, got {cfg.batch_size} and {cfg.epochs}")
    if cfg.resolution is not None and cfg.resolution < 1:
        raise DesignspaceError(f"the resolution must be at least 1 pixel, got {cfg.resolution}")
    if cfg.lr is not None and not cfg.lr > 0:
        raise DesignspaceError(f"the learning rate must be > 0, got {cfg.lr}")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise DesignspaceError("--device cuda, but torch sees no GPU (fix: --device cpu)")
    arch, recipe = _resolve(cfg)
    split = cfg.split if cfg.split is not None else scan(cfg.data, cfg.val_fraction, cfg.seed)
    resolution = cfg.resolution or recipe.resolution or arch.resolution
    drop_path = recipe.drop_path if recipe.drop_path is not None else arch.drop_path_rate
    try:
        arch = dataclasses.replace(arch, num_classes=len(split.classes), resolution=resolution,
                                   drop_path_rate=drop_path)
    except DocumentError as err:
        raise DocumentError(f"the Arch cannot run at {resolution}x{resolution}: {err}") from None
    epochs = cfg.epochs or recipe.epochs
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(cfg.device)

    from designspace.network import Network

    torch.manual_seed(cfg.seed)
    model = Network(arch).to(device)
    peak = cfg.lr if cfg.lr is not None else recipe.scaled_lr(cfg.batch_size)
    optimizer = torch.optim.AdamW(_param_groups(model, recipe.weight_decay), lr=peak, betas=recipe.betas)
    ema = copy.deepcopy(model).eval() if recipe.ema_decay is not None else None
    train_set = ImageFolder(split.train, resolution, train=True, crop_scale=recipe.crop_scale, hflip=recipe.hflip,
                            seed=cfg.seed)
    val_set = ImageFolder(split.val, resolution, train=False)
    drop_last = len(train_set) > cfg.batch_size  # a batch of one breaks BatchNorm after pooling
    steps_per_epoch = len(train_set) // cfg.batch_size if drop_last else 1
    total = steps_per_epoch * epochs
    warmup = round(recipe.warmup_epochs * min(1.0, epochs / recipe.epochs) * steps_per_epoch)
    val_loader = torch.utils.data.DataLoader(val_set, batch_size=cfg.batch_size, num_workers=cfg.workers)

    history: list[dict[str, float]] = []
    start, best = 0, 0.0
    state_path = out / CHECKPOINT
    if state_path.exists():
        try:
            state = torch.load(state_path, map_location=device, weights_only=False)
        except Exception as err:  # a checkpoint torch cannot read
            raise DesignspaceError(f"{state_path}: cannot read the checkpoint ({err}) (fix: another --out, or delete "
                                   "it to start over)") from None
        if state.get("fingerprint") != arch.fingerprint or tuple(state.get("classes", ())) != split.classes:
            raise DesignspaceError(f"{state_path}: a checkpoint of another run (another Arch, resolution or classes) "
                                   "(fix: another --out, or delete it to start over)")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None and state.get("ema") is not None:
            ema.load_state_dict(state["ema"])
        start, best, history = int(state["epoch"]), float(state["best_top1"]), list(state["history"])
        torch.set_rng_state(state["rng"])
        say(f"resuming {out} after epoch {start} of {epochs} (best val top-1 {best:.2f}%)")
        for done in history:
            if on_epoch is not None:
                on_epoch(done)
    (out / ARCH_FILE).write_text(arch.to_yaml(), encoding="utf-8")
    (out / RECIPE_FILE).write_text(recipe.to_yaml(), encoding="utf-8")
    say(f"training {arch.name or arch.fingerprint}: {sum(p.numel() for p in model.parameters()):,} params, "
        f"{len(split.classes)} classes, {len(split.train)} train / {len(split.val)} val images at {resolution}px, "
        f"recipe {recipe.name} (lr {peak:.3g} at batch {cfg.batch_size}, {epochs} epochs, warm-up {warmup} steps)")

    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    for epoch in range(start, epochs):
        began = time.perf_counter()
        train_set.epoch = epoch
        order = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        loader = torch.utils.data.DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True, generator=order,
                                             num_workers=cfg.workers, drop_last=drop_last)
        model.train()
        bar = _bar(loader, f"epoch {epoch + 1}/{epochs}", cfg.progress)
        loss_sum = correct = seen = 0.0
        lr = peak
        for i, (x, y) in enumerate(bar):
            step = epoch * steps_per_epoch + i
            lr = lr_at(step, total, warmup, peak, recipe.warmup_lr, recipe.min_lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y = x.to(device), y.to(device)
            logits = model(x)
            loss = criterion(logits, y)
            if not torch.isfinite(loss.detach()):
                raise DesignspaceError(f"the loss became {loss.item()} at epoch {epoch + 1}, step {i} (fix: a lower "
                                       "learning rate: --lr or a smaller batch)")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if ema is not None:
                _ema_update(ema, model, recipe.ema_decay or 0.0)
            loss_sum += loss.item() * len(y)
            correct += float((logits.argmax(1) == y).sum())
            seen += len(y)
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", lr=f"{lr:.2e}")
        _precise_bn(model, loader, device)
        if ema is not None:
            _precise_bn(ema, loader, device)
        val_loss, val_top1 = _evaluate(model, val_loader, device)
        ema_top1 = _evaluate(ema, val_loader, device)[1] if ema is not None else float("nan")
        row = {"epoch": epoch + 1, "train_loss": loss_sum / max(seen, 1), "train_top1": 100.0 * correct / max(seen, 1),
               "val_loss": val_loss, "val_top1": val_top1, "val_top1_ema": ema_top1, "lr": lr,
               "seconds": time.perf_counter() - began}
        history.append(row)
        improved = max(val_top1, 0.0 if math.isnan(ema_top1) else ema_top1)
        if improved > best or epoch == 0:
            best = max(best, improved)
            weights = ema if ema is not None and ema_top1 >= val_top1 else model
            _save({"model": weights.state_dict(), "arch": arch.to_yaml(), "classes": list(split.classes),
                   "val_top1": improved, "epoch": epoch + 1}, out / BEST)
        _save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
               "ema": ema.state_dict() if ema is not None else None, "epoch": epoch + 1, "best_top1": best,
               "history": history, "fingerprint": arch.fingerprint, "classes": list(split.classes),
               "rng": torch.get_rng_state(), "recipe": recipe.to_dict()}, state_path)
        _write_metrics(out / METRICS, history)
        if on_epoch is not None:
            on_epoch(row)
        say(f"epoch {epoch + 1}/{epochs}: train loss {row['train_loss']:.3f} top-1 {row['train_top1']:.1f}%  "
            f"val loss {val_loss:.3f} top-1 {val_top1:.1f}%"
            + (f" (EMA {ema_top1:.1f}%)" if ema is not None else "") + f"  lr {lr:.2e}  {row['seconds']:.1f} s")
    return TrainReport(out, split.classes, len(history), start, history, best, len(split.skipped))


@torch.no_grad()
def _ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.mul_(decay).add_(p.detach(), alpha=1 - decay)
    for eb, b in zip(ema.buffers(), model.buffers(), strict=True):
        eb.copy_(b)


def _bar(loader: Any, desc: str, show: bool) -> Any:
    if not show:
        return loader
    try:
        from tqdm import tqdm
    except ImportError:
        return loader
    return tqdm(loader, desc=desc, leave=False, unit="batch")
