"""``validate``, ``sample``, ``contains``: search spaces."""

from __future__ import annotations

import argparse
import json
from typing import Any

from designspace.cli._format import emit, json_arg, table


def _validate(args: argparse.Namespace) -> int:
    from designspace._yaml import dump_yaml
    from designspace.space import load_space

    summary = load_space(args.space).summary(seed=args.seed)
    size = summary["log10_size"]
    lines = [f"{summary['file']}: valid space {summary['name']!r}" + (f" - {summary['description']}"
                                                                       if summary["description"] else ""),
             f"  {summary['free_parameters']} free parameters ("
             + ", ".join(f"{n} {k}" for k, n in summary["by_kind"].items() if n) + "), "
             + (f"10^{size} points" if size is not None else "continuous")]
    if args.verbose:
        lines += [f"    {p['name']}: {p['values']}" for p in summary["parameters"]]
    if summary["budgets"]:
        lines.append(f"  budgets: {', '.join(summary['budgets'])}")
    if summary["device"]:
        lines.append(f"  device (latency budgets and objectives): {summary['device']}")
    if summary["search"]:
        lines.append("  search defaults: " + ", ".join(f"{k} {v}" for k, v in summary["search"].items()))
    ex = summary["example"]
    lines.append(f"  example (seed {ex['seed']}): fingerprint {ex['fingerprint']}, {ex['params_m']} M parameters, "
                 f"{ex['macs_g']} GMACs")
    lines += ["    " + line for line in dump_yaml(ex["arch"]).splitlines()]
    emit(args, summary, "\n".join(lines))
    return 0


def _sample(args: argparse.Namespace) -> int:
    from designspace._yaml import dump_yaml
    from designspace.space import load_space
    from designspace.space.samples import draw_samples

    space = load_space(args.space)
    drawn = draw_samples(space, args.n, seed=args.seed, out=args.out)
    if args.json:
        print(json.dumps([{**row, "arch": arch.to_dict()} for arch, row in drawn], indent=2))
    elif args.out is not None:
        cols = [("file", "file"), ("params_m", "params M"), ("macs_g", "MACs G")]
        print(table([row for _, row in drawn], cols)
              + f"\n\n{len(drawn)} Archs from {space.doc.file} (seed {args.seed}) in {args.out}")
    else:
        print("\n---\n".join(dump_yaml(arch.to_dict()).rstrip() for arch, _ in drawn))
    return 0


def _contains(args: argparse.Namespace) -> int:
    from designspace.network import load_arch
    from designspace.space import load_space, match

    space, arch = load_space(args.space), load_arch(args.arch)
    m = match(space, arch)
    label = arch.name or args.arch
    if args.json:
        print(json.dumps({"contains": m.ok, "reason": m.reason, "values": m.values}, indent=2))
    elif m.ok:
        print(f"yes: {label} is a point of {space.name} ({space.doc.file})")
    else:
        print(f"no: {label} is not a point of {space.name}: {m.reason}")
    return 0 if m.ok else 1


def register(sub: Any) -> None:
    """Adds the commands of this group to the ``designspace`` subparsers."""
    p = sub.add_parser("validate", help="check a Space file; summary: free parameters, size, an example Arch")
    p.add_argument("space", help="a Space YAML file or a shipped space name (tiny, mobile, smt, ...)")
    p.add_argument("--seed", type=int, default=0, help="seed of the example Arch")
    p.add_argument("-v", "--verbose", action="store_true", help="list every free parameter")
    json_arg(p)
    p.set_defaults(func=_validate)

    p = sub.add_parser("sample", help="draw random Archs from a Space")
    p.add_argument("space", help="a Space YAML file or a shipped space name")
    p.add_argument("-n", type=_count, default=5, help="how many (default 5, at most 100,000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", help="write each Arch as DIR/<space>-<fingerprint>.yaml instead of printing YAML")
    json_arg(p)
    p.set_defaults(func=_sample)

    p = sub.add_parser("contains", help="is an Arch a point of a Space? (exit 0 yes, 1 no)")
    p.add_argument("space", help="a Space YAML file or a shipped space name")
    p.add_argument("arch", help="an Arch YAML file or a zoo name")
    json_arg(p, "print JSON (with the flat values when it is)")
    p.set_defaults(func=_contains)


def _count(text: str) -> int:
    """``-n``: 1 to 100,000 Archs."""
    if not text.isascii() or not text.isdigit() or not 1 <= int(text[:7]) <= 100_000 or len(text) > 6:
        raise argparse.ArgumentTypeError(f"{text[:20]!r} is not a count from 1 to 100000")
    return int(text)
