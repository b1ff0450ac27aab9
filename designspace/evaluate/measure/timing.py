"""Timing a model by the latency protocol (:mod:`designspace.evaluate.measure.latency` says what the protocol is
and why).

* :func:`measure`: rounds of runs in this process (PyTorch eager and CUDA); :func:`summarize` makes them a
  :class:`Latency`;
* :func:`measure_onnx`: exported models timed in isolated worker processes interleaved with the reference network
  (:mod:`designspace.evaluate.measure.isolated`), each figure its median ratio to the reference times the reference's
  long-run figure (:class:`ReferenceStore`);
* :func:`measure_model`: one ``nn.Module`` by whichever of the two its context asks.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from designspace.evaluate.measure.latency import Context, Latency, MeasurementError, Protocol
from designspace.exceptions import DesignspaceError

if TYPE_CHECKING:
    from designspace.evaluate.measure.isolated import Timing

__all__ = ["ReferenceStore", "export_for_measurement", "measure", "measure_model", "measure_onnx",
           "summarize"]

#: the protocol's defaults (:class:`Protocol` is frozen: one instance serves every call)
_DEFAULT = Protocol()


def measure(run: Callable[[], float], protocol: Protocol = _DEFAULT) -> tuple[list[list[float]], int]:
    """Times ``run`` (which returns the milliseconds of one run) in rounds, following ``protocol``.

    Returns:
        The timed rounds (milliseconds per run) and the number of warm-up runs.

    Raises:
        MeasurementError: a run exceeded ``protocol.run_timeout_s``.
    """
    limit_ms = protocol.run_timeout_s * 1000.0
    warm, start = 0, time.perf_counter()
    while warm < protocol.min_runs or time.perf_counter() - start < protocol.warmup_s:
        ms = run()
        warm += 1
        if ms > limit_ms:
            raise MeasurementError(f"timeout: one run took {ms / 1000:.1f} s (limit {protocol.run_timeout_s:g} s)")

    def rounds(n: int) -> list[list[float]]:
        out = []
        for _ in range(n):
            times: list[float] = []
            t0 = time.perf_counter()
            while len(times) < protocol.min_runs or time.perf_counter() - t0 < protocol.round_s:
                times.append(run())
                if times[-1] > limit_ms:
                    raise MeasurementError(f"timeout: one run took {times[-1] / 1000:.1f} s")
            out.append(times)
        return out

    timed = rounds(protocol.rounds)
    if _spread(timed) > protocol.agree:
        timed += rounds(protocol.extra)
    return timed, warm


def _spread(rounds: list[list[float]]) -> float:
    mins = sorted(min(r) for r in rounds)
    return mins[1] / mins[0] - 1.0 if len(mins) > 1 else 0.0


def summarize(rounds: list[list[float]], protocol: Protocol, context: Context, seconds: float) -> Latency:
    """The :class:`Latency` of timed rounds under ``protocol``."""
    runs = [t for r in rounds for t in r]
    best, median, spread = min(runs), statistics.median(runs), _spread(rounds)
    found = []
    if spread > protocol.agree:
        found.append("unconfirmed")
    if median > best * (1.0 + protocol.noisy):
        found.append("noisy")
    return Latency(best, median, spread, len(runs), len(rounds), tuple(found), seconds, context)


# -------------------------------------------------------------------------------------------- runners
def _torch_runner(model: nn.Module, example: torch.Tensor) -> Callable[[], float]:
    def run() -> float:
        with torch.inference_mode():
            t = time.perf_counter_ns()
            model(example)
            return (time.perf_counter_ns() - t) / 1e6

    return run


def _cuda_runner(model: nn.Module, example: torch.Tensor) -> Callable[[], float]:
    if not torch.cuda.is_available():
        raise MeasurementError("CUDA latency needs a GPU, but torch sees none (torch.cuda.is_available() is False; "
                               "fix: use --runtime onnxruntime or torch, or run on a machine with a GPU)")
    model, example = model.cuda(), example.cuda()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def run() -> float:
        with torch.inference_mode():
            torch.cuda.synchronize()
            start.record()
            model(example)
            end.record()
            end.synchronize()
            return float(start.elapsed_time(end))

    return run


def measure_model(model: nn.Module, context: Context, protocol: Protocol = _DEFAULT,
                  in_chans: int = 3, reference: ReferenceStore | None = None, start: float | None = None) -> Latency:
    """Measures ``model`` (put in eval mode) in ``context`` (which must be this machine's).

    ONNX Runtime: exported here, timed in isolated worker processes interleaved with the reference network
    (:mod:`designspace.evaluate.measure.isolated`); ``reference`` keeps the reference's long-run figure (default: one
    for this process only). PyTorch eager and CUDA: timed in this process by :func:`measure` (no reference, so a
    host slow throughout the measurement goes unflagged). ``start``: the
    ``time.perf_counter()`` the measurement's wall time (and its 10 s budget) counts from (default: now; a
    caller that built the model for it passes when it began).

    Raises:
        MeasurementError: export failed, out of memory, a run exceeded the timeout, or no GPU for CUDA.
    """
    start = time.perf_counter() if start is None else start
    model.eval()
    if context.runtime == "onnxruntime":
        return measure_onnx([export_for_measurement(model, context, in_chans)], context, protocol,
                            reference or ReferenceStore(), start=start)[0]
    r = context.resolution
    example = torch.randn(context.batch, in_chans, r, r, generator=torch.Generator().manual_seed(0))
    threads = torch.get_num_threads()
    try:
        if context.runtime == "torch":
            torch.set_num_threads(context.threads)
            run = _torch_runner(model, example)
        else:
            run = _cuda_runner(model, example)
        rounds, _ = measure(run, protocol)
    except MeasurementError:
        raise
    except MemoryError as err:
        raise MeasurementError("out of memory while measuring") from err
    except Exception as err:  # runtimes raise many types (RuntimeError, ORT's Fail, ...): keep the reason
        text = str(err).splitlines()[0] if str(err) else type(err).__name__
        kind = "out of memory" if "out of memory" in text.lower() else "measurement failed"
        raise MeasurementError(f"{kind}: {type(err).__name__}: {text}") from err
    finally:
        torch.set_num_threads(threads)
    return summarize(rounds, protocol, context, time.perf_counter() - start)


def export_for_measurement(model: nn.Module, context: Context, in_chans: int = 3) -> tuple[bytes, tuple[int, ...]]:
    """``model`` (put in eval mode) exported to ONNX for the isolated protocol, with the input shape it is timed
    with: ``(batch, in_chans, resolution, resolution)`` of ``context``.

    Raises:
        MeasurementError: the export failed (this model's failed measurement).
    """
    from designspace.evaluate.measure.onnx import export_onnx

    model.eval()
    r = context.resolution
    example = torch.randn(context.batch, in_chans, r, r, generator=torch.Generator().manual_seed(0))
    try:
        return export_onnx(model, example), tuple(example.shape)
    except DesignspaceError as err:
        raise MeasurementError(str(err)) from err


class ReferenceStore:
    """The reference network's long-run figure per machine context: the smallest minimum any worker process
    has seen (it only improves). Backed by the evaluation cache when one is given, else by this process.

    Args:
        cache: an object with ``get(key, kind, context)`` and ``put(...)`` (:class:`~designspace.evaluate.cache.Cache`).
    """

    _process: ClassVar[dict[str, float]] = {}  # shared by the stores of one process

    def __init__(self, cache: Any = None) -> None:
        self.cache = cache

    @staticmethod
    def key(context: Context) -> str:
        """The reference's context: runtime, machine, threads and exporter (not the model's resolution)."""
        return f"{context.runtime_version}|{context.machine}|{context.threads}|{context.exporter}"

    def best(self, context: Context, observed: Sequence[float]) -> float:
        """The long-run reference figure after recording ``observed`` minima, milliseconds."""
        key = self.key(context)
        best = min([*observed, self._process.get(key, math.inf)])
        if self.cache is not None:
            from designspace.evaluate.cache import number_problem

            hit = self.cache.get("reference-network", "reference", key,
                                 check=lambda d: number_problem(d, positive=("ms",)))
            if hit is not None:
                best = min(best, float(hit["ms"]))
            if hit is None or best < float(hit["ms"]):
                self.cache.put("reference-network", "reference", key, {"ms": best})
        self._process[key] = best
        return best


def measure_onnx(models: Sequence[tuple[bytes, tuple[int, ...]]], context: Context, protocol: Protocol,
                 reference: ReferenceStore, start: float | None = None) -> list[Latency]:
    """Latencies of exported ONNX models in ``context`` by the isolated, interleaved protocol (see
    :mod:`designspace.evaluate.measure.isolated`): the median ratio to the reference across worker processes, times
    the reference's long-run figure; more processes for a model whose processes disagree (that model alone, and
    only within ``protocol.budget_s``); flags as :class:`Latency` says.

    Raises:
        MeasurementError: a worker failed (the reason is in the message).
    """
    from designspace.evaluate.measure.isolated import WorkerError, time_onnx

    began = time.perf_counter() if start is None else start
    try:
        timings = time_onnx(models, context.threads, protocol)
        # more processes for the models whose processes disagree, not for the whole group: a front of 8
        # networks to a worker nearly always holds one that disagrees
        apart = [i for i, t in enumerate(timings) if t.spread > protocol.agree]
        within = time.perf_counter() - began + protocol.extra * _extra_process_s(timings, len(apart), protocol) \
            <= protocol.budget_s * len(models)
        if apart and protocol.extra and within:
            # the estimate is an estimate: a process that would still pass the budget is cut short, and the
            # figure keeps the processes done by then (seen: 10.0-10.2 s on a slow host without the cut)
            more = time_onnx([models[i] for i in apart], context.threads, protocol, processes=protocol.extra,
                             deadline=began + protocol.budget_s * len(models) - _FINISH_S)
            for i, extra in zip(apart, more, strict=True) if more else ():  # none: no extra process done
                timings[i] = _merge(timings[i], extra)
    except WorkerError as err:
        raise MeasurementError(str(err)) from None
    refs = [m for t in timings for m in t.reference_minima]
    ref = reference.best(context, refs)
    out = []
    for t in timings:
        flags = []
        if t.spread > protocol.agree:
            flags.append("unconfirmed")
        if min(t.reference_minima) > ref * (1.0 + protocol.slow):
            flags.append("slow-host")
        ms = t.ratio * ref
        median = statistics.median(t.medians) * ref / statistics.median(t.reference_minima)
        if median > ms * (1.0 + protocol.noisy):
            flags.append("noisy")
        out.append(Latency(ms, median, t.spread, t.runs, len(t.ratios) * protocol.rounds, tuple(flags),
                           time.perf_counter() - began, context, direct_ms=min(t.minima), ratio=t.ratio,
                           reference_ms=ref, processes=len(t.ratios)))
    return out


#: seconds a measurement keeps, within its budget, for what follows its last worker process (the figure made and
#: cached)
_FINISH_S = 0.3


def _extra_process_s(timings: Sequence[Timing], k: int, protocol: Protocol) -> float:
    """Wall seconds one more worker process timing ``k`` of the models would take, estimated from the slowest of
    the first processes: its start-up and overhead (its wall time beyond the timing it was asked for) plus that
    timing for the reference and ``k`` models.

    Why the slowest and not the mean: on a host in a slow stretch the mean of the first processes underestimated
    the extra ones, and measurements the extra processes took past the 10 s budget (10.6 s, docs/latency.md).
    """
    walls = timings[0].process_s if timings else ()  # the processes' walls, shared by all their models
    if not walls:
        return 0.0
    asked = protocol.warmup_s + protocol.rounds * protocol.round_s  # seconds per model (the reference counts as one)
    overhead = max(0.0, max(walls) - (len(timings) + 1) * asked)
    return overhead + (k + 1) * asked


def _merge(a: Timing, b: Timing) -> Timing:
    from designspace.evaluate.measure.isolated import Timing

    return Timing(a.ratios + b.ratios, a.minima + b.minima, a.medians + b.medians,
                  a.reference_minima + b.reference_minima, a.runs + b.runs, a.process_s + b.process_s)
