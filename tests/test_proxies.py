"""Training-free proxies: determinism, finiteness on the zoo and on random hybrid Archs, shipped inputs."""

from __future__ import annotations

import functools
import math
import random

import pytest
import torch
from archgen import random_arch

import designspace as ds
from designspace import zoo
from designspace.cli import main
from designspace.evaluate.estimate import COMBINATIONS, DEFAULT, ESTIMATES, estimate, reference
from designspace.evaluate.proxies import PROXIES, compute_proxies, naswot, proxy_images

HEAVY = {"smt_b", "smt_l", "smt_s", "iformer_l"}


def test_images_are_shipped_seeded_and_normalized() -> None:
    a, b = proxy_images(6, 64, seed=3), proxy_images(6, 64, seed=3)
    assert a.shape == (6, 3, 64, 64) and torch.equal(a, b)
    assert not torch.equal(a, proxy_images(6, 64, seed=4))
    assert abs(float(a.mean())) < 1.5 and 0.3 < float(a.std()) < 2.0  # ImageNet-normalized photographs


@pytest.mark.parametrize("name", ["mobilenetv2_100", "emo_1m", "iformer_t", "efficientmod_xxs"])
def test_same_seed_same_scores(name: str) -> None:
    arch = zoo.load(name)
    first = compute_proxies(arch, seed=7, batch=8).values
    again = compute_proxies(arch, seed=7, batch=8).values
    for p in PROXIES:
        assert math.isfinite(first[p])
        assert again[p] == pytest.approx(first[p], rel=1e-6, abs=1e-9)
    other = compute_proxies(arch, ("naswot",), seed=8, batch=8).values
    assert other["naswot"] != first["naswot"]


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in zoo.names()])
def test_finite_on_every_zoo_model(name: str) -> None:
    values = compute_proxies(zoo.load(name), batch=4).values
    assert all(math.isfinite(v) for v in values.values()), values


@functools.cache
def _archs(n: int) -> list[ds.Arch]:
    """Random hybrid Archs under 2 GMACs (the generator also draws attention at 144x144 tokens, whose
    16-image batches are out of reach of a proxy on a CPU)."""
    rng = random.Random(99)
    out: list[ds.Arch] = []
    while len(out) < n:
        arch = random_arch(rng)
        if ds.count(arch).macs_g < 2.0:
            out.append(arch)
    return out


@pytest.mark.parametrize("index", range(8))
def test_finite_on_random_archs(index: int) -> None:
    values = compute_proxies(_archs(8)[index], batch=4).values
    assert all(math.isfinite(v) for v in values.values()), values


@pytest.mark.slow
def test_finite_on_100_random_archs_covering_every_family() -> None:
    archs = _archs(100)
    assert {b.type for a in archs for _, _, b in a.blocks()} == {c.name for c in ds.blocks.components("block")}
    for arch in archs:
        values = compute_proxies(arch, batch=4).values
        assert all(math.isfinite(v) for v in values.values()), (arch.to_yaml(), values)


def test_naswot_codes_gelu_and_silu_blocks() -> None:
    # an EfficientMod (GELU) and an EMO (SiLU, GELU) network both give codes, so a finite log-determinant
    for name in ("efficientmod_xxs", "emo_1m"):
        model = ds.build_model(name)
        assert math.isfinite(naswot(model, proxy_images(4, 224)))


def test_estimates() -> None:
    assert DEFAULT == "macs" and set(ESTIMATES) == set(PROXIES) | set(COMBINATIONS)
    arch = zoo.load("iformer_t")
    assert estimate(arch) == pytest.approx(math.log10(ds.count(arch).macs))
    assert set(reference()["proxies"]) == set(PROXIES)
    with pytest.raises(ds.DesignspaceError, match="unknown accuracy estimate"):
        estimate(arch, "accuracy")


def test_combined_is_the_mean_of_standardized_proxies() -> None:
    stats = reference()["proxies"]
    arch = zoo.load("emo_1m")
    parts = COMBINATIONS["params_naswot"]
    scores = compute_proxies(arch, parts, batch=16).values
    expected = sum((scores[p] - stats[p]["mean"]) / stats[p]["std"] for p in parts) / len(parts)
    assert estimate(arch, "params_naswot") == pytest.approx(expected)


def test_proxies_cli(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["proxies", "emo_1m", "--proxy", "params", "--proxy", "naswot", "--batch", "4", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data["values"]) == {"params", "naswot"} and data["default_estimate"] == "macs"
    assert any(r["proxy"] == "params_naswot" for r in data["rows"])
