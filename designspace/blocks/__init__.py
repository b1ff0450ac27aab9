"""Block families, stems, downsampling layers and heads, registered by name.

Importing this package registers every family (one module each); :func:`get` and
:func:`components` read the registry.
"""

from designspace.blocks import common, efficientmod, irmb, mbconv, msa, roadmap, sam, shma  # noqa: F401  (registers)
from designspace.blocks import mobilenetv3, mobilenetv4  # noqa: F401  (registers; after mbconv, whose init they use)
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
