"""Is an Arch a point of a Space? If so, the flat values that decode to it; if not, the value that falls
outside, named by its place in the Arch.

Blocks of a stage are matched to the stage's segments in order, each segment taking a number of blocks
its depth allows (all equal for a uniform segment, cycling through the positions of a pattern). When
no split works, the reported reason is the one that got furthest through the blocks; at the same block
a parameter value outside the space is preferred to "differs from the block it repeats", and that to a
block type that does not fit where a segment would start (the weakest evidence of what was meant).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from designspace.arch import Arch, Layer
from designspace.space.core import Space
from designspace.space.document import Option, Pick, Segment, Slot, StageSpace
from designspace.space.values import _equal

__all__ = ["Match", "match"]


@dataclass(frozen=True)
class Match:
    """The answer of :func:`match`.

    Attributes:
        ok: the Arch is a point of the space.
        reason: when not, ``path: problem`` naming the Arch field that falls outside.
        values: when it is, flat values that :meth:`Space.decode` turns back into the Arch (inactive
            parameters at their defaults).
    """

    ok: bool
    reason: str = ""
    values: dict[str, Any] = field(default_factory=dict)


#: how much a kind of miss says about what the Arch meant (see the module docstring)
_SPECIFIC = {"value": 0.5, "differs": 0.25, "type": -1.0}


class _Miss(Exception):
    def __init__(self, path: str, problem: str, progress: float = 0, kind: str = "value") -> None:
        super().__init__(f"{path}: {problem}")
        self.progress = progress + _SPECIFIC[kind]


def _value(slot: Slot, value: Any, path: str, out: dict[str, Any]) -> None:
    if value not in slot.dist:
        raise _Miss(path, f"{value!r} is not in {slot.dist.describe()}")
    if slot.dist.free:
        out[slot.name] = next((o for o in getattr(slot.dist, "options", ()) if _equal(o, value)), value)


def _option(opt: Option, layer: Layer, path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in layer.params:
        slot = opt.slot(name)
        assert slot is not None
        _value(slot, value, f"{path}.{name}", out)
    return out


def _pick(pick: Pick, layer: Layer, path: str) -> dict[str, Any]:
    misses = []
    for opt in pick.options:
        if opt.type != layer.type:
            continue
        try:
            out = _option(opt, layer, path)
        except _Miss as miss:
            misses.append(miss)
            continue
        if pick.choice.dist.free:
            out[pick.choice.name] = opt.label
        return out
    if misses:
        raise misses[0]
    raise _Miss(path, f"type {layer.type!r} is not among {[o.type for o in pick.options]}", kind="type")


def _segments(segs: tuple[Segment, ...], blocks: tuple[Layer, ...], k: int, pos: int, zero: bool, stage: int,
              out: dict[str, Any]) -> dict[str, Any]:
    """Matches ``blocks[pos:]`` to ``segs[k:]``; returns the values or raises the furthest miss."""
    if k == len(segs):
        if pos == len(blocks):
            return out
        raise _Miss(f"stages.{stage}.blocks.{pos}", f"{len(blocks) - pos} block(s) left after the stage's segments "
                                                    f"({blocks[pos].type} ...)", pos, "type")
    seg = segs[k]
    if zero and seg.role == "attention":
        return _segments(segs, blocks, k + 1, pos, zero, stage, out)
    best: _Miss | None = None
    depths = sorted(seg.depth.dist.candidates(None), reverse=True)
    for depth in depths:
        if depth > len(blocks) - pos:
            continue
        try:
            vals = dict(out)
            if seg.depth.dist.free:
                vals[seg.depth.name] = depth
            n = len(seg.picks)
            for q in range(min(depth, n)):
                try:
                    vals.update(_pick(seg.picks[q], blocks[pos + q], f"stages.{stage}.blocks.{pos + q}"))
                except _Miss as miss:
                    miss.progress += pos + q
                    raise
            for q in range(n, depth):
                if blocks[pos + q] != blocks[pos + q % n]:
                    raise _Miss(f"stages.{stage}.blocks.{pos + q}", "differs from the block it repeats in its "
                                "segment (blocks of a segment share their parameters)", pos + q, "differs")
            return _segments(segs, blocks, k + 1, pos + depth, zero, stage, vals)
        except _Miss as miss:
            if best is None or miss.progress > best.progress:
                best = miss
    if best is None:
        best = _Miss(f"stages.{stage}.blocks", f"no depth in {seg.depth.dist.describe()} fits the "
                                               f"{len(blocks) - pos} remaining block(s)", pos, "type")
    raise best


def _stage(st: StageSpace, arch: Arch, i: int, zero: bool) -> dict[str, Any]:
    stage = arch.stages[i]
    out: dict[str, Any] = {}
    _value(st.width, stage.width, f"stages.{i}.width", out)
    if stage.stride != st.stride:
        raise _Miss(f"stages.{i}.stride", f"{stage.stride} is not the space's {st.stride}")
    if (stage.downsample is None) != (st.downsample is None):
        raise _Miss(f"stages.{i}.downsample", "the space has " + ("none" if st.downsample is None else "one"))
    if stage.downsample is not None and st.downsample is not None:
        out.update(_pick(st.downsample, stage.downsample, f"stages.{i}.downsample"))
    return _segments(st.segments, stage.blocks, 0, 0, zero, i, out)


def match(space: Space, arch: Arch) -> Match:
    """Whether ``arch`` is a point of ``space`` (see the module docstring)."""
    doc = space.doc
    try:
        out: dict[str, Any] = {}
        if arch.in_chans != doc.in_chans or arch.num_classes != doc.num_classes:
            field_ = "in_chans" if arch.in_chans != doc.in_chans else "num_classes"
            raise _Miss(field_, f"{getattr(arch, field_)} is not the space's {getattr(doc, field_)}")
        _value(doc.resolution, arch.resolution, "resolution", out)
        if len(arch.stages) != len(doc.stages):
            raise _Miss("stages", f"{len(arch.stages)} stages, the space has {len(doc.stages)}")
        out.update(_pick(doc.stem, arch.stem, "stem"))
        stem_opt = doc.stem.option({**_defaults(space), **out})
        if stem_opt.width is not None:
            _value(stem_opt.width, arch.stem_width, "stem.width", out)
        elif arch.stem_width != arch.stages[0].width:
            raise _Miss("stem.width", f"{arch.stem_width} differs from the first stage's width and the space "
                                      "does not search the stem width")
        out.update(_pick(doc.head, arch.head, "head"))
        firsts = list(doc.attention_from.dist.candidates(None)) if doc.attention_from else [1]
        best: _Miss | None = None
        for first in firsts:
            try:
                vals = dict(out)
                if doc.attention_from is not None and doc.attention_from.dist.free:
                    vals[doc.attention_from.name] = first
                for i, st in enumerate(doc.stages):
                    try:
                        vals.update(_stage(st, arch, i, zero=i + 1 < first))
                    except _Miss as miss:
                        miss.progress += (i + 1) * 100_000  # a miss in a later stage got further
                        raise
                # a training setting, checked after the network itself
                _value(doc.drop_path_rate, arch.drop_path_rate, "drop_path_rate", vals)
                return Match(True, values={**_defaults(space), **vals})
            except _Miss as miss:
                if best is None or miss.progress > best.progress:
                    best = miss
        assert best is not None
        raise best
    except _Miss as miss:
        return Match(False, str(miss))


def _defaults(space: Space) -> dict[str, Any]:
    return {p.name: p.dist.default() for p in space.params}
