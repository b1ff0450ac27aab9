"""The accuracy estimate a search maximizes: one proxy, or a combination of proxies.

A combination standardizes each proxy with the mean and standard deviation it has over the published zoo
models (``designspace/data/proxy_reference.json``, written by ``benchmarks/bench_proxies.py
--write-reference``) and averages them: a rank aggregation in the spirit of AZ-NAS that gives every Arch a
score on its own, without a population to rank against.

:data:`DEFAULT` is whichever estimate ranks the published models' ImageNet-1K top-1 best in that
benchmark's validation (``docs/proxies.md`` has the figures).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from importlib import resources
from typing import Any

from designspace.arch import Arch
from designspace.exceptions import DesignspaceError

__all__ = ["COMBINATIONS", "DEFAULT", "ESTIMATES", "combined", "estimate", "reference"]

#: Named combinations of proxies.
COMBINATIONS: dict[str, tuple[str, ...]] = {
    "combined": ("synflow", "naswot", "zico", "meco"),
    "combined_params": ("params", "synflow", "naswot", "zico", "meco"),
    "params_naswot": ("params", "naswot"),
}

#: The default accuracy estimate (see the module docstring).
DEFAULT = "macs"


def _all_estimates() -> tuple[str, ...]:
    from designspace.evaluate.proxies import PROXIES

    return PROXIES + tuple(COMBINATIONS)


ESTIMATES = _all_estimates()


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
    """The accuracy estimate ``name`` of ``arch`` (higher is better).

    Raises:
        DesignspaceError: an unknown estimate (the message lists them).
    """
    from designspace.evaluate.proxies import compute_proxies

    if name not in ESTIMATES:
        raise DesignspaceError(f"unknown accuracy estimate {name!r} (fix: use one of {', '.join(ESTIMATES)})")
    proxies = COMBINATIONS.get(name, (name,))
    scores = compute_proxies(arch, proxies, seed=seed)
    return combined(scores.values, proxies) if name in COMBINATIONS else scores.values[name]
