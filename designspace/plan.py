"""Placing an Arch's components: where each sits (widths, stride, input size) and its stochastic-depth
rates. The network builder, the analytic counter and Arch validation all walk this one plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from designspace.blocks import Component, Site, get
from designspace.blocks.layers import drop_path_rates

if TYPE_CHECKING:
    from designspace.arch import Arch, Layer

__all__ = ["Placement", "PlanError", "plan"]


class PlanError(Exception):
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


def _place(name: str, where: tuple[Any, ...], role: str, layer: Layer, site: Site,
           drop_path: tuple[float, ...] = ()) -> Placement:
    comp = get(layer.type)
    if comp.kind != role:
        raise PlanError(where, "type", f"{layer.type!r} is a {comp.kind}, not a {role}",
                        f"use a {role} type here (designspace blocks lists them)")
    params = layer.kwargs()
    for issue in comp.check(site, params):
        raise PlanError(where, issue.param or None, issue.problem, issue.fix)
    out_hw = comp.out_hw(site, params)
    if out_hw[0] < 1 or out_hw[1] < 1:
        raise PlanError(("resolution",), None,
                        f"the input is too small: {name} would output {out_hw[0]}x{out_hw[1]} pixels",
                        "raise the resolution or remove a strided stage")
    return Placement(name, where, role, layer, site, out_hw, drop_path)


def plan(arch: Arch) -> list[Placement]:
    """Every component of ``arch`` in forward order, with its site.

    Raises:
        PlanError: a component that cannot sit where it is (a block asked to downsample that cannot,
            heads that do not divide the width, an input too small for the strides, ...).
    """
    res = (arch.resolution, arch.resolution)
    out = [_place("stem", ("stem",), "stem", arch.stem, Site(arch.in_chans, arch.stem_width, 1, res))]
    width, hw = arch.stem_width, out[0].out_hw
    slots = [get(b.type).drop_path_slots for s in arch.stages for b in s.blocks]
    rates = drop_path_rates(sum(slots), arch.drop_path_rate)
    cur = 0
    for i, stage in enumerate(arch.stages):
        stride = stage.stride
        if stage.downsample is not None:
            comp = get(stage.downsample.type)
            ds_where: tuple[Any, ...] = ("stages", i, "downsample")
            if comp.kind == "downsample" and stride not in comp.strides:
                raise PlanError(ds_where, None, f"{comp.name!r} supports strides {list(comp.strides)}, not {stride}",
                                "change the stage's stride")
            p = _place(f"stages.{i}.downsample", ds_where, "downsample", stage.downsample,
                       Site(width, stage.width, stride, hw))
            out.append(p)
            width, hw, stride = stage.width, p.out_hw, 1
        for j, block in enumerate(stage.blocks):
            comp = get(block.type)
            where: tuple[Any, ...] = ("stages", i, "blocks", j)
            if comp.kind == "block" and stride not in comp.strides:
                raise PlanError(where, None, f"block type {comp.name!r} cannot downsample (stage stride {stride})",
                                "give the stage a downsample layer (e.g. downsample: {type: conv_bn}) or start it "
                                "with a block that can (mbconv, irmb)")
            if comp.kind == "block" and width != stage.width and not comp.changes_width:
                raise PlanError(where, None, f"block type {comp.name!r} cannot change the width "
                                             f"({width} -> {stage.width})",
                                "give the stage a downsample layer (e.g. downsample: {type: conv_bn}) or start it "
                                "with a block that can (mbconv, irmb)")
            n = comp.drop_path_slots
            p = _place(f"stages.{i}.blocks.{j}", where, "block", block, Site(width, stage.width, stride, hw),
                       tuple(rates[cur:cur + n]))
            cur += n
            out.append(p)
            width, hw, stride = stage.width, p.out_hw, 1
    out.append(_place("head", ("head",), "head", arch.head, Site(width, arch.num_classes, 1, hw)))
    return out
