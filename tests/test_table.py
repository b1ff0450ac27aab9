"""The isolated latency protocol and the per-block latency table (issue 11), on toy networks with a fast
protocol (a fraction of a second per measurement; the figures are not the point here, the arithmetic is)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import designspace as ds
from designspace.cli import main
from designspace.evaluate.cache import Cache
from designspace.evaluate.isolated import IsolatedProtocol
from designspace.evaluate.latency import Context, MeasurementError, Protocol, ReferenceStore, measure_onnx
from designspace.evaluate.table import KIND, entry_of, fit_term, load_fit, missing_entries, permutes, table_latency
from designspace.plan import plan

FAST = Protocol(isolated=IsolatedProtocol(processes=1, extra_processes=0, rounds=2, round_s=0.02, warmup_s=0.02))
TOY = """
name: toy
resolution: 32
stem: {type: mbv2_stem, width: 8}
stages:
  - width: 8
    blocks: [{type: mbconv, exp_ratio: 1, repeat: 2}]
  - width: 16
    blocks: [{type: mbconv, exp_ratio: 4}]
head: {type: mbv2_head, width: 32}
"""


@pytest.fixture
def toy() -> ds.Arch:
    return ds.Arch.from_yaml(TOY)


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    return Cache(tmp_path / "cache.sqlite")


def test_isolated_protocol_is_ratio_times_reference(toy: ds.Arch) -> None:
    from designspace.evaluate.onnx import export_onnx

    model = ds.build_model(toy).eval()
    data = export_onnx(model, model.example_input())
    ctx = Context.local(resolution=32)
    store = ReferenceStore()
    (lat,) = measure_onnx([(data, (1, 3, 32, 32))], ctx, FAST, store)
    assert lat.processes == 1 and lat.ratio is not None and lat.reference_ms is not None
    assert lat.ms == pytest.approx(lat.ratio * lat.reference_ms)
    assert lat.direct_ms is not None and lat.direct_ms > 0
    # the long-run reference only improves
    assert store.best(ctx, [lat.reference_ms * 10]) == lat.reference_ms
    assert store.best(ctx, [lat.reference_ms / 2]) == lat.reference_ms / 2


def test_a_broken_model_fails_with_the_reason() -> None:
    with pytest.raises(MeasurementError, match="measurement failed"):
        measure_onnx([(b"not an onnx model", (1, 3, 8, 8))], Context.local(resolution=8), FAST, ReferenceStore())


def test_table_sum_is_entries_plus_the_fitted_term(toy: ds.Arch, cache: Cache) -> None:
    ctx = Context.local(resolution=toy.resolution)
    first = table_latency(toy, ctx, cache, FAST)
    distinct = {entry_of(p).key for p in plan(toy)}
    assert first.measured_now == len(distinct) < len(plan(toy))  # the repeated block is one entry
    assert first.fit is None and first.term_ms == 0.0 and first.ms == pytest.approx(first.entries_ms)
    assert first.entries_ms == pytest.approx(sum(ms for _, ms in first.components))
    # a fit stored for the context is applied: term = intercept + per_permute x permutes
    fit = fit_term([("a", 2.0, 1.5, 0), ("b", 3.1, 2.5, 1), ("c", 5.2, 4.5, 2)], ctx, cache)
    assert fit.intercept == pytest.approx(0.5) and fit.per_permute == pytest.approx(0.1)
    again = table_latency(toy, ctx, cache, FAST)
    assert again.measured_now == 0  # every entry from the table now
    assert again.ms == pytest.approx(again.entries_ms + 0.5 + 0.1 * permutes(toy))
    assert load_fit(ctx, cache) == fit


def test_missing_entry_measured_on_demand_and_corrupt_row_never_trusted(toy: ds.Arch, cache: Cache) -> None:
    ctx = Context.local(resolution=toy.resolution)
    table_latency(toy, ctx, cache, FAST)
    assert missing_entries(plan(toy), ctx, cache) == []
    db = sqlite3.connect(cache.path)
    key = entry_of(plan(toy)[1]).key
    db.execute("UPDATE results SET data = ? WHERE fingerprint = ? AND kind = ?", ('{"ms": -1}', key, KIND))
    db.commit()
    db.close()
    assert [entry_of(p).key for p in missing_entries(plan(toy), ctx, cache)] == [key]  # not trusted
    again = table_latency(toy, ctx, cache, FAST)
    assert again.measured_now == 1 and all(ms > 0 for _, ms in again.components)


def test_fit_needs_two_networks_and_reports_its_error(cache: Cache) -> None:
    ctx = Context.local()
    with pytest.raises(ds.DesignspaceError, match="at least 2 networks"):
        fit_term([("a", 2.0, 1.0, 0)], ctx, cache)
    fit = fit_term([("a", 2.0, 1.0, 0), ("b", 4.0, 2.5, 0)], ctx, cache)  # intercept only: 1.0 and 1.5 -> 1.25
    assert fit.intercept == pytest.approx(1.25) and fit.per_permute == 0.0
    assert fit.loo_mean == pytest.approx((abs(1 + 1.5 - 2) / 2 + abs(2.5 + 1.0 - 4) / 4) / 2)


HYBRID = """
resolution: 64
stem: {type: iformer_stem}
stages:
  - width: 32
    blocks: [{type: mbconv, exp_ratio: 4, repeat: 2}]
  - width: 64
    downsample: {type: conv_bn}
    blocks: [{type: efficientmod, exp_ratio: 4}]
  - width: 128
    downsample: {type: conv_ln}
    blocks: [{pattern: [sam, {type: msa, num_heads: 4}]}]
head: {type: bn_linear_head}
"""


@pytest.mark.parametrize("source", ["mobilenetv2_100", "smt_t", "efficientmod_xxs", HYBRID])
def test_permutes_count_the_networks_own_permutes(source: str) -> None:
    arch = ds.Arch.from_yaml(source) if "\n" in source else ds.load_arch(source)
    net = ds.build_model(arch)
    built = sum(p is not None for stage in net.stages for p in stage._perms) + (net._head_perm is not None)
    assert permutes(arch) == built
    if source == HYBRID:
        assert built >= 2  # channels-last EfficientMod and SMT blocks between channels-first ones


@pytest.mark.parametrize("argv", [["search", "tiny", "--latency", "lut", "--trials", "1"],
                                  ["eval", "emo_1m", "--latency", "fast"],
                                  ["eval", "emo_1m", "--latency", "table", "--runtime", "torch"]])
def test_bad_latency_values(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
