"""What a latency measurement is: runtimes, the measurement context, the protocol and the result; how a model is
timed by it is :mod:`designspace.evaluate.measure.timing`. Protocol and evidence: docs/latency.md, 'Runtimes' and
'Protocol and the evidence for it'."""

from __future__ import annotations

import contextlib
import functools
import os
import platform
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from designspace.exceptions import DesignspaceError

__all__ = ["DEFAULT_PROTOCOL", "RUNTIMES", "Context", "Latency", "MeasurementError", "Protocol", "machine"]

RUNTIMES = ("onnxruntime", "torch", "cuda")


class MeasurementError(DesignspaceError):
    """A model could not be measured (export failed, out of memory, a run too slow, no GPU)."""


@functools.cache
def machine(runtime: str = "onnxruntime") -> str:
    """A short description of the hardware a runtime runs on: the CPU model and core count, or the GPU."""
    if runtime == "cuda":
        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    name = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as f:
        name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    return f"{name or platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


@dataclass(frozen=True)
class Context:
    """Everything a latency figure depends on besides the network. A budget applies within one context.

    Attributes:
        runtime: ``"onnxruntime"`` (CPU), ``"torch"`` (eager, CPU) or ``"cuda"``.
        runtime_version: e.g. ``"onnxruntime 1.31.1"``.
        machine: the CPU (model, cores) or GPU.
        threads: intra-op threads (CPU runtimes).
        batch: images per run.
        precision: ``"fp32"``.
        resolution: input side in pixels.
        layout: input layout, ``"NCHW"``.
        implementation: the designspace version and the hash of the shared measurement code (the cache adds
            each Arch's own component code; :mod:`designspace.evaluate.identity`).
        exporter: the ONNX exporter (``torchscript`` or ``dynamo``) for ONNX Runtime, ``""`` otherwise.
    """

    runtime: str
    runtime_version: str
    machine: str
    threads: int
    batch: int
    resolution: int
    precision: str = "fp32"
    layout: str = "NCHW"
    implementation: str = ""
    exporter: str = ""

    def __post_init__(self) -> None:
        if not self.implementation:
            from designspace import __version__
            from designspace.evaluate.identity import shared_identity

            object.__setattr__(self, "implementation", f"designspace {__version__} {shared_identity()}")

    @classmethod
    def local(cls, runtime: str = "onnxruntime", threads: int = 1, batch: int = 1, resolution: int = 224) -> Context:
        """The context of this machine for a runtime."""
        if runtime not in RUNTIMES:
            raise MeasurementError(f"unknown runtime {runtime!r} (fix: use one of {', '.join(RUNTIMES)})")
        if runtime == "onnxruntime":
            import onnxruntime

            from designspace.evaluate.measure.onnx import exporter

            return cls(runtime, f"onnxruntime {onnxruntime.__version__}", machine(runtime), threads, batch, resolution,
                       exporter=exporter())
        version = f"torch {torch.__version__}" + (f" cuda {torch.version.cuda}" if runtime == "cuda" else "")
        return cls(runtime, version, machine(runtime), threads, batch, resolution)

    def key(self) -> str:
        """A stable string identifying the context (cache key)."""
        return "|".join(str(v) for v in asdict(self).values())

    def describe(self) -> str:
        """One line for people."""
        threads = f", {self.threads} thread{'s' if self.threads != 1 else ''}" if self.runtime != "cuda" else ""
        return (f"{self.runtime_version} on {self.machine}{threads}, batch {self.batch}, {self.precision}, "
                f"{self.resolution}x{self.resolution} {self.layout}")


@dataclass(frozen=True)
class Protocol:
    """How a latency is measured, on every runtime (the defaults keep a ~1 GMAC model under 5 s of wall time, export
    included): ONNX Runtime in ``processes`` worker processes, each round interleaved with the reference network;
    PyTorch eager and CUDA in this process, without one (``processes``, ``slow`` and ``budget_s`` do not apply).

    Attributes:
        warmup_s: warm-up per model (and per process), at least ``min_runs`` runs.
        rounds: timed rounds (per process); an ONNX Runtime round times the reference, then each model.
        round_s: seconds per model per round, at least ``min_runs`` runs.
        min_runs: runs per round, and warm-up runs, at least.
        agree: the estimates must agree within this fraction: the processes' ratios (ONNX Runtime), the two
            fastest rounds' minima (in this process).
        extra: added once where they do not: processes (ONNX Runtime), rounds (in this process).
        noisy: flag results whose median exceeds the minimum by more than this fraction.
        run_timeout_s: one run slower than this fails the measurement.
        processes: ONNX Runtime's worker processes per measurement.
        slow: a process whose reference minimum exceeds the long-run reference by more than this was slow.
        budget_s: wall seconds an ONNX Runtime measurement may take per model, its export included: the extra
            processes are left out (the figure flagged ``unconfirmed``) where they would take it past this.
    """

    warmup_s: float = 0.1
    rounds: int = 5
    round_s: float = 0.1
    min_runs: int = 3
    agree: float = 0.03
    extra: int = 2
    noisy: float = 0.10
    run_timeout_s: float = 10.0
    processes: int = 3
    slow: float = 0.08
    budget_s: float = 10.0


#: the protocol's defaults (:class:`Protocol` is frozen: one instance serves every call)
DEFAULT_PROTOCOL = Protocol()


@dataclass(frozen=True)
class Latency:
    """A measured latency.

    Attributes:
        ms: the estimate, milliseconds per run (one batch): the minimum over all timed runs (ONNX Runtime: ratio to
            the reference times its long-run figure, ``reference_ms``).
        median_ms: median of all timed runs, for comparison.
        spread: relative difference between the two fastest rounds' minima.
        runs: timed runs.
        rounds: timed rounds.
        flags: ``"unconfirmed"`` (the estimates disagree even after re-measuring), ``"slow-host"`` (ONNX Runtime:
            the reference ran slow throughout), ``"noisy"`` (median more than ``Protocol.noisy`` above the minimum).
        seconds: wall time of the measurement, export/build included.
        context: the measurement context.
        direct_ms: ONNX Runtime: the smallest minimum of any worker process (``ms`` is the ratio-corrected one).
        ratio: the median over processes of the model's minimum over the reference's.
        reference_ms: the reference's long-run figure ``ms`` was scaled by.
        processes: worker processes the figure comes from (1: timed in this process).
    """

    ms: float
    median_ms: float
    spread: float
    runs: int
    rounds: int
    flags: tuple[str, ...]
    seconds: float
    context: Context = field(compare=False)
    direct_ms: float | None = None
    ratio: float | None = None
    reference_ms: float | None = None
    processes: int = 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {**asdict(self), "flags": list(self.flags)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Latency:
        """Inverse of :meth:`to_dict`."""
        return cls(**{**data, "flags": tuple(data["flags"]), "context": Context(**data["context"])})
