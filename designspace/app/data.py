"""Studies as the app sees them: read from the results directory (or a storage its operator allows, opened
read-only), never written.

Every file the app reads or serves goes through :func:`safe_path`, which resolves a relative path inside the
results directory and refuses absolute paths, ``..`` and symbolic links that lead out of it.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from designspace.exceptions import DesignspaceError
from designspace.results import ARCHS, SUMMARY_JSON, TRIALS_CSV, read_results, study_rows

__all__ = ["Study", "allowed_storages", "arch_yaml_bytes", "list_studies", "load_arch_of", "load_storage_study",
           "load_study", "onnx_bytes", "safe_path", "snapshot_token", "trials_csv_bytes"]

log = logging.getLogger(__name__)

#: Columns every trials.csv has (besides one per objective).
REQUIRED = ("number", "state", "feasible")
#: Text columns (everything else that parses as numbers is numeric).
TEXT_COLUMNS = ("state", "broken", "latency_flags", "device", "repairs", "reason", "zoo", "fingerprint", "arch",
                "ctx_runtime", "ctx_runtime_version", "ctx_machine", "ctx_precision", "ctx_layout",
                "ctx_implementation", "ctx_exporter", "latency_source", "latency_device", "latency_extrapolation")


def safe_path(root: str | Path, relative: str | Path) -> Path:
    """``root / relative``, resolved, guaranteed to lie inside ``root``.

    Args:
        root: the results directory (or a study folder in it).
        relative: a relative path such as ``"archs/0123abcd.yaml"`` or a study name.

    Returns:
        The resolved absolute path (symbolic links followed), inside ``root`` resolved.

    Raises:
        DesignspaceError: an absolute path, a ``..`` component, an empty path, or a path whose resolution
            (symbolic links included) leaves ``root``.
    """
    text = str(relative)
    rel = Path(text)
    if not text.strip() or rel.is_absolute() or text.startswith(("/", "\\")) or ".." in rel.parts \
            or ".." in text.replace("\\", "/").split("/") or "\x00" in text:
        raise DesignspaceError(f"refusing the path {text!r}: the app serves only files inside the results "
                               "directory (fix: pick a study or trial from the lists)")
    base = Path(root).resolve()
    target = (base / rel).resolve()
    if target != base and base not in target.parents:
        raise DesignspaceError(f"refusing the path {text!r}: it leads out of the results directory {base} "
                               "(a symbolic link?) (fix: keep studies and their files inside it)")
    return target


def list_studies(root: str | Path) -> list[str]:
    """Names of the studies in the results directory (sub-folders holding a ``summary.json``), sorted.

    Args:
        root: the results directory; a missing one has no studies.

    Returns:
        Folder names; folders that are symbolic links out of ``root`` are left out.
    """
    base = Path(root)
    if not base.is_dir():
        return []
    out = []
    for entry in sorted(base.iterdir()):
        try:
            folder = safe_path(base, entry.name)
        except DesignspaceError:
            continue
        if (folder / SUMMARY_JSON).is_file():
            out.append(entry.name)
    return out


def snapshot_token(root: str | Path, name: str) -> tuple[int, int]:
    """Identifies the current version of a study's ``trials.csv``: (modification time in ns, size in bytes).

    A search replaces the file atomically, so a new token means a new whole snapshot; ``(0, 0)`` when the file
    is missing or the path is refused.
    """
    try:
        st = safe_path(safe_path(root, name), TRIALS_CSV).stat()
    except (OSError, DesignspaceError):
        return (0, 0)
    return (st.st_mtime_ns, st.st_size)


@dataclass
class Study:
    """A study's snapshot, ready to plot.

    Attributes:
        name: the study name.
        folder: ``results/<study>/`` (``None`` for a storage URL study without a folder here).
        settings: the search settings (``space``, ``objectives``, ``budgets``, ``device``, ``context``).
        summary: ``summary.json`` (a storage URL study: the counts computed here).
        trials: one row per trial; numeric columns as floats (NaN = empty), ``feasible`` as bool, text columns
            as strings (empty = none), in trial-number order.
        source: where it was read from (a folder or a masked storage URL), for messages.
        notes: things the page should say (e.g. Arch files not available here).
        snapshot: the :func:`snapshot_token` of the ``trials.csv`` read (``(0, 0)`` for a storage URL).
    """

    name: str
    folder: Path | None
    settings: dict[str, Any]
    summary: dict[str, Any]
    trials: pd.DataFrame
    source: str = ""
    notes: list[str] = field(default_factory=list)
    snapshot: tuple[int, int] = (0, 0)

    @property
    def objectives(self) -> list[dict[str, Any]]:
        """The objectives: dicts with ``name``, ``direction`` (``minimize``/``maximize``), ``kind``, ``arg``."""
        return list(self.settings.get("objectives", []))

    @property
    def budgets(self) -> list[dict[str, Any]]:
        """The budgets: dicts with ``metric`` (``params_m``, ``macs_g``, ``latency_ms``) and ``limit``."""
        return list(self.settings.get("budgets", []))

    @property
    def device(self) -> str:
        """The device latencies refer to (a profile name), ``"local"`` when measured on the search machine."""
        return str(self.settings.get("device") or "local")

    @property
    def latency_kind(self) -> tuple[str, str]:
        """(device, source) of the study's latencies: ``("iphone13", "predicted")``, ``("local", "measured")``
        or ``("local", "table")``."""
        from designspace.evaluate.latency_estimate import study_latency

        return study_latency(self.settings)


def _frame(rows: list[dict[str, Any]], settings: dict[str, Any], where: str) -> pd.DataFrame:
    """Typed data frame of trials.csv rows (strings) or study rows (Python values)."""
    objectives = [o["name"] for o in settings.get("objectives", [])]
    if not rows:
        return pd.DataFrame(columns=[*REQUIRED, *objectives])
    df = pd.DataFrame.from_records(rows)
    missing = [c for c in (*REQUIRED, *objectives) if c not in df.columns]
    if missing:
        raise DesignspaceError(f"the trials in {where} lack the columns {', '.join(missing)} (fix: rerun the "
                               "search command to rewrite its results, e.g. designspace search SPACE --trials N)")
    for col in df.columns:
        if col in TEXT_COLUMNS:
            df[col] = df[col].fillna("").astype(str)
        elif col == "feasible":
            df[col] = df[col].astype(str).str.lower().isin(("true", "1"))
        elif col == "number":
            nums = pd.to_numeric(df[col], errors="coerce")
            if nums.isna().any():
                raise DesignspaceError(f"the trials in {where} have rows without a trial number (fix: rerun the "
                                       "search command to rewrite its results)")
            df[col] = nums.astype(int)
        else:
            conv = pd.to_numeric(df[col].replace("", None), errors="coerce")
            original = df[col].replace("", None)
            if conv.notna().sum() == original.notna().sum():
                df[col] = conv.astype(float)
            else:
                df[col] = df[col].fillna("").astype(str)
    return df.sort_values("number", kind="stable").reset_index(drop=True)


def load_study(root: str | Path, name: str) -> Study:
    """Reads ``<root>/<name>/`` (``summary.json`` and ``trials.csv``, each a whole snapshot).

    Args:
        root: the results directory.
        name: the study (a folder name inside ``root``).

    Raises:
        DesignspaceError: a refused name, no such study, or missing/corrupt files; the message says what to do.
    """
    folder = safe_path(root, name)
    if not (folder / SUMMARY_JSON).is_file():
        known = list_studies(root)
        raise DesignspaceError(f"there is no study {name!r} in {Path(root)} (fix: run designspace search first, or "
                               f"pick one of: {', '.join(known) or 'none yet'})")
    token = snapshot_token(root, name)  # before reading: a newer file makes the token stale, never the reverse
    res = read_results(folder)  # DesignspaceError with the fix for unreadable or corrupt files
    summary = res.summary
    if not isinstance(summary, dict) or not isinstance(summary.get("settings"), dict) \
            or not isinstance(summary["settings"].get("objectives"), list):
        raise DesignspaceError(f"{folder / SUMMARY_JSON} has no search settings (fix: rerun the search command to "
                               "rewrite the results)")
    settings = dict(summary["settings"])
    return Study(name, folder, settings, summary, _frame(res.rows, settings, str(folder / TRIALS_CSV)),
                 source=str(folder), snapshot=token)


def allowed_storages(argv: Sequence[str] = (), secrets: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The study storages the app's operator allows, by name; a visitor picks among these and types no URL.

    Two places, both the operator's: ``--storage NAME=URL`` on the app's own command line (``streamlit run app.py
    -- --storage team=postgresql+psycopg://viewer:PW@db/optuna``), and the ``[designspace.storages]`` table of
    Streamlit's secrets (``team = "postgresql+psycopg://..."``). None given: storages are off, the app reads only
    its results folder. Each URL is checked (:func:`designspace.search.storage.check_storage_url`) without
    connecting; only SQLite and PostgreSQL are allowed, as only those are opened read-only here.

    Raises:
        DesignspaceError: a malformed entry (the URL's password masked in the message).
    """
    from designspace.search.storage import check_storage_url, mask_url

    pairs: list[tuple[str, str]] = []
    args = list(argv)
    for i, arg in enumerate(args):
        if arg == "--storage" and i + 1 < len(args):
            pairs.append(_named(args[i + 1]))
        elif arg.startswith("--storage="):
            pairs.append(_named(arg.split("=", 1)[1]))
    table = (secrets or {}).get("storages", {}) if isinstance(secrets, Mapping) else {}
    if not isinstance(table, Mapping):
        raise DesignspaceError("the app's secrets: [designspace.storages] must be a table of NAME = \"URL\" (fix: "
                               "see docs/app.md)")
    pairs += [(str(k), str(v)) for k, v in table.items()]
    out: dict[str, str] = {}
    for name, url in pairs:
        check_storage_url(url)
        if not url.startswith(("sqlite", "postgresql")):
            raise DesignspaceError(f"the app's storage {name!r} ({mask_url(url)}) is neither SQLite nor PostgreSQL, "
                                   "which the app can open read-only (fix: allow only those)")
        out[name] = url
    return out


