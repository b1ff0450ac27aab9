"""Search objectives: what a trial returns to Optuna, each with its direction.

Written as ``--objective NAME``:

* ``accuracy``: maximize the default accuracy estimate (:data:`designspace.evaluate.estimate.DEFAULT`);
  ``accuracy:ESTIMATE`` picks another (``accuracy:zico``, ``accuracy:combined``).
* ``latency``: minimize the latency in milliseconds (predicted on ``--device``, else measured here).
* ``params``, ``macs``: minimize parameters (millions) or MACs (billions).
* a proxy name (``synflow``, ``naswot``, ``zico``, ``meco``, ``combined``, ...): maximize it.
* ``module:function``: a user objective, maximized; it is called as ``function(arch, model)`` with the Arch and
  its built (train-mode) ``nn.Module`` and returns a float, e.g. an accuracy after a short training.

Prefix ``max:`` or ``min:`` to set the direction explicitly (``min:mypkg.cost:energy``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from designspace.blocks.registry import closest
from designspace.evaluate.estimate import DEFAULT, ESTIMATES
from designspace.exceptions import DesignspaceError

__all__ = ["Objective", "load_user_function", "parse_objective"]

_COSTS = {"latency": "latency_ms", "params": "params_m", "macs": "macs_g"}


@dataclass(frozen=True)
class Objective:
    """One objective.

    Attributes:
        name: its column in results (``accuracy``, ``latency_ms``, ``params_m``, ``zico``, ``mypkg.mod:fn``).
        direction: ``"maximize"`` or ``"minimize"``.
        kind: ``"estimate"``, ``"latency"``, ``"count"`` or ``"user"``.
        arg: the estimate name, the count metric, or ``module:function``.
    """

    name: str
    direction: str
    kind: str
    arg: str


def parse_objective(text: str) -> Objective:
    """Parses ``--objective`` text (see the module docstring).

    Raises:
        DesignspaceError: an unknown objective (the message lists the known ones and the closest).
    """
    t = text.strip()
    direction = None
    for prefix, d in (("max:", "maximize"), ("min:", "minimize")):
        if t.startswith(prefix):
            t, direction = t[len(prefix):], d
    if t == "accuracy" or t.startswith("accuracy:"):
        est = t.partition(":")[2] or DEFAULT
        if est not in ESTIMATES:
            raise DesignspaceError(f"unknown accuracy estimate {est!r} in objective {text!r} "
                                   f"(fix: use one of {', '.join(ESTIMATES)})")
        return Objective("accuracy" if est == DEFAULT and t == "accuracy" else f"accuracy_{est}",
                         direction or "maximize", "estimate", est)
    if t in _COSTS:
        kind = "latency" if t == "latency" else "count"
        return Objective(_COSTS[t], direction or "minimize", kind, _COSTS[t])
    if t in ESTIMATES:
        return Objective(t, direction or "maximize", "estimate", t)
    if ":" in t and all(part for part in t.split(":", 1)):
        return Objective(t, direction or "maximize", "user", t)
    known = ["accuracy", "latency", "params", "macs", *[e for e in ESTIMATES if e not in ("params", "macs")]]
    near = closest(t, known)
    raise DesignspaceError(f"unknown objective {text!r} (fix: " + (f"did you mean {near!r}? " if near else "")
                           + f"use one of {', '.join(known)}, accuracy:ESTIMATE or module:function)")


def load_user_function(spec: str) -> Callable[[Any, Any], float]:
    """Imports ``module:function``.

    Raises:
        DesignspaceError: the module cannot be imported or has no such callable.
    """
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise DesignspaceError(f"objective {spec!r}: cannot import {module_name!r} ({err}) (fix: make it importable, "
                               "e.g. run from its folder or set PYTHONPATH)") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise DesignspaceError(f"objective {spec!r}: {module_name} has no callable {attr!r} "
                               "(fix: name a function taking (arch, model) and returning a float)")
    return fn
