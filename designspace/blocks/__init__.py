"""Block families, stems, downsampling layers and heads, registered by name.

Importing this package registers every family (one module each); :func:`get` and
:func:`components` read the registry.
"""

# importing a family registers it (mobilenetv3/v4 use mbconv's initialization, imported first in this order)
from designspace.blocks import (  # noqa: F401
    common,
    efficientmod,
    irmb,
    mbconv,
    mobilenetv1,
    mobilenetv3,
    mobilenetv4,
    msa,
    roadmap,
    sam,
    shma,
)
from designspace.blocks.registry import KINDS, Component, Issue, ParamSpec, Site, components, get, register
from designspace.blocks.tally import MAC_CATEGORIES, Tally

__all__ = [
    "KINDS",
    "MAC_CATEGORIES",
    "Component",
    "Issue",
    "ParamSpec",
    "Site",
    "Tally",
    "components",
    "get",
    "register",
]
