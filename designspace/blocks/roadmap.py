"""The building blocks of iFormer's ConvNeXt-to-iFormer roadmap (seed 003, Sec. 3, Tables 1, 6, 7).

The released iFormer models use ``iformer_conv``, ``shma``, ``iformer_stem`` and ``conv_bn``
(``blocks/shma.py``); the roadmap's intermediate networks need what those replace. NCHW throughout.

* ``convnext_ln``: ConvNeXt's block with LayerNorm (no layer scale, as the paper trains it):
  ``x + PW(GELU(PW_exp(LN(DW_k(x)))))``, DW conv and the 1x1 layers with bias (Sec. 3.1).
* ``patchify_stem``: ConvNeXt's stem, a non-overlapping 4x4 stride-4 conv (bias) then LayerNorm.
* ``ln_patch_merge``: ConvNeXt's downsampling, LayerNorm then a non-overlapping 2x2 stride-2 conv (bias).
* ``iformer_attn``: the roadmap's attention unit [CPE], attention, FFN (each residual; three
  drop-path slots as ``shma``). The attention is multi-head (``num_heads > 1``: Table 1's MHA
  baseline, with the head reshapes that single-head attention avoids), single-head (SHA), or
  single-head modulation (``modulation``: Eq. 3, the gate and v from one sigmoid-activated 1x1
  conv, as ``shma``); projections are Conv-BN ("Post-BN"), or a LayerNorm first and biased 1x1
  convs without BN ("Pre-LN", Table 6); the modulation activation is sigmoid or SiLU (Table 6).
  With ``modulation, cpe``, ``qk_reduction`` 2 and ``norm: post_bn`` it computes exactly what
  ``shma`` computes (a test loads one's weights into the other).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from designspace.blocks.layers import ACTIVATIONS, ConvNorm, DropPath, LayerNorm2d, make_act, trunc_normal_init
from designspace.blocks.registry import Component, Issue, ParamSpec, Site, register
from designspace.blocks.tally import Tally

__all__ = ["AttentionUnit", "ConvNeXtLNBlock", "LNPatchMerge", "PatchifyStem"]

FAMILY = "iFormer roadmap"


class ConvNeXtLNBlock(nn.Module):
    """ConvNeXt block: DW k conv (bias), LayerNorm, 1x1 to ``exp_ratio * C``, act, 1x1 back; residual."""

    def __init__(self, dim: int, *, kernel_size: int = 7, exp_ratio: float = 4.0, act: str = "gelu",
                 norm_eps: float = 1e-6, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        mid = int(dim * exp_ratio)
        self.dw = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = LayerNorm2d(dim, eps=norm_eps)
        self.pw1 = nn.Conv2d(dim, mid, 1)
        self.act = make_act(act)
        self.pw2 = nn.Conv2d(mid, dim, 1)
        self.drop_path = DropPath(drop_path_rate)
        trunc_normal_init(self, convs=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.pw2(self.act(self.pw1(self.norm(self.dw(x))))))


def _convnext_count(site: Site, p: Mapping[str, Any]) -> Tally:
    c, n, hw, mid = site.in_chs, site.tokens, site.hw, int(site.in_chs * p["exp_ratio"])
    t = Tally().conv(c, c, p["kernel_size"], hw, groups=c, bias=True).layernorm(c, n)
    return t.conv(c, mid, 1, hw, bias=True).conv(mid, c, 1, hw, bias=True)


class PatchifyStem(nn.Module):
    """Conv k x k at stride k (bias; non-overlapping patches), then LayerNorm over channels."""

    def __init__(self, in_chs: int, out_chs: int, *, patch_size: int = 4, norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, patch_size, patch_size)
        self.norm = LayerNorm2d(out_chs, eps=norm_eps)
        trunc_normal_init(self, convs=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))


def _patch_out(site: Site, p: Mapping[str, Any]) -> tuple[int, int]:
    k = p["patch_size"]
    return (site.hw[0] // k, site.hw[1] // k)


def _patchify_count(site: Site, p: Mapping[str, Any]) -> Tally:
    hw = _patch_out(site, p)
    t = Tally().conv(site.in_chs, site.out_chs, p["patch_size"], hw, bias=True)
    return t.layernorm(site.out_chs, hw[0] * hw[1])


class LNPatchMerge(nn.Module):
    """LayerNorm over channels, then a ``stride`` x ``stride`` conv at that stride (bias)."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 2, *, norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = LayerNorm2d(in_chs, eps=norm_eps)
        self.conv = nn.Conv2d(in_chs, out_chs, stride, stride)
        trunc_normal_init(self, convs=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.norm(x))


