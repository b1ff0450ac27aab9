"""A search's settings (:class:`SearchConfig`), its outcome (:class:`SearchReport`) and study names."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from designspace.evaluate.latency_estimate import check_latency
from designspace.evaluate.sources import Protocol
from designspace.exceptions import DesignspaceError
from designspace.search.objectives import Objective
from designspace.search.trained import TrainedSettings
from designspace.space import Budget, Space

__all__ = ["SearchConfig", "SearchReport", "check_study_name"]


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
        latency: ``"measure"`` (each trial's network measured whole), ``"table"`` (the per-block latency table,
            :mod:`designspace.evaluate.table.entries`, a missing entry predicted from its type's measured entries where
            that model holds, :mod:`designspace.evaluate.table.entry_model`, else measured) or ``"table-measured"``
            (the table, every missing entry measured); with either table the final Pareto front is re-measured
            whole.
        results: the results folder (default ``results/``).
        progress: show a progress bar.
        trained: how ``--objective trained`` trains each candidate (:mod:`designspace.search.trained`).
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
    latency: str = "measure"
    results: Path | None = None
    progress: bool = True
    trained: TrainedSettings | None = None

    @property
    def name(self) -> str:
        """The study name."""
        return self.study or self.space.name

    @property
    def uses_latency(self) -> bool:
        """Whether a trial needs its latency: a latency objective or a latency budget."""
        return any(o.kind == "latency" for o in self.objectives) or any(b.metric == "latency_ms" for b in self.budgets)

    def __post_init__(self) -> None:
        check_study_name(self.name)
        check_latency(self.latency)


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
