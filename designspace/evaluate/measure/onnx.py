"""ONNX export of a built network (TorchScript exporter, opset 17, the dynamo exporter where a torch build lacks it)
and inference with ONNX Runtime, both imported lazily."""

from __future__ import annotations

import functools
import inspect
import io
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from designspace.exceptions import DesignspaceError

__all__ = ["DEFAULT_OPSET", "export_onnx", "exporter", "onnx_session", "run_onnx"]

DEFAULT_OPSET = 17


@functools.cache
def exporter() -> str:
    """The ONNX exporter this torch build uses here: ``"torchscript"`` (``torch.onnx.export(dynamo=False)``) or
    ``"dynamo"`` where that keyword is gone. Recorded in every ONNX Runtime measurement's context: the two
    exporters write different graphs, with different latencies."""
    return "torchscript" if "dynamo" in inspect.signature(torch.onnx.export).parameters else "dynamo"


def export_onnx(model: nn.Module, example: torch.Tensor) -> bytes:
    """``model`` (put in eval mode) traced on ``example`` (an input of the shape it will be run on, batch
    included) as serialized ONNX at :data:`DEFAULT_OPSET`, input ``"input"``, output ``"logits"``. A failed export
    raises :class:`DesignspaceError` (the message keeps its reason).
    """
    model.eval()
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            # the TorchScript exporter where this torch has it, else its default (recorded by exporter())
            legacy: dict[str, Any] = {"dynamo": False} if exporter() == "torchscript" else {}
            torch.onnx.export(model, (example,), buf, opset_version=DEFAULT_OPSET,  # type: ignore[arg-type]
                              input_names=["input"], output_names=["logits"], **legacy)
    except Exception as err:  # the exporters raise many types; the reason is what matters
        raise DesignspaceError(f"ONNX export failed: {type(err).__name__}: {err}") from err
    return buf.getvalue()


def onnx_session(model: bytes | str | Path, threads: int = 1) -> Any:
    """An ONNX Runtime CPU session with ``threads`` intra-op threads and full graph optimization."""
    try:
        import onnxruntime as ort
    except ImportError as err:  # pragma: no cover - depends on the installation
        raise DesignspaceError("onnxruntime is not installed (fix: pip install 'designspace[onnx]')") from err
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])


def run_onnx(model: bytes | str | Path, x: torch.Tensor, threads: int = 1) -> torch.Tensor:
    """Runs an exported model on ``x`` with ONNX Runtime and returns the first output."""
    sess = onnx_session(model, threads)
    out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    return torch.from_numpy(out)
