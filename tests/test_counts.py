"""Counting: formulas written out by hand, the published models' exact parameters, and the analytic
counter against fvcore tracing (every component, every zoo model, random hybrid Archs)."""

from __future__ import annotations

import functools
import random
from typing import Any

import pytest
import torch
from archgen import random_arch

import designspace as ds
from designspace import zoo
from designspace.blocks import KINDS, Site, components, get
from designspace.evaluate.counts.traced import trace_macs


def _counts(name: str, site: Site, **params: Any) -> tuple[int, int]:
    comp = get(name)
    t = comp.count(site, {**comp.defaults(), **params})
    return t.params, t.total_macs


# ------------------------------------------------------------------------------------------- formulas
def test_mbconv_formula() -> None:
    # in 16 -> out 24, stride 2, t 6, k 3 at 56x56: PW 16->96 @56^2, DW3 @28^2, PW 96->24 @28^2, BN after each
    params, macs = _counts("mbconv", Site(16, 24, 2, (56, 56)))
    assert params == (16 * 96 + 2 * 96) + (96 * 9 + 2 * 96) + (96 * 24 + 2 * 24)
    assert macs == (16 * 96 * 56 * 56 + 2 * 96 * 56 * 56) + (96 * 9 * 28 * 28 + 2 * 96 * 28 * 28) + (
        96 * 24 * 28 * 28 + 2 * 24 * 28 * 28)


def test_msa_formula_counts_attention() -> None:
    # SMT MSA at C 64, 8 heads, 7x5 tokens: LN x2, qkv, QK^T and AV, DW3 on V, proj, ConvFFN ratio 4
    c, n, h = 64, 35, 256
    params, macs = _counts("msa", Site(c, c, 1, (7, 5)))
    assert params == 4 * c + (c * 3 * c + 3 * c) + (c * 9 + c) + (c * c + c) + (c * h + h) + (h * 9 + h) + (h * c + c)
    attention = 2 * n * n * c  # 8 heads x (n x n x 8) for Q K^T and again for A V
    assert macs == 2 * 5 * c * n + 3 * c * c * n + attention + 9 * c * n + c * c * n + c * h * n + 9 * h * n + h * c * n


def test_efficientmod_formula() -> None:
    # C 32, r 6, k 7, 8x8: LN, f, DW7 (bias), g, fc1 to 192, fc2 back, layer scale
    c, n = 32, 64
    params, macs = _counts("efficientmod", Site(c, c, 1, (8, 8)))
    assert params == 2 * c + 2 * (c * c + c) + (49 * c + c) + (c * 6 * c + 6 * c) + (6 * c * c + c) + c
    assert macs == 5 * c * n + 2 * c * c * n + 49 * c * n + 12 * c * c * n


def test_shma_formula() -> None:
    # C 64 at 4x4, qk width 32, v/gate 64 each, FFN ratio 3, Conv-BN everywhere
    c, n, d, f = 64, 16, 32, 192
    params, macs = _counts("shma", Site(c, c, 1, (4, 4)))
    convbn = lambda i, o: i * o + 2 * o  # noqa: E731
    assert params == (9 * c + 2 * c) + convbn(c, 2 * c) + 2 * convbn(c, d) + convbn(c, c) + convbn(c, f) + convbn(f, c)
    bn = lambda ch: 2 * ch * n  # noqa: E731
    assert macs == (9 * c * n + bn(c)) + (2 * c * c * n + bn(2 * c)) + 2 * (c * d * n + bn(d)) + (
        n * n * d + n * n * c) + (c * c * n + bn(c)) + (c * f * n + bn(f)) + (f * c * n + bn(c))


# ------------------------------------------------------------------------- analytic == traced (fvcore)
def _component_cases() -> list[Any]:
    return [pytest.param(c, id=c.name) for kind in KINDS for c in components(kind)]


@pytest.mark.parametrize("comp", _component_cases())
def test_component_analytic_equals_traced(comp: Any) -> None:
    width = 48
    params = {**comp.defaults(), **({"heads": 4} if comp.name == "sam" else {})}
    if comp.kind == "stem":
        site = Site(3, width, 1, (64, 48))
    elif comp.kind == "head":
        site = Site(width, 10, 1, (7, 6))
    else:
        site = Site(width, width + 16 if comp.changes_width else width, max(comp.strides), (14, 10))
    module = comp.build(site, params, 0.0)
    h, w = site.hw
    x = torch.randn(1, site.in_chs, h, w) if comp.layouts(params)[0] == "nchw" else torch.randn(1, h, w, site.in_chs)
    traced = trace_macs(module, x)
    analytic = comp.count(site, params)
    assert {k: v for k, v in traced.items() if v} == dict(analytic.macs)


_HEAVY = {"mobilenetv4_conv_medium", "mobilenetv4_conv_large", "mobilenetv4_hybrid_large"}  # seconds each to trace


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in _HEAVY else n for n in zoo.names()])
def test_zoo_analytic_equals_traced(name: str) -> None:
    arch = ds.load_arch(name)
    analytic, traced = ds.count(arch), ds.trace_count(arch)
    assert analytic.params == traced.params
    assert analytic.macs == traced.macs
    for a, t in zip(analytic.components, traced.components, strict=True):
        assert (a.name, a.params, a.macs) == (t.name, t.params, t.macs)


@functools.cache
def _random_archs(n: int, seed: int) -> list[Any]:
    rng = random.Random(seed)
    return [random_arch(rng) for _ in range(n)]


def _check_random(arch: Any) -> None:
    model = ds.build_model(arch)
    analytic, traced = ds.count(arch), ds.trace_count(arch, model)
    assert analytic.params == traced.params == sum(p.numel() for p in model.parameters())
    assert abs(analytic.macs - traced.macs) <= 0.005 * traced.macs
    assert analytic.macs == traced.macs  # in fact exact
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 3, arch.resolution, arch.resolution)).shape == (2, arch.num_classes)


@pytest.mark.parametrize("index", range(20))
def test_random_archs_analytic_equals_traced(index: int) -> None:
    _check_random(_random_archs(20, seed=1234)[index])


@pytest.mark.slow
def test_200_random_archs_analytic_equals_traced() -> None:
    archs = _random_archs(200, seed=2026)
    used = {b.type for a in archs for _, _, b in a.blocks()}
    assert used == {c.name for c in components("block")}
    assert {a.resolution for a in archs} >= {160, 224, 288}
    for arch in archs:
        _check_random(arch)

