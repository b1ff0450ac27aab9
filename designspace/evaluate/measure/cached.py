"""A network's latency on this machine, from the results cache or measured (and then cached): one network
(:func:`measure_latency`) or many, several to a worker process (:func:`measure_latencies`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from designspace.arch import Arch
from designspace.evaluate.cache import Cache, number_problem
from designspace.evaluate.measure.latency import Context, Latency, MeasurementError, Protocol
from designspace.evaluate.measure.timing import ReferenceStore, measure_model
from designspace.network import Network

__all__ = ["latency_problem", "measure_latencies", "measure_latency"]

_KIND = "latency"


def measure_latency(arch: Arch, context: Context, *, protocol: Protocol | None = None,
                    cache: Cache | None = None, start: float | None = None) -> Latency:
    """The latency of ``arch`` in ``context``, from the cache or measured (and then cached). ``start``: the
    ``time.perf_counter()`` the measurement's wall time and its budget count from (default: now, before the
    network is built). Another process on this machine measuring the same network in the same context is
    waited for, and its figure used (:meth:`Cache.claim`). Raises :class:`MeasurementError`: export failed, out of
    memory, timeout, no GPU."""
    hit = _cached(arch, context, cache)
    if hit is not None:
        return hit
    if cache is None:
        return _measure_one(arch, context, protocol, cache, start)
    with cache.claim(f"latency|{arch.fingerprint}|{context.key()}", f"the latency of {arch.name}"):
        hit = _cached(arch, context, cache)  # the process this one waited for measured it
        return hit if hit is not None else _measure_one(arch, context, protocol, cache, start)


def _measure_one(arch: Arch, context: Context, protocol: Protocol | None, cache: Cache | None,
                 start: float | None) -> Latency:
    began = time.perf_counter() if start is None else start  # the wall time counts the model's build too
    try:
        model = Network(arch)
    except MemoryError as err:
        raise MeasurementError("out of memory while building the model") from err
    lat = measure_model(model, context, protocol or Protocol(), in_chans=arch.in_chans,
                        reference=ReferenceStore(cache), start=began)
    if cache is not None:
        cache.put(arch, _KIND, context.key(), lat.to_dict())
    return lat


def measure_latencies(archs: Sequence[Arch], contexts: Sequence[Context], *, protocol: Protocol | None = None,
                      cache: Cache | None = None, group: int = 8, again: bool = False
                      ) -> list[Latency | MeasurementError]:
    """Per Arch, in order, its :class:`Latency` in its context or the :class:`MeasurementError` that failed it, as
    :func:`measure_latency` gives them one at a time, but ONNX Runtime times up to ``group`` networks of one
    context in each worker process (start-up and the reference's rounds paid once per group); a group whose
    workers fail is measured again one network at a time (a failure stays its own). A network given twice in one
    context is measured once.

    With ``again``, the networks the cache holds are measured again too, and each keeps the smaller of its cached
    and its new figure (in the cache as well): the second pass of the table's two-pass rule, minutes after the
    first, so that a slow stretch of the host inflates one pass at most.
    """
    from designspace.evaluate.measure.timing import export_for_measurement, measure_onnx

    proto = protocol or Protocol()
    out: list[Latency | MeasurementError | None] = [None] * len(archs)
    pending: dict[str, list[int]] = {}
    first: dict[tuple[str, str], int] = {}  # (context, network) -> the index measured for it
    same: list[tuple[int, int]] = []  # (index, the index whose figure it takes): a front may hold one network twice
    held: dict[int, Latency] = {}  # with ``again``: the cached figure each new one is compared with
    for i, (arch, ctx) in enumerate(zip(archs, contexts, strict=True)):
        twin = first.setdefault((ctx.key(), arch.fingerprint), i)
        if twin != i:
            same.append((i, twin))
            continue
        hit = _cached(arch, ctx, cache)
        if hit is not None and not again:
            out[i] = hit
            continue
        if hit is not None:
            held[i] = hit
        if ctx.runtime == "onnxruntime":
            pending.setdefault(ctx.key(), []).append(i)
        else:
            out[i] = _one(arch, ctx, proto, None if i in held else cache)
    for indices in pending.values():
        ctx = contexts[indices[0]]
        for start in range(0, len(indices), group):
            chunk, models = [], []
            for i in indices[start:start + group]:
                try:
                    models.append(export_for_measurement(Network(archs[i]), ctx, archs[i].in_chans))
                    chunk.append(i)
                except MeasurementError as err:
                    out[i] = err
                except MemoryError:
                    out[i] = MeasurementError("out of memory while building the model")
            if not chunk:
                continue
            try:
                lats = measure_onnx(models, ctx, proto, ReferenceStore(cache))
            except MeasurementError:  # which network failed the group: each alone
                for i in chunk:
                    out[i] = _one(archs[i], ctx, proto, None if i in held else cache)
                continue
            for i, lat in zip(chunk, lats, strict=True):
                if cache is not None and i not in held:
                    cache.put(archs[i], _KIND, ctx.key(), lat.to_dict())
                out[i] = lat
    for i, old in held.items():
        new = out[i]
        out[i] = keep = new if isinstance(new, Latency) and new.ms < old.ms else old
        if cache is not None:
            cache.put(archs[i], _KIND, contexts[i].key(), keep.to_dict())
    for i, twin in same:
        out[i] = out[twin]
    return [o if o is not None else MeasurementError("not measured") for o in out]


def latency_problem(data: dict[str, Any]) -> str | None:
    """What is wrong with a stored :class:`Latency` (its ``to_dict`` form), or ``None``: times in milliseconds
    finite and above 0, counts whole, flags text, a context; fields that do not make a :class:`Latency` raise,
    and the cache then drops the row as it does one with a problem (a corrupt entry is measured again, never
    trusted)."""
    problem = number_problem(data, positive=("ms", "median_ms", "direct_ms", "ratio", "reference_ms"),
                             finite=("spread", "seconds"), counts=("runs", "rounds", "processes"),
                             optional=("direct_ms", "ratio", "reference_ms", "processes"))
    if problem is None and not (isinstance(data.get("flags"), list) and all(isinstance(f, str) for f in data["flags"])):
        return "flags is not a list of text"
    if problem is None and not isinstance(data.get("context"), dict):
        return "context is not an object"
    if problem is None:
        Latency.from_dict(data)
    return problem


def _cached(arch: Arch, context: Context, cache: Cache | None) -> Latency | None:
    hit = cache.get(arch, _KIND, context.key(), check=latency_problem) if cache is not None else None
    return Latency.from_dict(hit) if hit is not None else None


def _one(arch: Arch, context: Context, protocol: Protocol, cache: Cache | None) -> Latency | MeasurementError:
    try:
        return measure_latency(arch, context, protocol=protocol, cache=cache)
    except MeasurementError as err:
        return err
