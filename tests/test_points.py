"""The published points: the loader's contract, its errors, and every printed count reproduced by its Arch."""

from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path

import pytest

import designspace as ds
from designspace.evaluate.points import COLUMNS, Point, groups, load_points
from designspace.exceptions import DocumentError

HEADER = ",".join(COLUMNS)


def test_zoo_points_come_from_published() -> None:
    zoo = {p.id: p for p in load_points(["zoo"])}
    assert zoo["iformer_m"].latency_ms == {"iphone13": 1.10}
    assert zoo["efficientmod_xxs"].latency_ms == {"iphone13": 1.29, "p100": 3.0, "xeon-e5-2680-4t": 10.2}
    assert zoo["emo_1m"].latency_ms == {"iphone14": 4.5}
    assert zoo["iformer_m"].where.startswith("designspace/data/published.csv:")
    assert all(p.group == "zoo" and isinstance(p, Point) for p in zoo.values())
    assert "zoo" in groups()


def test_every_point_loads_with_unique_ids() -> None:
    points = load_points()
    assert len({p.id for p in points}) == len(points)
    assert {p.group for p in points} == set(groups())
    for p in points:
        assert all(ms > 0 for ms in p.latency_ms.values()), p.where
        assert p.source, p.where


def _write(tmp: Path, rows: list[str], arch: str | None = None) -> Path:
    (tmp / "archs").mkdir(exist_ok=True)
    if arch is not None:
        (tmp / "archs" / "net.yaml").write_text(arch)
    path = tmp / "extra.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def test_extra_file_with_its_own_arch(tmp_path: Path) -> None:
    arch = ds.load_arch("iformer_t").to_yaml()
    path = _write(tmp_path, ["mine,user,net.yaml,,,,0.5,,,,my phone,", "mine2,user,iformer_t,,,,0.6,,,,x,"], arch)
    got = {p.id: p for p in load_points(["user"], extra=[path])}
    assert got["mine"].latency_ms == {"iphone13": 0.5}
    assert got["mine"].arch.fingerprint == ds.load_arch("iformer_t").fingerprint
    assert got["mine2"].where == f"{path}:3"


@pytest.mark.parametrize(("row", "needle"), [
    ("a,user,nowhere.yaml,,,,0.5,,,,s,", "nowhere.yaml"),
    ("a,user,not_a_zoo_model,,,,0.5,,,,s,", "neither"),
    ("a,user,iformer_t,,,,-1,,,,s,", "iphone13_ms must be positive"),
    ("a,user,iformer_t,,,,fast,,,,s,", "must be a number"),
    ("a,user,iformer_t,,,120,,,,,s,", "top1"),
    ("a b,user,iformer_t,,,,1,,,,s,", "id"),
    ("iformer_t,user,iformer_t,,,,1,,,,s,", "already used"),
])
def test_bad_rows_name_file_line_and_fix(tmp_path: Path, row: str, needle: str) -> None:
    path = _write(tmp_path, [row])
    with pytest.raises(DocumentError) as err:
        load_points(extra=[path])
    msg = str(err.value)
    assert needle in msg and f"{path}:2" in msg and "fix:" in msg and "\n" not in msg


def test_bad_header_and_unknown_group(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("id,group\n")
    with pytest.raises(DocumentError, match="header must be exactly"):
        load_points(extra=[path])
    with pytest.raises(DocumentError, match="unknown points group 'nope'"):
        load_points(["nope"])


def _printed() -> list[tuple[str, str, str, str]]:
    """(id, arch ref, printed params, printed gmacs) of every CSV row that prints a count."""
    out = []
    root = resources.files("designspace") / "data" / "points"
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".csv"):
            for row in csv.DictReader(entry.read_text().splitlines()):
                if row["params_m"].strip() or row["gmacs"].strip():
                    out.append((row["id"], row["arch"], row["params_m"].strip(), row["gmacs"].strip()))
    return out


def _close(ours: float, printed: str) -> bool:
    decimals = len(printed.partition(".")[2])
    return abs(ours - float(printed)) <= 0.5 * 10 ** -decimals + 1e-9


@pytest.mark.parametrize(("pid", "ref", "params", "gmacs"), _printed(), ids=[r[0] for r in _printed()])
def test_arch_reproduces_printed_counts(pid: str, ref: str, params: str, gmacs: str) -> None:
    """Params and MACs to the printed precision, in the paper's convention (the Arch's meta.macs_convention:
    ``all``, ``no_norm`` = norms fused into convolutions as iFormer counts, ``no_attn``). Where a paper's own
    tables disagree with each other, the Arch's meta.count_discrepancy says how; then the figure must be within
    4% and the discrepancy must be real (a declared discrepancy that matches to the printed precision fails)."""
    point = {p.id: p for p in load_points()}[pid]
    c = ds.count(point.arch)
    meta = dict(point.arch.meta)
    convention = str(meta.get("macs_convention", "all"))
    cat = c.by_category()
    macs = c.macs - {"all": 0, "no_norm": cat.get("norm", 0), "no_attn": cat.get("matmul", 0)}[convention]
    figures = [(c.params / 1e6, params, "params (M)"), (macs / 1e9, gmacs, "GMACs")]
    misses = [f"{what} {ours:.4f}, printed {printed}" for ours, printed, what in figures
              if printed and not _close(ours, printed)]
    if "count_discrepancy" in meta:
        assert misses, f"{pid}: declares a count discrepancy but reproduces the printed counts"
        assert all(abs(ours / float(printed) - 1) < 0.04 for ours, printed, _ in figures if printed), misses
    else:
        assert not misses, f"{pid}: {'; '.join(misses)}"
