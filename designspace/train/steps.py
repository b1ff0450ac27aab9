"""The training loop's parts: parameter groups, the schedule, precise BN, evaluation, EMA, the data loaders.

Kept apart from :mod:`designspace.train.loop` (the run: settings, checkpoints, resume, the epoch loop) so that
each stays short; :mod:`designspace.train.distributed` holds what several processes add.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from designspace import interrupts
from designspace.train.distributed import Dist

__all__ = ["BN_BATCHES", "Batches", "autocast", "ema_update", "evaluate", "lr_at", "param_groups", "precise_bn",
           "progress_bar"]

BN_BATCHES = 20


def lr_at(step: int, total: int, warmup: int, peak: float, warmup_lr: float, min_lr: float) -> float:
    """Learning rate at optimizer step ``step`` (0-based) of ``total``: linear warm-up over ``warmup`` steps from
    ``warmup_lr`` to ``peak``, then half-cosine from ``peak`` to ``min_lr`` at ``total``."""
    if step < warmup:
        return warmup_lr + (peak - warmup_lr) * step / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return min_lr + 0.5 * (peak - min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW's two groups: decayed weights, and the 1-d parameters (norms, biases, layer scales) left undecayed,
    as in timm/DeiT."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith((".gamma", "layer_scale")) else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    """Mixed precision of ``dtype`` on ``device`` (``None``: full precision)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


class Batches:
    """Moves a loader's batches to the training device (and memory format)."""

    def __init__(self, loader: Any, device: torch.device, channels_last: bool) -> None:
        self.loader = loader
        self.device = device
        self.format = torch.channels_last if channels_last else torch.contiguous_format

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        blocking = self.device.type != "cuda"
        for x, y in self.loader:
            interrupts.check()  # a Ctrl-C swallowed during the last batch stops the run here
            yield (x.to(self.device, non_blocking=not blocking, memory_format=self.format),
                   y.to(self.device, non_blocking=not blocking))

    def __len__(self) -> int:
        return len(self.loader)


@torch.no_grad()
def precise_bn(model: nn.Module, batches: Batches, dist: Dist, amp: torch.dtype | None,
               n: int = BN_BATCHES) -> None:
    """Replaces every BatchNorm's running mean and variance by their average over ``n`` training batches
    (each process over its shard, then averaged over the processes)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches seen
    model.train()
    with autocast(batches.device, amp):
        for i, (x, _) in enumerate(batches):
            if i >= n:
                break
            model(x)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    dist.average_buffers(model)


@torch.no_grad()
def evaluate(model: nn.Module, batches: Batches, dist: Dist, amp: torch.dtype | None) -> tuple[float, float]:
    """(mean cross-entropy, top-1 %) over ``batches`` (every process's shard, summed over the processes)."""
    model.eval()
    loss = correct = seen = 0.0
    with autocast(batches.device, amp):
        for x, y in batches:
            logits = model(x).float()
            loss += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
            correct += float((logits.argmax(1) == y).sum())
            seen += len(y)
    loss, correct, seen = dist.sum(loss, correct, seen)
    return loss / max(seen, 1), 100.0 * correct / max(seen, 1)


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * model`` for parameters; buffers copied."""
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.mul_(decay).add_(p.detach(), alpha=1 - decay)
    for eb, b in zip(ema.buffers(), model.buffers(), strict=True):
        eb.copy_(b)


def progress_bar(loader: Any, desc: str, show: bool) -> Any:
    """``loader`` wrapped in a tqdm bar when ``show`` and tqdm is installed."""
    if not show:
        return loader
    try:
        from tqdm import tqdm
    except ImportError:
        return loader
    return tqdm(loader, desc=desc, leave=False, unit="batch")
