"""``designspace analyze``: importances that find a known dominant choice, reproducibly; EDFs that are distribution
functions; a comparison statement that agrees with them; one line and exit 2 on bad input."""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from designspace.analysis import analyze, space_samples
from designspace.analysis.compare import compare_groups
from designspace.analysis.distributions import edf, edf_at, matched_weights, weighted_quantile
from designspace.cli import main
from designspace.evaluate.devices.profiles import load_device
from designspace.space import load_space

DATA = Path(__file__).parent / "data" / "analysis"
KERNEL_SPACE = DATA / "kernel_dominates.yaml"
KERNEL = "stages.0.segments.0.mbconv.kernel_size"
WIDTH = "stages.0.width"


def test_the_kernel_space_is_dominated_by_its_kernel_on_the_device_model() -> None:
    # the premise, from the cost model itself: the kernel's effect exceeds the whole width range's
    space, p100 = load_space(str(KERNEL_SPACE)), load_device("p100")
    ms = {(w, k): p100.predict(space.decode({WIDTH: w, KERNEL: k}).arch).ms for w in (48, 52, 56) for k in (3, 9)}  # type: ignore[arg-type]
    assert max(ms[(w, 3)] for w in (48, 52, 56)) < min(ms[(w, 9)] for w in (48, 52, 56))


def test_analyze_ranks_the_dominant_choice_first() -> None:
    pytest.importorskip("sklearn", reason="fANOVA and MDI need scikit-learn (pip install -e '.[dev]')")
    result = analyze(space_samples(load_space(str(KERNEL_SPACE)), 200, seed=0, device="p100"), seed=0)
    by = result.importances["latency_ms"]
    # the variance-based evaluators and the report's ranking (mean over evaluators) put the kernel first
    assert next(iter(by["fanova"])) == KERNEL
    assert next(iter(by["mdi"])) == KERNEL
    assert result.ranking("latency_ms")[0][0] == KERNEL
    for figures in by.values():
        assert abs(sum(figures.values()) - 1.0) < 1e-9 and all(v >= 0 for v in figures.values())


def test_importances_are_reproducible_with_a_seed() -> None:
    space = load_space("tiny")
    first = analyze(space_samples(space, 120, seed=3), seed=5)
    again = analyze(space_samples(space, 120, seed=3), seed=5)
    assert first.importances == again.importances
    assert first.to_dict() == again.to_dict()


def test_import_designspace_does_not_import_optuna() -> None:
    import subprocess

    code = "import designspace, designspace.analysis, sys; print('optuna' in sys.modules, 'sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


# ------------------------------------------------------------------------------------------------ distributions
def test_edfs_are_distribution_functions() -> None:
    rng = np.random.default_rng(0)
    x, w = rng.lognormal(size=500), rng.uniform(0, 2, size=500)
    w[:50] = 0.0
    xs, f = edf(x, w)
    assert np.all(np.diff(xs) > 0) and np.all(np.diff(f) >= 0) and f[-1] == 1.0 and f[0] > 0
    grid = np.linspace(x.min() - 1, x.max() + 1, 300)
    g = edf_at(x, w, grid)
    assert g[0] == 0.0 and g[-1] == 1.0 and np.all(np.diff(g) >= 0)
    # right-continuous, and the weighted median is where the EDF first reaches one half
    m = weighted_quantile(x, 0.5, w)
    assert edf_at(x, w, np.array([m]))[0] >= 0.5 > edf_at(x, w, np.array([np.nextafter(m, -np.inf)]))[0]


def test_matched_weights_give_every_group_the_same_mac_distribution() -> None:
    rng = np.random.default_rng(1)
    macs = np.concatenate([rng.uniform(0.2, 1.0, 400), rng.uniform(0.5, 2.0, 400)])  # B is larger on the whole
    in_a = np.arange(800) < 400
    wa, wb = matched_weights(macs, [in_a, ~in_a], bins=6)
    assert wa.sum() == pytest.approx(1.0) and wb.sum() == pytest.approx(1.0)
    assert np.all(wa[~in_a] == 0) and np.all(wb[in_a] == 0)
    assert macs[wa > 0].min() >= 0.5 and macs[wb > 0].max() <= 1.0  # the common range only
    edges = np.geomspace(macs[~in_a].min(), macs[in_a].max(), 7)  # the common range, in the function's bins
    ha = np.histogram(macs, edges, weights=wa)[0]
    hb = np.histogram(macs, edges, weights=wb)[0]
    assert ha == pytest.approx(hb, abs=1e-9)


