"""designspace's app: ``streamlit run app.py`` (results from ``$DESIGNSPACE_RESULTS``, default ``./results``).

Reads what searches wrote (it never runs one) and shows the trade-offs. Widgets only: the computation lives in
:mod:`designspace.app`; see docs/app.md.
"""

from __future__ import annotations

import sys
from typing import Any

import pandas as pd
import streamlit as st

from designspace.app import analysis, data, figures
from designspace.exceptions import DesignspaceError

PAGES = ("Trade-offs", "Compare", "Progress", "Zoo", "Analysis")
#: Each page's title (the heading and the browser tab).
TITLES = {"Trade-offs": "Trade-offs", "Compare": "Compare trials", "Progress": "Search progress",
          "Zoo": "Published models and device profiles", "Analysis": "Design-space analysis"}
FOLDER, URL = "results folder", "allowed storage"


# ----------------------------------------------------------------------------------------------- cached library calls
@st.cache_data(show_spinner=False, max_entries=16)
def load_study(root: str, name: str, token: tuple[int, int], refresh: int) -> data.Study:
    return data.load_study(root, name)


@st.cache_data(show_spinner=False, max_entries=8, ttl=600)
def load_storage_study(root: str, storage: str, name: str, refresh: int) -> data.Study:
    url = allowed_storages()[storage]  # a name the operator allowed: a visitor never supplies a URL
    return data.load_storage_study(root, url, name, label=storage)


def allowed_storages() -> dict[str, str]:
    """The operator's storages: ``streamlit run app.py -- --storage NAME=URL`` and ``[designspace.storages]`` in
    Streamlit's secrets; none by default."""
    try:
        secrets = st.secrets.get("designspace")
    except Exception:  # no secrets file: Streamlit raises rather than returning nothing
        secrets = None
    return data.allowed_storages(sys.argv[1:], secrets)


@st.cache_data(show_spinner=False, max_entries=16)
def block_mixes(_study: data.Study, key: tuple[Any, ...]) -> pd.Series:
    return analysis.block_mix_labels(_study)


@st.cache_data(show_spinner=False, max_entries=32)
def history(_study: data.Study, key: tuple[Any, ...], limits: dict[str, float]) -> pd.DataFrame:
    return analysis.history(_study, limits)


@st.cache_data(show_spinner=False, max_entries=64)
def arch_tables(arch_yaml: bytes) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    from designspace.arch import Arch

    arch = Arch.from_yaml(arch_yaml.decode("utf-8"), file="arch.yaml")
    return analysis.stage_table(arch), analysis.block_table(arch), figures.diagram_dot(arch)


@st.cache_data(show_spinner=False, max_entries=8)
def onnx_model(arch_yaml: bytes) -> bytes:
    return data.onnx_bytes(arch_yaml)


@st.cache_data(show_spinner=False)
def zoo_table() -> pd.DataFrame:
    return analysis.zoo_table()


@st.cache_data(show_spinner=False, max_entries=16)
def zoo_points(x: str, y: str) -> pd.DataFrame:
    return analysis.zoo_reference_points(x, y)


@st.cache_data(show_spinner="Predicting top-1 intervals ...", max_entries=8)
def top1_intervals(_study: data.Study, key: tuple[Any, ...]) -> pd.DataFrame:
    return figures.top1_intervals(_study)


@st.cache_data(show_spinner=False, max_entries=4)
def published_top1(x: str) -> pd.DataFrame:
    return figures.published_top1_points(x)


@st.cache_data(show_spinner=False, max_entries=4, ttl=300)
def device_table() -> pd.DataFrame:
    return analysis.device_table()


def study_key(study: data.Study) -> tuple[Any, ...]:
    return (study.source, study.snapshot, len(study.trials))


# ----------------------------------------------------------------------------------------------- widgets
def page_ui() -> str:
    return str(st.sidebar.radio("Page", PAGES, key="page"))


