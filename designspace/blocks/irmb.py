"""EMO (Zhang et al., ICCV 2023, seed 002): the inverted residual mobile block (iRMB) and EMO's stem.

iRMB (Eq. 4), NCHW, as the authors' ``iRMB`` with ``attn_pre=True``:

    x' = Norm(x)                                   # BN in conv stages, LN in attention stages
    x' = act(PW_v(EW-MHSA(x')))  or  act(PW_v(x')) # Q, K from the unexpanded input; V = x' itself
    y  = SiLU(BN(DW_k(x', stride)));  x' = x' + y if skip else y   # the DW conv's own skip
    x  = x + drop_path(PW_proj(x'))  if skip else PW_proj(x')

EW-MHSA is windowed multi-head attention. Windows follow the authors' partition
``b c (h1 n1) (w1 n2) -> (b n1 n2) c h1 w1`` (h1 = window size): a window gathers tokens spaced
``n1`` apart; the input is zero-padded to a multiple of the window first. ``skip`` holds iff
stride 1 and ``in_chs == out_chs``. EMO's stage-first block is a stride-2 iRMB without
attention and with twice the stage's expansion.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from designspace.blocks.layers import (
    ACTIVATIONS,
    ConvNorm,
    DropPath,
    LayerNorm2d,
    SqueezeExcite,
    trunc_normal_init,
)
from designspace.blocks.registry import Component, Issue, ParamSpec, Site, register
from designspace.blocks.tally import Tally, conv_out

__all__ = ["IRMB", "EMOStem", "resolve_norm_act"]

FAMILY = "EMO"


def resolve_norm_act(attn: bool, norm: str, act: str) -> tuple[str, str]:
    """EMO's stage-dependent choice for ``"auto"``: BN + SiLU without attention, LN + GELU with it."""
    if norm == "auto":
        norm = "ln" if attn else "bn"
    if act == "auto":
        act = "gelu" if attn else "silu"
    return norm, act


def _mid(in_chs: int, exp_ratio: float) -> int:
    return int(in_chs * exp_ratio)  # the authors' int() truncation


def _window(size: int, window: int) -> tuple[int, int]:
    """(window length, number of windows) along one axis; window <= 0 means one global window."""
    if window <= 0:
        return size, 1
    # (size + window - 1) // window, not -(-size // window): under tracing a negative floor
    # division is exported to ONNX as a truncating Div and the padding turns into cropping
    return window, (size + window - 1) // window


