"""Parameters and MACs by tracing the built network with fvcore (seconds, not microseconds): the cross-check
of the analytic counter (:func:`designspace.evaluate.counts.analytic.count`), under the same convention (see there).
fvcore is imported when a trace runs.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from designspace.arch import Arch
from designspace.blocks import MAC_CATEGORIES
from designspace.evaluate.counts.analytic import ComponentCount, Counts, count
from designspace.exceptions import DesignspaceError
from designspace.network import Network
from designspace.plan import plan

__all__ = ["TraceError", "component_table", "trace_count", "trace_macs"]


class TraceError(DesignspaceError):
    """The trace met an operator that is neither counted nor known to cost nothing."""


#: fvcore op name -> our category.
_CATEGORY = {
    "conv": "conv", "linear": "linear", "addmm": "linear", "matmul": "matmul", "bmm": "matmul",
    "einsum": "matmul", "mm": "matmul", "scaled_dot_product_attention": "matmul", "batch_norm": "norm",
    "layer_norm": "norm", "group_norm": "norm", "instance_norm": "norm", "adaptive_avg_pool2d": "pool",
    "mean": "pool",
}

#: Ops that are deliberately not counted; any other op fvcore cannot count is an error, so that
#: nothing that does multiply-adds is silently dropped.
_NOT_COUNTED = {
    "aten::add", "aten::add_", "aten::mul", "aten::mul_", "aten::sub", "aten::rsub", "aten::div",
    "aten::gelu", "aten::silu", "aten::silu_", "aten::relu", "aten::relu_", "aten::relu6", "aten::hardtanh",
    "aten::hardtanh_", "aten::hardswish", "aten::sigmoid", "aten::softmax", "aten::dropout",
    "aten::feature_dropout", "aten::constant_pad_nd", "aten::pad", "aten::repeat", "aten::chunk",
    "aten::split", "aten::unbind", "aten::stack", "aten::cat", "aten::bernoulli_", "aten::expand_as",
    "aten::detach", "aten::clone",
    # integer arithmetic on traced shapes (window counts, padding)
    "aten::neg", "aten::floor_divide", "aten::floordiv", "aten::remainder", "aten::Int", "aten::ScalarImplicit",
}


def _sdpa_handle(inputs: list[Any], outputs: list[Any]) -> int:
    """MACs of ``scaled_dot_product_attention``: ``Q K^T`` plus ``A V``."""
    from fvcore.nn.jit_handles import get_shape

    q, k, v = (get_shape(x) for x in inputs[:3])
    batch = 1
    for d in q[:-2]:
        batch *= d
    return batch * q[-2] * k[-2] * (q[-1] + v[-1])


def _mean_handle(inputs: list[Any], outputs: list[Any]) -> int:
    """Global average pooling written as ``mean``: one MAC per input element."""
    from fvcore.nn.jit_handles import get_shape

    n = 1
    for d in get_shape(inputs[0]):
        n *= d
    return n


def _analysis(module: Any, example: Any) -> Any:
    """An fvcore analysis with designspace's handlers; raises if an uncountable op is met."""
    from fvcore.nn import FlopCountAnalysis

    fca = FlopCountAnalysis(module, example)
    fca.set_op_handle("aten::scaled_dot_product_attention", _sdpa_handle)
    fca.set_op_handle("aten::mean", _mean_handle)
    fca.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    fca.total()  # runs the trace
    unknown = set(fca.unsupported_ops()) - _NOT_COUNTED
    if unknown:
        raise TraceError(f"the trace met operators that are not counted: {sorted(unknown)} (fix: give the "
                         "component an analytic counter and add the operator to designspace/evaluate/counts/traced.py)")
    return fca


def trace_macs(module: Any, example: Any) -> dict[str, int]:
    """MACs per category of ``module`` run on ``example``, traced with fvcore (module convention).

    Args:
        module: any ``nn.Module`` (put in eval mode).
        example: its input (batch 1 for per-image MACs).
    """
    import torch

    module.eval()
    with torch.no_grad():
        fca = _analysis(module, example)
    cats: Counter[str] = Counter()
    for op, n in fca.by_operator().items():
        cats[_CATEGORY[op]] += n
    return {k: cats[k] for k in MAC_CATEGORIES}


def trace_count(arch: Arch, model: Any = None) -> Counts:
    """Parameters and MACs of the built network, by tracing it with fvcore (seconds, not microseconds).

    Args:
        arch: the Arch.
        model: its built network (built here if omitted); it is put in eval mode.

    Raises:
        TraceError: the trace met an operator that is neither counted nor known to cost nothing.
    """
    import torch

    model = model if model is not None else Network(arch)
    model.eval()
    x = torch.zeros(1, arch.in_chans, arch.resolution, arch.resolution)
    with torch.no_grad():
        fca = _analysis(model, x)
    by_module = fca.by_module_and_operator()
    comps = []
    for p in plan(arch):
        cats: Counter[str] = Counter()
        for op, n in by_module.get(p.name, Counter()).items():
            cats[_CATEGORY[op]] += n
        params = sum(t.numel() for t in model.get_submodule(p.name).parameters())
        comps.append(ComponentCount(p.name, p.layer.type, params, sum(cats.values()),
                                    tuple((k, cats[k]) for k in MAC_CATEGORIES if cats[k])))
    total_params = sum(t.numel() for t in model.parameters())
    return Counts(total_params, int(fca.total()), tuple(comps), "traced")


def component_table(arch: Arch, trace: bool = False) -> dict[str, Any]:
    """One network component by component: what ``designspace show`` prints, as a JSON-ready dict.

    Keys: ``name``, ``fingerprint``, ``resolution``, ``params`` and ``macs`` (exact integers, MACs per image),
    ``method`` (``analytic`` or ``traced``), ``macs_by_category``, ``components`` (rows with the site: ``in``/``out``
    channels, ``stride``, ``input`` as ``HxW``, ``params``, ``macs`` and ``macs_m`` in millions), ``arch``.
    """
    counts = trace_count(arch) if trace else count(arch)
    placements = {p.name: p for p in plan(arch)}
    rows = []
    for c in counts.components:
        site = placements[c.name].site
        rows.append({"name": c.name, "type": c.type, "in": site.in_chs, "out": site.out_chs, "stride": site.stride,
                     "input": f"{site.hw[0]}x{site.hw[1]}", "params": c.params, "macs": c.macs,
                     "macs_m": round(c.macs / 1e6, 3)})
    return {"name": arch.name, "fingerprint": arch.fingerprint, "resolution": arch.resolution,
            "params": counts.params, "macs": counts.macs, "method": counts.method,
            "macs_by_category": counts.by_category(), "components": rows, "arch": arch.to_dict()}
