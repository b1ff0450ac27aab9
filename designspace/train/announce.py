"""What a training run says before its first epoch: the network, the data, the recipe, and the device settings.

Part of :mod:`designspace.train.loop` (kept apart to keep the loop short).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from designspace.arch import Arch
from designspace.recipes import Recipe
from designspace.train.data import Split, image_side
from designspace.train.distributed import Dist

__all__ = ["announce"]


def announce(say: Callable[[str], None], cfg: Any, arch: Arch, recipe: Recipe, split: Split, net: nn.Module,
              resolution: int, arch_resolution: int, peak: float, epochs: int, warmup: int, dist: Dist, per: int,
              steps: int, lone: bool, amp: torch.dtype | None, channels_last: bool, workers: int, n: int) -> None:
    """The run's opening lines (``say``: rank 0's echo): what trains on what, how (steps, partial batch, device,
    precision, layout, workers), and what it does to the data (upscaling, a resolution other than the Arch's)."""
    say(f"training {arch.name or arch.fingerprint}: {sum(p.numel() for p in net.parameters()):,} params, "
        f"{len(split.classes)} classes, {len(split.train)} train / {len(split.val)} val images at {resolution}px, "
        f"recipe {recipe.name} (lr {peak:.3g} at batch {cfg.batch_size}, {epochs} epochs, warm-up {warmup} steps)")
    mine = math.ceil(n / dist.world)
    last = mine - (steps - 1) * per
    batches = f"{steps} step{'s' if steps != 1 else ''} an epoch" + (
        f" of {per} images a process over {dist.world} processes" if dist.world > 1 else f" of {per} images")
    if lone:
        batches += "; the last image of each epoch's shuffle is left out (a batch of one breaks BatchNorm)"
    elif last != per:
        batches += f", the last of {last} (kept)"
    setup_line = [batches, f"{dist.device}", f"{str(amp).removeprefix('torch.')} autocast" if amp else "float32"]
    if channels_last:
        setup_line.append("channels-last")
    if cfg.compile:
        setup_line.append("torch.compile")
    setup_line.append(f"{workers} loader worker{'s' if workers != 1 else ''}" + (" a process" if dist.world > 1
                                                                                  else ""))
    say("  " + "; ".join(setup_line))
    side = image_side(split.train)
    if side is not None and side < resolution:
        say(f"  note: the training images are smaller than the input: median short side {side}px, upscaled to "
            f"{resolution}px (fix: --resolution {side} to train at the data's size, if the Arch runs there)")
    if resolution != arch_resolution:
        say(f"  note: the Arch is defined at {arch_resolution}px and trains at {resolution}px; arch.yaml in the "
            "run folder records the training resolution")
