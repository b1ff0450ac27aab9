"""Parameter importances by Optuna's evaluators, seeded: which flat parameters of a space explain a metric.

The networks become the trials of an in-memory Optuna study (their flat values, the space's distributions, the
metric as the value); :func:`optuna.importance.get_param_importances` then rates every parameter with

* ``fanova``: fANOVA (Hutter et al. 2014), the share of the metric's variance a parameter explains alone, from a
  random forest (``n_trees`` trees of depth ``max_depth``, seeded);
* ``ped_anova``: PED-ANOVA (Watanabe et al. 2023), how differently a parameter is distributed among the better half
  of the networks than among all (no randomness). Optuna's default looks at the best 10%, which asks what the very best
  share; there a parameter that splits the networks in two (a kernel size that doubles a stage's cost) pins every
  other parameter to its cheapest value too, and they all look alike. The better half asks what drives the metric.
  PED-ANOVA rates a numeric parameter from a Parzen density of its values, and can still rank a width grid above a
  binary choice that explains more of the variance: it answers which values the better networks hold, not how much
  of the variance a parameter explains, which is why the report ranks by the mean over the evaluators;
* ``mdi``: mean decrease in impurity of a seeded random forest.

The parameters rated are those that vary and shaped at least 20% of the networks (:func:`rated_params`).
Importances are normalized to sum to 1 per evaluator and are reproducible: the same networks and seed give the same
figures. fANOVA and MDI need scikit-learn (``pip install designspace[analysis]``); without it they are skipped with
that hint, PED-ANOVA still runs. Optuna is imported here only, when importances are asked for.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from designspace.analysis.samples import ParamInfo, SampleSet
from designspace.exceptions import DesignspaceError

__all__ = ["EVALUATORS", "MIN_ACTIVE", "importances", "rated_params"]

log = logging.getLogger(__name__)

#: evaluator names, in the order reports list them
EVALUATORS = ("fanova", "ped_anova", "mdi")
#: forest size for fANOVA and MDI: 32 trees of depth 8 rank the top four parameters of the kernel, tiny and
#: iformer_stage3 spaces as Optuna's default 64 trees of depth 64 do (500 networks of tiny: 1.8 s against 4.8 s;
#: 2,000 synthetic networks of 113 parameters: fANOVA 5.4 s against 52 s on the development VM)
N_TREES, MAX_DEPTH = 32, 8
#: the least share of networks a parameter must have shaped to be rated (:func:`rated_params`)
MIN_ACTIVE = 0.2
#: PED-ANOVA's "good" networks: the better half (see the module docstring)
PED_QUANTILE = 0.5


def _distribution(p: ParamInfo, seen: Sequence[Any]) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if p.kind == "categorical":
        options = list(dict.fromkeys([*p.options, *seen]))
        return CategoricalDistribution([o if isinstance(o, (int, float, str, bool)) or o is None else str(o)
                                        for o in options])
    if p.kind == "int":
        return IntDistribution(int(min([p.low, *seen])), int(max([p.high, *seen])), log=p.log)
    return FloatDistribution(float(min([p.low, *seen])), float(max([p.high, *seen])), log=p.log)


def _evaluator(name: str, seed: int) -> Any:
    from optuna import importance as imp

    if name == "fanova":
        return imp.FanovaImportanceEvaluator(n_trees=N_TREES, max_depth=MAX_DEPTH, seed=seed)
    if name == "mdi":
        return imp.MeanDecreaseImpurityImportanceEvaluator(n_trees=N_TREES, max_depth=MAX_DEPTH, seed=seed)
    return imp.PedAnovaImportanceEvaluator(target_quantile=PED_QUANTILE)


def _have_sklearn() -> bool:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return False
    return True


def importances(samples: SampleSet, targets: Sequence[str], *, evaluators: Sequence[str] = EVALUATORS,
                seed: int = 0) -> dict[str, dict[str, dict[str, float]]]:
    """Importances of every varying flat parameter for each target, by each evaluator.

    Args:
        samples: the networks.
        targets: metric names of ``samples.metrics`` (the device latency, an objective ...).
        evaluators: a subset of :data:`EVALUATORS`.
        seed: seeds fANOVA's and MDI's forests.

    Returns:
        target -> evaluator -> parameter -> importance (>= 0, summing to 1), highest first. Networks whose target is
        unknown (NaN) are left out of that target's figures.

    Raises:
        DesignspaceError: an unknown evaluator, no parameter that varies, fewer than 2 networks with the target.
    """
    for e in evaluators:
        if e not in EVALUATORS:
            raise DesignspaceError(f"unknown importance evaluator {e!r} (fix: one of {', '.join(EVALUATORS)})")
    try:
        import optuna
    except ImportError:
        raise DesignspaceError("importances need Optuna (fix: pip install 'designspace[analysis]')") from None
    usable = [e for e in evaluators if e == "ped_anova" or _have_sklearn()]
    if len(usable) < len(evaluators):
        log.warning("fANOVA and MDI need scikit-learn; skipped (fix: pip install 'designspace[analysis]')")
    varying = rated_params(samples)
    if not varying:
        raise DesignspaceError(f"{samples.name}: no parameter varies among the {len(samples)} networks, so none can "
                               "explain anything (fix: analyze a space with free parameters, or more trials)")
    dists = {p.name: _distribution(p, [v[p.name] for v in samples.values]) for p in varying}
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # no "trial N added" lines; restored below
    try:
        return _importances(optuna, samples, targets, varying, dists, usable, seed)
    finally:
        optuna.logging.set_verbosity(verbosity)


def _importances(optuna: Any, samples: SampleSet, targets: Sequence[str], varying: list[ParamInfo],
                 dists: dict[str, Any], usable: list[str], seed: int) -> dict[str, dict[str, dict[str, float]]]:
    ys = {t: samples.metrics[t] for t in targets}
    keep = [i for i in range(len(samples)) if all(np.isfinite(y[i]) for y in ys.values())]
    if len(keep) < 2:
        raise DesignspaceError(f"{samples.name}: {len(keep)} network(s) have every one of {', '.join(targets)}; "
                               "importances need at least 2 (fix: more samples or trials)")
    # one study for every target (building the trials is the slow part): each target a user attribute
    study = optuna.create_study()
    study.add_trials([optuna.trial.create_trial(
        params={p.name: _option(samples.values[i][p.name], dists[p.name]) for p in varying}, distributions=dists,
        value=0.0, user_attrs={t: float(y[i]) for t, y in ys.items()}) for i in keep])
    out: dict[str, dict[str, dict[str, float]]] = {}
    for target in targets:
        sign = 1.0 if samples.target(target).direction == "minimize" else -1.0  # PED-ANOVA rates the low values

        def value(t: Any, target: str = target, sign: float = sign) -> float:
            return sign * float(t.user_attrs[target])

        by: dict[str, dict[str, float]] = {}
        for e in usable:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # PED-ANOVA's reminder that it looks at low values (handled above)
                got = optuna.importance.get_param_importances(study, evaluator=_evaluator(e, seed), normalize=True,
                                                              target=value)
            by[e] = {k: float(v) for k, v in sorted(got.items(), key=lambda kv: (-kv[1], kv[0]))}
        out[target] = by
    return out


def rated_params(samples: SampleSet) -> list[ParamInfo]:
    """The parameters the importances rate: those that vary among the networks and shaped at least
    :data:`MIN_ACTIVE` of them. A parameter active in fewer (an option's own parameter where the option is one of six)
    can explain at most that share of the metric's variance, and rating the dozens of them costs most of the time;
    the report's options table gives them among the networks where they were active."""
    n = max(len(samples), 1)
    return [p for p in samples.params if all(p.name in v for v in samples.values)
            and len({repr(v.get(p.name)) for v in samples.values}) > 1
            and sum(p.name in a for a in samples.active) / n >= MIN_ACTIVE]


def _option(value: Any, dist: Any) -> Any:
    """``value`` as the distribution holds it (an option Optuna cannot store is held by its text)."""
    from optuna.distributions import CategoricalDistribution

    if isinstance(dist, CategoricalDistribution) and value not in dist.choices:
        return str(value)
    return value
