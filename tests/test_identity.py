"""The identity of the code behind cached figures (issue 15): editing a component's source changes the cache key
of every Arch that uses it, and only of those."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

import designspace as ds
from designspace.evaluate import identity
from designspace.evaluate.cache import Cache


@pytest.fixture
def editable_mbconv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the MBConv family's source file standing in for the module's own (the test edits it)."""
    module = sys.modules["designspace.blocks.mbconv"]
    copy = tmp_path / "mbconv.py"
    shutil.copy(module.__file__, copy)  # type: ignore[arg-type]
    monkeypatch.setattr(module, "__file__", str(copy))
    identity.clear()
    yield copy
    identity.clear()


def test_editing_a_block_changes_its_cache_key(editable_mbconv: Path) -> None:
    mbv2, smt = ds.load_arch("mobilenetv2_100"), ds.load_arch("smt_t")
    before = (identity.component_identity("mbconv"), identity.cache_key(mbv2), identity.cache_key(smt))
    identity.clear()
    assert (identity.component_identity("mbconv"), identity.cache_key(mbv2), identity.cache_key(smt)) == before

    editable_mbconv.write_text(editable_mbconv.read_text(encoding="utf-8") + "\n# a changed block\n",
                               encoding="utf-8")
    identity.clear()
    after = (identity.component_identity("mbconv"), identity.cache_key(mbv2), identity.cache_key(smt))
    assert after[0] != before[0] and after[1] != before[1]
    assert after[2] == before[2]  # SMT-T has no MBConv: its cached figures stay valid
    assert after[1].split("@")[0] == mbv2.fingerprint  # the network is the same; the code is not


def test_a_changed_block_is_not_served_from_the_cache(editable_mbconv: Path, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache.sqlite")
    arch = ds.load_arch("mobilenetv2_100")
    cache.put(arch, "latency", "ctx", {"ms": 6.3})
    assert cache.get(arch, "latency", "ctx") == {"ms": 6.3}
    editable_mbconv.write_text(editable_mbconv.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    identity.clear()
    assert cache.get(arch, "latency", "ctx") is None


def test_corrupt_cache_row_is_dropped(tmp_path: Path) -> None:
    import sqlite3

    cache = Cache(tmp_path / "cache.sqlite")
    arch = ds.load_arch("emo_1m")
    cache.put(arch, "latency", "ctx", {"ms": 1.0})
    db = sqlite3.connect(tmp_path / "cache.sqlite")
    db.execute("UPDATE results SET data = ?", ("{not json",))
    db.commit()
    db.close()
    assert cache.get(arch, "latency", "ctx") is None  # never trusted
    count = sqlite3.connect(tmp_path / "cache.sqlite").execute("SELECT COUNT(*) FROM results").fetchone()[0]
    assert count == 0  # and gone, so the next measurement replaces it