def source_ui(studies: list[str], storages: list[str]) -> tuple[str, str, str]:
    """(source kind, study name, allowed storage's name) chosen in the sidebar; storages appear only where the
    app's operator allowed some (a visitor never types a URL)."""
    kind = st.sidebar.radio("Read studies from", (FOLDER, URL), key="source", horizontal=True) if storages else FOLDER
    if kind == URL:
        storage = st.sidebar.selectbox("Storage", storages, key="storage")
        return URL, str(st.sidebar.text_input("Study name", key="url_study")), str(storage)
    if not studies:
        return FOLDER, "", ""
    return FOLDER, str(st.sidebar.selectbox("Study", studies, key="study")), ""


def refresh_ui(study: data.Study, changed: bool) -> bool:
    """Whether the user asked for a fresh snapshot."""
    st.sidebar.caption(f"Snapshot of {study.source} ({len(study.trials)} trials, updated "
                       f"{study.summary.get('updated', '?')})")
    if changed:
        st.sidebar.warning("The search has written newer results since this snapshot.")
    return st.sidebar.button("Refresh", key="refresh", help="read the study's files again")


def budgets_ui(study: data.Study) -> dict[str, float]:
    """Budget limits from sliders (default: the study's)."""
    limits = {}
    if study.budgets:
        st.sidebar.subheader("Budgets")
    for metric, limit in analysis.budget_limits(study).items():
        low, high, step = analysis.slider_range(study, metric)
        limits[metric] = float(st.sidebar.slider(analysis.metric_label(metric, study), low, high, float(limit), step,
                                                 key=f"budget:{study.name}:{metric}", format="%g"))
    return limits


def axes_ui(study: data.Study) -> tuple[str, str, bool]:
    """(x metric, y metric, colour by block mix)."""
    metrics = analysis.axis_metrics(study)
    x0, y0 = analysis.default_axes(study)
    c1, c2, c3 = st.columns([2, 2, 1])
    x = c1.selectbox("x axis", metrics, index=metrics.index(x0), key=f"x:{study.name}",
                     format_func=lambda m: analysis.metric_label(m, study))
    y = c2.selectbox("y axis", metrics, index=metrics.index(y0), key=f"y:{study.name}",
                     format_func=lambda m: analysis.metric_label(m, study))
    mix = c3.toggle("colour by block mix", value=True, key="mix")
    return str(x), str(y), bool(mix)


def trial_ui(study: data.Study, front: list[int]) -> int | None:
    """The trial to open: one from the Pareto front or the zoo, or any number typed in."""
    zoo = study.trials.loc[study.trials["zoo"] != "", "number"].tolist() if "zoo" in study.trials else []
    options = list(dict.fromkeys(front + zoo))
    c1, c2 = st.columns([3, 1])
    chosen = c1.selectbox("Open a trial", options, key=f"trial:{study.name}",
                          format_func=lambda n: f"trial {n}" + (" (Pareto)" if n in front else " (zoo)"),
                          index=0 if options else None)
    typed = c2.number_input("or trial number", min_value=0, value=None, step=1, key=f"typed:{study.name}")
    return int(typed) if typed is not None else (int(chosen) if chosen is not None else None)


def compare_ui(study: data.Study, front: list[int]) -> list[int]:
    numbers = study.trials.loc[study.trials["arch"] != "", "number"].tolist() if "arch" in study.trials else []
    default = list(dict.fromkeys([n for n in front if n in numbers] + numbers))[:2]
    return [int(n) for n in st.multiselect("Trials to compare", numbers, default=default,
                                           key=f"compare:{study.name}")]


