"""Parameters and MACs of an Arch: analytic (from shapes, microseconds) and traced (fvcore).

Convention (the seed papers', fvcore's): one fused multiply-add = one MAC, batch 1, the network in
eval mode. Counted: convolutions, linear layers, matrix products including attention's ``Q K^T``
and ``A V`` (also when computed by ``scaled_dot_product_attention``, which fvcore alone would
drop), normalization layers (BatchNorm 2 per element, LayerNorm 5 per element), global average
pooling (1 per input element). Not counted: biases, activations, softmax, element-wise
operations. "FLOPs" in the seed papers' tables are these MACs.

Both counters (this module's :func:`count`, :mod:`designspace.evaluate.counts.traced`'s ``trace_count``) report per
component (``stem``, ``stages.i.downsample``, ``stages.i.blocks.j``, ``head``) so that a disagreement points at
the block that causes it.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass

from designspace.arch import Arch, Layer
from designspace.blocks import MAC_CATEGORIES, Site, get
from designspace.plan import plan

__all__ = ["ComponentCount", "Counts", "count"]


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
