"""Downsampling layers and heads shared by several families.

* ``conv_ln``: strided k x k conv with bias then LayerNorm: EfficientMod's between-stage patch
  embedding, and (with ``pre_norm``, the LayerNorm closing the previous stage) SMT's
  ``OverlapPatchEmbed``.
* ``norm_pool_head``: LayerNorm, global average pool, Linear: the heads of EfficientMod, EMO and
  SMT (SMT's "norm4" is this LayerNorm).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from designspace.blocks.layers import trunc_normal_init
from designspace.blocks.registry import Component, ParamSpec, Site, register
from designspace.blocks.tally import Tally, conv_out

__all__ = ["ConvLNDownsample", "NormPoolHead"]


class ConvLNDownsample(nn.Module):
    """[LayerNorm (NHWC)] -> k x k conv with bias at ``stride`` -> LayerNorm (NHWC out).

    Args:
        in_chs: input channels.
        out_chs: output channels.
        stride: conv stride.
        kernel_size: conv kernel (padding k//2).
        norm_eps: epsilon of the LayerNorm after the conv.
        pre_norm: apply a LayerNorm to the input first (input is then NHWC, else NCHW).
        pre_norm_eps: its epsilon.
    """

    def __init__(
        self, in_chs: int, out_chs: int, stride: int = 2, *, kernel_size: int = 3,
        norm_eps: float = 1e-5, pre_norm: bool = False, pre_norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.pre_norm = nn.LayerNorm(in_chs, eps=pre_norm_eps) if pre_norm else None
        self.proj = nn.Conv2d(in_chs, out_chs, kernel_size, stride, kernel_size // 2)
        self.norm = nn.LayerNorm(out_chs, eps=norm_eps)
        trunc_normal_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre_norm is not None:
            x = self.pre_norm(x).permute(0, 3, 1, 2)
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


def _conv_ln_out(site: Site, p: Mapping[str, Any]) -> tuple[int, int]:
    k = p["kernel_size"]
    return (conv_out(site.hw[0], k, site.stride), conv_out(site.hw[1], k, site.stride))


def _conv_ln_count(site: Site, p: Mapping[str, Any]) -> Tally:
    t = Tally()
    if p["pre_norm"]:
        t.layernorm(site.in_chs, site.tokens)
    out_hw = _conv_ln_out(site, p)
    t.conv(site.in_chs, site.out_chs, p["kernel_size"], out_hw, bias=True)
    return t.layernorm(site.out_chs, out_hw[0] * out_hw[1])


class NormPoolHead(nn.Module):
    """LayerNorm over channels (NHWC in), global average pool, Linear to the classes."""

    def __init__(self, in_chs: int, num_classes: int, *, norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(in_chs, eps=norm_eps)
        self.fc = nn.Linear(in_chs, num_classes)
        trunc_normal_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, H, W, C)
        return self.fc(self.norm(x).mean((1, 2)))


def _head_count(site: Site, p: Mapping[str, Any]) -> Tally:
    c, n = site.in_chs, site.tokens
    return Tally().layernorm(c, n).pool(c * n).linear(c, site.out_chs, 1)


register(Component(
    name="conv_ln", kind="downsample", family="EfficientMod/SMT",
    doc="Strided k x k conv with bias, then LayerNorm (EfficientMod's patch embedding); with "
        "pre_norm a LayerNorm first (SMT's stage-closing norm + OverlapPatchEmbed).",
    params=(
        ParamSpec("kernel_size", int, 3, "kernel (pixels), padding k//2", low=1, high=7, odd=True),
        ParamSpec("norm_eps", float, 1e-5, "epsilon of the LayerNorm after the conv", low=0.0),
        ParamSpec("pre_norm", bool, False, "LayerNorm on the input first (SMT)"),
        ParamSpec("pre_norm_eps", float, 1e-6, "epsilon of that LayerNorm", low=0.0),
    ),
    build=lambda s, p, dp: ConvLNDownsample(s.in_chs, s.out_chs, s.stride, **p),
    count=_conv_ln_count,
    out_hw=_conv_ln_out,
    strides=(1, 2),
    changes_width=True,
    layout=lambda p: ("nhwc" if p["pre_norm"] else "nchw", "nhwc"),
))

register(Component(
    name="norm_pool_head", kind="head", family="EfficientMod/EMO/SMT",
    doc="LayerNorm over channels, global average pool, Linear (EfficientMod eps 1e-5; EMO, SMT 1e-6).",
    params=(ParamSpec("norm_eps", float, 1e-5, "LayerNorm epsilon", low=0.0),),
    build=lambda s, p, dp: NormPoolHead(s.in_chs, s.out_chs, **p),
    count=_head_count,
    layout=("nhwc", "nhwc"),
))
