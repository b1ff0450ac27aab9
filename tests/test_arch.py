"""Arch documents: exact YAML round trips, compact forms, fingerprints, defaults, the built network."""

from __future__ import annotations

import random

import pytest
import torch
from archgen import random_arch

import designspace as ds
from designspace import Arch, Layer, Stage, zoo
from designspace.plan import plan


@pytest.mark.parametrize("name", zoo.names())
def test_zoo_round_trip(name: str) -> None:
    arch = zoo.load(name)
    text = arch.to_yaml()
    again = Arch.from_yaml(text)
    assert again == arch
    assert again.to_yaml() == text
    assert Arch.from_dict(arch.to_dict(compact=False)) == arch
    assert again.fingerprint == arch.fingerprint


def test_random_round_trip() -> None:
    rng = random.Random(7)
    for _ in range(50):
        arch = random_arch(rng)
        assert Arch.from_yaml(arch.to_yaml()) == arch


def test_fingerprint_is_stable() -> None:
    # pinned: a change here means every cache keyed by fingerprints is invalidated
    assert zoo.load("mobilenetv2_100").fingerprint == FINGERPRINT_MOBILENETV2_100


FINGERPRINT_MOBILENETV2_100 = "3669cef2555062e9"


def test_fingerprint_ignores_name_and_meta_only() -> None:
    arch = zoo.load("iformer_t")
    doc = arch.to_dict()
    doc["name"], doc["meta"] = "other", {"note": "x"}
    assert Arch.from_dict(doc).fingerprint == arch.fingerprint
    doc["stages"][0]["width"] = 40
    assert Arch.from_dict(doc).fingerprint != arch.fingerprint


COMPACT = """
stem: {type: smt_stem}
stages:
  - width: 64
    blocks:
      - pattern: [sam, {type: msa, num_heads: 4}]
        repeat: 2
      - {type: sam, repeat: 2}
head: {type: norm_pool_head}
"""

EXPLICIT = """
stem: {type: smt_stem, kernel_size: 3}
stages:
  - width: 64
    stride: 1
    blocks:
      - {type: sam}
      - {type: msa, num_heads: 4}
      - {type: sam, heads: 4}
      - {type: msa, num_heads: 4}
      - {type: sam}
      - {type: sam}
head: {type: norm_pool_head}
"""


def test_compact_form_expands() -> None:
    a, b = Arch.from_yaml(COMPACT), Arch.from_yaml(EXPLICIT)
    assert a == b and hash(a) == hash(b)
    assert [blk.type for _, _, blk in a.blocks()] == ["sam", "msa", "sam", "msa", "sam", "sam"]
    folded = a.to_dict()["stages"][0]["blocks"]
    assert folded[0]["repeat"] == 2 and [x["type"] for x in folded[0]["pattern"]] == ["sam", "msa"]
    assert folded[1]["type"] == "sam" and folded[1]["repeat"] == 2


def test_defaults() -> None:
    arch = Arch.from_yaml(COMPACT)
    assert arch.resolution == 224 and arch.num_classes == 1000 and arch.in_chans == 3
    assert arch.stem_width == 64
    assert arch.stages[0].stride == 1
    assert Layer("mbconv") == Layer("mbconv", {"exp_ratio": 6}) == Layer.of("mbconv", kernel_size=3)
    assert Layer("irmb")["norm"] == "auto"


def test_yaml_float_without_dot() -> None:
    arch = Arch.from_yaml(COMPACT.replace("num_heads: 4}", "num_heads: 4, layer_scale: 1e-4}"))
    assert arch.stages[0].blocks[1]["layer_scale"] == 1e-4


def test_hashable_and_frozen() -> None:
    arch = zoo.load("emo_1m")
    assert len({arch, zoo.load("emo_1m"), zoo.load("emo_2m")}) == 2
    with pytest.raises(AttributeError):
        arch.resolution = 256  # type: ignore[misc]


def test_drop_path_schedule_counts_shma_slots() -> None:
    arch = zoo.load("iformer_l")  # 0.1 over block-list entries; a SHMA unit takes three
    rates = [r for p in plan(arch) for r in p.drop_path]
    assert len(rates) == 2 + 2 + (8 + 8 * 3 + 1) + 2 * 3
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.1)
    model = ds.build_model(arch)
    unit = model.stages[3].blocks[1]
    assert unit.ffn.drop_path.p == pytest.approx(0.1) and unit.attn.drop_path.p < 0.1


def test_network_module_names_follow_the_plan() -> None:
    arch = zoo.load("efficientmod_xxs")
    model = ds.build_model(arch)
    names = {n for n, _ in model.named_modules()}
    assert {p.name for p in plan(arch)} <= names


def test_hybrid_layouts_are_permuted() -> None:
    # NCHW (mbconv, iformer) and NHWC (sam, efficientmod, msa) blocks interleaved
    arch = Arch(stem=Layer("mbv2_stem"), head=Layer("bn_linear_head"), num_classes=5, resolution=64, stages=(
        Stage(width=16, stride=2, blocks=(Layer("mbconv"), Layer("sam"), Layer("iformer_conv"))),
        Stage(width=32, downsample=Layer("conv_ln"), blocks=(Layer("efficientmod"), Layer.of("msa", num_heads=4),
                                                              Layer("irmb"), Layer("shma"))),
    ))
    model = ds.build_model(arch).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 5)


def test_build_model_from_path(tmp_path: pytest.TempPathFactory) -> None:
    path = tmp_path / "a.yaml"  # type: ignore[operator]
    path.write_text(zoo.load("emo_1m").to_yaml())
    model = ds.build_model(str(path))
    assert model.arch == zoo.load("emo_1m")
