"""Device cost features composed from cached (component, site, input) runs equal the whole-network trace's."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

import designspace as ds
from designspace import zoo
from designspace.evaluate.devices.features import (
    FEATURES,
    component_features,
    network_features,
    placement_features,
    traced_component_features,
)
from designspace.evaluate.points import load_points
from designspace.plan import plan
from designspace.space import load_space


def _same(arch: ds.Arch) -> None:
    traced, composed = traced_component_features(arch), component_features(arch)
    assert list(composed) == list(traced), arch.name  # the same lines in the same order
    for name, want in traced.items():
        got = composed[name]
        # exact: the same operations summed in the same order; a tolerance would hide a missed permute
        assert got == want, (arch.name, name, {k: (got[k], want[k]) for k in FEATURES if got[k] != want[k]})


@pytest.mark.parametrize("name", zoo.names())
def test_composed_features_equal_the_trace_on_the_zoo(name: str) -> None:
    _same(ds.load_arch(name))


@pytest.mark.parametrize("space", ["mobile", "tiny"])
def test_composed_features_equal_the_trace_on_samples(space: str) -> None:
    sp, rng = load_space(space), random.Random(7)
    for _ in range(12):
        _same(sp.sample(rng))


@pytest.mark.slow
def test_composed_features_equal_the_trace_on_50_mobile_samples_and_every_point() -> None:
    sp, rng = load_space("mobile"), random.Random(0)
    for arch in [sp.sample(rng) for _ in range(50)] + [p.arch for p in load_points()]:
        _same(arch)


def test_layout_glue_is_charged_to_the_component_before_the_permute() -> None:
    # a hybrid whose stage 2 is channels-last (EfficientMod) between channels-first neighbours: the permutes the
    # network inserts are charged to the block before each, and the network line holds only the constant
    arch = ds.Arch.from_yaml("""
resolution: 64
stem: {type: iformer_stem}
stages:
  - {width: 32, blocks: [{type: mbconv, exp_ratio: 4}]}
  - {width: 64, downsample: {type: conv_bn}, blocks: [{type: efficientmod, exp_ratio: 4}]}
  - {width: 96, downsample: {type: conv_bn}, blocks: [{type: mbconv, exp_ratio: 4}]}
head: {type: bn_linear_head}
""")
    composed = component_features(arch)
    alone = {p.name: placement_features(p) for p in plan(arch)}
    permuting = [n for n in composed if n != "network" and composed[n]["layout_ops"] > alone[n]["layout_ops"]]
    assert permuting  # some component pays for a permute it does not run alone
    assert composed["network"] == {**dict.fromkeys(FEATURES, 0.0), "const": 1.0}
    assert network_features(arch)["const"] == 1.0
    _same(arch)


_RUN = """
import json, os, random, sys
from designspace.evaluate.devices import feature_cache
from designspace.evaluate.devices.features import component_features
from designspace.space import load_space
space, rng = load_space("tiny"), random.Random(5)
feats = [component_features(space.sample(rng)) for _ in range(2)]
computed = len(feature_cache._pending)
created = os.path.exists(os.environ["DESIGNSPACE_RESULTS"])  # before the flush: reading creates nothing
written = feature_cache.flush()
print(json.dumps({"features": feats, "computed": computed, "created": created, "written": written}))
"""


def test_component_runs_persist_across_processes(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    env = {**os.environ, "DESIGNSPACE_RESULTS": str(tmp_path / "results")}

    def run() -> dict:
        out = subprocess.run([sys.executable, "-c", _RUN], env=env, capture_output=True, text=True, check=True)
        return json.loads(out.stdout)

    first = run()
    assert first["computed"] > 0 and not first["created"] and first["written"] == first["computed"]
    second = run()
    assert second["computed"] == 0 and second["written"] == 0  # every component read back from the cache
    assert second["features"] == first["features"]  # bit for bit (JSON floats round-trip)
