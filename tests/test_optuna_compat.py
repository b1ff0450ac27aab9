"""Optuna's internals live in designspace/search/optuna_compat.py for the range pinned in pyproject.toml; these
tests fail loudly when the installed Optuna leaves that range or an internal moves. A finished study read with
Optuna's public API alone has its objective names, constraints and designspace's user attributes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

from designspace.cli import main  # noqa: E402
from designspace.exceptions import DesignspaceError  # noqa: E402
from designspace.search import optuna_compat  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def test_installed_optuna_is_in_the_supported_range() -> None:
    assert optuna_compat.check_version() == optuna.__version__, (
        f"Optuna {optuna.__version__} is outside {optuna_compat.SUPPORTED}: re-check every use in "
        "designspace/search/optuna_compat.py before widening the range")


def test_pin_in_pyproject_matches_the_compat_module() -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'"optuna' + re.escape(",".join(optuna_compat.SUPPORTED)) + '"', text), text


@pytest.mark.parametrize("version", ["4.9.0", "5.1.0", "6.0.0", "3", "5.1.0.dev0"])
def test_other_versions_are_refused(version: str) -> None:
    with pytest.raises(DesignspaceError, match=re.escape("supports Optuna >=5.0,<5.1")):
        optuna_compat.check_version(version)


def test_every_internal_used_still_exists() -> None:
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session  # noqa: F401

    rdb = optuna.storages.RDBStorage
    for name in ("_set_trial_param", "_set_trial_attr_without_commit", "check_trial_is_updatable"):
        assert callable(getattr(rdb, name, None)), f"RDBStorage.{name} moved"
    for model in ("TrialModel", "TrialParamModel", "TrialUserAttributeModel", "TrialSystemAttributeModel"):
        assert hasattr(models, model), f"optuna.storages._rdb.models.{model} moved"
    assert hasattr(models.TrialModel, "find_or_raise_by_id")
    cls = optuna_compat.batched_rdb_class()
    for name in optuna_compat._FLUSH_FIRST:
        assert callable(getattr(optuna.storages.RDBStorage, name, None)), f"RDBStorage.{name} moved"
        assert getattr(cls, name) is not getattr(optuna.storages.RDBStorage, name)


def test_public_api_reads_names_constraints_and_attributes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESIGNSPACE_RESULTS", str(tmp_path))
    assert main(["search", "tiny", "--trials", "4", "--objective", "params", "--objective", "macs",
                 "--budget", "3M", "--no-progress"]) == 0
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'tiny' / 'study.db'}")
    from designspace.search.objectives import parse_objective

    assert study.metric_names == [parse_objective("params").name, parse_objective("macs").name]
    assert study.metric_names[0].startswith("params")
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(done) >= 1
    for t in done:
        constraints = list(t.constraints.values()) if isinstance(t.constraints, dict) else list(t.constraints)
        assert len(constraints) == 1  # one budget: params <= 3M
        ds = t.user_attrs["ds"]
        assert ds["metrics"]["params"] == round(ds["metrics"]["params_m"] * 1e6)
        assert (constraints[0] <= 0) == (ds["metrics"]["params"] <= 3_000_000)
