"""Figures (plotly) and the network diagram (Graphviz DOT text) the app draws.

All scatter plots use WebGL traces, so 10,000 trials draw quickly. Hover text shows the trial number.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from designspace.app.analysis import metric_label
from designspace.app.data import Study
from designspace.exceptions import DesignspaceError

__all__ = ["blocks_figure", "compare_figure", "diagram_dot", "history_figure", "learning_curves",
           "learning_curves_figure", "published_top1_points", "top1_intervals", "tradeoff_figure"]

#: The column of the predicted ImageNet-1K top-1 (%), the objective ``top1``.
TOP1 = "top1"
_MAX_INTERVALS = 5000  # trials whose interval is computed from their Arch (the rest: points only)

_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
            "#393b79", "#637939", "#8c6d31")


def tradeoff_figure(study: Study, x: str, y: str, feasible: np.ndarray, front: np.ndarray,
                    colors: pd.Series | None, limits: dict[str, float],
                    zoo_points: pd.DataFrame | None = None, intervals: pd.DataFrame | None = None,
                    published: pd.DataFrame | None = None) -> Any:
    """The trade-off scatter: feasible trials coloured by ``colors`` (e.g. block mix), infeasible ones as grey
    crosses, the feasible Pareto front (over x and y) as a red line with large markers, budget lines on the
    axes that carry a budget, and zoo models as labelled diamonds.

    Args:
        study: the study (its ``trials`` give the points, its zoo trials the in-study references).
        x, y: metric columns (units in their names).
        feasible: bool per trial: feasible under ``limits``.
        front: bool per trial: on the front.
        colors: a label per trial (``None``: one colour).
        limits: budget limits (metric -> limit) to draw as dashed lines where x or y is that metric.
        zoo_points: zoo models computed outside the study (columns ``name``, ``x``, ``y``), drawn as hollow
            diamonds.
        intervals: the predicted top-1's 95% interval per trial (columns ``number``, ``lo``, ``hi``, in %; see
            :func:`top1_intervals`), drawn as error bars on whichever axis is ``top1``.
        published: the zoo's *published* ImageNet-1K top-1 (columns ``name``, ``x``, ``y``; see
            :func:`published_top1_points`), drawn as stars on the same axis as the prediction.

    Returns:
        A ``plotly.graph_objects.Figure``.
    """
    import plotly.graph_objects as go

    df = study.trials
    xs, ys = df[x].to_numpy(float), df[y].to_numpy(float)
    numbers = df["number"].to_numpy(int)
    shown = np.isfinite(xs) & np.isfinite(ys)
    fig = go.Figure()
    feas = feasible & shown
    labels = colors if colors is not None else pd.Series("feasible", index=df.index)
    for k, label in enumerate(sorted(labels[feas].unique(), key=lambda s: (s in ("other mixes", "no Arch"), s))):
        sel = feas & (labels == label).to_numpy()
        fig.add_trace(go.Scattergl(x=xs[sel], y=ys[sel], mode="markers", name=str(label), customdata=numbers[sel],
                                   marker={"size": 6, "color": _PALETTE[k % len(_PALETTE)], "opacity": 0.75},
                                   hovertemplate="trial %{customdata}<br>%{x:.4g}, %{y:.4g}<extra>%{fullData.name}"
                                                 "</extra>"))
    inf = shown & ~feasible
    if inf.any():
        fig.add_trace(go.Scattergl(x=xs[inf], y=ys[inf], mode="markers", name="infeasible", customdata=numbers[inf],
                                   marker={"size": 6, "color": "#8c8c8c", "symbol": "x", "opacity": 0.7},
                                   hovertemplate="trial %{customdata} (infeasible)<br>%{x:.4g}, %{y:.4g}"
                                                 "<extra></extra>"))
    _add_unplaced(fig, df, x, y, xs, ys, feasible, study)
    if "latency_ms" in (x, y) and {"latency_low_ms", "latency_high_ms"} <= set(df.columns):
        _add_latency_intervals(fig, df, x, y, shown, study)
    on = front & shown
    if on.any():
        order = np.argsort(xs[on], kind="stable")
        fig.add_trace(go.Scatter(x=xs[on][order], y=ys[on][order], mode="lines+markers", name="Pareto front",
                                 customdata=numbers[on][order], line={"color": "#d62728", "width": 2, "shape": "hv"},
                                 marker={"size": 10, "color": "#d62728", "line": {"color": "white", "width": 1}},
                                 hovertemplate="trial %{customdata} (Pareto)<br>%{x:.4g}, %{y:.4g}<extra></extra>"))
    if "zoo" in df.columns:
        zoo = shown & (df["zoo"] != "").to_numpy()
        if zoo.any():
            fig.add_trace(go.Scatter(x=xs[zoo], y=ys[zoo], mode="markers+text", name="zoo (in study)",
                                     text=df["zoo"][zoo].tolist(), textposition="top center",
                                     marker={"size": 13, "symbol": "diamond", "color": "#000000"},
                                     hovertemplate="%{text}<br>%{x:.4g}, %{y:.4g}<extra></extra>"))
    if zoo_points is not None and len(zoo_points):
        fig.add_trace(go.Scatter(x=zoo_points["x"], y=zoo_points["y"], mode="markers+text", name="zoo (analytic)",
                                 text=zoo_points["name"].tolist(), textposition="bottom center",
                                 marker={"size": 11, "symbol": "diamond-open", "color": "#000000"},
                                 textfont={"size": 9}, hovertemplate="%{text}<br>%{x:.4g}, %{y:.4g}<extra></extra>"))
    if intervals is not None and len(intervals) and TOP1 in (x, y):
        _add_intervals(fig, df, x, y, intervals)
    if published is not None and len(published):
        fig.add_trace(go.Scatter(x=published["x"], y=published["y"], mode="markers+text",
                                 name="published top-1 (zoo)", text=published["name"].tolist(),
                                 textposition="middle right", textfont={"size": 9},
                                 marker={"size": 12, "symbol": "star", "color": "#2ca02c",
                                         "line": {"color": "black", "width": 1}},
                                 hovertemplate="%{text}: published top-1 %{y:.1f} %<br>%{x:.4g}<extra></extra>"))
    for metric, limit in limits.items():
        text = f"budget: {metric_label(metric, study)} <= {limit:g}"
        if metric == x:
            fig.add_vline(x=limit, line_dash="dash", line_color="#444", annotation_text=text, name=f"budget {metric}")
        if metric == y:
            fig.add_hline(y=limit, line_dash="dash", line_color="#444", annotation_text=text, name=f"budget {metric}")
    from designspace.app.analysis import PERCENT_COLUMNS

    for axis, metric in (("xaxis", x), ("yaxis", y)):  # fractions read as percentages
        if metric in PERCENT_COLUMNS:
            fig.update_layout(**{axis: {"tickformat": ".0%"}})
    fig.update_layout(xaxis_title=metric_label(x, study), yaxis_title=metric_label(y, study), height=560,
                      legend={"title": "block mix" if colors is not None else ""},
                      margin={"l": 10, "r": 10, "t": 30, "b": 10})
    return fig


def _add_unplaced(fig: Any, df: pd.DataFrame, x: str, y: str, xs: np.ndarray, ys: np.ndarray,
                  feasible: np.ndarray, study: Study) -> None:
    """Infeasible trials with one axis unknown (a cheaper budget broke before the latency was measured or
    predicted): drawn at that axis's far edge as hollow triangles, so that every evaluated trial shows."""
    import plotly.graph_objects as go

    complete = (df["state"] == "COMPLETE").to_numpy(bool)
    fx, fy = np.isfinite(xs), np.isfinite(ys)
    for missing, known, axis in ((~fx & fy, x, "x"), (fx & ~fy, y, "y")):
        sel = complete & ~feasible & missing
        if not sel.any():
            continue
        values = xs if axis == "x" else ys
        finite = values[np.isfinite(values)]
        top = float(finite.max()) if finite.size else 1.0
        low = float(finite.min()) if finite.size else 0.0
        edge = np.full(int(sel.sum()), top + 0.05 * max(top - low, abs(top), 1e-9))
        other = ys[sel] if axis == "x" else xs[sel]
        label = metric_label(known, study)
        fig.add_trace(go.Scattergl(
            x=edge if axis == "x" else other, y=other if axis == "x" else edge, mode="markers",
            name=f"infeasible, {label} unknown (drawn at the edge)", customdata=df["number"].to_numpy(int)[sel],
            marker={"size": 7, "color": "#8c8c8c", "symbol": "triangle-right-open" if axis == "x" else
                    "triangle-up-open"},
            hovertemplate=f"trial %{{customdata}} (infeasible: a cheaper budget broke, {label} not known)"
                          "<extra></extra>"))