def _named(text: str) -> tuple[str, str]:
    name, sep, url = text.partition("=")
    if not sep or not name.strip() or "://" in name:
        raise DesignspaceError("the app's --storage takes NAME=URL (fix: streamlit run app.py -- --storage "
                               "team=postgresql+psycopg://USER:PW@HOST/DB)")
    return name.strip(), url.strip()


def _sqlite_file(url: str) -> Path | None:
    if not url.startswith("sqlite"):
        return None
    rest = url.split(":///", 1)[1] if ":///" in url else ""
    return Path(rest.split("?", 1)[0])


def _read_only(url: str, db: Path | None) -> tuple[str, dict[str, Any]]:
    """The URL and engine arguments that open ``url`` read-only: SQLite through its ``mode=ro`` URI, PostgreSQL in
    read-only transactions; Optuna's table creation then fails rather than writes."""
    if db is not None:
        return f"sqlite:///file:{db}?mode=ro&uri=true", {}
    return url, {"connect_args": {"options": "-c default_transaction_read_only=on"}}


def load_storage_study(root: str | Path, url: str, name: str, label: str | None = None) -> Study:
    """Reads a study straight from its Optuna storage (a PostgreSQL server, or an SQLite file in ``root``), read-only.

    The app passes only URLs its operator allowed (:func:`allowed_storages`). Errors name the storage by ``label``
    and never say how the server answered (a visitor must not learn which hosts and ports exist); the reason goes
    to the server's log.

    Args:
        root: the results directory: SQLite files must lie inside it, and ``<root>/<name>/archs/`` (if there)
            provides the Arch files.
        url: an SQLAlchemy URL (``postgresql+psycopg://USER:PW@HOST/DB``, ``sqlite:////path/study.db``).
        name: the study name in that storage.
        label: how messages name the storage (default: the URL, password masked).

    Raises:
        DesignspaceError: a refused or malformed URL, an unreachable server, no such study, or a study that
            designspace did not write.
    """
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    from designspace.search.storage import mask_url

    url, name = url.strip(), name.strip()
    masked = label or mask_url(url)
    db = _sqlite_file(url)
    if db is not None:
        base = Path(root).resolve()
        if not db.is_absolute() or (db.resolve() != base and base not in db.resolve().parents):
            raise DesignspaceError(f"refusing {masked!r}: the app reads SQLite studies only inside the results "
                                   f"directory {base} (fix: give sqlite:////{str(base).lstrip('/')}/STUDY/study.db)")
        if not db.is_file():
            raise DesignspaceError(f"there is no SQLite file for {masked!r} (fix: check the path)")
        db = db.resolve()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    ro_url, engine_kwargs = _read_only(url, db)
    try:
        storage = optuna.storages.RDBStorage(ro_url, engine_kwargs=engine_kwargs, skip_compatibility_check=False)
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            known = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
            raise DesignspaceError(f"no study {name!r} in {masked} (fix: pick one of: {', '.join(known) or 'none'})"
                                   ) from None
        trials = study.get_trials(deepcopy=False)
        settings = study.user_attrs.get("designspace")
    except DesignspaceError:
        raise
    except (SQLAlchemyError, ValueError, ImportError, RuntimeError) as err:
        log.warning("app: cannot read the storage %s: %s", mask_url(url),
                    " ".join(str(getattr(err, "orig", err)).split())[:300])
        raise DesignspaceError(f"cannot read the storage {masked!r} as a designspace study storage (fix: ask the "
                               "app's operator, whose server log has the reason)") from None
    if not isinstance(settings, dict):
        raise DesignspaceError(f"study {name!r} in {masked} was not written by designspace search (no settings) "
                               "(fix: pick a study that designspace search wrote)")
    from designspace.results import summarize

    rows = study_rows(trials, settings)
    summary = summarize(rows, settings)
    folder: Path | None
    try:
        folder = safe_path(root, name)
        folder = folder if (folder / ARCHS).is_dir() else None
    except DesignspaceError:
        folder = None
    notes = [] if folder else [f"the Arch files of {name!r} are not in this results directory: architecture "
                               "details and downloads need results/<study>/archs/"]
    return Study(name, folder, settings, summary, _frame(rows, settings, masked), source=masked, notes=notes)


