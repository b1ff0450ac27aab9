"""Placing an Arch's components: where each sits (widths, stride, input size) and its stochastic-depth
rates. The network builder, the analytic counter and Arch validation all walk this one plan.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from designspace.blocks import Component, Site, get
from designspace.blocks.layers import drop_path_rates
from designspace.exceptions import DesignspaceError

if TYPE_CHECKING:
    from designspace.arch import Arch, Layer

__all__ = ["Placement", "PlanError", "plan"]


class PlanError(DesignspaceError):
    """A component cannot sit where the Arch puts it (raised inside Arch validation).

    Attributes:
        where: the component's path in the expanded Arch (``("stages", 2, "blocks", 0)``).
        param: the offending parameter, if one is to blame.
        problem: the rule and the value received.
        fix: how to repair it.
    """

    def __init__(self, where: tuple[Any, ...], param: str | None, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.where, self.param, self.problem, self.fix = where, param, problem, fix


@dataclass(frozen=True)
class Placement:
    """One component at its site.

    Attributes:
        name: module path in the built network (``"stages.2.blocks.0"``).
        where: path in the expanded Arch (``("stages", 2, "blocks", 0)``).
        role: ``"stem"``, ``"downsample"``, ``"block"`` or ``"head"``.
        layer: the component and its parameter values.
        site: widths, stride and input size.
        out_hw: output height and width.
        drop_path: stochastic-depth rate of each of the component's slots (empty except for blocks).
    """

    name: str
    where: tuple[Any, ...]
    role: str
    layer: Layer
    site: Site
    out_hw: tuple[int, int]
    drop_path: tuple[float, ...] = ()

    @property
    def component(self) -> Component:
        """The registered component."""
        return get(self.layer.type)


@functools.lru_cache(maxsize=1 << 16)
def _site_outcome(layer: Layer, site: Site, role: str) -> tuple[int, int] | tuple[str | None, str, str]:
    """Output size of ``layer`` at ``site``, or (param, problem, fix) when it cannot sit there.

    Cached: a search and the analytic counter meet the same (component, site) pairs again and again.
    """
    comp = get(layer.type)
    if comp.kind != role:
        return ("type", f"{layer.type!r} is a {comp.kind}, not a {role}",
                f"use a {role} type here (designspace blocks lists them)")
    params = layer.kwargs()
    for issue in comp.check(site, params):
        return (issue.param or None, issue.problem, issue.fix)
    return comp.out_hw(site, params)


def _outcome(where: tuple[Any, ...], role: str, layer: Layer, site: Site) -> tuple[int, int]:
    """Output size of ``layer`` at ``site``; raises :class:`PlanError` if it cannot sit there."""
    outcome = _site_outcome(layer, site, role)
    if isinstance(outcome[0], str) or outcome[0] is None:
        param, problem, fix = outcome
        raise PlanError(where, param, problem, fix)
    out_hw: tuple[int, int] = outcome
    if out_hw[0] < 1 or out_hw[1] < 1:
        raise PlanError(("resolution",), None, f"the input is too small: {'.'.join(map(str, where))} would output "
                                               f"{out_hw[0]}x{out_hw[1]} pixels",
                        "raise the resolution or remove a strided stage")
    return out_hw


_NO_BLOCK_FIX = ("give the stage a downsample layer (e.g. downsample: {type: conv_bn}) or start it with a block "
                 "that can (mbconv, irmb)")


def _walk(arch: Arch) -> Iterator[tuple[str, int, int, Layer, Site, tuple[int, int]]]:
    """(role, stage index, block index, layer, site, output size) of every component in forward order.

    The one loop behind :func:`plan` and :func:`check`. Raises :class:`PlanError`.
    """
    site = Site(arch.in_chans, arch.stem_width, 1, (arch.resolution, arch.resolution))
    hw = _outcome(("stem",), "stem", arch.stem, site)
    yield "stem", -1, -1, arch.stem, site, hw
    width = arch.stem_width
    for i, stage in enumerate(arch.stages):
        stride = stage.stride
        if stage.downsample is not None:
            comp = get(stage.downsample.type)
            if comp.kind == "downsample" and stride not in comp.strides:
                raise PlanError(("stages", i, "downsample"), None,
                                f"{comp.name!r} supports strides {list(comp.strides)}, not {stride}",
                                "change the stage's stride")
            site = Site(width, stage.width, stride, hw)
            hw = _outcome(("stages", i, "downsample"), "downsample", stage.downsample, site)
            yield "downsample", i, -1, stage.downsample, site, hw
            width, stride = stage.width, 1
        for j, block in enumerate(stage.blocks):
            comp = get(block.type)
            if comp.kind == "block" and stride not in comp.strides:
                raise PlanError(("stages", i, "blocks", j), None,
                                f"block type {comp.name!r} cannot downsample (stage stride {stride})", _NO_BLOCK_FIX)
            if comp.kind == "block" and width != stage.width and not comp.changes_width:
                raise PlanError(("stages", i, "blocks", j), None,
                                f"block type {comp.name!r} cannot change the width ({width} -> {stage.width})",
                                _NO_BLOCK_FIX)
            site = Site(width, stage.width, stride, hw)
            hw = _outcome(("stages", i, "blocks", j), "block", block, site)
            yield "block", i, j, block, site, hw
            width, stride = stage.width, 1
    site = Site(width, arch.num_classes, 1, hw)
    yield "head", -1, -1, arch.head, site, _outcome(("head",), "head", arch.head, site)


def check(arch: Arch) -> None:
    """Validates the placement of every component of ``arch`` (what :func:`plan` checks, without building
    the placements). Raises :class:`PlanError`."""
    for _ in _walk(arch):
        pass


def plan(arch: Arch) -> list[Placement]:
    """Every component of ``arch`` in forward order, with its site.

    Raises:
        PlanError: a component that cannot sit where it is (a block asked to downsample that cannot,
            heads that do not divide the width, an input too small for the strides, ...).
    """
    slots = [get(b.type).drop_path_slots for s in arch.stages for b in s.blocks]
    rates = drop_path_rates(sum(slots), arch.drop_path_rate)
    cur = 0
    out = []
    for role, i, j, layer, site, hw in _walk(arch):
        if role == "block":
            n = get(layer.type).drop_path_slots
            out.append(Placement(f"stages.{i}.blocks.{j}", ("stages", i, "blocks", j), role, layer, site, hw,
                                 tuple(rates[cur:cur + n])))
            cur += n
        elif role == "downsample":
            out.append(Placement(f"stages.{i}.downsample", ("stages", i, "downsample"), role, layer, site, hw))
        else:
            out.append(Placement(role, (role,), role, layer, site, hw))
    return out
