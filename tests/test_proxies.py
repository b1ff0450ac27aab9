"""Training-free proxies: values computed by hand on tiny networks, collapses made explicit, determinism,
finiteness on the zoo and on random hybrid Archs, shipped inputs."""

from __future__ import annotations

import functools
import json
import math
import random

import pytest
import torch
from archgen import random_arch
from torch import nn

import designspace as ds
from designspace import zoo
from designspace.cli import main
from designspace.evaluate.accuracy.estimate import COMBINATIONS, DEFAULT, ESTIMATES, estimate, reference
from designspace.evaluate.accuracy.proxies import (
    PROXIES,
    ProxyCollapsed,
    compute_proxies,
    naswot,
    proxy_images,
    synflow_score,
    zico,
)
from designspace.evaluate.accuracy.proxy_report import proxy_report

HEAVY = {"smt_b", "smt_l", "smt_s", "iformer_l", "mobilenetv3_large_075", "mobilenetv3_large_100",
         "mobilenetv4_conv_medium", "mobilenetv4_conv_large", "mobilenetv4_hybrid_medium", "mobilenetv4_hybrid_large"}
# 1,564 parameters with 4 classes, 32 px; with num_classes 1 every cross-entropy gradient is exactly 0
TINY = """
resolution: 32
num_classes: {classes}
stem: {{type: mbv2_stem, width: 8}}
stages:
- width: 16
  blocks: [{{type: mbconv, exp_ratio: 2.0}}]
head: {{type: mbv2_head, width: 32}}
"""


def _set(layer: nn.Linear, weight: list[list[float]]) -> None:
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))


def test_synflow_by_hand() -> None:
    # W1 = [[1, -2], [3, 0.5]] -> |W1| = [[1, 2], [3, 0.5]]; W2 = [[-1, 4]] -> |W2| = [[1, 4]]; x = [1, 1].
    # h = |W1| x = [3, 3.5] (ReLU keeps it; BatchNorm is bypassed, though its running_var 4 would halve h);
    # R = |W2| h = 3 + 14 = 17 (the output bias, here |-7|, adds to R but to no weight's gradient).
    # dR/dW2 = h -> sum |W2 * dR/dW2| = 1*3 + 4*3.5 = 17;
    # dR/dW1[i, j] = |W2|[i] * x[j] = [[1, 1], [4, 4]] -> sum |W1 * dR/dW1| = 1 + 2 + 12 + 2 = 17.
    # Score: log10(17 + 17) = log10(34) = 1.531478917...
    first, norm, last = nn.Linear(2, 2, bias=False), nn.BatchNorm1d(2), nn.Linear(2, 1)
    _set(first, [[1.0, -2.0], [3.0, 0.5]])
    _set(last, [[-1.0, 4.0]])
    with torch.no_grad():
        last.bias.fill_(-7.0)
        norm.running_var.fill_(4.0)  # type: ignore[union-attr]  # present: track_running_stats is on
    model = nn.Sequential(first, norm, nn.ReLU(), last)
    assert synflow_score(model, (1, 2)) == pytest.approx(math.log10(34), rel=1e-12)
    assert float(first.weight.detach()[0, 1]) == -2.0  # the caller's model is left as it was


def test_naswot_by_hand() -> None:
    # W = [[1, 0], [0, 1], [1, 1]], images x1 = [1, -1], x2 = [-1, 2], x3 = [2, 1]:
    # pre-activations [1, -1, 0], [-1, 2, 1], [2, 1, 3] -> codes (> 0) [1, 0, 0], [0, 1, 1], [1, 1, 1].
    # Units on which two images agree: K = [[3, 0, 1], [0, 3, 2], [1, 2, 3]]; det K = 3*(9-4) - 0 + 1*(0-3) = 12;
    # scaled by the 3 units: det(K/3) = 12/27 = 4/9; log(4/9) = -0.810930216... (the 1e-9 ridge moves it ~1e-8).
    layer = nn.Linear(2, 3, bias=False)
    _set(layer, [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    model = nn.Sequential(layer, nn.ReLU())
    images = torch.tensor([[1.0, -1.0], [-1.0, 2.0], [2.0, 1.0]])
    assert naswot(model, images) == pytest.approx(math.log(4 / 9), abs=1e-7)


def test_zico_by_hand() -> None:
    # A 2->2 linear layer with zero weights: logits 0, softmax [0.5, 0.5]. Batch 1: x = [1, 2], label 0;
    # batch 2: x = [3, 1], label 2 % 2 = 0. The gradient of the cross-entropy is (p - onehot) x^T
    # = [-0.5, 0.5]^T x: g1 = [[-0.5, -1], [0.5, 1]], g2 = [[-1.5, -0.5], [1.5, 0.5]].
    # Per weight, mean |g| over std g (unbiased, two samples: |a - b| / sqrt 2):
    # w00: 1 / (1/sqrt2) = sqrt2; w01: 0.75 / (0.5/sqrt2) = 1.5 sqrt2; w10 = w00; w11 = w01.
    # Sum 5 sqrt2; ZiCo = log(5 sqrt2) = log 5 + log(2)/2 = 1.956011502...
    layer = nn.Linear(2, 2, bias=False)
    nn.init.zeros_(layer.weight)
    score = zico(layer, torch.tensor([[1.0, 2.0], [3.0, 1.0]]), torch.tensor([0, 2]), num_classes=2)
    assert score == pytest.approx(math.log(5) + math.log(2) / 2, rel=1e-9)


def test_collapsed_proxies_raise() -> None:
    out = nn.Linear(2, 1)
    nn.init.zeros_(out.weight)  # no path from the input to R carries any saliency
    zero = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), out)
    with pytest.raises(ProxyCollapsed, match="synflow collapsed: no conv or linear weight gets any saliency"):
        synflow_score(zero, (1, 2))
    with pytest.raises(ProxyCollapsed, match="naswot collapsed: the network has no ReLU"):
        naswot(nn.Sequential(nn.Linear(2, 3)), torch.randn(3, 2))
    with pytest.raises(ProxyCollapsed, match="zico collapsed: no conv or linear layer's gradient varies") as err:
        zico(nn.Linear(2, 1), torch.randn(4, 2), torch.arange(4), num_classes=1)  # one logit: loss 0, gradients 0
    assert err.value.proxy == "zico" and isinstance(err.value, ds.DesignspaceError)


