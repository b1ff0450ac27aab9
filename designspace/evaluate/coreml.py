"""Core ML export: an Arch (or any ``nn.Module``) as an ML program (``.mlpackage``), fp16, iOS 16 target.

The iFormer paper measures iPhone 13 latency of models "compiled by Core ML Tools"; this is that path:
``torch.jit.trace`` in eval mode at batch 1, then ``coremltools.convert(convert_to="mlprogram",
compute_precision=FLOAT16, minimum_deployment_target=iOS16)``. Conversion runs on Linux; *running* the
package (and Xcode's performance report, which gives the per-op device latency) needs macOS or iOS: on
Linux coremltools has no runtime (``libcoremlpython``), so nothing here predicts or checks outputs.

coremltools is imported inside the functions (it is heavy and optional). Its import logs nine lines on Linux
(an untested torch version; ``Failed to load _MLModelProxy`` and friends: the runtime that only exists on macOS)
and its conversion draws three progress bars; designspace says instead, once per process, one line
(:func:`support_line`): what coremltools supports and that running the package needs a Mac. Only the messages
known to be harmless are filtered, each by its text (:data:`HARMLESS_LOGS`, :data:`HARMLESS_WARNINGS`); any
other warning of coremltools or the tracer still shows.

Why :func:`_patch_int_cast`: coremltools 9.0's ``int`` cast calls ``int()`` on a constant-folded
shape value that is a one-element array, which NumPy 2 refuses ("only 0-dimensional arrays can be
converted to Python scalars"). Traced shape arithmetic (``h * w`` from ``x.shape``, einops patterns)
produces such casts in the EMO, EfficientMod and SMT blocks. The input shape is fixed, so every such
value folds to a constant; the patch takes the one element. The blocks stay as they are, so their
ONNX graphs (matched to the authors' for latency, docs/latency.md) and their outputs do not change.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import tempfile
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from designspace.arch import Arch
from designspace.exceptions import DesignspaceError

__all__ = ["HARMLESS_LOGS", "HARMLESS_WARNINGS", "CoreMLError", "convert", "op_inventory", "save", "support_line"]

_PATCHED = False
log = logging.getLogger("designspace")

#: coremltools' log messages known to be harmless here, by their text: its runtime proxies, which exist only on
#: macOS (``libcoremlpython``), and its note that this torch is newer than the newest it was tested with (the
#: conversion is checked op by op; :func:`support_line` states the versions once).
HARMLESS_LOGS = re.compile(r"^Failed to load '?_ML\w*Proxy'?(: No module named 'coremltools\.libcoremlpython'|\. "
                           r"Remote device functionality)|^Torch version \S+ has not been tested with coremltools")
#: (message regex, category) of the conversion's warnings known to be harmless: coremltools converts a traced
#: model (torch's deprecation of tracing); the tracer's notes on Python booleans and tensor iteration, which the
#: fixed input shape makes constant; coremltools renaming the output and cleaning up its temporary folder.
HARMLESS_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    (r"`torch\.jit\.trace(_method)?` is deprecated", DeprecationWarning),
    (r"Converting a tensor to a Python (boolean|index|integer|float)", Warning),
    (r"Iterating over a tensor might cause the trace to be incorrect", Warning),
    (r"Output, '[^']*', of the source model, has been renamed", UserWarning),
    (r"Implicitly cleaning up <TemporaryDirectory", ResourceWarning),
)
_SEEN: list[str] = []  # the harmless log messages filtered in this process (the torch version note is reported)
_SAID = [False]


class _HarmlessLogs(logging.Filter):
    """Drops coremltools' known-harmless log records (:data:`HARMLESS_LOGS`), keeping their text."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if HARMLESS_LOGS.search(message):
            _SEEN.append(message)
            return False
        return True


def support_line(ct: Any) -> str:
    """One line: the coremltools version, the torch versions it was tested with, and that running the package
    needs macOS or iOS (conversion runs anywhere)."""
    import torch

    tested = getattr(getattr(ct, "_deps", None), "_TORCH_MAX_VERSION", None)
    newer = any("has not been tested" in m for m in _SEEN)
    torch_part = (f"tested with torch up to {tested}, this is {torch.__version__.split('+')[0]}: the conversion is "
                  "checked op by op" if tested and newer else f"torch {torch.__version__.split('+')[0]}")
    return (f"Core ML: coremltools {ct.__version__} converts here ({torch_part}); running or timing model.mlpackage "
            "needs macOS or iOS (Xcode's performance report)")


class CoreMLError(DesignspaceError):
    """coremltools is missing, or a network does not convert."""


def _ct() -> Any:
    logger = logging.getLogger("coremltools")
    if not any(isinstance(f, _HarmlessLogs) for f in logger.filters):  # before the import: it logs on import
        logger.addFilter(_HarmlessLogs())
    try:
        import coremltools as ct
    except ImportError:
        raise CoreMLError("Core ML export needs coremltools (fix: pip install 'coremltools>=8')") from None
    _patch_int_cast(ct)
    if not _SAID[0]:
        _SAID[0] = True
        log.info("%s", support_line(ct))
    return ct


