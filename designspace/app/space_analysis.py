"""The app's Analysis page, computed: a space's samples or a study's trials analyzed on a device
(:mod:`designspace.analysis`), and its plotly figures, every axis titled with its unit and device.

Figures: the blocks' latency per GMAC by stage and type (:func:`block_cost_figure`), parameter importances as bars
(:func:`importance_figure`), and one parameter's options as EDFs of latency at matched MACs (:func:`edf_figure`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from designspace.analysis import Analysis, analyze, space_samples, study_samples
from designspace.app.data import safe_path

__all__ = ["block_cost_figure", "device_names", "edf_figure", "importance_figure", "run_analysis", "space_names"]

_EVALUATOR_NAMES = {"fanova": "fANOVA", "ped_anova": "PED-ANOVA", "mdi": "MDI"}


def space_names() -> list[str]:
    """The shipped spaces, by name."""
    from designspace.space.shipped import names

    return list(names())


def device_names() -> list[str]:
    """Device profiles an analysis can predict on (every profile; ``local`` is measured, not a profile)."""
    from designspace.evaluate.devices.profiles import list_devices

    return [d.name for d in list_devices()]


def run_analysis(kind: str, name: str, root: str | Path, *, device: str, samples: int = 500, seed: int = 0) -> Analysis:
    """``designspace analyze`` for the page: ``kind`` ``"space"`` (a shipped space, ``samples`` seeded networks) or
    ``"study"`` (a study under ``root``, read inside it only), on ``device``."""
    if kind == "study":
        return analyze(study_samples(safe_path(root, name), device=device), seed=seed)
    from designspace.space import load_space

    return analyze(space_samples(load_space(name), samples, seed=seed, device=device), seed=seed)


def block_cost_figure(result: Analysis) -> Any:
    """Grouped bars: each stage's block types, median latency per GMAC of those blocks, quartiles as error bars."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for t in sorted({r.type for r in result.block_costs}):
        rows = [r for r in result.block_costs if r.type == t]
        fig.add_trace(go.Bar(x=[f"stage {r.stage}" for r in rows], y=[r.ms_per_gmac for r in rows], name=t,
                             error_y={"type": "data", "symmetric": False,
                                      "array": [r.q3 - r.ms_per_gmac for r in rows],
                                      "arrayminus": [r.ms_per_gmac - r.q1 for r in rows]},
                             hovertext=[f"{r.networks} networks; {r.share:.0%} of their latency" for r in rows]))
    s = result.samples
    fig.update_layout(barmode="group", height=380, margin={"t": 30}, legend_title_text="block type",
                      xaxis_title="stage",
                      yaxis_title=f"blocks' latency per GMAC on {s.device} ({s.latency_source}, ms/GMAC)")
    return fig


def importance_figure(result: Analysis, target: str, top: int = 10) -> Any:
    """Horizontal bars: the ``top`` parameters by mean importance for ``target``, one bar per evaluator."""
    import plotly.graph_objects as go

    rank = [p for p, _ in result.ranking(target)[:top]][::-1]
    by = result.importances[target]
    fig = go.Figure()
    for e, figures in by.items():
        fig.add_trace(go.Bar(y=rank, x=[figures.get(p, 0.0) for p in rank], name=_EVALUATOR_NAMES.get(e, e),
                             orientation="h"))
    label = result.samples.target(target).label
    fig.update_layout(barmode="group", height=max(300, 40 * len(rank) + 120), margin={"t": 30},
                      xaxis_title=f"importance for {label} (share, sums to 1 per evaluator)", yaxis_title="parameter")
    return fig


def edf_figure(result: Analysis, param: str) -> Any:
    """One EDF curve per option of ``param``: share of its networks at or below each latency, MACs matched."""
    import plotly.graph_objects as go

    grid = list(result.grids[param])
    fig = go.Figure()
    for row in result.options[param]:
        fig.add_trace(go.Scatter(x=grid, y=list(row.edf), mode="lines", line_shape="hv",
                                 name=f"{row.option} (n={row.networks})"))
    lat = result.samples.target("latency_ms").label
    fig.update_layout(height=380, margin={"t": 30}, legend_title_text=param, xaxis_title=lat,
                      yaxis_title="share of networks at or below (EDF, MACs matched)", yaxis_range=[0, 1.02])
    return fig
