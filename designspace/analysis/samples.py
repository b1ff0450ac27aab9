"""The networks an analysis looks at: a space's seeded samples, or a study's completed trials, each with its flat
parameter values, which of them shaped the network, and its metrics.

Metrics (arrays, one value per network; units in the names): ``latency_ms`` (the device's latency, milliseconds:
predicted by the device's cost model for a space, or a study's own figures), ``macs_g`` (billions of MACs, the
counting convention of :mod:`designspace.evaluate.counts.analytic`), ``params_m`` (millions of parameters),
``latency_ms_per_gmac`` (``latency_ms / macs_g``: the device's cost per unit of work), and the accuracy estimate or
the study's objectives. Nothing is trained or measured here: a space's 2,000 samples cost seconds once the counts and
the device features of their components are cached (:func:`designspace.evaluate.devices.features.component_features`).

Active parameters. A space's flat parameters are all drawn for every network (:mod:`designspace.space.core`), but a
parameter of an option that was not chosen, or of a segment with no blocks, does not change the network; the
per-option summaries look only at the networks where the parameter was active.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from designspace.arch import Arch, Layer
from designspace.exceptions import DesignspaceError
from designspace.plan import plan
from designspace.space.core import Space
from designspace.space.document import Pick, SpaceDoc
from designspace.space.values import Choice, FloatRange, IntRange

__all__ = ["CHEAP_ESTIMATES", "BlockCost", "ParamInfo", "SampleSet", "Target", "active_names", "block_label",
           "device_source", "network_metrics", "param_infos", "space_samples", "targets"]

#: accuracy estimates cheap enough for thousands of networks (no forward pass)
CHEAP_ESTIMATES = ("top1", "log10_macs", "log10_params")


@dataclass(frozen=True)
class ParamInfo:
    """One flat parameter as the analysis sees it.

    Attributes:
        name: the flat name (``stages.2.segments.1.type``).
        kind: ``"categorical"``, ``"int"`` or ``"float"``.
        options: a categorical parameter's options, in the space's order (empty otherwise).
        low: the lowest value of a numeric parameter.
        high: the highest value of a numeric parameter.
        log: a numeric parameter drawn on a log scale.
        names: how reports name each option (the block it makes, for a choice of blocks); empty: the options' text.
    """

    name: str
    kind: str
    options: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    names: tuple[str, ...] = ()

    def option_name(self, option: Any) -> str:
        """How reports name ``option``."""
        if self.names:
            for o, n in zip(self.options, self.names, strict=True):
                if str(o) == str(option):
                    return n
        return str(option)


@dataclass(frozen=True)
class Target:
    """A metric the analysis explains: its column, an axis title with its unit (and device), and its direction."""

    name: str
    label: str
    direction: str = "minimize"


@dataclass(frozen=True)
class BlockCost:
    """A block's share of a network's device latency: its stage (1-based, as papers number them), its type, the
    milliseconds the device model charges it and its MACs."""

    stage: int
    type: str
    ms: float
    macs: int


@dataclass
class SampleSet:
    """Networks and their metrics (see the module docstring).

    Attributes:
        name: the space's or the study's name.
        kind: ``"space"`` or ``"study"``.
        description: where the networks come from, in words.
        device: the device whose latency ``latency_ms`` is.
        latency_source: ``"predicted"`` (a device cost model) or ``"measured"``.
        params: the flat parameters.
        values: each network's flat values.
        active: each network's active parameters.
        metrics: metric name -> one float per network (NaN where unknown).
        targets: the metrics the analysis explains, the device latency first.
        blocks: each network's blocks with their predicted cost (empty where no device model ran).
        archs: the networks.
    """

    name: str
    kind: str
    description: str
    device: str
    latency_source: str
    params: tuple[ParamInfo, ...]
    values: list[dict[str, Any]]
    active: list[frozenset[str]]
    metrics: dict[str, np.ndarray]
    targets: tuple[Target, ...]
    blocks: list[tuple[BlockCost, ...]] = field(default_factory=list)
    archs: list[Arch] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.values)

    def target(self, name: str) -> Target:
        """The target called ``name``."""
        for t in self.targets:
            if t.name == name:
                return t
        raise DesignspaceError(f"{self.name} has no metric {name!r} (fix: one of "
                               f"{', '.join(t.name for t in self.targets)})")


# ------------------------------------------------------------------------------------------------ the space
def _picks(doc: SpaceDoc) -> Iterator[Pick]:
    yield doc.stem
    yield doc.head
    for st in doc.stages:
        if st.downsample is not None:
            yield st.downsample
        for seg in st.segments:
            yield from seg.picks


def _option_names(space: Space) -> dict[str, tuple[str, ...]]:
    """For each pick's choice parameter, its options named as the block-cost table names blocks (two options of one
    type, labelled ``iformer_attn`` and ``iformer_attn#2`` in the space, read ``iformer_attn`` and
    ``iformer_attn(modulation=true)``); an option whose switches are searched keeps its label."""
    from designspace.blocks import get
    from designspace.space.values import Fixed

    out = {}
    for pick in _picks(space.doc):
        if not pick.choice.dist.free:
            continue
        names = []
        for o in pick.options:
            specs = {sp.name: sp for sp in get(o.type).params}
            fixed = [(k, slot.dist.value) for k, slot in o.params if isinstance(slot.dist, Fixed)]
            switches = [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in fixed
                        if k in specs and specs[k].type in (bool, str) and v != specs[k].default]
            names.append(f"{o.type}({', '.join(switches)})" if switches else o.label)
        if len(set(names)) == len(names):
            out[pick.choice.name] = tuple(names)
    return out


def param_infos(space: Space) -> tuple[ParamInfo, ...]:
    out = []
    shown = _option_names(space)
    for p in space.params:
        d = p.dist
        if isinstance(d, Choice):
            out.append(ParamInfo(p.name, "categorical", tuple(d.options), names=shown.get(p.name, ())))
        elif isinstance(d, IntRange):
            out.append(ParamInfo(p.name, "int", low=d.low, high=d.high, log=d.log))
        elif isinstance(d, FloatRange):
            out.append(ParamInfo(p.name, "float", low=d.low, high=d.high, log=d.log))
    return tuple(out)


def _pick_active(pick: Pick, vals: Mapping[str, Any]) -> Iterator[str]:
    """The flat names a used pick makes active: its choice and the chosen option's own parameters."""
    yield pick.choice.name
    opt = pick.option(vals)
    if opt.width is not None:
        yield opt.width.name
    for _, slot in opt.params:
        yield slot.name


