"""Arch: the frozen description of one network, and its YAML form.

An Arch document::

    name: iformer_t                 # optional, not part of the fingerprint
    resolution: 224                 # input side (pixels)
    in_chans: 3
    num_classes: 1000
    drop_path_rate: 0.0             # linear stochastic-depth schedule over the blocks
    stem: {type: iformer_stem, width: 32}       # width defaults to the first stage's
    stages:
      - width: 32
        stride: 1                   # default: 1 for the first stage, 2 after
        downsample: {type: conv_bn} # optional; without it the first block strides
        blocks:
          - {type: iformer_conv, exp_ratio: 3, repeat: 2}
          - pattern: [{type: sam}, {type: msa}]
            repeat: 4
          - shma                    # a bare name: that block at its defaults
    head: {type: bn_linear_head}
    meta: {paper: ...}              # free-form, not part of the fingerprint

``repeat`` and ``pattern`` are expanded on load; every parameter is filled with its default, so two
documents describing the same network load to equal Archs with the same fingerprint. Dumping
writes every parameter explicitly and folds runs back into ``repeat``/``pattern``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from designspace._yaml import Ctx, Lines, dump_yaml, load_yaml, read_document
from designspace.blocks import Component, components, get
from designspace.exceptions import DocumentError, RegistryError, did_you_mean
from designspace.plan import PlanError, check

__all__ = ["Arch", "Layer", "Stage"]

_TOP_KEYS = ("name", "resolution", "in_chans", "num_classes", "drop_path_rate", "stem", "stages", "head", "meta")
_STAGE_KEYS = ("width", "stride", "downsample", "blocks")
_MAX_BLOCKS = 1000  # per stage, after expansion


def _params_of(comp: Component, raw: Mapping[str, Any], path: tuple[Any, ...], ctx: Ctx,
               skip: tuple[str, ...] = ()) -> tuple[tuple[str, Any], ...]:
    """Validated parameter values of ``comp`` in spec order, defaults filled in."""
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in skip:
            continue
        spec = comp.spec(key)
        if spec is None:
            names = [p.name for p in comp.params]
            hint = did_you_mean(str(key), names)
            raise ctx.error(path + (key,), f"{comp.name} has no parameter {key!r}",
                            f"{hint}its parameters: {', '.join(names) or 'none'}")
        try:
            values[key] = spec.coerce(value)
        except ValueError as err:
            problem, fix = err.args
            raise ctx.error(path + (key,), problem, fix) from None
    return tuple((p.name, values.get(p.name, p.default)) for p in comp.params)


@dataclass(frozen=True)
class Layer:
    """One component (block, stem, downsampling layer or head) with every parameter value.

    Construct it with ``Layer("mbconv", {"exp_ratio": 6})`` or ``Layer.of("mbconv", exp_ratio=6)``;
    parameters are validated, put in spec order and completed with defaults.
    """

    type: str
    params: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        raw = dict(self.params) if not isinstance(self.params, Mapping) else self.params
        try:
            comp = get(self.type)
        except RegistryError as err:
            raise DocumentError(str(err), path="type") from None
        object.__setattr__(self, "params", _params_of(comp, raw, (), Ctx()))
        object.__setattr__(self, "_hash", hash((self.type, self.params)))

    def __hash__(self) -> int:  # cached: Layers key the counting and placement caches
        return self._hash  # type: ignore[attr-defined]

    @classmethod
    def of(cls, type: str, **params: Any) -> Layer:
        """``Layer(type, params)`` with keyword parameters."""
        return cls(type, params)  # type: ignore[arg-type]

    @property
    def component(self) -> Component:
        """The registered component."""
        return get(self.type)

    def __getitem__(self, name: str) -> Any:
        for key, value in self.params:
            if key == name:
                return value
        raise KeyError(name)

    def kwargs(self) -> dict[str, Any]:
        """The parameter values as a dict."""
        return dict(self.params)

    def to_dict(self, explicit: bool = True) -> dict[str, Any]:
        """``{"type": ..., **params}``; with ``explicit=False`` defaults are left out."""
        defaults = self.component.defaults()
        items = self.params if explicit else tuple((k, v) for k, v in self.params if defaults[k] != v)
        return {"type": self.type, **dict(items)}


@dataclass(frozen=True, kw_only=True)
class Stage:
    """A run of blocks at one width.

    Attributes:
        width: output channels of every block.
        stride: spatial stride at the stage's start (1 or 2), applied by ``downsample`` if given,
            else by the first block.
        downsample: a downsampling layer run before the blocks, or ``None``.
        blocks: the blocks in order (expanded).
    """

    width: int
    stride: int = 2
    downsample: Layer | None = None
    blocks: tuple[Layer, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "blocks", tuple(self.blocks))


@dataclass(frozen=True, kw_only=True)
class Arch:
    """One concrete network. Frozen and hashable; construction validates it.

    Attributes:
        stem: the stem layer.
        stages: the stages in order.
        head: the classification head.
        stem_width: the stem's output channels (defaults to the first stage's width).
        resolution: input height = width, pixels.
        in_chans: input channels.
        num_classes: classifier outputs.
        drop_path_rate: the maximum of the linear stochastic-depth schedule over the blocks.
        name: a label; not part of the fingerprint.
        meta: free-form (key, value) pairs (paper, source, ...); not part of the fingerprint.
    """

    stem: Layer
    stages: tuple[Stage, ...]
    head: Layer
    stem_width: int = 0
    resolution: int = 224
    in_chans: int = 3
    num_classes: int = 1000
    drop_path_rate: float = 0.0
    name: str = ""
    meta: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))
        object.__setattr__(self, "meta", tuple(self.meta))
        if not self.stages:
            raise DocumentError("an Arch needs at least one stage", path="stages")
        if not self.stem_width:
            object.__setattr__(self, "stem_width", self.stages[0].width)
        try:
            check(self)
        except PlanError as err:
            path = ".".join(map(str, err.where + ((err.param,) if err.param else ())))
            raise DocumentError(err.problem, path=path, fix=err.fix) from None

    # ----------------------------------------------------------------------------------------- access
    def blocks(self) -> Iterator[tuple[int, int, Layer]]:
        """(stage index, block index, block) for every block."""
        for i, stage in enumerate(self.stages):
            for j, block in enumerate(stage.blocks):
                yield i, j, block

    @property
    def depths(self) -> tuple[int, ...]:
        """Blocks per stage."""
        return tuple(len(s.blocks) for s in self.stages)

    @property
    def widths(self) -> tuple[int, ...]:
        """Width of each stage."""
        return tuple(s.width for s in self.stages)

    @property
    def fingerprint(self) -> str:
        """16 hex digits identifying the network (everything but ``name`` and ``meta``)."""
        body = self.to_dict(compact=False)
        body.pop("name", None)
        body.pop("meta", None)
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # -------------------------------------------------------------------------------------- documents
    def to_dict(self, compact: bool = True) -> dict[str, Any]:
        """The document form; ``compact`` folds runs into ``repeat``/``pattern`` entries."""
        out: dict[str, Any] = {}
        if self.name:
            out["name"] = self.name
        out.update(resolution=self.resolution, in_chans=self.in_chans, num_classes=self.num_classes,
                   drop_path_rate=self.drop_path_rate)
        stem = self.stem.to_dict()
        if self.stem_width != self.stages[0].width:
            stem["width"] = self.stem_width
        out["stem"] = stem
        stages = []
        for s in self.stages:
            d: dict[str, Any] = {"width": s.width, "stride": s.stride}
            if s.downsample is not None:
                d["downsample"] = s.downsample.to_dict()
            blocks = [b.to_dict() for b in s.blocks]
            d["blocks"] = _fold(blocks) if compact else blocks
            stages.append(d)
        out["stages"] = stages
        out["head"] = self.head.to_dict()
        if self.meta:
            out["meta"] = dict(self.meta)
        return out

    def to_yaml(self) -> str:
        """YAML text that :meth:`from_yaml` loads back to an equal Arch."""
        return dump_yaml(self.to_dict())

    @classmethod
    def from_yaml(cls, text: str, file: str = "<string>") -> Arch:
        """Parses and validates an Arch document.

        Raises:
            DocumentError: with the file, line, field path and fix.
        """
        data, lines = load_yaml(text, file)
        return cls.from_dict(data, file=file, lines=lines)

    @classmethod
    def from_file(cls, path: str | Path) -> Arch:
        """Reads an Arch YAML file."""
        return cls.from_yaml(read_document(path, "Arch file"), file=str(path))

    @classmethod
    def from_dict(cls, data: Any, *, file: str = "<dict>", lines: Lines | None = None) -> Arch:
        """Validates a document already parsed into dicts and lists."""
        ctx = Ctx(file, lines or {})
        return _from_dict(cls, data, ctx)


# ----------------------------------------------------------------------------------------------- load
def _require(data: dict[str, Any], key: str, path: tuple[Any, ...], ctx: Ctx, fix: str) -> Any:
    if key not in data or data[key] is None:
        raise ctx.error(path + (key,), f"missing `{key}`", fix)
    return data[key]


def _int(value: Any, path: tuple[Any, ...], ctx: Ctx, low: int, high: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ctx.error(path, f"{what} must be an integer, got {value!r} ({type(value).__name__})",
                        f"write an integer between {low} and {high}")
    if not low <= value <= high:
        raise ctx.error(path, f"{what} must be between {low} and {high}, got {value}",
                        f"use a value in [{low}, {high}]")
    return value


def _check_keys(data: Any, allowed: tuple[str, ...], path: tuple[Any, ...], ctx: Ctx, what: str) -> dict[str, Any]:
    if data is None and not path:
        raise ctx.error(path, "the document is empty", "write an Arch: stem, stages, head (see spaces/zoo/*.yaml)")
    if not isinstance(data, dict):
        raise ctx.error(path, f"{what} must be a mapping, got {type(data).__name__}",
                        f"write {what} as `key: value` lines; keys: {', '.join(allowed)}")
    for key in data:
        if key not in allowed:
            hint = did_you_mean(key, allowed)
            raise ctx.error(path + (key,), f"unknown field {key!r} in {what}", f"{hint}allowed: {', '.join(allowed)}")
    return data


def _layer(raw: Any, path: tuple[Any, ...], kind: str, ctx: Ctx, extra: tuple[str, ...] = ()) -> Layer:
    names = [c.name for c in components(kind)]  # type: ignore[arg-type]
    if isinstance(raw, str):
        raw = {"type": raw}
    if not isinstance(raw, dict):
        raise ctx.error(path, f"a {kind} must be a mapping with a `type`, got {raw!r}",
                        f"write {{type: NAME, ...}} with NAME one of {', '.join(names)}")
    type_ = raw.get("type")
    if not isinstance(type_, str):
        raise ctx.error(path + ("type",) if "type" in raw else path, f"missing or invalid {kind} `type`: {type_!r}",
                        f"add `type:` with one of {', '.join(names)}")
    try:
        comp = get(type_, kind)  # type: ignore[arg-type]
    except RegistryError as err:
        raise ctx.error(path + ("type",), err.problem, err.fix) from None
    return Layer(comp.name, _params_of(comp, raw, path, ctx, skip=("type",) + extra))


def _expand(items: Any, path: tuple[Any, ...], ctx: Ctx) -> list[tuple[Any, tuple[Any, ...]]]:
    """Expands ``repeat`` and ``pattern`` entries into (block document, source path) pairs."""
    if not isinstance(items, list):
        raise ctx.error(path, f"blocks must be a list, got {type(items).__name__}", "write `- {type: ...}` items")
    out: list[tuple[Any, tuple[Any, ...]]] = []
    for k, item in enumerate(items):
        p = path + (k,)
        if not isinstance(item, dict):
            out.append((item, p))
            continue
        repeat = item.get("repeat", 1)
        if not isinstance(repeat, int) or isinstance(repeat, bool) or repeat < 1:
            raise ctx.error(p + ("repeat",), f"repeat must be an integer >= 1, got {repeat!r}",
                            "use a positive count (delete the entry to have none)")
        if "pattern" in item:
            _check_keys(item, ("pattern", "repeat"), p, ctx, "a pattern entry")
            inner = _expand(item["pattern"], p + ("pattern",), ctx)
            if not inner:
                raise ctx.error(p + ("pattern",), "empty pattern", "list at least one block in the pattern")
        else:
            inner = [({k2: v for k2, v in item.items() if k2 != "repeat"}, p)]
        if len(out) + len(inner) * repeat > _MAX_BLOCKS:  # checked before the list is built: repeat may be 10**18
            raise ctx.error(p + ("repeat",), f"this entry expands the stage to {len(out) + len(inner) * repeat:,} "
                            f"blocks, more than {_MAX_BLOCKS}", "use a smaller repeat")
        out.extend(inner * repeat)
        if len(out) > _MAX_BLOCKS:
            raise ctx.error(p, f"more than {_MAX_BLOCKS} blocks in one stage", "use a smaller repeat")
    return out


def _from_dict(cls: type[Arch], data: Any, ctx: Ctx) -> Arch:
    _check_keys(data, _TOP_KEYS, (), ctx, "an Arch document")
    name = data.get("name") or ""
    if not isinstance(name, str):
        raise ctx.error(("name",), f"name must be a string, got {name!r}", "quote the name")
    resolution = _int(data.get("resolution", 224), ("resolution",), ctx, 16, 4096, "resolution")
    in_chans = _int(data.get("in_chans", 3), ("in_chans",), ctx, 1, 64, "in_chans")
    num_classes = _int(data.get("num_classes", 1000), ("num_classes",), ctx, 1, 100_000, "num_classes")
    dpr = data.get("drop_path_rate", 0.0)
    if isinstance(dpr, bool) or not isinstance(dpr, (int, float)) or not 0.0 <= dpr < 1.0:
        raise ctx.error(("drop_path_rate",), f"drop_path_rate must be a number in [0, 1), got {dpr!r}",
                        "use e.g. 0.0 or 0.1")
    meta = data.get("meta") or {}
    if not isinstance(meta, dict) or any(isinstance(v, (dict, list)) for v in meta.values()):
        raise ctx.error(("meta",), "meta must be a mapping of names to plain values", "write `key: value` lines")

    stem_doc = _require(data, "stem", (), ctx, "add `stem: {type: ...}`")
    stem = _layer(stem_doc, ("stem",), "stem", ctx, extra=("width",))
    stem_width = stem_doc.get("width", 0) if isinstance(stem_doc, dict) else 0
    if stem_width:
        stem_width = _int(stem_width, ("stem", "width"), ctx, 1, 8192, "stem width")

    stage_docs = _require(data, "stages", (), ctx, "add `stages:` with at least one stage")
    if not isinstance(stage_docs, list) or not stage_docs:
        raise ctx.error(("stages",), "stages must be a non-empty list", "add `- width: ...` entries")
    stages, sources = [], []
    for i, sd in enumerate(stage_docs):
        sp: tuple[Any, ...] = ("stages", i)
        _check_keys(sd, _STAGE_KEYS, sp, ctx, "a stage")
        width = _int(_require(sd, "width", sp, ctx, "add `width:` (output channels)"), sp + ("width",), ctx,
                     1, 8192, "width")
        stride = sd.get("stride", 1 if i == 0 else 2)
        if stride not in (1, 2) or isinstance(stride, bool):
            raise ctx.error(sp + ("stride",), f"stride must be 1 or 2, got {stride!r}", "use 1 or 2")
        ds = sd.get("downsample")
        downsample = _layer(ds, sp + ("downsample",), "downsample", ctx) if ds is not None else None
        expanded = _expand(_require(sd, "blocks", sp, ctx, "add `blocks:` with at least one block"),
                           sp + ("blocks",), ctx)
        if not expanded:
            raise ctx.error(sp + ("blocks",), "a stage needs at least one block", "add a block or drop the stage")
        blocks = tuple(_layer(raw, src, "block", ctx) for raw, src in expanded)
        stages.append(Stage(width=width, stride=stride, downsample=downsample, blocks=blocks))
        sources.append([src for _, src in expanded])
    head = _layer(_require(data, "head", (), ctx, "add `head: {type: ...}`"), ("head",), "head", ctx)

    try:
        return cls(stem=stem, stages=tuple(stages), head=head, stem_width=stem_width, resolution=resolution,
                   in_chans=in_chans, num_classes=num_classes, drop_path_rate=float(dpr), name=name,
                   meta=tuple(meta.items()))
    except DocumentError as err:
        raise _relocate(err, sources, ctx) from None


def _relocate(err: DocumentError, sources: list[list[tuple[Any, ...]]], ctx: Ctx) -> DocumentError:
    """Maps a validation error on the expanded Arch back to the document's own path and line."""
    parts: list[Any] = [int(p) if p.isdigit() else p for p in err.path.split(".")] if err.path else []
    if len(parts) >= 4 and parts[0] == "stages" and parts[2] == "blocks":
        path = sources[parts[1]][parts[3]] + tuple(parts[4:])
    else:
        path = tuple(parts)
    return ctx.error(path, err.problem, err.fix)


# ----------------------------------------------------------------------------------------------- dump
def _fold(blocks: list[dict[str, Any]], max_period: int = 8) -> list[dict[str, Any]]:
    """Folds consecutive repeats into ``repeat`` and periodic runs into ``pattern`` entries."""
    out: list[dict[str, Any]] = []
    i, n = 0, len(blocks)
    while i < n:
        best_p, best_reps = 1, 1
        for p in range(1, min(max_period, (n - i) // 2) + 1):
            reps = 1
            while i + (reps + 1) * p <= n and blocks[i + reps * p:i + (reps + 1) * p] == blocks[i:i + p]:
                reps += 1
            if reps >= 2 and p * reps > best_p * best_reps:
                best_p, best_reps = p, reps
        if best_reps == 1:
            out.append(dict(blocks[i]))
        elif best_p == 1:
            out.append({**blocks[i], "repeat": best_reps})
        else:
            out.append({"pattern": [dict(b) for b in blocks[i:i + best_p]], "repeat": best_reps})
        i += best_p * best_reps
    return out