def _add_latency_intervals(fig: Any, df: pd.DataFrame, x: str, y: str, shown: np.ndarray, study: Study) -> None:
    """Error bars from each trial's latency to the ends of its interval (a prediction's, from its profile's
    leave-one-out residuals; a measurement's repeatability; a table figure's leave-one-out error)."""
    import plotly.graph_objects as go

    lo, hi = df["latency_low_ms"].to_numpy(float), df["latency_high_ms"].to_numpy(float)
    value = df["latency_ms"].to_numpy(float)
    sel = shown & np.isfinite(lo) & np.isfinite(hi)
    if not sel.any():
        return
    device, source = study.latency_kind
    bars = {"type": "data", "array": np.clip(hi[sel] - value[sel], 0, None),
            "arrayminus": np.clip(value[sel] - lo[sel], 0, None), "color": "rgba(60,60,60,0.45)", "thickness": 1,
            "width": 2}
    kind = go.Scattergl if int(sel.sum()) > 2000 else go.Scatter
    fig.add_trace(kind(x=df[x].to_numpy(float)[sel], y=df[y].to_numpy(float)[sel], mode="markers",
                       name=f"latency interval ({device}, {source})",
                       customdata=np.stack([df["number"].to_numpy(float)[sel], lo[sel], hi[sel]], axis=-1),
                       marker={"size": 1, "color": "rgba(0,0,0,0)"},
                       **({"error_x": bars} if x == "latency_ms" else {"error_y": bars}),
                       hovertemplate="trial %{customdata[0]}: latency %{customdata[1]:.3f}..%{customdata[2]:.3f} ms"
                                     "<extra></extra>"))


