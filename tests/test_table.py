"""The isolated latency protocol and the per-block latency table (issue 11), on toy networks with a fast
protocol (a fraction of a second per measurement; the figures are not the point here, the arithmetic is)."""

from __future__ import annotations

import dataclasses
import random
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest

import designspace as ds
from designspace.cli import main
from designspace.evaluate.cache import Cache
from designspace.evaluate.measure.latency import Context, Latency, MeasurementError, Protocol
from designspace.evaluate.measure.timing import ReferenceStore, measure_onnx
from designspace.evaluate.table.entries import (
    KIND,
    calibrate_term,
    entry_of,
    entry_protocol,
    missing_entries,
    table_latency,
)
from designspace.evaluate.table.term import fit_term, load_fit
from designspace.plan import plan

FAST = Protocol(processes=1, extra=0, rounds=2, round_s=0.02, warmup_s=0.02)
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
    from designspace.evaluate.measure.onnx import export_onnx

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
    assert {t for t, _ in first.by_type} == {p.layer.type for p in plan(toy)}  # the sum split by component type
    assert sum(ms for _, ms in first.by_type) == pytest.approx(first.entries_ms)
    # a fit stored for the context is applied: ms = scale x entries + intercept
    points = [(f"n{i}", 1.1 * s + 0.2, s) for i, s in enumerate([1.5, 2.5, 4.5, 3.0, 6.0, 2.0])]
    fit = fit_term(points, ctx, cache)
    assert fit.form == "scale" and fit.loo_max == pytest.approx(0.0, abs=1e-9)
    assert (fit.scale, fit.intercept) == pytest.approx((1.1, 0.2))
    again = table_latency(toy, ctx, cache, FAST)
    assert again.measured_now == 0  # every entry from the table now
    assert again.ms == pytest.approx(1.1 * again.entries_ms + 0.2)
    assert again.term_ms == pytest.approx(again.ms - again.entries_ms)
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
        fit_term([("a", 2.0, 1.0)], ctx, cache)
    # two points: the ratio alone, least squares on relative errors: mean of 2/1 and 4/2.5 (each row x/y = 1/k)
    fit = fit_term([("a", 2.0, 1.0), ("b", 4.0, 2.5)], ctx, cache)
    assert fit.form == "ratio" and fit.intercept == 0.0
    assert fit.scale == pytest.approx((1 / 2 + 2.5 / 4) / (1 / 4 + 2.5**2 / 16))
    # leave-one-out: each point predicted from the other alone (ratios 2 and 1.6)
    assert fit.loo_mean == pytest.approx((abs(1.6 * 1.0 - 2) / 2 + abs(2.0 * 2.5 - 4) / 4) / 2)


def test_fit_keeps_the_form_its_leave_one_out_error_prefers(cache: Cache) -> None:
    ctx = Context.local()
    # whole networks 15% slower than their entries: a ratio, which no intercept can carry over 2-20 ms (of forms
    # that fit equally well out of sample, the simpler one is kept)
    scaled = [(f"n{i}", 1.15 * s, s) for i, s in enumerate([2.0, 5.0, 9.0, 14.0, 20.0])]
    fit = fit_term(scaled, ctx, cache)
    assert fit.form == "ratio" and fit.scale == pytest.approx(1.15) and fit.intercept == 0.0
    both = [(f"b{i}", 1.1 * s + 0.5, s) for i, s in enumerate([2.0, 5.0, 9.0, 14.0, 20.0])]
    fit = fit_term(both, ctx, cache)
    assert fit.form == "scale" and (fit.scale, fit.intercept) == pytest.approx((1.1, 0.5))
    # 3 points: too few to leave one out of a two-coefficient fit: the ratio alone
    few = fit_term(both[:3], ctx, cache)
    assert few.form == "ratio" and few.intercept == 0.0
    assert fit_term(scaled[:3], ctx, cache).latency(10.0) == pytest.approx(11.5)