def active_names(doc: SpaceDoc, vals: Mapping[str, Any]) -> frozenset[str]:
    """The flat parameters that shaped the network at ``vals`` (the rules of :meth:`Space.decode`)."""
    names = {doc.resolution.name, doc.drop_path_rate.name}
    first_attention = 1
    if doc.attention_from is not None:
        names.add(doc.attention_from.name)
        first_attention = doc.attention_from.get(vals)
    names.update(_pick_active(doc.stem, vals))
    names.update(_pick_active(doc.head, vals))
    for i, st in enumerate(doc.stages):
        names.add(st.width.name)
        if st.downsample is not None:
            names.update(_pick_active(st.downsample, vals))
        for seg in st.segments:
            if i + 1 < first_attention and seg.role == "attention":
                continue  # forced to no blocks: its depth and picks change nothing
            names.add(seg.depth.name)
            depth = int(seg.depth.get(vals))
            for pick in seg.picks[: min(depth, len(seg.picks))]:
                names.update(_pick_active(pick, vals))
    return frozenset(names)


def device_source(name: str | None, fallback: str | None) -> Any:
    """The latency source an analysis predicts with (:class:`designspace.evaluate.sources.Device`: a device
    profile's cost model); ``local`` has none."""
    from designspace.evaluate.sources import Device

    chosen = name or (fallback if fallback not in (None, "local") else "iphone13")
    if chosen == "local":
        raise DesignspaceError("--device local: an analysis predicts latency with a device profile; `local` is "
                               "measured, one network at a time (fix: --device iphone13, or see designspace devices)")
    return Device(str(chosen))


def _estimate_target(estimate: str) -> Target:
    from designspace.evaluate.accuracy.estimate import canonical, description

    name = canonical(estimate)
    if name not in CHEAP_ESTIMATES:
        raise DesignspaceError(f"--estimate {estimate}: an analysis evaluates thousands of networks, and {name!r} runs "
                               f"each one (fix: one of {', '.join(CHEAP_ESTIMATES)})")
    return Target(name, f"{description(name)}, higher is better", "maximize")


