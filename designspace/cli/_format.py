"""What every command shares: plain-text tables, ``--json`` output, the local latency options."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

__all__ = ["emit", "runtime_args", "table"]


def table(rows: list[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """A plain-text table of ``rows``; ``columns`` are (key, header) pairs; ``None`` prints as ``-``."""

    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:g}"
        return str(v)

    cells = [[cell(r.get(k)) for k, _ in columns] for r in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, (_, h) in enumerate(columns)]
    lines = ["  ".join(h.ljust(w) for (_, h), w in zip(columns, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """Prints ``data`` as JSON with ``--json``, else ``text``."""
    print(json.dumps(data, indent=2, default=str) if args.json else text)


def runtime_args(p: argparse.ArgumentParser) -> None:
    """The local latency context options that eval and search share."""
    p.add_argument("--runtime", choices=["onnxruntime", "torch", "cuda"], default="onnxruntime",
                   help="local latency runtime (default onnxruntime on CPU); a --device fixes its own")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads for latency (default 1)")
    p.add_argument("--batch", type=int, default=1, help="images per latency run (default 1)")


def json_arg(p: argparse.ArgumentParser, what: str = "print JSON") -> None:
    """``--json``."""
    p.add_argument("--json", action="store_true", help=what)
