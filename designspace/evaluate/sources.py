"""Latency sources: where a network's latency figure comes from, behind one interface.

A :class:`LatencySource` turns an Arch into one :class:`~designspace.evaluate.latency_estimate.LatencyEstimate`
(``source.estimate(arch)``). There are three:

* :class:`Measured`: the network measured whole on this machine's runtime (``--latency measure``);
* :class:`Table`: the per-block latency table summed (:mod:`designspace.evaluate.table.entries`); a missing entry is
  predicted from its type's measured entries where that model holds (``--latency table``) or always measured
  (``--latency table-measured``);
* :class:`Device`: a device profile's cost model, from the Arch alone (``--device NAME``).

:func:`latency_source` picks one from the command line's words, which mean the same on every command
(``LATENCY_CHOICES`` of :mod:`designspace.evaluate.latency_estimate`). The search's trial evaluation,
``evaluate()``, ``eval``, ``export``'s re-measurement and the front's re-measurement
(:func:`designspace.table_build.remeasure_front`), the design-space analysis and the app's device predictions take
a source; nothing above this module chooses between measurement modes itself.
"""

from __future__ import annotations

import dataclasses
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from designspace.arch import Arch
from designspace.evaluate.cache import Cache
from designspace.evaluate.latency_estimate import LOCAL, LatencyEstimate, check_latency, latency_word
from designspace.evaluate.measure.latency import Context, MeasurementError, Protocol
from designspace.exceptions import DesignspaceError

__all__ = ["Device", "LatencySource", "Measured", "MeasurementError", "Protocol", "Sourced",
           "Table", "latency_source", "local_context"]


@dataclass(frozen=True)
class Sourced:
    """One network's latency from a source.

    Attributes:
        estimate: the figure, named (device, source, interval).
        columns: what a search records beside it for this source (entries measured and predicted, the device
            fit's leave-one-out error and points), plain values.
        context: the local measurement context (its fields) for ``measured`` and ``table``, else ``None``.
        detail: the source's own record: :class:`~designspace.evaluate.measure.latency.Latency`,
            :class:`~designspace.evaluate.table.entries.TableLatency` or
            :class:`~designspace.evaluate.devices.document.Prediction`.
    """

    estimate: LatencyEstimate
    columns: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] | None = None
    detail: Any = None


class LatencySource(ABC):
    """Where latency figures come from (see the module docstring).

    Attributes:
        name: the ``--latency`` word for a local source (``measure``, ``table``, ``table-measured``), or the
            device profile's name.
        device: ``"local"`` or the device profile's name (what every figure of this source is a latency on).
        measures_front: whether a search on this source measures its Pareto front whole afterwards (the
            table's figures are checked against the networks measured whole, and refine its term).
    """

    name: str = ""
    device: str = LOCAL
    measures_front: bool = False

    @abstractmethod
    def estimate(self, arch: Arch) -> Sourced:
        """The latency of ``arch`` from this source.

        Raises:
            MeasurementError: the network (or a missing table entry) could not be measured.
        """


def local_context(runtime: str, threads: int, batch: int, resolution: int) -> Context:
    """This machine's measurement context for ``runtime`` at ``resolution`` (pixels).

    Raises:
        MeasurementError: CUDA asked where torch sees no GPU.
    """
    context = Context.local(runtime, threads, batch, resolution)
    if runtime == "cuda" and context.machine == "no GPU":
        raise MeasurementError("CUDA latency needs a GPU, but torch sees none (fix: use --runtime onnxruntime or "
                               "torch, or run on a machine with a GPU)")
    return context


class Measured(LatencySource):
    """The network measured whole on this machine (:func:`designspace.evaluate.measure.cached.measure_latency`:
    cached by fingerprint, code identity and context; another process measuring it is waited for)."""

    name = "measure"

    def __init__(self, runtime: str = "onnxruntime", threads: int = 1, batch: int = 1,
                 protocol: Protocol | None = None, cache: Cache | None = None) -> None:
        self.runtime, self.threads, self.batch = runtime, threads, batch
        self.protocol, self.cache = protocol, cache
        if runtime == "cuda":  # no GPU is the request's error, said once, not every network's failure
            local_context(runtime, threads, batch, 224)

    def estimate(self, arch: Arch, start: float | None = None) -> Sourced:
        """``arch`` measured (or read from the cache); the measurement's 10 s budget counts the model's build, or
        from ``start`` (a ``time.perf_counter()``: a caller that loaded and counted the network first)."""
        from designspace.evaluate.measure.cached import measure_latency

        began = time.perf_counter() if start is None else start
        context = local_context(self.runtime, self.threads, self.batch, arch.resolution)
        lat = measure_latency(arch, context, protocol=self.protocol, cache=self.cache, start=began)
        return Sourced(LatencyEstimate.from_measurement(lat), {}, dataclasses.asdict(lat.context), lat)


