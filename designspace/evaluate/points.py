"""Published (Arch, measurement) points: what the seed papers measured, one record per network.

A point is an Arch together with the figures a paper prints for it: parameters, MACs, ImageNet-1K
top-1 and device latencies. They feed the device cost model (``evaluate/devices/profiles.py``) and the top-1
predictor. The data are package files:

- ``designspace/data/points/<paper>.csv``: one row per point, columns exactly :data:`COLUMNS`;
  ``arch`` is a path relative to ``designspace/data/points/archs/`` or a zoo model name;
- ``designspace/data/points/archs/<group>/<id>.yaml``: the Arch documents;
- the zoo models (``designspace/data/published.csv``), as points of group ``zoo``.

Latencies are keyed by device profile name (:data:`DEVICES`), in milliseconds as published.
"""

from __future__ import annotations

import csv
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from designspace._yaml import read_document
from designspace.arch import Arch
from designspace.exceptions import DocumentError

__all__ = ["COLUMNS", "DEVICES", "Point", "groups", "load_points"]

#: The columns of a points CSV, in order (the seed papers' devices). A file may carry other latency columns of
#: :data:`DEVICES` instead of these four: the header is ``id,group,arch,params_m,gmacs,top1``, then latency
#: columns, then ``source,notes``.
COLUMNS = ("id", "group", "arch", "params_m", "gmacs", "top1", "iphone13_ms", "iphone14_ms", "p100_ms",
           "xeon_e5_2680_4t_ms", "source", "notes")
_HEAD, _TAIL = COLUMNS[:6], COLUMNS[-2:]

#: CSV latency column -> device profile name (``devices/<name>.yaml``). The last six are the MobileNetV4
#: paper's phones (Qin et al., ECCV 2024, Table 6 of arXiv 2404.10518v2; TFLite: INT8 on the CPUs, the Hexagon
#: DSP and the EdgeTPU, FP16 on the GPUs).
DEVICES = {"iphone13_ms": "iphone13", "iphone14_ms": "iphone14", "p100_ms": "p100",
           "xeon_e5_2680_4t_ms": "xeon-e5-2680-4t", "pixel6_cpu_ms": "pixel6-cpu",
           "pixel8_edgetpu_ms": "pixel8-edgetpu", "pixel4_dsp_ms": "pixel4-dsp", "pixel7_gpu_ms": "pixel7-gpu",
           "s23_cpu_ms": "s23-cpu", "s23_gpu_ms": "s23-gpu"}

#: published.csv's latency columns -> device profile name.
_PUBLISHED_DEVICES = {"iphone13": "iphone13", "iphone14": "iphone14", "p100_onnx": "p100",
                      "xeon_e5_2680_4t_onnx": "xeon-e5-2680-4t"}

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


@dataclass(frozen=True)
class Point:
    """One published network and what its paper measured.

    Attributes:
        id: unique name (a zoo stem such as ``iformer_m`` or ``iformer_t7_conv50_sha25_shma25``).
        group: the study it belongs to (``zoo``, ``iformer_roadmap``, ``iformer_table7`` ...).
        arch: the network.
        params_m: parameters in millions as printed by the paper, or None.
        gmacs: MACs in billions as printed (the papers' "GMACs"/"FLOPs"), or None.
        top1: ImageNet-1K top-1 (percent), from scratch, standard recipe, no distillation; or None.
        latency_ms: device profile name -> published latency in milliseconds.
        source: seed number and table (``003 Table 7``).
        notes: free text.
        where: ``file:line`` of the record.
    """

    id: str
    group: str
    arch: Arch
    params_m: float | None
    gmacs: float | None
    top1: float | None
    latency_ms: Mapping[str, float] = field(default_factory=dict)
    source: str = ""
    notes: str = ""
    where: str = ""


def _points_dir() -> Traversable:
    return resources.files("designspace") / "data" / "points"


def _num(text: str, *, file: str, line: int, column: str, positive: bool = False) -> float | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise DocumentError(f"{column} must be a number, got {text!r}", file=file, line=line, path=column,
                            fix="write a decimal number or leave the cell empty") from None
    if positive and not value > 0:
        raise DocumentError(f"{column} must be positive, got {value:g}", file=file, line=line, path=column,
                            fix="write the published figure in the column's unit, or leave the cell empty")
    return value


@functools.cache
def _arch_from_package(rel: str) -> Arch:
    entry = _points_dir() / "archs"
    for part in rel.split("/"):
        entry = entry / part
    return Arch.from_yaml(entry.read_text(encoding="utf-8"), file=f"designspace/data/points/archs/{rel}")


def _resolve_arch(ref: str, *, base: Path | None, file: str, line: int) -> Arch:
    """An Arch file relative to the archs folder (``base`` for extra files), else a zoo name."""
    from designspace import zoo

    if ref.endswith((".yaml", ".yml")):
        if base is not None:
            path = base / ref
            if not path.is_file():
                raise DocumentError(f"arch file {ref!r} not found under {base}", file=file, line=line,
                                    path="arch", fix="give a path relative to the archs/ folder beside the CSV")
            return Arch.from_file(path)
        entry = _points_dir() / "archs"
        for part in ref.split("/"):
            entry = entry / part
        if not entry.is_file():
            raise DocumentError(f"arch file {ref!r} not found in designspace/data/points/archs/", file=file,
                                line=line, path="arch", fix="add the Arch file or correct the path")
        return _arch_from_package(ref)
    try:
        return zoo.load(ref)
    except DocumentError as err:
        raise DocumentError(f"arch {ref!r} is neither a .yaml path nor a zoo model", file=file, line=line,
                            path="arch", fix=err.fix) from None


