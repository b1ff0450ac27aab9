"""ONNX Runtime latency measured in fresh worker processes, interleaved with a fixed reference network.

Why (evidence in ``docs/latency.md``): on a shared host two things move a latency. Stretches of a slow host
(seconds) slow every run inside them; and a whole process can be slow for its life (a process that built and
exported a network with PyTorch, or simply an unlucky one), so that every round of it agrees on a slowed
value and no in-process statistic can notice. Here the model is exported once in the calling process, then
timed by ``Protocol.processes`` short worker processes that import ONNX Runtime alone
(``_ort_worker.py``). In each round a worker times the reference, then the model(s), so that slow stretches
hit both. Per process the estimate is the **ratio** of the model's minimum to the reference's minimum; the
reported latency is the median of the processes' ratios times the reference's **long-run figure**: the
smallest reference minimum seen on this machine context (kept in the cache, so it only improves). A slow
process slows its reference as much as its model; the ratio survives it.

Estimates of the processes must agree (``agree``); otherwise more processes run, and a result that still
disagrees is flagged ``unconfirmed``. A result whose processes' references were all slower than the
long-run reference by more than ``slow`` is flagged ``slow-host`` (the figure is the ratio-corrected one).
"""

from __future__ import annotations

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

import torch
from torch import nn

from designspace.evaluate.measure.latency import Protocol
from designspace.exceptions import DesignspaceError

__all__ = ["REFERENCE_SHAPE", "WORKER", "Timing", "WorkerError", "reference_onnx", "time_onnx"]

#: the worker script, run by path so that it imports no PyTorch
WORKER = Path(__file__).with_name("_ort_worker.py")


#: the protocol's defaults (:class:`Protocol` is frozen: one instance serves every call)
_DEFAULT = Protocol()


class WorkerError(DesignspaceError):
    """A worker process failed (its reason is in the message)."""


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


_REFERENCE: dict[str, bytes] = {}


def reference_onnx() -> bytes:
    """The reference network as ONNX (a fixed 5-layer convolutional network, about 1 ms here, 1 thread):
    cheap to export, and made of the operators every vision backbone runs (dense, depthwise and 1x1
    convolutions, activations)."""
    if "ref" not in _REFERENCE:
        from designspace.evaluate.measure.onnx import export_onnx

        torch.manual_seed(0)
        net = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 1, 1), nn.ReLU(),
                            nn.Conv2d(64, 64, 3, 1, 1, groups=64), nn.Conv2d(64, 96, 1), nn.ReLU(),
                            nn.Conv2d(96, 96, 3, 2, 1, groups=96), nn.Conv2d(96, 128, 1)).eval()
        _REFERENCE["ref"] = export_onnx(net, torch.zeros(1, 3, 96, 96))
    return _REFERENCE["ref"]


REFERENCE_SHAPE = (1, 3, 96, 96)


def _run_worker(request: dict[str, object], timeout_s: float) -> dict[str, object]:
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


def time_onnx(models: Sequence[tuple[bytes, tuple[int, ...]]], threads: int = 1,
              protocol: Protocol = _DEFAULT, processes: int | None = None,
              deadline: float | None = None) -> list[Timing]:
    """Times ONNX models in worker processes, each round interleaved with the reference (see the module).

    Args:
        models: serialized ONNX models with their input shapes (float32 inputs).
        threads: ONNX Runtime intra-op threads.
        protocol: the protocol.
        processes: worker processes (default ``protocol.processes``); more are never added here.
        deadline: a ``time.perf_counter()`` by which the processes must have ended: one that would run past it
            is killed, and the processes done by then count (none: an empty list). For the extra processes of a
            measurement with a wall-time budget.

    Returns:
        One :class:`Timing` per model, in order (empty where ``deadline`` left no process done).

    Raises:
        WorkerError: a worker failed or timed out.
    """
    n = processes or protocol.processes
    budget_s = 60.0 + len(models) * protocol.rounds * (protocol.round_s + 0.5) * 4
    with tempfile.TemporaryDirectory(prefix="designspace-ort-") as tmp:
        ref_path = Path(tmp) / "reference.onnx"
        ref_path.write_bytes(reference_onnx())
        specs = []
        for i, (data, shape) in enumerate(models):
            path = Path(tmp) / f"model{i}.onnx"
            path.write_bytes(data)
            specs.append({"path": str(path), "shape": list(shape)})
        request = {"reference": {"path": str(ref_path), "shape": list(REFERENCE_SHAPE)}, "models": specs,
                   "threads": threads, "rounds": protocol.rounds, "round_s": protocol.round_s,
                   "min_runs": protocol.min_runs, "warmup_s": protocol.warmup_s,
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
    out = []
    for k in range(len(models)):
        ratios, minima, medians, refs, runs = [], [], [], [], 0
        for a in answers:
            ref_rounds: list[list[float]] = a["reference"]  # type: ignore[assignment]
            rounds: list[list[float]] = a["models"][k]  # type: ignore[index]
            ref_min = min(min(r) for r in ref_rounds)
            m = min(min(r) for r in rounds)
            flat = [t for r in rounds for t in r]
            ratios.append(m / ref_min)
            minima.append(m)
            medians.append(statistics.median(flat))
            refs.append(ref_min)
            runs += len(flat)
        out.append(Timing(tuple(ratios), tuple(minima), tuple(medians), tuple(refs), runs, tuple(walls)))
    return out

