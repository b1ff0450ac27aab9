"""Parameters and MACs of an Arch: analytic (from shapes, microseconds) and traced (fvcore).

Convention (the seed papers', fvcore's): one fused multiply-add = one MAC, batch 1, the network in
eval mode. Counted: convolutions, linear layers, matrix products including attention's ``Q K^T``
and ``A V`` (also when computed by ``scaled_dot_product_attention``, which fvcore alone would
drop), normalization layers (BatchNorm 2 per element, LayerNorm 5 per element), global average
pooling (1 per input element). Not counted: biases, activations, softmax, element-wise
operations. "FLOPs" in the seed papers' tables are these MACs.

Both counters report per component (``stem``, ``stages.i.downsample``, ``stages.i.blocks.j``,
``head``) so that a disagreement points at the block that causes it.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass
from typing import Any

from designspace.arch import Arch, Layer
from designspace.blocks import MAC_CATEGORIES, Site, get
from designspace.plan import plan

__all__ = ["ComponentCount", "Counts", "count", "trace_count", "trace_macs"]


@dataclass(frozen=True)
class ComponentCount:
    """Counts of one placed component.

    Attributes:
        name: module path (``stages.2.blocks.0``).
        type: component type.
        params: parameters.
        macs: MACs per image.
        macs_by: MACs per category (conv, linear, matmul, norm, pool).
    """

    name: str
    type: str
    params: int
    macs: int
    macs_by: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class Counts:
    """Totals and the per-component breakdown.

    Attributes:
        params: all parameters.
        macs: MACs per image (see the module docstring for the convention).
        components: per-component counts in forward order.
        method: ``"analytic"`` or ``"traced"``.
    """

    params: int
    macs: int
    components: tuple[ComponentCount, ...]
    method: str

    @property
    def params_m(self) -> float:
        """Parameters in millions."""
        return self.params / 1e6

    @property
    def macs_g(self) -> float:
        """MACs in billions (the papers' "GFLOPs")."""
        return self.macs / 1e9

    def by_category(self) -> dict[str, int]:
        """Total MACs per category."""
        total: Counter[str] = Counter()
        for c in self.components:
            total.update(dict(c.macs_by))
        return {k: total.get(k, 0) for k in MAC_CATEGORIES}


@functools.lru_cache(maxsize=1 << 16)
def _count_one(layer: Layer, site: Site) -> tuple[int, int, tuple[tuple[str, int], ...]]:
    # cached: networks repeat blocks, and a search meets the same (block, site) pairs again and again
    t = get(layer.type).count(site, layer.kwargs())
    return t.params, t.total_macs, tuple((k, t.macs[k]) for k in MAC_CATEGORIES if t.macs[k])


def count(arch: Arch) -> Counts:
    """Analytic parameters and MACs of ``arch`` (batch 1), with no model built.

    Every registered component's counter applies the module convention to its own shapes.
    """
    comps = [ComponentCount(p.name, p.layer.type, *_count_one(p.layer, p.site)) for p in plan(arch)]
    return Counts(sum(c.params for c in comps), sum(c.macs for c in comps), tuple(comps), "analytic")


# ----------------------------------------------------------------------------------------------- traced
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
        raise RuntimeError(f"the trace met operators that are not counted: {sorted(unknown)}")
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
        RuntimeError: the trace met an operator that is neither counted nor known to cost nothing.
    """
    import torch

    from designspace.network import Network

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
