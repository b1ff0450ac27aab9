"""Where a study lives: an SQLite file under ``results/<study>/`` (one writer) or an SQLAlchemy URL such as
PostgreSQL (many workers on many machines).

* Every storage gets heartbeats (a trial whose worker stops beating for ``GRACE_S`` is failed) and a retry
  of such trials (:class:`optuna.storages.RetryHeartbeatStaleTrialCallback`), so a killed worker's trial is
  run again.
* An SQLite study is locked by its writer (``results/<study>/.lock``, an ``flock`` the kernel releases
  when the process dies, kill -9 included). A second writer is refused with what to use instead; the
  writer holding the lock fails the RUNNING trials it finds at once, as no one else can be running them.
"""

from __future__ import annotations

import fcntl
import os
import random
import re
import time
import warnings
from pathlib import Path
from typing import IO, Any

from designspace.exceptions import DesignspaceError
from designspace.search import optuna_compat

__all__ = ["GRACE_S", "HEARTBEAT_S", "StudyStorage", "mask_url", "open_storage"]

HEARTBEAT_S = 10
GRACE_S = 40


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***``."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


class StudyStorage:
    """An opened storage: the Optuna storage object, its URL, and the SQLite lock if any."""

    def __init__(self, storage: Any, url: str, lock: IO[str] | None) -> None:
        self.storage = storage
        self.url = url
        self.lock = lock

    @property
    def exclusive(self) -> bool:
        """Whether this process is the only writer (a locked SQLite study)."""
        return self.lock is not None

    def close(self) -> None:
        """Writes what waits, releases the lock and disposes of the connections."""
        flush = getattr(self.storage, "flush", None)
        if flush is not None:
            flush()
        if self.lock is not None:
            fcntl.flock(self.lock, fcntl.LOCK_UN)
            self.lock.close()
            self.lock = None
        engine = getattr(self.storage, "engine", None)
        if engine is not None:
            engine.dispose()


def _lock(folder: Path, study: str) -> IO[str]:
    path = folder / ".lock"
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (held for the whole search)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        pid = handle.read().strip() or "?"
        handle.close()
        raise DesignspaceError(
            f"study {study!r} is being written by another process (pid {pid}) in {folder}; an SQLite study takes "
            "one writer (fix: wait for it, or for several workers use a server: --storage "
            "postgresql+psycopg://USER:PASSWORD@HOST/DB)") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


#: the database kinds a study may live in (SQLAlchemy dialects Optuna supports)
_DIALECTS = ("sqlite", "postgresql", "mysql")


def check_storage_url(url: str) -> str:
    """``url`` if it reads as an SQLAlchemy URL of a supported database; nothing is connected to.

    Raises:
        DesignspaceError: a malformed URL, control characters, or an unsupported database kind, with the fix.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    fix = ("(fix: write an SQLAlchemy URL such as sqlite:///path/study.db or "
           "postgresql+psycopg://USER:PASSWORD@HOST:5432/DB)")
    if not isinstance(url, str) or not url.isprintable() or len(url) > 2000:
        raise DesignspaceError(f"bad storage URL {mask_url(str(url))[:80]!r}: not a one-line URL {fix}")
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError, TypeError) as err:
        raise DesignspaceError(f"bad storage URL {mask_url(url)[:80]!r}: {str(err).splitlines()[0][:120]} {fix}"
                               ) from None
    if parsed.get_backend_name() not in _DIALECTS:
        raise DesignspaceError(f"bad storage URL {mask_url(url)[:80]!r}: unsupported database "
                               f"{parsed.get_backend_name()!r} (fix: one of {', '.join(_DIALECTS)})")
    return url


def open_storage(url: str | None, folder: Path, study: str) -> StudyStorage:
    """Opens the study's storage (creating ``folder``).

    Args:
        url: an SQLAlchemy URL, or ``None`` for ``sqlite:///<folder>/study.db``.
        folder: ``results/<study>/``.
        study: the study name (messages).

    Raises:
        DesignspaceError: a malformed URL, a missing database driver, an unreachable server, or an SQLite study
            another process is writing.
    """
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, SQLAlchemyError

    if url is not None:
        check_storage_url(url)  # before anything is created or connected to
    folder.mkdir(parents=True, exist_ok=True)
    lock = None
    if url is None:
        url = f"sqlite:///{(folder / 'study.db').resolve()}"
    if url.startswith("sqlite"):
        lock = _lock(folder, study)
    engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {
        "pool_pre_ping": True}
    try:
        storage = _create_rdb(url, engine_kwargs)
    except (ArgumentError, NoSuchModuleError, ValueError) as err:
        _release(lock)
        raise DesignspaceError(f"bad storage URL {mask_url(url)!r}: {str(err).splitlines()[0]} (fix: write an "
                               "SQLAlchemy URL such as sqlite:///path/study.db or "
                               "postgresql+psycopg://USER:PASSWORD@HOST:5432/DB)") from None
    except ImportError as err:
        _release(lock)
        raise DesignspaceError(f"the database driver for {mask_url(url)!r} is not installed ({err}) "
                               "(fix: pip install 'psycopg[binary]' for PostgreSQL)") from None
    except (OperationalError, SQLAlchemyError) as err:
        _release(lock)
        reason = str(getattr(err, "orig", err)).strip().splitlines()[0]
        raise DesignspaceError(f"cannot reach the study storage {mask_url(url)!r}: {reason} (fix: check the host, "
                               "port, user and password, and that the server is running)") from None
    if url.startswith("sqlite"):
        _fast_sqlite(storage.engine)
    (folder / "storage.txt").write_text(mask_url(url) + "\n", encoding="utf-8")
    if lock is not None:  # the only writer: read from memory, write through (see _mirror)
        from designspace.search._mirror import MirroredStorage

        storage = MirroredStorage(storage)
    return StudyStorage(storage, url, lock)


def _fast_sqlite(engine: Any) -> None:
    """WAL journal and ``synchronous=NORMAL`` on every connection of ``engine``.

    Optuna commits once per suggested parameter; with SQLite's defaults each commit waits for the disk
    (about 2.5 ms here), which made a 300-trial counts-only search of spaces/mobile.yaml (92 parameters a
    trial) spend 171 of its 279 s in commits. In WAL mode with ``synchronous=NORMAL`` a commit survives the
    process being killed (kill -9), as the resume test checks; only an operating-system crash or a power
    loss can take back the last commits.
    """
    from sqlalchemy import event

    def pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(engine, "connect", pragmas)
    engine.dispose()  # connections opened before the listener reopen with it


def _create_rdb(url: str, engine_kwargs: dict[str, Any]) -> Any:
    """The RDB storage; creating the schema is retried when another worker is creating it at the same moment
    (PostgreSQL then reports a duplicate type or table, seen with three workers started together)."""
    import optuna
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(6):
        try:
            with warnings.catch_warnings():  # heartbeats and their retry callback are marked experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna_compat.batched_rdb_class()(
                    url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                    heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2))
        except (IntegrityError, ProgrammingError) as err:
            text = str(getattr(err, "orig", err))
            if attempt == 5 or not ("duplicate key" in text or "already exists" in text):
                raise
            time.sleep(0.2 + random.random() * (attempt + 1))  # the other worker finishes the schema meanwhile
    raise AssertionError("unreachable")


def _release(lock: IO[str] | None) -> None:
    if lock is not None:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
