"""ONNX Runtime latency measured in fresh worker processes (``_ort_worker.py``), each round interleaved with a fixed
reference network: per process the model's minimum over the reference's. Protocol and evidence: docs/latency.md,
'Protocol and the evidence for it'."""

from __future__ import annotations

import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from designspace.evaluate.measure.latency import DEFAULT_PROTOCOL, MeasurementError, Protocol

__all__ = ["REFERENCE_SHAPE", "WORKER", "Timing", "WorkerError", "reference_onnx", "time_onnx"]

#: the worker script, run by path so that it imports no PyTorch
WORKER = Path(__file__).with_name("_ort_worker.py")
#: the input shape of the reference network
REFERENCE_SHAPE = (1, 3, 96, 96)


class WorkerError(MeasurementError):
    """A worker process failed (its reason is in the message): the measurement of the models it timed failed."""


class WorkerTimeout(WorkerError):
    """A worker process ran past its time limit and was killed."""


@dataclass(frozen=True)
class Timing:
    """One model's timing across the worker processes.

    Attributes:
        ratios: per process, the model's minimum over the reference's minimum.
        minima: per process, the model's minimum, milliseconds.
        medians: per process, the model's median run, milliseconds.
        reference_minima: per process, the reference's minimum, milliseconds.
        runs: timed runs of the model in all.
        process_s: per process, its wall seconds (start-up included; shared by the models timed in it).
    """

    ratios: tuple[float, ...]
    minima: tuple[float, ...]
    medians: tuple[float, ...]
    reference_minima: tuple[float, ...]
    runs: int
    process_s: tuple[float, ...] = ()

    @property
    def ratio(self) -> float:
        """The median of the processes' ratios."""
        return float(statistics.median(self.ratios))

    @property
    def spread(self) -> float:
        """``(max - min) / min`` of the processes' ratios."""
        return max(self.ratios) / min(self.ratios) - 1.0 if self.ratios else 0.0


@functools.cache
def reference_onnx() -> bytes:
    """The reference network as ONNX (a fixed 5-layer convolutional network, about 1 ms here, 1 thread):
    cheap to export, and made of the operators every vision backbone runs (dense, depthwise and 1x1
    convolutions, activations)."""
    from designspace.evaluate.measure.onnx import export_onnx

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 1, 1), nn.ReLU(),
                        nn.Conv2d(64, 64, 3, 1, 1, groups=64), nn.Conv2d(64, 96, 1), nn.ReLU(),
                        nn.Conv2d(96, 96, 3, 2, 1, groups=96), nn.Conv2d(96, 128, 1)).eval()
    return export_onnx(net, torch.zeros(REFERENCE_SHAPE))


def _run_worker(request: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "MKL_"))}
    try:
        proc = subprocess.run([sys.executable, str(WORKER)], input=json.dumps(request), capture_output=True,
                              text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        raise WorkerTimeout(f"a latency worker took more than {timeout_s:.0f} s (fix: a smaller network, or "
                          "a machine that is less busy)") from None
    try:
        answer = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = (proc.stderr or "").strip().splitlines()[-1:] or ["no output"]
        raise WorkerError(f"a latency worker failed: {tail[0][:200]}") from None
    if answer.get("error"):
        error = str(answer["error"])
        if error.startswith("TimeoutError: "):
            raise WorkerError("timeout: " + error[len("TimeoutError: "):])
        raise WorkerError(f"measurement failed: {error}")
    return answer


def time_onnx(models: Sequence[tuple[bytes, tuple[int, ...]]], threads: int = 1, protocol: Protocol = DEFAULT_PROTOCOL,
              processes: int | None = None, deadline: float | None = None) -> list[Timing]:
    """Times ONNX models (serialized, with their float32 input shapes) in ``processes`` worker processes (default
    ``protocol.processes``; none added here) of ONNX Runtime with ``threads`` intra-op threads, each round
    interleaved with the reference. ``deadline``: a ``time.perf_counter()`` by which the processes must have
    ended (for the extra processes of a measurement with a wall-time budget): one that would run past it is
    killed, and the processes done by then count. One :class:`Timing` per model, in order (none where
    ``deadline`` left no process done); a worker that failed or timed out raises :class:`WorkerError`."""
    n = processes or protocol.processes
    budget_s = 60.0 + len(models) * protocol.rounds * (protocol.round_s + 0.5) * 4
    with tempfile.TemporaryDirectory(prefix="designspace-ort-") as tmp:
        specs = []
        for name, (data, shape) in [("reference", (reference_onnx(), REFERENCE_SHAPE)),
                                    *((f"model{i}", model) for i, model in enumerate(models))]:
            path = Path(tmp) / f"{name}.onnx"
            path.write_bytes(data)
            specs.append({"path": str(path), "shape": list(shape)})
        request = {"reference": specs[0], "models": specs[1:], "threads": threads, "rounds": protocol.rounds,
                   "round_s": protocol.round_s, "min_runs": protocol.min_runs, "warmup_s": protocol.warmup_s,
                   "run_timeout_s": protocol.run_timeout_s}
        answers, walls = [], []
        for _ in range(n):
            t = time.perf_counter()
            limit = budget_s if deadline is None else min(budget_s, deadline - t)
            if limit <= 0:
                break
            try:
                answers.append(_run_worker(request, limit))
            except WorkerTimeout:
                if limit < budget_s:  # the deadline's limit, not a run that hung: what is done counts
                    break
                raise
            walls.append(time.perf_counter() - t)
    if not answers:
        return []
    refs = tuple(min(min(r) for r in a["reference"]) for a in answers)
    out = []
    for k in range(len(models)):
        minima = tuple(min(min(r) for r in a["models"][k]) for a in answers)
        flats = [[ms for r in a["models"][k] for ms in r] for a in answers]
        out.append(Timing(tuple(m / ref for m, ref in zip(minima, refs, strict=True)), minima,
                          tuple(statistics.median(f) for f in flats), refs, sum(map(len, flats)), tuple(walls)))
    return out

