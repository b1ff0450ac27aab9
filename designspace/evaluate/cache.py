"""The evaluation cache: measured results keyed by Arch fingerprint, the identity of its code and the
measurement context, in SQLite.

Default file: ``results/cache.sqlite`` (``DESIGNSPACE_RESULTS`` moves the results folder). Several
processes may read and write it (SQLite's locking, a busy timeout, WAL journal); a cache that cannot be
opened or written degrades to no cache with one warning, never to a failed evaluation, unless it was opened
``strict`` (``lut build``, whose whole product is the cache's rows): then the first failure raises
:class:`CacheWriteError` naming the file, the cause and the fix.

Concurrent measurements of one thing on one machine are coordinated by :meth:`Cache.claim`: a lock file per
key beside the cache (``cache.sqlite.locks/``); the first process measures, the others wait for it and then
find its row, so that two ``lut build`` or two ``eval`` of one network at once measure it once (and do not
slow each other's timings down).

Nothing read back is trusted: a row that is not a JSON object, or whose values fail the reader's check
(:func:`number_problem`: finite, positive where a time, of the right type), is dropped with one warning and
measured again.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import math
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from designspace.exceptions import DesignspaceError

if TYPE_CHECKING:
    from designspace.arch import Arch

__all__ = ["Cache", "CacheWriteError", "Check", "default_cache_path", "disk_note", "number_problem", "results_dir"]

#: a reader's check of a stored value: the problem as text, or ``None`` when the value can be trusted
Check = Callable[[dict[str, Any]], "str | None"]


class CacheWriteError(DesignspaceError):
    """A strict cache (:class:`Cache` with ``strict=True``) could not be opened or written."""


def number_problem(data: dict[str, Any], positive: Iterable[str] = (), finite: Iterable[str] = (),
                   counts: Iterable[str] = (), optional: Iterable[str] = ()) -> str | None:
    """What is wrong with the numbers of a stored value, or ``None``.

    Args:
        data: the stored value.
        positive: keys whose value must be a finite number > 0 (times in milliseconds, ratios).
        finite: keys whose value must be a finite number (any sign).
        counts: keys whose value must be a whole number >= 0 (booleans are not numbers here).
        optional: keys among the above that may also be absent or ``None``.
    """
    skip = set(optional)
    for kind, keys in (("positive", positive), ("finite", finite), ("count", counts)):
        for key in keys:
            value = data.get(key)
            if value is None and key in skip:
                continue
            if kind == "count":
                ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
            else:
                ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
                    and (kind == "finite" or value > 0)
            if not ok:
                want = {"positive": "a finite number above 0", "finite": "a finite number",
                        "count": "a whole number >= 0"}[kind]
                return f"{key} is {str(value)[:40]!r}, not {want}"
    return None

log = logging.getLogger(__name__)


def results_dir() -> Path:
    """The results folder: ``$DESIGNSPACE_RESULTS`` or ``./results``."""
    return Path(os.environ.get("DESIGNSPACE_RESULTS", "results"))


def default_cache_path() -> Path:
    """``<results>/cache.sqlite``."""
    return results_dir() / "cache.sqlite"


class Cache:
    """Measured values by (fingerprint, kind, context key). ``kind`` separates latency, proxies, ...

    Args:
        path: the SQLite file (created with its folder), or ``None`` for the default.
        strict: raise :class:`CacheWriteError` when the cache cannot be opened or written, rather than go on
            without it (a run whose only product is the cache, such as ``lut build``).

    Attributes:
        write_error: the first failed write's cause (``None`` while every write succeeded).
    """

    def __init__(self, path: str | Path | None = None, strict: bool = False) -> None:
        self.path = Path(path) if path is not None else default_cache_path()
        self.strict = strict
        self.write_error: str | None = None
        self._db: sqlite3.Connection | None = None
        self._warned = False

    def _failed(self, what: str, err: BaseException) -> None:
        """One warning per cache for failed writes (a full disk fails every one of hundreds), or the strict
        cache's error."""
        cause = _cause(err)
        cause += disk_note(self.path, cause)
        if self.write_error is None:
            self.write_error = cause
        if self.strict:
            raise CacheWriteError(f"{self.path}: the evaluation cache {what} ({cause}) (fix: {_fix(cause)}; rerun "
                                  "to resume: every row stored so far is kept)") from None
        if not self._warned:
            self._warned = True
            log.warning("evaluation cache %s: %s (%s); going on without storing results (fix: %s)",
                        self.path, what, cause, _fix(cause))

    def _connect(self) -> sqlite3.Connection | None:
        if self._db is None:
            if self.path.is_symlink():  # a planted link would make the cache write wherever it points
                log.warning("evaluation cache %s is a symbolic link, which designspace never writes through; going "
                            "on without it (fix: replace it by a real file, or remove it)", self.path)
                return None
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, timeout=30.0)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("CREATE TABLE IF NOT EXISTS results (fingerprint TEXT, kind TEXT, context TEXT, "
                           "created REAL, data TEXT, PRIMARY KEY (fingerprint, kind, context))")
                db.commit()
                self._db = db
            except (sqlite3.Error, OSError) as err:
                if self.strict:
                    self._failed("cannot be opened", err)
                if not self._warned:
                    self._warned = True
                    cause = _cause(err) + disk_note(self.path, _cause(err))
                    log.warning("evaluation cache %s unavailable (%s); going on without it", self.path, cause)
                return None
        return self._db

    def get(self, arch: Arch | str, kind: str, context: str, check: Check | None = None) -> dict[str, Any] | None:
        """The stored value, or ``None``. ``arch``: an Arch (keyed by its fingerprint and the identity of its
        code, :func:`designspace.evaluate.identity.cache_key`) or a key string. A row that is not a JSON
        object, or that ``check`` finds a problem with, is deleted with one warning and reported missing: a
        corrupt entry is measured again, never trusted."""
        db = self._connect()
        if db is None:
            return None
        key = _key(arch)
        try:
            row = db.execute("SELECT data FROM results WHERE fingerprint=? AND kind=? AND context=?",
                             (key, kind, context)).fetchone()
        except sqlite3.Error as err:
            log.warning("evaluation cache read failed (%s)", err)
            return None
        if not row:
            return None
        try:
            data = json.loads(row[0])
            if not isinstance(data, dict):
                raise ValueError("not an object")
            problem = check(data) if check is not None else None
            if problem is not None:
                raise ValueError(problem)
            return data
        except (TypeError, ValueError, KeyError, AttributeError) as err:
            log.warning("evaluation cache %s: a corrupt %s entry for %s (%s) is dropped and measured again",
                        self.path, kind, key, err)
            self.drop(arch, kind, context)
            return None

    def drop(self, arch: Arch | str, kind: str, context: str) -> None:
        """Deletes one entry (a caller that found it unusable)."""
        db = self._connect()
        if db is None:
            return
        try:
            db.execute("DELETE FROM results WHERE fingerprint=? AND kind=? AND context=?", (_key(arch), kind, context))
            db.commit()
        except sqlite3.Error as err:
            self._failed("cannot drop a corrupt row", err)

    def put(self, arch: Arch | str, kind: str, context: str, data: dict[str, Any]) -> None:
        """Stores (or replaces) a value (``arch`` as in :meth:`get`)."""
        db = self._connect()
        if db is None:
            return
        fingerprint = _key(arch)
        try:
            db.execute("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?)",
                       (fingerprint, kind, context, time.time(), json.dumps(data)))
            db.commit()
        except sqlite3.Error as err:
            self._failed("cannot be written", err)

    def put_many(self, kind: str, context: str, items: dict[str, dict[str, Any]]) -> int:
        """Stores (or replaces) many values of ``kind`` in ``context`` by key string, in one transaction; returns how
        many were written (0 where the cache is unavailable)."""
        db = self._connect()
        if db is None or not items:
            return 0
        now = time.time()
        try:
            with db:
                db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?)",
                               [(k, kind, context, now, json.dumps(v)) for k, v in items.items()])
        except sqlite3.Error as err:
            log.warning("evaluation cache write failed (%s)", err)
            return 0
        return len(items)

    def count(self, kind: str, context: str) -> int:
        """How many rows of ``kind`` are stored in ``context`` (0 where the cache is unavailable)."""
        db = self._connect()
        if db is None:
            return 0
        try:
            return int(db.execute("SELECT COUNT(*) FROM results WHERE kind=? AND context=?", (kind, context)
                                  ).fetchone()[0])
        except sqlite3.Error as err:
            log.warning("evaluation cache read failed (%s)", err)
            return 0

    def rows(self, kind: str, context: str) -> list[tuple[str, dict[str, Any]]]:
        """Every stored (key, value) of ``kind`` in ``context``, in key order; rows that are not JSON objects are
        left out (:meth:`get` drops them when asked for one)."""
        db = self._connect()
        if db is None:
            return []
        try:
            found = db.execute("SELECT fingerprint, data FROM results WHERE kind=? AND context=? ORDER BY fingerprint",
                               (kind, context)).fetchall()
        except sqlite3.Error as err:
            log.warning("evaluation cache read failed (%s)", err)
            return []
        out = []
        for key, text in found:
            try:
                data = json.loads(text)
            except (TypeError, ValueError):
                continue
            if isinstance(data, dict):
                out.append((str(key), data))
        return out

    @contextlib.contextmanager
    def claim(self, key: str, what: str) -> Iterator[None]:
        """Holds the machine-wide claim on ``key`` (what is about to be measured: ``"latency|<arch>|<context>"``,
        a table context's entries...) for the ``with`` block; waits (saying so once, naming ``what``) while another
        process holds it. The caller reads the cache again inside the block: the other process may have stored the row.
        Re-entrant within a process; kill -9 releases it (an ``flock``). Where the lock cannot be made (a cache
        in memory, a read-only folder) the block runs unclaimed."""
        if str(self.path) == ":memory:":
            yield
            return
        # a network's latency: 4,096 lock files at most, however many networks a long search measures (two
        # networks sharing one wait for each other now and then; measurements on one machine are best not run
        # together anyway); other keys, few and nested (a table build, then its entries), each their own
        digest = hashlib.sha256(key.encode()).hexdigest()
        name = (f"latency-{digest[:3]}" if key.startswith("latency|") else digest[:24]) + ".lock"
        path = self.path.with_name(self.path.name + ".locks") / name
        held = _CLAIMS.get(str(path))
        if held is not None:  # this process holds it already (a measurement inside a claimed build)
            _CLAIMS[str(path)] = (held[0], held[1] + 1)
            try:
                yield
            finally:
                fd, depth = _CLAIMS[str(path)]
                _CLAIMS[str(path)] = (fd, depth - 1)
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as err:
            log.debug("no claim on %s (%s): measuring unclaimed", key, err)
            yield
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "?"
                log.info("waiting for another process on this machine (pid %s) measuring %s; its results are used "
                         "here", holder, what)
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:  # who holds it, for the others' waiting line; a full disk only loses that
                os.ftruncate(fd, 0)
                os.pwrite(fd, str(os.getpid()).encode(), 0)
            except OSError:
                pass
            _CLAIMS[str(path)] = (fd, 1)
            try:
                yield
            finally:
                del _CLAIMS[str(path)]
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def close(self) -> None:
        """Closes the connection."""
        if self._db is not None:
            self._db.close()
            self._db = None


