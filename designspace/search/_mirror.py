"""A write-through Optuna storage for a study with one writer: reads from memory, every write to the database.

A locked SQLite study (``results/<study>/study.db``) has exactly one writer, this process, so the database
never holds a trial this process has not written. Reading it back is then pure cost, and with ~90
parameters a trial it was most of a counts-only search's time: every sampler call rebuilt the running
trial from its rows, and every finished trial was parsed back (92 JSON distributions each). This storage
keeps an ``InMemoryStorage`` copy, loaded from the database once, serves every read from it, and writes
every change to the database: a running trial's parameters and attributes together in one transaction
just before its state changes, everything else as it happens. A kill -9 thus loses nothing the database
had (a trial killed while running is failed and re-run, as before), and a rerun reloads the study from it.

It is used only for locked SQLite studies; a shared server (PostgreSQL) is read from the server, where the
other workers' trials are.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from designspace.search.optuna_compat import FrozenStudy, frozen_trial_id

__all__ = ["MirroredStorage"]


class MirroredStorage(optuna.storages.BaseStorage):
    """Reads from memory, writes through to ``backend`` (see the module docstring).

    Args:
        backend: the database storage (a ``BatchedRDBStorage``: its parameter writes wait for the trial's
            next state or attribute write and go in one transaction).
    """

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.memory = optuna.storages.InMemoryStorage()
        self._study: dict[int, int] = {}  # memory study id -> database study id
        self._trial: dict[int, int] = {}  # memory trial id -> database trial id

    # ---- heartbeats: the database's policy (used when failing a dead run's trials)
    def get_heartbeat_stale_trial_callback(self) -> Any:
        """The database storage's stale-trial callback (re-runs a failed trial)."""
        return self.backend.get_heartbeat_stale_trial_callback()

    @property
    def engine(self) -> Any:
        """The database engine (closed with the storage)."""
        return self.backend.engine

    def flush(self) -> None:
        """Writes any parameters still waiting."""
        self.backend.flush()

    # ---- studies
    def _load(self, name: str) -> int:
        backend_id = self.backend.get_study_id_from_name(name)  # KeyError when absent
        sid = self.memory.create_new_study(self.backend.get_study_directions(backend_id), name)
        self._study[sid] = backend_id
        for key, value in self.backend.get_study_user_attrs(backend_id).items():
            self.memory.set_study_user_attr(sid, key, value)
        for key, value in self.backend.get_study_system_attrs(backend_id).items():
            self.memory.set_study_system_attr(sid, key, value)
        for trial in self.backend.get_all_trials(backend_id, deepcopy=False):
            tid = self.memory.create_new_trial(sid, template_trial=trial)
            self._trial[tid] = frozen_trial_id(trial)
        return sid

    def create_new_study(self, directions: Sequence[StudyDirection], study_name: str | None = None) -> int:
        backend_id = self.backend.create_new_study(directions, study_name)
        name = self.backend.get_study_name_from_id(backend_id)
        sid = self.memory.create_new_study(directions, name)
        self._study[sid] = backend_id
        return sid

    def delete_study(self, study_id: int) -> None:
        self.backend.delete_study(self._study.pop(study_id))
        self.memory.delete_study(study_id)

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self.backend.set_study_user_attr(self._study[study_id], key, value)
        self.memory.set_study_user_attr(study_id, key, value)

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        self.backend.set_study_system_attr(self._study[study_id], key, value)
        self.memory.set_study_system_attr(study_id, key, value)

    def get_study_id_from_name(self, study_name: str) -> int:
        try:
            return self.memory.get_study_id_from_name(study_name)
        except KeyError:
            return self._load(study_name)

    def get_study_name_from_id(self, study_id: int) -> str:
        return self.memory.get_study_name_from_id(study_id)

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return self.memory.get_study_directions(study_id)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self.memory.get_study_user_attrs(study_id)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self.memory.get_study_system_attrs(study_id)

    def get_all_studies(self) -> list[FrozenStudy]:
        for study in self.backend.get_all_studies():  # make every study of the file readable here
            self.get_study_id_from_name(study.study_name)
        return self.memory.get_all_studies()

    # ---- trials
    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        backend_id = self.backend.create_new_trial(self._study[study_id], template_trial)
        tid = self.memory.create_new_trial(study_id, template_trial)
        self._trial[tid] = backend_id
        return tid

    def set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float,
                        distribution: BaseDistribution) -> None:
        self.memory.set_trial_param(trial_id, param_name, param_value_internal, distribution)
        # memory has checked the distribution against the study's: the database need not look it up again
        self.backend._set_trial_param(self._trial[trial_id], param_name, param_value_internal, distribution,
                                      distribution)

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        return self.memory.get_trial_id_from_study_id_trial_number(study_id, trial_number)

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
                               ) -> bool:
        if not self.backend.set_trial_state_values(self._trial[trial_id], state, values):
            return False  # e.g. a waiting trial already taken: the database decides
        # each storage reads its own clock for the start and completion times (a few ms apart); results take a
        # trial's duration from its own record (designspace.results.study_rows), the same either way
        return self.memory.set_trial_state_values(trial_id, state, values)

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        self.backend.set_trial_intermediate_value(self._trial[trial_id], step, intermediate_value)
        self.memory.set_trial_intermediate_value(trial_id, step, intermediate_value)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self.memory.set_trial_user_attr(trial_id, key, value)
        self._attr(trial_id, "user", key, value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self.memory.set_trial_system_attr(trial_id, key, value)
        self._attr(trial_id, "system", key, value)

    def _attr(self, trial_id: int, kind: str, key: str, value: Any) -> None:
        # a running trial's attributes go in with its parameters, in one transaction before its state changes;
        # a finished or waiting trial's (the retry bookkeeping, an enqueued trial's) are written at once
        if self.memory._get_trial(trial_id).state == TrialState.RUNNING:
            self.backend.defer_trial_attr(self._trial[trial_id], kind, key, value)
        elif kind == "user":
            self.backend.set_trial_user_attr(self._trial[trial_id], key, value)
        else:
            self.backend.set_trial_system_attr(self._trial[trial_id], key, value)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        return self.memory.get_trial(trial_id)

    def get_all_trials(self, study_id: int, deepcopy: bool = True,
                       states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        return self.memory.get_all_trials(study_id, deepcopy=deepcopy, states=states)

    def remove_session(self) -> None:
        self.backend.remove_session()
