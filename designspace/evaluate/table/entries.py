"""The latency table's entries (one component at one site, timed alone; results cache kind ``lut``, keyed by the
entry and its component's code identity) and a network's table latency (its entries' sum under the per-network
term of :mod:`designspace.evaluate.table.term`, whose networks :func:`calibrate_term` measures).
Design and evidence: docs/latency.md, "The per-block latency table"."""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch

from designspace.arch import Arch
from designspace.evaluate.cache import Cache, number_problem
from designspace.evaluate.measure.latency import Context, Latency, MeasurementError, Protocol
from designspace.evaluate.measure.timing import ReferenceStore, measure_onnx
from designspace.evaluate.table.term import (
    TableFit,
    TypeSums,
    add_points,
    fit_summary,
    fit_term,
    load_fit,
    table_context_key,
)
from designspace.exceptions import DesignspaceError
from designspace.plan import Placement, plan

if TYPE_CHECKING:
    from designspace.evaluate.table.entry_model import EntryPredictor

__all__ = ["ENTRY_PROTOCOL", "KIND", "Entry", "TableLatency", "calibrate_term", "entry_features",
           "entry_of", "entry_protocol", "measure_entries", "missing_entries", "one_process", "placement_of",
           "stored_features", "table_latency"]

log = logging.getLogger(__name__)
KIND = "lut"
#: the entries' protocol: a component runs for microseconds to a few milliseconds, so 2 processes of 3 short
#: rounds reach its minimum (a whole network keeps :class:`Protocol`'s default)
ENTRY_PROTOCOL = Protocol(processes=2, extra=1, rounds=3, round_s=0.05, min_runs=3, warmup_s=0.05)


def entry_protocol(protocol: Protocol) -> Protocol:
    """The protocol for entries measured on behalf of a caller whose ``protocol`` is a whole network's:
    :data:`ENTRY_PROTOCOL` with ``protocol``'s limits (run timeout, noise threshold). A protocol that is already
    lighter than the entries' (a test's fast one) is kept."""
    p, light = protocol, ENTRY_PROTOCOL
    if p.processes * p.rounds * p.round_s <= light.processes * light.rounds * light.round_s:
        return protocol
    return dataclasses.replace(ENTRY_PROTOCOL, run_timeout_s=protocol.run_timeout_s, noisy=protocol.noisy)


def one_process(protocol: Protocol) -> Protocol:
    """``protocol`` with one worker process and no extra ones: one pass of the table's two passes, minutes apart (the
    time of one pass of two processes, but a slow stretch of the host inflates one pass at most)."""
    return dataclasses.replace(protocol, processes=1, extra=0)


@dataclass(frozen=True)
class Entry:
    """One component at one site (what a table entry times): its ``type``, its ``params`` as canonical JSON, the
    site's ``in_chs``, ``out_chs`` and ``stride``, the input's height and width ``hw`` and its ``layout``
    (``"nchw"`` or ``"nhwc"``)."""

    type: str
    params: str
    in_chs: int
    out_chs: int
    stride: int
    hw: tuple[int, int]
    layout: str

    @property
    def key(self) -> str:
        """A short stable key (16 hex digits) plus the component's code identity."""
        from designspace.evaluate.identity import component_identity

        text = json.dumps([self.type, self.params, self.in_chs, self.out_chs, self.stride, list(self.hw), self.layout])
        return f"{self.type}:{hashlib.sha256(text.encode()).hexdigest()[:16]}@{component_identity(self.type)}"

    def describe(self) -> str:
        """``mbconv 32->64 s2 56x56 nchw {...}``: for progress lines and reports."""
        return f"{self.type} {self.in_chs}->{self.out_chs} s{self.stride} {self.hw[0]}x{self.hw[1]} {self.layout}"


def entry_of(p: Placement) -> Entry:
    """The table entry of a placed component."""
    layout, _ = p.component.layouts(p.layer.kwargs())
    params = json.dumps(p.layer.kwargs(), sort_keys=True, default=str)
    hw = (p.site.hw[0], p.site.hw[1])
    return Entry(p.layer.type, params, p.site.in_chs, p.site.out_chs, p.site.stride, hw, layout)


