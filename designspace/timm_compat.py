"""Optional timm registration: ``timm.create_model("designspace_<name>")`` for zoo models and your Archs.

timm is not a dependency; call :func:`register_timm` where timm is installed::

    import designspace.timm_compat, timm
    designspace.timm_compat.register_timm(archs={"winner": "results/mobile/export/arch.yaml"})
    model = timm.create_model("designspace_winner", num_classes=10, drop_path_rate=0.1)

Each registered entry point is a function named ``designspace_<name>`` taking timm's keyword arguments
(``pretrained``, ``num_classes``, ``drop_path_rate``, ``in_chans``; others are refused), as timm's own model
functions do; timm's ``register_model`` keys its registry by the function's name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from designspace.arch import Arch
from designspace.exceptions import DesignspaceError

__all__ = ["model_function", "register_timm", "timm_model_name"]

PREFIX = "designspace_"


def timm_model_name(name: str) -> str:
    """The timm model name ``name`` is registered under: ``designspace_`` + its letters and digits, lower case,
    other characters as ``_`` (``"My-Net"`` -> ``designspace_my_net``).

    Raises:
        DesignspaceError: ``name`` has no letter or digit.
    """
    ident = "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")
    if not ident:
        raise DesignspaceError(f"cannot make a timm model name from {name!r} (fix: give letters or digits)")
    return PREFIX + ident


def model_function(name: str, arch: Arch) -> Callable[..., Any]:
    """A timm-style model function ``designspace_<name>(pretrained=False, **kwargs)`` building ``arch``.

    ``num_classes``, ``drop_path_rate`` and ``in_chans`` replace the Arch's own values; designspace has no
    pretrained weights, so ``pretrained=True`` raises.
    """
    from designspace.network import Network

    fn_name = timm_model_name(name)

    def create(pretrained: bool = False, **kwargs: Any) -> Any:
        if pretrained:
            raise DesignspaceError(f"{fn_name}: designspace ships no pretrained weights (fix: pretrained=False, then "
                                   "train it, e.g. designspace train)")
        changes = {k: kwargs.pop(k) for k in ("num_classes", "drop_path_rate", "in_chans") if k in kwargs}
        for ignored in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):  # timm passes these through
            kwargs.pop(ignored, None)
        if kwargs:
            raise DesignspaceError(f"{fn_name}: unsupported arguments {sorted(kwargs)} (fix: num_classes, "
                                   "drop_path_rate and in_chans are supported; change the Arch file for the rest)")
        return Network(dataclasses.replace(arch, **changes) if changes else arch)

    create.__name__ = create.__qualname__ = fn_name
    create.__module__ = __name__
    create.__doc__ = f"designspace Arch {arch.name or name} (fingerprint {arch.fingerprint})."
    return create


def register_timm(archs: Mapping[str, Arch | str | Path] | None = None, *, zoo: bool = True,
                  register_model: Callable[[Callable[..., Any]], Any] | None = None) -> list[str]:
    """Registers ``designspace_<name>`` model functions with timm.

    Args:
        archs: your own Archs (or Arch YAML files) by name.
        zoo: also register every zoo model (``designspace_emo_1m``, ...).
        register_model: the registering decorator; default ``timm.models.register_model`` (timm must be
            installed). Tests pass a stand-in registry's decorator.

    Returns:
        The registered names.

    Raises:
        DesignspaceError: timm is not installed (and no ``register_model`` was given).
    """
    from designspace import zoo as zoo_module
    from designspace.network import load_arch

    if register_model is None:
        try:
            from timm.models import register_model as timm_register
        except ImportError:
            raise DesignspaceError("timm is not installed (fix: pip install timm, or pass register_model=)") from None
        register_model = timm_register
    entries: dict[str, Arch] = {}
    if zoo:
        entries.update({n: zoo_module.load(n) for n in zoo_module.names()})
    entries.update({n: load_arch(a) for n, a in (archs or {}).items()})
    names = []
    for name, arch in entries.items():
        fn = model_function(name, arch)
        register_model(fn)
        names.append(fn.__name__)
    return names