def _merge_out(site: Site, p: Mapping[str, Any]) -> tuple[int, int]:
    # a stride x stride kernel at that stride drops a trailing row/column of an odd size, as ConvNeXt's does
    return (site.hw[0] // site.stride, site.hw[1] // site.stride)


def _merge_count(site: Site, p: Mapping[str, Any]) -> Tally:
    hw = _merge_out(site, p)
    return Tally().layernorm(site.in_chs, site.tokens).conv(site.in_chs, site.out_chs, site.stride, hw, bias=True)


def _proj(cin: int, cout: int, post_bn: bool) -> nn.Module:
    """A 1x1 projection: Conv-BN (Post-BN) or a biased 1x1 conv (Pre-LN)."""
    return ConvNorm(cin, cout, 1) if post_bn else nn.Conv2d(cin, cout, 1)


class Attention(nn.Module):
    """Softmax attention over all tokens of an NCHW map, multi- or single-head, optionally modulated.

    q and k have ``dim // qk_reduction`` channels in all, v (and the gate) ``dim``; ``heads`` split
    them evenly. With modulation, ``v, gate = split(act(PW(x)))`` and the output is ``gate * attn v``.
    """

    def __init__(self, dim: int, *, num_heads: int = 1, qk_reduction: int = 1, modulation: bool = False,
                 gate_act: str = "sigmoid", norm: str = "post_bn") -> None:
        super().__init__()
        post_bn = norm == "post_bn"
        self.heads, self.modulation = num_heads, modulation
        self.pre_norm = nn.Identity() if post_bn else LayerNorm2d(dim, eps=1e-6)
        d = dim // qk_reduction
        self.q = _proj(dim, d, post_bn)
        self.k = _proj(dim, d, post_bn)
        self.v = _proj(dim, 2 * dim if modulation else dim, post_bn)
        self.gate_act = make_act(gate_act) if gate_act != "sigmoid" else nn.Sigmoid()
        self.proj = _proj(dim, dim, post_bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        x = self.pre_norm(x)
        if self.modulation:
            v, gate = self.gate_act(self.v(x)).chunk(2, dim=1)
        else:
            v, gate = self.v(x), None
        if self.heads == 1:  # single head: one flatten + transpose per tensor (iFormer's layout)
            q, k, v = (t.flatten(2).transpose(1, 2) for t in (self.q(x), self.k(x), v))
            out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, c, h, w)
        else:  # multi-head: split channels into heads, then tokens x head width per head
            n, heads = h * w, self.heads
            q, k, v = (t.reshape(b, heads, t.shape[1] // heads, n).transpose(2, 3) for t in (self.q(x), self.k(x), v))
            out = F.scaled_dot_product_attention(q, k, v).transpose(2, 3).reshape(b, c, h, w)
        return self.proj(out if gate is None else out * gate)


class _Residual(nn.Module):
    def __init__(self, m: nn.Module, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        self.m = m
        self.drop_path = DropPath(drop_path_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.m(x))


class AttentionUnit(nn.Module):
    """[CPE], attention, Conv-BN FFN, each residual (see the module docstring)."""

    def __init__(self, dim: int, *, num_heads: int = 1, qk_reduction: int = 1, modulation: bool = False,
                 gate_act: str = "sigmoid", norm: str = "post_bn", cpe: bool = False, ffn_ratio: float = 4.0,
                 act: str = "gelu", drop_path_rate: float | Sequence[float] = 0.0) -> None:
        super().__init__()
        rates = [drop_path_rate] * 3 if isinstance(drop_path_rate, (int, float)) else list(drop_path_rate)
        mid = int(dim * ffn_ratio)
        self.cpe = _Residual(ConvNorm(dim, dim, 3, groups=dim)) if cpe else nn.Identity()
        self.attn = _Residual(Attention(dim, num_heads=num_heads, qk_reduction=qk_reduction, modulation=modulation,
                                        gate_act=gate_act, norm=norm), rates[1])
        self.ffn = _Residual(nn.Sequential(ConvNorm(dim, mid, 1, act=act), ConvNorm(mid, dim, 1)), rates[2])
        trunc_normal_init(self, convs=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn(self.attn(self.cpe(x)))


def _attn_count(site: Site, p: Mapping[str, Any]) -> Tally:
    c, n, hw = site.in_chs, site.tokens, site.hw
    d, f, heads = c // p["qk_reduction"], int(c * p["ffn_ratio"]), p["num_heads"]
    post_bn = p["norm"] == "post_bn"
    t = Tally()
    if p["cpe"]:
        t.conv(c, c, 3, hw, groups=c).batchnorm(c, n)
    if not post_bn:
        t.layernorm(c, n)
    for cout in (d, d, 2 * c if p["modulation"] else c):
        t.conv(c, cout, 1, hw, bias=not post_bn)
        if post_bn:
            t.batchnorm(cout, n)
    t.attention(heads, n, n, d // heads, c // heads)
    t.conv(c, c, 1, hw, bias=not post_bn)
    if post_bn:
        t.batchnorm(c, n)
    return t.conv(c, f, 1, hw).batchnorm(f, n).conv(f, c, 1, hw).batchnorm(c, n)


def _attn_check(site: Site, p: Mapping[str, Any]) -> list[Issue]:
    c, heads = site.in_chs, p["num_heads"]
    d = c // p["qk_reduction"]
    if d < heads or d % heads or c % heads:
        good = [h for h in range(1, 17) if d % h == 0 and c % h == 0]
        return [Issue("num_heads", f"{heads} heads do not divide the q/k width {d} and the width {c}",
                      f"use num_heads in {good}")]
    return []


_EPS = ParamSpec("norm_eps", float, 1e-6, "LayerNorm epsilon (ConvNeXt: 1e-6)", low=0.0)

register(Component(
    name="convnext_ln", kind="block", family=FAMILY,
    doc="ConvNeXt block with LayerNorm (seed 003 Sec. 3.1's baseline, no layer scale): DW k conv, LN, "
        "1x1 expand, GELU, 1x1, residual; convs with bias.",
    params=(
        ParamSpec("kernel_size", int, 7, "depthwise kernel (pixels)", low=1, high=15, odd=True),
        ParamSpec("exp_ratio", float, 4.0, "hidden width / channels", low=1.0, high=8.0),
        ParamSpec("act", str, "gelu", "activation", choices=ACTIVATIONS),
        _EPS,
    ),
    build=lambda s, p, dp: ConvNeXtLNBlock(s.in_chs, drop_path_rate=dp, **p),
    count=_convnext_count,
))

register(Component(
    name="iformer_attn", kind="block", family=FAMILY,
    doc="iFormer's roadmap attention unit (seed 003 Sec. 3.3, Tables 1, 6, 7): [CPE], multi-head, "
        "single-head or single-head modulation attention (Post-BN or Pre-LN projections, sigmoid or "
        "SiLU modulation), Conv-BN FFN; each residual.",
    params=(
        ParamSpec("num_heads", int, 1, "attention heads (1 = single head, SHA)", low=1, high=32),
        ParamSpec("qk_reduction", int, 1, "q/k width = channels / qk_reduction", low=1, high=16),
        ParamSpec("modulation", bool, False, "SHMA's gate (Eq. 3) instead of plain attention"),
        ParamSpec("gate_act", str, "sigmoid", "activation of v and the gate (Table 6)", choices=("sigmoid", "silu")),
        ParamSpec("norm", str, "post_bn", "BN after each projection, or LayerNorm before them (Table 6)",
                  choices=("post_bn", "pre_ln")),
        ParamSpec("cpe", bool, False, "a conditional positional encoding (residual DW3 Conv-BN) first"),
        ParamSpec("ffn_ratio", float, 4.0, "FFN hidden width / channels", low=1.0, high=8.0),
        ParamSpec("act", str, "gelu", "FFN activation", choices=ACTIVATIONS),
    ),
    build=lambda s, p, dp: AttentionUnit(s.in_chs, drop_path_rate=dp, **p),
    count=_attn_count,
    check=_attn_check,
    drop_path_slots=3,
    attention=True,
))

register(Component(
    name="patchify_stem", kind="stem", family=FAMILY,
    doc="ConvNeXt's patchify stem: a non-overlapping patch_size x patch_size conv at that stride, LayerNorm.",
    params=(ParamSpec("patch_size", int, 4, "patch side = stride (pixels)", low=1, high=16), _EPS),
    build=lambda s, p, dp: PatchifyStem(s.in_chs, s.out_chs, **p),
    count=_patchify_count,
    out_hw=_patch_out,
))

register(Component(
    name="ln_patch_merge", kind="downsample", family=FAMILY,
    doc="ConvNeXt's downsampling: LayerNorm, then a non-overlapping stride x stride conv (bias).",
    params=(_EPS,),
    build=lambda s, p, dp: LNPatchMerge(s.in_chs, s.out_chs, s.stride, **p),
    count=_merge_count,
    out_hw=_merge_out,
    strides=(2,),
    changes_width=True,
))
