"""Timing a model by the latency protocol: rounds in this process (:func:`measure`, PyTorch eager and CUDA), exported
models in isolated worker processes against the reference network (:func:`measure_onnx`, ONNX Runtime), one
``nn.Module`` by whichever its context asks (:func:`measure_model`). Evidence: docs/latency.md, 'Protocol and the
evidence for it'."""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from designspace.evaluate.cache import number_problem
from designspace.evaluate.measure.latency import DEFAULT_PROTOCOL, Context, Latency, MeasurementError, Protocol
from designspace.exceptions import DesignspaceError

if TYPE_CHECKING:
    from designspace.evaluate.measure.isolated import Timing

__all__ = ["ReferenceStore", "export_for_measurement", "measure", "measure_model", "measure_onnx", "summarize"]

#: seconds a measurement keeps, within its budget, for what follows its last worker process (the figure made, cached)
_FINISH_S = 0.3


def measure(run: Callable[[], float], protocol: Protocol = DEFAULT_PROTOCOL) -> tuple[list[list[float]], int]:
    """Times ``run`` (which returns the milliseconds of one run) in rounds, following ``protocol``: the timed
    rounds (milliseconds per run) and the number of warm-up runs. A run over ``protocol.run_timeout_s`` raises
    :class:`MeasurementError`."""
    limit_ms = protocol.run_timeout_s * 1000.0

    def window(seconds: float, limit: str = "") -> list[float]:
        times: list[float] = []
        t0 = time.perf_counter()
        while len(times) < protocol.min_runs or time.perf_counter() - t0 < seconds:
            times.append(run())
            if times[-1] > limit_ms:
                raise MeasurementError(f"timeout: one run took {times[-1] / 1000:.1f} s{limit}")
        return times

    warm = len(window(protocol.warmup_s, f" (limit {protocol.run_timeout_s:g} s)"))
    timed = [window(protocol.round_s) for _ in range(protocol.rounds)]
    if _spread(timed) > protocol.agree:
        timed += [window(protocol.round_s) for _ in range(protocol.extra)]
    return timed, warm


def _spread(rounds: list[list[float]]) -> float:
    mins = sorted(min(r) for r in rounds)
    return mins[1] / mins[0] - 1.0 if len(mins) > 1 else 0.0


def summarize(rounds: list[list[float]], protocol: Protocol, context: Context, seconds: float) -> Latency:
    """The :class:`Latency` of timed rounds under ``protocol``."""
    runs = [t for r in rounds for t in r]
    best, median, spread = min(runs), statistics.median(runs), _spread(rounds)
    return Latency(best, median, spread, len(runs), len(rounds), _flags(protocol, spread, best, median), seconds,
                   context)


def _flags(protocol: Protocol, spread: float, best: float, median: float, slow_host: bool = False) -> tuple[str, ...]:
    """The flags of a figure ``best`` (ms) whose estimates spread by ``spread``, in :class:`Latency`'s order."""
    named = (("unconfirmed", spread > protocol.agree), ("slow-host", slow_host),
             ("noisy", median > best * (1.0 + protocol.noisy)))
    return tuple(name for name, on in named if on)


def _example(context: Context, in_chans: int) -> torch.Tensor:
    """The seeded input a model is timed on: ``(batch, in_chans, resolution, resolution)`` of ``context``."""
    r = context.resolution
    return torch.randn(context.batch, in_chans, r, r, generator=torch.Generator().manual_seed(0))


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