def placement_of(entry: dict[str, Any]) -> Placement:
    """A placement of the component an entry row describes (``asdict(Entry)``), alone at its site: what
    :func:`designspace.evaluate.devices.features.placement_features` needs to trace it again.

    Raises:
        KeyError, TypeError, ValueError, DocumentError: a row that does not describe a component.
    """
    from designspace.arch import Layer
    from designspace.blocks import Site

    hw = (int(entry["hw"][0]), int(entry["hw"][1]))
    site = Site(int(entry["in_chs"]), int(entry["out_chs"]), int(entry["stride"]), hw)
    return Placement(str(entry["type"]), (), "entry", Layer(str(entry["type"]), json.loads(entry["params"])), site, hw)


def _export(p: Placement, batch: int) -> tuple[bytes, tuple[int, ...]]:
    from designspace.evaluate.measure.onnx import export_onnx

    module = p.component.build(p.site, p.layer.kwargs(), 0.0).eval()
    layout, _ = p.component.layouts(p.layer.kwargs())
    h, w = p.site.hw
    shape = (batch, p.site.in_chs, h, w) if layout == "nchw" else (batch, h, w, p.site.in_chs)
    return export_onnx(module, torch.randn(*shape, generator=torch.Generator().manual_seed(0))), shape


def entry_problem(row: dict[str, Any]) -> str | None:
    """What is wrong with a stored table entry's row, or ``None``: ``ms`` (milliseconds) and ``ratio`` finite and
    above 0, ``passes`` a whole number, the entry an object."""
    problem = number_problem(row, positive=("ms", "ratio"), counts=("passes",), optional=("ratio", "passes"))
    if problem is None and "entry" in row and not isinstance(row["entry"], dict):
        problem = "entry is not an object"
    return problem


def _row(cache: Cache, entry: Entry, context: Context) -> dict[str, Any] | None:
    """The entry's stored row, or ``None``: not there, or corrupt (then dropped, to be measured again)."""
    return cache.get(entry.key, KIND, table_context_key(context), check=entry_problem)


def _get(cache: Cache, entry: Entry, context: Context) -> float | None:
    row = _row(cache, entry, context)
    return float(row["ms"]) if row is not None else None


def _needing(placements: Iterable[Placement], context: Context, cache: Cache, again: bool
             ) -> list[tuple[Placement, dict[str, Any] | None]]:
    """The placements whose entry needs a pass, one per distinct entry in first-seen order, with its stored row:
    not in the table yet, or with ``again``, in it from one pass only."""
    seen: set[str] = set()
    out = []
    for p in placements:
        e = entry_of(p)
        if e.key in seen:
            continue
        seen.add(e.key)
        row = _row(cache, e, context)
        if (row is not None and int(row.get("passes") or 1) < 2) if again else row is None:
            out.append((p, row))
    return out


def missing_entries(placements: Iterable[Placement], context: Context, cache: Cache, again: bool = False
                    ) -> list[Placement]:
    """The placements whose entry is not in the table yet, or with ``again``, whose entry has had one pass only
    (one per distinct entry, in first-seen order)."""
    return [p for p, _ in _needing(placements, context, cache, again)]


