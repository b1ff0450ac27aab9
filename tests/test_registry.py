"""The component registry and parameter specs."""

from __future__ import annotations

import pytest

from designspace import RegistryError
from designspace.blocks import KINDS, Component, ParamSpec, components, get, register
from designspace.blocks.tally import Tally


def test_duplicate_name_is_refused() -> None:
    existing = get("mbconv")
    with pytest.raises(RegistryError, match="already registered"):
        register(Component(name="mbconv", kind="block", family="x", doc="x", params=(),
                            build=existing.build, count=lambda s, p: Tally()))


def test_unknown_name_lists_known_and_closest() -> None:
    with pytest.raises(RegistryError) as info:
        get("mbcnv", "block")
    assert "did you mean 'mbconv'" in info.value.fix and "shma" in info.value.fix
    with pytest.raises(RegistryError, match="'conv_ln' is a downsample, not a block"):
        get("conv_ln", "block")


def test_duplicate_parameter_is_refused() -> None:
    spec = ParamSpec("k", int, 3, "kernel")
    with pytest.raises(RegistryError, match="declares a parameter twice"):
        Component(name="x", kind="block", family="x", doc="x", params=(spec, spec), build=get("mbconv").build,
                  count=lambda s, p: Tally())


@pytest.mark.parametrize("comp", [c for k in KINDS for c in components(k)], ids=lambda c: c.name)
def test_specs_are_complete(comp: Component) -> None:
    assert comp.doc and comp.family
    assert set(comp.strides) <= {1, 2}
    for spec in comp.params:
        assert spec.doc, f"{comp.name}.{spec.name} has no doc"
        assert spec.type in (int, float, bool, str)
        assert spec.coerce(spec.default) == spec.default  # the default is an allowed value


def test_coerce() -> None:
    f = ParamSpec("r", float, 1.0, "ratio", low=0.5, high=8.0)
    assert f.coerce(2) == 2.0 and isinstance(f.coerce(2), float)
    assert f.coerce("1e-0") == 1.0  # YAML 1.1 reads 1e-0 as a string
    for bad, text in [(True, "expected float"), ("x", "expected float"), (0.1, ">= 0.5"), (9, "<= 8.0")]:
        with pytest.raises(ValueError, match=text):
            f.coerce(bad)
    i = ParamSpec("k", int, 3, "kernel", odd=True, low=1)
    assert i.coerce(5) == 5
    for bad in (2.0, False, "3", 4):
        with pytest.raises(ValueError):
            i.coerce(bad)
    s = ParamSpec("act", str, "gelu", "act", choices=("gelu", "relu"))
    with pytest.raises(ValueError) as info:
        s.coerce("gelo")
    assert "use 'gelu'" in info.value.args[1]
