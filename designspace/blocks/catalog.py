"""``designspace blocks``: every registered component with its parameters, as rows and as text."""

from __future__ import annotations

from typing import Any

from designspace.blocks.registry import KINDS, components

__all__ = ["component_lines", "component_rows"]


def component_rows(kind: str | None = None) -> list[dict[str, Any]]:
    """One JSON-ready row per registered component (all kinds, or only ``kind``), in registry order."""
    comps = [c for k in KINDS for c in components(k) if kind in (None, c.kind)]
    return [{"name": c.name, "kind": c.kind, "family": c.family, "doc": c.doc, "strides": list(c.strides),
             "changes_width": c.changes_width, "params": [p.describe() for p in c.params]} for c in comps]


def component_lines(rows: list[dict[str, Any]]) -> str:
    """The rows of :func:`component_rows` as text: a header per component, a line per parameter."""
    lines = []
    for c in rows:
        lines.append(f"{c['kind']:10s} {c['name']}  ({c['family']})")
        lines.append(f"{'':10s} {c['doc']}")
        for p in c["params"]:
            if p.get("choices") is not None:
                allowed = f"one of {list(p['choices'])}"
            else:
                low, high = p.get("low"), p.get("high")
                allowed = (f"[{low if low is not None else ''}, {high if high is not None else ''}]"
                           + (" odd" if p.get("odd") else ""))
            lines.append(f"{'':12s}{p['name']:14s} {p['type']:5s} default {p['default']!r:10s} {allowed:24s} "
                         f"{p.get('doc', '')}")
        lines.append("")
    return "\n".join(lines).rstrip()
