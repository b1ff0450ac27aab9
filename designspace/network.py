"""Arch -> ``nn.Module``.

The network is ``stem -> stages (downsample?, blocks) -> head``; module names follow the plan
(``stem``, ``stages.2.downsample``, ``stages.2.blocks.5``, ``head``) so that per-module counts from
tracing line up with the analytic counts. Components declare the layout they work in (NCHW or
NHWC); the network permutes only where two neighbours differ.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from designspace import zoo
from designspace.arch import Arch
from designspace.plan import Placement, plan

__all__ = ["Network", "build_model", "load_arch"]

_TO_NHWC = (0, 2, 3, 1)
_TO_NCHW = (0, 3, 1, 2)


def _perm(current: str, wanted: str) -> tuple[int, ...] | None:
    if current == wanted:
        return None
    return _TO_NHWC if wanted == "nhwc" else _TO_NCHW


def _module(p: Placement) -> nn.Module:
    rates = p.drop_path
    dp: float | tuple[float, ...] = (rates[0] if len(rates) == 1 else rates) if rates else 0.0
    return p.component.build(p.site, p.layer.kwargs(), dp)


class NetworkStage(nn.Module):
    """A stage: an optional downsampling layer, then blocks; permutes between layouts as planned."""

    def __init__(self, downsample: nn.Module | None, blocks: list[nn.Module], perms: list[tuple[int, ...] | None]):
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.ModuleList(blocks)
        self._perms = perms

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mods = ([self.downsample] if self.downsample is not None else []) + list(self.blocks)
        for perm, m in zip(self._perms, mods, strict=True):
            if perm is not None:
                x = x.permute(*perm)
            x = m(x)
        return x


class Network(nn.Module):
    """The ``nn.Module`` of an Arch. Input ``(B, in_chans, R, R)``, output ``(B, num_classes)`` logits.

    Attributes:
        arch: the Arch it was built from.
    """

    def __init__(self, arch: Arch) -> None:
        super().__init__()
        from designspace.resources import check_fits

        check_fits(arch)  # before any weight is allocated: an absurd Arch is refused with its estimate
        self.arch = arch
        placements = plan(arch)
        layout = "nchw"

        def step(p: Placement) -> tuple[nn.Module, tuple[int, ...] | None]:
            nonlocal layout
            lin, lout = p.component.layouts(p.layer.kwargs())
            perm = _perm(layout, lin)
            layout = lout
            return _module(p), perm

        self.stem, _ = step(placements[0])
        stages: list[NetworkStage] = []
        by_stage: dict[int, list[Placement]] = {}
        for p in placements[1:-1]:
            by_stage.setdefault(p.where[1], []).append(p)
        for i in range(len(arch.stages)):
            downsample, blocks, perms = None, [], []
            for p in by_stage[i]:
                module, perm = step(p)
                perms.append(perm)
                if p.role == "downsample":
                    downsample = module
                else:
                    blocks.append(module)
            stages.append(NetworkStage(downsample, blocks, perms))
        self.stages = nn.ModuleList(stages)
        self.head, self._head_perm = step(placements[-1])

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Stem and stages; the layout of the result is that of the last component."""
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x)
        if self._head_perm is not None:
            x = x.permute(*self._head_perm)
        return self.head(x)

    def example_input(self, batch: int = 1) -> torch.Tensor:
        """A random input of the right shape."""
        r = self.arch.resolution
        return torch.randn(batch, self.arch.in_chans, r, r)


def load_arch(source: Arch | str | Path) -> Arch:
    """An Arch from itself, a YAML file path, or a zoo name (``"iformer_m"``).

    Raises:
        DocumentError: unreadable or invalid file, or an unknown name (the message lists the zoo).
    """
    if isinstance(source, Arch):
        return source
    path = Path(source)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return Arch.from_file(path)
    return zoo.load(str(source))


def build_model(arch: Arch | str | Path) -> Network:
    """Builds the network of an Arch, an Arch YAML file or a zoo model name, in train mode.

    Example: ``model = designspace.build_model("results/study/archs/best.yaml")``.
    """
    return Network(load_arch(arch))
