"""The iFormer roadmap's blocks: iformer_attn reproduces shma exactly, MHA differs from SHA only in heads,
and the roadmap's Archs build and run."""

from __future__ import annotations

import pytest
import torch

import designspace as ds
from designspace.blocks import Site, get
from designspace.evaluate.points import load_points


def _spread(module: torch.nn.Module) -> None:
    for p in module.parameters():
        if p.ndim == 1:
            p.data.uniform_(0.5, 1.5)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)


@pytest.mark.parametrize("qk_reduction", [2, 4])
def test_iformer_attn_computes_what_shma_computes(qk_reduction: int) -> None:
    torch.manual_seed(0)
    site = Site(32, 32, 1, (7, 6))
    shma = get("shma").build(site, {**get("shma").defaults(), "qk_reduction": qk_reduction}, 0.0).eval()
    params = {**get("iformer_attn").defaults(), "modulation": True, "cpe": True, "qk_reduction": qk_reduction,
              "ffn_ratio": 3.0}
    unit = get("iformer_attn").build(site, params, 0.0).eval()
    _spread(shma)
    names = {"attn.m.v_gate": "attn.m.v"}  # the one renamed projection
    state = {}
    for key, value in shma.state_dict().items():
        for old, new in names.items():
            key = key.replace(old, new)
        state[key] = value
    unit.load_state_dict(state)
    x = torch.randn(2, 32, 7, 6)
    with torch.no_grad():
        torch.testing.assert_close(unit(x), shma(x), rtol=1e-5, atol=1e-6)
    assert get("iformer_attn").count(site, params).total_macs == get("shma").count(
        site, {**get("shma").defaults(), "qk_reduction": qk_reduction}).total_macs


def test_mha_equals_sha_with_one_head_and_differs_with_more() -> None:
    torch.manual_seed(0)
    site = Site(24, 24, 1, (5, 5))
    sha = get("iformer_attn").build(site, get("iformer_attn").defaults(), 0.0).eval()
    mha = get("iformer_attn").build(site, {**get("iformer_attn").defaults(), "num_heads": 3}, 0.0).eval()
    mha.load_state_dict(sha.state_dict())  # same weights: only the head split differs
    x = torch.randn(1, 24, 5, 5)
    with torch.no_grad():
        assert not torch.allclose(mha(x), sha(x))
    c1 = get("iformer_attn").count(site, get("iformer_attn").defaults())
    c3 = get("iformer_attn").count(site, {**get("iformer_attn").defaults(), "num_heads": 3})
    assert c1.params == c3.params and c1.macs == c3.macs  # heads change the reshapes, not the counts


def test_head_check_names_the_fix() -> None:
    issues = get("iformer_attn").check(Site(20, 20, 1, (4, 4)), {**get("iformer_attn").defaults(), "num_heads": 3})
    assert issues and issues[0].param == "num_heads" and "use num_heads in" in issues[0].fix


def test_roadmap_archs_build_and_run() -> None:
    for p in load_points(["iformer_roadmap"])[:2]:
        model = ds.build_model(p.arch).eval()
        with torch.no_grad():
            y = model(torch.randn(1, 3, 224, 224))
        assert y.shape == (1, 1000)


@pytest.mark.parametrize("point", [p.id for p in load_points(["iformer_roadmap", "iformer_table6", "iformer_table7"])])
def test_every_study_arch_builds_with_its_analytic_count(point: str) -> None:
    arch = {p.id: p.arch for p in load_points()}[point]
    with torch.device("meta"):  # shapes only: parameters are counted, nothing computed
        model = ds.build_model(arch)
    assert ds.count(arch).params == sum(q.numel() for q in model.parameters())
    assert dict(arch.meta)["assumed"] and dict(arch.meta)["source"].startswith("003")