class IRMB(nn.Module):
    """Inverted residual mobile block (NCHW).

    Args:
        in_chs: input channels.
        out_chs: output channels.
        stride: stride of the depthwise conv.
        exp_ratio: expansion; hidden width ``int(in_chs * exp_ratio)``.
        kernel_size: depthwise kernel.
        attn: use windowed multi-head self-attention (EW-MHSA) before the V projection.
        dim_head: channels per attention head; heads = in_chs / dim_head.
        window_size: attention window (tokens per side); 0 = global attention.
        norm: pre-norm: ``"bn"``, ``"ln"``, ``"none"``, or ``"auto"`` (LN with attention, else BN).
        act: activation after the V projection, or ``"auto"`` (GELU with attention, else SiLU).
        se_ratio: squeeze-excite on the hidden width (fraction of it); 0 disables.
        v_proj: project to the hidden width (else identity; requires exp_ratio 1 without attention).
        qkv_bias: biases of the QK and V projections.
        attn_pre: attend over the normalized input and project after (EMO); else project V first.
        skip: allow the residuals (they also need stride 1 and equal widths).
        norm_eps: epsilon of the pre-norm and of the depthwise conv's BatchNorm.
        drop_path_rate: stochastic depth.
    """

    def __init__(
        self, in_chs: int, out_chs: int, stride: int = 1, *, exp_ratio: float = 4.0, kernel_size: int = 3,
        attn: bool = False, dim_head: int = 32, window_size: int = 7, norm: str = "auto", act: str = "auto",
        se_ratio: float = 0.0, v_proj: bool = True, qkv_bias: bool = True, attn_pre: bool = True,
        skip: bool = True, norm_eps: float = 1e-6, drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        norm, act = resolve_norm_act(attn, norm, act)
        mid = _mid(in_chs, exp_ratio)
        self.has_skip = skip and stride == 1 and in_chs == out_chs
        self.attn = attn
        self.attn_pre = attn_pre
        self.window_size = window_size
        if norm == "bn":
            self.norm: nn.Module = nn.BatchNorm2d(in_chs, eps=norm_eps)
        elif norm == "ln":
            self.norm = LayerNorm2d(in_chs, eps=norm_eps)
        else:
            self.norm = nn.Identity()
        if attn:
            self.num_heads = in_chs // dim_head
            self.dim_head = dim_head
            self.scale = dim_head**-0.5
            self.qk = nn.Conv2d(in_chs, 2 * in_chs, 1, bias=qkv_bias)
        self.v: nn.Module
        if attn or v_proj:
            self.v = ConvNorm(in_chs, mid, 1, bias=qkv_bias, norm=False, act=act)
        else:
            self.v = nn.Identity()
        self.conv_local = ConvNorm(mid, mid, kernel_size, stride, groups=mid, eps=norm_eps, act="silu")
        se_act = act
        self.se = SqueezeExcite(mid, round(mid * se_ratio), se_act) if se_ratio > 0 else nn.Identity()
        self.proj = nn.Conv2d(mid, out_chs, 1, bias=False)
        self.drop_path = DropPath(drop_path_rate) if self.has_skip else nn.Identity()
        trunc_normal_init(self)

    def _attention(self, x: torch.Tensor) -> torch.Tensor:
        # The authors' op sequence, step for step and with their einops patterns, so that the exported graph
        # (einops computes shapes at run time, which limits ONNX Runtime's transpose folding) and therefore
        # its latency are theirs: padding is applied even when it is zero, attention is computed explicitly.
        _, _, h, w = x.shape
        wh, n1 = _window(h, self.window_size)
        ww, n2 = _window(w, self.window_size)
        pad_b, pad_r = wh * n1 - h, ww * n2 - w
        x = F.pad(x, (0, pad_r, 0, pad_b, 0, 0))
        # a window takes every n1-th row and n2-th column (h1 = window size)
        x = rearrange(x, "b c (h1 n1) (w1 n2) -> (b n1 n2) c h1 w1", n1=n1, n2=n2).contiguous()
        _, _, hh, ww_ = x.shape
        qk = rearrange(self.qk(x), "b (qk heads dim_head) h w -> qk b heads (h w) dim_head", qk=2,
                       heads=self.num_heads, dim_head=self.dim_head).contiguous()
        attn = ((qk[0] @ qk[1].transpose(-2, -1)) * self.scale).softmax(dim=-1)  # (bw, heads, n, n)
        if self.attn_pre:
            v = rearrange(x, "b (heads dim_head) h w -> b heads (h w) dim_head", heads=self.num_heads).contiguous()
            out = rearrange(attn @ v, "b heads (h w) dim_head -> b (heads dim_head) h w", heads=self.num_heads,
                            h=hh, w=ww_).contiguous()
            out = self.v(out)
        else:
            v = rearrange(self.v(x), "b (heads dim_head) h w -> b heads (h w) dim_head",
                          heads=self.num_heads).contiguous()
            out = rearrange(attn @ v, "b heads (h w) dim_head -> b (heads dim_head) h w", heads=self.num_heads,
                            h=hh, w=ww_).contiguous()
        out = rearrange(out, "(b n1 n2) c h1 w1 -> b c (h1 n1) (w1 n2)", n1=n1, n2=n2).contiguous()
        return out[:, :, :h, :w].contiguous() if (pad_b or pad_r) else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm(x)
        x = self._attention(x) if self.attn else self.v(x)
        y = self.se(self.conv_local(x))
        x = x + y if self.has_skip else y
        x = self.proj(x)
        return shortcut + self.drop_path(x) if self.has_skip else x


def _count_body(site: Site, p: Mapping[str, Any], t: Tally) -> Tally:
    """Everything after the pre-norm: attention / V projection, DW conv, SE, projection."""
    cin, mid, hw = site.in_chs, _mid(site.in_chs, p["exp_ratio"]), site.hw
    if p["attn"]:
        wh, n1 = _window(hw[0], p["window_size"])
        ww, n2 = _window(hw[1], p["window_size"])
        padded = (wh * n1, ww * n2)
        heads, n = cin // p["dim_head"], wh * ww
        t.conv(cin, 2 * cin, 1, padded, bias=p["qkv_bias"])
        dv = p["dim_head"] if p["attn_pre"] else mid // heads
        t.attention(heads, n, n, p["dim_head"], dv, windows=n1 * n2)
        t.conv(cin, mid, 1, padded, bias=p["qkv_bias"])
    elif p["v_proj"]:
        t.conv(cin, mid, 1, hw, bias=p["qkv_bias"])
    k, s = p["kernel_size"], site.stride
    out_hw = (conv_out(hw[0], k, s), conv_out(hw[1], k, s))
    out_tokens = out_hw[0] * out_hw[1]
    t.conv(mid, mid, k, out_hw, groups=mid).batchnorm(mid, out_tokens)
    if p["se_ratio"] > 0:
        rd = round(mid * p["se_ratio"])
        t.pool(mid * out_tokens).conv(mid, rd, 1, (1, 1), bias=True).conv(rd, mid, 1, (1, 1), bias=True)
    return t.conv(mid, site.out_chs, 1, out_hw)


def _irmb_count(site: Site, p: Mapping[str, Any]) -> Tally:
    norm, _ = resolve_norm_act(p["attn"], p["norm"], p["act"])
    t = Tally()
    if norm == "bn":
        t.batchnorm(site.in_chs, site.tokens)
    elif norm == "ln":
        t.layernorm(site.in_chs, site.tokens)
    return _count_body(site, p, t)


def _irmb_check(site: Site, p: Mapping[str, Any]) -> list[Issue]:
    issues = []
    mid = _mid(site.in_chs, p["exp_ratio"])
    if p["attn"]:
        dh = p["dim_head"]
        if site.in_chs % dh:
            good = [d for d in range(8, site.in_chs + 1) if site.in_chs % d == 0][:6]
            issues.append(Issue("dim_head", f"dim_head {dh} does not divide the block's input width "
                                            f"{site.in_chs} (heads = width / dim_head)",
                                f"use a dim_head that divides {site.in_chs}, e.g. {good}"))
        elif not p["attn_pre"] and mid % (site.in_chs // dh):
            issues.append(Issue("exp_ratio", f"hidden width {mid} is not divisible by the "
                                             f"{site.in_chs // dh} heads (attn_pre false)",
                                "set attn_pre true or pick an exp_ratio giving a divisible width"))
    elif not p["v_proj"] and mid != site.in_chs:
        issues.append(Issue("v_proj", f"without the V projection the hidden width must equal the input "
                                      f"width {site.in_chs}, but exp_ratio {p['exp_ratio']} gives {mid}",
                            "set exp_ratio: 1 or v_proj: true"))
    if mid < 1:
        issues.append(Issue("exp_ratio", f"hidden width int({site.in_chs} * {p['exp_ratio']}) is 0",
                            "raise exp_ratio"))
    return issues


class EMOStem(nn.Module):
    """EMO's stem: k x k stride-2 conv with bias + BN (no act), then the depthwise iRMB with SE
    (no pre-norm, no V projection, DW k + BN + SiLU, SE 1.0, PW projection, no residual)."""

    def __init__(
        self, in_chs: int, out_chs: int, *, kernel_size: int = 3, se_ratio: float = 1.0, act: str = "silu",
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.conv = ConvNorm(in_chs, out_chs, kernel_size, 2, bias=True, eps=norm_eps)
        self.block = IRMB(out_chs, out_chs, exp_ratio=1.0, kernel_size=kernel_size, norm="none", act=act,
                          se_ratio=se_ratio, v_proj=False, skip=False, norm_eps=norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(self.conv(x))


def _stem_out(site: Site, p: Mapping[str, Any]) -> tuple[int, int]:
    k = p["kernel_size"]
    return (conv_out(site.hw[0], k, 2), conv_out(site.hw[1], k, 2))


def _stem_count(site: Site, p: Mapping[str, Any]) -> Tally:
    out_hw = _stem_out(site, p)
    c = site.out_chs
    t = Tally().conv(site.in_chs, c, p["kernel_size"], out_hw, bias=True).batchnorm(c, out_hw[0] * out_hw[1])
    block = {"exp_ratio": 1.0, "kernel_size": p["kernel_size"], "attn": False, "v_proj": False,
             "se_ratio": p["se_ratio"]}
    return _count_body(Site(c, c, 1, out_hw), block, t)


register(Component(
    name="irmb", kind="block", family=FAMILY,
    doc="EMO's inverted residual mobile block (seed 002, Eq. 4): pre-norm, optional windowed "
        "EW-MHSA (Q, K from the unexpanded input, V expanded), PW expansion + act, DW conv "
        "(BN + SiLU) with its own skip, PW shrink, residual; strided form without residuals.",
    params=(
        ParamSpec("exp_ratio", float, 4.0, "expansion; hidden width int(in_chs * exp_ratio)", low=0.25, high=12.0),
        ParamSpec("kernel_size", int, 3, "depthwise kernel (pixels)", low=1, high=11, odd=True),
        ParamSpec("attn", bool, False, "windowed multi-head self-attention (EW-MHSA)"),
        ParamSpec("dim_head", int, 32, "channels per head (heads = in_chs / dim_head)", low=4, high=256),
        ParamSpec("window_size", int, 7, "attention window (tokens per side); 0 = global", low=0, high=64),
        ParamSpec("norm", str, "auto", "pre-norm; auto = LN with attention, BN without",
                  choices=("auto", "bn", "ln", "none")),
        ParamSpec("act", str, "auto", "activation after V; auto = GELU with attention, SiLU without",
                  choices=("auto",) + ACTIVATIONS),
        ParamSpec("se_ratio", float, 0.0, "squeeze-excite width / hidden width; 0 = off", low=0.0, high=1.0),
        ParamSpec("v_proj", bool, True, "PW projection to the hidden width (else identity)"),
        ParamSpec("qkv_bias", bool, True, "biases of the QK and V projections"),
        ParamSpec("attn_pre", bool, True, "attend over the normalized input, project after (EMO)"),
        ParamSpec("skip", bool, True, "residuals when stride 1 and widths match"),
        ParamSpec("norm_eps", float, 1e-6, "epsilon of the norms", low=0.0),
    ),
    build=lambda s, p, dp: IRMB(s.in_chs, s.out_chs, s.stride, drop_path_rate=dp, **p),
    count=_irmb_count,
    check=_irmb_check,
    strides=(1, 2),
    changes_width=True,
    attention="attn",
))

register(Component(
    name="emo_stem", kind="stem", family=FAMILY,
    doc="EMO stem: k x k stride-2 conv with bias + BN, then a depthwise iRMB with squeeze-excite.",
    params=(
        ParamSpec("kernel_size", int, 3, "kernel of the conv and of the DW conv (pixels)", low=3, high=7, odd=True),
        ParamSpec("se_ratio", float, 1.0, "squeeze-excite width / channels", low=0.0, high=1.0),
        ParamSpec("act", str, "silu", "activation of the squeeze-excite", choices=ACTIVATIONS),
        ParamSpec("norm_eps", float, 1e-6, "BatchNorm epsilon", low=0.0),
    ),
    build=lambda s, p, dp: EMOStem(s.in_chs, s.out_chs, **p),
    count=_stem_count,
    out_hw=_stem_out,
))