def measure_model(model: nn.Module, context: Context, protocol: Protocol = DEFAULT_PROTOCOL,
                  in_chans: int = 3, reference: ReferenceStore | None = None, start: float | None = None) -> Latency:
    """Measures ``model`` (put in eval mode) in ``context`` (which must be this machine's): ONNX Runtime by
    :func:`measure_onnx` (``reference``: default, one for this process only), PyTorch eager and CUDA by
    :func:`measure`. ``start``: the ``time.perf_counter()`` the measurement's wall time (and its budget) counts
    from (default: now; a caller that built the model for it passes when it began). Raises
    :class:`MeasurementError` where the export failed, memory ran out, a run exceeded the timeout, or CUDA has no GPU.
    """
    start = time.perf_counter() if start is None else start
    model.eval()
    if context.runtime == "onnxruntime":
        return measure_onnx([export_for_measurement(model, context, in_chans)], context, protocol,
                            reference or ReferenceStore(), start=start)[0]
    example = _example(context, in_chans)
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
    with: ``(batch, in_chans, resolution, resolution)`` of ``context``. A failed export raises
    :class:`MeasurementError` (this model's failed measurement)."""
    from designspace.evaluate.measure.onnx import export_onnx

    example = _example(context, in_chans)
    try:
        return export_onnx(model, example), tuple(example.shape)
    except DesignspaceError as err:
        raise MeasurementError(str(err)) from err


class ReferenceStore:
    """The reference network's long-run figure per machine context: the smallest minimum any worker process
    has seen (it only improves). Backed by ``cache`` when one is given (an object with ``get(key, kind, context)``
    and ``put(...)``: :class:`~designspace.evaluate.cache.Cache`), else by this process."""

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
    only within ``protocol.budget_s``); flags as :class:`Latency` says. A failed worker raises
    :class:`MeasurementError` (the reason is in the message)."""
    from designspace.evaluate.measure.isolated import time_onnx

    began = time.perf_counter() if start is None else start
    timings = time_onnx(models, context.threads, protocol)
    # more processes for the models whose processes disagree, not the group (8 nearly always hold one)
    apart = [i for i, t in enumerate(timings) if t.spread > protocol.agree]
    within = time.perf_counter() - began + protocol.extra * _extra_process_s(timings, len(apart), protocol) \
        <= protocol.budget_s * len(models)
    if apart and protocol.extra and within:
        # an extra process that would still pass the budget is cut short; the processes done by then count
        more = time_onnx([models[i] for i in apart], context.threads, protocol, processes=protocol.extra,
                         deadline=began + protocol.budget_s * len(models) - _FINISH_S)
        for i, extra in zip(apart, more, strict=True) if more else ():  # none: no extra process done
            timings[i] = _merge(timings[i], extra)
    refs = [m for t in timings for m in t.reference_minima]
    ref = reference.best(context, refs)
    out = []
    for t in timings:
        ms = t.ratio * ref
        median = statistics.median(t.medians) * ref / statistics.median(t.reference_minima)
        flags = _flags(protocol, t.spread, ms, median, min(t.reference_minima) > ref * (1.0 + protocol.slow))
        out.append(Latency(ms, median, t.spread, t.runs, len(t.ratios) * protocol.rounds, flags,
                           time.perf_counter() - began, context, direct_ms=min(t.minima), ratio=t.ratio,
                           reference_ms=ref, processes=len(t.ratios)))
    return out


def _extra_process_s(timings: Sequence[Timing], k: int, protocol: Protocol) -> float:
    """Wall seconds one more worker process timing ``k`` of the models would take: the slowest first process's
    overhead (its wall beyond the timing asked of it) plus the timing of the reference and ``k`` models. Why the
    slowest: docs/latency.md, 'Protocol and the evidence for it'."""
    walls = timings[0].process_s if timings else ()  # the processes' walls, shared by all their models
    if not walls:
        return 0.0
    asked = protocol.warmup_s + protocol.rounds * protocol.round_s  # seconds per model (the reference counts as one)
    overhead = max(0.0, max(walls) - (len(timings) + 1) * asked)
    return overhead + (k + 1) * asked


def _merge(a: Timing, b: Timing) -> Timing:
    """The timings of ``a``'s processes and ``b``'s together."""
    return type(a)(*(getattr(a, f.name) + getattr(b, f.name) for f in dataclasses.fields(a)))