def _read_csv(text: str, *, file: str, base: Path | None) -> list[Point]:
    lines = text.splitlines()
    reader = csv.DictReader(lines)
    header = tuple(reader.fieldnames or ())
    middle = header[len(_HEAD):-len(_TAIL)] if len(header) > len(_HEAD) + len(_TAIL) else ()
    if (header[:len(_HEAD)] != _HEAD or header[-len(_TAIL):] != _TAIL or not middle
            or any(c not in DEVICES for c in middle) or len(set(middle)) != len(middle)):
        raise DocumentError(f"columns are {', '.join(header) or '(none)'}", file=file, line=1,
                            fix=f"the header must be exactly: {','.join(COLUMNS)} (or other latency columns among "
                                f"{', '.join(DEVICES)} in place of the four)")
    out = []
    for row in reader:
        line = reader.line_num
        if None in row or any(v is None for v in row.values()):
            raise DocumentError(f"row has {len(row.get(None) or []) + len(COLUMNS)} cells or too few",
                                file=file, line=line, fix=f"give exactly {len(COLUMNS)} cells (quote commas)")
        pid, group = row["id"].strip(), row["group"].strip()
        for name, value in (("id", pid), ("group", group)):
            if not _ID.match(value):
                raise DocumentError(f"{name} {value!r} is empty or has characters other than letters, digits, "
                                    "_.+-", file=file, line=line, path=name, fix=f"give a short {name} such as "
                                    "iformer_table7")
        ref = row["arch"].strip()
        if not ref:
            raise DocumentError("arch is empty", file=file, line=line, path="arch",
                                fix="give an Arch file under archs/ or a zoo model name")
        arch = _resolve_arch(ref, base=base, file=file, line=line)

        def num(column: str, positive: bool = True, row: dict[str, str] = row, line: int = line) -> float | None:
            return _num(row[column], file=file, line=line, column=column, positive=positive)

        latency = {dev: v for col, dev in DEVICES.items() if col in row and (v := num(col)) is not None}
        top1 = num("top1", positive=False)
        if top1 is not None and not 0 < top1 < 100:
            raise DocumentError(f"top1 must be a percentage in (0, 100), got {top1:g}", file=file, line=line,
                                path="top1", fix="write ImageNet-1K top-1 in percent")
        out.append(Point(pid, group, arch, num("params_m"), num("gmacs"), top1, latency,
                         row["source"].strip(), row["notes"].strip(), f"{file}:{line}"))
    return out


def _zoo_points() -> list[Point]:
    """The zoo models with published figures, as points of group ``zoo``."""
    from designspace import zoo

    by_paper = {str(dict(zoo.load(n).meta).get("published_as", "")): n for n in zoo.names()}
    text = (resources.files("designspace") / "data" / "published.csv").read_text(encoding="utf-8")
    out = []
    for i, (model, pub) in enumerate(zoo.published().items()):
        name = by_paper.get(model)
        if name is None:
            continue
        latency = {_PUBLISHED_DEVICES[k]: v for k, v in pub.latency_ms if k in _PUBLISHED_DEVICES}
        line = next((n for n, row in enumerate(text.splitlines(), 1) if row.startswith(model + ",")), i + 2)
        out.append(Point(name, "zoo", zoo.load(name), pub.params_m, pub.macs_g, pub.top1, latency,
                         pub.source, "", f"designspace/data/published.csv:{line}"))
    return out


@functools.cache
def _package_points() -> tuple[Point, ...]:
    out = _zoo_points()
    files = sorted((e for e in _points_dir().iterdir() if e.name.endswith(".csv")), key=lambda e: e.name) \
        if _points_dir().is_dir() else []
    for entry in files:
        out.extend(_read_csv(entry.read_text(encoding="utf-8"), file=f"designspace/data/points/{entry.name}",
                             base=None))
    return tuple(out)


def load_points(groups: Iterable[str] | None = None, *, extra: Iterable[Path] = ()) -> list[Point]:
    """Every published point (the package's points CSVs and the zoo), optionally only some groups.

    Args:
        groups: keep only these groups (``None``: all). An unknown group name is an error.
        extra: more points CSVs (same columns); their ``arch`` paths are relative to an ``archs/``
            folder beside each CSV, or zoo names.

    Returns:
        Points in file order: the zoo first, then the CSVs sorted by name, then ``extra``.

    Raises:
        DocumentError: a bad row (``file:line``, the field and the fix), a duplicate id, an unknown group.
    """
    out = list(_package_points())
    for path in extra:
        path = Path(path)
        text = read_document(path, "points file")
        out.extend(_read_csv(text, file=str(path), base=path.parent / "archs"))
    seen: dict[str, Point] = {}
    for p in out:
        if p.id in seen:
            file, _, line = p.where.rpartition(":")
            raise DocumentError(f"id {p.id!r} is already used at {seen[p.id].where}", file=file,
                                line=int(line) if line.isdigit() else None, path="id",
                                fix="give each point a unique id")
        seen[p.id] = p
    if groups is None:
        return out
    wanted = list(groups)
    known = sorted({p.group for p in out})
    for g in wanted:
        if g not in known:
            raise DocumentError(f"unknown points group {g!r}", file="designspace/data/points", path="group",
                                fix=f"one of: {', '.join(known)}")
    return [p for p in out if p.group in wanted]


def groups() -> list[str]:
    """The groups of the package's points, sorted (``zoo``, ``iformer_roadmap`` ...)."""
    return sorted({p.group for p in _package_points()})
