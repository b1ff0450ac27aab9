"""Predicted latency-table entries (issue 11): a missing entry predicted from its type's measured entries where
that model holds, else measured. The rows here are written directly, with milliseconds made from the
entries' own features, so that what the predictor recovers is known exactly."""

from __future__ import annotations

import json
import random
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

import designspace as ds
from designspace.evaluate.cache import Cache
from designspace.evaluate.devices.costmodel import _solve, loo_predictions
from designspace.evaluate.measure.latency import Context
from designspace.evaluate.table.entries import KIND, entry_of, placement_of, table_latency
from designspace.evaluate.table.entry_model import COLUMNS, MIN_POINTS, EntryPredictor, entry_features
from designspace.evaluate.table.term import table_context_key
from designspace.plan import Placement, plan

#: milliseconds per feature unit of the made-up machine (GMACs, MB, ops, one per run)
COST = {"pw_gmacs": 20.0, "dw_gmacs": 40.0, "act_mb": 0.05, "weight_mb": 0.02, "ops": 0.002, "const": 0.01}
CTX = Context.local(resolution=32)


def _ms(p: Placement) -> float:
    f = dict(zip(COLUMNS, entry_features(p), strict=True))
    return sum(c * f[k] for k, c in COST.items())


def _mbconv(chs: int, hw: int, exp: int, kernel: int = 3) -> Placement:
    params = json.dumps(ds.Layer.of("mbconv", exp_ratio=exp, kernel_size=kernel).kwargs(), sort_keys=True,
                        default=str)
    return placement_of({"type": "mbconv", "params": params, "in_chs": chs, "out_chs": chs, "stride": 1,
                         "hw": [hw, hw], "layout": "nchw"})


def _put(cache: Cache, p: Placement, ms: float) -> None:
    e = entry_of(p)
    cache.put(e.key, KIND, table_context_key(CTX), {"ms": ms, "ratio": None, "passes": 2, "entry": asdict(e)})


def _sites(n: int, seed: int = 0) -> list[Placement]:
    rng = random.Random(seed)
    out: dict[str, Placement] = {}
    while len(out) < n:
        p = _mbconv(rng.choice([16, 24, 32, 48, 64]), rng.choice([8, 14, 16, 28]), rng.choice([1, 3, 4, 6]),
                    rng.choice([3, 5]))
        out.setdefault(entry_of(p).key, p)
    return list(out.values())


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    return Cache(tmp_path / "cache.sqlite")


def test_an_entry_is_predicted_from_the_measured_entries_of_its_type(cache: Cache) -> None:
    for p in _sites(30):
        _put(cache, p, _ms(p))
    pred = EntryPredictor(CTX, cache)
    new = _mbconv(40, 20, 4, 5)  # a site none of the rows has, inside their range
    assert entry_of(new).key not in {k for k, _ in cache.rows(KIND, table_context_key(CTX))}
    guess = pred.predict(new)
    assert guess is not None and guess == pytest.approx(_ms(new), rel=0.02)
    model = pred.model("mbconv")
    assert model is not None and model.usable and model.points == 30 and model.cv_mean < 0.02
    # the rows now carry their features, so they are traced once
    assert all(len(r["features"]) == len(COLUMNS) for _, r in cache.rows(KIND, table_context_key(CTX)))


def test_too_few_entries_or_a_site_outside_them_is_not_predicted(cache: Cache) -> None:
    sites = _sites(MIN_POINTS)
    for p in sites[:-1]:
        _put(cache, p, _ms(p))
    pred = EntryPredictor(CTX, cache)
    assert pred.predict(_mbconv(40, 20, 4)) is None  # one entry short of a model
    _put(cache, sites[-1], _ms(sites[-1]))
    assert pred.predict(_mbconv(40, 20, 4)) is not None  # the table grew by one: the model is fitted
    assert pred.predict(_mbconv(64, 112, 6)) is None  # 16x the activations of any fitted entry: measured instead
    assert pred.predict(_mbconv(40, 20, 4, 7)) is not None  # a new kernel size, its costs inside the range