def test_a_collapse_is_raised_or_recorded_never_a_number() -> None:
    arch = ds.Arch.from_yaml(TINY.format(classes=1))
    with pytest.raises(ProxyCollapsed, match=f"proxy zico collapsed on {arch.fingerprint}: "):
        compute_proxies(arch, ("params", "zico"), batch=4)
    scores = compute_proxies(arch, ("params", "zico", "naswot"), batch=4, on_collapse="record")
    assert math.isnan(scores.values["zico"]) and set(scores.collapsed) == {"zico"}
    assert "gradient varies" in scores.collapsed["zico"]
    assert scores.values["params"] == pytest.approx(math.log10(ds.count(arch).params))
    assert math.isfinite(scores.values["naswot"])
    data = json.loads(json.dumps(scores.to_dict(), allow_nan=False))  # JSON-safe: the value is null
    assert data["values"]["zico"] is None and data["collapsed"] == scores.collapsed
    # the report shows the collapse and leaves out the combinations that need the collapsed proxy
    report = proxy_report(arch, ("params", "naswot", "zico"), batch=4)
    rows = {r["proxy"]: r for r in report["rows"]}
    assert rows["zico"]["value"] is None and "gradient varies" in rows["zico"]["collapsed"]
    assert rows["params_naswot"]["collapsed"] is None and "combined" not in rows
    # with classes to tell apart, the same network has every proxy
    assert not compute_proxies(ds.Arch.from_yaml(TINY.format(classes=4)), batch=4).collapsed


def test_a_batch_of_one_is_refused() -> None:
    with pytest.raises(ds.DesignspaceError, match="at least 2 images"):
        compute_proxies(ds.Arch.from_yaml(TINY.format(classes=4)), ("naswot",), batch=1)


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
    collapsed = 0
    for arch in archs:
        scores = compute_proxies(arch, batch=4, on_collapse="record")
        for name, v in scores.values.items():  # a value, or a collapse said aloud with its reason
            assert math.isfinite(v) or scores.collapsed.get(name), (arch.to_yaml(), name)
        collapsed += bool(scores.collapsed)
    assert collapsed <= 5, f"{collapsed} of 100 random networks collapsed a proxy"


def test_naswot_codes_gelu_and_silu_blocks() -> None:
    # an EfficientMod (GELU) and an EMO (SiLU, GELU) network both give codes, so a finite log-determinant
    for name in ("efficientmod_xxs", "emo_1m"):
        model = ds.build_model(name)
        assert math.isfinite(naswot(model, proxy_images(4, 224)))


def test_estimates() -> None:
    # named for what they measure: the count proxies as log10_*, the predicted top-1 as top1
    assert DEFAULT == "log10_macs"  # bench_accuracy.py: best within the ablation tables (proxies: mean over seeds)
    assert set(ESTIMATES) == {"top1", "log10_params", "log10_macs", *(set(PROXIES) - {"params", "macs"}),
                              *COMBINATIONS}
    arch = zoo.load("iformer_t")
    assert estimate(arch, "log10_macs") == pytest.approx(math.log10(ds.count(arch).macs))
    assert estimate(arch, "macs") == estimate(arch, "log10_macs")  # the proxy's short name still works
    assert estimate(arch, "log10_params") == pytest.approx(math.log10(ds.count(arch).params))
    assert 60 < estimate(arch, "top1") < 90
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
    assert set(data["values"]) == {"params", "naswot"} and data["default_estimate"] == "log10_macs"
    assert any(r["proxy"] == "params_naswot" for r in data["rows"])