def measure_entries(placements: Sequence[Placement], context: Context, cache: Cache,
                    protocol: Protocol = ENTRY_PROTOCOL, chunk: int = 12,
                    progress: Callable[[int], None] | None = None, again: bool = False) -> int:
    """Measures and stores the entries of ``placements`` not yet in the table, ``chunk`` per group of worker
    processes; returns how many were measured (a run stopped half-way keeps every finished chunk). With ``again``,
    those in it from one pass only get their second pass, minutes after the first, and keep the smaller of their two
    ratios to the reference (a slow stretch of the host only adds time). Rows record ``ratio`` and ``passes``.

    Raises:
        MeasurementError: a worker failed.
    """
    todo = [p for p, _ in _needing(placements, context, cache, again)]
    reference = ReferenceStore(cache)
    done = 0
    for start in range(0, len(todo), chunk):
        # one process measures an entry; the others wait, then skip what it stored
        with cache.claim(f"table entries|{table_context_key(context)}", "latency table entries"):
            # another process may have measured some meanwhile: what still needs it, with its latest row or None
            group = _needing(todo[start:start + chunk], context, cache, again)
            models = [_export(p, context.batch) for p, _ in group]
            lats = measure_onnx(models, context, protocol, reference) if models else []
            for (p, old), lat in zip(group, lats, strict=True):
                e = entry_of(p)
                ms, ratio, passes = lat.ms, lat.ratio, 1
                if old is not None:
                    passes = int(old.get("passes") or 1) + 1
                    if isinstance(old.get("ratio"), (int, float)) and ratio is not None and lat.reference_ms:
                        ratio = min(float(old["ratio"]), ratio)
                        ms = ratio * lat.reference_ms  # both passes scaled by the long-run reference as it is now
                    else:
                        ms = min(float(old["ms"]), ms)
                feats = stored_features(old) if old is not None else None
                row: dict[str, Any] = {"ms": ms, "ratio": ratio, "passes": passes, "entry": asdict(e),
                                       "flags": list(lat.flags),
                                       "features": feats if feats is not None else entry_features(p)}
                cache.put(e.key, KIND, table_context_key(context), row)
            done += len(group)
        if progress is not None:
            progress(len(todo[start:start + chunk]))
    return done


def entry_features(p: Placement) -> list[float] | None:
    """The cost features of ``p`` run alone (:func:`designspace.evaluate.devices.features.placement_features`), in
    :data:`designspace.evaluate.devices.features.FEATURES` order: what an entry's row stores for the entry models of
    :mod:`designspace.evaluate.table.entry_model`; ``None`` where the component cannot be traced on the meta
    device."""
    from designspace.evaluate.devices.features import FEATURES, placement_features

    try:
        f = placement_features(p)
    except Exception as err:
        log.debug("latency table: no features for %s (%s)", entry_of(p).describe(), err)
        return None
    return [float(f[k]) for k in FEATURES]


def stored_features(row: dict[str, Any]) -> list[float] | None:
    """The features an entry's row stores, or ``None`` where it has none or they are not one finite number per
    feature (a corrupt row's features are computed again, never trusted)."""
    from designspace.evaluate.devices.features import FEATURES

    stored = row.get("features")
    if not isinstance(stored, list) or len(stored) != len(FEATURES) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in stored):
        return None
    return [float(v) for v in stored]


