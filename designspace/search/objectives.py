"""Search objectives: what a trial returns to Optuna, each with its direction, named for what it measures.

Written as ``--objective NAME``; the objective's name is its column in the results:

* ``top1``: maximize the predicted ImageNet-1K top-1 in % (:mod:`designspace.evaluate.accuracy.top1`).
* ``log10_macs``, ``log10_params``: maximize log10 of the MACs or parameters, the count baselines of the
  accuracy estimates.
* a proxy or combination by its name (``synflow``, ``naswot``, ``zico``, ``meco``, ``combined``, ...): maximize it.
* ``estimate``: the default accuracy estimate (:data:`designspace.evaluate.accuracy.estimate.DEFAULT`, chosen by
  ``benchmarks/bench_accuracy.py``), under its own name.
* ``latency`` (``latency_ms``): minimize the latency in milliseconds (predicted on ``--device``, else measured here).
* ``params`` (``params_m``), ``macs`` (``macs_g``): minimize parameters (millions) or MACs (billions).
* ``trained`` (``trained_top1``): maximize the validation top-1 in % after training on ``--data``, with pruning
  (:mod:`designspace.search.trained`).
* ``module:function``: a user objective, maximized; it is called as ``function(arch, model)`` with the Arch and
  its built (train-mode) ``nn.Module`` and returns a float, e.g. an accuracy after a short training. It is
  imported only when named on the command line (a space file's ``search.objectives`` needs
  ``--trust-space-code``), from ``PYTHONPATH`` and installed packages (not implicitly from the current folder),
  and checked to take ``(arch, model)`` before any trial.

Prefix ``max:`` or ``min:`` to set the direction explicitly (``min:mypkg.cost:energy``).

The old names still parse: ``accuracy`` is ``estimate`` and ``accuracy:EST`` is ``EST``. Studies written before
the rename stored the objective ``accuracy`` (log10 of the MACs) or ``accuracy_EST``; :func:`upgrade_objective`
maps such a stored objective to today's, and :data:`LEGACY_COLUMNS` gives the column rename.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from designspace.evaluate.accuracy.estimate import DEFAULT, ESTIMATES, canonical
from designspace.exceptions import DesignspaceError, did_you_mean

__all__ = ["LEGACY_COLUMNS", "Objective", "check_space_objectives", "legacy_column", "load_user_function",
           "parse_objective", "upgrade_objective"]

_COSTS = {"latency": "latency_ms", "params": "params_m", "macs": "macs_g"}
_COST_NAMES = {v: v for v in _COSTS.values()} | _COSTS

#: Result columns of studies written before the rename -> today's names (``accuracy`` held log10 of the MACs,
#: the default estimate then; ``accuracy_EST`` held the estimate EST).
LEGACY_COLUMNS: dict[str, str] = {"accuracy": "log10_macs",
                                  **{f"accuracy_{e}": canonical(e) for e in (*ESTIMATES, "macs", "params")}}


@dataclass(frozen=True)
class Objective:
    """One objective.

    Attributes:
        name: its column in results, named for what it measures (``top1``, ``log10_macs``, ``latency_ms``,
            ``params_m``, ``zico``, ``mypkg.mod:fn``).
        direction: ``"maximize"`` or ``"minimize"``.
        kind: ``"estimate"``, ``"latency"``, ``"count"``, ``"trained"`` or ``"user"``.
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
    if t in ("accuracy", "estimate") or t.startswith("accuracy:"):  # old spellings of an accuracy estimate
        est = canonical(t.partition(":")[2] or DEFAULT)
        if est not in ESTIMATES:
            raise DesignspaceError(f"unknown accuracy estimate {est!r} in objective {text!r} "
                                   f"(fix: use one of {', '.join(ESTIMATES)})")
        return Objective(est, direction or "maximize", "estimate", est)
    if t in _COST_NAMES:
        column = _COST_NAMES[t]
        return Objective(column, direction or "minimize", "latency" if column == "latency_ms" else "count", column)
    if t in ("trained", "trained_top1"):
        return Objective("trained_top1", direction or "maximize", "trained", "top1")
    if t in ESTIMATES:
        return Objective(t, direction or "maximize", "estimate", t)
    if ":" in t and all(part for part in t.split(":", 1)):
        return Objective(t, direction or "maximize", "user", t)
    known = ["top1", "estimate", "latency", "params", "macs", "trained", *[e for e in ESTIMATES if e != "top1"]]
    raise DesignspaceError(f"unknown objective {text!r} (fix: " + did_you_mean(t, [*known, "accuracy"])
                           + f"use one of {', '.join(known)}, or module:function)")