@contextlib.contextmanager
def _quiet_conversion() -> Iterator[None]:
    """The known-harmless warnings filtered by message, and coremltools' progress bars off, while converting."""
    from coremltools.converters.mil.frontend.torch import ops
    from coremltools.converters.mil.mil.passes import pass_pipeline

    saved = ops._tqdm, pass_pipeline.tqdm
    quiet = _no_bar(saved[0])
    with warnings.catch_warnings():
        for message, category in HARMLESS_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category)
        ops._tqdm, pass_pipeline.tqdm = quiet, quiet  # its module-level tqdm names: a bar per pass pipeline
        try:
            yield
        finally:
            ops._tqdm, pass_pipeline.tqdm = saved


def _no_bar(tqdm: Any) -> Any:
    def bar(*args: Any, **kwargs: Any) -> Any:
        return tqdm(*args, **{**kwargs, "disable": True})

    return bar


def _patch_int_cast(ct: Any) -> None:
    """Registers an ``int`` cast that accepts one-element constant arrays (see the module docstring)."""
    global _PATCHED
    if _PATCHED:
        return
    import numpy as np
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.frontend.torch.torch_op_registry import register_torch_op

    def _int(context: Any, node: Any) -> None:
        # coremltools' own cast, except that a folded constant is read with .item()-like reshaping
        x = context[node.inputs[0]]
        if x.can_be_folded_to_const():
            value = np.asarray(x.val)
            if value.size != 1:
                raise ValueError(f"int() of a {value.shape} constant")
            res = mb.const(val=np.int32(value.reshape(())), name=node.name)
        else:
            if x.shape:
                x = mb.squeeze(x=x, name=node.name + "_item")
            res = mb.cast(x=x, dtype="int32", name=node.name)
        context.add(res, node.name)

    register_torch_op(_int, torch_alias=["int"], override=True)
    _PATCHED = True


def convert(source: Arch | Any, *, resolution: int | None = None, in_chans: int | None = None,
            precision: str = "fp16", input_shape: tuple[int, ...] | None = None) -> Any:
    """Converts an Arch (built under ``torch.manual_seed(0)``, eval mode) or an ``nn.Module`` to an ML program.

    Args:
        source: an Arch, or a module (then give ``input_shape``, or ``resolution`` and ``in_chans``).
        resolution: input side in pixels (default: the Arch's).
        in_chans: input channels (default: the Arch's, else 3).
        precision: ``"fp16"`` (what the phones run) or ``"fp32"``.
        input_shape: the full input shape, for modules that do not take images (blocks, NHWC components).

    Returns:
        The ``coremltools.models.MLModel`` (input ``"input"``); :func:`save` writes it.

    Raises:
        CoreMLError: coremltools missing, or the conversion failed (the message names the op).
    """
    import torch

    ct = _ct()
    if isinstance(source, Arch):
        from designspace.network import Network

        torch.manual_seed(0)
        model = Network(source).eval()
        res, chans, name = resolution or source.resolution, in_chans or source.in_chans, source.name or "arch"
    else:
        model, res, chans, name = source.eval(), resolution or 224, in_chans or 3, type(source).__name__
    shape = input_shape or (1, chans, res, res)
    example = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    if precision not in ("fp16", "fp32"):
        raise CoreMLError(f"precision {precision!r} is not fp16 or fp32 (fix: --precision fp16)")
    with _quiet_conversion(), torch.no_grad():
        traced = torch.jit.trace(model, example)
        try:
            return ct.convert(
                traced, inputs=[ct.TensorType(name="input", shape=example.shape)], convert_to="mlprogram",
                compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
                minimum_deployment_target=ct.target.iOS16)
        except Exception as err:  # coremltools raises many types; the message names the op
            raise CoreMLError(f"{name}: Core ML conversion failed ({type(err).__name__}: {str(err)[:300]}) "
                              "(fix: a bug: please report it with the Arch)") from None


def op_inventory(mlmodel: Any) -> Counter[str]:
    """The ML program's operations by type (``conv``, ``matmul``, ``softmax``...), constants left out."""
    program = mlmodel._mil_program  # coremltools keeps the MIL program on converted models
    ops: Counter[str] = Counter()

    def walk(block: Any) -> None:
        for op in block.operations:
            if op.op_type != "const":
                ops[op.op_type] += 1
            for inner in getattr(op, "blocks", ()):
                walk(inner)

    for fn in program.functions.values():
        walk(fn)
    return ops


def save(mlmodel: Any, path: str | Path) -> Path:
    """Writes ``mlmodel`` to ``path`` (a ``.mlpackage`` folder), replacing it whole or not at all."""
    path = Path(path)
    tmp = Path(tempfile.mkdtemp(prefix=".mlpackage.", dir=path.parent))
    try:
        mlmodel.save(str(tmp / path.name))
        if path.exists():
            shutil.rmtree(path)
        (tmp / path.name).rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path