def _add_intervals(fig: Any, df: pd.DataFrame, x: str, y: str, intervals: pd.DataFrame) -> None:
    """Error bars from each trial's predicted top-1 to the ends of its 95% interval."""
    import plotly.graph_objects as go

    merged = df[["number", x, y]].merge(intervals, on="number", how="inner")
    other, along = (x, y) if y == TOP1 else (y, x)
    merged = merged[np.isfinite(merged[other].to_numpy(float)) & np.isfinite(merged[along].to_numpy(float))]
    if merged.empty:
        return
    plus = (merged["hi"] - merged[along]).clip(lower=0).to_numpy(float)
    minus = (merged[along] - merged["lo"]).clip(lower=0).to_numpy(float)
    bars = {"type": "data", "array": plus, "arrayminus": minus, "color": "rgba(80,80,80,0.35)", "thickness": 1,
            "width": 0}
    kind = go.Scattergl if len(merged) > 2000 else go.Scatter
    fig.add_trace(kind(x=merged[x], y=merged[y], mode="markers", name="predicted top-1, 95% interval",
                       customdata=np.stack([merged["number"], merged["lo"], merged["hi"]], axis=-1),
                       marker={"size": 1, "color": "rgba(0,0,0,0)"},
                       **({"error_y": bars} if y == TOP1 else {"error_x": bars}),
                       hovertemplate="trial %{customdata[0]}: top-1 %{customdata[1]:.1f}..%{customdata[2]:.1f} %"
                                     "<extra></extra>"))


def top1_intervals(study: Study) -> pd.DataFrame:
    """The predicted top-1's 95% interval of each trial (columns ``number``, ``lo``, ``hi``, ``extrapolated``; %).

    Uses the trials' ``top1_lo``/``top1_hi`` columns where the search recorded them, else predicts from each
    trial's Arch file (:func:`designspace.evaluate.accuracy.top1.predict_top1`; at most the first 5,000 trials with an
    Arch). Empty when the study has no Arch files and no recorded intervals.
    """
    from designspace.app.data import load_arch_of
    from designspace.evaluate.accuracy.top1 import predict_top1

    df = study.trials
    cols = ["number", "lo", "hi", "extrapolated"]
    if {"top1_lo", "top1_hi"} <= set(df.columns):
        got = df[["number", "top1_lo", "top1_hi"]].rename(columns={"top1_lo": "lo", "top1_hi": "hi"})
        got["extrapolated"] = df["top1_extrapolated"] if "top1_extrapolated" in df.columns else False
        return got.dropna(subset=["lo", "hi"]).reset_index(drop=True)
    if "arch" not in df.columns:
        return pd.DataFrame(columns=cols)
    rows = []
    for _, row in df[df["arch"].astype(str) != ""].head(_MAX_INTERVALS).iterrows():
        try:
            arch = load_arch_of(study, row)
        except DesignspaceError:  # a missing or unreadable Arch file only loses its error bar
            continue
        p = predict_top1(arch)
        rows.append((int(row["number"]), p.lo, p.hi, p.extrapolated))
    return pd.DataFrame(rows, columns=cols)