def test_a_scale_per_component_type_where_the_types_differ(cache: Cache) -> None:
    ctx = Context.local()
    mixes = [(2.0, 0.5), (1.0, 3.0), (4.0, 1.0), (0.5, 5.0), (3.0, 3.0), (6.0, 0.5), (1.5, 1.5), (0.8, 2.2)]

    def points(k_a: float, k_b: float) -> list[tuple[str, float, float, tuple[tuple[str, float], ...]]]:
        # whole = k_a x (type a's entries) + k_b x (type b's) + 0.1 ms
        return [(f"n{i}", k_a * a + k_b * b + 0.1, a + b, (("a", a), ("b", b))) for i, (a, b) in enumerate(mixes)]

    fit = fit_term(points(1.0, 1.3), ctx, cache)
    assert fit.form == "types" and fit.loo_mean < 0.5 * _one_scale_loo(points(1.0, 1.3))
    assert dict(fit.type_scales) == pytest.approx({"a": 1.0, "b": 1.3}, rel=0.03)
    assert fit.intercept == pytest.approx(0.1, abs=0.05)
    k = dict(fit.type_scales)
    assert fit.latency(3.0, (("a", 2.0), ("b", 1.0))) == pytest.approx(2 * k["a"] + k["b"] + fit.intercept)
    # a type the fit has not seen takes the common scale; without sums by type, the common scale alone
    assert fit.latency(1.0, (("c", 1.0),)) == pytest.approx(fit.scale + fit.intercept)
    assert fit.latency(3.0) == pytest.approx(3 * fit.scale + fit.intercept)
    assert load_fit(ctx, cache) == fit  # stored with its type scales
    cache.put("table-fit", "lut-fit", dataclasses.replace(ctx, resolution=0).key(),
              {**dataclasses.asdict(fit), "type_scales": []})
    assert load_fit(ctx, cache) is None  # the types form without its scales is corrupt: dropped
    # a type whose entries would cost less than nothing is no cost model: no such type scale is kept
    odd = fit_term(points(1.2, -0.05), ctx, cache)
    assert odd.form != "types"  # (every ridge strength gives type b a negative scale here; unguarded, kept)
    # one scale for both types: the simpler form is kept (the type scales do no better out of sample)
    assert fit_term(points(1.2, 1.2), ctx, cache).form in ("ratio", "scale")
    # points without sums by type (stored before the types form): the other forms only
    assert fit_term([p[:3] for p in points(1.0, 1.3)], ctx, cache).form != "types"


def _one_scale_loo(points: Sequence[tuple[str, float, float, tuple[tuple[str, float], ...]]]) -> float:
    return fit_term([p[:3] for p in points], Context.local()).loo_mean


def test_a_corrupt_or_unknown_fit_is_dropped(cache: Cache) -> None:
    ctx = Context.local()
    key = dataclasses.replace(ctx, resolution=0).key()
    fit = fit_term([("a", 2.2, 2.0), ("b", 5.5, 5.0), ("c", 8.8, 8.0)], ctx, cache)
    assert load_fit(ctx, cache) == fit
    for bad in ({"scale": -1.0}, {"form": "intercept"}):  # a form no longer fitted is never applied either
        cache.put("table-fit", "lut-fit", key, {**dataclasses.asdict(fit), **bad})
        assert load_fit(ctx, cache) is None  # dropped, never applied
        assert cache.get("table-fit", "lut-fit", key) is None


def test_calibration_adds_to_the_points_already_fitted(toy: ds.Arch, cache: Cache) -> None:
    from designspace.evaluate.measure.cached import measure_latency

    ctx = Context.local(resolution=toy.resolution)
    fit_term([("elsewhere", 2.0, 1.0), ("other", 4.0, 2.5)], ctx, cache)
    wider = ds.Arch.from_yaml(TOY.replace("width: 16", "width: 24"))
    def whole(archs: Sequence[ds.Arch]) -> list[Latency]:
        return [measure_latency(a, ctx, protocol=FAST, cache=None) for a in archs]

    fit = calibrate_term([toy, wider], ctx, cache, FAST, measure_whole=whole)
    assert [p[0] for p in fit.points] == ["elsewhere", "other", toy.fingerprint, wider.fingerprint]
    again = calibrate_term([toy], ctx, cache, FAST, measure_whole=whole)
    assert sorted(p[0] for p in again.points) == sorted(p[0] for p in fit.points)  # measured again: replaced


