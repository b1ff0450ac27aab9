"""Search spaces: YAML documents in the Arch vocabulary where values may be choices or ranges.

``load_space(path_or_name)`` parses and validates one; :class:`Space` samples Archs, exposes the flat
parameters Optuna samples, decodes them (repairing or rejecting invalid combinations) and tells whether an
Arch is a point of the space (:func:`match`).
"""

from designspace.space.budgets import Budget, parse_budget
from designspace.space.core import Decoded, Param, Space
from designspace.space.match import Match, match
from designspace.space.shipped import load_space
from designspace.space.values import Choice, Dist, Fixed, FloatRange, IntRange

__all__ = [
    "Budget",
    "Choice",
    "Decoded",
    "Dist",
    "Fixed",
    "FloatRange",
    "IntRange",
    "Match",
    "Param",
    "Space",
    "load_space",
    "match",
    "parse_budget",
]
