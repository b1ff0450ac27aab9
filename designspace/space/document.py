"""The Space document: the Arch vocabulary where any value may be a choice or a range.

::

    name: example
    resolution: [192, 224]
    stem: {type: iformer_stem, width: [24, 32]}      # a component, or a list of alternatives
    attention_from: [3, 4]                            # 1-based stage where attention may start
    stages:
      - width: {low: 24, high: 48, step: 8}
        stride: 1
        depth: {low: 1, high: 3}                      # shorthand for one segment
        block: [{type: mbconv, exp_ratio: [4, 6]}, iformer_conv]   # the family is chosen per stage
      - width: {low: 96, high: 192, step: 16}
        downsample: [conv_bn, conv_ln]
        segments:                                     # conv first, attention after, searched split
          - {depth: {low: 2, high: 6}, block: {type: iformer_conv, exp_ratio: [3, 4]}}
          - {depth: {low: 0, high: 4}, block: [shma, {type: msa, num_heads: [4, 8]}]}
          - {depth: [2, 4, 6], pattern: [sam, msa]}   # a repeated pattern, cut at depth
    head: bn_linear_head
    device: iphone13                                  # where latency budgets and objectives apply
    budgets: {latency_ms: 1.1, params_m: 8, macs_g: 1.5}   # or ["1.1ms", "8M", "1.5G"]
    search: {trials: 200, sampler: tpe, objectives: [accuracy, latency], invalid: repair}

Within a segment all blocks share the sampled family and parameters; a pattern's positions each
have their own. A segment of attention blocks in a stage before ``attention_from`` has no blocks.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from designspace._yaml import Ctx
from designspace.blocks import Site, components, get
from designspace.blocks.registry import ParamSpec
from designspace.exceptions import RegistryError, did_you_mean
from designspace.space.budgets import METRICS, Budget, parse_budget
from designspace.space.values import Choice, Dist, Fixed, parse_dist

__all__ = ["Option", "Pick", "Segment", "Slot", "SpaceDoc", "StageSpace", "parse_space"]

TOP_KEYS = ("name", "description", "resolution", "in_chans", "num_classes", "drop_path_rate", "stem", "stages",
            "head", "attention_from", "device", "budgets", "search")
STAGE_KEYS = ("width", "stride", "downsample", "attention", "depth", "block", "pattern", "segments")
SEGMENT_KEYS = ("depth", "block", "pattern")
SEARCH_KEYS = ("trials", "timeout", "sampler", "objectives", "seed", "invalid")
SAMPLERS = ("tpe", "nsga2", "gp", "random")

_RESOLUTION = ParamSpec("resolution", int, 224, "input side (pixels)", low=16, high=4096)
_WIDTH = ParamSpec("width", int, 64, "channels", low=1, high=8192)
_DEPTH = ParamSpec("depth", int, 1, "blocks", low=0, high=256)
_DROP_PATH = ParamSpec("drop_path_rate", float, 0.0, "stochastic depth", low=0.0, high=0.99)


@dataclass(frozen=True)
class Slot:
    """A value of the space and the name of its flat parameter (used when the value is free)."""

    name: str
    dist: Dist

    def get(self, values: Mapping[str, Any]) -> Any:
        """The value under the assignment ``values`` (the fixed value if not free)."""
        return values[self.name] if self.dist.free else self.dist.default()


@dataclass(frozen=True)
class Option:
    """One component type a place may hold, with a value or distribution for each parameter."""

    label: str
    type: str
    params: tuple[tuple[str, Slot], ...]
    width: Slot | None = None  # stems only

    def layer_params(self, values: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
        """Parameter values under ``values``."""
        return tuple((n, s.get(values)) for n, s in self.params)

    def slot(self, param: str) -> Slot | None:
        """The slot of parameter ``param``."""
        return next((s for n, s in self.params if n == param), None)

    def attention(self) -> str:
        """``"yes"``, ``"no"`` or ``"maybe"`` (decided by a searched parameter)."""
        comp = get(self.type)
        if not isinstance(comp.attention, str):
            return "yes" if comp.attention else "no"
        dist = dict(self.params)[comp.attention].dist
        if isinstance(dist, Fixed):
            return "yes" if dist.value else "no"
        return "maybe"


@dataclass(frozen=True)
class Pick:
    """A place holding one of several options; ``choice`` draws the option's label."""

    path: tuple[Any, ...]
    options: tuple[Option, ...]
    choice: Slot

    def option(self, values: Mapping[str, Any]) -> Option:
        """The option chosen under ``values``."""
        if len(self.options) == 1:
            return self.options[0]
        label = values[self.choice.name]
        return next(o for o in self.options if o.label == label)


