"""MobileNetV4 (Qin et al., 2024): the Universal Inverted Bottleneck, Mobile MQA, the fused IB and the head.

Construction as in timm's ``mobilenetv4_*`` (``UniversalInvertedResidual``, ``MobileAttention`` with
``MultiQueryAttention2d``, ``EdgeResidual``; facts read there, code our own):

* ``uib``: [DW ``start_dw_kernel`` + BN] -> PW expand + BN + act -> [DW ``mid_dw_kernel`` + BN + act] ->
  PW project + BN -> [layer scale]; residual iff stride 1 and ``in_chs == out_chs``. The stride sits on
  the middle DW conv, or on the start one when there is no middle one. Hidden width
  ``make_divisible(in_chs * exp_ratio, 8)``. Its four instantiations (:data:`UIB_PRESETS`): IB (middle DW
  only: MobileNetV2's block), ConvNeXt-like (start DW only), FFN (neither), ExtraDW (both).
* ``mobile_mqa``: ``x + layer_scale(MQA(BN(x)))``. Multi-query attention: ``num_heads`` query heads of
  ``key_dim`` (1x1 conv), one shared key and one shared value head of ``key_dim`` (1x1 convs), each after
  an optional depthwise ``kv_stride`` downsampling (DW conv + BN), softmax(q k^T / sqrt(key_dim)) v, 1x1
  output conv. No biases. The attention's reshapes use the site's sizes as Python ints (no shape
  arithmetic at run time, so traced graphs convert to Core ML).
* ``fused_ib``: k x k conv expand (strided) + BN + act -> PW project + BN; residual iff shapes match
  (timm's ``EdgeResidual``, MobileNetV4's first block after the stem).
* ``mbv4_head``: global average pool, 1x1 conv (no bias) to 1280 + BN + act, dropout, Linear.

The stem is MobileNetV2's (``mbv2_stem``: 3x3 stride-2 conv, BN, act) with the model's activation.
Initialization is timm's: the TF normal/uniform init (``goog_init``), then Xavier-uniform on the attention
projections and downsampling convs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from designspace.blocks.layers import ACTIVATIONS, ConvNorm, DropPath, LayerScale
from designspace.blocks.mbconv import goog_init
from designspace.blocks.mobilenetv3 import EfficientHead, efficient_head_count, make_divisible
from designspace.blocks.registry import Component, Issue, ParamSpec, Site, register
from designspace.blocks.tally import Tally, conv_out

__all__ = ["UIB_PRESETS", "FusedIB", "MobileMQA", "UniversalInvertedBottleneck", "uib_params", "uib_preset"]

FAMILY = "MobileNetV4"

#: The UIB's four instantiations (Qin et al., Fig. 4): which depthwise convs it keeps, with kernel ``k``.
UIB_PRESETS: dict[str, tuple[bool, bool]] = {  # name -> (start DW, middle DW)
    "ib": (False, True), "convnext": (True, False), "ffn": (False, False), "extradw": (True, True),
}
_KERNELS = (0, 3, 5, 7)


def uib_preset(start_dw_kernel: int, mid_dw_kernel: int) -> str:
    """The name of the UIB instantiation with these kernels (``"ib"``, ``"convnext"``, ``"ffn"``, ``"extradw"``)."""
    wanted = (start_dw_kernel > 0, mid_dw_kernel > 0)
    return next(name for name, kept in UIB_PRESETS.items() if kept == wanted)


def uib_params(preset: str, kernel_size: int = 3, *, mid_kernel_size: int | None = None,
               **params: Any) -> dict[str, Any]:
    """The ``uib`` parameters of a named instantiation, e.g. ``uib_params("extradw", 5, mid_kernel_size=3,
    exp_ratio=4.0)`` for timm's ``uir_a5_k3_e4``.

    Args:
        preset: a key of :data:`UIB_PRESETS`.
        kernel_size: kernel (pixels) of the DW convs the instantiation keeps.
        mid_kernel_size: a different kernel for the middle DW conv (ExtraDW).
        params: the other ``uib`` parameters (``exp_ratio``, ``act``, ``layer_scale``).
    """
    start, mid = UIB_PRESETS[preset]
    k_mid = mid_kernel_size if mid_kernel_size is not None else kernel_size
    return {"start_dw_kernel": kernel_size if start else 0, "mid_dw_kernel": k_mid if mid else 0, **params}


class UniversalInvertedBottleneck(nn.Module):
    """MobileNetV4's UIB (NCHW); see the module docstring.

    Args:
        in_chs: input channels.
        out_chs: output channels.
        stride: 1 or 2 (needs one of the two DW convs).
        start_dw_kernel: kernel of the DW conv before the expansion; 0 = none.
        mid_dw_kernel: kernel of the DW conv after the expansion; 0 = none.
        exp_ratio: hidden width ``make_divisible(in_chs * exp_ratio, 8)``.
        act: activation after the expansion and the middle DW conv.
        layer_scale: initial per-channel layer scale; 0 = none (MNV4-Hybrid: 1e-5).
        drop_path_rate: stochastic depth of the residual branch.
    """

    def __init__(
        self, in_chs: int, out_chs: int, stride: int = 1, *, start_dw_kernel: int = 0, mid_dw_kernel: int = 3,
        exp_ratio: float = 4.0, act: str = "relu", layer_scale: float = 0.0, drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        mid = make_divisible(in_chs * exp_ratio)
        self.has_skip = stride == 1 and in_chs == out_chs
        self.dw_start = (ConvNorm(in_chs, in_chs, start_dw_kernel, 1 if mid_dw_kernel else stride, groups=in_chs)
                         if start_dw_kernel else nn.Identity())
        self.pw_exp = ConvNorm(in_chs, mid, 1, act=act)
        self.dw_mid = ConvNorm(mid, mid, mid_dw_kernel, stride, groups=mid, act=act) if mid_dw_kernel else nn.Identity()
        self.pw_proj = ConvNorm(mid, out_chs, 1)
        self.layer_scale = LayerScale(out_chs, layer_scale, channels_last=False) if layer_scale > 0 else nn.Identity()
        self.drop_path = DropPath(drop_path_rate) if self.has_skip else nn.Identity()
        goog_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.layer_scale(self.pw_proj(self.dw_mid(self.pw_exp(self.dw_start(x)))))
        return shortcut + self.drop_path(x) if self.has_skip else x


def _uib_out(site: Site, p: Mapping[str, Any]) -> tuple[int, int]:
    k = p["mid_dw_kernel"] or p["start_dw_kernel"] or 1
    return (conv_out(site.hw[0], k, site.stride), conv_out(site.hw[1], k, site.stride))


def _uib_count(site: Site, p: Mapping[str, Any]) -> Tally:
    t = Tally()
    cin, ks, km = site.in_chs, p["start_dw_kernel"], p["mid_dw_kernel"]
    mid = make_divisible(cin * p["exp_ratio"])
    hw = site.hw
    if ks:
        hw = (conv_out(hw[0], ks, 1 if km else site.stride), conv_out(hw[1], ks, 1 if km else site.stride))
        t.conv(cin, cin, ks, hw, groups=cin).batchnorm(cin, hw[0] * hw[1])
    t.conv(cin, mid, 1, hw).batchnorm(mid, hw[0] * hw[1])
    if km:
        hw = (conv_out(hw[0], km, site.stride), conv_out(hw[1], km, site.stride))
        t.conv(mid, mid, km, hw, groups=mid).batchnorm(mid, hw[0] * hw[1])
    t.conv(mid, site.out_chs, 1, hw).batchnorm(site.out_chs, hw[0] * hw[1])
    return t.parameters(site.out_chs if p["layer_scale"] > 0 else 0)


def _uib_check(site: Site, p: Mapping[str, Any]) -> list[Issue]:
    if site.stride > 1 and not (p["start_dw_kernel"] or p["mid_dw_kernel"]):
        return [Issue("mid_dw_kernel", "a UIB without depthwise convs (the FFN instantiation) cannot downsample",
                      "give it a start or middle depthwise kernel (3 or 5)")]
    return []


class MobileMQA(nn.Module):
    """Mobile MQA block (NCHW): ``x + drop_path(layer_scale(MQA(BN(x))))``; see the module docstring.

    Args:
        dim: channels.
        hw: input height and width (pixels): the reshapes are static.
        num_heads: query heads.
        key_dim: width of each query head and of the shared key and value heads.
        kv_stride: stride of the depthwise conv downsampling keys and values; 1 = none.
        kv_dw_kernel: its kernel.
        layer_scale: initial per-channel layer scale; 0 = none.
        drop_path_rate: stochastic depth of the attention branch.
    """

    def __init__(self, dim: int, hw: tuple[int, int], *, num_heads: int = 4, key_dim: int = 64, kv_stride: int = 1,
                 kv_dw_kernel: int = 3, layer_scale: float = 1e-5, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        self.num_heads, self.key_dim, self.hw = num_heads, key_dim, hw
        self.kv_hw = (conv_out(hw[0], kv_dw_kernel, kv_stride), conv_out(hw[1], kv_dw_kernel, kv_stride))
        self.norm = nn.BatchNorm2d(dim)
        self.query = nn.Conv2d(dim, num_heads * key_dim, 1, bias=False)
        self.key, self.value = (nn.Sequential() for _ in range(2))
        for branch in (self.key, self.value):
            if kv_stride > 1:
                branch.add_module("down_conv", nn.Conv2d(dim, dim, kv_dw_kernel, kv_stride, kv_dw_kernel // 2,
                                                         groups=dim, bias=False))
                branch.add_module("norm", nn.BatchNorm2d(dim))
            branch.add_module("proj", nn.Conv2d(dim, key_dim, 1, bias=False))
        self.output = nn.Conv2d(num_heads * key_dim, dim, 1, bias=False)
        self.layer_scale = LayerScale(dim, layer_scale, channels_last=False) if layer_scale > 0 else nn.Identity()
        self.drop_path = DropPath(drop_path_rate)
        goog_init(self)
        for m in self.modules():  # timm's MultiQueryAttention2d.init_weights, run after the TF init
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C, H, W)
        heads, dk = self.num_heads, self.key_dim
        n, m = self.hw[0] * self.hw[1], self.kv_hw[0] * self.kv_hw[1]
        y = self.norm(x)
        q = self.query(y).reshape(-1, heads, dk, n).transpose(-1, -2)  # (B, heads, N, dk)
        k = self.key(y).reshape(-1, 1, dk, m).transpose(-1, -2)  # (B, 1, M, dk): one head shared by all queries
        v = self.value(y).reshape(-1, 1, dk, m).transpose(-1, -2)  # (B, 1, M, dk)
        o = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, dk)
        o = o.transpose(-1, -2).reshape(-1, heads * dk, self.hw[0], self.hw[1])
        return x + self.drop_path(self.layer_scale(self.output(o)))


def _mqa_count(site: Site, p: Mapping[str, Any]) -> Tally:
    c, n, hw = site.in_chs, site.tokens, site.hw
    heads, dk, s, k = p["num_heads"], p["key_dim"], p["kv_stride"], p["kv_dw_kernel"]
    kv_hw = (conv_out(hw[0], k, s), conv_out(hw[1], k, s))
    m = kv_hw[0] * kv_hw[1]
    t = Tally().batchnorm(c, n).conv(c, heads * dk, 1, hw)
    for _ in ("key", "value"):
        if s > 1:
            t.conv(c, c, k, kv_hw, groups=c).batchnorm(c, m)
        t.conv(c, dk, 1, kv_hw)
    t.attention(heads, n, m, dk, dk).conv(heads * dk, c, 1, hw)
    return t.parameters(c if p["layer_scale"] > 0 else 0)


class FusedIB(nn.Module):
    """Fused inverted bottleneck (NCHW): k x k conv expand (strided) + BN + act, PW project + BN, residual
    iff stride 1 and ``in_chs == out_chs``; hidden width ``make_divisible(in_chs * exp_ratio, 8)``."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, *, kernel_size: int = 3, exp_ratio: float = 4.0,
                 act: str = "relu", drop_path_rate: float = 0.0) -> None:
        super().__init__()
        mid = make_divisible(in_chs * exp_ratio)
        self.has_skip = stride == 1 and in_chs == out_chs
        self.conv_exp = ConvNorm(in_chs, mid, kernel_size, stride, act=act)
        self.conv_pwl = ConvNorm(mid, out_chs, 1)
        self.drop_path = DropPath(drop_path_rate) if self.has_skip else nn.Identity()
        goog_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv_pwl(self.conv_exp(x))
        return x + self.drop_path(y) if self.has_skip else y


