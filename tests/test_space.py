"""Search spaces: shipped spaces, the zoo as points of its families' spaces, sampling, Optuna, repair."""

from __future__ import annotations

import collections
import math
import random
import warnings

import pytest
import torch

import designspace as ds
from designspace import zoo
from designspace.space import Choice, IntRange, Space, load_space, match, shipped

FAMILY_SPACE = {"mobilenetv2": "mbconv", "efficientmod": "efficientmod", "emo": "emo", "iformer": "iformer",
                "smt": "smt", "mobilenetv3": "mobilenetv3", "mobilenetv4": "mobilenetv4"}
SHIPPED = ["efficientmod", "emo", "iformer", "iformer_stage3", "mbconv", "mobile", "mobilenetv3", "mobilenetv4", "smt",
           "tiny"]


def test_shipped_spaces() -> None:
    assert shipped.names() == SHIPPED
    for name in SHIPPED:
        space = load_space(name)
        summary = space.summary()
        assert summary["free_parameters"] == len(space.params) > 0
        assert summary["example"]["params_m"] > 0


@pytest.mark.parametrize("name", zoo.names())
def test_zoo_model_is_a_point_of_its_family_space(name: str) -> None:
    space = load_space(FAMILY_SPACE[name.split("_")[0]])
    arch = zoo.load(name)
    m = match(space, arch)
    assert m.ok, m.reason
    decoded = space.decode(m.values)
    assert decoded.arch is not None and not decoded.repairs
    assert decoded.arch.fingerprint == arch.fingerprint


@pytest.mark.parametrize("name", ["iformer_m", "emo_1m", "smt_t", "efficientmod_xs", "mobilenetv2_140"])
def test_perturbed_zoo_model_is_rejected_with_the_reason(name: str) -> None:
    space = load_space(FAMILY_SPACE[name.split("_")[0]])
    doc = zoo.load(name).to_dict()
    width = doc["stages"][2]["width"]
    grid = space.doc.stages[2].width.dist
    for new in (width + 8, width + 4, width + 20):  # the first off the grid that is still a valid Arch
        if new in grid:
            continue
        doc["stages"][2]["width"] = new
        try:
            arch = ds.Arch.from_dict(doc)
            break
        except ds.DocumentError:
            continue
    assert new not in space.doc.stages[2].width.dist
    m = match(space, arch)
    assert not m.ok
    assert m.reason.startswith(f"stages.2.width: {new} is not in ")


def test_block_mismatch_is_named() -> None:
    doc = zoo.load("iformer_t").to_dict(compact=False)
    doc["stages"][2]["blocks"][6]["qk_reduction"] = 3  # the first SHMA unit of stage 3
    m = match(load_space("iformer"), ds.Arch.from_dict(doc))
    assert not m.ok and m.reason == "stages.2.blocks.6.qk_reduction: 3 is not in [2, 4]"
    doc = zoo.load("iformer_t").to_dict(compact=False)
    doc["stages"][2]["blocks"][7]["ffn_ratio"] = 3.0  # the second unit no longer equals the first
    m = match(load_space("iformer"), ds.Arch.from_dict(doc))
    assert not m.ok and m.reason.startswith("stages.2.blocks.7: differs from the block it repeats in its segment")


@pytest.mark.parametrize("name", SHIPPED)
def test_10000_samples_are_valid_and_cover_every_family(name: str) -> None:
    space = load_space(name)
    rng = random.Random(2026)
    allowed = space.stage_types()
    seen: list[collections.Counter[str]] = [collections.Counter() for _ in allowed]
    for _ in range(10_000):
        arch = space.sample(rng)  # an Arch is validated when it is constructed
        for i, stage in enumerate(arch.stages):
            seen[i].update({b.type for b in stage.blocks})
            assert {b.type for b in stage.blocks} <= allowed[i]
    for i, types in enumerate(allowed):
        missing = types - set(seen[i])
        assert not missing, f"stage {i + 1} never drew {missing}"


@pytest.mark.parametrize("name", SHIPPED)
def test_samples_build_and_run(name: str) -> None:
    space = load_space(name)
    rng = random.Random(1)
    for _ in range(2):
        arch = space.sample(rng)
        model = ds.build_model(arch).eval()
        with torch.no_grad():
            out = model(torch.randn(1, 3, arch.resolution, arch.resolution))
        assert out.shape == (1, arch.num_classes) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", SHIPPED)
def test_samples_are_points_and_round_trip(name: str) -> None:
    space = load_space(name)
    rng = random.Random(3)
    for _ in range(200):
        arch = space.sample(rng)
        m = match(space, arch)
        assert m.ok, m.reason
        assert set(m.values) == {p.name for p in space.params}
        assert space.decode(m.values).arch.fingerprint == arch.fingerprint  # type: ignore[union-attr]


