"""EfficientMod (Ma et al., ICLR 2024, seed 000): the efficient modulation block and its stem.

Block (Eq. 5, Fig. 1c), channels last, as the authors' ``BasicBlock``/``Mlp``/``ContextLayer``:

    ctx = g(GELU(DWConv_k(f(LN(x)))))          # context branch, width C
    v   = fc1(LN(x)); v = GELU(v) if r > 1      # value branch, width r*C
    x   = x + drop_path(gamma * fc2(v * tile_r(ctx)))

where ``tile_r`` repeats the C-channel context r times along channels (hidden channel j uses
context channel j mod C). Every linear has a bias; layer scale gamma starts at 1e-4.
Stem: 7x7 stride-4 conv (bias) + LayerNorm. The attention blocks EfficientMod appends to stages
3-4 are ``msa`` blocks; its downsampling layer is ``conv_ln`` and its head ``norm_pool_head``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from designspace.blocks.layers import DropPath, LayerScale, make_act, trunc_normal_init
from designspace.blocks.registry import Component, ParamSpec, Site, register
from designspace.blocks.tally import Tally, conv_out

__all__ = ["EfficientModBlock", "EfficientModStem"]

FAMILY = "EfficientMod"


class EfficientModBlock(nn.Module):
    """The efficient modulation block (NHWC in and out).

    Args:
        dim: channels C.
        exp_ratio: integer expansion r of the value branch (hidden width r*C).
        kernel_size: depthwise kernel of the context branch.
        layer_scale: initial value of the per-channel layer scale; 0 disables it.
        act: activation of the context branch and (r > 1) of the value branch.
        norm_eps: LayerNorm epsilon.
        drop_path_rate: stochastic depth.
    """

    def __init__(
        self, dim: int, *, exp_ratio: int = 6, kernel_size: int = 7, layer_scale: float = 1e-4,
        act: str = "gelu", norm_eps: float = 1e-5, drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.exp_ratio = exp_ratio
        self.norm = nn.LayerNorm(dim, eps=norm_eps)
        self.f = nn.Linear(dim, dim)
        self.conv_dw = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.ctx_act = make_act(act)
        self.g = nn.Linear(dim, dim)
        self.fc1 = nn.Linear(dim, dim * exp_ratio)
        self.act = make_act(act) if exp_ratio > 1 else nn.Identity()
        self.fc2 = nn.Linear(dim * exp_ratio, dim)
        self.ls = LayerScale(dim, layer_scale) if layer_scale > 0 else nn.Identity()
        self.drop_path = DropPath(drop_path_rate)
        trunc_normal_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, H, W, C)
        shortcut = x
        x = self.norm(x)
        ctx = self.conv_dw(self.f(x).permute(0, 3, 1, 2))  # (B, C, H, W)
        ctx = self.g(self.ctx_act(ctx).permute(0, 2, 3, 1))  # (B, H, W, C)
        v = self.act(self.fc1(x))  # (B, H, W, r*C)
        if self.exp_ratio > 1:
            ctx = ctx.repeat(1, 1, 1, self.exp_ratio)
        x = self.fc2(v * ctx)
        return shortcut + self.drop_path(self.ls(x))


def _block_count(site: Site, p: Mapping[str, Any]) -> Tally:
    c, n, r, k = site.in_chs, site.tokens, p["exp_ratio"], p["kernel_size"]
    t = Tally().layernorm(c, n)
    t.linear(c, c, n).conv(c, c, k, site.hw, groups=c, bias=True).linear(c, c, n)
    t.linear(c, r * c, n).linear(r * c, c, n)
    return t.parameters(c if p["layer_scale"] > 0 else 0)


class EfficientModStem(nn.Module):
    """k x k stride-4 conv with bias, then LayerNorm (NCHW image in, NHWC out)."""

    def __init__(self, in_chs: int, out_chs: int, *, kernel_size: int = 7, norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chs, out_chs, kernel_size, 4, kernel_size // 2)
        self.norm = nn.LayerNorm(out_chs, eps=norm_eps)
        trunc_normal_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


def _stem_out(site: Site, p: Mapping[str, Any]) -> tuple[int, int]:
    k = p["kernel_size"]
    return (conv_out(site.hw[0], k, 4), conv_out(site.hw[1], k, 4))


def _stem_count(site: Site, p: Mapping[str, Any]) -> Tally:
    out_hw = _stem_out(site, p)
    return Tally().conv(site.in_chs, site.out_chs, p["kernel_size"], out_hw, bias=True).layernorm(
        site.out_chs, out_hw[0] * out_hw[1])


_EPS = ParamSpec("norm_eps", float, 1e-5, "LayerNorm epsilon", low=0.0)

register(Component(
    name="efficientmod", kind="block", family=FAMILY,
    doc="EfficientMod block (seed 000, Eq. 5): pre-LN; context Linear -> DW k x k -> GELU -> Linear; "
        "value Linear to r*C (GELU when r > 1); value * context tiled r times; Linear back; layer scale.",
    params=(
        ParamSpec("exp_ratio", int, 6, "value-branch expansion r (the paper alternates 1 and 6)", low=1, high=12),
        ParamSpec("kernel_size", int, 7, "depthwise kernel of the context branch (pixels)", low=1, high=15, odd=True),
        ParamSpec("layer_scale", float, 1e-4, "initial layer-scale value; 0 = no layer scale", low=0.0),
        ParamSpec("act", str, "gelu", "activation", choices=("gelu", "silu", "relu")),
        _EPS,
    ),
    build=lambda s, p, dp: EfficientModBlock(s.in_chs, drop_path_rate=dp, **p),
    count=_block_count,
    layout=("nhwc", "nhwc"),
))

register(Component(
    name="efficientmod_stem", kind="stem", family=FAMILY,
    doc="EfficientMod stem: k x k stride-4 conv with bias (padding k//2), LayerNorm.",
    params=(ParamSpec("kernel_size", int, 7, "kernel (pixels)", low=3, high=11, odd=True), _EPS),
    build=lambda s, p, dp: EfficientModStem(s.in_chs, s.out_chs, **p),
    count=_stem_count,
    out_hw=_stem_out,
    layout=("nchw", "nhwc"),
))