def published_top1_points(x: str) -> pd.DataFrame:
    """The zoo models' published ImageNet-1K top-1 (%) against ``x`` (``params_m`` or ``macs_g``, our analytic
    counts), for the same axis as the predicted top-1. Columns ``name``, ``x``, ``y``; empty for other ``x``."""
    from designspace import zoo
    from designspace.evaluate.counts.analytic import count

    if x not in ("params_m", "macs_g"):
        return pd.DataFrame(columns=["name", "x", "y"])
    rows = []
    for name in zoo.names():
        arch = zoo.load(name)
        pub = zoo.published_for(arch)
        if pub is None or pub.top1 is None:
            continue
        c = count(arch)
        rows.append((name, c.params_m if x == "params_m" else c.macs_g, pub.top1))
    return pd.DataFrame(rows, columns=["name", "x", "y"])


def history_figure(hist: pd.DataFrame, objectives: Sequence[dict[str, Any]], study: Study | None = None) -> Any:
    """Best-so-far of each objective and the hypervolume against the trial number (one panel each).

    Args:
        hist: what :func:`designspace.app.analysis.history` returns.
        objectives: the study's objectives (names and directions).
        study: the study, for its quantities' labels (the latency's device and source).

    Returns:
        A ``plotly.graph_objects.Figure``.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rows = len(objectives) + 1
    from designspace.evaluate.accuracy.estimate import description

    def what(o: dict[str, Any]) -> str:  # a size proxy says what it is; a latency its device and source
        d = description(str(o.get("arg") or o["name"])) if o.get("kind") == "estimate" else ""
        if "proxy for" in d:
            return f"{o['name']}: {d}"
        return metric_label(str(o["name"]), study) if study is not None else str(o["name"])

    titles = [f"best {what(o)} so far ({'higher' if o['direction'] == 'maximize' else 'lower'} is better)"
              for o in objectives] + ["hypervolume of the feasible front"]
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, subplot_titles=titles, vertical_spacing=0.08)
    for k, o in enumerate(objectives):
        fig.add_trace(go.Scatter(x=hist["number"], y=hist[f"best_{o['name']}"], mode="lines", line_shape="hv",
                                 name=f"best {o['name']}"), row=k + 1, col=1)
    fig.add_trace(go.Scatter(x=hist["number"], y=hist["hypervolume"], mode="lines", line_shape="hv",
                             name="hypervolume", line={"color": "#d62728"}), row=rows, col=1)
    fig.update_xaxes(title_text="trial number", row=rows, col=1)
    fig.update_layout(height=220 * rows, showlegend=False, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def learning_curves(study: Study) -> pd.DataFrame:
    """The validation top-1 (%) after each epoch of every trained trial of a ``--objective trained`` study
    (columns ``number``, ``state``, ``epoch`` from 1, ``val_top1``); empty for other studies."""
    from designspace.search.trained_results import learning_curves as records

    cols = ["number", "state", "epoch", "val_top1"]
    if "val_top1_curve" not in study.trials.columns:
        return pd.DataFrame(columns=cols)
    return pd.DataFrame(records(study.trials[["number", "state", "val_top1_curve"]].to_dict("records")), columns=cols)


def learning_curves_figure(curves: pd.DataFrame, chance: float | None = None) -> Any:
    """One line per trial: validation top-1 (%) against the epoch; completed trials solid, pruned ones dotted
    and ending where the pruner stopped them; ``chance`` (%) as a dashed line.

    Returns:
        A ``plotly.graph_objects.Figure``.
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    for k, (number, trial) in enumerate(curves.groupby("number", sort=True)):
        state = str(trial["state"].iloc[0])
        fig.add_trace(go.Scatter(x=trial["epoch"], y=trial["val_top1"], mode="lines+markers",
                                 name=f"trial {number} ({state.lower()})",
                                 line={"color": _PALETTE[k % len(_PALETTE)],
                                       "dash": "dot" if state == "PRUNED" else "solid"},
                                 hovertemplate=f"trial {number}<br>epoch %{{x}}: %{{y:.2f}}%<extra>{state}</extra>"))
    if chance is not None:
        fig.add_hline(y=chance, line_dash="dash", line_color="#7f7f7f", annotation_text=f"chance {chance:.1f}%")
    fig.update_xaxes(title_text="epoch", dtick=1)
    fig.update_yaxes(title_text="validation top-1 (%)")
    fig.update_layout(height=380, margin={"l": 10, "r": 10, "t": 30, "b": 10}, legend={"font": {"size": 10}})
    return fig