# ----------------------------------------------------------------------------------------------- pages
def tradeoffs_page(study: data.Study, limits: dict[str, float]) -> None:
    df = study.trials
    if df.empty:
        st.info(f"Study {study.name!r} has no trials yet. Wait for the search to write some, then press Refresh.")
        return
    x, y, by_mix = axes_ui(study)
    feasible = analysis.feasible_under(study, limits)
    front = analysis.study_front(study, limits, [x, y])
    colors = block_mixes(study, study_key(study)) if by_mix else None
    zoo = zoo_points(x, y)
    # the predicted top-1 (%) gets its 95% interval as error bars, and the zoo's published top-1 beside it
    intervals = top1_intervals(study, study_key(study)) if figures.TOP1 in (x, y) else None
    published = published_top1(x) if y == figures.TOP1 else None
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("trials", len(df))
    m2.metric("feasible under these budgets", int(feasible.sum()))
    m3.metric("on this front", int(front.sum()))
    device, source = study.latency_kind
    m4.metric(f"latency: {source}", device)
    if not feasible.any():
        st.warning("No trial is feasible under these budgets: loosen a budget slider in the sidebar.")
    st.plotly_chart(figures.tradeoff_figure(study, x, y, feasible, front, colors, limits, zoo, intervals, published),
                    key="tradeoff")
    if intervals is not None and len(intervals) and bool(intervals["extrapolated"].any()):
        st.caption(f"{int(intervals['extrapolated'].sum())} trials lie outside the published networks the top-1 "
                   "predictor was fitted on: their predictions are extrapolations.")
    st.subheader("Pareto front")
    obj_front = analysis.study_front(study, limits)
    st.caption("Feasible trials no other feasible trial beats on every objective ("
               + ", ".join(f"{o['name']} {o['direction']}d" for o in study.objectives)
               + "). Click a column header to sort.")
    cols = ["number", *[o["name"] for o in study.objectives], "params_m", "macs_g", "latency_ms", "latency_low_ms",
            "latency_high_ms", "zoo", "fingerprint"]
    table = df.loc[obj_front, [c for c in dict.fromkeys(cols) if c in df.columns]]
    st.dataframe(analysis.display_table(study, table), hide_index=True, key="pareto_table")
    number = trial_ui(study, table["number"].tolist())
    if number is not None:
        trial_details(study, number)


def trial_details(study: data.Study, number: int) -> None:
    match = study.trials[study.trials["number"] == number]
    if match.empty:
        st.error(f"There is no trial {number} in {study.name!r} (trials 0 to {int(study.trials['number'].max())}).")
        return
    row = match.iloc[0]
    st.subheader(f"Trial {number}" + (f" ({row['zoo']})" if row.get("zoo") else ""))
    status = "feasible" if row["feasible"] else f"infeasible: {row.get('broken') or row.get('reason') or row['state']}"
    st.caption(f"{row['state']}, {status}. Fingerprint {row.get('fingerprint') or '-'}.")
    cells = st.columns(4)
    for cell, key in zip(cells, ["params_m", "macs_g", "latency_ms", *[o["name"] for o in study.objectives]],
                         strict=False):
        value = data.finite(row.get(key))
        text = "-" if value is None else f"{value:.3f}" if key == "latency_ms" else f"{value:.4g}"
        lo, hi = data.finite(row.get("latency_low_ms")), data.finite(row.get("latency_high_ms"))
        cell.metric(analysis.metric_label(key, study), text,
                    help=f"interval {lo:.3f}-{hi:.3f} ms" if key == "latency_ms" and lo is not None
                    and hi is not None else None)
    try:
        arch_yaml = data.arch_yaml_bytes(study, row)
    except DesignspaceError as err:
        st.info(str(err))
        return
    stages, blocks, dot = arch_tables(arch_yaml)
    t1, t2, t3, t4, t5 = st.tabs(["Stages", "Blocks", "Diagram", "Latency context", "Downloads"])
    with t1:
        st.table(stages.set_index("part"))
    with t2:
        st.plotly_chart(figures.blocks_figure(blocks), key="blocks")
    with t3:
        st.graphviz_chart(dot)
    with t4:
        st.table(analysis.context_table(study, row))
    with t5:
        downloads_ui(study, row, arch_yaml)


def downloads_ui(study: data.Study, row: pd.Series, arch_yaml: bytes) -> None:
    fp = row.get("fingerprint") or f"trial{row['number']}"
    st.download_button("Arch YAML", arch_yaml, file_name=f"{fp}.yaml", mime="application/x-yaml", key="dl_arch")
    st.download_button("trials.csv", data.trials_csv_bytes(study), file_name=f"{study.name}-trials.csv",
                       mime="text/csv", key="dl_csv")
    if st.button("Build the ONNX model", key="build_onnx", help="exports the network (random weights) with torch"):
        st.session_state["onnx_for"] = fp
    if st.session_state.get("onnx_for") == fp:
        with st.spinner("Exporting to ONNX..."):
            model = onnx_model(arch_yaml)
        st.download_button("ONNX model", model, file_name=f"{fp}.onnx", mime="application/octet-stream",
                           key="dl_onnx")


