"""The app's Analysis page (Streamlit's AppTest): a space analyzed on a device, figures with named axes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
import itertools

from streamlit.testing.v1 import AppTest

from designspace.analysis import analyze, space_samples
from designspace.app import space_analysis
from designspace.space import load_space

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def test_figures_name_their_axes_with_unit_and_device() -> None:
    result = analyze(space_samples(load_space("tiny"), 40, seed=0, device="p100"), seed=0,
                     evaluators=("ped_anova",))
    blocks = space_analysis.block_cost_figure(result).to_dict()["layout"]
    assert "p100" in blocks["yaxis"]["title"]["text"] and "ms/GMAC" in blocks["yaxis"]["title"]["text"]
    imp = space_analysis.importance_figure(result, "latency_ms").to_dict()
    assert "latency on p100 (predicted, ms)" in imp["layout"]["xaxis"]["title"]["text"]
    assert imp["data"] and imp["data"][0]["orientation"] == "h"
    param = next(iter(result.options))
    edf = space_analysis.edf_figure(result, param).to_dict()
    assert "p100" in edf["layout"]["xaxis"]["title"]["text"] and "ms" in edf["layout"]["xaxis"]["title"]["text"]
    for trace in edf["data"]:  # each option's curve is a distribution function
        ys = trace["y"]
        assert all(0.0 <= a <= b <= 1.0 for a, b in itertools.pairwise(ys)) and ys[-1] == 1.0


def test_analysis_page_renders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESIGNSPACE_RESULTS", str(tmp_path))  # no study needed: a shipped space is analyzed
    at = AppTest.from_file(APP, default_timeout=180).run()
    at = at.sidebar.radio(key="page").set_value("Analysis").run()
    assert not at.get("plotly_chart")  # nothing computed before the user asks
    at.selectbox(key="an_name").set_value("tiny")
    at.number_input(key="an_samples").set_value(60)
    at = at.button(key="an_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert len(charts) == 3  # block costs, importances, one parameter's EDFs
    titles = [c["layout"]["yaxis"]["title"]["text"] for c in charts[:1]] + \
             [c["layout"]["xaxis"]["title"]["text"] for c in charts[1:]]
    assert all("iphone13" in t for t in titles), titles
    assert any("60 seeded samples of spaces/tiny.yaml" in c.value for c in at.caption)
    at.selectbox(key="an_device").set_value("p100")
    at = at.button(key="an_run").click().run()
    assert not at.exception
    assert "p100" in json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["yaxis"]["title"]["text"]
