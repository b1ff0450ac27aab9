"""The accuracy estimates a search can maximize, each named for what it measures.

* ``top1``: the predicted ImageNet-1K top-1 in percent (:mod:`designspace.evaluate.accuracy.top1`, fitted on the
  published points); the only estimate in accuracy units.
* ``log10_macs``, ``log10_params``: log10 of the MAC and parameter counts (the proxies ``macs`` and ``params``;
  those two short names are accepted too).
* a training-free proxy by its name (``synflow``, ``naswot``, ``zico``, ``meco``), or a combination.

A combination standardizes each proxy with the mean and standard deviation it has over the published zoo
models (``designspace/data/proxy_reference.json``, written by ``benchmarks/bench_proxies.py
--write-reference``) and averages them: a rank aggregation in the spirit of AZ-NAS that gives every Arch a
score on its own, without a population to rank against.

:data:`DEFAULT` is whichever estimate ranks the published ImageNet-1K top-1 best within the seeds' ablation
tables in ``benchmarks/bench_accuracy.py`` (``docs/proxies.md`` has the figures).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from importlib import resources
from typing import Any

from designspace.arch import Arch
from designspace.exceptions import DesignspaceError

__all__ = ["ALIASES", "COMBINATIONS", "DEFAULT", "DESCRIPTIONS", "ESTIMATES", "canonical", "combined", "description",
           "estimate", "reference"]

#: Named combinations of proxies.
COMBINATIONS: dict[str, tuple[str, ...]] = {
    "combined": ("synflow", "naswot", "zico", "meco"),
    "combined_params": ("params", "synflow", "naswot", "zico", "meco"),
    "params_naswot": ("params", "naswot"),
}

#: The default accuracy estimate (see the module docstring).
DEFAULT = "log10_macs"

#: Estimate name -> the proxy that computes it, where the two differ.
_PROXY_OF = {"log10_params": "params", "log10_macs": "macs"}
#: Other names accepted for an estimate (the proxies' short names).
ALIASES = {proxy: name for name, proxy in _PROXY_OF.items()}


def _all_estimates() -> tuple[str, ...]:
    from designspace.evaluate.accuracy.proxies import PROXIES

    return ("top1", *(ALIASES.get(p, p) for p in PROXIES), *COMBINATIONS)


#: Every estimate name, ``top1`` first.
ESTIMATES = _all_estimates()

#: What each estimate measures, with its unit (for labels and reports).
DESCRIPTIONS: dict[str, str] = {
    "top1": "predicted ImageNet-1K top-1 (%)",
    "log10_macs": "log10 MACs, a size proxy for accuracy: docs/proxies.md",
    "log10_params": "log10 parameters, a size proxy for accuracy: docs/proxies.md",
    **{c: f"mean standardized proxy score of {' + '.join(ALIASES.get(p, p) for p in parts)}"
       for c, parts in COMBINATIONS.items()},
}


def canonical(name: str) -> str:
    """The estimate's name for what it measures (``macs`` -> ``log10_macs``); unknown names unchanged."""
    return ALIASES.get(name, name)


def description(name: str) -> str:
    """What the estimate ``name`` measures, with its unit."""
    name = canonical(name)
    return DESCRIPTIONS.get(name, f"{name} proxy score (higher predicts more accurate)")


@functools.cache
def reference() -> dict[str, Any]:
    """The proxies' statistics over the published zoo models (see the module docstring)."""
    try:
        text = (resources.files("designspace") / "data" / "proxy_reference.json").read_text(encoding="utf-8")
    except FileNotFoundError as err:  # pragma: no cover - shipped with the package
        raise DesignspaceError("designspace/data/proxy_reference.json is missing (fix: run "
                               "python benchmarks/bench_proxies.py --write-reference)") from err
    return dict(json.loads(text))


def combined(values: Mapping[str, float], proxies: tuple[str, ...]) -> float:
    """The mean of the named proxies' standardized values."""
    stats = reference()["proxies"]
    return sum((values[p] - stats[p]["mean"]) / stats[p]["std"] for p in proxies) / len(proxies)


def estimate(arch: Arch, name: str = DEFAULT, *, seed: int = 0) -> float:
    """The accuracy estimate ``name`` of ``arch`` (higher is better): ``top1`` in ImageNet-1K top-1 %, the others
    in their own units (see :data:`DESCRIPTIONS`). ``seed`` seeds the proxies' inputs and weights.

    Raises:
        DesignspaceError: an unknown estimate (the message lists them); a missing or malformed top-1 model.
    """
    name = canonical(name)
    if name not in ESTIMATES:
        raise DesignspaceError(f"unknown accuracy estimate {name!r} (fix: use one of {', '.join(ESTIMATES)})")
    if name == "top1":
        from designspace.evaluate.accuracy.top1 import predict_top1

        return predict_top1(arch).mean
    from designspace.evaluate.accuracy.proxies import compute_proxies

    proxies = COMBINATIONS.get(name, (_PROXY_OF.get(name, name),))
    scores = compute_proxies(arch, proxies, seed=seed)
    return combined(scores.values, proxies) if name in COMBINATIONS else scores.values[proxies[0]]
