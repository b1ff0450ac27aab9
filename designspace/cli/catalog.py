"""``blocks``, ``zoo``, ``show``: what designspace knows (components, published models, one network)."""

from __future__ import annotations

import argparse
from typing import Any

from designspace.cli._format import emit, json_arg, table

_ZOO_NOTE = ("\n\nMACs: one multiply-add = 1; conv, linear, matmul (attention's QK^T and AV included), norms and "
             "pooling counted (fvcore's convention, batch 1). no-norm / no-attn: the same count without norm "
             "layers / without attention's matrix products, the conventions some papers used. Analytic counts; "
             "`designspace show NAME --trace` cross-checks one model with fvcore. --json carries exact integers "
             "(params, macs).")


def _blocks(args: argparse.Namespace) -> int:
    from designspace.blocks.catalog import component_lines, component_rows

    rows = component_rows(args.kind)
    emit(args, rows, component_lines(rows))
    return 0


def _zoo(args: argparse.Namespace) -> int:
    from designspace.evaluate.counts.zoo_report import rows as zoo_rows

    rows = zoo_rows()
    cols = [("name", "name"), ("paper", "paper name"), ("params_m", "params M"), ("paper_params_m", "paper M"),
            ("params_diff_pct", "diff %"), ("macs_g", "MACs G"), ("paper_macs_g", "paper G"),
            ("macs_diff_pct", "diff %"), ("macs_no_norm_g", "no-norm G"), ("macs_no_attn_g", "no-attn G"),
            ("top1", "top-1"), ("note", "note")]
    emit(args, rows, table(rows, cols) + _ZOO_NOTE)
    return 0


def _show(args: argparse.Namespace) -> int:
    from designspace.evaluate.counts.traced import component_table
    from designspace.network import load_arch

    arch = load_arch(args.arch)
    data: dict[str, Any] = component_table(arch, trace=args.trace)
    cols = [("name", "component"), ("type", "type"), ("in", "in"), ("out", "out"), ("stride", "s"),
            ("input", "input"), ("params", "params"), ("macs_m", "MACs M")]
    head = (f"{arch.name or args.arch}  fingerprint {arch.fingerprint}  {arch.resolution}x{arch.resolution}\n"
            f"params {data['params']:,} ({data['params'] / 1e6:.3f} M)  MACs {data['macs']:,} "
            f"({data['macs'] / 1e9:.4f} G, {data['method']})\n")
    emit(args, data, head + table(data["components"], cols))
    return 0


def register(sub: Any) -> None:
    """Adds the commands of this group to the ``designspace`` subparsers."""
    p = sub.add_parser("blocks", help="list block families, stems, downsampling layers, heads and their parameters")
    p.add_argument("--kind", choices=["block", "stem", "downsample", "head"], help="only this kind")
    json_arg(p)
    p.set_defaults(func=_blocks)

    p = sub.add_parser("zoo", help="the published models: our counts beside the papers' figures")
    json_arg(p, "print JSON (exact params and macs beside the rounded figures)")
    p.set_defaults(func=_zoo)

    p = sub.add_parser("show", help="an Arch (file or zoo name) component by component, with counts")
    p.add_argument("arch", help="an Arch YAML file or a zoo name (designspace zoo lists them)")
    p.add_argument("--trace", action="store_true", help="count by tracing with fvcore instead of analytically")
    json_arg(p)
    p.set_defaults(func=_show)
