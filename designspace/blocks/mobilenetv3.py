"""MobileNetV3 (Howard et al., 2019): its inverted residual with squeeze-excite, the plain conv block
closing its trunk, and its "efficient" head.

Construction as in timm's ``mobilenetv3_large_100`` (``_gen_mobilenet_v3``, ``InvertedResidual``,
``DepthwiseSeparableConv``, ``ConvBnAct``, ``SqueezeExcite``; facts read there, code our own):

* ``mbv3``: PW expand + BN + act -> DW k (stride here) + BN + act -> [SE] -> PW project + BN (linear
  bottleneck); residual iff stride 1 and ``in_chs == out_chs``. The hidden width is
  ``make_divisible(in_chs * exp_ratio, 8)``; ``exp_ratio`` 1 drops the expansion (timm's
  ``DepthwiseSeparableConv``, MobileNetV3's first block). The SE squeezes the *expanded* width to
  ``make_divisible(mid * se_ratio, 8)`` with ReLU inside and a hard-sigmoid gate. ``act`` is ReLU or
  hard-swish per layer, as the paper's Table 1 sets it.
* ``conv_bn_act``: k x k conv (no bias) + BN + act, no residual: MobileNetV3's 1x1 conv to 960 (6x the
  last width) before pooling; MobileNetV4 uses it too (its trunk's last layer, and Conv-S's first four).
* ``mbv3_head``: global average pool, 1x1 conv with bias to 1280, act (hard-swish), dropout, Linear. The
  pooling comes first, so the 1280-wide conv runs on one pixel (the paper's "efficient last stage").
  ``mbv4_head`` (:mod:`designspace.blocks.mobilenetv4`) is the same with BN instead of the bias.

The stem is MobileNetV2's (``mbv2_stem``: 3x3 stride-2 conv, BN, act) with ``act: hardswish``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from designspace.blocks.layers import ACTIVATIONS, ConvNorm, DropPath, make_act
from designspace.blocks.mbconv import goog_init
from designspace.blocks.registry import Component, ParamSpec, Site, register
from designspace.blocks.tally import Tally, conv_out

__all__ = ["ConvBnAct", "EfficientHead", "HardSigmoidSE", "MobileNetV3Block", "efficient_head_count",
           "make_divisible"]

FAMILY = "MobileNetV3"


def make_divisible(value: float, divisor: int = 8, round_limit: float = 0.9) -> int:
    """``value`` rounded to the nearest multiple of ``divisor`` (at least ``divisor``), never more than
    10% below ``value``: the TF/timm rule for every MobileNet width (channels)."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < round_limit * value else new


def _mid(in_chs: int, exp_ratio: float) -> int:
    return in_chs if exp_ratio == 1 else make_divisible(in_chs * exp_ratio)