@dataclass(frozen=True)
class TableLatency:
    """A network's latency from the table, milliseconds.

    Attributes:
        ms: the table latency, ``fit.latency(entries_ms, by_type)`` (without a fit, the sum of the entries).
        entries_ms: the sum of the entries; ``term_ms``: what the fit adds to it, ``ms - entries_ms``.
        components: (component name, entry ms) in forward order.
        measured_now, predicted: distinct missing entries measured, and predicted (not stored), for this figure.
        fit: the fit used, or ``None``.
        by_type: ``entries_ms`` split by component type, (type, ms) sorted by type.
    """

    ms: float
    entries_ms: float
    term_ms: float
    components: tuple[tuple[str, float], ...]
    measured_now: int
    fit: TableFit | None
    predicted: int = 0
    by_type: TypeSums = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the fit as its coefficients and leave-one-out error)."""
        out: dict[str, Any] = {"ms": self.ms, "entries_ms": self.entries_ms, "term_ms": self.term_ms,
                               "components": [list(c) for c in self.components], "measured_now": self.measured_now,
                               "predicted": self.predicted, "by_type": dict(self.by_type)}
        if self.fit is not None:
            out["fit"] = fit_summary(self.fit)
        return out


def table_latency(arch: Arch, context: Context, cache: Cache, protocol: Protocol = ENTRY_PROTOCOL,
                  predictor: EntryPredictor | None = None) -> TableLatency:
    """The table latency of ``arch`` in ``context``. A missing entry is predicted by ``predictor`` where it can (not
    stored), else measured on demand (and stored).

    Raises:
        MeasurementError: a missing entry could not be measured.
    """
    # one cache read per distinct entry (a search calls this every trial); only the missing ones are measured
    keyed = [(p, entry_of(p)) for p in plan(arch)]
    found = {key: _get(cache, e, context) for key, e in {e.key: e for _, e in keyed}.items()}
    predicted: dict[str, float] = {}
    if predictor is not None:
        for p, e in keyed:
            if found[e.key] is None and e.key not in predicted and (guess := predictor.predict(p)) is not None:
                predicted[e.key] = guess
    missing = [p for p, e in keyed if found[e.key] is None and e.key not in predicted]
    measured = measure_entries(missing, context, cache, protocol) if missing else 0
    comps: list[tuple[str, float]] = []
    by_type: dict[str, float] = collections.defaultdict(float)
    for p, e in keyed:
        if found[e.key] is None and e.key not in predicted:
            found[e.key] = _get(cache, e, context)
        ms = predicted[e.key] if e.key in predicted else found[e.key]
        if ms is None:  # measured a moment ago but unreadable: the cache is not writable
            raise DesignspaceError(f"the latency table in {cache.path} cannot store entries (fix: check that the "
                                   "results folder is writable)")
        comps.append((p.name, ms))
        by_type[p.layer.type] += ms
    fit = load_fit(context, cache)
    entries = sum(ms for _, ms in comps)
    sums = tuple(sorted(by_type.items()))
    ms = fit.latency(entries, sums) if fit is not None else entries
    return TableLatency(ms, entries, ms - entries, tuple(comps), measured, fit, len(predicted), sums)


def calibrate_term(archs: Sequence[Arch], context: Context, cache: Cache, protocol: Protocol = ENTRY_PROTOCOL,
                   measure_whole: Callable[[Sequence[Arch]], Sequence[Latency]] | None = None,
                   whole_protocol: Protocol | None = None, passes: int = 2) -> TableFit:
    """Measures ``archs`` whole and from the table, then fits and stores the per-network term on them and on the
    points already stored for ``context`` (tables of several spaces share one fit; a network measured again
    replaces its point). ``protocol`` times missing entries, ``whole_protocol`` (default: the network protocol)
    the networks measured whole: in ``passes`` passes over ``archs``, each keeping its smallest figure, as the
    entries do. The default measurement is the front's (:func:`~designspace.evaluate.measure.cached.measure_latencies`:
    its first pass reads and fills the cache, later ones measure again); ``measure_whole`` (Archs -> their
    latencies, in order) replaces it in every pass.

    Raises:
        MeasurementError: a network could not be measured whole.
    """
    def default(batch: Sequence[Arch], again: bool) -> list[Latency]:
        from designspace.evaluate.measure.cached import measure_latencies

        # each network at its own resolution
        lats = measure_latencies(batch, [dataclasses.replace(context, resolution=a.resolution) for a in batch],
                                 protocol=whole_protocol, cache=cache, again=again)
        for lat in lats:
            if isinstance(lat, MeasurementError):
                raise lat
        return [lat for lat in lats if isinstance(lat, Latency)]

    best: list[float] = [math.inf] * len(archs)
    for n in range(max(1, passes)):
        lats = measure_whole(archs) if measure_whole is not None else default(archs, again=n > 0)
        best = [min(b, lat.ms) for b, lat in zip(best, lats, strict=True)]
    points = []
    for a, ms in zip(archs, best, strict=True):
        tab = table_latency(a, dataclasses.replace(context, resolution=a.resolution), cache, protocol)
        points.append((a.fingerprint, ms, tab.entries_ms, tab.by_type))
    fit = add_points(points, context, cache)
    return fit if fit is not None else fit_term(points, context, cache)  # one network cannot fit a term: raises