@pytest.mark.parametrize("shift", [1.25, 1.0, 0.8])
def test_the_comparison_statement_agrees_with_the_edfs(shift: float) -> None:
    rng = np.random.default_rng(2)
    macs = rng.uniform(0.3, 1.5, 600)
    lat = macs * rng.lognormal(0.0, 0.15, 600)
    in_a = np.arange(600) < 300
    lat[~in_a] *= shift  # B slower (1.25), alike (1.0), faster (0.8)
    c = compare_groups(lat, macs, in_a, ~in_a, metric="latency_ms", label="latency (ms)", names=("A", "B"),
                       unit="ms", reps=100)
    fa, fb = np.array(c.edf_a), np.array(c.edf_b)
    assert np.all(np.diff(fa) >= 0) and np.all(np.diff(fb) >= 0)
    if c.dominates == "a":
        assert np.all(fa >= fb) and "A dominates" in c.statement
    elif c.dominates == "b":
        assert np.all(fb >= fa) and "B dominates" in c.statement
    else:
        assert "neither dominates" in c.statement and np.any(fa < fb) and np.any(fb < fa)
    if shift != 1.0:
        assert c.dominates == ("a" if shift > 1 else "b")
        assert not c.ratio_low <= 1.0 <= c.ratio_high
        assert c.median_a == pytest.approx(weighted_quantile(lat[in_a], 0.5, None), rel=0.3)
        assert (c.ratio < 1) == (shift > 1)
        assert f"{'A' if shift > 1 else 'B'} is better by" in c.statement
    else:
        assert "within the sampling uncertainty" in c.statement


def test_compare_two_spaces_through_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "--compare", "emo", "mbconv", "--samples", "60", "--bootstrap", "50", "--device", "p100",
                 "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [c["metric"] for c in data["comparisons"]] == ["latency_ms", "top1"]
    for c in data["comparisons"]:
        fa, fb = np.array(c["edf_a"]), np.array(c["edf_b"])
        assert c["n_a"] > 0 and c["n_b"] > 0  # the two spaces share a MAC range
        better_a, better_b = (fa >= fb, fb >= fa) if c["direction"] == "minimize" else (fa <= fb, fb <= fa)
        if c["dominates"] == "a":
            assert np.all(better_a) and "emo dominates" in c["statement"]
        elif c["dominates"] == "b":
            assert np.all(better_b) and "mbconv dominates" in c["statement"]
        else:
            assert "neither dominates" in c["statement"] and not np.all(better_a) and not np.all(better_b)


def test_summary_and_block_costs_on_a_space(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "tiny", "--samples", "80", "--space", "--evaluators", "ped_anova"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("analyze tiny: 80 seeded samples") and "Fastest block type per MAC on iphone13" in out
    assert "stage 3:" in out and "Importance for latency on iphone13 (predicted, ms)" in out


# ------------------------------------------------------------------------------------------------ bad input
@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A counts-only search of mobile (6 trials), and copies with no completed trial and with one."""
    root = tmp_path_factory.mktemp("analysis") / "results"
    mp = pytest.MonkeyPatch()
    mp.setenv("DESIGNSPACE_RESULTS", str(root))
    try:
        assert main(["search", "mobile", "--budget", "0.6G", "--objective", "log10_macs", "--objective", "params",
                     "--trials", "6", "--study", "mob", "--seed", "1", "--no-progress"]) == 0
    finally:
        mp.undo()
    rows = list(csv.reader((root / "mob" / "trials.csv").open(encoding="utf-8")))
    for name, keep in (("empty", 0), ("one", 1)):
        shutil.copytree(root / "mob", root / name)
        with (root / name / "trials.csv").open("w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows(rows[: 1 + keep])
        summary = json.loads((root / name / "summary.json").read_text(encoding="utf-8"))
        summary["trials"] = keep  # a consistent pair: a truncated trials.csv is refused as corrupt
        (root / name / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return root


def test_a_study_is_analyzed_on_its_device(studies: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DESIGNSPACE_RESULTS", str(studies))
    assert main(["analyze", "mob", "--device", "iphone13", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kind"] == "study" and data["networks"] == 6 and data["device"] == "iphone13"
    assert "latency_ms" in data["importances"] and data["block_costs"]


@pytest.mark.parametrize("argv, words", [
    (["analyze", "no_such_thing"], "neither a study"),
    (["analyze", "empty", "--device", "iphone13"], "0 completed trial"),
    (["analyze", "one", "--device", "iphone13"], "1 completed trial"),
    (["analyze", "tiny", "--device", "nosuch"], "unknown device"),
    (["analyze", "tiny", "--device", "local"], "device profile"),
    (["analyze", "mob", "--device", "nosuch"], "unknown device"),
    (["analyze", "tiny", "--samples", "1"], "at least 2"),
    (["analyze", "tiny", "--samples", "-3"], "at least 2"),
    (["analyze", "tiny", "--estimate", "zico"], "one of top1"),
    (["analyze", "tiny", "--evaluators", "shap", "--samples", "5"], "unknown importance evaluator"),
    (["analyze"], "give a study or a space"),
    (["analyze", "--compare", "tiny", "emo", "--device", "p100", "--samples", "5", "--bootstrap", "5", "tiny"],
     "not both"),
    (["analyze", "tiny", "--samples", "1000000"], "at most 100,000"),
    (["analyze", "--compare", "emo", "mbconv", "--samples", "5", "--bootstrap", "0"], "--bootstrap 0"),
])
def test_bad_input_gets_one_line_and_exit_2(studies: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str], argv: list[str], words: str) -> None:
    monkeypatch.setenv("DESIGNSPACE_RESULTS", str(studies))
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and words in err, err
