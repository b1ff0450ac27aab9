"""``evaluate(arch)``: parameters, MACs, latency with its context and, for a target device, the prediction, each
latency from its source (:mod:`designspace.evaluate.sources`: the network measured here, a device's profile).

A candidate that cannot be measured (export error, out of memory, a run past the timeout) gives a failed
:class:`Evaluation` with the reason; the caller goes on. A bad request (an unknown device, a runtime this
machine lacks) is the caller's error and raises.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from designspace.arch import Arch
from designspace.evaluate.cache import Cache
from designspace.evaluate.counts.analytic import count
from designspace.evaluate.devices.document import Prediction
from designspace.evaluate.latency_estimate import LatencyEstimate
from designspace.evaluate.measure.latency import Latency, MeasurementError, Protocol
from designspace.evaluate.sources import Device, Measured

__all__ = ["Evaluation", "evaluate"]


@dataclass(frozen=True)
class Evaluation:
    """What designspace knows of one Arch in one measurement context.

    Attributes:
        name: the Arch's name.
        fingerprint: its fingerprint.
        params: parameters (exact).
        macs: MACs per image (analytic; the convention of :mod:`designspace.evaluate.counts.analytic`).
        latency: the local measurement, or ``None`` (failed or not asked for).
        prediction: the latency predicted on a target device by its cost model (with its interval and
            extrapolation flag), or ``None``.
        status: ``"ok"`` or ``"failed"``.
        reason: why it failed.
    """

    name: str
    fingerprint: str
    params: int
    macs: int
    latency: Latency | None = None
    prediction: Prediction | None = None
    status: str = "ok"
    reason: str = ""

    @property
    def estimate(self) -> LatencyEstimate | None:
        """The latency a budget on this evaluation's device compares, as one :class:`LatencyEstimate`: the
        device's prediction if a device was asked, else the local measurement (``None`` without either)."""
        if self.prediction is not None:
            return LatencyEstimate.from_prediction(self.prediction)
        return self.measured

    @property
    def measured(self) -> LatencyEstimate | None:
        """The local measurement as a :class:`LatencyEstimate` (device ``"local"``, source ``"measured"``)."""
        return LatencyEstimate.from_measurement(self.latency) if self.latency is not None else None

    @property
    def latency_ms(self) -> float | None:
        """The latency a budget on this evaluation's device compares (ms): predicted if a device was asked, else
        measured."""
        est = self.estimate
        return est.value_ms if est is not None else None

    @property
    def latency_low_ms(self) -> float | None:
        """Low end of :attr:`estimate`'s interval (ms)."""
        est = self.estimate
        return est.lo_ms if est is not None else None

    @property
    def latency_high_ms(self) -> float | None:
        """High end of :attr:`estimate`'s interval (ms)."""
        est = self.estimate
        return est.hi_ms if est is not None else None

    @property
    def latency_extrapolated(self) -> bool:
        """Whether the prediction lies outside what the device's fit saw (False for a measurement)."""
        est = self.estimate
        return est is not None and est.extrapolated

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"name": self.name, "fingerprint": self.fingerprint, "status": self.status, "reason": self.reason,
                "params": self.params, "params_m": self.params / 1e6, "macs": self.macs, "macs_g": self.macs / 1e9,
                "latency_ms": self.latency_ms, "latency_low_ms": self.latency_low_ms,
                "latency_high_ms": self.latency_high_ms, "latency_extrapolated": self.latency_extrapolated,
                "estimate": self.estimate.to_dict() if self.estimate is not None else None,
                "measured": self.measured.to_dict() if self.measured is not None else None,
                "latency": self.latency.to_dict() if self.latency is not None else None,
                "prediction": self.prediction.to_dict() if self.prediction is not None else None}


def evaluate(arch: Arch | str | Path, *, device: str | None = None, runtime: str = "onnxruntime", threads: int = 1,
             batch: int = 1, protocol: Protocol | None = None, cache: Cache | bool | None = True,
             latency: bool = True, measure: bool = True) -> Evaluation:
    """Evaluates an Arch (or an Arch file, or a zoo name).

    Args:
        arch: what to evaluate.
        device: a device profile name for a predicted target latency (its cost model, from the Arch alone);
            ``None`` or ``"local"`` for this machine. The local latency is measured either way.
        runtime: ``"onnxruntime"`` (CPU), ``"torch"`` (eager CPU) or ``"cuda"``, without a device.
        threads: intra-op threads, without a device.
        batch: images per run, without a device.
        protocol: the measurement protocol (defaults: :class:`Protocol`).
        cache: a :class:`Cache`, ``True`` for the default file under ``results/``, ``False``/``None`` for none.
        latency: measure (or, with a device, predict) latency (counts alone otherwise).
        measure: measure the local latency; with ``False`` and a device, only the device's prediction (from the
            Arch alone, milliseconds instead of the measurement's seconds).

    Returns:
        The evaluation; ``status == "failed"`` with a reason if the model could not be measured.

    Raises:
        DocumentError: an unknown device or a malformed profile.
        MeasurementError: the runtime is not available here (no GPU for CUDA).
    """
    from designspace.network import load_arch

    began = time.perf_counter()  # a measurement's 10 s budget counts the whole evaluation
    arch = load_arch(arch)
    store = Cache() if cache is True else (cache or None)
    counts = count(arch)
    base = Evaluation(arch.name, arch.fingerprint, counts.params, counts.macs)
    if not latency:
        return base
    target = Device(device) if device not in (None, "", "local") else None
    if target is not None and not measure:
        return Evaluation(arch.name, arch.fingerprint, counts.params, counts.macs, None, target.estimate(arch).detail)
    here = Measured(runtime, threads, batch, protocol, store)  # CUDA without a GPU raises here: the request's error
    try:
        lat = here.estimate(arch, start=began).detail
    except MeasurementError as err:
        return Evaluation(arch.name, arch.fingerprint, counts.params, counts.macs, status="failed", reason=str(err))
    prediction = target.estimate(arch, local_ms=lat.ms).detail if target is not None else None
    return Evaluation(arch.name, arch.fingerprint, counts.params, counts.macs, lat, prediction)