def test_calibration_keeps_each_networks_smaller_figure_of_two_passes(toy: ds.Arch, cache: Cache) -> None:
    ctx = Context.local(resolution=toy.resolution)
    wider = ds.Arch.from_yaml(TOY.replace("width: 16", "width: 24"))
    from designspace.evaluate.measure.cached import measure_latency

    passes = iter([[4.0, 9.0], [5.0, 7.0]])  # per pass, the two networks' figures (ms)
    seen: list[list[ds.Arch]] = []

    def whole(archs: Sequence[ds.Arch]) -> list[Latency]:
        seen.append(list(archs))
        lat = measure_latency(toy, ctx, protocol=FAST, cache=None)
        return [dataclasses.replace(lat, ms=ms) for ms in next(passes)]

    fit = calibrate_term([toy, wider], ctx, cache, FAST, measure_whole=whole)
    assert seen == [[toy, wider], [toy, wider]]  # two passes over all the networks, the second after the first
    assert {p[0]: p[1] for p in fit.points} == {toy.fingerprint: 4.0, wider.fingerprint: 7.0}


def test_a_second_pass_keeps_the_smaller_of_the_cached_and_the_new_figure(toy: ds.Arch, cache: Cache) -> None:
    from designspace.evaluate.measure.cached import _KIND, measure_latencies, measure_latency

    wider = ds.Arch.from_yaml(TOY.replace("width: 16", "width: 24"))
    ctx = Context.local(resolution=32)
    one, two = measure_latencies([toy, wider], [ctx, ctx], protocol=FAST, cache=cache)
    assert isinstance(one, Latency) and isinstance(two, Latency)
    slow = dataclasses.replace(one, ms=one.ms * 1000)  # a figure no new measurement exceeds
    quick = dataclasses.replace(two, ms=two.ms / 1000)  # one none goes below
    cache.put(toy, _KIND, ctx.key(), slow.to_dict())
    cache.put(wider, _KIND, ctx.key(), quick.to_dict())
    assert measure_latencies([toy, wider], [ctx, ctx], protocol=FAST, cache=cache) == [slow, quick]  # cached
    new, kept = measure_latencies([toy, wider], [ctx, ctx], protocol=FAST, cache=cache, again=True)
    assert isinstance(new, Latency) and new.ms < slow.ms and new != slow  # measured again
    assert kept == quick
    assert measure_latency(toy, ctx, protocol=FAST, cache=cache) == new  # the cache holds the smaller too
    assert measure_latency(wider, ctx, protocol=FAST, cache=cache) == quick


@pytest.mark.parametrize("argv", [["search", "tiny", "--latency", "lut", "--trials", "1"],
                                  ["eval", "emo_1m", "--latency", "fast"],
                                  ["eval", "emo_1m", "--latency", "table", "--runtime", "torch"]])
