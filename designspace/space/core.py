"""Space: a parsed search space, flattened into a fixed set of parameters that decode into Archs.

Flat parameters. Every free value of the document is one named parameter (``stages.2.width``,
``stages.2.segments.1.type``, ``stages.2.segments.1.msa.num_heads``, ...), always present whatever the
other values are: parameters of an option that was not chosen, or of a segment with no blocks, are
sampled and ignored. Optuna's multivariate TPE, NSGA-II and GP samplers therefore see one fixed joint
space (conditional parameters would make them fall back to independent sampling).

Invalid combinations. Some values cannot go together at a site (heads that do not divide the width the
stage drew). With ``invalid="repair"`` (the default) the offending parameter is moved to the nearest
value of its own distribution that is valid; if no value of it works, the stage's width is moved to the
nearest value of its grid that is valid instead. Each repair is recorded (``name: old -> new
(reason)``). If neither works, or with ``invalid="reject"``, the point is rejected with the reason.
Nothing is built or measured before this, so an invalid point costs microseconds.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from designspace._yaml import Ctx, load_yaml
from designspace.arch import Arch, Layer, Stage
from designspace.exceptions import DocumentError
from designspace.space.document import Option, Pick, Segment, Slot, SpaceDoc, StageSpace, parse_space
from designspace.space.values import Choice, Dist, FloatRange, IntRange

__all__ = ["Decoded", "Param", "Space"]

_MAX_REPAIRS = 32


@dataclass(frozen=True)
class Param:
    """One flat parameter: its name and distribution."""

    name: str
    dist: Dist


@dataclass(frozen=True)
class Decoded:
    """The result of decoding flat values.

    Attributes:
        arch: the Arch, or ``None`` if the point was rejected.
        values: the values the Arch was built from (after repairs).
        repairs: one line per repaired parameter: ``name: old -> new (reason)``.
        reason: why the point was rejected, when ``arch`` is ``None``.
    """

    arch: Arch | None
    values: dict[str, Any]
    repairs: tuple[str, ...] = ()
    reason: str | None = None


@functools.lru_cache(maxsize=1 << 14)
def _layer(type_: str, params: tuple[tuple[str, Any], ...]) -> Layer:
    return Layer(type_, params)


def _walk_slots(space: SpaceDoc) -> Iterator[Slot]:
    yield space.resolution
    yield space.drop_path_rate
    if space.attention_from is not None:
        yield space.attention_from
    yield from _pick_slots(space.stem)
    for st in space.stages:
        yield st.width
        if st.downsample is not None:
            yield from _pick_slots(st.downsample)
        for seg in st.segments:
            yield seg.depth
            for pick in seg.picks:
                yield from _pick_slots(pick)
    yield from _pick_slots(space.head)


def _pick_slots(pick: Pick) -> Iterator[Slot]:
    yield pick.choice
    for opt in pick.options:
        if opt.width is not None:
            yield opt.width
        for _, slot in opt.params:
            yield slot


class Space:
    """A search space (see :mod:`designspace.space.document` for the format).

    Use :func:`load_space` or :meth:`Space.from_yaml`; :meth:`sample` draws Archs, :attr:`params` and
    :meth:`decode` serve Optuna, :meth:`match` tells whether an Arch is a point of the space.
    """

    def __init__(self, doc: SpaceDoc) -> None:
        self.doc = doc
        self.params: tuple[Param, ...] = tuple(Param(s.name, s.dist) for s in _walk_slots(doc) if s.dist.free)
        self._by_name = {p.name: p for p in self.params}
        # per option: the names of its free parameters, and a cache of its Layers keyed by their values
        self._free: dict[int, tuple[str, ...]] = {}
        self._layers: dict[tuple[int, tuple[Any, ...]], Layer] = {}
        # draws compiled to (name, options, n) for choices and (name, low, step, n) for linear int grids
        self._choices = [(p.name, p.dist.options, len(p.dist.options)) for p in self.params
                         if isinstance(p.dist, Choice)]
        self._grids = [(p.name, p.dist.low, p.dist.step, p.dist.size) for p in self.params
                       if isinstance(p.dist, IntRange) and not p.dist.log]
        self._others = [p for p in self.params if not isinstance(p.dist, (Choice, IntRange)) or
                        (isinstance(p.dist, IntRange) and p.dist.log)]

    # ------------------------------------------------------------------------------------------ loading
    @classmethod
    def from_yaml(cls, text: str, file: str = "<string>") -> Space:
        """Parses and validates a Space document.

        Raises:
            DocumentError: ``file:line: path: problem (fix)``.
        """
        data, lines = load_yaml(text, file)
        return cls(parse_space(data, Ctx(file, lines)))

    @property
    def name(self) -> str:
        """The space's name (its file stem if unnamed)."""
        return self.doc.name or Path(self.doc.file).stem

    def param(self, name: str) -> Param:
        """The flat parameter called ``name``."""
        return self._by_name[name]

    def optuna_distributions(self) -> dict[str, Any]:
        """The flat parameters as Optuna distributions, in a fixed order (imports optuna)."""
        return {p.name: p.dist.to_optuna() for p in self.params}  # type: ignore[union-attr]

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Asks an Optuna trial for every flat parameter (all of them, every time: no conditional space)."""
        values: dict[str, Any] = {}
        for p in self.params:
            d = p.dist
            if isinstance(d, Choice):
                values[p.name] = trial.suggest_categorical(p.name, list(d.options))
            elif isinstance(d, IntRange):
                values[p.name] = trial.suggest_int(p.name, d.low, d.high, step=d.step, log=d.log)
            elif isinstance(d, FloatRange):
                values[p.name] = trial.suggest_float(p.name, d.low, d.high, step=d.step, log=d.log)
        return values

    # ----------------------------------------------------------------------------------------- sampling
    def sample_values(self, rng: random.Random) -> dict[str, Any]:
        """Independent uniform draws of every flat parameter."""
        draw = rng.random
        values = {name: options[int(draw() * n)] for name, options, n in self._choices}
        values.update((name, low + step * int(draw() * n)) for name, low, step, n in self._grids)
        values.update((p.name, p.dist.sample(rng)) for p in self._others)
        return values

    def sample(self, rng: random.Random | int | None = None, *, max_tries: int = 100) -> Arch:
        """A random Arch of the space (rejected points are redrawn).

        Raises:
            DocumentError: ``max_tries`` draws in a row were rejected (the last reason is given).
        """
        rng = rng if isinstance(rng, random.Random) else random.Random(rng)
        reason = ""
        for _ in range(max_tries):
            result = self.decode(self.sample_values(rng))
            if result.arch is not None:
                return result.arch
            reason = result.reason or ""
        raise DocumentError(f"{max_tries} samples in a row were invalid; the last: {reason}", file=self.doc.file,
                            fix="widen the choices that the reason names")

    def example(self, seed: int = 0) -> Arch:
        """A deterministic example Arch."""
        return self.sample(random.Random(seed))

    # ----------------------------------------------------------------------------------------- decoding
    def decode(self, values: Mapping[str, Any], invalid: str = "repair") -> Decoded:
        """The Arch at ``values`` (every flat parameter; extra keys are ignored).

        Args:
            values: flat parameter values, as :meth:`sample_values` or an Optuna trial gives them.
            invalid: ``"repair"`` or ``"reject"`` invalid combinations (see the module docstring).
        """
        vals = dict(values)
        repairs: list[str] = []
        for _ in range(_MAX_REPAIRS):
            try:
                return Decoded(self._build(vals), vals, tuple(repairs))
            except DocumentError as err:
                slot = self._slot_for(err.path, vals)
                if invalid != "repair" or slot is None or not slot.dist.free:
                    return Decoded(None, vals, tuple(repairs), f"{err.path}: {err.problem}")
                fixed = self._repair(slot, vals, err)
                if fixed is None:  # the other side of the rule: the width the block sits at
                    width = self._width_for(err.path)
                    if width is not None and width.dist.free:
                        fixed = self._repair(width, vals, err)
                        slot = width if fixed is not None else slot
                if fixed is None:
                    return Decoded(None, vals, tuple(repairs),
                                   f"{err.path}: {err.problem}; no value of {slot.name} in "
                                   f"{slot.dist.describe()} fixes it, nor of the stage's width")
                repairs.append(f"{slot.name}: {vals[slot.name]!r} -> {fixed!r} ({err.problem})")
                vals[slot.name] = fixed
        return Decoded(None, vals, tuple(repairs), "too many repairs")

    def _repair(self, slot: Slot, vals: dict[str, Any], err: DocumentError) -> Any:
        """The nearest value of ``slot`` that removes the error at ``err.path``, or ``None``."""
        current = vals[slot.name]
        for cand in slot.dist.candidates(current):
            if cand == current:
                continue
            trial = {**vals, slot.name: cand}
            try:
                self._build(trial)
                return cand
            except DocumentError as again:
                if again.path != err.path:  # this error is gone; another, elsewhere, is for the next round
                    return cand
        return None

    def _layer(self, opt: Option, vals: Mapping[str, Any]) -> Layer:
        """The Layer of ``opt`` under ``vals`` (cached by the values of the option's free parameters)."""
        free = self._free.get(id(opt))
        if free is None:
            free = self._free[id(opt)] = tuple(s.name for _, s in opt.params if s.dist.free)
        key = (id(opt), tuple(vals[n] for n in free))
        layer = self._layers.get(key)
        if layer is None:
            if len(self._layers) > 1 << 16:  # continuous ranges would grow it without bound
                self._layers.clear()
            layer = self._layers[key] = _layer(opt.type, opt.layer_params(vals))
        return layer

    def _build(self, vals: Mapping[str, Any]) -> Arch:
        doc = self.doc
        first_attention = doc.attention_from.get(vals) if doc.attention_from else 1
        stem_opt = doc.stem.option(vals)
        stages = []
        for i, st in enumerate(doc.stages):
            blocks: list[Layer] = []
            for seg in st.segments:
                depth = 0 if (i + 1 < first_attention and seg.role == "attention") else seg.depth.get(vals)
                if depth:
                    layers = [self._layer(p.option(vals), vals) for p in seg.picks]
                    blocks.extend(layers[b % len(layers)] for b in range(depth))
            ds = None
            if st.downsample is not None:
                ds = self._layer(st.downsample.option(vals), vals)
            stages.append(Stage(width=st.width.get(vals), stride=st.stride, downsample=ds, blocks=tuple(blocks)))
        head_opt = doc.head.option(vals)
        return Arch(stem=self._layer(stem_opt, vals), stages=tuple(stages), head=self._layer(head_opt, vals),
                    stem_width=stem_opt.width.get(vals) if stem_opt.width is not None else 0,
                    resolution=doc.resolution.get(vals), in_chans=doc.in_chans, num_classes=doc.num_classes,
                    drop_path_rate=float(doc.drop_path_rate.get(vals)), name=self.name)

    def _slot_for(self, path: str, vals: Mapping[str, Any]) -> Slot | None:
        """The slot that set the parameter an Arch error names (``stages.2.blocks.5.num_heads``)."""
        parts = path.split(".")
        if len(parts) < 2:
            return None
        if parts[0] in ("stem", "head"):
            opt = (self.doc.stem if parts[0] == "stem" else self.doc.head).option(vals)
            return opt.slot(parts[1])
        if parts[0] != "stages" or len(parts) < 4:
            return None
        st = self.doc.stages[int(parts[1])]
        if parts[2] == "downsample" and st.downsample is not None:
            return st.downsample.option(vals).slot(parts[3])
        if parts[2] != "blocks" or len(parts) < 5:
            return None
        block_opt = self._block_option(int(parts[1]), int(parts[3]), vals)
        return block_opt.slot(parts[4]) if block_opt is not None else None

    def _width_for(self, path: str) -> Slot | None:
        """The width slot of the stage an Arch error path points into, if any."""
        parts = path.split(".")
        return self.doc.stages[int(parts[1])].width if parts[0] == "stages" and len(parts) > 1 else None

    def _block_option(self, i: int, j: int, vals: Mapping[str, Any]) -> Option | None:
        """The option that produced block ``j`` of stage ``i``."""
        first_attention = self.doc.attention_from.get(vals) if self.doc.attention_from else 1
        for seg in self.doc.stages[i].segments:
            depth = 0 if (i + 1 < first_attention and seg.role == "attention") else seg.depth.get(vals)
            if j < depth:
                return seg.picks[j % len(seg.picks)].option(vals)
            j -= depth
        return None

    def stage_types(self) -> list[set[str]]:
        """For each stage, the block types it may hold (segments that can have blocks)."""
        out = []
        for i, st in enumerate(self.doc.stages):
            types: set[str] = set()
            for seg in st.segments:
                never = (i + 1 < min(self.doc.attention_from.dist.candidates(None)) if self.doc.attention_from
                         else False) and seg.role == "attention"
                if not never and max(seg.depth.dist.candidates(None)) > 0:
                    types.update(o.type for p in seg.picks for o in p.options)
            out.append(types)
        return out

    # ----------------------------------------------------------------------------------------- counting
    def size(self) -> float:
        """The number of distinct points (Archs before repairs), as a float (``inf`` for continuous ranges)."""
        doc = self.doc
        firsts = list(doc.attention_from.dist.candidates(None)) if doc.attention_from else [1]
        total = 0.0
        for first in firsts:
            n = _size(doc.resolution.dist) * _size(doc.drop_path_rate.dist) * _pick_size(doc.stem)
            n *= _pick_size(doc.head)
            for i, st in enumerate(doc.stages):
                n *= _stage_size(st, zero_attention=i + 1 < first)
            total += n
        return total

    def size_log10(self) -> float:
        """log10 of :meth:`size`."""
        size = self.size()
        return math.inf if math.isinf(size) else math.log10(size)

    def summary(self, seed: int = 0) -> dict[str, Any]:
        """What ``designspace validate`` reports: parameters, size, budgets, search defaults, an example."""
        from designspace.evaluate.counts.analytic import count

        kinds = {"categorical": 0, "integer": 0, "float": 0}
        for p in self.params:
            kinds["categorical" if isinstance(p.dist, Choice) else "integer" if isinstance(p.dist, IntRange)
                  else "float"] += 1
        example = self.example(seed)
        c = count(example)
        size = self.size_log10()
        return {
            "file": self.doc.file, "name": self.name, "description": self.doc.description,
            "free_parameters": len(self.params), "by_kind": kinds,
            "log10_size": None if math.isinf(size) else round(size, 2),
            "parameters": [{"name": p.name, "values": p.dist.describe()} for p in self.params],
            "device": self.doc.device, "budgets": [str(b) for b in self.doc.budgets], "search": dict(self.doc.search),
            "example": {"seed": seed, "fingerprint": example.fingerprint, "params": c.params, "macs": c.macs,
                        "params_m": round(c.params_m, 3),
                        "macs_g": round(c.macs_g, 4), "arch": example.to_dict()},
        }

    def __repr__(self) -> str:
        return f"Space({self.name!r}, {len(self.params)} parameters, 10^{self.size_log10():.1f} points)"


def _size(dist: Dist) -> float:
    return math.inf if dist.size is None else float(dist.size)


def _option_size(opt: Option) -> float:
    n = _size(opt.width.dist) if opt.width is not None else 1.0
    for _, slot in opt.params:
        n *= _size(slot.dist)
    return n


def _pick_size(pick: Pick) -> float:
    return sum(_option_size(o) for o in pick.options)


def _segment_size(seg: Segment, zero_attention: bool) -> float:
    if zero_attention and seg.role == "attention":
        return 1.0
    total = 0.0
    for depth in seg.depth.dist.candidates(None):
        used = seg.picks[: min(int(depth), len(seg.picks))]
        n = 1.0
        for pick in used:
            n *= _pick_size(pick)
        total += n
    return total


def _stage_size(st: StageSpace, zero_attention: bool) -> float:
    n = _size(st.width.dist) * (_pick_size(st.downsample) if st.downsample is not None else 1.0)
    for seg in st.segments:
        n *= _segment_size(seg, zero_attention)
    return n
