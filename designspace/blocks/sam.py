"""SMT (Lin et al., ICCV 2023, seed 004): scale-aware modulation (SAM) block and SMT's stem.

SAM (Eqs. 1-3), as the authors' ``Attention`` with ``ca_attention=1``, on tokens:

    v = Linear(x);  s = Linear(x)
    MHMC: s split into ``heads`` channel groups of C/heads; group i gets a depthwise conv with
          kernel 3 + 2i (3, 5, 7, 9, ...), with bias
    SAA:  interleave the groups channel-wise (channel g * heads + i), grouped 1x1 conv C -> r*C with
          C/heads groups (each group mixes one position's scales), BN, GELU, 1x1 conv r*C -> C
    out = Linear(SAA(MHMC(s)) * v)

The block is pre-norm with an SMT ConvFFN: ``x + dp(g1 * SAM(LN(x)))``, ``x + dp(g2 * FFN(LN(x)))``.
Stem: k x k stride-2 conv (no bias) + BN + ReLU, 2x2 stride-2 conv (bias), LayerNorm.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from designspace.blocks.layers import make_act
from designspace.blocks.registry import Component, Issue, ParamSpec, Site, register
from designspace.blocks.tally import Tally, conv_out
from designspace.blocks.transformer import FFNS, PreNormBlock, ffn_count, make_ffn, prenorm_count, smt_init

__all__ = ["SAM", "SMTStem", "sam_block"]

FAMILY = "SMT"


class SAM(nn.Module):
    """Scale-aware modulation token mixer (NHWC in and out).

    Args:
        dim: channels C.
        heads: number of MHMC heads (kernel sizes 3, 5, ..., 1 + 2 * heads).
        expand_ratio: SAA expansion of the grouped 1x1 conv.
        qkv_bias: biases of the v and s projections.
    """

    def __init__(self, dim: int, *, heads: int = 4, expand_ratio: int = 2, qkv_bias: bool = True) -> None:
        super().__init__()
        self.heads = heads
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.s = nn.Linear(dim, dim, bias=qkv_bias)
        g = dim // heads
        self.local_convs = nn.ModuleList(
            nn.Conv2d(g, g, 3 + 2 * i, padding=1 + i, groups=g) for i in range(heads))
        self.proj0 = nn.Conv2d(dim, dim * expand_ratio, 1, groups=g)
        self.bn = nn.BatchNorm2d(dim * expand_ratio)
        self.act = make_act("gelu")
        self.proj1 = nn.Conv2d(dim * expand_ratio, dim, 1)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:  # x: (B, N, C)
        b, n, c = x.shape
        heads, g = self.heads, c // self.heads
        v = self.v(x)
        s = self.s(x).reshape(b, h, w, heads, g).permute(3, 0, 4, 1, 2)  # head i: channels [i*g, (i+1)*g)
        # interleave, as the authors concatenate: output channel j * heads + i is channel j of head i
        out = self.local_convs[0](s[0]).reshape(b, g, -1, h, w)
        for i in range(1, heads):
            out = torch.cat([out, self.local_convs[i](s[i]).reshape(b, g, -1, h, w)], 2)
        s = self.proj1(self.act(self.bn(self.proj0(out.reshape(b, c, h, w))))).reshape(b, c, n).permute(0, 2, 1)
        return self.proj(s * v)


def sam_block(dim: int, *, heads: int = 4, expand_ratio: int = 2, mlp_ratio: float = 4.0, ffn: str = "convffn",
              qkv_bias: bool = True, layer_scale: float = 0.0, norm_eps: float = 1e-6,
              drop_path_rate: float = 0.0) -> PreNormBlock:
    """The SMT block with a SAM mixer (NHWC); see the module docstring for the parameters."""
    block = PreNormBlock(
        dim, SAM(dim, heads=heads, expand_ratio=expand_ratio, qkv_bias=qkv_bias),
        make_ffn(ffn, dim, int(dim * mlp_ratio)),
        norm_eps=norm_eps, layer_scale=layer_scale, drop_path_rate=drop_path_rate)
    smt_init(block)
    return block


def _sam_count(site: Site, p: Mapping[str, Any]) -> Tally:
    c, n, hw, heads, e = site.in_chs, site.tokens, site.hw, p["heads"], p["expand_ratio"]
    g = c // heads
    t = prenorm_count(Tally(), c, n, p["layer_scale"])
    t.linear(c, c, n, bias=p["qkv_bias"]).linear(c, c, n, bias=p["qkv_bias"])
    for i in range(heads):
        t.conv(g, g, 3 + 2 * i, hw, groups=g, bias=True)
    t.conv(c, e * c, 1, hw, groups=g, bias=True).batchnorm(e * c, n).conv(e * c, c, 1, hw, bias=True)
    t.linear(c, c, n)
    return ffn_count(t, p["ffn"], c, int(c * p["mlp_ratio"]), hw)


def _sam_check(site: Site, p: Mapping[str, Any]) -> list[Issue]:
    c, heads = site.in_chs, p["heads"]
    if c % heads:
        good = [h for h in range(1, 9) if c % h == 0]
        return [Issue("heads", f"{heads} heads do not divide the width {c} (each head owns C/heads channels)",
                      f"use heads in {good} or a width divisible by {heads}")]
    return []


class SMTStem(nn.Module):
    """k x k stride-2 conv (no bias), BN, ReLU, 2x2 stride-2 conv (bias), LayerNorm (NHWC out)."""

    def __init__(self, in_chs: int, out_chs: int, *, kernel_size: int = 3, norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_chs, out_chs, kernel_size, 2, kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_chs)
        self.act = nn.ReLU()
        self.conv2 = nn.Conv2d(out_chs, out_chs, 2, 2)
        self.norm = nn.LayerNorm(out_chs, eps=norm_eps)
        smt_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2(self.act(self.bn(self.conv1(x))))
        return self.norm(x.permute(0, 2, 3, 1))


def _stem_out(site: Site, p: Mapping[str, Any]) -> tuple[int, int]:
    k = p["kernel_size"]
    return (conv_out(site.hw[0], k, 2) // 2, conv_out(site.hw[1], k, 2) // 2)


def _stem_count(site: Site, p: Mapping[str, Any]) -> Tally:
    k, c = p["kernel_size"], site.out_chs
    hw1 = (conv_out(site.hw[0], k, 2), conv_out(site.hw[1], k, 2))
    hw2 = _stem_out(site, p)
    n2 = hw2[0] * hw2[1]
    t = Tally().conv(site.in_chs, c, k, hw1).batchnorm(c, hw1[0] * hw1[1])
    return t.conv(c, c, 2, hw2, bias=True).layernorm(c, n2)


SAM_PARAMS = (
    ParamSpec("heads", int, 4, "MHMC heads; head i uses a depthwise kernel 3 + 2i", low=1, high=8),
    ParamSpec("expand_ratio", int, 2, "SAA expansion of the grouped 1x1 conv", low=1, high=8),
    ParamSpec("mlp_ratio", float, 4.0, "FFN hidden width / channels", low=0.5, high=8.0),
    ParamSpec("ffn", str, "convffn", "FFN kind: SMT's ConvFFN or a plain MLP", choices=FFNS),
    ParamSpec("qkv_bias", bool, True, "biases of the v and s projections"),
    ParamSpec("layer_scale", float, 0.0, "initial per-channel layer scale; 0 = none (SMT-L: 1e-4)", low=0.0),
    ParamSpec("norm_eps", float, 1e-6, "LayerNorm epsilon", low=0.0),
)

register(Component(
    name="sam", kind="block", family=FAMILY,
    doc="SMT block with scale-aware modulation (seed 004, Eqs. 1-3): MHMC (per-head DW kernels "
        "3, 5, 7, ...), SAA (interleave heads, grouped inverted bottleneck, pointwise), modulation of V; "
        "pre-norm, with SMT's ConvFFN.",
    params=SAM_PARAMS,
    build=lambda s, p, dp: sam_block(s.in_chs, drop_path_rate=dp, **p),
    count=_sam_count,
    check=_sam_check,
    layout=("nhwc", "nhwc"),
))

register(Component(
    name="smt_stem", kind="stem", family=FAMILY,
    doc="SMT stem: k x k stride-2 conv (no bias), BN, ReLU, 2x2 stride-2 conv, LayerNorm; stride 4.",
    params=(
        ParamSpec("kernel_size", int, 3, "kernel of the first conv (3 for T/S, 7 for B/L)", low=3, high=7, odd=True),
        ParamSpec("norm_eps", float, 1e-5, "LayerNorm epsilon", low=0.0),
    ),
    build=lambda s, p, dp: SMTStem(s.in_chs, s.out_chs, **p),
    count=_stem_count,
    out_hw=_stem_out,
    layout=("nchw", "nhwc"),
))
