"""One trial of a search: the sampler's values decoded into an Arch, counted, checked against the budgets
(cheap ones first), measured or predicted, and every objective computed; everything recorded on the trial
(``ds`` user attribute) for the results files."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from designspace.arch import Arch
from designspace.evaluate.cache import Cache, number_problem, results_dir
from designspace.evaluate.sources import LatencySource, MeasurementError, latency_source
from designspace.results import ARCHS
from designspace.safe_files import atomic_write
from designspace.search.config import SearchConfig
from designspace.search.objectives import Objective, load_user_function
from designspace.space import Budget

__all__ = ["Failed", "TrialEvaluator"]

REJECTED = 1e9  # the constraint value of a rejected (invalid) point
#: estimates computed from the Arch alone in microseconds to a millisecond (counts, the top-1 predictor): never
#: cached (a lookup costs more, and the predictor's cached values would outlive a regenerated model)
ANALYTIC = ("params", "macs", "log10_params", "log10_macs", "top1")


class Failed(Exception):
    """A candidate that could not be evaluated (the trial is FAIL with the reason, and counts)."""


class TrialEvaluator:
    """Turns a trial's values into objective values, recording everything on the trial."""

    def __init__(self, cfg: SearchConfig, folder: Path) -> None:
        self.cfg = cfg
        self.folder = folder
        self.cache = Cache(results_dir() / "cache.sqlite" if cfg.results is None else cfg.results / "cache.sqlite")
        self.user = {o.arg: load_user_function(o.arg) for o in cfg.objectives if o.kind == "user"}
        self.slow_objectives = any(o.kind == "user" or (o.kind == "estimate" and o.arg not in ANALYTIC)
                                   for o in cfg.objectives)
        self.needs_latency = cfg.uses_latency
        # where each trial's latency comes from (measured, the table, a device's cost model); an unknown device is
        # the caller's error, before any trial
        self.latency: LatencySource | None = latency_source(
            cfg.latency, device=cfg.device, runtime=cfg.runtime, threads=cfg.threads, batch=cfg.batch,
            protocol=cfg.protocol, cache=self.cache) if self.needs_latency else None
        self.trainer: Any = None  # --objective trained: each feasible candidate trains (search/trained.py)
        if cfg.trained is not None:
            from designspace.search.trained import TrialTrainer

            self.trainer = TrialTrainer(cfg.trained, folder, seed=cfg.seed, n_objectives=len(cfg.objectives),
                                        progress=cfg.progress, failed=Failed, objectives=cfg.objectives)
            self.slow_objectives = True

    def _estimate(self, arch: Arch, name: str) -> float:
        from designspace import __version__
        from designspace.evaluate.accuracy.estimate import estimate
        from designspace.evaluate.identity import module_identity

        if name in ANALYTIC:  # microseconds: a cache lookup and write would cost more than the count
            return estimate(arch, name, seed=self.cfg.seed)
        code = "+".join(module_identity(m) for m in ("designspace.evaluate.accuracy.proxies",
                                                      "designspace.evaluate.accuracy.estimate"))
        context = f"designspace {__version__}|proxies {code}|seed {self.cfg.seed}"
        hit = self.cache.get(arch, f"estimate:{name}", context, check=lambda d: number_problem(d, finite=("value",)))
        if hit is not None:
            return float(hit["value"])
        value = estimate(arch, name, seed=self.cfg.seed)
        self.cache.put(arch, f"estimate:{name}", context, {"value": value})
        return value

    def __call__(self, trial: Any) -> list[float]:
        import optuna

        from designspace.evaluate.counts.analytic import count

        cfg = self.cfg
        began = time.perf_counter()
        values = cfg.space.suggest(trial)
        # "counted" is set only where the evaluation itself fails (Failed): such a FAIL counts towards the
        # requested trials, while a FAIL left by a killed worker does not (it is re-run)
        ds: dict[str, Any] = {}
        decoded = cfg.space.decode(values, cfg.invalid)
        ds["repairs"] = list(decoded.repairs)
        if decoded.arch is None:
            ds.update(reason=f"rejected: {decoded.reason}", constraints=[REJECTED] * len(cfg.budgets),
                      duration_s=round(time.perf_counter() - began, 3))
            self._record(trial, ds, cfg.budgets)
            raise optuna.TrialPruned(ds["reason"])
        arch = decoded.arch
        path = self.folder / ARCHS / f"{arch.fingerprint}.yaml"
        if path.is_symlink() or not path.exists():  # a planted link is replaced, never written through
            atomic_write(path, arch.to_yaml())
        counts = count(arch)
        metrics: dict[str, Any] = {"params": counts.params, "macs": counts.macs, "params_m": counts.params_m,
                                   "macs_g": counts.macs_g}  # exact integers beside the scaled figures
        ds.update(fingerprint=arch.fingerprint, arch=str(path.relative_to(self.folder)), metrics=metrics)
        measured = {"params_m": counts.params_m, "macs_g": counts.macs_g}
        cheap_ok = all(measured[b.metric] <= b.limit for b in cfg.budgets if b.metric in measured)
        est = None  # the trial's one latency figure (LatencyEstimate): what the budget compares and the columns hold
        if cheap_ok and self.latency is not None:
            try:
                got = self.latency.estimate(arch)
            except MeasurementError as err:  # this network's failure is its trial's, not the search's
                ds.update(reason=f"evaluation failed: {err}", counted=True)
                trial.set_user_attr("ds", ds)
                raise Failed(ds["reason"]) from err
            est = got.estimate
            metrics.update(est.columns())
            metrics.update(got.columns)
            if got.context is not None:
                ds["context"] = got.context
        if est is not None:
            measured["latency_ms"] = est.value_ms
        constraints, broken = [], []
        for b in cfg.budgets:
            value = measured.get(b.metric)
            if value is None:  # not measured: a cheaper budget already broke
                constraints.append(REJECTED)
                continue
            constraints.append(value - b.limit)
            if value > b.limit:
                on = f" on {est.device}, {est.source}" if b.metric == "latency_ms" and est is not None else ""
                broken.append(f"{b.metric} {value:.4g} > {b.limit:g} (+{(value / b.limit - 1):.1%}){on}")
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
                from designspace.evaluate.accuracy.proxies import ProxyCollapsed

                try:
                    metrics[o.name] = self._estimate(arch, o.arg)
                    if o.arg == "top1":  # the prediction's interval and extrapolation flag go with it
                        from designspace.evaluate.accuracy.top1 import predict_top1

                        t1 = predict_top1(arch)
                        metrics.update(top1_std=t1.std, top1_lo=t1.lo, top1_hi=t1.hi,
                                       top1_extrapolated=t1.extrapolated)
                except ProxyCollapsed as err:  # this candidate's estimate is undefined: its trial fails, not the search
                    ds.update(reason=f"estimate {o.arg}: {err}", counted=True)
                    trial.set_user_attr("ds", ds)
                    raise Failed(ds["reason"]) from err
                out.append(metrics[o.name])
            elif o.kind == "trained":  # after the budgets: only a feasible candidate trains
                out.append(self.trainer(trial, arch, ds, bool(ds["feasible"])))
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
            raise Failed(ds["reason"]) from err
        if not math.isfinite(value):
            ds.update(reason=f"objective {o.arg} returned {value}", counted=True)
            trial.set_user_attr("ds", ds)
            raise Failed(ds["reason"])
        ds["metrics"][o.name] = value
        return value