def legacy_column(name: str) -> str:
    """Today's column name for a result column of an older study (unchanged when it was not renamed)."""
    return LEGACY_COLUMNS.get(name, name)


def upgrade_objective(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A stored objective (``dataclasses.asdict(Objective)`` as a study's settings hold it) under today's names.

    ``{"name": "accuracy", "kind": "estimate", "arg": "macs", ...}`` becomes ``{"name": "log10_macs", ...,
    "arg": "log10_macs"}``; ``accuracy_zico`` becomes ``zico``. Other objectives come back unchanged (a copy).
    """
    out = dict(stored)
    if out.get("kind") == "estimate":
        if str(out.get("name", "")).startswith("accuracy"):
            out["name"] = canonical(str(out.get("arg") or "macs"))
        out["arg"] = canonical(str(out.get("arg") or out["name"]))
    return out


def _import_user_module(module_name: str) -> Any:
    """Imports ``module_name`` with the current folder off the import path, unless ``PYTHONPATH`` names it.

    ``python -m designspace`` puts the current folder first on ``sys.path``, so a file of the objective's name
    lying there (a study folder copied from elsewhere, a download) would be found and run without the user
    having chosen it; the user's own ``PYTHONPATH`` still counts, it is the user naming the folder.
    """
    explicit = {os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p}
    cwd = os.path.abspath(os.getcwd())
    implicit = [p for p in sys.path if os.path.abspath(p or ".") == cwd and cwd not in explicit]
    saved = list(sys.path)
    sys.path[:] = [p for p in sys.path if p not in implicit]
    try:
        return importlib.import_module(module_name)
    finally:
        sys.path[:] = saved


def load_user_function(spec: str) -> Callable[[Any, Any], float]:
    """Imports ``module:function`` and checks that it can be called as ``function(arch, model)``.

    Only the user of this process names such a function, on its command line (``--objective``), or by opting in
    to a space file's code objectives (``--trust-space-code``); objectives stored in a study are never imported.
    The current folder is not searched unless ``PYTHONPATH`` names it.

    Raises:
        DesignspaceError: the module cannot be imported, has no such callable, or the callable does not take
            the objective's two positional arguments ``(arch, model)``.
    """
    module_name, _, attr = spec.partition(":")
    try:
        module = _import_user_module(module_name)
    except ImportError as err:
        raise DesignspaceError(f"objective {spec!r}: cannot import {module_name!r} ({err}) (fix: make it importable "
                               "through PYTHONPATH, e.g. PYTHONPATH=. to use the current folder)") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise DesignspaceError(f"objective {spec!r}: {module_name} has no callable {attr!r} "
                               "(fix: name a function taking (arch, model) and returning a float)")
    try:
        inspect.signature(fn).bind(None, None)
    except (TypeError, ValueError) as err:  # ValueError: a builtin whose signature cannot be read
        raise DesignspaceError(f"objective {spec!r}: {module_name}.{attr} cannot be called as {attr}(arch, model) "
                               f"({_one_line(err) or 'no readable signature'}) (fix: name a Python function "
                               "def f(arch, model) -> float)") from None
    return fn


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:200]


def check_space_objectives(objectives: Sequence[Objective], space_file: str, *, trusted: bool) -> None:
    """Refuses a space file's code objectives (``module:function``) unless the user opted in.

    A space file is data that travels between people; importing a module it names would run that module's code
    on whoever searches the space. ``--trust-space-code`` is the explicit opt-in.

    Raises:
        DesignspaceError: a ``user`` objective without ``trusted``.
    """
    code = [o.arg for o in objectives if o.kind == "user"]
    if code and not trusted:
        raise DesignspaceError(f"{space_file}: search.objectives: {code[0]!r} is code (module:function), which a "
                               "space file does not run by itself (fix: pass --trust-space-code if you trust this "
                               "file's code, or give --objective on the command line)")
