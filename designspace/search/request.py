"""A search request as a user writes it (budgets, trial counts, durations as text) turned into a
:class:`SearchConfig`, with the space's ``search`` section as defaults. Every problem is a one-line
:class:`DesignspaceError` naming the option and the fix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from designspace.exceptions import DesignspaceError
from designspace.search.config import SearchConfig
from designspace.search.objectives import check_space_objectives, load_user_function, parse_objective
from designspace.search.trained import TrainedSettings, check_trained
from designspace.space import Budget, Space, parse_budget

__all__ = ["build_config", "parse_budgets", "parse_duration", "parse_trials"]

_DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
#: the most trials one request may ask for; far above any study this tool runs, low enough that a typo
#: (a pasted 6,000-digit number) is refused rather than looped on
MAX_TRIALS = 10_000_000


def parse_duration(text: str, option: str = "--timeout") -> float:
    """``"600"``, ``"10m"``, ``"1.5h"`` -> seconds (a finite number > 0)."""
    t = str(text).strip()
    try:
        value = float(t[:-1]) * _DURATION_UNITS[t[-1]] if t and t[-1] in _DURATION_UNITS else float(t)
    except (ValueError, OverflowError):
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise DesignspaceError(f"{option} {text!r} is not a duration (fix: seconds > 0, or a number with s, m or h: "
                               "600, 10m, 1.5h)")
    return value


def parse_trials(text: str) -> tuple[int | None, int | None]:
    """``"200"`` -> ``(200, None)``: the study's total; ``"+20"`` -> ``(None, 20)``: that many more here."""
    t = str(text).strip()
    digits = t[1:] if t.startswith("+") else t
    if not digits.isascii() or not digits.isdigit() or len(digits) > len(str(MAX_TRIALS)):
        raise DesignspaceError(f"--trials {text[:40]!r} is not a trial count (fix: --trials 200 for the study's "
                               f"total, --trials +20 for 20 more from this process; at most {MAX_TRIALS:,})")
    n = int(digits)
    if not 1 <= n <= MAX_TRIALS:
        raise DesignspaceError(f"--trials must be between 1 and {MAX_TRIALS:,}, got {text!r} (fix: --trials 200)")
    return (None, n) if t.startswith("+") else (n, None)


def parse_budgets(texts: Sequence[str]) -> tuple[Budget, ...]:
    """``["1.1ms", "8M"]`` -> budgets; a bad one -> ``DesignspaceError`` naming it and the fix."""
    parsed = []
    for text in texts:
        try:
            parsed.append(parse_budget(text))
        except ValueError as err:
            raise DesignspaceError(f"--budget {str(text)[:40]!r}: {err.args[0]} (fix: {err.args[1]})") from None
    return tuple(parsed)


def build_config(space: Space, *, budgets: Sequence[str] | None = None, trials: str | None = None,
                 timeout: str | None = None, objectives: Sequence[str] | None = None, device: str | None = None,
                 sampler: str | None = None, study: str | None = None, storage: str | None = None,
                 seed: int | None = None, invalid: str | None = None, runtime: str = "onnxruntime",
                 threads: int = 1, batch: int = 1, progress: bool = True,
                 trained: TrainedSettings | None = None, latency: str = "measure",
                 trust_space_code: bool = False) -> SearchConfig:
    """The :class:`SearchConfig` of a request; options left ``None`` take the space's ``search`` defaults.

    ``budgets`` replace the space's budgets when given. Without ``trials`` and ``timeout`` (here or in the
    space) the study runs to the space's ``trials`` default, else 100. ``trained`` (from
    :func:`designspace.search.trained.trained_settings`) goes with a ``trained`` objective and only with one.
    Code objectives (``module:function``) are imported and checked here, before any trial; the space's own are
    refused unless ``trust_space_code`` (the user's ``--trust-space-code``).
    """
    defaults = space.doc.search
    parsed_budgets = parse_budgets(budgets) if budgets else space.doc.budgets
    parsed_objectives = tuple(parse_objective(o) for o in (objectives or defaults.get("objectives",
                                                                                      ["accuracy", "latency"])))
    if not objectives:
        check_space_objectives(parsed_objectives, space.doc.file, trusted=trust_space_code)
    for o in parsed_objectives:
        if o.kind == "user":
            load_user_function(o.arg)  # imported and its signature checked before any trial
    timeout_s = parse_duration(timeout) if timeout else defaults.get("timeout")
    if threads < 1 or batch < 1:
        raise DesignspaceError(f"--threads and --batch must be at least 1, got {threads} and {batch} "
                               "(fix: --threads 1)")
    trained = check_trained(parsed_objectives, trained)
    if storage is not None:
        from designspace.search.storage import check_storage_url

        check_storage_url(storage)
    if device is not None and device != "local":
        from designspace.evaluate.sources import Device

        Device(device)  # an unknown device is refused before any trial
    more = total = None
    if trials is not None:
        total, more = parse_trials(trials)
    if total is None and more is None and timeout_s is None:
        total = int(defaults.get("trials", 100))
    dev = device or space.doc.device
    cfg = SearchConfig(
        space=space, objectives=parsed_objectives, budgets=parsed_budgets,
        device=None if dev in (None, "local") else dev, trials=total, more=more, timeout_s=timeout_s,
        sampler=sampler or defaults.get("sampler", "tpe"), study=study or "", storage=storage,
        seed=seed if seed is not None else int(defaults.get("seed", 0)),
        invalid=invalid or defaults.get("invalid", "repair"), runtime=runtime, threads=threads, batch=batch,
        progress=progress, trained=trained, latency=latency)
    if cfg.uses_latency and cfg.device is not None and cfg.latency != "measure":
        # a device's cost model gives the trials' latency: no table here could change it, so the word is refused
        # rather than ignored (the search would name the device, but not say that --latency did nothing)
        where = f"--device {dev}" if device else f"the space's `device: {dev}` ({space.doc.file or 'the space'})"
        raise DesignspaceError(f"--latency {cfg.latency}: this search's latency is {dev}'s prediction, from {where}, "
                               "which no latency table changes (fix: add --device local to search with the table on "
                               "this machine, or leave --latency out)")
    return cfg