#: the claims this process holds: lock file -> (descriptor, depth)
_CLAIMS: dict[str, tuple[int, int]] = {}


def disk_note(path: Path, cause: str = "") -> str:
    """``"; the disk is full"`` or ``"; its folder is read-only"`` where that is so of the file system holding
    ``path`` (or its nearest existing folder) and ``cause`` does not say it already (SQLite reports either as
    "disk I/O error" or "unable to open database file"), else ``""``."""
    import shutil

    low = cause.lower()
    for folder in (path.parent, *path.parent.parents):
        if folder.exists():
            try:
                if shutil.disk_usage(folder).free < 64 * 1024 and "full" not in low:
                    return "; the disk is full"
                if (os.statvfs(folder).f_flag & os.ST_RDONLY or not os.access(folder, os.W_OK)) \
                        and "read-only" not in low and "readonly" not in low:
                    return "; its folder is read-only"
            except OSError:
                pass
            return ""
    return ""


def _cause(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text[:200]


def _fix(cause: str) -> str:
    low = cause.lower()
    if "full" in low or "no space" in low or "quota" in low:
        return "free disk space there, or move the results folder with DESIGNSPACE_RESULTS"
    if "read-only" in low or "readonly" in low or "permission" in low or "denied" in low or "unable to open" in low:
        return "make the folder writable, or move the results folder with DESIGNSPACE_RESULTS"
    if "not a database" in low or "malformed" in low or "corrupt" in low:
        return "move the damaged file aside; the cache is rebuilt by measuring again"
    return "check the disk and the folder's permissions, or move the results folder with DESIGNSPACE_RESULTS"


def _key(arch: Arch | str) -> str:
    if isinstance(arch, str):
        return arch
    from designspace.evaluate.identity import cache_key

    return cache_key(arch)