def _kernel_out(site: Site, k: int) -> tuple[int, int]:
    return (conv_out(site.hw[0], k, site.stride), conv_out(site.hw[1], k, site.stride))


def _fused_count(site: Site, p: Mapping[str, Any]) -> Tally:
    mid = make_divisible(site.in_chs * p["exp_ratio"])
    out_hw = _kernel_out(site, p["kernel_size"])
    n = out_hw[0] * out_hw[1]
    return (Tally().conv(site.in_chs, mid, p["kernel_size"], out_hw).batchnorm(mid, n)
            .conv(mid, site.out_chs, 1, out_hw).batchnorm(site.out_chs, n))


_ACT = ParamSpec("act", str, "relu", "activation (MNV4: relu; Hybrid-L: gelu)", choices=ACTIVATIONS)
_EXP = ParamSpec("exp_ratio", float, 4.0, "expansion; hidden width make_divisible(in_chs * t, 8)", low=1.0, high=12.0)

register(Component(
    name="uib", kind="block", family=FAMILY,
    doc="MobileNetV4 Universal Inverted Bottleneck: optional start DW, PW expand, optional middle DW "
        "(strided), PW project, optional layer scale, residual when shapes match. Instantiations: IB "
        "(mid only), ConvNeXt-like (start only), FFN (neither), ExtraDW (both).",
    params=(
        ParamSpec("start_dw_kernel", int, 0, "DW kernel before the expansion (pixels); 0 = none",
                  choices=_KERNELS),
        ParamSpec("mid_dw_kernel", int, 3, "DW kernel after the expansion (pixels); 0 = none", choices=_KERNELS),
        _EXP,
        _ACT,
        ParamSpec("layer_scale", float, 0.0, "initial per-channel layer scale; 0 = none (Hybrid: 1e-5)", low=0.0),
    ),
    build=lambda s, p, dp: UniversalInvertedBottleneck(s.in_chs, s.out_chs, s.stride, drop_path_rate=dp, **p),
    count=_uib_count,
    out_hw=_uib_out,
    check=_uib_check,
    strides=(1, 2),
    changes_width=True,
))

