"""``run_search``: an Optuna study over a Space, under budgets, resumable, with many workers.

One trial: the sampler proposes every flat parameter of the space; the values decode into an Arch (repaired
or rejected by the space's rule; a rejected trial is PRUNED with its reason); the Arch is counted; budgets
on parameters and MACs are checked first, and a trial that breaks one is not measured further (its latency
objective is +inf); otherwise latency is measured (or predicted on the device) and the accuracy estimates
and user objectives computed. Budgets are Optuna constraints (``value - limit``, feasible iff all <= 0) read
by the sampler's ``constraints_func``; every trial records which budget it broke and by how much.

Trial counts: ``trials`` is the study's total (rerunning the command resumes to it); ``more`` runs that many
trials in this process (several workers sum up). Trials that fail to evaluate count; trials a dead worker
left behind are failed and re-run (heartbeats, checked when a worker starts, before each trial and at its end;
at once for an SQLite study, whose single writer holds a lock). A worker whose ``trials`` target is reached only
by counting trials that other workers are running waits until they finish or their heartbeat stops (then
runs the retry itself), so that the study reaches its target and every worker's results show it finished.
Ctrl-C fails the running trial, queues it again, writes the results and stops.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

from designspace import interrupts
from designspace.evaluate.cache import results_dir
from designspace.exceptions import DesignspaceError
from designspace.results import ARCHS, write_results
from designspace.safe_files import make_dirs, refuse_links
from designspace.search.config import SearchConfig, SearchReport, check_study_name
from designspace.search.storage import StudyStorage, fail_stale, heartbeat, open_storage, storage_fault
from designspace.search.trial import Failed, TrialEvaluator
from designspace.space import Space, match

__all__ = ["SearchConfig", "SearchReport", "check_study_name", "run_search"]  # the first three: search.config

log = logging.getLogger(__name__)

_WRITE_EVERY_S = 5.0
#: the study folder's own files besides results.py's: checked for planted links before the storage opens them
STUDY_FILES = ("study.db", "study.db-wal", "study.db-shm", "study.db.lock", "storage.txt", ARCHS)


def _settings(cfg: SearchConfig) -> dict[str, Any]:
    space_id = hashlib.sha256(json.dumps([(p.name, p.dist.describe()) for p in cfg.space.params]).encode())
    return {
        "space": cfg.space.name, "space_file": cfg.space.doc.file, "space_params": space_id.hexdigest()[:16],
        "objectives": [dataclasses.asdict(o) for o in cfg.objectives],
        "budgets": [{"metric": b.metric, "limit": b.limit} for b in cfg.budgets],
        "device": cfg.device or None, "invalid": cfg.invalid,
        "context": {"runtime": cfg.runtime, "threads": cfg.threads, "batch": cfg.batch},
        "trained": cfg.trained.describe() if cfg.trained is not None else None,  # --objective trained
        "latency": cfg.latency,  # "measure" (every trial), "table" or "table-measured" (the front re-measured)
    }


def _check_settings(study: Any, settings: dict[str, Any], name: str) -> None:
    stored = study.user_attrs.get("designspace")
    if stored is None:
        study.set_user_attr("designspace", settings)
        return
    from designspace.search.objectives import upgrade_objective

    if stored.get("objectives") != settings["objectives"] and [upgrade_objective(o) for o in
                                                               stored.get("objectives", [])] == settings["objectives"]:
        # a study written before the objectives were renamed (accuracy -> log10_macs): the same objectives
        settings["objectives"] = stored["objectives"]
    old, new = stored.get("trained") or {}, settings.get("trained") or {}
    if (len(settings["objectives"]) > 1 and old.get("pruner") in ("hyperband", "sha", "median")
            and new.get("pruner") == "none" and {**old, "pruner": "none"} == new):
        # a multi-objective study written before --pruner pareto: Optuna's pruner was named but off (no pruning)
        settings["trained"] = old
    for key in ("space_params", "objectives", "budgets", "device", "context", "invalid", "trained"):
        if stored.get(key) != settings.get(key):
            raise DesignspaceError(f"study {name!r} exists with other settings ({key}: {stored.get(key)!r}, now "
                                   f"{settings.get(key)!r}) (fix: run with the same settings to resume it, or pass "
                                   "--study NEW_NAME for a new study)")
    if stored.get("device") and settings["latency"] == "measure":
        # a device study written before --latency beside a device was refused: its word did nothing, the trials'
        # latency was the device's prediction, so it resumes without the word
        settings["latency"] = stored.get("latency", "measure")
    if stored.get("latency", "measure") != settings["latency"]:  # studies from before --latency measured
        raise DesignspaceError(f"study {name!r} exists with --latency {stored.get('latency', 'measure')}, now "
                               f"{settings['latency']} (fix: run with the same --latency to resume it, or pass "
                               "--study NEW_NAME for a new study)")


def _sampler(name: str, seed: int) -> Any:
    """The samplers read each trial's constraints (``Trial.set_constraint``, one per budget)."""
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(multivariate=True, constant_liar=True, seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise DesignspaceError(f"unknown sampler {name!r} (fix: use tpe, nsga2, gp or random)")


class _Surplus(Exception):
    """A trial started by one worker after others had already started the study's target."""


def _counted(trials: list[Any]) -> int:
    """Trials that count towards the requested number: finished ones (a failed evaluation included) and those
    running in other workers; failed leftovers of dead workers do not (they are re-run)."""
    n = 0
    for t in trials:
        state = t.state.name
        if state in ("COMPLETE", "PRUNED", "RUNNING") or (state == "FAIL" and t.user_attrs.get("ds", {}).get(
                "counted")):
            n += 1
    return n


def _prepare(cfg: SearchConfig) -> tuple[Any, StudyStorage, Path, dict[str, Any]]:
    import optuna

    from designspace.search.optuna_compat import check_version

    check_version()  # outside the tested range the storage internals may have moved: say so, do not corrupt
    folder = (cfg.results or results_dir()) / cfg.name
    for name in STUDY_FILES:  # never written through a link planted in a copied or shared study folder
        refuse_links(folder / name, folder.parent)
    store = open_storage(cfg.storage, folder, cfg.name)
    try:
        make_dirs(folder / ARCHS, folder.parent)
        settings = _settings(cfg)
        directions: list[Any] = [o.direction for o in cfg.objectives]
        try:
            study = optuna.load_study(study_name=cfg.name, storage=store.storage)
            existing = len(study.trials)
        except KeyError:
            study, existing = None, 0
        seed = cfg.seed + existing + (0 if store.exclusive else os.getpid())  # no repeated draws on resume
        sampler = _sampler(cfg.sampler, seed)
        if study is None:
            study = optuna.create_study(study_name=cfg.name, storage=store.storage, directions=directions,
                                        sampler=sampler, load_if_exists=True)
        else:
            if [d.name.lower() for d in study.directions] != directions:
                raise DesignspaceError(f"study {cfg.name!r} exists with other objective directions (fix: pass "
                                       "--study NEW_NAME for a new study)")
            study.sampler = sampler
        _check_settings(study, settings, cfg.name)
        names = [o.name for o in cfg.objectives]
        if study.metric_names != names:  # optuna-dashboard and every Optuna tool show them
            with warnings.catch_warnings():  # experimental since Optuna 3.2, unchanged since; pinned range
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(names)
        if store.exclusive:  # the lock holder is the only writer: RUNNING trials are a dead run's; re-run them
            for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
                failed = study.tell(t.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
                store.storage.get_heartbeat_stale_trial_callback()(study, failed)
        if not study.trials:
            _enqueue_zoo(cfg.space, study)
        return study, store, folder, settings
    except BaseException:
        store.close(quiet=True)
        raise


def _enqueue_zoo(space: Space, study: Any) -> None:
    """The published models that are points of the space are the first trials."""
    from designspace import zoo

    for name in zoo.names():
        m = match(space, zoo.load(name))
        if m.ok:
            study.enqueue_trial(m.values, user_attrs={"zoo": name}, skip_if_exists=True)


def run_search(cfg: SearchConfig) -> SearchReport:
    """Runs (or resumes, or joins) the study described by ``cfg`` (see the module docstring).

    Raises:
        DesignspaceError: bad storage, a study with other settings, a bad objective or device.
        KeyboardInterrupt: after the interrupted trial was queued again and the results written.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # failed trials are reported by designspace itself
    if cfg.trials is None and cfg.more is None and cfg.timeout_s is None:
        raise DesignspaceError("say how long to search (fix: --trials N, --trials +N or --timeout SECONDS)")
    folder = (cfg.results or results_dir()) / cfg.name
    store: StudyStorage | None = None
    try:
        study, store, folder, settings = _prepare(cfg)
        try:
            report = _loop(cfg, study, store, folder, settings, TrialEvaluator(cfg, folder))
        except BaseException:
            store.close(quiet=True)  # the first error is the one to tell
            raise
        store.close()
        return report
    except (DesignspaceError, KeyboardInterrupt):
        raise
    except Exception as err:  # a full disk, a read-only folder, a damaged database: one line, not a traceback
        fault = storage_fault(err, store, folder)
        if fault is None:
            raise
        raise fault from None


def _loop(cfg: SearchConfig, study: Any, store: StudyStorage, folder: Path, settings: dict[str, Any],
          evaluate: TrialEvaluator) -> SearchReport:
    import optuna

    start, ran, last_write, stopped = time.monotonic(), 0, 0.0, "target"
    every = _WRITE_EVERY_S
    current: list[int] = []
    surplus: list[int] = []  # trials this worker started past the target (failed at once, not counted)

    def objective(trial: Any) -> list[float]:
        current.append(trial.number)
        if cfg.trials is not None and not store.exclusive:
            # workers check the count, then start a trial: two may start the last one. The trials' numbers
            # decide (the database gives them out one by one): one with the target counted before it is surplus.
            # A waiting trial numbered before it (a retry queued meanwhile) will be run: it is ahead too
            before = [t for t in study.get_trials(deepcopy=False) if t.number < trial.number]
            ahead = _counted(before) + sum(t.state.name == "WAITING" for t in before)
            if ahead >= cfg.trials:
                surplus.append(trial.number)
                raise _Surplus(trial.number)
        return evaluate(trial)

    fail_stale(study)  # a dead worker's trial: failed and queued again before anything is counted
    bar = _progress(cfg, _counted(study.get_trials(deepcopy=False)))
    waiting = False
    try:
        while True:
            interrupts.check()  # a Ctrl-C swallowed during the last trial stops the search here
            trials = study.get_trials(deepcopy=False)
            if cfg.trials is not None and _counted(trials) >= cfg.trials:
                running = sum(t.state.name == "RUNNING" for t in trials)
                timed_out = cfg.timeout_s is not None and time.monotonic() - start >= cfg.timeout_s
                if running and not store.exclusive and not timed_out:
                    # the target is reached by counting trials other workers run; one of them may be dead: wait
                    # until each finishes, or is failed by its heartbeat and queued again (then run here)
                    if not waiting:
                        beat, grace = heartbeat()
                        log.info("waiting for %d trials running in other workers (a dead worker's trial is re-run "
                                 "after %d s without a heartbeat)", running, grace)
                        waiting = True
                    time.sleep(min(1.0, beat / 2))
                    fail_stale(study)
                    continue
                stopped = "timeout" if timed_out and running else "target"
                break
            waiting = False
            if cfg.more is not None and ran >= cfg.more:
                stopped = "more"
                break
            if cfg.timeout_s is not None and time.monotonic() - start >= cfg.timeout_s:
                stopped = "timeout"
                break
            current.clear()
            study.optimize(objective, n_trials=1, catch=(Failed, _Surplus), gc_after_trial=False)
            if current and current[-1] in surplus:
                continue  # not a trial of this study's target: FAIL, not counted, not run again
            ran += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(_postfix(study, settings), refresh=False)
            if time.monotonic() - last_write > every:
                began = time.monotonic()
                write_results(study.get_trials(deepcopy=False), settings, folder)
                last_write = time.monotonic()
                # at most a tenth of the time on the snapshot, however large the study grows
                every = max(_WRITE_EVERY_S, 10 * (last_write - began))
    except KeyboardInterrupt:
        stopped = "interrupted"
        if current:  # Optuna failed the running trial; queue it again so that no point is lost
            t = study.trials[current[-1]] if current[-1] < len(study.trials) else None
            if t is not None and t.state == optuna.trial.TrialState.FAIL:
                study.enqueue_trial(t.params, user_attrs={k: v for k, v in t.user_attrs.items() if k == "zoo"})
    finally:
        if bar is not None:
            bar.close()
    if stopped != "interrupted":
        fail_stale(study)  # at the end too: what this worker writes shows no dead worker's trial as running
    front: dict[str, dict[str, float]] = {}
    source = evaluate.latency
    if source is not None and source.measures_front and stopped != "interrupted":
        front = _remeasure_front(cfg, study, settings, source)
    summary = write_results(study.get_trials(deepcopy=False), settings, folder, front.get("remeasured"),
                            front.get("table_all_measured"))
    report = SearchReport(cfg.name, folder, summary, ran, stopped)
    if stopped == "interrupted":
        raise KeyboardInterrupt(report)
    return report


def _remeasure_front(cfg: SearchConfig, study: Any, settings: dict[str, Any], source: Any
                     ) -> dict[str, dict[str, float]]:
    """Measures the feasible Pareto front's networks whole after a table search
    (:func:`designspace.table_build.remeasure_front`: two passes, their entries measured first, the networks
    added to the table's term).

    Returns:
        ``{"remeasured": {trial: ms}, "table_all_measured": {trial: ms}}`` (trial numbers as text), also kept in
        the study's user attributes of those names, so that a resumed study does not measure them again.
    """
    from designspace.arch import Arch
    from designspace.results import pareto_front, study_rows
    from designspace.table_build import remeasure_front

    done: dict[str, float] = dict(study.user_attrs.get("remeasured", {}))
    final: dict[str, float] = dict(study.user_attrs.get("table_all_measured", {}))
    folder = (cfg.results or results_dir()) / cfg.name
    keys, archs = [], []
    for row in pareto_front(study_rows(study.get_trials(deepcopy=False), settings), settings["objectives"]):
        key = str(row["number"])
        if key in done or not row.get("arch"):
            continue
        keys.append(key)
        archs.append(Arch.from_file(folder / str(row["arch"])))  # the Arch each trial recorded
    for key, figures in zip(keys, remeasure_front(archs, source), strict=True):
        if figures.measured_ms is not None:
            done[key] = figures.measured_ms
        if figures.table_ms is not None:
            final[key] = figures.table_ms
    study.set_user_attr("remeasured", done)
    study.set_user_attr("table_all_measured", final)
    return {"remeasured": done, "table_all_measured": final}


def _progress(cfg: SearchConfig, counted: int) -> Any:
    if not cfg.progress:
        return None
    from tqdm import tqdm

    total = cfg.trials if cfg.trials is not None else cfg.more
    initial = counted if cfg.trials is not None else 0
    return tqdm(total=total, initial=min(initial, total or initial), desc=f"search {cfg.name}", unit="trial",
                dynamic_ncols=True)


def _postfix(study: Any, settings: dict[str, Any]) -> str:
    feasible = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"
                and t.user_attrs.get("ds", {}).get("feasible")]
    if not feasible:
        return "feasible 0"
    first = settings["objectives"][0]
    pick = max if first["direction"] == "maximize" else min
    best = pick(t.values[0] for t in feasible)
    from designspace.evaluate.accuracy.estimate import description

    # a count stand-in says what it is ("log10 MACs, a size proxy for accuracy: docs/proxies.md")
    what = description(first["arg"]) if first.get("kind") == "estimate" else ""
    return f"feasible {len(feasible)}, best {first['name']} {best:.4g}" + (f" ({what})" if "proxy for" in what else "")
