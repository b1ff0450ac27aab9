"""Multi-head self-attention blocks as the seeds use them (tokens, NHWC layout).

One registered block, ``msa``, pre-norm ``x + dp(g1 * MSA(LN(x)))``, ``x + dp(g2 * FFN(LN(x)))``,
whose parameters cover both seeds:

* SMT's MSA (seed 004; the defaults): heads h, head width C/h, q and kv with bias, global attention,
  plus a depthwise 3x3 conv (with bias) on V in spatial layout added to the attention output
  ("local_conv"), ConvFFN, LayerNorm eps 1e-6.
* EfficientMod's plain ViT block (seed 000): ``v_local_conv: false, ffn: mlp, qkv_bias: false,
  norm_eps: 1e-5`` and 8 heads of ``head_dim = max(C // 8, 32)`` (so the inner width 8 x head_dim
  may exceed C), no layer scale.

Attention is softmax(Q K^T / sqrt(head_dim)) V over all tokens, computed with
``scaled_dot_product_attention``; its matrix products are counted as MACs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from designspace.blocks.registry import Component, Issue, ParamSpec, Site, register
from designspace.blocks.tally import Tally
from designspace.blocks.transformer import FFNS, PreNormBlock, ffn_count, make_ffn, prenorm_count, smt_init

__all__ = ["MSA", "msa_block"]


def _head_dim(dim: int, num_heads: int, head_dim: int) -> int:
    return head_dim if head_dim > 0 else dim // num_heads


class MSA(nn.Module):
    """Multi-head self-attention token mixer with an optional depthwise conv on V (NHWC).

    Args:
        dim: channels C.
        num_heads: heads.
        head_dim: channels per head; 0 means ``C // num_heads``.
        qkv_bias: bias of the Q, K, V projections.
        v_local_conv: add a depthwise 3x3 conv of V (SMT) to the attention output.
    """

    def __init__(self, dim: int, *, num_heads: int = 8, head_dim: int = 0, qkv_bias: bool = True,
                 v_local_conv: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = _head_dim(dim, num_heads, head_dim)
        inner = self.num_heads * self.head_dim
        self.qkv = nn.Linear(dim, 3 * inner, bias=qkv_bias)
        self.local_conv = nn.Conv2d(inner, inner, 3, padding=1, groups=inner) if v_local_conv else None
        self.proj = nn.Linear(inner, dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:  # x: (B, N, C)
        b, n, _ = x.shape
        heads, dh = self.num_heads, self.head_dim
        q, k, v = self.qkv(x).reshape(b, n, 3, heads, dh).permute(2, 0, 3, 1, 4)  # 3 x (B, heads, N, dh)
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, heads * dh)
        if self.local_conv is not None:  # SMT: a depthwise conv of V on the token grid
            v_sp = v.transpose(1, 2).reshape(b, n, heads * dh).transpose(1, 2).view(b, heads * dh, h, w)
            out = out + self.local_conv(v_sp).view(b, heads * dh, n).transpose(1, 2)
        return self.proj(out)


def msa_block(dim: int, *, num_heads: int = 8, head_dim: int = 0, qkv_bias: bool = True, v_local_conv: bool = True,
              mlp_ratio: float = 4.0, ffn: str = "convffn", layer_scale: float = 0.0, norm_eps: float = 1e-6,
              drop_path_rate: float = 0.0) -> PreNormBlock:
    """The pre-norm MSA block (NHWC); see the module docstring for the parameters."""
    block = PreNormBlock(
        dim, MSA(dim, num_heads=num_heads, head_dim=head_dim, qkv_bias=qkv_bias, v_local_conv=v_local_conv),
        make_ffn(ffn, dim, int(dim * mlp_ratio)),
        norm_eps=norm_eps, layer_scale=layer_scale, drop_path_rate=drop_path_rate)
    smt_init(block)
    return block


def _msa_count(site: Site, p: Mapping[str, Any]) -> Tally:
    c, n, hw = site.in_chs, site.tokens, site.hw
    heads = p["num_heads"]
    dh = _head_dim(c, heads, p["head_dim"])
    inner = heads * dh
    t = prenorm_count(Tally(), c, n, p["layer_scale"])
    t.linear(c, 3 * inner, n, bias=p["qkv_bias"]).attention(heads, n, n, dh, dh)
    if p["v_local_conv"]:
        t.conv(inner, inner, 3, hw, groups=inner, bias=True)
    t.linear(inner, c, n)
    return ffn_count(t, p["ffn"], c, int(c * p["mlp_ratio"]), hw)


def _msa_check(site: Site, p: Mapping[str, Any]) -> list[Issue]:
    c, heads = site.in_chs, p["num_heads"]
    if p["head_dim"] == 0 and c % heads:
        good = [h for h in (1, 2, 3, 4, 6, 8, 12, 16) if c % h == 0]
        return [Issue("num_heads", f"{heads} heads do not divide the width {c} (head_dim 0 means C / heads)",
                      f"use num_heads in {good}, or set head_dim explicitly")]
    if c // heads == 0 and p["head_dim"] == 0:
        return [Issue("num_heads", f"{heads} heads leave no channel per head at width {c}", "use fewer heads")]
    return []


register(Component(
    name="msa", kind="block", family="SMT/EfficientMod",
    doc="Pre-norm multi-head self-attention block: SMT's MSA (depthwise 3x3 conv on V, ConvFFN; the "
        "defaults) or, with v_local_conv false, ffn mlp, qkv_bias false, EfficientMod's plain ViT block.",
    params=(
        ParamSpec("num_heads", int, 8, "attention heads", low=1, high=64),
        ParamSpec("head_dim", int, 0, "channels per head; 0 = width / num_heads", low=0, high=256),
        ParamSpec("qkv_bias", bool, True, "bias of the Q, K, V projections (EfficientMod: false)"),
        ParamSpec("v_local_conv", bool, True, "depthwise 3x3 conv on V added to the output (SMT)"),
        ParamSpec("mlp_ratio", float, 4.0, "FFN hidden width / channels", low=0.5, high=8.0),
        ParamSpec("ffn", str, "convffn", "FFN kind: SMT's ConvFFN or a plain MLP (EfficientMod)", choices=FFNS),
        ParamSpec("layer_scale", float, 0.0, "initial per-channel layer scale; 0 = none", low=0.0),
        ParamSpec("norm_eps", float, 1e-6, "LayerNorm epsilon (EfficientMod: 1e-5)", low=0.0),
    ),
    build=lambda s, p, dp: msa_block(s.in_chs, drop_path_rate=dp, **p),
    count=_msa_count,
    check=_msa_check,
    layout=("nhwc", "nhwc"),
    attention=True,
))