class Table(LatencySource):
    """The per-block latency table (ONNX Runtime only: its entries are exported components).

    ``predict_missing``: a missing entry is predicted from its type's measured entries where that model holds
    (:class:`designspace.evaluate.table.entry_model.EntryPredictor`, one per context, refitted as the table grows),
    else measured with the entries' light protocol; without it every missing entry is measured.
    """

    measures_front = True

    def __init__(self, predict_missing: bool = True, runtime: str = "onnxruntime", threads: int = 1,
                 batch: int = 1, protocol: Protocol | None = None, cache: Cache | None = None) -> None:
        if runtime != "onnxruntime":
            raise DesignspaceError(f"the latency table is measured with ONNX Runtime, not {runtime} (fix: --runtime "
                                   "onnxruntime, or --latency measure)")
        self.name = "table" if predict_missing else "table-measured"
        self.predict_missing = predict_missing
        self.runtime, self.threads, self.batch = runtime, threads, batch
        self.protocol = protocol or Protocol()  # the whole network's: the front's re-measurement uses it
        self.cache = cache if cache is not None else Cache()
        self._predictors: dict[str, Any] = {}

    def context(self, arch: Arch) -> Context:
        """The local measurement context of ``arch`` (what its entries and its measurement whole use)."""
        return Context.local(self.runtime, self.threads, self.batch, resolution=arch.resolution)

    def _predictor(self, context: Context) -> Any:
        from designspace.evaluate.table.entry_model import EntryPredictor
        from designspace.evaluate.table.term import table_context_key

        key = table_context_key(context)
        if key not in self._predictors:
            self._predictors[key] = EntryPredictor(context, self.cache)
        return self._predictors[key]

    def estimate(self, arch: Arch) -> Sourced:
        """``arch``'s table latency; the columns say how many entries were measured now and predicted."""
        from designspace.evaluate.table.entries import entry_protocol, table_latency

        where = self.context(arch)
        context = dataclasses.asdict(where)
        # a missing entry is a component, timed by the entries' light protocol (the whole network's protocol is
        # for the front's re-measurement): 3 processes of 0.5 s for one component made a cold table slow
        tab = table_latency(arch, where, self.cache, entry_protocol(self.protocol),
                            self._predictor(where) if self.predict_missing else None)
        return Sourced(LatencyEstimate.from_table(tab, context),
                       {"latency_entries_measured": tab.measured_now, "latency_entries_predicted": tab.predicted},
                       context, tab)


class Device(LatencySource):
    """A device profile's cost model: the latency on the device predicted from the Arch alone (microseconds a
    network), with its interval, extrapolation flag or refusal."""

    def __init__(self, name: str) -> None:
        from designspace.evaluate.devices.profiles import load_device

        self.profile = load_device(name)  # an unknown device is the caller's error, before any network
        self.name = self.device = self.profile.name

    def estimate(self, arch: Arch, local_ms: float | None = None) -> Sourced:
        """``arch``'s predicted latency on the device (``local_ms``: this machine's figure, kept beside it)."""
        pr = self.profile.predict(arch, local_ms=local_ms)
        return Sourced(LatencyEstimate.from_prediction(pr),
                       {"latency_loo_error": pr.fit.loo_mean, "latency_fit_points": pr.fit.points}, None, pr)


def latency_source(latency: str = "measure", *, device: str | None = None, runtime: str = "onnxruntime",
                   threads: int = 1, batch: int = 1, protocol: Protocol | None = None,
                   cache: Cache | None = None) -> LatencySource:
    """The source a command's ``--latency`` and ``--device`` name: a device profile when ``device`` is one
    (``None``, ``""`` or ``"local"``: this machine), else ``latency`` (``LATENCY_CHOICES``; ``both`` read as
    ``table-measured``) on this machine.

    Raises:
        DesignspaceError: an unknown ``latency`` word, or a table on another runtime than ONNX Runtime.
        DocumentError: an unknown device or a malformed profile.
    """
    latency = check_latency(latency_word(latency))
    if device not in (None, "", LOCAL):
        return Device(str(device))
    if latency == "measure":
        return Measured(runtime, threads, batch, protocol, cache)
    return Table(latency == "table", runtime, threads, batch, protocol, cache)