def test_bad_latency_values(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err


def test_entries_get_their_own_light_protocol() -> None:
    from designspace.evaluate.table.entries import ENTRY_PROTOCOL

    assert entry_protocol(FAST) is FAST  # already lighter than the entries' own
    light = entry_protocol(Protocol(run_timeout_s=3.0))  # a whole network's: the entries' own, its limits kept
    assert light == dataclasses.replace(ENTRY_PROTOCOL, run_timeout_s=3.0)


def _tiny_table_search(tmp_path: Path) -> tuple[Path, list[dict[str, str]]]:
    """A 3-trial ``--latency table`` search of ``tiny`` (log10 MACs and latency): its folder and trials."""
    import csv

    from designspace.search import objectives
    from designspace.search.config import SearchConfig
    from designspace.search.runner import run_search
    from designspace.space import load_space

    cfg = SearchConfig(load_space("tiny"), (objectives.parse_objective("log10_macs"),
                                            objectives.parse_objective("latency")),
                       trials=3, latency="table", protocol=FAST, results=tmp_path, progress=False)
    report = run_search(cfg)
    with open(report.folder / "trials.csv", newline="") as f:
        return report.folder, list(csv.DictReader(f))


def test_search_with_the_table_remeasures_its_front(tmp_path: Path) -> None:
    _, rows = _tiny_table_search(tmp_path)
    assert len(rows) == 3 and all(float(r["latency_ms"]) > 0 for r in rows)
    assert {(r["latency_source"], r["latency_device"]) for r in rows} == {("table", "local")}
    front = [r for r in rows if r.get("latency_remeasured_ms")]
    assert front  # the front measured whole, both figures side by side with their difference
    for r in front:
        table, whole = float(r["latency_ms"]), float(r["latency_remeasured_ms"])
        assert float(r["latency_table_error"]) == pytest.approx(table / whole - 1, rel=1e-3, abs=1e-4)
        # every entry was measured in the trials (one pass) and no term existed: with the front's second pass
        # of its entries, each keeping its smaller ratio, the figure with every entry measured is at most theirs
        assert 0 < float(r["latency_table_all_measured_ms"]) <= table * (1 + 1e-9)
    # the front measured whole became the term's points, for the next search (no term before: it had none)
    fit = load_fit(Context.local(), Cache(tmp_path / "cache.sqlite"))
    if len(front) >= 2:
        assert fit is not None and {p[0] for p in fit.points} == {r["fingerprint"] for r in front}
    else:
        assert fit is None  # one network cannot fit a term


def test_the_front_measures_its_predicted_entries_and_itself_twice(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from designspace.evaluate.measure import cached
    from designspace.evaluate.table import entry_model

    # every entry predicted in the trials (1 us each): nothing is measured until the front is
    monkeypatch.setattr(entry_model.EntryPredictor, "predict", lambda self, p: 0.001)
    passes: list[bool] = []
    real = cached.measure_latencies

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        passes.append(bool(kwargs.get("again")))
        return real(*args, **kwargs)

    monkeypatch.setattr(cached, "measure_latencies", counted)
    folder, rows = _tiny_table_search(tmp_path)
    assert all(float(r["latency_entries_predicted"]) > 0 and float(r["latency_entries_measured"]) == 0 for r in rows)
    front = [r for r in rows if r.get("latency_remeasured_ms")]
    assert front and passes == [False, True]  # the front measured whole in two passes
    cache = Cache(tmp_path / "cache.sqlite")
    for r in front:
        arch = ds.Arch.from_file(folder / r["arch"])
        ctx = Context.local(resolution=arch.resolution)
        assert not missing_entries(plan(arch), ctx, cache)  # its predicted entries were measured...
        rows_ = [cache.get(entry_of(p).key, KIND, dataclasses.replace(ctx, resolution=0).key()) for p in plan(arch)]
        assert all(row is not None and row["passes"] == 2 for row in rows_)  # ...in two passes
        final = float(r["latency_table_all_measured_ms"])
        # no term existed while the search ran (its front's points came after): the sum of the measured entries
        assert final == pytest.approx(table_latency(arch, ctx, cache).entries_ms, rel=1e-6)
        assert final != pytest.approx(float(r["latency_ms"]))  # not the predictions' figure
        whole = float(r["latency_remeasured_ms"])
        assert float(r["latency_table_all_measured_error"]) == pytest.approx(final / whole - 1, rel=1e-3, abs=1e-4)


def test_a_second_pass_keeps_the_smaller_ratio(toy: ds.Arch, cache: Cache) -> None:
    from designspace.evaluate.table.entries import measure_entries

    ctx = Context.local(resolution=toy.resolution)
    key = dataclasses.replace(ctx, resolution=0).key()
    distinct = {entry_of(p).key: p for p in plan(toy)}
    assert measure_entries(plan(toy), ctx, cache, FAST) == len(distinct)
    first = {k: cache.get(k, KIND, key) for k in distinct}
    assert all(r is not None and r["passes"] == 1 and r["ratio"] > 0 for r in first.values())
    assert measure_entries(plan(toy), ctx, cache, FAST) == 0  # all there: nothing measured
    assert measure_entries(plan(toy), ctx, cache, FAST, again=True) == len(distinct)
    ref = ReferenceStore(cache).best(ctx, [])
    for k, old in first.items():
        row = cache.get(k, KIND, key)
        assert row is not None and row["passes"] == 2 and row["ratio"] <= old["ratio"]  # type: ignore[index]
        assert row["ms"] == pytest.approx(row["ratio"] * ref)
    assert measure_entries(plan(toy), ctx, cache, FAST, again=True) == 0  # two passes each: done


SMALL_SPACE = """
name: small
resolution: 32
stem: {type: mbv2_stem, width: 8}
stages:
  - width: [8, 16]
    depth: {low: 1, high: 2}
    block: [{type: mbconv, exp_ratio: [1, 4]}]
head: {type: mbv2_head, width: 32}
"""


def test_lut_build_measures_each_entry_in_two_passes_and_resumes(tmp_path: Path, cache: Cache) -> None:
    from designspace.space import load_space
    from designspace.table_build import build_table

    path = tmp_path / "small.yaml"
    path.write_text(SMALL_SPACE)
    space = load_space(path)
    ctx = Context.local()
    report = build_table(space, ctx, cache, samples=400, calibrate=3, protocol=FAST, whole_protocol=FAST)
    assert report["saturated"] and report["entries"] == report["measured"] == report["second_pass"] > 0
    # 3 networks: only the one-coefficient form can be left one out of
    assert report["cached"] == 0 and report["fit"]["points"] == 3 and report["fit"]["form"] == "ratio"
    keys = {entry_of(p).key for i in range(20) for p in plan(space.sample(random.Random(i)))}
    rows = [cache.get(k, KIND, dataclasses.replace(ctx, resolution=0).key()) for k in keys]
    assert rows and all(r is not None and r["passes"] == 2 for r in rows)
    again = build_table(space, ctx, cache, samples=400, calibrate=3, protocol=FAST, whole_protocol=FAST)
    assert again["measured"] == again["second_pass"] == 0 and again["cached"] == report["entries"]
    assert again["fit"]["points"] == 3  # the same networks measured again replace their points


def test_networks_measured_together_are_measured_and_cached_each(toy: ds.Arch, cache: Cache) -> None:
    from designspace.evaluate.measure.cached import measure_latencies, measure_latency

    wider = ds.Arch.from_yaml(TOY.replace("width: 16", "width: 24"))
    bigger = ds.Arch.from_yaml(TOY.replace("resolution: 32", "resolution: 48"))
    ctx = Context.local(resolution=32)
    cached = measure_latency(toy, ctx, protocol=FAST, cache=cache)
    archs = [toy, wider, bigger]
    lats = measure_latencies(archs, [ctx, ctx, Context.local(resolution=48)], protocol=FAST, cache=cache)
    assert lats[0] == cached  # from the cache, not measured again
    for arch, lat in zip(archs[1:], lats[1:], strict=True):
        assert not isinstance(lat, MeasurementError) and lat.ms > 0 and lat.context.resolution == arch.resolution
        assert lat.ratio is not None and lat.ms == pytest.approx(lat.ratio * lat.reference_ms)
        assert measure_latency(arch, lat.context, protocol=FAST, cache=cache) == lat  # cached as one at a time


def test_a_network_given_twice_is_measured_once(toy: ds.Arch, cache: Cache, monkeypatch: pytest.MonkeyPatch) -> None:
    import designspace.evaluate.measure.timing as latency
    from designspace.evaluate.measure.cached import measure_latencies

    sizes = []
    real = latency.measure_onnx

    def counting(models, *args, **kwargs):  # type: ignore[no-untyped-def]
        sizes.append(len(models))
        return real(models, *args, **kwargs)

    monkeypatch.setattr(latency, "measure_onnx", counting)
    ctx = Context.local(resolution=32)
    lats = measure_latencies([toy, toy], [ctx, ctx], protocol=FAST, cache=cache)
    assert sizes == [1] and lats[0] is lats[1] and not isinstance(lats[0], MeasurementError)


def test_only_the_models_that_disagree_get_more_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    import designspace.evaluate.measure.isolated as isolated

    calls: list[tuple[int, int | None]] = []

    def fake(models, threads=1, protocol=None, processes=None, deadline=None):  # type: ignore[no-untyped-def]
        calls.append((len(models), processes))
        # the second model's two processes disagree by 20%, the first's agree
        first = [isolated.Timing((2.0, 2.01), (2.0, 2.01), (2.1, 2.1), (1.0, 1.0), 10),
                 isolated.Timing((3.0, 3.6), (3.0, 3.6), (3.1, 3.7), (1.0, 1.0), 10)]
        return first if processes is None else [isolated.Timing((3.1,), (3.1,), (3.2,), (1.0,), 5)] * len(models)

    monkeypatch.setattr(isolated, "time_onnx", fake)
    proto = Protocol(processes=2, extra=1)
    a, b = measure_onnx([(b"a", (1, 3, 8, 8)), (b"b", (1, 3, 8, 8))], Context.local(resolution=8), proto,
                        ReferenceStore())
    assert calls == [(2, None), (1, 1)]  # the extra process timed the second model alone
    assert a.processes == 2 and b.processes == 3 and b.ratio == pytest.approx(3.1)


def test_no_more_processes_past_the_wall_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    import designspace.evaluate.measure.isolated as isolated

    calls: list[int | None] = []

    def fake(models, threads=1, protocol=None, processes=None, deadline=None):  # type: ignore[no-untyped-def]
        calls.append(processes)
        return [isolated.Timing((3.0, 3.6), (3.0, 3.6), (3.1, 3.7), (1.0, 1.0), 10)] * len(models)

    monkeypatch.setattr(isolated, "time_onnx", fake)
    proto = Protocol(processes=2, extra=2, budget_s=0.0)
    (lat,) = measure_onnx([(b"a", (1, 3, 8, 8))], Context.local(resolution=8), proto, ReferenceStore())
    assert calls == [None] and lat.processes == 2 and "unconfirmed" in lat.flags


def test_the_budget_counts_an_extra_process_at_the_slowest_first_ones_pace(monkeypatch: pytest.MonkeyPatch) -> None:
    import designspace.evaluate.measure.isolated as isolated
    import designspace.evaluate.measure.timing as latency_mod

    calls: list[int | None] = []
    walls: list[tuple[float, ...]] = []

    def fake(models, threads=1, protocol=None, processes=None, deadline=None):  # type: ignore[no-untyped-def]
        calls.append(processes)
        return [isolated.Timing((3.0, 3.6), (3.0, 3.6), (3.1, 3.7), (1.0, 1.0), 10, walls[0])] * len(models)

    monkeypatch.setattr(isolated, "time_onnx", fake)
    proto = Protocol(processes=2, extra=2)  # budget 10 s
    # the first processes took 1 s and 4.5 s: two more at the slowest one's pace (9 s) fit in 10 s: measured
    walls.append((1.0, 4.5))
    (lat,) = measure_onnx([(b"a", (1, 3, 8, 8))], Context.local(resolution=8), proto, ReferenceStore())
    assert calls == [None, 2] and lat.processes == 4
    # 1 s and 5.5 s: two more at the slowest one's pace (11 s) would pass 10 s, though at their mean pace
    # (6.5 s) they would not: left out, the figure unconfirmed
    calls.clear()
    walls[0] = (1.0, 5.5)
    (lat,) = measure_onnx([(b"a", (1, 3, 8, 8))], Context.local(resolution=8), proto, ReferenceStore())
    assert calls == [None] and lat.processes == 2 and "unconfirmed" in lat.flags
    # the extra processes ran into the deadline (none done): the first processes' figure, unconfirmed
    calls.clear()
    walls[0] = (1.0, 4.5)
    monkeypatch.setattr(isolated, "time_onnx", lambda models, threads=1, protocol=None, processes=None,
                        deadline=None: fake(models) if processes is None else calls.append(deadline) or [])
    (lat,) = measure_onnx([(b"a", (1, 3, 8, 8))], Context.local(resolution=8), proto, ReferenceStore())
    assert len(calls) == 2 and calls[1] is not None and lat.processes == 2 and "unconfirmed" in lat.flags
    # the estimate scales with the models an extra process times: the overhead beyond the asked timing, then
    # the reference and one model of 0.6 s each
    asked = 0.1 + 5 * 0.1
    ts = [isolated.Timing((1.0,), (1.0,), (1.0,), (1.0,), 5, (3.0,))] * 4
    assert latency_mod._extra_process_s(ts, 1, Protocol()) == pytest.approx(3.0 - 5 * asked + 2 * asked)

def test_a_worker_that_would_pass_the_deadline_is_cut_short_and_what_is_done_counts() -> None:
    import time

    from designspace.evaluate.measure.isolated import REFERENCE_SHAPE, reference_onnx, time_onnx

    model = (reference_onnx(), tuple(REFERENCE_SHAPE))
    quick = Protocol(rounds=1, round_s=0.01, warmup_s=0.01)
    assert time_onnx([model], protocol=quick, processes=2, deadline=time.perf_counter()) == []
    # a real worker killed 0.05 s in (it cannot start ONNX Runtime that fast): none done, nothing raised
    t = time.perf_counter()
    assert time_onnx([model], protocol=quick, processes=2, deadline=t + 0.05) == []
    assert time.perf_counter() - t < 2.0
    # a deadline far off: both processes done
    (timing,) = time_onnx([model], protocol=quick, processes=2, deadline=time.perf_counter() + 60)
    assert len(timing.ratios) == 2 and len(timing.process_s) == 2


def test_calibration_networks_span_the_space_from_its_smallest_to_its_largest() -> None:
    from designspace.evaluate.counts.analytic import count
    from designspace.space import load_space
    from designspace.table_build import calibration_archs

    space = load_space("mobile")
    picked = calibration_archs(space, 4, seed=3, pool=300)
    macs = [count(a).macs for a in picked]
    rng = random.Random(3)
    pool = [count(space.sample(rng)).macs for _ in range(300)]  # the same seeded draws
    assert len(picked) == 4 == len({a.fingerprint for a in picked})
    assert macs == sorted(macs) and macs[0] == min(pool) and macs[-1] == max(pool)
    assert [a.fingerprint for a in calibration_archs(space, 4, seed=3, pool=300)] == [a.fingerprint for a in picked]
    assert [count(a).macs for a in calibration_archs(space, 1, seed=3, pool=300)] == [min(pool)]
    assert calibration_archs(space, 0, seed=3, pool=300) == []


def test_calibration_networks_are_distinct_even_where_the_space_has_fewer(tmp_path: Path) -> None:
    from designspace.space import load_space
    from designspace.table_build import calibration_archs

    path = tmp_path / "small.yaml"
    path.write_text(SMALL_SPACE)
    space = load_space(path)
    picked = calibration_archs(space, 50, seed=0, pool=400)
    rng = random.Random(0)
    distinct = {space.sample(rng).fingerprint for _ in range(400)}  # the same seeded draws: a handful of points
    assert len(distinct) < 50 and {a.fingerprint for a in picked} == distinct and len(picked) == len(distinct)
