"""Credentials out of text a user may share: crash reports, logs, error lines.

A storage URL carries its password (``postgresql+psycopg://user:secret@host/db``), and a crash report is meant
to be attached to a bug report, so everything designspace writes for others to read passes through
:func:`redact`. Three forms are covered: the password of a URL's user-info (``scheme://user:PW@``), a
``password=`` / ``pwd=`` / ``passwd=`` key in a URL query or a libpq connection string, and the value of a
``PGPASSWORD``-style environment assignment.
"""

from __future__ import annotations

import re

__all__ = ["MASK", "redact"]

MASK = "***"

_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*:)[^\s/]*@")  # greedy: a password may hold "@"
_KEYS = re.compile(r"(?i)(\b(?:password|passwd|pwd|pgpassword)\s*=\s*)('[^']*'|\"[^\"]*\"|[^\s&;,'\"]+)")


def redact(text: str) -> str:
    """``text`` with every password it can recognize replaced by ``***`` (the user name and host kept)."""
    return _KEYS.sub(lambda m: m.group(1) + MASK, _USERINFO.sub(lambda m: m.group(1) + MASK + "@", text))