def compare_page(study: data.Study, limits: dict[str, float]) -> None:
    front = study.trials.loc[analysis.study_front(study, limits), "number"].tolist()
    numbers = compare_ui(study, front)
    if len(numbers) < 2:
        st.info("Pick two or more trials to compare them side by side.")
        return
    mixes = block_mixes(study, study_key(study))
    st.dataframe(analysis.compare_table(study, numbers, mixes), key="compare_table")
    stages: dict[str, pd.DataFrame] = {}
    for n in numbers:
        row = study.trials[study.trials["number"] == n].iloc[0]
        try:
            stages[f"trial {n}"] = arch_tables(data.arch_yaml_bytes(study, row))[0]
        except DesignspaceError as err:
            st.info(str(err))
    if stages:
        quantity = st.radio("Per part", ("params_m", "macs_g"), horizontal=True, key="compare_quantity",
                            format_func=analysis.metric_label)
        st.plotly_chart(figures.compare_figure(stages, str(quantity)), key="compare_fig")
        cols = st.columns(len(stages))
        for col, (label, table) in zip(cols, stages.items(), strict=True):
            col.markdown(f"**{label}**")
            col.dataframe(table[["part", "width", "depth", "blocks"]], hide_index=True)


def progress_page(study: data.Study, limits: dict[str, float]) -> None:
    s = study.summary
    cells = st.columns(5)
    for cell, (label, key) in zip(cells, [("complete", "complete"), ("feasible", "feasible"),
                                          ("infeasible", "infeasible"), ("Pareto size", "pareto_size"),
                                          ("hypervolume (summary)", "hypervolume")], strict=True):
        value = s.get(key)
        cell.metric(label, f"{value:.4g}" if isinstance(value, float) else str(value if value is not None else "-"))
    if s.get("broken_budgets"):
        st.caption("Budgets broken: " + ", ".join(f"{analysis.metric_label(k, study)} by {v} trials"
                                                  for k, v in s["broken_budgets"].items()))
    hist = history(study, study_key(study), limits)
    if hist.empty:
        st.info("No trials yet.")
        return
    st.plotly_chart(figures.history_figure(hist, study.objectives, study), key="history")
    curves = figures.learning_curves(study)  # --objective trained: validation top-1 per epoch
    if not curves.empty:
        st.subheader("Learning curves")
        classes = (study.settings.get("trained") or {}).get("classes")
        st.plotly_chart(figures.learning_curves_figure(curves, 100 / len(classes) if classes else None),
                        key="learning_curves")


def zoo_page(root: str) -> None:
    st.subheader("Published models")
    st.caption("Our analytic counts beside the papers' figures (params M, MACs G, top-1 %, latencies in ms by "
               "device); diff % = ours / paper - 1.")
    st.dataframe(zoo_table(), hide_index=True, key="zoo_table")
    st.subheader("Device profiles")
    st.caption("Latency predictions carry the profile fit's leave-one-out error (mean and max, in %).")
    st.dataframe(device_table(), hide_index=True, key="device_table")
    c1, c2 = st.columns(2)
    device = c1.selectbox("Predict on device", analysis.device_names(), key="predict_device")
    model = c2.selectbox("Zoo model", zoo_table()["name"].tolist(), key="predict_model")
    if device and model:
        p = analysis.device_prediction(str(device), str(model))
        st.write(f"{model} on {device}: {p['ms']:.3f} ms predicted, "
                 + (f"no interval: {p['refusal']}" if p["refusal"] else
                    f"90% interval {p['low_ms']:.3f}-{p['high_ms']:.3f} ms")
                 + (f" (outside the fitted range: {', '.join(map(str, p['outside']))})" if p["outside"] else ""))


@st.cache_resource(show_spinner=False, max_entries=4)  # a read-only result: shared, not copied on every rerun
def space_analysis(kind: str, name: str, root: str, device: str, samples: int, seed: int) -> Any:
    from designspace.app import space_analysis as sa

    return sa.run_analysis(kind, name, root, device=device, samples=samples, seed=seed)


