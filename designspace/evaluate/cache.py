"""The evaluation cache: measured results keyed by Arch fingerprint, the identity of its code and the
measurement context, in SQLite.

Default file: ``results/cache.sqlite`` (``DESIGNSPACE_RESULTS`` moves the results folder). Several
processes may read and write it (SQLite's locking, a busy timeout, WAL journal); a cache that cannot be
opened or written degrades to no cache with a warning, never to a failed evaluation.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from designspace.arch import Arch

__all__ = ["Cache", "default_cache_path", "results_dir"]

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
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_cache_path()
        self._db: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection | None:
        if self._db is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, timeout=30.0)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("CREATE TABLE IF NOT EXISTS results (fingerprint TEXT, kind TEXT, context TEXT, "
                           "created REAL, data TEXT, PRIMARY KEY (fingerprint, kind, context))")
                db.commit()
                self._db = db
            except (sqlite3.Error, OSError) as err:
                log.warning("evaluation cache %s unavailable (%s); going on without it", self.path, err)
                return None
        return self._db

    def get(self, arch: Arch | str, kind: str, context: str) -> dict[str, Any] | None:
        """The stored value, or ``None``. ``arch``: an Arch (keyed by its fingerprint and the identity of its
        code, :func:`designspace.evaluate.identity.cache_key`) or a key string. A row that is not a JSON
        object is deleted and reported missing: a corrupt entry is measured again, never trusted."""
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
            return data
        except (TypeError, ValueError) as err:
            log.warning("evaluation cache %s: a corrupt entry for %s (%s) is dropped and measured again",
                        self.path, key, err)
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
            log.warning("evaluation cache write failed (%s)", err)

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
            log.warning("evaluation cache write failed (%s)", err)

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

    def close(self) -> None:
        """Closes the connection."""
        if self._db is not None:
            self._db.close()
            self._db = None


def _key(arch: Arch | str) -> str:
    if isinstance(arch, str):
        return arch
    from designspace.evaluate.identity import cache_key

    return cache_key(arch)