register(Component(
    name="mobile_mqa", kind="block", family=FAMILY,
    doc="MobileNetV4 Mobile MQA: BN, multi-query attention (num_heads query heads, one shared key/value "
        "head of key_dim, keys and values optionally downsampled by a strided DW conv + BN), 1x1 output "
        "conv, layer scale, residual.",
    params=(
        ParamSpec("num_heads", int, 4, "query heads", low=1, high=64),
        ParamSpec("key_dim", int, 64, "channels of each query head and of the shared key and value", low=1,
                  high=512),
        ParamSpec("kv_stride", int, 1, "stride of the key/value downsampling; 1 = none", choices=(1, 2, 4)),
        ParamSpec("kv_dw_kernel", int, 3, "kernel of the key/value downsampling DW conv (pixels)", low=1, high=7,
                  odd=True),
        ParamSpec("layer_scale", float, 1e-5, "initial per-channel layer scale; 0 = none", low=0.0),
    ),
    build=lambda s, p, dp: MobileMQA(s.in_chs, s.hw, drop_path_rate=dp, **p),
    count=_mqa_count,
    attention=True,
))

register(Component(
    name="fused_ib", kind="block", family=FAMILY,
    doc="MobileNetV4 fused inverted bottleneck: k x k conv expand (strided) + BN + act, PW project + BN, "
        "residual when shapes match.",
    params=(ParamSpec("kernel_size", int, 3, "expansion conv kernel (pixels)", low=1, high=7, odd=True), _EXP, _ACT),
    build=lambda s, p, dp: FusedIB(s.in_chs, s.out_chs, s.stride, drop_path_rate=dp, **p),
    count=_fused_count,
    out_hw=lambda s, p: _kernel_out(s, p["kernel_size"]),
    strides=(1, 2),
    changes_width=True,
))

register(Component(
    name="mbv4_head", kind="head", family=FAMILY,
    doc="MobileNetV4 head: global average pool, 1x1 conv (no bias) to `width` + BN + act, dropout, Linear.",
    params=(
        ParamSpec("width", int, 1280, "channels of the 1x1 conv after pooling", low=1),
        _ACT,
        ParamSpec("dropout", float, 0.0, "dropout before the classifier (training only)", low=0.0, high=0.9),
    ),
    build=lambda s, p, dp: EfficientHead(s.in_chs, s.out_chs, norm=True, **p),
    count=lambda s, p: efficient_head_count(s, p["width"], norm=True),
))