def analysis_page(root: str) -> None:
    from designspace.app import space_analysis as sa

    st.subheader("Analysis: what a space is like on a device")
    c1, c2, c3, c4, c5 = st.columns([1, 2, 1, 1, 1])
    kind = str(c1.radio("Analyze", ("space", "study"), key="an_kind"))
    names = sa.space_names() if kind == "space" else data.list_studies(root)
    if not names:
        st.info(f"No studies in {root} yet: analyze a space, or run a search first.")
        return
    name = str(c2.selectbox("Space" if kind == "space" else "Study", names, key="an_name"))
    devices = sa.device_names()
    device = str(c3.selectbox("Device", devices, index=devices.index("iphone13") if "iphone13" in devices else 0,
                              key="an_device"))
    samples = int(c4.number_input("Samples", 20, 5000, 300, step=100, key="an_samples", disabled=kind == "study"))
    seed = int(c5.number_input("Seed", 0, 10_000, 0, key="an_seed"))
    if st.button("Analyze", key="an_run", type="primary"):  # sampling and predicting takes seconds: on request only
        st.session_state["an_request"] = (kind, name, device, samples, seed)
    request = st.session_state.get("an_request")
    if request is None:
        st.info("Choose a space or a study and a device, then press Analyze (a first analysis of a space runs each "
                "of its components once: seconds to a minute).")
        return
    kind, name, device, samples, seed = request
    with st.spinner(f"sampling {name} and predicting on {device} ..."):
        result = space_analysis(kind, name, root, device, samples, seed)
    st.caption(f"{result.samples.description}; latency on {device} predicted by its cost model (no measurement).")
    st.markdown("**Which block type in which stage is fastest per MAC** (median, quartiles as error bars)")
    st.plotly_chart(sa.block_cost_figure(result), key="an_blocks")
    targets = {t.label: t.name for t in result.samples.targets}
    label = str(st.selectbox("Importance for", list(targets), key="an_target"))
    st.plotly_chart(sa.importance_figure(result, targets[label]), key="an_importance")
    if result.options:
        params = list(result.options)
        default = next((i for i, p in enumerate(params) if p.endswith(".type") and "segments" in p), 0)
        param = str(st.selectbox("Options of", params, index=default, key="an_param"))
        st.plotly_chart(sa.edf_figure(result, param), key="an_edf")


# ----------------------------------------------------------------------------------------------- main
def main() -> None:
    page = str(st.session_state.get("page", PAGES[0]))  # the radio's value from the last run: the tab's title
    st.set_page_config(page_title=f"designspace: {TITLES.get(page, page)}", layout="wide")
    page = page_ui()
    st.title(f"designspace: {TITLES.get(page, page)}")
    root = str(data.default_results_dir())
    try:
        if page == "Zoo":
            zoo_page(root)
            return
        if page == "Analysis":
            analysis_page(root)
            return
        studies = data.list_studies(root)
        kind, name, storage = source_ui(studies, list(allowed_storages()))
        refresh = int(st.session_state.get("refresh_count", 0))
        held: tuple[int, int] = (0, 0)
        if kind == URL:
            if not name:
                st.info("Give the study name in the sidebar.")
                return
            study = load_storage_study(root, storage, name, refresh)
        elif not studies:
            st.info(f"No studies in {root} yet. Run a search first, e.g. `designspace search tiny --trials 30`, "
                    "or point DESIGNSPACE_RESULTS at a results folder.")
            return
        else:
            token = data.snapshot_token(root, name)
            held = st.session_state.setdefault("tokens", {}).setdefault(name, token)
            study = load_study(root, name, held, refresh)
        for note in study.notes:
            st.info(note)
        if refresh_ui(study, kind == FOLDER and data.snapshot_token(root, name) != held):
            st.session_state["refresh_count"] = refresh + 1
            if kind == FOLDER:
                st.session_state["tokens"][name] = data.snapshot_token(root, name)
            st.rerun()
        limits = budgets_ui(study)
        {"Trade-offs": tradeoffs_page, "Compare": compare_page, "Progress": progress_page}[page](study, limits)
    except DesignspaceError as err:
        st.error(str(err))
    except Exception as err:  # never a traceback in the page
        st.error(f"Something went wrong: {type(err).__name__}: {err}. Press Refresh, or check the study's files.")


if __name__ == "__main__":
    main()
