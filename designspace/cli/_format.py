"""What every command shares: plain-text tables, ``--json`` output, the local latency options, and the one
table of a study's Pareto front (``search`` and ``pareto``)."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["MS", "PERCENT", "Column", "emit", "front_table", "runtime_args", "table"]

Column = tuple[str, str] | tuple[str, str, Callable[[Any], str]]


def _number(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def fixed(digits: int, suffix: str = "") -> Callable[[Any], str]:
    """A cell format: a number to ``digits`` decimals (``suffix`` after it); text as it is; empty as ``-``."""

    def fmt(v: Any) -> str:
        x = _number(v)
        return f"{x:.{digits}f}{suffix}" if x is not None else ("-" if v in (None, "") else str(v))

    return fmt


def _percent(v: Any) -> str:
    x = _number(v)
    return f"{x:.1%}" if x is not None else ("-" if v in (None, "") else str(v))


#: Milliseconds to 3 decimals (microseconds: what a latency's noise allows).
MS = fixed(3)
#: A fraction as a percentage to one decimal (0.0515 -> ``5.1%``).
PERCENT = _percent


def table(rows: list[dict[str, Any]], columns: Sequence[Column]) -> str:
    """A plain-text table of ``rows``; ``columns`` are (key, header) pairs, or (key, header, format) with a
    function formatting the cell (:data:`MS`, :data:`PERCENT`, :func:`fixed`); ``None`` prints as ``-``."""

    def cell(v: Any, fmt: Callable[[Any], str] | None) -> str:
        if fmt is not None:
            return fmt(v)
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:g}"
        return str(v)

    cells = [[cell(r.get(c[0]), c[2] if len(c) > 2 else None) for c in columns] for r in rows]
    widths = [max([len(c[1])] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c[1].ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
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


def latency_arg(p: argparse.ArgumentParser, what: str) -> None:
    """``--latency``, with the same words and meaning on every command
    (:data:`designspace.evaluate.latency_estimate.LATENCY_CHOICES`); ``what`` says what it does on this one."""
    from designspace.evaluate.latency_estimate import LATENCY_CHOICES, latency_word

    p.add_argument("--latency", choices=LATENCY_CHOICES, type=latency_word, default="measure",
                   help="local latency: 'measure' the network whole (default), sum its per-block 'table' "
                        "(designspace lut build; a missing entry predicted from the measured entries of its type "
                        "where that model holds, else measured), or 'table-measured' (the table, every missing "
                        "entry measured); " + what)


def json_arg(p: argparse.ArgumentParser, what: str = "print JSON") -> None:
    """``--json``."""
    p.add_argument("--json", action="store_true", help=what)


#: Objective and count columns: (header with unit, cell format).
_QUANTITIES: dict[str, tuple[str, Callable[[Any], str]]] = {
    "params_m": ("params M", fixed(3)), "macs_g": ("MACs G", fixed(3)), "top1": ("top1 %", fixed(1)),
    "trained_top1": ("trained top-1 %", fixed(1)), "log10_macs": ("log10_macs*", fixed(3)),
    "log10_params": ("log10_params*", fixed(3)),
}


def front_table(rows: list[dict[str, Any]], settings: dict[str, Any], *, shown: int | None = None,
                total: int | None = None, study: str = "STUDY", arch: bool = False) -> str:
    """A study's front rows (``summary.json``'s best or ``pareto.csv``'s rows) as one table: one column per
    quantity with its unit, the latency's device and source in its header (``latency ms on iphone13,
    predicted``) and its interval beside it, numbers rounded to what they mean; then, where only some rows are
    shown, ``5 of 26 shown (designspace pareto STUDY for all)``, and what a size-proxy objective is.

    Args:
        rows: the rows (Python values or ``trials.csv`` strings).
        settings: the study's settings (objectives, device).
        shown, total: the rows shown and the front's size, for the "shown" line (none when equal).
        study: the study's name for that line.
        arch: add the Arch file column.
    """
    from designspace.evaluate.latency_estimate import LatencyEstimate, describe_column

    objectives = [str(o["name"]) for o in settings["objectives"]]
    ests = [LatencyEstimate.from_columns(r, settings.get("device") or None) for r in rows]
    found = [e for e in ests if e is not None]
    kinds = {(e.device, e.source) for e in found}
    if len(kinds) == 1:
        device, source = next(iter(kinds))
        lat_header = describe_column(device, source)
    else:  # mixed (never within one study today): each row names its own
        lat_header = "latency ms"
    out_rows = []
    for r, e in zip(rows, ests, strict=True):
        row = dict(r)
        if e is not None:
            row["latency_ms"] = e.value_ms if len(kinds) == 1 else f"{e.value_ms:.3f} ({e.device}, {e.source})"
            row["latency_interval"] = e.interval_text() + (" EXTRAPOLATED" if e.extrapolated else "")
        out_rows.append(row)
    cols: list[Column] = [("number", "trial")]
    for name in [*objectives, *[k for k in ("params_m", "macs_g", "latency_ms") if k not in objectives]]:
        if name == "latency_ms":
            if found:
                cols += [("latency_ms", lat_header, MS), ("latency_interval", "interval ms")]
        elif name in _QUANTITIES:
            header, fmt = _QUANTITIES[name]
            cols.append((name, header, fmt))
        else:
            cols.append((name, name, fixed(4)))
    if any(r.get("latency_remeasured_ms") not in (None, "") for r in rows):  # a table study's front
        cols += [("latency_remeasured_ms", "re-measured whole ms (local, measured)", MS),
                 ("latency_table_error", "table vs whole", PERCENT)]
    cols.append(("zoo", "zoo"))
    if arch:
        cols.append(("arch", "arch"))
    lines = [table(out_rows, cols)]
    if shown is not None and total is not None and shown < total:
        lines.append(f"{shown} of {total} shown (designspace pareto {study} for all)")
    proxies = [n for n in objectives if n in ("log10_macs", "log10_params")]
    for n in proxies:
        what = "MACs" if n == "log10_macs" else "parameters"
        lines.append(f"* {n}: log10 {what}, a size proxy for accuracy: docs/proxies.md")
    return "\n".join(lines)