def _arch_path(study: Study, row: pd.Series | dict[str, Any]) -> Path:
    if study.folder is None:
        raise DesignspaceError(f"the Arch files of study {study.name!r} are not in this results directory (fix: "
                               "copy results/<study>/archs/ here, or open the study from its folder)")
    rel = str(row.get("arch", "") or "")
    if not rel:
        raise DesignspaceError(f"trial {row.get('number')} has no Arch (it was rejected or failed before its Arch "
                               "was written): pick another trial")
    path = safe_path(study.folder, rel)
    if not path.is_file():
        raise DesignspaceError(f"the Arch file {rel} of trial {row.get('number')} is missing (fix: rerun the search "
                               "command, which writes every evaluated Arch)")
    return path


def arch_yaml_bytes(study: Study, row: pd.Series | dict[str, Any]) -> bytes:
    """The trial's Arch YAML file, as stored in ``archs/`` (for a download button).

    Raises:
        DesignspaceError: no Arch for this trial, a missing file, or a path outside the results directory.
    """
    return _arch_path(study, row).read_bytes()


def load_arch_of(study: Study, row: pd.Series | dict[str, Any]) -> Any:
    """The trial's :class:`designspace.Arch`, loaded (and validated) from its YAML file.

    Raises:
        DesignspaceError: as :func:`arch_yaml_bytes`, or an invalid Arch file (``DocumentError``).
    """
    from designspace.network import load_arch

    return load_arch(_arch_path(study, row))


