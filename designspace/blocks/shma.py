"""iFormer (ICLR 2025, seed 003): SHMA attention unit, the BN ConvNeXt-style conv block, stem,
downsampling and head. NCHW; every convolution is Conv-BN (no bias) unless stated.

* ``iformer_conv``: ``x + drop_path(PW(GELU(PW_exp(DW_k(x)))))``, each conv followed by BN.
* ``shma`` (one attention unit = three entries of the authors' block list):
  CPE ``x + BN(DW3(x))``; SHMA (Eqs. 1-3) ``x + drop_path(proj(gate * attn(q, k) v))`` with
  single-head q/k of width C / qk_reduction, ``v, gate = split(sigmoid(BN(PW(x))))`` (the sigmoid
  also squashes v, as the authors' code does), global softmax attention; FFN
  ``x + drop_path(PW(GELU(PW(x))))``.
* ``iformer_stem``: Conv-BN k5 s2 -> GELU -> fused-IB (Conv-BN k5 s2 to 4x, GELU, Conv-BN 1x1).
* ``conv_bn``: between-stage Conv-BN 3x3 stride 2. ``bn_linear_head``: pool, BatchNorm1d, Linear.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from designspace.blocks.layers import ACTIVATIONS, ConvNorm, DropPath, LayerScale, trunc_normal_init
from designspace.blocks.registry import Component, Issue, ParamSpec, Site, register
from designspace.blocks.tally import Tally, conv_out

__all__ = ["IFormerConvBlock", "IFormerHead", "IFormerStem", "SHMAUnit"]

FAMILY = "iFormer"


def _init(module: nn.Module) -> None:
    trunc_normal_init(module, convs=True)  # the authors' _init_weights covers Conv2d and Linear


class _Residual(nn.Module):
    """``x + [gamma *] drop_path(m(x))`` (the authors' ``Residual``)."""

    def __init__(self, m: nn.Module, dim: int, drop_path_rate: float = 0.0, layer_scale: float = 0.0) -> None:
        super().__init__()
        self.m = m
        self.ls = LayerScale(dim, layer_scale, channels_last=False) if layer_scale > 0 else nn.Identity()
        self.drop_path = DropPath(drop_path_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.ls(self.drop_path(self.m(x)))


class IFormerConvBlock(nn.Module):
    """DW k Conv-BN, PW Conv-BN to ``int(dim * exp_ratio)``, act, PW Conv-BN back; residual."""

    def __init__(
        self, dim: int, *, kernel_size: int = 7, exp_ratio: float = 4.0, act: str = "gelu",
        layer_scale: float = 0.0, drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        mid = int(dim * exp_ratio)
        self.mixer = _Residual(nn.Sequential(
            ConvNorm(dim, dim, kernel_size, groups=dim),
            ConvNorm(dim, mid, 1, act=act),
            ConvNorm(mid, dim, 1),
        ), dim, drop_path_rate, layer_scale)
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mixer(x)


def _conv_block_count(site: Site, p: Mapping[str, Any]) -> Tally:
    c, n, mid = site.in_chs, site.tokens, int(site.in_chs * p["exp_ratio"])
    t = Tally().conv(c, c, p["kernel_size"], site.hw, groups=c).batchnorm(c, n)
    t.conv(c, mid, 1, site.hw).batchnorm(mid, n).conv(mid, c, 1, site.hw).batchnorm(c, n)
    return t.parameters(c if p["layer_scale"] > 0 else 0)


class SHMA(nn.Module):
    """Single-head modulation attention (NCHW): ``proj(gate * softmax(q^T k / sqrt(d)) v)``."""

    def __init__(self, dim: int, *, qk_reduction: int = 2, attn_ratio: float = 1.0) -> None:
        super().__init__()
        mid = int(dim * attn_ratio)
        dim_attn = dim // qk_reduction
        self.q = ConvNorm(dim, dim_attn, 1)
        self.k = ConvNorm(dim, dim_attn, 1)
        self.v_gate = ConvNorm(dim, 2 * mid, 1)
        self.proj = ConvNorm(mid, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        v, gate = torch.sigmoid(self.v_gate(x)).chunk(2, dim=1)
        q = self.q(x).flatten(2).transpose(1, 2)  # (B, N, d)
        k = self.k(x).flatten(2).transpose(1, 2)  # (B, N, d)
        out = F.scaled_dot_product_attention(q, k, v.flatten(2).transpose(1, 2))  # (B, N, mid)
        out = out.transpose(1, 2).reshape(b, -1, h, w)
        return self.proj(out * gate)


class SHMAUnit(nn.Module):
    """iFormer's attention unit: CPE, SHMA, FFN, each residual (three drop-path slots).

    Args:
        dim: channels.
        qk_reduction: q/k width is ``dim // qk_reduction`` (the paper's head-dim reduction ratio).
        attn_ratio: v and gate width as a multiple of ``dim``.
        ffn_ratio: FFN hidden width as a multiple of ``dim``.
        cpe_kernel: depthwise kernel of the conditional positional encoding.
        act: FFN activation.
        layer_scale: initial layer scale of SHMA and FFN; 0 disables.
        drop_path_rate: one rate, or the three rates of CPE (unused, as in the authors' code), SHMA, FFN.
    """

    def __init__(
        self, dim: int, *, qk_reduction: int = 2, attn_ratio: float = 1.0, ffn_ratio: float = 3.0,
        cpe_kernel: int = 3, act: str = "gelu", layer_scale: float = 0.0,
        drop_path_rate: float | Sequence[float] = 0.0,
    ) -> None:
        super().__init__()
        rates = [drop_path_rate] * 3 if isinstance(drop_path_rate, (int, float)) else list(drop_path_rate)
        mid = int(dim * ffn_ratio)
        self.cpe = _Residual(ConvNorm(dim, dim, cpe_kernel, groups=dim), dim)
        self.attn = _Residual(SHMA(dim, qk_reduction=qk_reduction, attn_ratio=attn_ratio), dim, rates[1], layer_scale)
        self.ffn = _Residual(nn.Sequential(ConvNorm(dim, mid, 1, act=act), ConvNorm(mid, dim, 1)),
                             dim, rates[2], layer_scale)
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn(self.attn(self.cpe(x)))


def _shma_count(site: Site, p: Mapping[str, Any]) -> Tally:
    c, n, hw = site.in_chs, site.tokens, site.hw
    mid, d, f = int(c * p["attn_ratio"]), c // p["qk_reduction"], int(c * p["ffn_ratio"])
    t = Tally().conv(c, c, p["cpe_kernel"], hw, groups=c).batchnorm(c, n)
    t.conv(c, 2 * mid, 1, hw).batchnorm(2 * mid, n)
    t.conv(c, d, 1, hw).batchnorm(d, n).conv(c, d, 1, hw).batchnorm(d, n)
    t.attention(1, n, n, d, mid)
    t.conv(mid, c, 1, hw).batchnorm(c, n)
    t.conv(c, f, 1, hw).batchnorm(f, n).conv(f, c, 1, hw).batchnorm(c, n)
    return t.parameters(2 * c if p["layer_scale"] > 0 else 0)


def _shma_check(site: Site, p: Mapping[str, Any]) -> list[Issue]:
    if site.in_chs // p["qk_reduction"] < 1:
        return [Issue("qk_reduction", f"q/k width {site.in_chs} // {p['qk_reduction']} is 0",
                      f"use a qk_reduction <= {site.in_chs}")]
    return []


class IFormerStem(nn.Module):
    """Conv-BN k s2 to C/2, act, Conv-BN k s2 to ``exp_ratio * C/2``, act, Conv-BN 1x1 to C."""

    def __init__(self, in_chs: int, out_chs: int, *, kernel_size: int = 5, exp_ratio: float = 4.0,
                 act: str = "gelu") -> None:
        super().__init__()
        half = out_chs // 2
        mid = int(half * exp_ratio)
        self.conv1 = ConvNorm(in_chs, half, kernel_size, 2, act=act)
        self.conv_exp = ConvNorm(half, mid, kernel_size, 2, act=act)
        self.conv_pwl = ConvNorm(mid, out_chs, 1)
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_pwl(self.conv_exp(self.conv1(x)))


def _stem_out(site: Site, p: Mapping[str, Any]) -> tuple[int, int]:
    k = p["kernel_size"]
    return (conv_out(conv_out(site.hw[0], k, 2), k, 2), conv_out(conv_out(site.hw[1], k, 2), k, 2))


def _stem_count(site: Site, p: Mapping[str, Any]) -> Tally:
    k, c = p["kernel_size"], site.out_chs
    half, mid = c // 2, int(c // 2 * p["exp_ratio"])
    hw1 = (conv_out(site.hw[0], k, 2), conv_out(site.hw[1], k, 2))
    hw2 = _stem_out(site, p)
    t = Tally().conv(site.in_chs, half, k, hw1).batchnorm(half, hw1[0] * hw1[1])
    t.conv(half, mid, k, hw2).batchnorm(mid, hw2[0] * hw2[1])
    return t.conv(mid, c, 1, hw2).batchnorm(c, hw2[0] * hw2[1])


class ConvBNDownsample(ConvNorm):
    """Conv-BN k x k at ``stride`` (no bias, no activation)."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 2, *, kernel_size: int = 3) -> None:
        super().__init__(in_chs, out_chs, kernel_size, stride)
        _init(self)


def _ds_out(site: Site, p: Mapping[str, Any]) -> tuple[int, int]:
    k = p["kernel_size"]
    return (conv_out(site.hw[0], k, site.stride), conv_out(site.hw[1], k, site.stride))


def _ds_count(site: Site, p: Mapping[str, Any]) -> Tally:
    out_hw = _ds_out(site, p)
    return Tally().conv(site.in_chs, site.out_chs, p["kernel_size"], out_hw).batchnorm(
        site.out_chs, out_hw[0] * out_hw[1])


class IFormerHead(nn.Module):
    """Global average pool, BatchNorm1d, Linear (the authors' ``BN_Linear`` classifier)."""

    def __init__(self, in_chs: int, num_classes: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.bn = nn.BatchNorm1d(in_chs)
        self.fc = nn.Linear(in_chs, num_classes)
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.bn(self.pool(x).flatten(1)))


def _head_count(site: Site, p: Mapping[str, Any]) -> Tally:
    c = site.in_chs
    return Tally().pool(c * site.tokens).batchnorm(c, 1).linear(c, site.out_chs, 1)


_LS = ParamSpec("layer_scale", float, 0.0, "initial layer-scale value; 0 = none (the released configs)", low=0.0)
_ACT = ParamSpec("act", str, "gelu", "activation", choices=ACTIVATIONS)

register(Component(
    name="iformer_conv", kind="block", family=FAMILY,
    doc="iFormer's lightened ConvNeXt block with BN: DW k Conv-BN, PW Conv-BN expand, GELU, PW Conv-BN, residual.",
    params=(
        ParamSpec("kernel_size", int, 7, "depthwise kernel (pixels)", low=1, high=15, odd=True),
        ParamSpec("exp_ratio", float, 4.0, "hidden width / channels (iFormer-T uses 3)", low=1.0, high=8.0),
        _ACT, _LS,
    ),
    build=lambda s, p, dp: IFormerConvBlock(s.in_chs, drop_path_rate=dp, **p),
    count=_conv_block_count,
))

register(Component(
    name="shma", kind="block", family=FAMILY,
    doc="iFormer's attention unit (seed 003, Eqs. 1-3): conditional positional encoding (DW3 Conv-BN), "
        "single-head attention with q/k width C/qk_reduction, sigmoid-gated modulation of v, "
        "projection, then a Conv-BN FFN; each part residual.",
    params=(
        ParamSpec("qk_reduction", int, 2, "q/k width = channels / qk_reduction (2 in stage 3, 4 in stage 4)",
                  low=1, high=16),
        ParamSpec("attn_ratio", float, 1.0, "width of v and of the gate / channels", low=0.25, high=4.0),
        ParamSpec("ffn_ratio", float, 3.0, "FFN hidden width / channels (iFormer-T uses 2)", low=1.0, high=8.0),
        ParamSpec("cpe_kernel", int, 3, "kernel of the conditional positional encoding", low=1, high=9, odd=True),
        _ACT, _LS,
    ),
    build=lambda s, p, dp: SHMAUnit(s.in_chs, drop_path_rate=dp, **p),
    count=_shma_count,
    check=_shma_check,
    drop_path_slots=3,
    attention=True,
))

register(Component(
    name="iformer_stem", kind="stem", family=FAMILY,
    doc="iFormer stem: Conv-BN k s2 to C/2, GELU, fused inverted bottleneck (Conv-BN k s2 to 4 x C/2, "
        "GELU, Conv-BN 1x1 to C); stride 4.",
    params=(
        ParamSpec("kernel_size", int, 5, "kernel of both strided convs (pixels)", low=3, high=7, odd=True),
        ParamSpec("exp_ratio", float, 4.0, "expansion of the fused block over C/2", low=1.0, high=8.0),
        _ACT,
    ),
    build=lambda s, p, dp: IFormerStem(s.in_chs, s.out_chs, **p),
    count=_stem_count,
    out_hw=_stem_out,
))

register(Component(
    name="conv_bn", kind="downsample", family=FAMILY,
    doc="iFormer's downsampling: Conv-BN k x k (no bias) at the stage stride.",
    params=(ParamSpec("kernel_size", int, 3, "kernel (pixels), padding k//2", low=1, high=7, odd=True),),
    build=lambda s, p, dp: ConvBNDownsample(s.in_chs, s.out_chs, s.stride, **p),
    count=_ds_count,
    out_hw=_ds_out,
    strides=(1, 2),
    changes_width=True,
))

register(Component(
    name="bn_linear_head", kind="head", family=FAMILY,
    doc="iFormer head: global average pool, BatchNorm1d, Linear.",
    params=(),
    build=lambda s, p, dp: IFormerHead(s.in_chs, s.out_chs),
    count=_head_count,
))