class HardSigmoidSE(nn.Module):
    """MobileNetV3's squeeze-excite: mean over H, W, 1x1 reduce (bias), ReLU, 1x1 expand (bias), hard-sigmoid
    gate ``relu6(x + 3) / 6`` (written out, as timm's ``hard_sigmoid``: ops every exporter and counter knows)."""

    def __init__(self, chs: int, rd_chs: int) -> None:
        super().__init__()
        self.conv_reduce = nn.Conv2d(chs, rd_chs, 1, bias=True)
        self.act = nn.ReLU()
        self.conv_expand = nn.Conv2d(rd_chs, chs, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.conv_expand(self.act(self.conv_reduce(x.mean((2, 3), keepdim=True))))
        return x * (F.relu6(s + 3.0) / 6.0)


class MobileNetV3Block(nn.Module):
    """MobileNetV3 inverted residual (NCHW).

    Args:
        in_chs: input channels.
        out_chs: output channels.
        stride: depthwise stride (1 or 2).
        exp_ratio: hidden width ``make_divisible(in_chs * exp_ratio, 8)``; 1 drops the expansion.
        kernel_size: depthwise kernel.
        se_ratio: squeeze width as a fraction of the hidden width (rounded to a multiple of 8); 0 = no SE.
        act: activation after the expansion and the depthwise conv (``relu`` or ``hardswish`` in the paper).
        drop_path_rate: stochastic depth of the residual branch.
    """

    def __init__(
        self, in_chs: int, out_chs: int, stride: int = 1, *, exp_ratio: float = 6.0, kernel_size: int = 3,
        se_ratio: float = 0.0, act: str = "hardswish", drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        mid = _mid(in_chs, exp_ratio)
        self.has_skip = stride == 1 and in_chs == out_chs
        self.conv_pw = ConvNorm(in_chs, mid, 1, act=act) if exp_ratio != 1 else nn.Identity()
        self.conv_dw = ConvNorm(mid, mid, kernel_size, stride, groups=mid, act=act)
        self.se = HardSigmoidSE(mid, make_divisible(mid * se_ratio)) if se_ratio > 0 else nn.Identity()
        self.conv_pwl = ConvNorm(mid, out_chs, 1)
        self.drop_path = DropPath(drop_path_rate) if self.has_skip else nn.Identity()
        goog_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.conv_pwl(self.se(self.conv_dw(self.conv_pw(x))))
        return shortcut + self.drop_path(x) if self.has_skip else x


def _out_hw(site: Site, kernel: int) -> tuple[int, int]:
    return (conv_out(site.hw[0], kernel, site.stride), conv_out(site.hw[1], kernel, site.stride))


def _mbv3_out(site: Site, p: Mapping[str, Any]) -> tuple[int, int]:
    return _out_hw(site, p["kernel_size"])


def _mbv3_count(site: Site, p: Mapping[str, Any]) -> Tally:
    t = Tally()
    mid = _mid(site.in_chs, p["exp_ratio"])
    if p["exp_ratio"] != 1:
        t.conv(site.in_chs, mid, 1, site.hw).batchnorm(mid, site.tokens)
    out_hw = _mbv3_out(site, p)
    n = out_hw[0] * out_hw[1]
    t.conv(mid, mid, p["kernel_size"], out_hw, groups=mid).batchnorm(mid, n)
    if p["se_ratio"] > 0:
        rd = make_divisible(mid * p["se_ratio"])
        t.pool(mid * n).conv(mid, rd, 1, (1, 1), bias=True).conv(rd, mid, 1, (1, 1), bias=True)
    return t.conv(mid, site.out_chs, 1, out_hw).batchnorm(site.out_chs, n)


class ConvBnAct(nn.Sequential):
    """k x k conv (no bias) at ``stride`` + BN + act, no residual (timm's ``ConvBnAct``; NCHW)."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, *, kernel_size: int = 1, act: str = "relu") -> None:
        super().__init__()
        self.conv = ConvNorm(in_chs, out_chs, kernel_size, stride, act=act)
        goog_init(self)


def _cba_count(site: Site, p: Mapping[str, Any]) -> Tally:
    out_hw = _out_hw(site, p["kernel_size"])
    return Tally().conv(site.in_chs, site.out_chs, p["kernel_size"], out_hw).batchnorm(
        site.out_chs, out_hw[0] * out_hw[1])


class EfficientHead(nn.Module):
    """Global average pool, 1x1 conv to ``width`` (bias, or BN with ``norm``), act, dropout, Linear (NCHW in).

    Args:
        in_chs: input channels.
        num_classes: classifier outputs.
        width: channels of the 1x1 conv after pooling.
        act: its activation.
        norm: BatchNorm after that conv instead of a bias (MobileNetV4).
        dropout: dropout before the classifier (training only).
    """

    def __init__(self, in_chs: int, num_classes: int, *, width: int = 1280, act: str = "hardswish",
                 norm: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv_head = nn.Conv2d(in_chs, width, 1, bias=not norm)
        self.norm_head = nn.BatchNorm2d(width) if norm else nn.Identity()
        self.act = make_act(act)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(width, num_classes)
        goog_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.norm_head(self.conv_head(self.pool(x)))).flatten(1)
        return self.classifier(self.dropout(x))


def efficient_head_count(site: Site, width: int, norm: bool) -> Tally:
    """Counts of an :class:`EfficientHead` at ``site``: the 1x1 conv and its BN run on one pixel."""
    t = Tally().pool(site.in_chs * site.tokens).conv(site.in_chs, width, 1, (1, 1), bias=not norm)
    if norm:
        t.batchnorm(width, 1)
    return t.linear(width, site.out_chs, 1)


_KERNEL = ParamSpec("kernel_size", int, 3, "depthwise kernel (pixels)", low=1, high=11, odd=True)

register(Component(
    name="mbv3", kind="block", family=FAMILY,
    doc="MobileNetV3 inverted residual: PW expand (hidden make_divisible(in * t, 8)), DW k x k (strided), "
        "optional SE (squeeze make_divisible(hidden * se_ratio, 8), ReLU, hard-sigmoid gate), linear PW "
        "project, residual when shapes match; exp_ratio 1 is the depthwise-separable first block.",
    params=(
        ParamSpec("exp_ratio", float, 6.0, "expansion t; hidden width make_divisible(in_chs * t, 8)",
                  low=1.0, high=12.0),
        _KERNEL,
        ParamSpec("se_ratio", float, 0.0, "squeeze-excite width / hidden width; 0 = no SE", low=0.0, high=1.0),
        ParamSpec("act", str, "hardswish", "activation (the paper: relu or hardswish per layer)",
                  choices=ACTIVATIONS),
    ),
    build=lambda s, p, dp: MobileNetV3Block(s.in_chs, s.out_chs, s.stride, drop_path_rate=dp, **p),
    count=_mbv3_count,
    out_hw=_mbv3_out,
    strides=(1, 2),
    changes_width=True,
))

register(Component(
    name="conv_bn_act", kind="block", family="MobileNetV3/MobileNetV4",
    doc="k x k conv (no bias), BN, act, no residual: the 1x1 conv to 960 closing MobileNetV3's and "
        "MobileNetV4's trunks, and MNV4-Conv-S's first layers.",
    params=(
        ParamSpec("kernel_size", int, 1, "kernel (pixels)", low=1, high=11, odd=True),
        ParamSpec("act", str, "relu", "activation", choices=ACTIVATIONS),
    ),
    build=lambda s, p, dp: ConvBnAct(s.in_chs, s.out_chs, s.stride, **p),
    count=_cba_count,
    out_hw=lambda s, p: _out_hw(s, p["kernel_size"]),
    strides=(1, 2),
    changes_width=True,
))

register(Component(
    name="mbv3_head", kind="head", family=FAMILY,
    doc="MobileNetV3's efficient head: global average pool, 1x1 conv with bias to `width` (no BN), "
        "hard-swish, dropout, Linear.",
    params=(
        ParamSpec("width", int, 1280, "channels of the 1x1 conv after pooling", low=1),
        ParamSpec("act", str, "hardswish", "activation", choices=ACTIVATIONS),
        ParamSpec("dropout", float, 0.0, "dropout before the classifier (training only)", low=0.0, high=0.9),
    ),
    build=lambda s, p, dp: EfficientHead(s.in_chs, s.out_chs, norm=False, **p),
    count=lambda s, p: efficient_head_count(s, p["width"], norm=False),
))