@dataclass(frozen=True)
class Segment:
    """A run of blocks: one pick repeated (uniform) or several picks cycled (pattern), ``depth`` blocks."""

    path: tuple[Any, ...]
    depth: Slot
    picks: tuple[Pick, ...]
    pattern: bool

    @functools.cached_property
    def role(self) -> str:
        """``"attention"`` if any option can be attention and all must be, ``"conv"`` if none can, else
        ``"mixed"``; a pattern with an attention position counts as attention."""
        kinds = {o.attention() for p in self.picks for o in p.options}
        if self.pattern:
            return "attention" if kinds & {"yes", "maybe"} else "conv"
        if kinds == {"no"}:
            return "conv"
        return "attention" if kinds == {"yes"} else "mixed"


@dataclass(frozen=True)
class StageSpace:
    """A stage: its width, fixed stride, downsampling pick (or none), segments, and whether attention may
    appear in it."""

    path: tuple[Any, ...]
    width: Slot
    stride: int
    downsample: Pick | None
    segments: tuple[Segment, ...]
    attention: bool


@dataclass(frozen=True)
class SpaceDoc:
    """A parsed, statically validated Space document (see the module docstring)."""

    name: str
    description: str
    file: str
    resolution: Slot
    in_chans: int
    num_classes: int
    drop_path_rate: Slot
    stem: Pick
    stages: tuple[StageSpace, ...]
    head: Pick
    attention_from: Slot | None
    device: str | None
    budgets: tuple[Budget, ...]
    search: Mapping[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ parsing
def _keys(data: Any, allowed: tuple[str, ...], path: tuple[Any, ...], ctx: Ctx, what: str) -> dict[str, Any]:
    if data is None and not path:
        raise ctx.error(path, "the document is empty", "write a Space: stem, stages, head (see spaces/tiny.yaml)")
    if not isinstance(data, dict):
        raise ctx.error(path, f"{what} must be a mapping, got {type(data).__name__}",
                        f"write {what} as `key: value` lines; keys: {', '.join(allowed)}")
    for key in data:
        if key not in allowed:
            raise ctx.error(path + (key,), f"unknown field {key!r} in {what}",
                            did_you_mean(str(key), allowed) + f"allowed: {', '.join(allowed)}")
    return data


def _int(data: dict[str, Any], key: str, default: int, path: tuple[Any, ...], ctx: Ctx, low: int, high: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ctx.error(path + (key,), f"{key} must be an integer in [{low}, {high}], got {value!r}",
                        f"write one integer (e.g. {default}); {key} is not searched")
    return value


def _pick(raw: Any, path: tuple[Any, ...], name: str, kind: str, ctx: Ctx, extra: tuple[str, ...] = ()) -> Pick:
    """Parses a component or a list of alternative components into a :class:`Pick`."""
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise ctx.error(path, "empty choice", f"list at least one {kind} type")
    options: list[Option] = []
    for k, item in enumerate(items):
        ip = path + (k,) if isinstance(raw, list) else path
        if isinstance(item, str):
            item = {"type": item}
        if not isinstance(item, dict):
            raise ctx.error(ip, f"a {kind} must be a type name or a mapping with a `type`, got {item!r}",
                            "write {type: NAME, ...}")
        type_ = item.get("type")
        if isinstance(type_, list):
            raise ctx.error(ip + ("type",), "`type` names one type",
                            f"to let the search choose, list alternatives: [{{type: {type_[0]}}}, ...]" if type_
                            else "name one type")
        if not isinstance(type_, str):
            names = ", ".join(c.name for c in components(kind))  # type: ignore[arg-type]
            raise ctx.error(ip, f"missing {kind} `type`", f"add `type:` with one of {names}")
        try:
            comp = get(type_, kind)  # type: ignore[arg-type]
        except RegistryError as err:
            raise ctx.error(ip + ("type",), err.problem, err.fix) from None
        repeats = sum(o.type == type_ for o in options)
        label = f"{type_}#{repeats + 1}" if repeats else type_
        prefix = f"{name}.{label}"
        slots = {}
        for key, value in item.items():
            if key == "type" or key in extra:
                continue
            spec = comp.spec(key)
            if spec is None:
                known = [p.name for p in comp.params]
                raise ctx.error(ip + (key,), f"{type_} has no parameter {key!r}",
                                did_you_mean(str(key), known + list(extra)) + f"its parameters: {', '.join(known)}")
            slots[key] = Slot(f"{prefix}.{key}", parse_dist(value, spec, ip + (key,), ctx))
        params = tuple((p.name, slots.get(p.name, Slot(f"{prefix}.{p.name}", Fixed(p.default)))) for p in comp.params)
        width = None
        if "width" in extra and item.get("width") is not None:
            width = Slot(f"{prefix}.width", parse_dist(item["width"], _WIDTH, ip + ("width",), ctx))
        options.append(Option(label, type_, params, width))
    labels = tuple(o.label for o in options)
    return Pick(path, tuple(options), Slot(f"{name}.type", Choice(labels) if len(labels) > 1 else Fixed(labels[0])))


def _segment(raw: Any, path: tuple[Any, ...], name: str, ctx: Ctx, *, inline: bool = False) -> Segment:
    """A segment; ``inline`` when written with the stage-level shorthand (keys already checked)."""
    seg = raw if inline else _keys(raw, SEGMENT_KEYS, path, ctx, "a segment")
    if ("block" in seg) == ("pattern" in seg):
        raise ctx.error(path, "a segment needs exactly one of `block` (one family throughout) or `pattern`",
                        "write block: ... or pattern: [a, b]" + (" (or segments: [...])" if inline else ""))
    if "depth" not in seg:
        raise ctx.error(path + ("depth",), "missing `depth`", "add depth: N, a choice or a range")
    depth = Slot(f"{name}.depth", parse_dist(seg["depth"], _DEPTH, path + ("depth",), ctx))
    if "block" in seg:
        return Segment(path, depth, (_pick(seg["block"], path + ("block",), name, "block", ctx),), False)
    pattern = seg["pattern"]
    if not isinstance(pattern, list) or not pattern:
        raise ctx.error(path + ("pattern",), "a pattern is a non-empty list of blocks", "write pattern: [sam, msa]")
    picks = tuple(_pick(p, path + ("pattern", k), f"{name}.pattern.{k}", "block", ctx) for k, p in enumerate(pattern))
    return Segment(path, depth, picks, True)


def _stage(raw: Any, i: int, ctx: Ctx) -> StageSpace:
    path: tuple[Any, ...] = ("stages", i)
    st = _keys(raw, STAGE_KEYS, path, ctx, "a stage")
    if "width" not in st:
        raise ctx.error(path + ("width",), "missing `width`", "add width: N, a choice or a range")
    width = Slot(f"stages.{i}.width", parse_dist(st["width"], _WIDTH, path + ("width",), ctx))
    stride = st.get("stride", 1 if i == 0 else 2)
    if stride not in (1, 2) or isinstance(stride, bool):
        raise ctx.error(path + ("stride",), f"stride must be 1 or 2, got {stride!r}", "use 1 or 2 (it is not searched)")
    attention = st.get("attention", True)
    if not isinstance(attention, bool):
        raise ctx.error(path + ("attention",), f"attention must be true or false, got {attention!r}",
                        "write attention: false to forbid attention blocks in this stage")
    ds = st.get("downsample")
    downsample = _pick(ds, path + ("downsample",), f"stages.{i}.downsample", "downsample", ctx) if ds else None
    if "segments" in st:
        for key in ("depth", "block", "pattern"):
            if key in st:
                raise ctx.error(path + (key,), f"`{key}` belongs in a segment when `segments` is given",
                                f"move {key} into one of the segments")
        if not isinstance(st["segments"], list) or not st["segments"]:
            raise ctx.error(path + ("segments",), "segments must be a non-empty list", "list at least one segment")
        segments = tuple(_segment(s, path + ("segments", j), f"stages.{i}.segments.{j}", ctx)
                         for j, s in enumerate(st["segments"]))
    else:
        body = {k: st[k] for k in ("depth", "block", "pattern") if k in st}
        if not body:
            raise ctx.error(path, "a stage needs blocks: `depth` with `block` or `pattern`, or `segments`",
                            "add e.g. depth: {low: 1, high: 3} and block: mbconv")
        segments = (_segment(body, path, f"stages.{i}.segments.0", ctx, inline=True),)
    return StageSpace(path, width, stride, downsample, segments, attention)


def _budgets(raw: Any, ctx: Ctx) -> tuple[Budget, ...]:
    path: tuple[Any, ...] = ("budgets",)
    out: list[Budget] = []
    if isinstance(raw, list):
        for k, item in enumerate(raw):
            try:
                out.append(parse_budget(str(item)))
            except ValueError as err:
                raise ctx.error(path + (k,), err.args[0], err.args[1]) from None
    elif isinstance(raw, dict):
        for key, value in raw.items():
            if key not in METRICS:
                raise ctx.error(path + (key,), f"unknown budget {key!r}",
                                did_you_mean(str(key), METRICS) + f"budgets: {', '.join(METRICS)}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                unit = {"latency_ms": "milliseconds", "params_m": "millions", "macs_g": "billions"}[key]
                raise ctx.error(path + (key,), f"{key} must be a positive number of {unit}, got {value!r}",
                                f"write e.g. {key}: 1.5")
            out.append(Budget(key, float(value)))
    else:
        raise ctx.error(path, f"budgets must be a mapping or a list, got {type(raw).__name__}",
                        'write {latency_ms: 1.1, params_m: 8} or ["1.1ms", "8M"]')
    metrics = [b.metric for b in out]
    for m in set(metrics):
        if metrics.count(m) > 1:
            raise ctx.error(path, f"two budgets on {m}", "keep one")
    return tuple(out)


def _search(raw: Any, ctx: Ctx) -> dict[str, Any]:
    path: tuple[Any, ...] = ("search",)
    s = _keys(raw, SEARCH_KEYS, path, ctx, "search")
    for key, low, example in (("trials", 1, 200), ("seed", 0, 0)):
        if key in s and (isinstance(s[key], bool) or not isinstance(s[key], int) or s[key] < low):
            raise ctx.error(path + (key,), f"{key} must be an integer >= {low}, got {s[key]!r}",
                            f"write e.g. {key}: {example}")
    if "timeout" in s and (isinstance(s["timeout"], bool) or not isinstance(s["timeout"], (int, float))
                           or s["timeout"] <= 0):
        raise ctx.error(path + ("timeout",), f"timeout must be a positive number of seconds, got {s['timeout']!r}",
                        "write e.g. timeout: 600")
    if "sampler" in s and s["sampler"] not in SAMPLERS:
        raise ctx.error(path + ("sampler",), f"unknown sampler {s['sampler']!r}",
                        did_you_mean(str(s["sampler"]), SAMPLERS) + f"samplers: {', '.join(SAMPLERS)}")
    if "invalid" in s and s["invalid"] not in ("repair", "reject"):
        raise ctx.error(path + ("invalid",), f"invalid must be repair or reject, got {s['invalid']!r}",
                        "write invalid: repair")
    if "objectives" in s and (not isinstance(s["objectives"], list) or not s["objectives"]
                              or not all(isinstance(o, str) for o in s["objectives"])):
        raise ctx.error(path + ("objectives",), "objectives must be a non-empty list of names",
                        "write objectives: [accuracy, latency]")
    return dict(s)


def parse_space(data: Any, ctx: Ctx) -> SpaceDoc:
    """Parses and statically validates a Space document (see :func:`check_space`)."""
    doc = _keys(data, TOP_KEYS, (), ctx, "a Space document")
    for key in ("name", "description", "device"):
        if key in doc and not isinstance(doc[key], str):
            raise ctx.error((key,), f"{key} must be a string, got {doc[key]!r}", "quote it")
    for key in ("stem", "stages", "head"):
        if doc.get(key) is None:
            raise ctx.error((key,), f"missing `{key}`", f"add `{key}:` (see spaces/tiny.yaml)")
    if not isinstance(doc["stages"], list) or not doc["stages"]:
        raise ctx.error(("stages",), "stages must be a non-empty list", "add `- width: ...` entries")
    stages = tuple(_stage(s, i, ctx) for i, s in enumerate(doc["stages"]))
    attention_from = None
    if doc.get("attention_from") is not None:
        spec = ParamSpec("attention_from", int, 1, "first stage (1-based) that may hold attention", low=1,
                         high=len(stages))
        attention_from = Slot("attention_from", parse_dist(doc["attention_from"], spec, ("attention_from",), ctx))
    space = SpaceDoc(
        name=doc.get("name", "") or "",
        description=doc.get("description", "") or "",
        file=ctx.file,
        resolution=Slot("resolution", parse_dist(doc.get("resolution", 224), _RESOLUTION, ("resolution",), ctx)),
        in_chans=_int(doc, "in_chans", 3, (), ctx, 1, 64),
        num_classes=_int(doc, "num_classes", 1000, (), ctx, 1, 100_000),
        drop_path_rate=Slot("drop_path_rate", parse_dist(doc.get("drop_path_rate", 0.0), _DROP_PATH,
                                                         ("drop_path_rate",), ctx)),
        stem=_pick(doc["stem"], ("stem",), "stem", "stem", ctx, extra=("width",)),
        stages=stages,
        head=_pick(doc["head"], ("head",), "head", "head", ctx),
        attention_from=attention_from,
        device=doc.get("device"),
        budgets=_budgets(doc["budgets"], ctx) if doc.get("budgets") is not None else (),
        search=_search(doc["search"], ctx) if doc.get("search") is not None else {},
    )
    check_space(space, ctx)
    return space


# --------------------------------------------------------------------------------------- static checks
def _may_differ(a: Slot | None, b: Slot) -> bool:
    return a is None or not (isinstance(a.dist, Fixed) and isinstance(b.dist, Fixed) and a.dist.value == b.dist.value)


def check_space(space: SpaceDoc, ctx: Ctx) -> None:
    """Rules a document can break without sampling: attention where a stage forbids it, a stage that can be
    left without blocks, a first block that cannot downsample, a width grid no parameter value fits.

    Raises:
        DocumentError: with the offending field's line and a fix.
    """
    latest = max(space.attention_from.dist.candidates(None)) if space.attention_from else 1
    prev_width = None
    for i, st in enumerate(space.stages):
        for seg in st.segments:
            for pick in seg.picks:
                for k, opt in enumerate(pick.options):
                    opath = pick.path + ((k,) if len(pick.options) > 1 else ())
                    if not st.attention and opt.attention() != "no":
                        raise ctx.error(opath, f"{opt.type!r} is attention, but stage {i + 1} forbids attention "
                                               "(attention: false)",
                                        "remove it, set its attn to false, or allow attention in this stage")
            if seg.role == "mixed" and i + 1 < latest:
                raise ctx.error(seg.path, f"this segment mixes attention and convolution blocks, but attention_from "
                                          f"may forbid attention in stage {i + 1}",
                                "split it into a convolution segment and an attention segment")
        zeroable = i + 1 < latest
        min_depth = sum(0 if (zeroable and s.role == "attention") else min(s.depth.dist.candidates(None))
                        for s in st.segments)
        if min_depth < 1:
            raise ctx.error(st.path, f"stage {i + 1} can be left with no blocks (every segment's depth can be 0)",
                            "give one segment a depth of at least 1")
        if st.downsample is None:
            first = st.segments[0]
            if min(first.depth.dist.candidates(None)) < 1 or (zeroable and first.role == "attention"):
                raise ctx.error(first.path, "without a downsample layer the stage's first segment must have at "
                                            "least one block (it downsamples)",
                                "give it depth >= 1 or add a downsample layer")
            if i == 0:  # the stem's output width is the first stage's unless the stem says otherwise
                width_changes = any(o.width is not None and _may_differ(o.width, st.width) for o in space.stem.options)
            else:
                width_changes = _may_differ(prev_width, st.width)
            for pick in first.picks[:1]:
                for k, opt in enumerate(pick.options):
                    comp = get(opt.type)
                    cannot = ("downsample" if st.stride not in comp.strides else
                              "change the width" if width_changes and not comp.changes_width else "")
                    if cannot:
                        raise ctx.error(pick.path + ((k,) if len(pick.options) > 1 else ()),
                                        f"{opt.type!r} starts stage {i + 1} without a downsample layer but cannot "
                                        f"{cannot}", "add `downsample: conv_bn` (or conv_ln) to the stage, or start "
                                                     "it with mbconv or irmb")
        _check_feasible(st, ctx)
        prev_width = st.width


def _check_feasible(st: StageSpace, ctx: Ctx, tries: int = 64) -> None:
    """Each block option must have some width of the stage and some parameter values that pass its checks."""
    rng = random.Random(0)
    widths = st.width.dist.candidates(None) if st.width.dist.size and st.width.dist.size <= 512 else None
    for seg in st.segments:
        for pick in seg.picks:
            for k, opt in enumerate(pick.options):
                comp = get(opt.type)
                last = None
                for t in range(tries):
                    width = int(widths[t % len(widths)] if widths else st.width.dist.sample(rng))
                    params = {n: s.dist.sample(rng) for n, s in opt.params}
                    issues = comp.check(Site(width, width, 1, (14, 14)), params)
                    if not issues:
                        break
                    last = issues[0]
                else:
                    assert last is not None
                    opath = pick.path + ((k,) if len(pick.options) > 1 else ())
                    raise ctx.error(st.path + ("width",),
                                    f"no width in {st.width.dist.describe()} works with {opt.type} at "
                                    f"{'.'.join(map(str, opath))}: {last.problem}",
                                    f"{last.fix}; or change the width grid")
