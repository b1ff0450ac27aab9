"""Where a study lives: an SQLite file under ``results/<study>/`` (one writer) or an SQLAlchemy URL such as
PostgreSQL (many workers on many machines).

* Every storage gets heartbeats (a trial whose worker stops beating for ``GRACE_S`` is failed) and a retry
  of such trials (:class:`optuna.storages.RetryHeartbeatStaleTrialCallback`), so a killed worker's trial is
  run again: within ``GRACE_S`` + ``HEARTBEAT_S`` seconds of the kill while another worker runs (every worker
  checks at its start, before each trial and while it waits at its end, :func:`fail_stale`), else by the next
  run of the command. ``DESIGNSPACE_HEARTBEAT_S`` and ``DESIGNSPACE_GRACE_S`` (whole seconds) change them.
* An SQLite database file is locked by its writer (``<file>.lock`` beside it, e.g.
  ``results/<study>/study.db.lock``: an ``flock`` the kernel releases when the process dies, kill -9
  included). The lock belongs to the file, not to the results folder, so two workers with one
  ``--storage sqlite:///...`` and different results folders are one writer too many: the second is refused
  with what to use instead. The writer holding the lock fails the RUNNING trials it finds at once, as no one
  else can be running them.
* Neither the lock nor ``storage.txt`` is written through a symbolic link: a link where the lock goes is
  refused with one line; ``storage.txt`` is replaced (written beside, renamed over the link, never through it).
* A database that cannot be opened (a corrupt SQLite file, a full disk, a read-only folder) is one line naming
  the file, the cause and the fix.
"""

from __future__ import annotations

import errno
import fcntl
import os
import random
import re
import time
import warnings
from pathlib import Path
from typing import IO, Any

from designspace.evaluate.cache import disk_note
from designspace.exceptions import DesignspaceError
from designspace.search import optuna_compat

__all__ = ["GRACE_S", "HEARTBEAT_S", "StudyStorage", "fail_stale", "heartbeat", "mask_url", "open_storage",
           "sqlite_file", "storage_fault"]

HEARTBEAT_S = 10
GRACE_S = 40


def heartbeat() -> tuple[int, int]:
    """The heartbeat interval and the grace period, seconds: :data:`HEARTBEAT_S` and :data:`GRACE_S`, or
    ``$DESIGNSPACE_HEARTBEAT_S`` and ``$DESIGNSPACE_GRACE_S`` (whole seconds, at least 1; the grace at least
    two beats).

    Raises:
        DesignspaceError: a value that is not a whole number of seconds, with the fix.
    """
    values = []
    for name, default in (("DESIGNSPACE_HEARTBEAT_S", HEARTBEAT_S), ("DESIGNSPACE_GRACE_S", GRACE_S)):
        text = os.environ.get(name, "").strip()
        try:
            value = int(text) if text else default
        except ValueError:
            value = 0
        if value < 1:
            raise DesignspaceError(f"${name} is {text[:20]!r} (fix: a whole number of seconds, at least 1, or unset "
                                   f"it for {default})")
        values.append(value)
    beat, grace = values
    return beat, max(grace, 2 * beat)


def fail_stale(study: Any) -> None:
    """Fails the RUNNING trials whose worker stopped beating for the grace period and queues each again
    (Optuna runs this only when a trial starts; designspace also runs it when a worker starts, and while it
    waits at the end for trials running elsewhere, so that a study whose target is reached by counting a dead
    worker's trial still gets it re-run)."""
    import optuna

    with warnings.catch_warnings():  # marked experimental since Optuna 2.9, unchanged since; pinned range
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


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

    def close(self, quiet: bool = False) -> None:
        """Writes what waits, releases the lock and disposes of the connections. ``quiet``: a failed write is
        let go (the run is already failing with its own error; the trial it leaves RUNNING is re-run)."""
        flush = getattr(self.storage, "flush", None)
        try:
            if flush is not None:
                flush()
        except Exception:
            if not quiet:
                raise
        finally:
            self._release()

    def _release(self) -> None:
        if self.lock is not None:
            fcntl.flock(self.lock, fcntl.LOCK_UN)
            self.lock.close()
            self.lock = None
        engine = getattr(self.storage, "engine", None)
        if engine is not None:
            engine.dispose()