def blocks_figure(blocks: pd.DataFrame) -> Any:
    """Per-component parameters (millions) and MACs (millions) as two bar panels, in network order.

    Args:
        blocks: what :func:`designspace.app.analysis.block_table` returns.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=["parameters (M)", "MACs (M, batch 1)"])
    text = [f"{n} ({t})" for n, t in zip(blocks["name"], blocks["type"], strict=True)]
    fig.add_trace(go.Bar(x=blocks["name"], y=blocks["params_m"], hovertext=text, name="params (M)"), row=1, col=1)
    fig.add_trace(go.Bar(x=blocks["name"], y=blocks["macs_m"], hovertext=text, name="MACs (M)",
                         marker_color="#ff7f0e"), row=2, col=1)
    fig.update_layout(height=480, showlegend=False, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def compare_figure(stages: dict[str, pd.DataFrame], quantity: str = "params_m") -> Any:
    """A grouped bar chart of ``quantity`` per network part (stem, stages, head), one bar group per trial.

    Args:
        stages: trial label -> :func:`designspace.app.analysis.stage_table` of its Arch.
        quantity: ``params_m`` (millions) or ``macs_g`` (billions).
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    for label, table in stages.items():
        fig.add_trace(go.Bar(x=table["part"], y=table[quantity], name=label))
    fig.update_layout(barmode="group", height=360, yaxis_title=metric_label(quantity),
                      margin={"l": 10, "r": 10, "t": 30, "b": 10})
    return fig


def _esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def diagram_dot(arch: Any) -> str:
    """A Graphviz DOT diagram of the network: input, stem, each stage (downsampling, width, stride, its blocks
    with consecutive repeats folded, e.g. ``2x sam``), head, output.

    Args:
        arch: a :class:`designspace.Arch`.

    Returns:
        DOT text (``st.graphviz_chart`` draws it).
    """
    res = int(arch.resolution)
    lines = ["digraph network {", "  rankdir=LR; node [shape=box, style=\"rounded,filled\", fillcolor=\"#f4f4f4\", "
             "fontname=Helvetica, fontsize=10]; edge [fontsize=9, fontname=Helvetica];",
             f'  input [label="input\\n{arch.in_chans}x{res}x{res}", shape=oval, fillcolor="#ffffff"];',
             f'  stem [label="stem\\n{_esc(arch.stem.type)}", fillcolor="#dde8f6"];', "  input -> stem;"]
    for i, st in enumerate(arch.stages):
        runs: list[list[Any]] = []
        for b in st.blocks:
            if runs and runs[-1][0] == b.type:
                runs[-1][1] += 1
            else:
                runs.append([b.type, 1])
        body = "\\n".join(f"{n}x {_esc(t)}" for t, n in runs)
        down = f"{_esc(st.downsample.type)} /{st.stride}\\n" if st.downsample is not None else ""
        lines.append(f'  s{i} [label="stage {i + 1}: {st.width} ch\\n{down}{body}", fillcolor="#e6f2e6"];')
        lines.append(f'  {"stem" if i == 0 else f"s{i - 1}"} -> s{i};')
    last = f"s{len(arch.stages) - 1}" if arch.stages else "stem"
    lines += [f'  head [label="head\\n{_esc(arch.head.type)}", fillcolor="#f6e6dd"];', f"  {last} -> head;",
              f'  out [label="{arch.num_classes} logits", shape=oval, fillcolor="#ffffff"];', "  head -> out;", "}"]
    return "\n".join(lines)
