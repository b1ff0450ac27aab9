"""The published models: one Arch file each (``spaces/zoo/*.yaml``) and the figures their papers
publish (``designspace/data/published.csv``, a copy of the seed papers' tables).

The comparison of our counts with the papers' (``designspace zoo``) is
:mod:`designspace.evaluate.counts.zoo_report`: counting is the evaluate layer's. A zoo model is loaded by file
stem (``iformer_m``), case- and punctuation-insensitively, or by the name its paper uses (``iFormer-M``).
"""

from __future__ import annotations

import csv
import functools
import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

from designspace.arch import Arch
from designspace.exceptions import DocumentError, did_you_mean

__all__ = ["Published", "load", "names", "published", "published_for"]


def _zoo_dir() -> Traversable:
    return resources.files("designspace.spaces") / "zoo"


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


@functools.cache
def _index() -> dict[str, str]:
    """Normalized name -> file name, for file stems and published names."""
    index: dict[str, str] = {}
    for entry in sorted(_zoo_dir().iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yaml"):
            continue
        stem = entry.name[: -len(".yaml")]
        index[_key(stem)] = entry.name
        arch = _load_file(entry.name)
        paper = dict(arch.meta).get("published_as")
        if paper:
            index.setdefault(_key(str(paper)), entry.name)
    return index


@functools.cache
def _load_file(filename: str) -> Arch:
    entry = _zoo_dir() / filename
    return Arch.from_yaml(entry.read_text(encoding="utf-8"), file=f"spaces/zoo/{filename}")


def names() -> list[str]:
    """The zoo's model names (file stems), sorted."""
    return sorted({f[: -len(".yaml")] for f in _index().values()})


def load(name: str) -> Arch:
    """The zoo Arch called ``name`` (``"iformer_m"``, ``"iFormer-M"``).

    Raises:
        DocumentError: unknown name; the message gives the closest and the list.
    """
    filename = _index().get(_key(name))
    if filename is None:
        hint = did_you_mean(_key(name), names())
        raise DocumentError(f"{name!r} is neither an Arch file nor a zoo model", file=name,
                            fix=f"{hint}give a path to a .yaml file or one of: {', '.join(names())}")
    return _load_file(filename)


@dataclass(frozen=True)
class Published:
    """What a seed paper publishes for one model (None = not published).

    Attributes:
        model: the paper's name (``"iFormer-M"``).
        family: model family.
        params_m: parameters, millions.
        macs_g: MACs, billions (the papers' "FLOPs").
        top1: ImageNet-1K top-1, percent, trained from scratch without distillation.
        latency_ms: published latencies in milliseconds by device key (``iphone13``, ``iphone14``,
            ``p100_onnx``, ``xeon_e5_2680_4t_onnx``).
        source: seed file and table.
    """

    model: str
    family: str
    params_m: float | None
    macs_g: float | None
    top1: float | None
    resolution: int
    latency_ms: tuple[tuple[str, float], ...]
    source: str


def _num(text: str) -> float | None:
    return float(text) if text.strip() else None


@functools.cache
def published() -> dict[str, Published]:
    """Published figures by the paper's model name."""
    out = {}
    text = (resources.files("designspace") / "data" / "published.csv").read_text(encoding="utf-8")
    for row in csv.DictReader(text.splitlines()):
        lat = tuple((k[: -len("_ms")], float(v)) for k, v in row.items() if k.endswith("_ms") and v.strip())
        out[row["model"]] = Published(row["model"], row["family"], _num(row["params_m"]), _num(row["macs_g"]),
                                      _num(row["top1"]), int(row["resolution"]), lat, row["source"])
    return out


def published_for(arch: Arch) -> Published | None:
    """The published figures of a zoo Arch (through its ``meta.published_as``), if any."""
    paper = dict(arch.meta).get("published_as")
    return published().get(str(paper)) if paper else None
