"""The component registry: every block, stem, downsampling layer and head, by name.

A registration (:class:`Component`) carries what the rest of designspace reads:

* ``params``: the parameter spec (name, type, default, allowed values). Arch validation, the YAML
  schema and the samplers read it; nothing else describes a block's knobs.
* ``build``: turns a :class:`Site` (where the component sits: widths, stride, input size) and
  parameter values into an ``nn.Module``.
* ``count``: the analytic counter, parameters and MACs from shapes alone (a :class:`Tally`).
* ``check``: cross-field rules that need the site (heads dividing the width, ...), returning
  :class:`Issue` objects that name the parameter and the fix.

Registration refuses duplicates; lookups of unknown names list the known ones and the closest.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from torch import nn

from designspace.blocks.tally import Tally
from designspace.exceptions import RegistryError, closest, did_you_mean

__all__ = [
    "KINDS",
    "Component",
    "Issue",
    "Kind",
    "ParamSpec",
    "Site",
    "closest",
    "components",
    "get",
    "register",
]

Kind = Literal["block", "stem", "downsample", "head"]
KINDS: tuple[Kind, ...] = ("stem", "downsample", "block", "head")


@dataclass(frozen=True)
class Site:
    """Where a component sits in a network.

    Attributes:
        in_chs: input channels.
        out_chs: output channels (for a head: the number of classes).
        stride: spatial stride the component must apply (1 or 2; a stem's own stride is fixed
            by its parameters and this is 1).
        hw: input height and width in pixels (tokens for attention).
    """

    in_chs: int
    out_chs: int
    stride: int = 1
    hw: tuple[int, int] = (224, 224)

    @property
    def tokens(self) -> int:
        """Number of spatial positions at the input."""
        return self.hw[0] * self.hw[1]


@dataclass(frozen=True)
class Issue:
    """A rule a parameter value breaks at a given site.

    Attributes:
        param: the offending parameter's name (``""`` when it concerns the site itself).
        problem: the rule and the value received.
        fix: how to repair it.
    """

    param: str
    problem: str
    fix: str


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of a component.

    Attributes:
        name: the YAML key.
        type: ``int``, ``float``, ``bool`` or ``str``.
        default: the paper's value.
        doc: one line, with units.
        choices: the allowed values, when the set is closed.
        low: smallest allowed value (numbers).
        high: largest allowed value (numbers).
        odd: numbers must be odd (kernel sizes).
    """

    name: str
    type: type
    default: Any
    doc: str
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    odd: bool = False

    def coerce(self, value: Any) -> Any:
        """Returns ``value`` as this parameter's type, or raises ``ValueError(problem, fix)``.

        Integers are accepted for float parameters; nothing else is converted (a string is never
        a number, a number never a bool).
        """
        kind = self.type.__name__
        article = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a name"}[kind]
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if self.type is float and isinstance(value, str):
            with contextlib.suppress(ValueError):  # YAML 1.1 reads '1e-4' (no dot) as a string
                value = float(value)
        ok = isinstance(value, self.type) and not (self.type is not bool and isinstance(value, bool))
        if not ok:
            raise ValueError(
                f"expected {kind}, got {value!r} ({type(value).__name__})",
                f"write {article}" + (f", one of {list(self.choices)}" if self.choices else "")
                + f"; the default is {self.default!r}",
            )
        if self.choices is not None and value not in self.choices:
            near = closest(str(value), [str(c) for c in self.choices])
            raise ValueError(
                f"{value!r} is not one of {list(self.choices)}",
                f"use {near!r}" if near else f"use one of {list(self.choices)}",
            )
        if self.low is not None and value < self.low:
            raise ValueError(f"must be >= {self.low}, got {value!r}", f"use a value >= {self.low}")
        if self.high is not None and value > self.high:
            raise ValueError(f"must be <= {self.high}, got {value!r}", f"use a value <= {self.high}")
        if self.odd and value % 2 == 0:
            raise ValueError(f"must be odd, got {value!r}", f"use {value - 1} or {value + 1}")
        return value

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description (for ``designspace blocks --json``)."""
        out: dict[str, Any] = {"name": self.name, "type": self.type.__name__, "default": self.default,
                               "doc": self.doc}
        if self.choices is not None:
            out["choices"] = list(self.choices)
        if self.low is not None:
            out["low"] = self.low
        if self.high is not None:
            out["high"] = self.high
        if self.odd:
            out["odd"] = True
        return out


def _same_padding_out(site: Site, params: Mapping[str, Any]) -> tuple[int, int]:
    h, w = site.hw
    return ((h - 1) // site.stride + 1, (w - 1) // site.stride + 1)


def _no_check(site: Site, params: Mapping[str, Any]) -> list[Issue]:
    return []


@dataclass(frozen=True)
class Component:
    """A registered block, stem, downsampling layer or head.

    Attributes:
        name: the ``type`` used in YAML documents.
        kind: ``"block"``, ``"stem"``, ``"downsample"`` or ``"head"``.
        family: the paper family (``"EfficientMod"``, ``"EMO"``, ...).
        doc: one paragraph: what it is and where it comes from.
        params: the parameter spec, defaults being the paper's.
        build: ``build(site, params, drop_path_rate) -> nn.Module``.
        count: ``count(site, params) -> Tally`` (batch 1, no tracing).
        out_hw: ``out_hw(site, params) -> (h, w)``; default: same padding at ``site.stride``.
        check: ``check(site, params) -> [Issue]``, rules that need the site.
        strides: the strides a block supports (``(1, 2)`` when it can downsample).
        changes_width: whether a block may have ``in_chs != out_chs``.
        drop_path_slots: entries it takes in the network's linear stochastic-depth schedule.
        layout: ``"nchw"`` or ``"nhwc"``: the tensor layout the module takes and returns (the
            network permutes between components that differ). A stem always takes NCHW images.
        attention: whether a block is self-attention (search spaces say in which stages attention
            may appear): ``True``, ``False``, or the name of the bool parameter that decides it.
    """

    name: str
    kind: Kind
    family: str
    doc: str
    params: tuple[ParamSpec, ...]
    build: Callable[[Site, Mapping[str, Any], Any], nn.Module]
    count: Callable[[Site, Mapping[str, Any]], Tally]
    out_hw: Callable[[Site, Mapping[str, Any]], tuple[int, int]] = _same_padding_out
    check: Callable[[Site, Mapping[str, Any]], list[Issue]] = _no_check
    strides: tuple[int, ...] = (1,)
    changes_width: bool = False
    drop_path_slots: int = 1
    layout: Callable[[Mapping[str, Any]], tuple[str, str]] | tuple[str, str] = ("nchw", "nchw")
    attention: bool | str = False
    _by_name: dict[str, ParamSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {p.name: p for p in self.params})
        if len(self._by_name) != len(self.params):
            raise RegistryError(f"component {self.name!r} declares a parameter twice")

    def spec(self, name: str) -> ParamSpec | None:
        """The spec of parameter ``name``, or ``None``."""
        return self._by_name.get(name)

    def defaults(self) -> dict[str, Any]:
        """Every parameter at its default value."""
        return {p.name: p.default for p in self.params}

    def is_attention(self, params: Mapping[str, Any]) -> bool:
        """Whether the block with these parameter values is self-attention."""
        return bool(params[self.attention]) if isinstance(self.attention, str) else self.attention

    def layouts(self, params: Mapping[str, Any]) -> tuple[str, str]:
        """(input layout, output layout) for these parameter values."""
        return self.layout(params) if callable(self.layout) else self.layout


_REGISTRY: dict[str, Component] = {}


def register(component: Component) -> Component:
    """Adds ``component`` to the registry; a name already taken raises :class:`RegistryError`."""
    if component.name in _REGISTRY:
        raise RegistryError(
            f"a component named {component.name!r} is already registered (by {_REGISTRY[component.name].family})",
            "choose another name",
        )
    if component.kind == "stem" and component.layouts(component.defaults())[0] != "nchw":
        raise RegistryError(f"stem {component.name!r} must take NCHW images", "set its input layout to 'nchw'")
    deciding = component.spec(component.attention) if isinstance(component.attention, str) else None
    if isinstance(component.attention, str) and (deciding is None or deciding.type is not bool):
        raise RegistryError(f"{component.name!r}: attention names {component.attention!r}, not a bool parameter",
                            "name one of its bool parameters")
    _REGISTRY[component.name] = component
    return component


def components(kind: Kind | None = None) -> list[Component]:
    """Registered components (of one kind), in registration order."""
    return [c for c in _REGISTRY.values() if kind is None or c.kind == kind]


def get(name: str, kind: Kind | None = None) -> Component:
    """The component registered as ``name``.

    Raises:
        RegistryError: unknown name, or a component of another kind; the message lists the known
            names of the wanted kind and the closest one.
    """
    comp = _REGISTRY.get(name)
    if comp is not None and (kind is None or comp.kind == kind):
        return comp
    known = [c.name for c in components(kind)]
    what = f"{kind} type" if kind else "component"
    problem = f"{name!r} is a {comp.kind}, not a {kind}" if comp is not None else f"unknown {what} {name!r}"
    hint = did_you_mean(str(name), known)
    raise RegistryError(problem, f"{hint}known: {', '.join(known)}")
