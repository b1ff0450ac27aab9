"""``analyze``: what a space or a study is like on a device (block costs per MAC, importances, options' EDFs at
matched MACs), or two of them side by side (``--compare``)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from designspace.cli._format import json_arg


def _analyze(args: argparse.Namespace) -> int:
    from designspace.analysis import analyze, compare, load_samples

    opts = {"samples": args.samples, "seed": args.seed, "device": args.device, "estimate": args.estimate,
            "force_space": args.space}
    if args.compare:
        if args.source:
            raise _usage(f"give either SOURCE ({args.source}) or --compare A B, not both")
        a, b = (load_samples(name, **opts) for name in args.compare)
        comp = compare(a, b, seed=args.seed, reps=args.bootstrap)
        print(json.dumps(comp.to_dict(), indent=2) if args.json else comp.to_text())
        return 0
    if not args.source:
        raise _usage("give a study or a space to analyze, or --compare A B")
    evaluators = tuple(e.strip() for e in args.evaluators.split(",") if e.strip())
    result = analyze(load_samples(args.source, **opts), seed=args.seed, evaluators=evaluators)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.to_text(top=args.top))
    return 0


def _usage(problem: str) -> Exception:
    from designspace.exceptions import DesignspaceError

    return DesignspaceError(f"designspace analyze: {problem} (fix: designspace analyze --help)")


def register(sub: Any) -> None:
    """Adds ``analyze`` to the ``designspace`` subparsers."""
    p = sub.add_parser("analyze", help="a space or study on a device: fastest block per MAC, importances, EDFs",
                       description="Analyze a design space (N seeded samples, counted and predicted on a device "
                                   "model: seconds, nothing trained or measured) or a study's completed trials: "
                                   "which block type in which stage is fastest per MAC on the device, which parameters "
                                   "explain latency and the other targets (fANOVA, PED-ANOVA, MDI), each option's "
                                   "latency at matched MACs; or compare two spaces' EDFs at matched MACs.")
    p.add_argument("source", nargs="?", help="a study (results/<study>/) or a space (a YAML file or a shipped name); "
                                             "a study of that name wins unless --space")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"), help="compare two spaces (or studies) at matched MACs")
    p.add_argument("--device", help="device profile the latency is predicted on (default: the space's device, else "
                                    "iphone13; a study's own device, or its measured figures if it measured here)")
    p.add_argument("--samples", type=int, default=2000, help="networks drawn from a space (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="seeds the samples, the forests and the bootstrap (default 0)")
    p.add_argument("--estimate", default="top1", help="accuracy estimate of a space's networks: top1 (default), "
                                                      "log10_macs or log10_params")
    p.add_argument("--evaluators", default="fanova,ped_anova,mdi", help="importance evaluators, comma-separated "
                                                                         "(default fanova,ped_anova,mdi)")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap draws of a comparison (default 200)")
    p.add_argument("--top", type=int, default=8, help="parameters listed per importance table (default 8)")
    p.add_argument("--space", action="store_true", help="read SOURCE as a space even if a study has its name")
    json_arg(p)
    p.set_defaults(func=_analyze)
