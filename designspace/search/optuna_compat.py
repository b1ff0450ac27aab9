"""Every use of Optuna's internals, in one place, for the supported Optuna range :data:`SUPPORTED` (pinned in
``pyproject.toml``; ``tests/test_optuna_compat.py`` fails loudly outside it or when an internal moves).

What designspace needs beyond Optuna's public API, and why:

* :func:`batched_rdb_class`: an ``RDBStorage`` that writes a running trial's parameters in one transaction
  (Optuna writes each suggested parameter in its own; 92 a trial in ``spaces/mobile.yaml``). It overrides
  ``_set_trial_param`` and uses the RDB models, ``_create_scoped_session`` and
  ``_set_trial_attr_without_commit``.
* :data:`FrozenStudy` (``optuna.study._frozen``): the type ``BaseStorage.get_all_studies`` returns, which the
  in-memory mirror of a locked SQLite study (``search/_mirror.py``) implements.
* :func:`frozen_trial_id`: a ``FrozenTrial``'s storage id (``_trial_id``), to map the mirror's trials to the
  database's.

Everything else (constraints, metric names, user attributes, samplers, heartbeats) uses the public API.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import optuna
from optuna.study._frozen import FrozenStudy

from designspace.exceptions import DesignspaceError

__all__ = ["SUPPORTED", "FrozenStudy", "batched_rdb_class", "check_version", "frozen_trial_id"]

#: the Optuna versions designspace is tested with (the range in pyproject.toml)
SUPPORTED = (">=5.0", "<5.1")


def check_version(version: str | None = None) -> str:
    """``version`` (default: the installed Optuna's) if it is in :data:`SUPPORTED`.

    Raises:
        DesignspaceError: another version, with the fix.
    """
    version = version or optuna.__version__
    parts = []
    for piece in version.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    major_minor = tuple(parts + [0] * (2 - len(parts)))
    if not (5, 0) <= major_minor < (5, 1):
        raise DesignspaceError(f"Optuna {version} is installed; designspace supports Optuna {','.join(SUPPORTED)} "
                               "(fix: pip install 'optuna>=5.0,<5.1')")
    return version


def frozen_trial_id(trial: Any) -> int:
    """The storage id of a ``FrozenTrial`` (Optuna keeps it private)."""
    return int(trial._trial_id)


_FLUSH_FIRST = ("get_trial", "_get_trials", "get_all_trials", "get_trial_param", "set_trial_state_values",
                "set_trial_intermediate_value", "set_trial_system_attr", "set_trial_user_attr", "_get_best_trial_id",
                "delete_study")


@functools.cache
def batched_rdb_class() -> type:
    """``optuna.storages.RDBStorage`` that writes a running trial's parameters in one transaction.

    Optuna writes every suggested parameter in its own transaction (several statements and a commit); a trial
    of spaces/mobile.yaml suggests 92, so a counts-only search spent most of its time there. Here the
    parameters of a trial wait in this process until anything reads or finishes a trial, then go in one
    transaction. The sampler and the objective see them at once (Optuna's ``Trial`` keeps its own copy);
    other workers never look at another worker's running trial's parameters; and a trial that dies before
    finishing is failed or re-run by the heartbeat, where its parameters do not matter.
    """
    import sqlalchemy
    from optuna import distributions
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    class BatchedRDBStorage(optuna.storages.RDBStorage):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self._pending: dict[int, list[tuple[Any, ...]]] = {}
            self._pending_lock = threading.Lock()
            super().__init__(*args, **kwargs)

        def _set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float,
                             distribution: Any, previous_distribution: Any) -> None:
            with self._pending_lock:
                self._pending.setdefault(trial_id, []).append(
                    ("param", param_name, param_value_internal, distribution, previous_distribution))

        def defer_trial_attr(self, trial_id: int, kind: str, key: str, value: Any) -> None:
            """A user (``kind="user"``) or system attribute written with the trial's parameters, at the next flush."""
            with self._pending_lock:
                self._pending.setdefault(trial_id, []).append((kind, key, value))

        def flush(self) -> None:
            """Writes every waiting parameter and attribute (one transaction per trial)."""
            with self._pending_lock:
                pending, self._pending = self._pending, {}
            for trial_id, items in pending.items():
                with _create_scoped_session(self.scoped_session, True) as session:
                    # what Optuna's _set_trial_param_without_commit does per parameter, once per trial
                    trial = models.TrialModel.find_or_raise_by_id(trial_id, session)
                    self.check_trial_is_updatable(trial_id, trial.state)  # type: ignore[arg-type]
                    rows: list[dict[str, Any]] = []
                    attrs = [item for item in items if item[0] != "param"]
                    for _, name, value, dist, previous in (item for item in items if item[0] == "param"):
                        if previous is None:
                            record = (session.query(models.TrialParamModel).join(models.TrialModel)
                                      .filter(models.TrialModel.study_id == trial.study_id)
                                      .filter(models.TrialParamModel.param_name == name).first())
                            if record is not None:
                                previous = distributions.json_to_distribution(str(record.distribution_json))
                        if previous is not None:
                            distributions.check_distribution_compatibility(previous, dist)
                        rows.append({"trial_id": trial_id, "param_name": name, "param_value": value,
                                     "distribution_json": distributions.distribution_to_json(dist)})
                    if rows:
                        session.execute(sqlalchemy.insert(models.TrialParamModel), rows)  # one executemany
                    for kind, key, value in attrs:  # in order: a later value of a key replaces the earlier
                        model = models.TrialUserAttributeModel if kind == "user" else models.TrialSystemAttributeModel
                        self._set_trial_attr_without_commit(session, model, trial_id, key, value)

    def flushing(name: str) -> Any:
        method = getattr(optuna.storages.RDBStorage, name)

        @functools.wraps(method)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            if self._pending:
                self.flush()
            return method(self, *args, **kwargs)

        return wrapper

    for name in _FLUSH_FIRST:
        setattr(BatchedRDBStorage, name, flushing(name))
    return BatchedRDBStorage