def sqlite_file(url: str) -> Path | None:
    """The database file of an ``sqlite`` URL, resolved (symbolic links and ``..`` followed, so that two
    spellings of one file are one file), or ``None``: another database, or SQLite in memory."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:" \
            or parsed.database.startswith("file:"):
        return None
    return Path(parsed.database).expanduser().resolve()


def _lock(db: Path, folder: Path, study: str) -> IO[str]:
    """The SQLite file's single-writer lock (``<db>.lock``), held until :meth:`StudyStorage.close`."""
    path = db.with_name(db.name + ".lock")
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        # never through a link: a link here could make the writer truncate whatever file it names
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise DesignspaceError(f"{path}: a symbolic link where the study's lock goes; designspace does not write "
                                   "through links (fix: remove the link)") from None
        raise DesignspaceError(f"{path}: the SQLite study's lock cannot be written ({err.strerror}) (fix: "
                               f"{_fix(err)})") from None
    handle = os.fdopen(fd, "r+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = handle.read(2000).strip().splitlines()
        handle.close()
        pid = holder[0] if holder else "?"
        where = f"; results in {holder[2]}" if len(holder) > 2 else ""
        other = f"study {holder[1]!r}, " if len(holder) > 1 and holder[1] != study else ""
        raise DesignspaceError(
            f"study {study!r}: the SQLite file {db} is being written by another process ({other}pid {pid}{where}); "
            "an SQLite file takes one writer, wherever its results folder is (fix: wait for it, give each study "
            "its own SQLite file, or for several workers use a server: --storage "
            "postgresql+psycopg://USER:PASSWORD@HOST/DB)") from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n{study}\n{folder.resolve()}\n")  # who holds it, for the refusal above
        handle.flush()
    except OSError:  # a full disk: the lock holds all the same; only the refusal's details are lost
        pass
    return handle


def _fix(err: OSError) -> str:
    """The fix for a file that cannot be written, by its cause."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return "free disk space there, or write the results elsewhere with DESIGNSPACE_RESULTS"
    if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "make the folder writable, or write the results elsewhere with DESIGNSPACE_RESULTS"
    return "check the disk and the folder, or write the results elsewhere with DESIGNSPACE_RESULTS"


def _write_text(path: Path, text: str) -> None:
    """Replaces ``path`` with ``text``: written beside, then renamed over it, so that a symbolic link at
    ``path`` is replaced, never written through, and a reader sees the old or the new text."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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
    heartbeat()  # likewise
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DesignspaceError(f"{folder}: the study's folder cannot be created ({err.strerror}) (fix: {_fix(err)})"
                               ) from None
    lock = None
    if url is None:
        url = f"sqlite:///{(folder / 'study.db').resolve()}"
    db = sqlite_file(url)
    if db is not None:
        lock = _lock(db, folder, study)
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
        if db is not None:  # a file, not a server: say what is wrong with the file
            reason += disk_note(db, reason)
            raise DesignspaceError(f"{db}: the SQLite study cannot be opened ({reason}) (fix: "
                                   f"{_sqlite_fix(reason)})") from None
        raise DesignspaceError(f"cannot reach the study storage {mask_url(url)!r}: {reason} (fix: check the host, "
                               "port, user and password, and that the server is running)") from None
    if url.startswith("sqlite"):
        _fast_sqlite(storage.engine)
    try:
        _write_text(folder / "storage.txt", mask_url(url) + "\n")
    except OSError as err:
        _release(lock)
        raise DesignspaceError(f"{folder / 'storage.txt'}: cannot be written ({err.strerror}) (fix: {_fix(err)})"
                               ) from None
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

    beat, grace = heartbeat()
    for attempt in range(6):
        try:
            with warnings.catch_warnings():  # heartbeats and their retry callback are marked experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna_compat.batched_rdb_class()(
                    url, engine_kwargs=engine_kwargs, heartbeat_interval=beat, grace_period=grace,
                    heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2))
        except (IntegrityError, ProgrammingError) as err:
            text = str(getattr(err, "orig", err))
            if attempt == 5 or not ("duplicate key" in text or "already exists" in text):
                raise
            time.sleep(0.2 + random.random() * (attempt + 1))  # the other worker finishes the schema meanwhile
    raise AssertionError("unreachable")


def _sqlite_fix(reason: str) -> str:
    low = reason.lower()
    if "not a database" in low or "malformed" in low or "corrupt" in low:
        return ("the file is damaged: move it aside and rerun to start the study afresh, or restore it from a "
                "backup; trials.csv keeps what the study had")
    if "full" in low:
        return "free disk space there, or write the results elsewhere with DESIGNSPACE_RESULTS"
    if "readonly" in low or "read-only" in low or "unable to open" in low or "permission" in low:
        return "make the file and its folder writable, or write the results elsewhere with DESIGNSPACE_RESULTS"
    return "check the file, the disk and the folder's permissions"


#: the SQLite messages that are about the file or its disk, not about designspace
_SQLITE_FAULTS = ("disk is full", "readonly database", "read-only", "disk i/o error", "malformed", "not a database",
                  "unable to open database file")
_FILE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO)


def storage_fault(err: BaseException, store: StudyStorage | None, folder: Path) -> DesignspaceError | None:
    """The one line for a search that failed because a file or the storage could not be written (a full disk, a
    read-only folder, a damaged database, a lost server), found anywhere in ``err``'s chain of causes (Optuna
    wraps a failed commit in its own errors); ``None`` when the failure is something else.

    Args:
        err: what the search raised.
        store: the opened storage (its URL names the database), or ``None``.
        folder: the study's results folder.
    """
    import sqlite3

    resume = "; rerun the same command to resume: every finished trial is kept"
    seen: set[int] = set()
    todo: list[BaseException | None] = [err]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in _FILE_ERRNOS:
            where = e.filename if e.filename else folder
            return DesignspaceError(f"{where}: cannot be written ({e.strerror}) (fix: {_fix(e)}{resume})")
        if isinstance(e, sqlite3.Error):
            text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if any(f in text.lower() for f in _SQLITE_FAULTS):
                db = sqlite_file(store.url) if store is not None else None
                text += disk_note(db or folder / "study.db", text)
                return DesignspaceError(f"{db or folder / 'study.db'}: the study cannot be written ({text}) (fix: "
                                        f"{_sqlite_fix(text)}{resume})")
        orig = getattr(e, "orig", None)
        if store is not None and sqlite_file(store.url) is None and type(orig).__module__.startswith("psycopg") \
                and type(orig).__name__ == "OperationalError":
            text = str(orig).strip().splitlines()[0] if str(orig).strip() else "connection lost"
            return DesignspaceError(f"the study storage {mask_url(store.url)!r} failed ({text}) (fix: check the "
                                    f"server and its disk{resume})")
        todo.extend([e.__cause__, e.__context__, orig if isinstance(orig, BaseException) else None])
    return None


def _release(lock: IO[str] | None) -> None:
    if lock is not None:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
