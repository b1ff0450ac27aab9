"""MobileNetV2 (Sandler et al., 2018): the inverted residual (MBConv), its stem and head.

Construction as in timm's ``mobilenetv2_100`` (faithful to the paper and torchvision):

* inverted residual: PW expand + BN + act -> DW k (stride here) + BN + act -> [SE] -> PW project +
  BN (linear bottleneck); residual iff stride 1 and ``in_chs == out_chs``. With ``exp_ratio`` 1 the
  expansion is dropped: that is MobileNetV2's depthwise-separable first block.
* stem: 3x3 stride-2 convolution, BN, ReLU6. Head: 1x1 conv to 1280 + BN + ReLU6, global average
  pool, (dropout), Linear.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from designspace.blocks.layers import ACTIVATIONS, ConvNorm, DropPath, SqueezeExcite
from designspace.blocks.registry import Component, ParamSpec, Site, register
from designspace.blocks.tally import Tally, conv_out

__all__ = ["MBConv", "MobileNetV2Head", "MobileNetV2Stem", "goog_init"]

FAMILY = "MobileNetV2"


def goog_init(module: nn.Module) -> None:
    """The TF/EfficientNet init timm applies to MobileNetV2: conv N(0, sqrt(2 / fan_out)),
    BN (1, 0), Linear U(+-1/sqrt(out_features))."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(m.weight.shape[0])
            nn.init.uniform_(m.weight, -bound, bound)
            nn.init.zeros_(m.bias)


def _mid(in_chs: int, exp_ratio: float) -> int:
    # torchvision's rounding; exact for every published width
    return round(in_chs * exp_ratio)


def _se_chs(in_chs: int, se_ratio: float) -> int:
    # EfficientNet's rule: the squeeze width follows the block input, not the expanded width
    return max(1, round(in_chs * se_ratio))