def test_same_seed_same_samples() -> None:
    space = load_space("mobile")
    a = [space.sample(random.Random(5)).fingerprint for _ in range(3)]
    assert a[0] == a[1] == a[2]
    assert space.sample(random.Random(6)).fingerprint != a[0]


def test_attention_from_removes_early_attention() -> None:
    space = load_space("mobile")
    rng = random.Random(0)
    seen = set()
    for _ in range(300):
        values = space.sample_values(rng)
        arch = space.decode(values).arch
        assert arch is not None
        attention = [any(ds.blocks.get(b.type).is_attention(b.kwargs()) for b in s.blocks) for s in arch.stages]
        assert not attention[0] and not attention[1]
        if values["attention_from"] == 4:
            assert not attention[2]
        seen.add(values["attention_from"])
    assert seen == {3, 4}


def test_width_is_repaired_when_no_parameter_value_fits() -> None:
    space = Space.from_yaml(REPAIR_SPACE.replace("width: [48, 64]", "width: [48, 50, 64]"))
    decoded = space.decode({"stages.0.width": 50, "stages.0.segments.0.sam.heads": 3})  # neither 3 nor 4 divides 50
    assert decoded.arch is not None and decoded.arch.stages[0].width == 48
    assert decoded.repairs[-1].startswith("stages.0.width: 50 -> 48")


REPAIR_SPACE = """
stem: smt_stem
stages:
  - width: [48, 64]
    stride: 1
    depth: 2
    block: {type: sam, heads: [3, 4]}
head: norm_pool_head
"""


def test_repair_and_reject() -> None:
    space = Space.from_yaml(REPAIR_SPACE)
    values = {"stages.0.width": 64, "stages.0.segments.0.sam.heads": 3}  # 3 heads do not divide 64
    repaired = space.decode(values)
    assert repaired.arch is not None and repaired.arch.stages[0].blocks[0]["heads"] == 4
    assert repaired.repairs == ("stages.0.segments.0.sam.heads: 3 -> 4 (3 heads do not divide the width 64 "
                                "(each head owns C/heads channels))",)
    rejected = space.decode(values, invalid="reject")
    assert rejected.arch is None and rejected.reason is not None
    assert "3 heads do not divide the width 64" in rejected.reason
    fine = space.decode({"stages.0.width": 48, "stages.0.segments.0.sam.heads": 3})
    assert fine.arch is not None and not fine.repairs


def test_size_is_counted_by_structure() -> None:
    space = Space.from_yaml(REPAIR_SPACE)
    assert space.size() == 2 * 2  # widths x heads; stem, head, depth fixed
    text = REPAIR_SPACE.replace("depth: 2", "depth: [1, 2]")
    text = text.replace("block: {type: sam, heads: [3, 4]}", "block: [{type: sam, heads: [3, 4]}, iformer_conv]")
    # per depth: sam (2 heads) + iformer_conv (1) = 3 options; depth 1 or 2 -> 6; widths x2 -> 12
    assert Space.from_yaml(text).size() == 12
    assert math.isfinite(load_space("mobile").size_log10())


def test_flat_parameters_serve_optuna_joint_samplers() -> None:
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = load_space("tiny")
    dists = space.optuna_distributions()
    assert list(dists) == [p.name for p in space.params]
    for p in space.params:
        assert isinstance(p.dist, (Choice, IntRange))
    samplers = [optuna.samplers.TPESampler(multivariate=True, seed=0, n_startup_trials=5),
                optuna.samplers.NSGAIISampler(seed=0, population_size=6), optuna.samplers.RandomSampler(seed=0)]
    for sampler in samplers:
        study = optuna.create_study(sampler=sampler, directions=["minimize", "minimize"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # multivariate TPE is "experimental"
            for _ in range(15):
                trial = study.ask(fixed_distributions=dists)
                assert set(trial.params) == set(dists)  # every parameter, every trial: no conditional space
                decoded = space.decode(trial.params)
                assert decoded.arch is not None
                c = ds.count(decoded.arch)
                study.tell(trial, [c.macs_g, c.params_m])
        assert len(study.trials) == 15


def test_sampling_rate_is_measured_in_the_benchmark() -> None:
    # the speed goal lives in benchmarks/bench_sampling.py; here only that sampling works in bulk
    space = load_space("mobile")
    rng = random.Random(0)
    assert len({space.sample(rng).fingerprint for _ in range(500)}) > 490
