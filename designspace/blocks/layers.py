"""Primitives shared by the block families; they know nothing of any model."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ACTIVATIONS",
    "ConvNorm",
    "DropPath",
    "LayerNorm2d",
    "LayerScale",
    "Permute",
    "SqueezeExcite",
    "drop_path_rates",
    "make_act",
    "trunc_normal_init",
]

#: Activation names accepted by every ``act`` parameter.
ACTIVATIONS = ("relu", "relu6", "silu", "gelu", "hardswish", "identity")


def make_act(name: str) -> nn.Module:
    """A fresh activation module by name (GELU is the exact erf form, as in every seed paper)."""
    if name == "relu":
        return nn.ReLU()
    if name == "relu6":
        return nn.ReLU6()
    if name == "silu":
        return nn.SiLU()
    if name == "gelu":
        return nn.GELU()
    if name == "hardswish":
        return nn.Hardswish()
    if name == "identity":
        return nn.Identity()
    raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")


def drop_path_rates(total: int, max_rate: float) -> list[float]:
    """The linear stochastic-depth schedule 0 -> ``max_rate`` over ``total`` slots."""
    if total <= 1:
        return [0.0] * total
    return [max_rate * i / (total - 1) for i in range(total)]


class DropPath(nn.Module):
    """Stochastic depth: zeroes whole samples of a residual branch with probability ``p``."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class LayerScale(nn.Module):
    """Per-channel learnable scale (``gamma``), channels last or first."""

    def __init__(self, dim: int, init: float, channels_last: bool = True) -> None:
        super().__init__()
        shape = (dim,) if channels_last else (dim, 1, 1)
        self.gamma = nn.Parameter(torch.full(shape, float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW tensor (permute, normalize, permute back)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Permute(nn.Module):
    """Reorders dimensions; the network uses it between NCHW and NHWC components."""

    def __init__(self, *dims: int) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(*self.dims)

    def extra_repr(self) -> str:
        return str(self.dims)


class ConvNorm(nn.Sequential):
    """Convolution, optional BatchNorm, optional activation (``conv``, ``bn``, ``act``).

    Args:
        in_chs: input channels.
        out_chs: output channels.
        kernel_size: square kernel.
        stride: stride.
        groups: convolution groups (``in_chs`` for depthwise).
        bias: whether the convolution has a bias (usually not when followed by BN).
        norm: ``True`` adds ``BatchNorm2d(out_chs)``.
        eps: the BatchNorm epsilon.
        act: activation name or ``None``.
        padding: defaults to ``kernel_size // 2``.
    """

    def __init__(
        self, in_chs: int, out_chs: int, kernel_size: int = 1, stride: int = 1, groups: int = 1,
        bias: bool = False, norm: bool = True, eps: float = 1e-5, act: str | None = None,
        padding: int | None = None,
    ) -> None:
        super().__init__()
        pad = kernel_size // 2 if padding is None else padding
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, pad, groups=groups, bias=bias)
        if norm:
            self.bn = nn.BatchNorm2d(out_chs, eps=eps)
        if act is not None:
            self.act = make_act(act)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: global mean, 1x1 reduce (bias), act, 1x1 expand (bias), sigmoid gate."""

    def __init__(self, chs: int, rd_chs: int, act: str = "relu") -> None:
        super().__init__()
        self.conv_reduce = nn.Conv2d(chs, rd_chs, 1, bias=True)
        self.act = make_act(act)
        self.conv_expand = nn.Conv2d(rd_chs, chs, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        s = self.conv_expand(self.act(self.conv_reduce(s)))
        return x * torch.sigmoid(s)


def trunc_normal_init(module: nn.Module, std: float = 0.02, convs: bool = False) -> None:
    """Truncated-normal init of Linear (and, if ``convs``, Conv2d) weights, zero biases, norms at
    weight 1 and bias 0: timm's ``trunc_normal_(std=.02)``, whose cut at +-2 (absolute) the
    seed papers' code inherits."""
    for m in module.modules():
        if isinstance(m, nn.Linear) or (convs and isinstance(m, nn.Conv2d)):
            nn.init.trunc_normal_(m.weight, std=std, a=-2.0, b=2.0)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.LayerNorm, nn.BatchNorm2d, nn.BatchNorm1d)) and m.weight is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