def trials_csv_bytes(study: Study) -> bytes:
    """The study's ``trials.csv`` (the file itself for a folder study, else written from the rows).

    Raises:
        DesignspaceError: a path outside the results directory or an unreadable file.
    """
    if study.folder is None or not (study.folder / TRIALS_CSV).is_file():
        return study.trials.to_csv(index=False).encode("utf-8")
    try:
        return safe_path(study.folder, TRIALS_CSV).read_bytes()
    except OSError as err:
        raise DesignspaceError(f"cannot read {study.folder / TRIALS_CSV}: {err.strerror}") from None


def onnx_bytes(arch_yaml: bytes) -> bytes:
    """The ONNX model (opset 17, batch 1, input ``"input"`` 1x3xRxR float32, output ``"logits"``) of an Arch.

    Args:
        arch_yaml: the Arch YAML file's bytes (what :func:`arch_yaml_bytes` returns).

    Raises:
        DesignspaceError: an invalid Arch or an exporter failure.
    """
    import torch

    from designspace.arch import Arch
    from designspace.evaluate.measure.onnx import export_onnx
    from designspace.network import build_model

    arch = Arch.from_yaml(arch_yaml.decode("utf-8"), file="arch.yaml")
    torch.manual_seed(0)
    model = build_model(arch)
    example = torch.zeros(1, arch.in_chans, arch.resolution, arch.resolution)
    return export_onnx(model, example)


def finite(value: Any) -> float | None:
    """``value`` as a float, or ``None`` when it is empty, NaN or infinite."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def default_results_dir() -> Path:
    """The results directory the app shows: ``$DESIGNSPACE_RESULTS`` or ``./results`` (not created)."""
    from designspace.evaluate.cache import results_dir

    return Path(os.fspath(results_dir()))
