"""The pre-norm transformer block skeleton and the two FFNs the seeds use.

``x = x + drop_path(gamma1 * mixer(LN(x)))``; ``x = x + drop_path(gamma2 * ffn(LN(x)))``,
with gamma a per-channel layer scale or 1. The block takes and returns NHWC tensors; inside, as in
the SMT and EfficientMod code, it works on token sequences ``(B, N, C)`` and mixers and FFNs are called
as ``f(x, H, W)`` (the exported graph, and so the measured latency, follow the authors' layout).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from designspace.blocks.layers import DropPath, LayerScale, make_act
from designspace.blocks.tally import Tally

__all__ = ["FFNS", "ConvFFN", "Mlp", "PreNormBlock", "ffn_count", "make_ffn", "prenorm_count", "smt_init"]

FFNS = ("convffn", "mlp")


class Mlp(nn.Module):
    """Linear, act, Linear (ViT's MLP; EfficientMod's attention blocks)."""

    def __init__(self, dim: int, hidden: int, act: str = "gelu") -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = make_act(act)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:  # x: (B, N, C)
        return self.fc2(self.act(self.fc1(x)))


class ConvFFN(nn.Module):
    """SMT's ConvFFN: Linear, ``h = act(h + DW3(h))`` (DW conv with bias, on the token grid), Linear."""

    def __init__(self, dim: int, hidden: int, act: str = "gelu") -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden)
        self.act = make_act(act)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:  # x: (B, N, C)
        x = self.fc1(x)
        b, _, c = x.shape
        conv = self.dwconv(x.transpose(1, 2).view(b, c, h, w)).flatten(2).transpose(1, 2)
        return self.fc2(self.act(x + conv))


def ffn_count(t: Tally, kind: str, dim: int, hidden: int, hw: tuple[int, int]) -> Tally:
    """Adds the counts of an FFN of ``kind`` (``"mlp"`` or ``"convffn"``) to ``t``."""
    n = hw[0] * hw[1]
    t.linear(dim, hidden, n)
    if kind == "convffn":
        t.conv(hidden, hidden, 3, hw, groups=hidden, bias=True)
    return t.linear(hidden, dim, n)


def make_ffn(kind: str, dim: int, hidden: int, act: str = "gelu") -> nn.Module:
    """An FFN by name: ``"convffn"`` (SMT) or ``"mlp"`` (ViT)."""
    return ConvFFN(dim, hidden, act) if kind == "convffn" else Mlp(dim, hidden, act)


class PreNormBlock(nn.Module):
    """Two pre-norm residual branches, a token mixer then an FFN (NHWC in and out).

    Args:
        dim: channels.
        mixer: the token mixer, ``mixer(x, H, W)`` on ``(B, N, C)`` tokens.
        ffn: the channel mixer, ``ffn(x, H, W)`` on tokens.
        norm_eps: LayerNorm epsilon.
        layer_scale: initial per-channel layer scale; 0 disables it.
        drop_path_rate: stochastic depth of both branches.
    """

    def __init__(self, dim: int, mixer: nn.Module, ffn: nn.Module, *, norm_eps: float, layer_scale: float,
                 drop_path_rate: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.mixer = mixer
        self.ls1 = LayerScale(dim, layer_scale) if layer_scale > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.ffn = ffn
        self.ls2 = LayerScale(dim, layer_scale) if layer_scale > 0 else nn.Identity()
        self.drop_path = DropPath(drop_path_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, H, W, C)
        b, h, w, c = x.shape
        x = x.reshape(b, h * w, c)
        x = x + self.drop_path(self.ls1(self.mixer(self.norm1(x), h, w)))
        x = x + self.drop_path(self.ls2(self.ffn(self.norm2(x), h, w)))
        return x.reshape(b, h, w, c)


def prenorm_count(t: Tally, dim: int, tokens: int, layer_scale: float) -> Tally:
    """Adds the two LayerNorms and layer scales of a :class:`PreNormBlock`."""
    return t.layernorm(dim, tokens).layernorm(dim, tokens).parameters(2 * dim if layer_scale > 0 else 0)


def smt_init(module: nn.Module) -> None:
    """SMT's init: Linear trunc-normal 0.02, LayerNorm (1, 0), Conv2d N(0, sqrt(2 / fan_out))."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