class MBConv(nn.Module):
    """Inverted residual block (NCHW).

    Args:
        in_chs: input channels.
        out_chs: output channels.
        stride: depthwise stride (1 or 2).
        exp_ratio: expansion ``t``; hidden width ``round(in_chs * t)``; 1 drops the expansion.
        kernel_size: depthwise kernel.
        se_ratio: squeeze-excite width as a fraction of ``in_chs``; 0 disables SE.
        act: activation after the expansion and the depthwise conv.
        bn_eps: BatchNorm epsilon.
        drop_path_rate: stochastic depth of the residual branch.
    """

    def __init__(
        self, in_chs: int, out_chs: int, stride: int = 1, *, exp_ratio: float = 6.0,
        kernel_size: int = 3, se_ratio: float = 0.0, act: str = "relu6", bn_eps: float = 1e-5,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        mid = _mid(in_chs, exp_ratio)
        self.has_skip = stride == 1 and in_chs == out_chs
        self.conv_pw = ConvNorm(in_chs, mid, 1, eps=bn_eps, act=act) if exp_ratio != 1 else nn.Identity()
        self.conv_dw = ConvNorm(mid, mid, kernel_size, stride, groups=mid, eps=bn_eps, act=act)
        self.se = SqueezeExcite(mid, _se_chs(in_chs, se_ratio), act) if se_ratio > 0 else nn.Identity()
        self.conv_pwl = ConvNorm(mid, out_chs, 1, eps=bn_eps)
        self.drop_path = DropPath(drop_path_rate) if self.has_skip else nn.Identity()
        goog_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.conv_pwl(self.se(self.conv_dw(self.conv_pw(x))))
        return shortcut + self.drop_path(x) if self.has_skip else x


def _mbconv_count(site: Site, p: Mapping[str, Any]) -> Tally:
    t = Tally()
    mid = _mid(site.in_chs, p["exp_ratio"])
    hw = site.hw
    if p["exp_ratio"] != 1:
        t.conv(site.in_chs, mid, 1, hw).batchnorm(mid, site.tokens)
    out_hw = (conv_out(hw[0], p["kernel_size"], site.stride), conv_out(hw[1], p["kernel_size"], site.stride))
    out_tokens = out_hw[0] * out_hw[1]
    t.conv(mid, mid, p["kernel_size"], out_hw, groups=mid).batchnorm(mid, out_tokens)
    if p["se_ratio"] > 0:
        rd = _se_chs(site.in_chs, p["se_ratio"])
        t.pool(mid * out_tokens).conv(mid, rd, 1, (1, 1), bias=True).conv(rd, mid, 1, (1, 1), bias=True)
    return t.conv(mid, site.out_chs, 1, out_hw).batchnorm(site.out_chs, out_tokens)


class MobileNetV2Stem(nn.Sequential):
    """3x3 stride-2 conv (no bias) + BN + act, to ``out_chs`` (NCHW)."""

    def __init__(self, in_chs: int, out_chs: int, *, kernel_size: int = 3, act: str = "relu6") -> None:
        super().__init__()
        self.conv = ConvNorm(in_chs, out_chs, kernel_size, 2, act=act)
        goog_init(self)


class MobileNetV2Head(nn.Module):
    """1x1 conv to ``width`` + BN + act, global average pool, dropout, Linear (NCHW in)."""

    def __init__(
        self, in_chs: int, num_classes: int, *, width: int = 1280, act: str = "relu6", dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.conv_head = ConvNorm(in_chs, width, 1, act=act) if width > 0 else nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(width if width > 0 else in_chs, num_classes)
        goog_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.conv_head(x)).flatten(1)
        return self.classifier(self.dropout(x))


def _stem_count(site: Site, p: Mapping[str, Any]) -> Tally:
    out_hw = _stem_out(site, p)
    return Tally().conv(site.in_chs, site.out_chs, p["kernel_size"], out_hw).batchnorm(
        site.out_chs, out_hw[0] * out_hw[1])


def _stem_out(site: Site, p: Mapping[str, Any]) -> tuple[int, int]:
    return (conv_out(site.hw[0], p["kernel_size"], 2), conv_out(site.hw[1], p["kernel_size"], 2))


def _head_count(site: Site, p: Mapping[str, Any]) -> Tally:
    t = Tally()
    width = p["width"] or site.in_chs
    if p["width"]:
        t.conv(site.in_chs, width, 1, site.hw).batchnorm(width, site.tokens)
    return t.pool(width * site.tokens).linear(width, site.out_chs, 1)


_ACT = ParamSpec("act", str, "relu6", "activation", choices=ACTIVATIONS)

register(Component(
    name="mbconv", kind="block", family=FAMILY,
    doc="MobileNetV2 inverted residual: PW expand, DW k x k (strided), optional SE, linear PW "
        "project, residual when shapes match; exp_ratio 1 is the depthwise-separable first block.",
    params=(
        ParamSpec("exp_ratio", float, 6.0, "expansion t; hidden width round(in_chs * t)", low=1.0, high=12.0),
        ParamSpec("kernel_size", int, 3, "depthwise kernel (pixels)", low=1, high=11, odd=True),
        ParamSpec("se_ratio", float, 0.0, "squeeze-excite width / in_chs; 0 = no SE", low=0.0, high=1.0),
        _ACT,
        ParamSpec("bn_eps", float, 1e-5, "BatchNorm epsilon", low=0.0),
    ),
    build=lambda s, p, dp: MBConv(s.in_chs, s.out_chs, s.stride, drop_path_rate=dp, **p),
    count=_mbconv_count,
    strides=(1, 2),
    changes_width=True,
))

register(Component(
    name="mbv2_stem", kind="stem", family=FAMILY,
    doc="MobileNetV2 stem: k x k stride-2 conv (no bias), BN, ReLU6.",
    params=(ParamSpec("kernel_size", int, 3, "kernel (pixels)", low=1, high=11, odd=True), _ACT),
    build=lambda s, p, dp: MobileNetV2Stem(s.in_chs, s.out_chs, **p),
    count=_stem_count,
    out_hw=_stem_out,
))

register(Component(
    name="mbv2_head", kind="head", family=FAMILY,
    doc="MobileNetV2 head: 1x1 conv to `width` + BN + ReLU6, global average pool, dropout, Linear.",
    params=(
        ParamSpec("width", int, 1280, "channels of the 1x1 head conv; 0 = no head conv", low=0),
        _ACT,
        ParamSpec("dropout", float, 0.0, "dropout before the classifier (training only)", low=0.0, high=0.9),
    ),
    build=lambda s, p, dp: MobileNetV2Head(s.in_chs, s.out_chs, **p),
    count=_head_count,
))