def test_a_model_that_does_not_hold_is_not_used(cache: Cache) -> None:
    rng = random.Random(1)
    for p in _sites(40):
        _put(cache, p, _ms(p) * rng.uniform(0.4, 2.5))  # noise the features cannot explain
    pred = EntryPredictor(CTX, cache)
    assert pred.predict(_mbconv(40, 20, 4)) is None
    model = pred.model("mbconv")
    assert model is not None and not model.usable and model.cv_mean > 0.10


@pytest.mark.parametrize("junk", [["x"] * len(COLUMNS), [1.0] * 3, "features", [float("nan")] * len(COLUMNS)])
def test_corrupt_stored_features_are_computed_again(cache: Cache, junk: object) -> None:
    sites = _sites(30)
    for p in sites:
        e = entry_of(p)
        cache.put(e.key, KIND, table_context_key(CTX), {"ms": _ms(p), "passes": 2, "entry": asdict(e),
                                                        "features": junk})
    pred = EntryPredictor(CTX, cache)
    guess = pred.predict(_mbconv(40, 20, 4, 5))
    assert guess is not None and guess == pytest.approx(_ms(_mbconv(40, 20, 4, 5)), rel=0.02)
    row = cache.get(entry_of(sites[0]).key, KIND, table_context_key(CTX))
    assert row is not None and row["features"] == entry_features(sites[0])


def test_a_row_of_older_code_fits_no_model(cache: Cache) -> None:
    for p in _sites(30):
        e = entry_of(p)
        old = e.key.split("@")[0] + "@0000000000000000"  # the component's code has changed since
        cache.put(old, KIND, table_context_key(CTX), {"ms": _ms(p), "passes": 2, "entry": asdict(e)})
    assert EntryPredictor(CTX, cache).predict(_mbconv(40, 20, 4)) is None


def test_table_latency_predicts_missing_entries_and_stores_none(cache: Cache) -> None:
    arch = ds.Arch.from_yaml("""
name: toy
resolution: 32
stem: {type: mbv2_stem, width: 16}
stages:
  - width: 40
    blocks: [{type: mbconv, exp_ratio: 4, repeat: 3}]
head: {type: mbv2_head, width: 32}
""")
    placements = plan(arch)
    for p in placements:  # the stem, the first block (it changes width), the head: measured entries
        if p.layer.type != "mbconv" or p.site.in_chs != p.site.out_chs:
            _put(cache, p, 0.05)
    for p in _sites(30, seed=2):
        _put(cache, p, _ms(p))
    rows = cache.count(KIND, table_context_key(CTX))
    tab = table_latency(arch, CTX, cache, predictor=EntryPredictor(CTX, cache))
    assert tab.measured_now == 0 and tab.predicted == 1  # 40 -> 40 twice: one entry, predicted once
    assert cache.count(KIND, table_context_key(CTX)) == rows  # a prediction is never stored as an entry
    block = next(p for p in placements if p.layer.type == "mbconv" and p.site.in_chs == p.site.out_chs)
    by_name = dict(tab.components)
    assert by_name[block.name] == pytest.approx(_ms(block), rel=0.02)
    assert tab.ms == pytest.approx(sum(by_name[p.name] for p in placements))  # no term fitted: the sum
    assert tab.to_dict()["predicted"] == 1


def test_folds_predict_each_point_by_the_fit_without_its_fold() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0.1, 1.0, size=(23, 3))
    y = x @ np.array([1.0, 2.0, 0.5]) * rng.uniform(0.95, 1.05, size=23)
    pred = loo_predictions(x, y, 1e-3, folds=5)
    held = np.arange(23) % 5 == 2
    assert np.allclose(pred[held], x[held] @ _solve(x[~held], y[~held], 1e-3, None))
    assert np.allclose(loo_predictions(x, y, 1e-3, folds=100), loo_predictions(x, y, 1e-3))  # more folds than points
