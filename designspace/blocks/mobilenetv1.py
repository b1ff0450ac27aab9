"""MobileNetV1's depthwise-separable layer (Howard et al., 2017), which is also MobileOne's block at inference.

* ``dw_separable``: k x k depthwise conv at ``stride`` + BN + act, then a 1x1 conv to the output width + BN +
  act; no residual. MobileNetV1 is a stack of these (ReLU, 3x3). MobileOne (Vasu et al., CVPR 2023) trains
  over-parameterized branches that re-parameterize, for inference, into exactly one 3x3 depthwise conv and one
  1x1 conv per block, each followed by ReLU, with no skip: the same layer, with biases where this one has
  BatchNorm (BN folds into the conv's bias at inference, so the cost is the same).

Facts read in timm's ``DepthwiseSeparableConv`` (``pw_act=True``, ``noskip=True`` is MobileNetV1's layer)
and MobileOne's paper; the code is our own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from designspace.blocks.layers import ACTIVATIONS, ConvNorm
from designspace.blocks.mbconv import goog_init
from designspace.blocks.registry import Component, ParamSpec, Site, register
from designspace.blocks.tally import Tally, conv_out

__all__ = ["DepthwiseSeparable"]

FAMILY = "MobileNetV1/MobileOne"


class DepthwiseSeparable(nn.Sequential):
    """Depthwise k x k conv (stride) + BN + act, then 1x1 conv + BN + act; no residual (NCHW).

    Args:
        in_chs: input channels.
        out_chs: output channels (of the 1x1 conv).
        stride: the depthwise conv's stride.
        kernel_size: the depthwise kernel.
        act: activation after both convs.
    """

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, *, kernel_size: int = 3,
                 act: str = "relu") -> None:
        super().__init__()
        self.conv_dw = ConvNorm(in_chs, in_chs, kernel_size, stride, groups=in_chs, act=act)
        self.conv_pw = ConvNorm(in_chs, out_chs, 1, act=act)
        goog_init(self)


def _out_hw(site: Site, p: Mapping[str, Any]) -> tuple[int, int]:
    k = p["kernel_size"]
    return (conv_out(site.hw[0], k, site.stride), conv_out(site.hw[1], k, site.stride))


def _count(site: Site, p: Mapping[str, Any]) -> Tally:
    out_hw = _out_hw(site, p)
    n = out_hw[0] * out_hw[1]
    t = Tally().conv(site.in_chs, site.in_chs, p["kernel_size"], out_hw, groups=site.in_chs)
    t.batchnorm(site.in_chs, n)
    return t.conv(site.in_chs, site.out_chs, 1, out_hw).batchnorm(site.out_chs, n)


register(Component(
    name="dw_separable", kind="block", family=FAMILY,
    doc="MobileNetV1's layer and MobileOne's block at inference: depthwise k x k conv (strided) + BN + act, "
        "1x1 conv to the output width + BN + act, no residual.",
    params=(
        ParamSpec("kernel_size", int, 3, "depthwise kernel (pixels)", low=1, high=11, odd=True),
        ParamSpec("act", str, "relu", "activation after both convs", choices=ACTIVATIONS),
    ),
    build=lambda s, p, dp: DepthwiseSeparable(s.in_chs, s.out_chs, s.stride, **p),
    count=_count,
    out_hw=_out_hw,
    strides=(1, 2),
    changes_width=True,
))
