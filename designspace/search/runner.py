"""``run_search``: an Optuna study over a Space, under budgets, resumable, with many workers.

One trial: the sampler proposes every flat parameter of the space; the values decode into an Arch (repaired
or rejected by the space's rule; a rejected trial is PRUNED with its reason); the Arch is counted; budgets
on parameters and MACs are checked first, and a trial that breaks one is not measured further (its latency
objective is +inf); otherwise latency is measured (or predicted on the device) and the accuracy estimates
and user objectives computed. Budgets are Optuna constraints (``value - limit``, feasible iff all <= 0) read
by the sampler's ``constraints_func``; every trial records which budget it broke and by how much.

Trial counts: ``trials`` is the study's total (rerunning the command resumes to it); ``more`` runs that many
trials in this process (several workers sum up). Trials that fail to evaluate count; trials a dead worker
left behind are failed and re-run (heartbeats; at once for an SQLite study, whose single writer holds a
lock). Ctrl-C fails the running trial, queues it again, writes the results and stops.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from designspace.arch import Arch
from designspace.evaluate.cache import Cache, results_dir
from designspace.evaluate.latency import Protocol
from designspace.exceptions import DesignspaceError
from designspace.results import ARCHS, write_results
from designspace.search.objectives import Objective, load_user_function
from designspace.search.storage import StudyStorage, open_storage
from designspace.space import Budget, Space, match

__all__ = ["SearchConfig", "SearchReport", "check_study_name", "run_search"]

_REJECTED = 1e9  # the constraint value of a rejected (invalid) point
_WRITE_EVERY_S = 5.0
_ANALYTIC = ("params", "macs")  # estimates computed from the analytic counts


@dataclass(frozen=True)
class SearchConfig:
    """A search's settings (the CLI fills them from the command line and the space's ``search`` section).

    Attributes:
        space: the space.
        objectives: the objectives, in order.
        budgets: upper bounds.
        device: the device profile latency objectives and budgets refer to (``None``: measured here).
        trials: the study's total number of trials (``None`` with ``more`` or ``timeout_s``).
        more: trials to run in this process.
        timeout_s: stop starting trials after this many seconds.
        sampler: ``tpe`` (multivariate), ``nsga2``, ``gp`` or ``random``.
        study: the study name (default: the space's name).
        storage: an SQLAlchemy URL; ``None`` for SQLite under ``results/<study>/``.
        seed: sampler seed.
        invalid: ``repair`` or ``reject`` invalid combinations.
        runtime, threads, batch: the local latency context (a device profile fixes its own).
        protocol: the latency protocol.
        results: the results folder (default ``results/``).
        progress: show a progress bar.
    """

    space: Space
    objectives: tuple[Objective, ...]
    budgets: tuple[Budget, ...] = ()
    device: str | None = None
    trials: int | None = None
    more: int | None = None
    timeout_s: float | None = None
    sampler: str = "tpe"
    study: str = ""
    storage: str | None = None
    seed: int = 0
    invalid: str = "repair"
    runtime: str = "onnxruntime"
    threads: int = 1
    batch: int = 1
    protocol: Protocol = field(default_factory=Protocol)
    results: Path | None = None
    progress: bool = True

    @property
    def name(self) -> str:
        """The study name."""
        return self.study or self.space.name

    def __post_init__(self) -> None:
        check_study_name(self.name)


#: a study name is one folder name under the results folder: no separators, no '..', no hidden names
_STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def check_study_name(name: str) -> str:
    """``name`` if it is a valid study name (letters, digits, ``.``, ``_``, ``-``; 1-100 characters, not
    starting with a dot or dash): the study's folder is ``results/<name>/`` and never outside it.

    Raises:
        DesignspaceError: any other name, with the fix.
    """
    if not isinstance(name, str) or not _STUDY_NAME.match(name) or ".." in name:
        raise DesignspaceError(f"the study name {str(name)[:60]!r} is not a folder name under the results folder "
                               "(fix: letters, digits, '.', '_' and '-' only, e.g. --study mobile_v2)")
    return name


@dataclass
class SearchReport:
    """What a run did.

    Attributes:
        study: the study name.
        folder: ``results/<study>/``.
        summary: the results summary (``summary.json``).
        ran: trials run by this process.
        stopped: ``"target"``, ``"more"``, ``"timeout"`` or ``"interrupted"``.
    """

    study: str
    folder: Path
    summary: dict[str, Any]
    ran: int
    stopped: str


class _Failed(Exception):
    """A candidate that could not be evaluated (the trial is FAIL with the reason, and counts)."""


def _settings(cfg: SearchConfig) -> dict[str, Any]:
    space_id = hashlib.sha256(json.dumps([(p.name, p.dist.describe()) for p in cfg.space.params]).encode())
    return {
        "space": cfg.space.name, "space_file": cfg.space.doc.file, "space_params": space_id.hexdigest()[:16],
        "objectives": [dataclasses.asdict(o) for o in cfg.objectives],
        "budgets": [{"metric": b.metric, "limit": b.limit} for b in cfg.budgets],
        "device": cfg.device or None, "invalid": cfg.invalid,
        "context": {"runtime": cfg.runtime, "threads": cfg.threads, "batch": cfg.batch},
    }


def _check_settings(study: Any, settings: dict[str, Any], name: str) -> None:
    stored = study.user_attrs.get("designspace")
    if stored is None:
        study.set_user_attr("designspace", settings)
        return
    for key in ("space_params", "objectives", "budgets", "device", "context", "invalid"):
        if stored.get(key) != settings.get(key):
            raise DesignspaceError(f"study {name!r} exists with other settings ({key}: {stored.get(key)!r}, now "
                                   f"{settings.get(key)!r}) (fix: run with the same settings to resume it, or pass "
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


class _Evaluator:
    """Turns a trial's values into objective values, recording everything on the trial."""

    def __init__(self, cfg: SearchConfig, folder: Path) -> None:
        self.cfg = cfg
        self.folder = folder
        self.cache = Cache(results_dir() / "cache.sqlite" if cfg.results is None else cfg.results / "cache.sqlite")
        self.user = {o.arg: load_user_function(o.arg) for o in cfg.objectives if o.kind == "user"}
        self.slow_objectives = any(o.kind == "user" or (o.kind == "estimate" and o.arg not in _ANALYTIC)
                                   for o in cfg.objectives)
        self.needs_latency = any(o.kind == "latency" for o in cfg.objectives) or any(
            b.metric == "latency_ms" for b in cfg.budgets)
        if self.needs_latency and cfg.device not in (None, "", "local"):
            from designspace.evaluate.devices import load_device

            load_device(str(cfg.device))  # an unknown device is the caller's error, before any trial

    def _estimate(self, arch: Arch, name: str) -> float:
        from designspace import __version__
        from designspace.evaluate.estimate import estimate
        from designspace.evaluate.identity import module_identity

        if name in _ANALYTIC:  # microseconds: a cache lookup and write would cost more than the count
            return estimate(arch, name, seed=self.cfg.seed)
        code = "+".join(module_identity(m) for m in ("designspace.evaluate.proxies", "designspace.evaluate.estimate"))
        context = f"designspace {__version__}|proxies {code}|seed {self.cfg.seed}"
        hit = self.cache.get(arch, f"estimate:{name}", context)
        if hit is not None:
            return float(hit["value"])
        value = estimate(arch, name, seed=self.cfg.seed)
        self.cache.put(arch, f"estimate:{name}", context, {"value": value})
        return value

    def __call__(self, trial: Any) -> list[float]:
        import optuna

        from designspace.evaluate.counts import count
        from designspace.evaluate.evaluation import evaluate

        cfg = self.cfg
        began = time.perf_counter()
        values = cfg.space.suggest(trial)
        # "counted" is set only where the evaluation itself fails (_Failed): such a FAIL counts towards the
        # requested trials, while a FAIL left by a killed worker does not (it is re-run)
        ds: dict[str, Any] = {}
        decoded = cfg.space.decode(values, cfg.invalid)
        ds["repairs"] = list(decoded.repairs)
        if decoded.arch is None:
            ds.update(reason=f"rejected: {decoded.reason}", constraints=[_REJECTED] * len(cfg.budgets),
                      duration_s=round(time.perf_counter() - began, 3))
            self._record(trial, ds, cfg.budgets)
            raise optuna.TrialPruned(ds["reason"])
        arch = decoded.arch
        path = self.folder / ARCHS / f"{arch.fingerprint}.yaml"
        if not path.exists():
            path.write_text(arch.to_yaml(), encoding="utf-8")
        counts = count(arch)
        metrics: dict[str, Any] = {"params": counts.params, "macs": counts.macs, "params_m": counts.params_m,
                                   "macs_g": counts.macs_g}  # exact integers beside the scaled figures
        ds.update(fingerprint=arch.fingerprint, arch=str(path.relative_to(self.folder)), metrics=metrics)
        measured = {"params_m": counts.params_m, "macs_g": counts.macs_g}
        cheap_ok = all(measured[b.metric] <= b.limit for b in cfg.budgets if b.metric in measured)
        if cheap_ok and self.needs_latency:
            ev = evaluate(arch, device=cfg.device, runtime=cfg.runtime, threads=cfg.threads, batch=cfg.batch,
                          protocol=cfg.protocol, cache=self.cache)
            if ev.status != "ok" or ev.latency is None:
                ds.update(reason=f"evaluation failed: {ev.reason}", counted=True)
                trial.set_user_attr("ds", ds)
                raise _Failed(ds["reason"])
            measured["latency_ms"] = ev.latency.ms if ev.latency_ms is None else ev.latency_ms
            metrics.update(latency_ms=ev.latency_ms, latency_measured_ms=ev.latency.ms,
                           latency_flags=",".join(ev.latency.flags), latency_predicted=ev.prediction is not None)
            if ev.prediction is not None:
                metrics["latency_loo_error"] = ev.prediction.fit.loo_mean
            ds["context"] = dataclasses.asdict(ev.latency.context)
        constraints, broken = [], []
        for b in cfg.budgets:
            value = measured.get(b.metric)
            if value is None:  # not measured: a cheaper budget already broke
                constraints.append(_REJECTED)
                continue
            constraints.append(value - b.limit)
            if value > b.limit:
                broken.append(f"{b.metric} {value:.4g} > {b.limit:g} (+{(value / b.limit - 1):.1%})")
        ds.update(constraints=constraints, broken=broken, feasible=not broken and cheap_ok)
        if not cheap_ok:
            ds["reason"] = "latency not measured: " + "; ".join(broken)
        self._record(trial, ds, cfg.budgets, store=self.slow_objectives)
        out = []
        for o in cfg.objectives:
            if o.kind == "count":
                out.append(measured[o.arg])
            elif o.kind == "latency":
                out.append(measured.get("latency_ms", math.inf))
            elif o.kind == "estimate":
                metrics[o.name] = self._estimate(arch, o.arg)
                out.append(metrics[o.name])
            else:
                out.append(self._user(o, arch, ds, trial))
        ds["duration_s"] = round(time.perf_counter() - began, 3)  # sampling and evaluation, seconds
        trial.set_user_attr("ds", ds)  # again: the estimates and user objectives were added
        return out

    @staticmethod
    def _record(trial: Any, ds: dict[str, Any], budgets: tuple[Budget, ...], store: bool = True) -> None:
        """Stores the trial's constraints (one per budget; feasible iff all <= 0) and, with ``store``, its record
        (before slow objectives run, so that a trial that dies in one still says what it was)."""
        for b, c in zip(budgets, ds["constraints"], strict=True):
            trial.set_constraint(b.metric, c)
        if store:
            trial.set_user_attr("ds", ds)

    def _user(self, o: Objective, arch: Arch, ds: dict[str, Any], trial: Any) -> float:
        from designspace.network import Network

        try:
            value = float(self.user[o.arg](arch, Network(arch)))
        except Exception as err:  # the user's code: any failure is this trial's
            ds.update(reason=f"objective {o.arg} raised {type(err).__name__}: {err}", counted=True)
            trial.set_user_attr("ds", ds)
            raise _Failed(ds["reason"]) from err
        if not math.isfinite(value):
            ds.update(reason=f"objective {o.arg} returned {value}", counted=True)
            trial.set_user_attr("ds", ds)
            raise _Failed(ds["reason"])
        ds["metrics"][o.name] = value
        return value


def _prepare(cfg: SearchConfig) -> tuple[Any, StudyStorage, Path, dict[str, Any]]:
    import optuna

    from designspace.search.optuna_compat import check_version

    check_version()  # outside the tested range the storage internals may have moved: say so, do not corrupt
    folder = (cfg.results or results_dir()) / cfg.name
    store = open_storage(cfg.storage, folder, cfg.name)
    try:
        (folder / ARCHS).mkdir(exist_ok=True)
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
        store.close()
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
    study, store, folder, settings = _prepare(cfg)
    try:
        return _loop(cfg, study, store, folder, settings, _Evaluator(cfg, folder))
    finally:
        store.close()


def _loop(cfg: SearchConfig, study: Any, store: StudyStorage, folder: Path, settings: dict[str, Any],
          evaluate: _Evaluator) -> SearchReport:
    import optuna

    start, ran, last_write, stopped = time.monotonic(), 0, 0.0, "target"
    every = _WRITE_EVERY_S
    current: list[int] = []

    def objective(trial: Any) -> list[float]:
        current.append(trial.number)
        return evaluate(trial)

    bar = _progress(cfg, _counted(study.get_trials(deepcopy=False)))
    try:
        while True:
            trials = study.get_trials(deepcopy=False)
            if cfg.trials is not None and _counted(trials) >= cfg.trials:
                stopped = "target"
                break
            if cfg.more is not None and ran >= cfg.more:
                stopped = "more"
                break
            if cfg.timeout_s is not None and time.monotonic() - start >= cfg.timeout_s:
                stopped = "timeout"
                break
            current.clear()
            study.optimize(objective, n_trials=1, catch=(_Failed,), gc_after_trial=False)
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
    summary = write_results(study.get_trials(deepcopy=False), settings, folder)
    report = SearchReport(cfg.name, folder, summary, ran, stopped)
    if stopped == "interrupted":
        raise KeyboardInterrupt(report)
    return report


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
    return f"feasible {len(feasible)}, best {first['name']} {best:.4g}"