def network_metrics(arch: Arch, source: Any, estimate: str) -> tuple[dict[str, float], tuple[BlockCost, ...]]:
    from designspace.evaluate.accuracy.estimate import estimate as estimate_of
    from designspace.evaluate.counts.analytic import count

    c = count(arch)
    pred = source.estimate(arch).detail  # the device's Prediction: its total and its per-component breakdown
    ms_by = dict(pred.components)
    layers = {p.name: p.layer for p in plan(arch)}
    blocks = tuple(BlockCost(int(cc.name.split(".")[1]) + 1, block_label(layers[cc.name]), ms_by.get(cc.name, 0.0),
                             cc.macs) for cc in c.components if ".blocks." in cc.name)
    macs_g = c.macs / 1e9
    row = {"latency_ms": pred.ms, "macs_g": macs_g, "params_m": c.params / 1e6,
           "latency_ms_per_gmac": pred.ms / macs_g if macs_g > 0 else math.nan, estimate: estimate_of(arch, estimate)}
    return row, blocks


def block_label(layer: Layer) -> str:
    """A block's kind as the block-cost table names it: its type, with the switches that make it another block (its
    ``bool`` and ``str`` parameters away from their defaults: ``iformer_attn(modulation=true)`` is iFormer's SHMA,
    ``irmb(attn=true)`` EMO's attention iRMB, ``msa(ffn=mlp)``); numbers (widths, kernels, ratios) do not split it."""
    from designspace.blocks import get

    specs = {sp.name: sp for sp in get(layer.type).params}
    switches = [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in layer.params
                if k in specs and specs[k].type in (bool, str) and v != specs[k].default]
    return f"{layer.type}({', '.join(switches)})" if switches else layer.type


def targets(device: str, source: str, extra: list[Target]) -> tuple[Target, ...]:
    return (Target("latency_ms", f"latency on {device} ({source}, ms)"),
            Target("latency_ms_per_gmac", f"latency per GMAC on {device} ({source}, ms/GMAC)"), *extra)


def space_samples(space: Space, n: int = 2000, *, seed: int = 0, device: str | None = None,
                  estimate: str = "top1") -> SampleSet:
    """``n`` networks drawn uniformly from ``space`` with ``random.Random(seed)`` (rejected points redrawn, repairs
    applied as a search applies them), counted and predicted on ``device`` (default: the space's device where it has
    a profile, else ``iphone13``).

    Raises:
        DesignspaceError: ``n`` < 2, a device with no profile, an estimate that runs each network.
    """
    if not 2 <= n <= 100_000:
        raise DesignspaceError(f"--samples {n}: an analysis compares networks, at least 2 and at most 100,000 (fix: "
                               "--samples 2000)")
    source = device_source(device, space.doc.device)
    est = _estimate_target(estimate)
    rng = random.Random(seed)
    values: list[dict[str, Any]] = []
    active: list[frozenset[str]] = []
    rows: list[dict[str, float]] = []
    blocks: list[tuple[BlockCost, ...]] = []
    archs: list[Arch] = []
    tries = 0
    while len(values) < n:
        tries += 1
        if tries > 100 * n:
            raise DesignspaceError(f"{space.doc.file}: fewer than 1 in 100 draws decode to a network (fix: widen the "
                                   "choices designspace validate names)")
        dec = space.decode(space.sample_values(rng))
        if dec.arch is None:
            continue
        row, bl = network_metrics(dec.arch, source, est.name)
        values.append(dec.values)
        active.append(active_names(space.doc, dec.values))
        rows.append(row)
        blocks.append(bl)
        archs.append(dec.arch)
    from designspace.evaluate.devices.feature_cache import flush

    flush()  # the next analysis of this space reads its components' features instead of running them
    metrics = {k: np.array([r[k] for r in rows], dtype=float) for k in rows[0]}
    return SampleSet(space.name, "space", f"{n} seeded samples of {space.doc.file} (seed {seed})", source.name,
                     "predicted", param_infos(space), values, active, metrics,
                     targets(source.name, "predicted", [est]), blocks, archs)
